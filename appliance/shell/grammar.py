"""
The shell's grammar: pure command declarations, tokenizing, matching, help
and completion.

Nothing here imports Twisted or ZODB. A command is declared once, as a
L{Command} in a L{CommandTree}: its mode, a spec string such as
C{"throughput <1-100000>"}, one help text per spec element and a handler.
Parsing (with unique-prefix keywords, C{sh run}), C{?} help pairs, TAB
completion candidates and the formatting of a command back to text (used by
C{show running-config}) all come from that declaration.

Spec elements:
  - C{word}: a keyword, matched by any unique prefix;
  - C{(a|b|c)}: a choice of keywords, the value is the full keyword;
  - C{<1-100>}: an integer in that range;
  - C{UPPER}: an argument of a registered type (L{ARGUMENT_TYPES}), such as
    C{NAME}, C{NUMBER} (E.164), C{NETWORK}, C{DECIMAL}; C{LINE} takes the
    rest of the line verbatim.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from appliance.shell.types import (  # noqa: F401 (re-exported)
    ARGUMENT_TYPES, ArgumentError, ArgumentType, register_type)

NO_STR = "Negate a command or set its default"
CR = "<cr>"


class GrammarError(Exception):
    """
    A line that does not parse. C{str()} is the text shown after C{% }.
    """


@dataclass(frozen=True)
class Token:
    """
    One word of a command line.

    @ivar text: the word, quotes removed and escapes resolved.
    @ivar start: offset of its first character in the line.
    @ivar end: offset just after its last character.
    @ivar quoted: whether it was written in double quotes.
    """
    text: str
    start: int
    end: int
    quoted: bool = False


def tokenize(line: str) -> list[Token]:
    """
    Split a line into tokens. Leading indentation is ignored; double quotes
    group words (C{"Call & Chat"}); inside quotes a backslash escapes the
    next character.

    @param line: the command line.
    @return: the tokens.
    @raise GrammarError: on an unterminated quote.
    """
    tokens: list[Token] = []
    i, n = 0, len(line)
    while i < n:
        if line[i].isspace():
            i += 1
            continue
        start = i
        if line[i] == '"':
            i += 1
            chars: list[str] = []
            while i < n and line[i] != '"':
                if line[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(line[i])
                i += 1
            if i >= n:
                raise GrammarError("unterminated quote")
            i += 1
            tokens.append(Token("".join(chars), start, i, True))
        else:
            while i < n and not line[i].isspace():
                i += 1
            tokens.append(Token(line[start:i], start, i))
    return tokens


_PLAIN = re.compile(r'^[^\s"\\!#][^\s"\\]*$')


def quote(word: str) -> str:
    """
    Write a value so that L{tokenize} reads it back as one token.

    @param word: the value.
    @return: the word itself when it is plain, else a double-quoted form.
    """
    if _PLAIN.match(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Elements -----------------------------------------------------------------

EXACT, PARTIAL, VALUE = 3, 2, 1


@dataclass(frozen=True)
class Element:
    """
    One position of a command spec.

    @ivar word: how the spec writes it (C{carrier}, C{NAME}, C{<1-10>}).
    @ivar help: its help text.
    """
    word: str
    help: str

    is_keyword = False
    takes_rest = False

    def match(self, text: str) -> tuple[int, Any]:
        """
        @param text: a token.
        @return: (match level, value); level 0 means no match.
        @raise ArgumentError: for an argument of the wrong form.
        """
        raise NotImplementedError()

    def completions(self, prefix: str,
                    names: Callable[[str], Iterable[str]]) -> list[str]:
        """
        @param prefix: the partial token.
        @param names: object names by kind, for name arguments.
        @return: the words this element could complete C{prefix} to.
        """
        return []

    def render(self, value: Any) -> str:
        """
        @param value: a value this element matched.
        @return: the text that matches it again.
        """
        return quote(str(value))


@dataclass(frozen=True)
class Keyword(Element):
    """A fixed word, matched by a unique prefix."""
    is_keyword = True

    def match(self, text):
        word = text.lower()
        if word == self.word:
            return EXACT, self.word
        if word and self.word.startswith(word):
            return PARTIAL, self.word
        return 0, None

    def completions(self, prefix, names):
        return [self.word] if self.word.startswith(prefix.lower()) else []

    def render(self, value):
        return self.word


@dataclass(frozen=True)
class Choice(Element):
    """One of several keywords, C{(transmitter|receiver|transceiver)}."""
    options: tuple[str, ...] = ()
    is_keyword = True

    def match(self, text):
        word = text.lower()
        if word in self.options:
            return EXACT, word
        hits = [o for o in self.options if word and o.startswith(word)]
        if len(hits) == 1:
            return PARTIAL, hits[0]
        if hits:
            raise ArgumentError(f"ambiguous: {' '.join(hits)}")
        return 0, None

    def completions(self, prefix, names):
        return [o for o in self.options if o.startswith(prefix.lower())]

    def render(self, value):
        return value


@dataclass(frozen=True)
class Range(Element):
    """An integer within bounds, C{<1-100000>}."""
    low: int = 0
    high: int = 0

    def match(self, text):
        if not re.fullmatch(r"-?[0-9]+", text):
            raise ArgumentError(f"expected an integer {self.word}")
        value = int(text)
        if not self.low <= value <= self.high:
            raise ArgumentError(f"out of range {self.word}")
        return VALUE, value


@dataclass(frozen=True)
class Argument(Element):
    """A typed value (E.164 number, IP network, Decimal, name...)."""
    type: ArgumentType = ARGUMENT_TYPES["NAME"]

    def match(self, text):
        return VALUE, self.type.convert(text)

    def completions(self, prefix, names):
        if self.type.complete is None:
            return []
        return sorted(n for n in names(self.type.complete)
                      if str(n).startswith(prefix))

    def render(self, value):
        return quote(self.type.render(value))


@dataclass(frozen=True)
class Rest(Element):
    """The rest of the line, verbatim (C{LINE})."""
    takes_rest = True

    def match(self, text):
        if not text.strip():
            raise ArgumentError("expected text")
        return VALUE, text.strip()

    def render(self, value):
        return str(value)


def parse_spec(spec: str, helps: Sequence[str]) -> tuple[Element, ...]:
    """
    Turn a spec string and its help texts into elements.

    @param spec: such as C{"bind (transmitter|receiver|transceiver)"}.
    @param helps: one help text per word of the spec.
    @return: the elements.
    @raise ValueError: for a malformed spec or a help count mismatch.
    """
    words = spec.split()
    if not words or len(words) != len(helps):
        raise ValueError(f"{spec!r}: {len(words)} words, {len(helps)} helps")
    elements: list[Element] = []
    for i, (word, text) in enumerate(zip(words, helps)):
        if m := re.fullmatch(r"\(([a-z0-9-]+(?:\|[a-z0-9-]+)+)\)", word):
            elements.append(Choice(word, text, tuple(m.group(1).split("|"))))
        elif m := re.fullmatch(r"<(-?\d+)-(-?\d+)>", word):
            elements.append(Range(word, text, int(m.group(1)), int(m.group(2))))
        elif word == "LINE":
            if i != len(words) - 1:
                raise ValueError(f"{spec!r}: LINE must be last")
            elements.append(Rest(word, text))
        elif word in ARGUMENT_TYPES:
            elements.append(Argument(word, text, ARGUMENT_TYPES[word]))
        elif re.fullmatch(r"[a-z0-9][a-z0-9-]*", word):
            elements.append(Keyword(word, text))
        else:
            raise ValueError(f"{spec!r}: bad element {word!r}")
    return tuple(elements)


# Modes and commands --------------------------------------------------------

@dataclass(eq=False)
class Mode:
    """
    A command mode (a node of the VTY tree).

    @ivar name: C{exec}, C{config}, C{config-carrier}...; the prompt shows
        C{(name)} for every mode but C{exec}.
    @ivar parent: the mode C{exit} returns to, C{None} at the top.
    @ivar kind: the object kind this mode edits (C{carrier}), if any.
    @ivar resolve: C{resolve(root, parent_object, key)} returns the object
        this mode edits (or C{None} if it is gone); C{None} for modes that
        edit no object.
    """
    name: str
    parent: "Mode | None" = None
    kind: str | None = None
    resolve: Callable[[Any, Any, Any], Any] | None = None

    def __repr__(self) -> str:
        return f"<Mode {self.name}>"


ANY = Mode("*")

#: What role view sees in place of a secret value.
MASK = "********"


@dataclass(eq=False)
class Command:
    """
    One declared command.

    @ivar mode: where it is available (L{ANY}: every mode).
    @ivar spec: the spec string.
    @ivar elements: the parsed spec.
    @ivar handler: C{handler(ctx, *values)}, values of the non-keyword
        elements in order.
    @ivar action: C{"config"} (one transaction, admin only), C{"show"}
        (read only) or C{"session"} (changes only the session).
    @ivar enters: the mode entered after success.
    @ivar privileged: whether role C{view} is refused.
    @ivar render: for running-config: C{render(obj)} yields one tuple of
        values per line to write (setting commands), or C{None}.
    @ivar render_root: C{render} is called as C{render(obj, root)}, with
        the C{ApplianceRoot} being written (as C{children} is), for a
        setting that names another top-level object.
    @ivar children: for commands that enter a mode: C{children(root, obj)}
        yields the keys of the objects to write, or C{None}.
    @ivar secret: its rendered values are secrets (a clear password, a
        signing key, an SNMP key or community, an HA1): role view sees
        them masked in running-config.
    """
    mode: Mode
    spec: str
    elements: tuple[Element, ...]
    handler: Callable[..., Any]
    action: str = "config"
    enters: Mode | None = None
    privileged: bool = True
    render: Callable[[Any], Iterable[tuple]] | None = None
    children: Callable[[Any, Any], Iterable[Any]] | None = None
    secret: bool = False
    render_root: bool = False

    def format(self, values: Sequence[Any], mask: bool = False) -> str:
        """
        Write this command with values, so that it parses back to them.

        @param values: one per non-keyword element.
        @param mask: write L{MASK} for each argument value of a secret
            command (keywords and choices stay) and for each C{PASSWORD}.
        @return: the command line.
        """
        it = iter(values)
        words = []
        for el in self.elements:
            if isinstance(el, Keyword):
                words.append(el.word)
                continue
            value = next(it)
            words.append(MASK if mask and self._secret_element(el)
                         else el.render(value))
        return " ".join(words)

    def _secret_element(self, el: Element) -> bool:
        if isinstance(el, Argument) and el.type.name == "PASSWORD":
            return True
        return self.secret and not isinstance(el, Choice)

    @property
    def takes_secret(self) -> bool:
        """Whether a line of this command carries a secret (audit lines
        and transaction notes then show it masked)."""
        return any(self._secret_element(el) for el in self.elements
                   if not isinstance(el, Keyword))

    def __repr__(self) -> str:
        return f"<Command {self.mode.name}: {self.spec}>"


@dataclass
class Match:
    """
    A parsed line.

    @ivar command: the command.
    @ivar values: the converted non-keyword values.
    """
    command: Command
    values: list[Any] = field(default_factory=list)


@dataclass
class _Candidate:
    command: Command
    values: list[Any]
    score: list[int]
    done: bool = False  # a LINE element consumed the rest


class CommandTree:
    """
    All declared commands, by mode, in declaration order.
    """

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def add(self, command: Command) -> Command:
        """
        Register a command.

        @param command: the command.
        @return: the same command.
        @raise ValueError: if the same spec is already declared in its mode.
        """
        for c in self.commands:
            if c.mode is command.mode and c.spec == command.spec:
                raise ValueError(f"duplicate command {command.spec!r}")
        self.commands.append(command)
        return command

    def command(self, mode: Mode, spec: str, help: Sequence[str],
                action: str = "config", enters: Mode | None = None,
                privileged: bool | None = None, render=None, children=None,
                secret: bool = False, render_root: bool = False):
        """
        Decorator declaring C{handler} as the command C{spec} in C{mode}.

        @param mode: the mode, or L{ANY}.
        @param spec: the spec string.
        @param help: one text per spec word.
        @param action: C{config}, C{show} or C{session}.
        @param enters: the mode to enter after success.
        @param privileged: refused to role view (default: unless C{show}).
        @param render: running-config values of this setting for an object.
        @param children: running-config keys of the objects it enters.
        @param secret: its rendered values are secrets (masked for view).
        @param render_root: C{render} takes the root too:
            C{render(obj, root)}.
        @return: the decorator; it returns the handler unchanged.
        """
        if privileged is None:
            privileged = action != "show"

        def deco(handler):
            self.add(Command(mode, spec, parse_spec(spec, help), handler,
                             action, enters, privileged, render, children,
                             secret, render_root))
            return handler
        return deco

    def in_mode(self, mode: Mode, admin: bool = True) -> list[Command]:
        """
        @param mode: a mode.
        @param admin: include privileged commands.
        @return: the commands usable there, mode's own first.
        """
        own = [c for c in self.commands if c.mode is mode]
        common = [c for c in self.commands if c.mode is ANY]
        return [c for c in own + common if admin or not c.privileged]

    # Matching ------------------------------------------------------------

    def _filter(self, mode: Mode, line: str, tokens: Sequence[Token],
                admin: bool) -> list[_Candidate]:
        cands = [_Candidate(c, [], []) for c in self.in_mode(mode, admin)]
        for i, tok in enumerate(tokens):
            hits: list[tuple[int, _Candidate, Any]] = []
            errors: list[str] = []
            for cand in cands:
                if cand.done:
                    hits.append((VALUE, cand, None))
                    continue
                if i >= len(cand.command.elements):
                    continue
                el = cand.command.elements[i]
                text = line[tok.start:] if el.takes_rest else tok.text
                try:
                    level, value = el.match(text)
                except ArgumentError as e:
                    desc = (el.type.description if isinstance(el, Argument)
                            else el.word)
                    errors.append(f"invalid {desc} {tok.text!r}: {e}")
                    continue
                if level:
                    hits.append((level, cand, value))
            if any(level == EXACT for level, _, _ in hits):
                hits = [h for h in hits if h[0] == EXACT or h[0] == VALUE
                        and not h[1].command.elements[i].is_keyword
                        or h[1].done]
            keywords = {h[2] for h in hits if h[0] == PARTIAL}
            if len(keywords) > 1:
                raise GrammarError(f"ambiguous command: {tok.text!r} could be "
                                   + ", ".join(sorted(keywords)))
            if not hits:
                if errors:
                    raise GrammarError(errors[0])
                if i == 0:
                    raise GrammarError(f"unknown command: {tok.text}")
                raise GrammarError(f"invalid input at {tok.text!r}")
            nxt = []
            for level, cand, value in hits:
                if cand.done:
                    nxt.append(cand)
                    continue
                el = cand.command.elements[i]
                values = cand.values + ([] if isinstance(el, Keyword)
                                        else [value])
                nxt.append(_Candidate(cand.command, values,
                                      cand.score + [level], el.takes_rest))
            cands = nxt
        return cands

    def parse(self, mode: Mode, line: str, admin: bool = True) -> Match:
        """
        Parse one line in a mode.

        @param mode: the current mode.
        @param line: the line (without C{?}).
        @param admin: whether privileged commands are candidates.
        @return: the match.
        @raise GrammarError: unknown, ambiguous, incomplete or invalid.
        """
        tokens = tokenize(line)
        if not tokens:
            raise GrammarError("empty command")
        cands = self._filter(mode, line, tokens, admin)
        complete = [c for c in cands
                    if c.done or len(c.command.elements) == len(tokens)]
        if not complete:
            expected = sorted({c.command.elements[len(tokens)].word
                               for c in cands})
            raise GrammarError("incomplete command, expected "
                               + " or ".join(expected))
        complete.sort(key=lambda c: c.score, reverse=True)
        if len(complete) > 1 and complete[0].score == complete[1].score:
            raise GrammarError(f"ambiguous command: {line.strip()!r}")
        best = complete[0]
        return Match(best.command, best.values)

    def help(self, mode: Mode, line: str, admin: bool = True,
             names: Callable[[str], Iterable[str]] = lambda kind: ()
             ) -> list[tuple[str, str]]:
        """
        The C{?} answer for a line typed so far (without the C{?}).

        After a space: the possible next words with their help (and C{<cr>}
        when the line is already a complete command). Right after a partial
        word: the words it could complete to.

        @param mode: the current mode.
        @param line: the line typed so far.
        @param admin: include privileged commands.
        @param names: object names by kind (for completions of names).
        @return: (word, help) pairs.
        @raise GrammarError: if the line so far cannot be any command.
        """
        tokens = tokenize(line)
        partial = bool(tokens) and tokens[-1].end == len(line)
        if partial:
            done_tokens, prefix = tokens[:-1], tokens[-1].text
        else:
            done_tokens, prefix = tokens, ""
        cands = self._filter(mode, line, done_tokens, admin)
        pairs: dict[str, str] = {}
        n = len(done_tokens)
        for c in cands:
            if c.done or n >= len(c.command.elements):
                continue
            el = c.command.elements[n]
            if partial:
                for word in el.completions(prefix, names):
                    pairs.setdefault(word, el.help)
            elif isinstance(el, Choice):
                for o in el.options:
                    pairs.setdefault(o, el.help)
            else:
                pairs.setdefault(el.word, el.help)
        if not partial and any(c.done or len(c.command.elements) == n
                               for c in cands) and n:
            pairs.setdefault(CR, "")
        if partial and not pairs:
            raise GrammarError(f"unknown command: {prefix}" if not done_tokens
                               else f"invalid input at {prefix!r}")
        return sorted(pairs.items(), key=lambda kv: (kv[0] == CR, kv[0]))

    def complete(self, mode: Mode, line: str, admin: bool = True,
                 names: Callable[[str], Iterable[str]] = lambda kind: ()
                 ) -> tuple[int, list[str]]:
        """
        TAB completion candidates for the last (partial) word of a line.

        @param mode: the current mode.
        @param line: the line typed so far.
        @param admin: include privileged commands.
        @param names: object names by kind (carriers, tariffs...).
        @return: (offset where the word being completed starts, sorted
            candidate words). An empty list means nothing fits.
        """
        try:
            tokens = tokenize(line)
        except GrammarError:
            return len(line), []
        if tokens and tokens[-1].end == len(line):
            done_tokens, prefix, start = tokens[:-1], tokens[-1].text, \
                tokens[-1].start
        else:
            done_tokens, prefix, start = tokens, "", len(line)
        try:
            cands = self._filter(mode, line, done_tokens, admin)
        except GrammarError:
            return start, []
        words: set[str] = set()
        n = len(done_tokens)
        for c in cands:
            if not c.done and n < len(c.command.elements):
                words.update(c.command.elements[n].completions(prefix, names))
        return start, sorted(words)


def common_prefix(words: Sequence[str]) -> str:
    """
    @param words: candidate completions.
    @return: their longest common prefix.
    """
    if not words:
        return ""
    lo, hi = min(words), max(words)
    i = 0
    while i < len(lo) and lo[i] == hi[i]:
        i += 1
    return lo[:i]
