# -*- test-case-name: tests.test_admission -*-
"""
Node-wide admission: whether the node takes new work now, and what it
refused.

A message a listener admits costs a share of the one reactor thread and
of the storage's batched commits.  When the storage has more writes
queued than one batch can carry, or the reactor runs late, new work only
waits behind old work: the listeners then refuse at the door (SMPP
C{ESME_RTHROTTLED}, HTTP 503 with C{Retry-After}) before decoding the
rest, so what is admitted keeps a bounded latency and the node recovers
as soon as the load drops.

  - L{Admission.overloaded} is called once per request and costs a
    length and a comparison;
  - the reactor's lag is sampled by a delayed call re-armed each time:
    how late it ran against when it was due;
  - L{Refusals} counts every refusal by listener and reason, adds them to
    C{/metrics} (C{appliance_refused_total}) and logs them at warning at
    most once a second per listener, with the counts of that second.

The wiring (C{appliance.application}) makes one L{Admission} and hands
it to the listeners; protocols import nothing from here.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: Listener names used in the refusal counts.
LISTENERS = ("smpp", "http", "sip")


class Refusals:
    """
    Counts refusals and reports them: a warning per listener at most once
    a second (the counts of that second, by reason), and the totals.

    @ivar totals: C{(listener, reason)} to refusals since start.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, metrics: Any = None,
                 interval: float = 1.0) -> None:
        """
        @param metrics: the node's L{appliance.metrics.Metrics} (its
            C{refused} counter), or C{None}.
        @param interval: seconds between two warnings of one listener.
        """
        self.clock = clock
        self.metrics = metrics
        self.interval = interval
        self.totals: dict[tuple[str, str], int] = {}
        self._window: dict[str, dict[str, int]] = {}
        self._flush: dict[str, IDelayedCall] = {}

    def refused(self, listener: str, reason: str, n: int = 1) -> None:
        """
        Count C{n} refusals; the first of a second schedules the warning
        that reports that second.

        @param listener: C{smpp}, C{http}, C{sip}.
        @param reason: why (C{storage}, C{lag}, C{window}, C{throughput},
            C{queue}, C{node in flight}, C{tenant in flight}...).
        """
        key = (listener, reason)
        self.totals[key] = self.totals.get(key, 0) + n
        window = self._window.setdefault(listener, {})
        window[reason] = window.get(reason, 0) + n
        if self.metrics is not None:
            self.metrics.refused.labels(listener, reason).inc(n)
        if listener not in self._flush:
            self._flush[listener] = self.clock.callLater(
                self.interval, self._report, listener)

    def _report(self, listener: str) -> None:
        self._flush.pop(listener, None)
        window = self._window.pop(listener, {})
        if not window:
            return
        total = sum(window.values())
        reasons = ", ".join(f"{reason} {n}" for reason, n in
                            sorted(window.items()))
        self.log.warn("{listener} overload: {total} refused in the last "
                      "{interval:g} s ({reasons})", listener=listener,
                      total=total, interval=self.interval, reasons=reasons)

    def stop(self) -> None:
        """Report what is counted now and leave no timer behind."""
        for listener, call in list(self._flush.items()):
            if call.active():
                call.cancel()
            self._report(listener)
        self._flush.clear()

    def count(self, listener: str | None = None) -> int:
        """@return: refusals since start (of one listener, or all)."""
        return sum(n for (name, _), n in self.totals.items()
                   if listener is None or name == listener)


class Admission(Service):
    """
    Whether the node admits new work now: refused while the storage has
    more writes waiting for a commit than it committed in the last
    C{max_delay} seconds (at least C{min_pending}, at most
    C{max_pending}): what is admitted then waits at most about
    C{max_delay} for its commit; or while the reactor runs more than
    C{max_lag} seconds late with the process itself busy.  The node's
    thresholds come from the node file's C{[overload]} section
    (L{appliance.config.OverloadSection}); the defaults here are its.

    @ivar lag: the reactor's lateness at the last sample, seconds.
    @ivar refusals: the node's L{Refusals}.
    """

    name = "admission"
    log = Logger()

    def __init__(self, clock: IReactorTime, pending: Callable[[], int],
                 max_delay: float = 1.0, min_pending: int = 2000,
                 max_pending: int = 20000, max_lag: float = 0.5,
                 interval: float = 0.05, metrics: Any = None,
                 cpu: Callable[[], float] = time.process_time) -> None:
        """
        @param clock: the reactor.
        @param pending: returns the storage's writes not yet committed
            (C{Storage.pending}).
        @param max_delay: seconds of commits the queued writes may hold.
        @param min_pending: writes always allowed to wait (a quiet node
            has no commit rate yet): more than the windows of the binds a
            node takes at once (40 binds of 50), so a burst within the
            peers' windows is never refused.
        @param max_pending: writes never exceeded.
        @param max_lag: reactor lateness beyond which new work is refused,
            when the process itself was busy meanwhile (at least half a
            core: a box starved by other processes is not helped by
            refusing).
        @param cpu: the process's CPU seconds (C{time.process_time}).
        @param interval: seconds between lag samples.
        @param metrics: the node's metrics (refusal counts, lag gauge).
        """
        self.clock = clock
        self.pending = pending
        self.max_delay = max_delay
        self.min_pending = min_pending
        self.max_pending = max_pending
        #: (time, writes) of the commits of the last second.
        self._commits: deque = deque()
        self._committed = 0
        self.max_lag = max_lag
        self.interval = interval
        self.lag = 0.0
        #: CPU the process used between the last two samples, per second.
        self.busy = 0.0
        self.cpu = cpu
        self._cpu = cpu()
        self._stamp = clock.seconds()
        self.refusals = Refusals(clock, metrics)
        self._due = 0.0
        self._sampler: IDelayedCall | None = None
        if metrics is not None:
            metrics.gauge("appliance_reactor_lag_seconds", "How late the "
                          "reactor ran a timer at the last sample", (),
                          lambda: [((), self.lag)])

    def startService(self) -> None:
        """Start sampling the reactor's lag."""
        super().startService()
        self._arm()

    def stopService(self) -> None:
        """Stop sampling; report the refusals counted."""
        super().stopService()
        if self._sampler is not None and self._sampler.active():
            self._sampler.cancel()
        self._sampler = None
        self.refusals.stop()

    def _arm(self) -> None:
        self._due = self.clock.seconds() + self.interval
        self._sampler = self.clock.callLater(self.interval, self._sample)

    def _sample(self) -> None:
        now, cpu = self.clock.seconds(), self.cpu()
        self.lag = max(0.0, now - self._due)
        self.busy = (cpu - self._cpu) / max(now - self._stamp, 1e-9)
        self._cpu, self._stamp = cpu, now
        self._arm()

    def committed(self, size: int) -> None:
        """The storage committed a batch of C{size} writes (its batch
        observer, chained by the wiring)."""
        now = self.clock.seconds()
        self._commits.append((now, size))
        self._committed += size
        self._trim(now)

    def _trim(self, now: float) -> None:
        commits = self._commits
        while commits and commits[0][0] < now - 1.0:
            self._committed -= commits.popleft()[1]

    def pending_limit(self) -> int:
        """@return: the writes allowed to wait now: the last second's
        commit rate times C{max_delay}, within the floor and the cap."""
        self._trim(self.clock.seconds())
        return int(min(self.max_pending, max(
            self.min_pending, self._committed * self.max_delay)))

    def overloaded(self) -> str | None:
        """
        @return: why new work is refused now (C{storage}, C{lag}), or
            C{None} when it is admitted.
        """
        pending = self.pending()
        if pending > self.min_pending and pending > self.pending_limit():
            return "storage"
        if self.lag > self.max_lag and self.busy >= 0.5:
            return "lag"
        return None

    def refused(self, listener: str, reason: str, n: int = 1) -> None:
        """Count a refusal (see L{Refusals.refused})."""
        self.refusals.refused(listener, reason, n)
