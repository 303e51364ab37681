"""
One operator's shell session and the single L{execute} function that runs a
command line in it.

The interactive SSH shell, C{ssh node 'cmd'}, scripts on standard input,
start-up provisioning and the tests all call L{execute}: the same parsing,
the same permission check, the same one-transaction-per-command rule and
the same audit record.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from twisted.logger import Logger
from ZODB.POSException import ConflictError

from appliance.model.errors import ModelError
from appliance.shell.live import LiveState
from appliance.shell.output import Stream
from appliance.shell.types import ArgumentError
from appliance.shell.grammar import (
    CommandTree, GrammarError, Mode, tokenize)

log = Logger()

ROLES = ("admin", "view")

#: What a handler returns to end the session (C{exit} at the top).
END_SESSION = object()


class CommandError(Exception):
    """
    A command refused by its handler. C{str()} is shown after C{% }.
    """


class ObjectGone(CommandError):
    """
    The object a sub-mode edits was removed (by another session).
    """


@dataclass
class Result:
    """
    What a command line produced.

    @ivar text: the output, without a trailing newline; errors start
        with C{% }.
    @ivar ok: C{False} when the line was refused.
    @ivar ended: C{True} when the session should end (C{exit} at the top).
    @ivar stream: output too large for C{text}, to be written as it is
        produced (L{appliance.shell.output.StreamWriter}); C{text} is then
        empty.
    """
    text: str = ""
    ok: bool = True
    ended: bool = False
    stream: Stream | None = None

    def read(self) -> str:
        """
        @return: the whole output, a stream's included (for callers that
            want text: provisioning, tests).
        """
        if self.stream is not None:
            self.text, self.stream = self.stream.read(), None
        return self.text


class AuditLog:
    """
    Appends one line per accepted configuration command to a file:
    C{<ISO time> <operator> <source> <mode path>: <command>}.

    @ivar path: the file, or C{None} to keep lines in L{lines} only.
    @ivar lines: the lines written by this object (for show and tests).
    """

    def __init__(self, path: Path | None,
                 now: Callable[[], float] | None = None) -> None:
        """
        @param path: the audit file (created if absent), or C{None}.
        @param now: returns the time in seconds since the epoch (inject
            C{reactor.seconds}); defaults to the system clock.
        """
        self.path = path
        self._now = now
        self.lines: list[str] = []

    def record(self, operator: str, source: str, where: str,
               command: str) -> str:
        """
        Write one audit line.

        @param operator: who.
        @param source: from where (address), or C{""}.
        @param where: the mode path (C{carrier TATA}), or C{""}.
        @param command: the accepted command.
        @return: the line written.
        """
        if self._now is None:
            stamp = datetime.datetime.now(datetime.timezone.utc)
        else:
            stamp = datetime.datetime.fromtimestamp(self._now(),
                                                    datetime.timezone.utc)
        ctx = f"[{where}] " if where else ""
        line = (f"{stamp.isoformat(timespec='seconds')} {operator} "
                f"{source or '-'} {ctx}{command.strip()}")
        self.lines.append(line)
        if self.path is not None:
            try:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError as e:
                log.error("cannot write audit log {path}: {error}",
                          path=str(self.path), error=e)
        return line


@dataclass
class Context:
    """
    What a command handler sees.

    @ivar session: the session.
    @ivar root: the C{ApplianceRoot} (inside the command's transaction for
        configuration commands).
    @ivar objects: the objects of the current mode path, outermost first.
    @ivar entered: the key of the object to enter after success.
    """
    session: "Session"
    root: Any
    objects: list[Any] = field(default_factory=list)
    entered: Any = None

    @property
    def obj(self) -> Any:
        """The object the current mode edits (C{None} at config level)."""
        return self.objects[-1] if self.objects else None

    @property
    def parent(self) -> Any:
        """The object of the enclosing mode, or C{None}."""
        return self.objects[-2] if len(self.objects) > 1 else None

    def enter(self, key: Any) -> None:
        """
        Enter the command's sub-mode for the object with this key once the
        transaction has committed.

        @param key: the key the sub-mode's resolver understands.
        """
        self.entered = key

    @property
    def live(self) -> Any:
        """The running node's L{appliance.shell.live.LiveState}."""
        return self.session.live


class Session:
    """
    One operator's state: mode stack, identity, where to audit.

    @ivar operator: the operator name (transaction user, audit).
    @ivar role: C{admin} or C{view}.
    @ivar source: the client address, for the audit log.
    @ivar stack: (mode, key) pairs below the top mode.
    """

    def __init__(self, storage: Any, tree: CommandTree, top: Mode,
                 operator: str, role: str, source: str = "",
                 live: Any = None, audit: AuditLog | None = None,
                 hostname: str = "appliance", realm: str = "appliance"
                 ) -> None:
        """
        @param storage: the L{appliance.store.interfaces.IStorage}.
        @param tree: the declared commands.
        @param top: the top (exec) mode.
        @param operator: the operator name.
        @param role: C{admin} or C{view}.
        @param source: the client address.
        @param live: the L{appliance.shell.live.LiveState} live-state
            commands ask (default: an empty one, nothing running).
        @param audit: where accepted changes are recorded.
        @param hostname: the node name in the prompt.
        @param realm: the SIP digest realm account passwords are hashed for.
        @raise ValueError: for an unknown role.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        self.storage = storage
        self.tree = tree
        self.top = top
        self.operator = operator
        self.role = role
        self.source = source
        self.live = live if live is not None else LiveState()
        self.audit = audit
        self.hostname = hostname
        self.realm = realm
        self.stack: list[tuple[Mode, Any]] = []

    @property
    def admin(self) -> bool:
        """Whether this operator may configure."""
        return self.role == "admin"

    @property
    def mode(self) -> Mode:
        """The current mode."""
        return self.stack[-1][0] if self.stack else self.top

    def prompt(self) -> str:
        """
        @return: C{appliance>} (view), C{appliance#} or
            C{appliance(config-carrier)#}, with a trailing space.
        """
        mode = self.mode
        suffix = "" if mode is self.top else f"({mode.name})"
        return f"{self.hostname}{suffix}{'#' if self.admin else '>'} "

    def where(self) -> str:
        """
        @return: the objects being edited, C{carrier TATA} or
            C{customer "John Doe" / account 111222333}; C{""} at the top.
        """
        parts = [f"{mode.kind} {key}".rstrip() for mode, key in self.stack
                 if mode.kind is not None]
        return " / ".join(parts)

    def names(self, kind: str) -> Iterable[str]:
        """
        Object names for TAB completion.

        @param kind: a root container name (C{carriers}).
        @return: its keys, or nothing.
        """
        try:
            container = getattr(self.storage.root(), kind)
            return [str(k) for k in container.keys()]
        except AttributeError:      # not a container of the root
            return []

    def resolve(self, root: Any) -> list[Any]:
        """
        The objects of the current mode path.

        @param root: the C{ApplianceRoot}.
        @return: one object per sub-mode that edits an object.
        @raise ObjectGone: if one was removed meanwhile (the session then
            goes back to the mode above it).
        """
        objects: list[Any] = []
        for depth, (mode, key) in enumerate(self.stack):
            if mode.resolve is None:
                continue
            try:
                obj = mode.resolve(root, objects[-1] if objects else None, key)
            except (KeyError, ModelError):
                obj = None
            if obj is None:
                del self.stack[depth:]
                raise ObjectGone(f"{mode.kind} {key} no longer exists")
            objects.append(obj)
        return objects


def _help(session: Session, line: str) -> Result:
    pairs = session.tree.help(session.mode, line, admin=session.admin,
                              names=session.names)
    width = max((len(w) for w, _ in pairs), default=0)
    return Result("\n".join(f"  {w.ljust(width)}  {h}".rstrip()
                            for w, h in pairs))


def execute(session: Session, line: str) -> Result:
    """
    Run one command line in a session.

    Blank lines and comments (C{!} or C{#} first) do nothing. A line
    ending in C{?} answers help. A configuration command runs in its own
    transaction (user: the operator, note: the mode path and command); if
    it is refused nothing changes and the answer is C{% reason}; if it is
    accepted it is written to the audit log. Role C{view} may only use
    commands not marked privileged (C{show}, C{list}, C{exit}, C{end}).

    @param session: the session (its mode may change).
    @param line: the command line.
    @return: the result; it never raises for bad input.
    """
    try:
        return _execute(session, line)
    except (GrammarError, CommandError, ModelError, ArgumentError) as e:
        # ArgumentError: a handler refusing an argument's value, as the
        # grammar's own types do.
        return Result(f"% {e}", False)
    except ConflictError:
        return Result("% the change conflicted with another, try again",
                      False)
    except Exception as e:
        # Broad: a handler's bug is the operator's "% internal error",
        # logged with its traceback; the shell keeps serving.
        log.failure("command {line!r} failed", line=_loggable(session, line))
        return Result(f"% internal error: {e.__class__.__name__}", False)


def _loggable(session: Session, line: str) -> str:
    """The line as a log may show it: secrets masked (a line that does
    not parse is not shown at all: it may be a mistyped secret)."""
    try:
        match = session.tree.parse(session.mode, line, admin=True)
    except Exception:
        # Broad: called while the failure being logged may be the
        # parser's own; that failure is logged by the caller.
        return "(a line that does not parse)"
    if match.command.takes_secret:
        return match.command.format(match.values, mask=True)
    return line.strip()


def _execute(session: Session, line: str) -> Result:
    text = line.strip()
    if not text or text[0] in "!#":
        return Result()
    if text.endswith("?"):
        return _help(session, line.rstrip()[:-1])
    tokenize(line)
    match = session.tree.parse(session.mode, line, admin=True)
    command = match.command
    if command.privileged and not session.admin:
        raise CommandError(f"permission denied: role {session.role} "
                           "may only show")
    if command.action == "config":
        where = session.where()
        if command.takes_secret:
            # Audit lines and transaction notes never hold a secret.
            text = command.format(match.values, mask=True)
        note = f"{where}: {text}" if where else text
        with session.storage.transaction(user=session.operator,
                                         note=note) as root:
            ctx = Context(session, root, session.resolve(root))
            output = command.handler(ctx, *match.values)
        if session.audit is not None:
            session.audit.record(session.operator, session.source, where, text)
    else:
        if command.action == "show":
            sync = getattr(session.storage, "sync", None)
            if sync is not None:
                sync()
        root = session.storage.root()
        ctx = Context(session, root,
                      session.resolve(root) if command.action == "show"
                      else [])
        output = command.handler(ctx, *match.values)
    if command.enters is not None and ctx.entered is not None:
        session.stack.append((command.enters, ctx.entered))
    if output is END_SESSION:
        return Result(ended=True)
    if isinstance(output, Stream):
        return Result(stream=output)
    return Result(output or "")
