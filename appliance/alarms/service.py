# -*- test-case-name: tests.alarms.test_service -*-
"""
The alarm service: every check interval it reads what the other services
show (L{Readers}, handed to it by C{appliance/application.py}), evaluates
the conditions, updates the alarm table, logs each change and hands it to
the listeners (the SNMP trap sender).  It also applies the node-wide
settings of C{root["alarms"]} when they change: the log levels per
component (to the node's L{appliance.logs.LevelFilter}, at once) and the
thresholds and SNMP managers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import task
from twisted.logger import Logger

from appliance.alarms.conditions import Conditions, Readings
from appliance.alarms.model import KEY, THRESHOLDS
from appliance.alarms.snmp import TrapSender
from appliance.alarms.table import ALARMS, AlarmEvent, AlarmTable

#: Seconds between checks.
CHECK_INTERVAL = 5.0


@dataclass(frozen=True)
class ManagerSettings:
    """An immutable copy of an L{appliance.alarms.model.SNMPManager}."""
    name: str
    address: str
    port: int
    community: str
    user: str
    auth_protocol: str
    auth_key: str
    priv_protocol: str
    priv_key: str

    @classmethod
    def of(cls, m: Any) -> "ManagerSettings":
        """@return: the settings of persistent manager C{m}."""
        return cls(m.name, m.address, m.port, m.community, m.user,
                   m.auth_protocol, m.auth_key, m.priv_protocol,
                   m.priv_key)


@dataclass
class Readers:
    """
    How the alarm service reads the other services; each is a callable
    returning what L{Readings} holds, or C{None} when absent.
    """
    associations: Callable[[], Any] | None = None
    connections: Callable[[], Any] | None = None
    waiting: Callable[[], Any] | None = None
    timeouts: Callable[[], int] | None = None


class AlarmService(Service):
    """
    @ivar table: the L{AlarmTable}.
    @ivar sender: the L{TrapSender}.
    """
    log = Logger()

    def __init__(self, storage: Any, reactor: Any,
                 readers: Readers | None = None, log_filter: Any = None,
                 interval: float | None = None, history: int = 1000,
                 udp_interface: str = ""):
        """
        @param storage: the node's storage (C{root["alarms"]}).
        @param reactor: the clock checks run on and the UDP port's reactor.
        @param readers: the services' readings.
        @param log_filter: the node's L{appliance.logs.LevelFilter}, or
            C{None}.
        @param interval: seconds between checks (default: the database's
            C{alarm check-interval}).
        """
        self.storage = storage
        self.reactor = reactor
        #: Whether C{alarm check-interval} decides (not C{interval}).
        self.use_settings_interval = interval is None
        self.readers = readers or Readers()
        self.log_filter = log_filter
        self.interval = CHECK_INTERVAL if interval is None else interval
        self.table = AlarmTable(history)
        self.conditions = Conditions()
        self.listeners: list[Callable[[AlarmEvent], Any]] = []
        self.thresholds = {name: d for name, (d, _) in THRESHOLDS.items()}
        self._managers: list[ManagerSettings] = []
        self._commit_max = 0.0
        self.sender = TrapSender(lambda: self._managers, reactor, b"")
        self.listeners.append(self.sender.alarm)
        self.udp_interface = udp_interface
        self._loop: task.LoopingCall | None = None
        self._port = None
        self.counts = {"raised": 0, "cleared": 0}

    # settings ---------------------------------------------------------

    def _settings(self) -> Any:
        return self.storage.domain_get(KEY)

    def apply(self, note: str = "") -> None:
        """Apply the log levels, thresholds and managers of the database."""
        obj = self._settings()
        if obj is None:
            return
        self.thresholds = {name: obj.threshold(name) for name in THRESHOLDS}
        self.sender.engine_id = bytes.fromhex(obj.engine_id)
        if self.use_settings_interval and obj.check_interval != self.interval:
            self.interval = obj.check_interval
            if self._loop is not None and self._loop.running:
                self._loop.stop()
                self._loop.start(self.interval, now=False)
        self._managers = [ManagerSettings.of(m)
                          for m in obj.managers.values() if m.address]
        if self.log_filter is not None:
            try:
                self.log_filter.set_levels(dict(obj.log_levels))
            except KeyError:
                self.log.failure("bad log levels {levels}",
                                 levels=obj.log_levels)

    def observe_commit(self, size: int, seconds: float) -> None:
        """A batched commit of C{size} writes took C{seconds} (the
        storage's C{batch_observer})."""
        self._commit_max = max(self._commit_max, seconds * 1000.0)

    # life -------------------------------------------------------------

    def startService(self) -> None:
        """Apply the settings, open the trap port, check periodically."""
        super().startService()
        self.apply()
        self.storage.add_change_listener(self.apply)
        if hasattr(self.reactor, "listenUDP"):
            self._port = self.reactor.listenUDP(0, self.sender,
                                                interface=self.udp_interface)
        self._loop = task.LoopingCall(self.check)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def stopService(self) -> Any:
        """Stop checking and close the trap port."""
        super().stopService()
        try:
            self.storage.remove_change_listener(self.apply)
        except ValueError:
            pass
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        port, self._port = self._port, None
        if port is not None:
            return port.stopListening()
        return None

    # checks -----------------------------------------------------------

    def readings(self) -> Readings:
        """@return: what the services show now."""
        r = self.readers

        def read(f, default=None):
            if f is None:
                return default
            try:
                return f()
            except Exception:
                # Broad: a reader is another service's callback; a bug in
                # one must not stop the checks of the others.
                self.log.failure("alarm reading {f!r} failed", f=f)
                return default
        commit, self._commit_max = self._commit_max, 0.0
        assoc = read(r.associations)
        conns = read(r.connections)
        return Readings(associations=tuple(assoc) if assoc is not None
                        else None,
                        connections=tuple(conns) if conns is not None
                        else None,
                        waiting=read(r.waiting),
                        timeouts=read(r.timeouts, 0) or 0,
                        commit_ms=commit)

    def check(self) -> list[AlarmEvent]:
        """Evaluate the conditions now; raise and clear what changed.

        @return: the changes."""
        conditions = self.conditions.evaluate(self.readings(),
                                              self.thresholds.__getitem__)
        events = self.table.update(ALARMS, conditions,
                                   self.reactor.seconds())
        for e in events:
            self.emit(e)
        return events

    def emit(self, event: AlarmEvent) -> None:
        """Log C{event} and hand it to the listeners."""
        if event.severity == "cleared":
            self.counts["cleared"] += 1
            self.log.info("alarm {alarm} on {resource} cleared",
                          alarm=event.alarm, resource=event.resource)
        else:
            self.counts["raised"] += 1
            self.log.warn("alarm {alarm} on {resource} {severity}: {text}",
                          alarm=event.alarm, resource=event.resource,
                          severity=event.severity, text=event.text)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                # Broad: a listener (SNMP traps, the shell) is a callback;
                # the other listeners still get the event.
                self.log.failure("alarm listener {l!r} failed", l=listener)

    # shell ------------------------------------------------------------

    def statistics(self) -> dict[str, int]:
        """Counters for C{show statistics}."""
        return {"active": len(self.table.active()),
                "raised": self.counts["raised"],
                "cleared": self.counts["cleared"],
                "traps_sent": self.sender.sent,
                "traps_failed": self.sender.failed}

    def shell_table(self, topic: str) -> tuple[tuple[str, ...], list]:
        """
        @param topic: C{active} or C{history}.
        @return: (headers, rows) for C{show alarms}.
        @raise KeyError: another topic.
        """
        def stamp(t):
            return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        if topic == "active":
            return (("Severity", "Alarm", "Resource", "Since", "Text"),
                    [(e.severity, e.alarm, e.resource, stamp(e.since),
                      e.text) for e in self.table.active()])
        if topic == "history":
            return (("Time", "Severity", "Alarm", "Resource", "Text"),
                    [(stamp(e.at), e.severity, e.alarm, e.resource, e.text)
                     for e in reversed(self.table.history)])
        raise KeyError(topic)
