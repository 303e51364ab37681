# -*- test-case-name: tests.notify.test_texts -*-
"""
The notification texts: templates per service (C{who-called},
C{notify-me}) and language, with the fields C{{caller}}, C{{called}},
C{{time}}, C{{count}}, C{{reason}}, and the coding the content needs
(GSM 7 when every character has one, else UCS-2).  Pure.
"""
from __future__ import annotations

import time as _time
from string import Formatter

from appliance.sms.text import TextCodingError, gsm7_encode

KINDS = ("who-called", "notify-me")
FIELDS = ("caller", "called", "time", "count", "reason")
INCLUDES = ("time", "reason", "count")

#: The texts used when the operator configured none.
DEFAULTS = {
    "who-called": "Missed call from {caller}",
    "notify-me": "{called} can be reached again",
}
#: What each included item appends to a default text.
_SUFFIX = {"time": " at {time}", "count": " ({count} calls)",
           "reason": " ({reason})"}
REASONS = {"busy": "busy", "unreachable": "not reachable",
           "no-reply": "no answer"}


class TemplateError(ValueError):
    """A template names an unknown field or does not parse."""


def check(text: str) -> None:
    """
    @raise TemplateError: if C{text} names a field other than L{FIELDS}.
    """
    try:
        names = [f for _, f, _, _ in Formatter().parse(text) if f is not None]
    except ValueError as e:
        raise TemplateError(str(e)) from None
    for name in names:
        if name not in FIELDS:
            raise TemplateError(f"unknown field {{{name}}}: use "
                                + ", ".join("{%s}" % f for f in FIELDS))


def render(kind: str, templates: dict, language: str, include: frozenset,
           *, caller: str, called: str, at: float, count: int,
           reason: str) -> str:
    """
    The text of one notification.

    @param templates: C{(kind, language)} to text; C{(kind, "")} is the
        one without a language.
    @param include: the items of C{include} configured: when the default
        text is used, each adds its suffix; a configured template places
        them itself.
    """
    text = templates.get((kind, language)) or templates.get((kind, ""))
    if text is None:
        text = DEFAULTS[kind]
        if kind == "who-called":
            text += "".join(_SUFFIX[i] for i in INCLUDES if i in include)
    stamp = _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(at))
    return text.format(caller=caller, called=called, time=stamp,
                       count=count, reason=REASONS.get(reason, reason))


def coding(text: str) -> str:
    """@return: C{gsm7} if every character has a GSM 7 code, else C{ucs2}."""
    try:
        gsm7_encode(text)
    except (TextCodingError, ValueError):
        return "ucs2"
    return "gsm7"
