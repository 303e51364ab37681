# -*- test-case-name: tests.test_logs -*-
"""
The node's log output: four levels (error, warning, info, debug), one line
per event on standard output, with the component's namespace.

On a terminal (C{make run}) a line reads
C{2026-11-23T12:00:00Z info [appliance.store.database] database closed}.
Under systemd (C{JOURNAL_STREAM} is set), the line instead starts with the
syslog priority the journal reads, C{<6>[appliance.store.database] ...},
and no timestamp, since the journal keeps its own.
"""
from __future__ import annotations

import os
import sys
import time
import weakref
from typing import IO, Callable

from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

#: Our four levels to Twisted's; Twisted's critical is shown as error.
LEVELS = {"error": LogLevel.error, "warning": LogLevel.warn,
          "info": LogLevel.info, "debug": LogLevel.debug}
_NAMES = {LogLevel.critical: "error", LogLevel.error: "error",
          LogLevel.warn: "warning", LogLevel.info: "info",
          LogLevel.debug: "debug"}
_SYSLOG = {"error": 3, "warning": 4, "info": 6, "debug": 7}


def format_line(event: dict, journald: bool = False) -> str | None:
    """
    One log event as one line (tracebacks follow on further lines).

    @param journald: prefix the syslog priority instead of a timestamp.
    @return: the text, or C{None} if the event has nothing to say.
    """
    text = formatEvent(event)
    failure = event.get("log_failure")
    if failure is not None:
        text = f"{text}\n{failure.getTraceback()}".rstrip()
    if not text:
        return None
    level = _NAMES.get(event.get("log_level", LogLevel.info), "info")
    namespace = event.get("log_namespace", "-")
    if journald:
        return "\n".join(f"<{_SYSLOG[level]}>[{namespace}] {line}"
                         for line in text.splitlines())
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                          time.gmtime(event.get("log_time", time.time())))
    return f"{stamp} {level} [{namespace}] {text}"


@implementer(ILogObserver)
class LineObserver:
    """Writes each event as L{format_line} does, flushing after each."""

    def __init__(self, out: IO[str], journald: bool = False):
        self._out = out
        self._journald = journald

    def __call__(self, event: dict) -> None:
        line = format_line(event, self._journald)
        if line is not None:
            self._out.write(line + "\n")
            self._out.flush()


#: The components C{logging level COMPONENT LEVEL} names, to the
#: namespaces (prefixes of C{log_namespace}) whose events they cover.
COMPONENTS = {
    "smpp": ("appliance.smpp",),
    "sip": ("appliance.sip",),
    "http": ("appliance.http",),
    "m3ua": ("appliance.sigtran.m3ua", "appliance.sigtran.asp",
             "appliance.sigtran.mtp", "appliance.sigtran.transport",
             "appliance.sigtran.service"),
    "sccp": ("appliance.sigtran.sccp",),
    "tcap": ("appliance.sigtran.tcap",),
    "map": ("appliance.sigtran.map", "appliance.sigtran.smsc"),
    "isup": ("appliance.sigtran.isup",),
    "notification": ("appliance.notify",),
    "messaging": ("appliance.messaging",),
    "billing": ("appliance.billing",),
    "storage": ("appliance.store",),
    "shell": ("appliance.shell",),
    "alarms": ("appliance.alarms",),
    "all": (),
}


@implementer(ILogObserver)
class LevelFilter:
    """
    Passes an event on when its level is at least the level set for its
    namespace: the longest configured prefix of C{log_namespace} wins,
    else the default.  The shell changes the levels while the node runs
    (L{set_levels}); nothing is restarted.

    @ivar default: the level of namespaces no component covers.
    """

    def __init__(self, sink: ILogObserver, default: str = "info"):
        self._sink = sink
        self.default = LEVELS[default]
        self._start = self.default
        self._prefixes: list[tuple[str, LogLevel]] = []
        _FILTERS[:] = [r for r in _FILTERS if r() is not None] + [weakref.ref(self)]

    def set_levels(self, levels: dict[str, str]) -> None:
        """
        Replace the per-component levels.

        @param levels: component (a key of L{COMPONENTS}) to level name;
            C{all} sets the default, components absent keep the level the
            node started with.
        @raise KeyError: an unknown component or level.
        """
        prefixes = []
        default = self._start
        for component, level in levels.items():
            value = LEVELS[level]
            if component == "all":
                default = value
                continue
            for prefix in COMPONENTS[component]:
                prefixes.append((prefix, value))
        prefixes.sort(key=lambda p: len(p[0]), reverse=True)
        self._prefixes = prefixes
        self.default = default

    def level_of(self, namespace: str) -> LogLevel:
        """@return: the least severe level shown for C{namespace}."""
        for prefix, level in self._prefixes:
            if namespace == prefix or namespace.startswith(prefix + "."):
                return level
        return self.default

    def __call__(self, event: dict) -> None:
        level = event.get("log_level", LogLevel.info)
        namespace = event.get("log_namespace", "")
        if level >= self.level_of(namespace):
            self._sink(event)


#: The level filters of this process (the node's), for L{shows}: weak
#: references (a WeakSet's iteration guard cost 1.4 % of the node's
#: samples under REGISTER load).
_FILTERS: "list[weakref.ref[LevelFilter]]" = []


def shows(namespace: str, level: LogLevel) -> bool:
    """
    Whether an event would get through the node's level filter: for a
    hot path to skip building a debug event nobody sees (an event
    filtered out still costs its dict and the publisher's walk).

    @param namespace: the event's C{log_namespace}.
    @param level: its level.
    @return: whether some L{LevelFilter} of this process passes it on;
        C{True} when there is none (tests, tools: every event is seen).
    """
    found = False
    for ref in _FILTERS:
        f = ref()
        if f is None:
            continue
        found = True
        if level >= f.level_of(namespace):
            return True
    return not found


def observer(level: str = "info", out: IO[str] | None = None,
             environ: dict | None = None) -> LevelFilter:
    """
    The node's log observer.

    @param level: the least severe level shown (C{error}, C{warning},
        C{info}, C{debug}).
    @param out: where lines go (standard output by default).
    @param environ: the environment, to detect the systemd journal.
    """
    environ = os.environ if environ is None else environ
    sink = LineObserver(out or sys.stdout,
                        journald="JOURNAL_STREAM" in environ)
    return LevelFilter(sink, level)
