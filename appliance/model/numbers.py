"""
Pure number handling: E.164 normalization and number patterns.

Patterns are the routing wildcards used by service policies: digits match
themselves, C{%} matches any run of digits (including none) and C{_}
matches exactly one digit. Patterns match numbers only: a number that is
not all ASCII digits (an alphanumeric sender such as C{AsiaCell}) never
matches a pattern.
"""
from __future__ import annotations

import re

from appliance.model.errors import ModelError

#: The longest E.164 number, in digits (ITU-T E.164 section 6.1).
MAX_E164_DIGITS = 15

#: The longest pattern accepted.
MAX_PATTERN_LENGTH = 32

_SEPARATORS = str.maketrans("", "", " -.()\t")
_PATTERN_CHARS = frozenset("0123456789%_")


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def normalize_e164(text: str) -> str:
    """
    Normalize a telephone number to its E.164 digits.

    Spaces, tabs, dashes, dots and parentheses are removed, then a leading
    C{+} or a leading C{00} international prefix. No country code is added:
    a national number comes back as its digits.

    @param text: the number as typed or received, e.g. C{+964 (750) 123-4567}.
    @return: the digits only, e.g. C{9647501234567}.
    @raise ModelError: if C{text} is not a string, is empty, holds anything
        but digits and the separators above, or has more than 15 digits.
    """
    if not isinstance(text, str):
        raise ModelError("a number must be given as text")
    digits = text.strip().translate(_SEPARATORS)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    if not digits:
        raise ModelError(f"{text!r} is not a number")
    if not _is_digits(digits):
        raise ModelError(f"{text!r} is not a number: only digits are allowed")
    if len(digits) > MAX_E164_DIGITS:
        raise ModelError(
            f"{text!r} is not a number: at most {MAX_E164_DIGITS} digits"
        )
    return digits


def validate_pattern(pattern: str) -> str:
    """
    Check a number pattern.

    @param pattern: digits, C{%} (any run of digits, including none) and
        C{_} (exactly one digit); surrounding blanks are removed.
    @return: the pattern, stripped.
    @raise ModelError: if it is not a string, is empty, too long, or holds
        another character.
    """
    if not isinstance(pattern, str):
        raise ModelError("a pattern must be given as text")
    p = pattern.strip()
    if not p:
        raise ModelError("a pattern cannot be empty")
    if len(p) > MAX_PATTERN_LENGTH:
        raise ModelError(
            f"a pattern is at most {MAX_PATTERN_LENGTH} characters"
        )
    bad = sorted(set(p) - _PATTERN_CHARS)
    if bad:
        raise ModelError(
            f"pattern {p!r} may only hold digits, % and _ (not {bad[0]!r})"
        )
    return p


class PatternMatcher:
    """
    A compiled pattern: immutable, cheap to call on hot paths.

    @ivar pattern: the source pattern.
    """

    __slots__ = ("pattern", "_prefix", "_regex")

    def __init__(self, pattern: str) -> None:
        """
        @param pattern: a pattern; it is validated here.
        @raise ModelError: if the pattern is invalid.
        """
        p = validate_pattern(pattern)
        self.pattern = p
        # The common case, "digits then one trailing %", is a prefix test.
        if p.endswith("%") and (p == "%" or _is_digits(p[:-1])):
            self._prefix: str | None = p[:-1]
            self._regex = None
        else:
            self._prefix = None
            body = "".join(
                "[0-9]*" if c == "%" else "[0-9]" if c == "_" else c
                for c in p
            )
            self._regex = re.compile(body)

    def matches(self, number: str) -> bool:
        """
        @param number: the number to test (E.164 digits).
        @return: whether the whole number matches the pattern; C{False} for
            anything that is not a string of ASCII digits.
        """
        if not isinstance(number, str) or not (number == "" or _is_digits(number)):
            return False
        if self._prefix is not None:
            return number.startswith(self._prefix)
        return self._regex.fullmatch(number) is not None

    def __repr__(self) -> str:
        return f"PatternMatcher({self.pattern!r})"


def compile_pattern(pattern: str) -> PatternMatcher:
    """
    Compile a pattern for repeated matching.

    @param pattern: see L{validate_pattern}.
    @return: a matcher with C{matches(number) -> bool}.
    @raise ModelError: if the pattern is invalid.
    """
    return PatternMatcher(pattern)


def pattern_matches(pattern: str, number: str) -> bool:
    """
    One-off match of a number against a pattern.

    @param pattern: see L{validate_pattern}.
    @param number: E.164 digits.
    @return: whether the whole number matches.
    @raise ModelError: if the pattern is invalid.
    """
    return PatternMatcher(pattern).matches(number)
