# -*- test-case-name: tests.alarms.test_table -*-
"""
The alarm table (pure): active alarms keyed by C{(alarm, resource)}, each
change an L{AlarmEvent}, the last changes kept in a bounded history.
"""
from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Iterable

#: The severities, most severe first; C{cleared} ends an alarm.
SEVERITIES = ("critical", "major", "minor", "warning", "cleared")


@dataclass(frozen=True)
class Alarm:
    """
    One kind of alarm the node raises.

    @ivar name: its id in the shell and in traps (C{m3ua-no-asp-active}).
    @ivar number: its number in the MIB (C{alarmNumber}).
    @ivar severity: the severity it is raised with.
    @ivar meaning: what it says, for the operations guide.
    """
    name: str
    number: int
    severity: str
    meaning: str


#: Every alarm of the node, by name.
ALARMS = {a.name: a for a in (
    Alarm("m3ua-association-down", 1, "major",
          "an M3UA association is not ASP-ACTIVE"),
    Alarm("m3ua-no-asp-active", 2, "critical",
          "no M3UA association is ASP-ACTIVE: no SS7 traffic"),
    Alarm("smpp-connection-down", 3, "major",
          "an outbound SMPP connection has no bound bind"),
    Alarm("hlr-timeouts", 4, "minor",
          "HLR/MSC timeouts in a check interval above the threshold"),
    Alarm("queue-high", 5, "major",
          "messages waiting for delivery above the threshold"),
    Alarm("commit-latency", 6, "warning",
          "the slowest batched commit of a check interval above the "
          "threshold"),
)}


@dataclass(frozen=True)
class AlarmEvent:
    """
    An alarm raised, changed or cleared.

    @ivar alarm: the alarm's name (a key of L{ALARMS}).
    @ivar resource: what it is about (an association, a connection, C{node}).
    @ivar severity: one of L{SEVERITIES}.
    @ivar text: a human-readable line.
    @ivar at: POSIX time of the change.
    @ivar since: POSIX time the alarm was raised.
    """
    alarm: str
    resource: str
    severity: str
    text: str
    at: float
    since: float

    @property
    def number(self) -> int:
        """@return: the alarm's number in the MIB."""
        return ALARMS[self.alarm].number


class AlarmTable:
    """
    Active alarms and the last changes.

    @ivar history: the last changes, oldest first, at most C{limit}.
    """

    def __init__(self, limit: int = 1000):
        self._active: dict[tuple[str, str], AlarmEvent] = {}
        self.history: collections.deque = collections.deque(maxlen=limit)

    def raise_alarm(self, alarm: str, resource: str, severity: str,
                    text: str, at: float) -> AlarmEvent | None:
        """
        Raise C{alarm} on C{resource} (or change its severity or text).

        @return: the change, or C{None} if the alarm was already so.
        @raise ValueError: an unknown alarm or severity.
        """
        if alarm not in ALARMS or severity not in SEVERITIES[:-1]:
            raise ValueError(f"no alarm {alarm!r} of severity {severity!r}")
        key = (alarm, resource)
        was = self._active.get(key)
        if was is not None and (was.severity, was.text) == (severity, text):
            return None
        event = AlarmEvent(alarm, resource, severity, text, at,
                           was.since if was is not None else at)
        self._active[key] = event
        self.history.append(event)
        return event

    def clear(self, alarm: str, resource: str, text: str,
              at: float) -> AlarmEvent | None:
        """
        Clear C{alarm} on C{resource}.

        @return: the C{cleared} change, or C{None} if it was not active.
        """
        was = self._active.pop((alarm, resource), None)
        if was is None:
            return None
        event = AlarmEvent(alarm, resource, "cleared", text, at, was.since)
        self.history.append(event)
        return event

    def active(self) -> list[AlarmEvent]:
        """@return: the active alarms, most severe first, then oldest."""
        return sorted(self._active.values(),
                      key=lambda e: (SEVERITIES.index(e.severity), e.since,
                                     e.alarm, e.resource))

    def update(self, alarms: Iterable[str],
               conditions: dict[tuple[str, str], tuple[str, str]],
               at: float) -> list[AlarmEvent]:
        """
        Bring the alarms named in C{alarms} in line with C{conditions}:
        raise what is there, clear the active ones that are not.

        @param alarms: the alarms the caller evaluated.
        @param conditions: C{(alarm, resource)} to C{(severity, text)}.
        @return: the changes, in order.
        """
        events = []
        for (alarm, resource), (severity, text) in sorted(conditions.items()):
            e = self.raise_alarm(alarm, resource, severity, text, at)
            if e is not None:
                events.append(e)
        owned = set(alarms)
        for key in sorted(self._active):
            if key[0] in owned and key not in conditions:
                events.append(self.clear(key[0], key[1], "condition ended",
                                         at))
        return events
