"""
Overload at the door (issue 16 item 4): L{LoadShedder} decides whether a
new SIP request is taken or answered C{503 Service Unavailable} with
C{Retry-After} at once, before any digest, registrar or storage work.

A request is refused when the node is over capacity by any of four
measures: a per-second budget of new requests (C{[sip]
max_requests_per_second}, off by default); how long the datagram waited
in the kernel's receive queue (when datagrams come faster than they are
handled, each waits longer than SIP's retransmission timer T1 and the
peer has already sent it again: answering it is wasted work); the
reactor's lag (how late a 0.1 s probe runs, smoothed); and the depth of
the storage's pending batch (writes queued and not yet committed).  Refusals are counted and
logged at warning at most once a second, never silent; datagrams the
kernel dropped on a full receive buffer (C{/proc/net/udp}) are counted and
logged the same way.  Retransmissions of requests already taken, ACKs and
responses always pass: they finish work already paid for.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

__all__ = ["LoadShedder", "udp_drops"]

#: Seconds between two probes of the reactor's lag.
PROBE_INTERVAL = 0.1
#: Weight of the newest lag sample in the smoothed lag.
SMOOTHING = 0.3


def udp_drops(inodes: set[int], tables: tuple[str, ...] = ("/proc/net/udp", "/proc/net/udp6")
              ) -> int:
    """
    Datagrams the kernel dropped on the given sockets (receive buffer full),
    from the last column of C{/proc/net/udp} and C{udp6}.

    @param inodes: the sockets' inode numbers (C{os.fstat(fd).st_ino}).
    @param tables: the files to read.
    @return: the sum of their drop counters (0 when unreadable).
    """
    total = 0
    for path in tables:
        try:
            with open(path) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 12 and int(fields[9]) in inodes:
                        total += int(fields[-1])
        except (OSError, ValueError):
            continue
    return total


def socket_inode(port: Any) -> int | None:
    """
    @param port: a listening Twisted port.
    @return: the inode of its socket, or C{None} (not a real socket).
    """
    try:
        return os.fstat(port.fileno()).st_ino
    except (AttributeError, OSError):  # no fileno (a fake), or closed
        return None


class LoadShedder:
    """
    Admission of new SIP requests, and the count of what was dropped.

    @ivar refused: new requests answered 503, by reason (C{budget},
        C{queue}, C{lag}, C{backlog}).
    @ivar queue_delay: how long the datagram being handled waited in the
        kernel (0 for TCP and between datagrams).
    @ivar kernel_drops: datagrams the kernel dropped on our UDP sockets
        since the service started.
    @ivar lag: the smoothed lag of the reactor, seconds.
    @ivar retry_after: the C{Retry-After} of our 503s, seconds.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime, max_rate: int = 0, max_lag: float = 0.0,
                 backlog: Callable[[], int] | None = None, max_backlog: int = 0,
                 retry_after: int = 5,
                 drops: Callable[[], int] | None = None, max_queue: float = 0.0) -> None:
        """
        @param clock: the reactor's time.
        @param max_rate: new requests taken per second (0: no budget).
        @param max_lag: smoothed reactor lag in seconds beyond which new
            requests are refused (0: not measured).
        @param backlog: the storage's queued writes now.
        @param max_backlog: queued writes beyond which new requests are
            refused (0: not looked at).
        @param retry_after: seconds a refused client should wait.
        @param drops: the kernel's drop counter of our UDP sockets now.
        @param max_queue: seconds a datagram may have waited in the kernel
            (0: not looked at).
        """
        self._clock = clock
        self.max_rate = max_rate
        self.max_lag = max_lag
        self.max_backlog = max_backlog
        self.max_queue = max_queue
        self.queue_delay = 0.0
        self.retry_after = retry_after
        self._backlog = backlog
        self._drops = drops
        self.refused: dict[str, int] = {"budget": 0, "queue": 0, "lag": 0, "backlog": 0}
        self.kernel_drops = 0
        self.lag = 0.0
        self._second = -1
        self._taken = 0
        self._unlogged: dict[str, int] = {}
        self._logged_at = float("-inf")
        self._last_probe: float | None = None
        self._drops_seen: int | None = None
        self._next_drop_check = 0.0
        self._probe: task.LoopingCall | None = None

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """
        Start probing the reactor's lag and the kernel's drop counter.
        """
        if self._probe is not None:
            return
        self._last_probe = self._clock.seconds()
        if self._drops is not None:
            self._drops_seen = self._read_drops()
        self._probe = task.LoopingCall(self._tick)
        self._probe.clock = self._clock
        self._probe.start(PROBE_INTERVAL, now=False)

    def stop(self) -> None:
        """
        Stop probing; log what was refused and not yet logged.
        """
        if self._probe is not None and self._probe.running:
            self._probe.stop()
        self._probe = None
        self._warn()

    def _read_drops(self) -> int:
        try:
            return int(self._drops())  # type: ignore[misc]
        except Exception:
            # Broad: a reader of /proc (OSError, a format it cannot parse);
            # the shedder keeps its last count.
            self.log.failure("reading the kernel's UDP drop counter failed")
            return self._drops_seen or 0

    def _tick(self) -> None:
        now = self._clock.seconds()
        if self._last_probe is not None:
            # One long stall (a pack, a clock jump) is capped: only lateness
            # that lasts over several probes makes the node refuse work.
            late = max(0.0, now - self._last_probe - PROBE_INTERVAL)
            if self.max_lag:
                late = min(late, 2 * self.max_lag)
            self.lag += SMOOTHING * (late - self.lag)
        self._last_probe = now
        if self._drops is not None and now >= self._next_drop_check:
            self._next_drop_check = now + 1.0
            seen = self._read_drops()
            if self._drops_seen is not None and seen > self._drops_seen:
                new = seen - self._drops_seen
                self.kernel_drops += new
                self.log.warn("the kernel dropped {n} SIP datagrams (UDP receive buffer "
                              "full; {total} since start)", n=new, total=self.kernel_drops)
            self._drops_seen = seen
        if self._unlogged and now - self._logged_at >= 1.0:
            self._warn()

    # -- admission -------------------------------------------------------------

    def admit(self) -> str | None:
        """
        Decide on one new request.

        @return: C{None} to take it, else why it is refused (C{budget},
            C{lag} or C{backlog}); the refusal is counted.
        """
        reason = None
        if self.max_rate:
            second = int(self._clock.seconds())
            if second != self._second:
                self._second, self._taken = second, 0
            if self._taken >= self.max_rate:
                reason = "budget"
        if reason is None and self.max_queue and self.queue_delay > self.max_queue:
            reason = "queue"
        if reason is None and self.max_lag and self.lag > self.max_lag:
            reason = "lag"
        if reason is None and self.max_backlog and self._backlog is not None \
                and self._backlog() > self.max_backlog:
            reason = "backlog"
        if reason is None:
            self._taken += 1
            return None
        self.refused[reason] += 1
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        if self._clock.seconds() - self._logged_at >= 1.0:
            self._warn()
        return reason

    def note_queue_delay(self, seconds: float) -> None:
        """
        @param seconds: how long the datagram now handled waited in the
            kernel (C{0.0} once handled).
        """
        self.queue_delay = seconds

    def _warn(self) -> None:
        if not self._unlogged:
            return
        now = self._clock.seconds()
        counts = ", ".join(f"{n} for {reason}" for reason, n in sorted(self._unlogged.items()))
        self.log.warn("SIP overload: new requests answered 503 ({counts}); kernel queue "
                      "{queue:.0f} ms, reactor lag {lag:.0f} ms, storage backlog {backlog}, "
                      "{total} refused since start",
                      counts=counts, lag=self.lag * 1000, queue=self.queue_delay * 1000,
                      backlog=self._backlog() if self._backlog is not None else 0,
                      total=sum(self.refused.values()))
        self._unlogged = {}
        self._logged_at = now

    def counters(self) -> dict[str, int]:
        """
        @return: the drop counters for C{/metrics} and statistics: 503s
            by reason and the kernel's UDP drops.
        """
        out = {f"503_{reason}": n for reason, n in self.refused.items()}
        out["udp_kernel"] = self.kernel_drops
        return out
