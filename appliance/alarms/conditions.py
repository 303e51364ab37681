# -*- test-case-name: tests.alarms.test_conditions -*-
"""
The conditions that raise the node's alarms (pure): what the services
read out at one check (L{Readings}) and the thresholds give the alarms
that hold now.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from appliance.alarms.table import ALARMS

ASP_ACTIVE = "ASP-ACTIVE"


@dataclass(frozen=True)
class Readings:
    """
    What the services show at one check.

    @ivar associations: C{(name, asp_state)} of each M3UA association, or
        C{None} on a node without SIGTRAN.
    @ivar connections: C{(name, bound_binds)} of each outbound SMPP
        connection, or C{None} without the connection pool.
    @ivar waiting: messages waiting for delivery, or C{None}.
    @ivar timeouts: HLR/MSC timeouts since the node started (a counter).
    @ivar commit_ms: the slowest batched commit since the last check, in
        milliseconds (0 if none).
    """
    associations: tuple | None = None
    connections: tuple | None = None
    waiting: int | None = None
    timeouts: int = 0
    commit_ms: float = 0.0


@dataclass
class Conditions:
    """
    Evaluates L{Readings} against thresholds; remembers the last timeout
    counter so that the alarm is about the interval, not the lifetime.
    """
    last_timeouts: int | None = None
    alarms: tuple = field(default=tuple(ALARMS))

    def evaluate(self, r: Readings, threshold) -> dict:
        """
        @param r: this check's readings.
        @param threshold: C{threshold(name) -> int}.
        @return: C{(alarm, resource)} to C{(severity, text)} of every
            alarm that holds.
        """
        out = {}

        def hold(alarm, resource, text):
            out[(alarm, resource)] = (ALARMS[alarm].severity, text)

        if r.associations:
            for name, state in r.associations:
                if state != ASP_ACTIVE:
                    hold("m3ua-association-down", name,
                         f"M3UA association {name} is {state}")
            if not any(s == ASP_ACTIVE for _, s in r.associations):
                hold("m3ua-no-asp-active", "node",
                     f"none of {len(r.associations)} M3UA associations "
                     "is ASP-ACTIVE")
        for name, up in r.connections or ():
            if up == 0:
                hold("smpp-connection-down", name,
                     f"SMPP connection {name} has no bound bind")
        if self.last_timeouts is not None:
            n = r.timeouts - self.last_timeouts
            limit = threshold("hlr-timeouts")
            if n > limit:
                hold("hlr-timeouts", "node",
                     f"{n} HLR/MSC timeouts in the last interval "
                     f"(threshold {limit})")
        self.last_timeouts = r.timeouts
        if r.waiting is not None and r.waiting > threshold("queue"):
            hold("queue-high", "node",
                 f"{r.waiting} messages waiting (threshold "
                 f"{threshold('queue')})")
        if r.commit_ms > threshold("commit-latency"):
            hold("commit-latency", "node",
                 f"a batched commit took {r.commit_ms:.0f} ms (threshold "
                 f"{threshold('commit-latency')} ms)")
        return out
