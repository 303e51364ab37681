"""
L{TimerWheel}: many timers on one delayed call of an injected clock.

The SIP transaction layer runs several timers per transaction (RFC 3261
timers E, F, J, K...) and thousands of transactions at once: one
C{callLater} each costs a Twisted C{DelayedCall} object and the reactor's
heap, whose comparisons are Python methods.  Here the timers of one delay
(every timer J is 32 s, every timer K 5 s) sit in one FIFO queue, in the
order they fire, so scheduling is an append and firing a pop; one delayed
call of the clock is armed for the earliest head of the queues.  There are
as many queues as distinct delays, a handful (T1 doubled up to T2, 64*T1,
T4, the 100 Trying delay).

Timers fire at their exact deadline, never early, so tests drive them with
C{task.Clock} as they would C{callLater}; when no timer is left pending the
delayed call is cancelled, leaving the clock empty.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

__all__ = ["Timer", "TimerWheel"]


class Timer:
    """
    One scheduled call; L{active} and L{cancel} as an C{IDelayedCall}.

    @ivar deadline: when it fires, in clock seconds.
    """

    __slots__ = ("deadline", "_fn", "_args", "_wheel")

    def __init__(self, deadline: float, fn: Callable[..., Any], args: tuple,
                 wheel: TimerWheel) -> None:
        self.deadline = deadline
        self._fn: Callable[..., Any] | None = fn
        self._args = args
        self._wheel = wheel

    def active(self) -> bool:
        """
        @return: whether it has neither fired nor been cancelled.
        """
        return self._fn is not None

    def cancel(self) -> None:
        """
        Do not fire (nothing happens if it already fired or was cancelled).
        """
        if self._fn is not None:
            self._fn = None
            self._args = ()
            self._wheel._forget()


class TimerWheel:
    """
    Timers grouped by delay, on one delayed call of the clock.

    @ivar pending: the number of timers neither fired nor cancelled.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        """
        @param clock: the reactor's time (C{seconds}, C{callLater}).
        """
        self._clock = clock
        self._queues: dict[float, deque[Timer]] = {}
        self._call: IDelayedCall | None = None
        self._armed_for: float | None = None
        self._running = False
        self.pending = 0

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Timer:
        """
        Call C{fn(*args)} in C{delay} seconds.

        @param delay: seconds from now (at least 0).
        @param fn: what to call; an exception it raises is logged.
        @param args: its arguments.
        @return: the L{Timer}, to cancel it.
        """
        delay = max(0.0, float(delay))
        deadline = self._clock.seconds() + delay
        timer = Timer(deadline, fn, args, self)
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = deque()
        queue.append(timer)
        self.pending += 1
        if not self._running and (self._armed_for is None or deadline < self._armed_for):
            self._arm(deadline)
        return timer

    def _forget(self) -> None:
        """A timer was cancelled: when none is left, leave the clock alone."""
        self.pending -= 1
        if self.pending == 0 and not self._running:
            self._queues.clear()
            self._disarm()

    def _arm(self, when: float) -> None:
        self._disarm()
        self._armed_for = when
        self._call = self._clock.callLater(max(0.0, when - self._clock.seconds()), self._run)

    def _disarm(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._armed_for = None

    def _earliest(self) -> tuple[deque[Timer], Timer] | None:
        """The live timer that fires first and its queue, dropping
        cancelled heads and empty queues."""
        best = None
        for delay, queue in list(self._queues.items()):
            while queue and queue[0]._fn is None:
                queue.popleft()
            if not queue:
                del self._queues[delay]
            elif best is None or queue[0].deadline < best[1].deadline:
                best = (queue, queue[0])
        return best

    def _run(self) -> None:
        self._call = None
        self._armed_for = None
        self._running = True
        try:
            now = self._clock.seconds()
            while True:
                found = self._earliest()
                if found is None or found[1].deadline > now:
                    break
                queue, timer = found
                queue.popleft()
                fn, args = timer._fn, timer._args
                timer._fn, timer._args = None, ()
                self.pending -= 1
                try:
                    fn(*args)  # type: ignore[misc]
                except Exception:
                    # Broad: one timer's bug must not stop the wheel.
                    self.log.failure("timer {fn} failed", fn=fn)
        finally:
            self._running = False
        found = self._earliest()
        if found is not None:
            self._arm(found[1].deadline)

    def stop(self) -> None:
        """
        Cancel every timer.
        """
        for queue in self._queues.values():
            for timer in queue:
                timer._fn, timer._args = None, ()
        self._queues.clear()
        self.pending = 0
        self._disarm()
