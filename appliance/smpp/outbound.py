# -*- test-case-name: tests.smpp.test_smpp_client_pool -*-
"""
One outbound SMPP connection: its binds (one C{ClientService} each,
reconnecting with backoff, longer after a refused bind), the window
waiters and throughput pacing shared by its binds, and the endpoints (TCP,
or TLS verifying the far side).  The pool (L{appliance.smpp.connections})
owns these and decides which connection a message takes.
"""
from __future__ import annotations

import collections
import functools
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from appliance.smpp.client import (
    BindLost, BindRefused, Credentials, ESMEFactory, ESMEProtocol,
    RequestTimeout, Timers)
from appliance.model.numbering import DEFAULT_PLAN, Plan
from appliance.smpp.remote import addressed, classify, status_name

_RATE_WINDOW = 10.0


@dataclass(frozen=True)
class ConnectionSettings:
    """A snapshot of one Connection's settings (no ZODB objects)."""
    name: str
    host: str | None
    port: int
    system_id: str | None
    password: str | None
    bind: str
    binds: int
    window: int
    throughput: int
    tls: bool
    shutdown: bool
    #: The CA file this connection pins (None: the pool's default).
    tls_ca: str | None = None
    #: The numbering plan numbers are sent with (the node's plan with
    #: this connection's overrides).
    plan: Plan = DEFAULT_PLAN

    @classmethod
    def of(cls, connection: Any, plan: Plan = DEFAULT_PLAN
           ) -> "ConnectionSettings":
        """Copy a persistent Connection; C{plan} is its numbering plan."""
        return cls(plan=plan, **{f.name: getattr(connection, f.name)
                                 for f in fields(cls) if f.name != "plan"})

    @property
    def complete(self) -> bool:
        """Whether it has what a bind needs (host, system_id, password)."""
        return bool(self.host and self.system_id and self.password)

    def endpoint_key(self) -> tuple:
        """The settings whose change needs a new bind."""
        return (self.host, self.port, self.system_id, self.password,
                self.bind, self.binds, self.tls, self.tls_ca)


class Backoff:
    """
    Reconnection delays: C{initial * factor ** (attempt - 1)} up to
    C{maximum}; after a refused bind at least C{refused}.
    """

    def __init__(self, initial: float = 1.0, factor: float = 2.0,
                 maximum: float = 60.0, refused: float = 30.0):
        """@param refused: the least delay after a refused bind."""
        self.initial, self.factor = initial, factor
        self.maximum, self.refused = maximum, refused

    def delay(self, attempt: int, refused: bool) -> float:
        """
        @param attempt: failed attempts in a row (1 for the first).
        @param refused: whether the last attempt's bind was refused.
        @return: seconds to wait.
        """
        value = min(self.maximum,
                    self.initial * self.factor ** max(0, attempt - 1))
        return max(value, self.refused) if refused else value


class Bind:
    """
    One bind of a connection: its C{ClientService} and current protocol.

    @ivar protocol: the connected protocol, or None.
    @ivar refused: the status of the last refused bind, or None.
    @ivar failures: connections in a row that ended without a bind.
    """

    log = Logger()

    def __init__(self, owner: "OutboundConnection", number: int):
        """
        @param owner: the connection.
        @param number: 1-based bind number (for logs).
        """
        self.owner = owner
        self.number = number
        self.protocol: ESMEProtocol | None = None
        self.refused: int | None = None
        self.failures = 0
        self.service: ClientService | None = None

    @property
    def name(self) -> str:
        """C{connection#n}."""
        return f"{self.owner.settings.name}#{self.number}"

    @property
    def up(self) -> bool:
        """Whether it is bound."""
        return self.protocol is not None and self.protocol.state == "bound"

    def build(self) -> ESMEProtocol:
        """A protocol for a new connection attempt."""
        s = self.owner.settings
        p = ESMEProtocol(
            Credentials(s.system_id or "", s.password or "", s.bind),
            self.owner.clock, self.owner.timers, window=s.window,
            on_receipt=functools.partial(self.owner.pool.receipt, s.name),
            on_slot=self.owner.pump, on_lost=self._lost, name=self.name)
        p.bound.addCallbacks(self._bound, self._not_bound)
        self.protocol = p
        return p

    def _bound(self, p: ESMEProtocol) -> ESMEProtocol:
        self.refused = None
        self.failures = 0
        self.owner.pump()
        return p

    def _not_bound(self, failure: Any) -> None:
        self.failures += 1
        self.refused = failure.value.status \
            if failure.check(BindRefused) else None

    def _lost(self, p: ESMEProtocol) -> None:
        if self.protocol is p:
            self.protocol = None
        self.owner.pump()

    def retry_delay(self, attempt: int) -> float:
        """
        C{ClientService}'s retry policy.  A connection whose bind then
        failed counts as a failed attempt too (C{ClientService} only
        counts connections that could not be made).
        """
        delay = self.owner.backoff.delay(max(attempt, self.failures),
                                         self.refused is not None)
        if self.refused is not None:
            self.log.warn("{bind}: bind refused ({status}); next try in "
                          "{delay} s", bind=self.name,
                          status=status_name(self.refused), delay=delay)
        return delay

    def start(self) -> None:
        """Connect and keep connected."""
        endpoint = self.owner.pool.endpoint_for(self.owner.settings)
        self.service = ClientService(
            endpoint, ESMEFactory(self.build), retryPolicy=self.retry_delay,
            clock=self.owner.clock)
        self.service.startService()

    @defer.inlineCallbacks
    def stop(self):
        """Unbind (waiting for unbind_resp or its timeout), then stop
        reconnecting."""
        service, self.service = self.service, None
        p = self.protocol
        if p is not None and p.state not in ("closed",):
            yield p.unbind()
        if service is not None:
            yield service.stopService()
        self.protocol = None


class OutboundConnection(Service):
    """
    One configured connection: its binds, window waiters and pacing.

    @ivar settings: the current L{ConnectionSettings}.
    @ivar binds: its L{Bind}s (empty while shut down).
    @ivar counters: submitted, accepted, transient, permanent, receipts.
    """

    log = Logger()

    def __init__(self, pool: "ConnectionPool", settings: ConnectionSettings):
        """
        @param pool: the owning pool (endpoints, receipts, clock).
        @param settings: the first snapshot.
        """
        self.pool = pool
        self.settings = settings
        self.clock: IReactorTime = pool.clock
        self.timers: Timers = pool.timers
        self.backoff: Backoff = pool.backoff
        self.binds: list[Bind] = []
        self.counters = collections.Counter()
        self._waiters: collections.deque = collections.deque()
        self._next_slot = 0.0
        self._pacer = None
        self._recent: collections.deque = collections.deque()
        self._rr = 0
        self.setName(settings.name)

    # -- life cycle --------------------------------------------------------

    def startService(self) -> None:
        """Bind, unless shut down or incomplete."""
        super().startService()
        self._start_binds()

    def stopService(self) -> defer.Deferred:
        """Unbind every bind; fail what waits for a slot."""
        super().stopService()
        return self._stop_binds()

    def _start_binds(self) -> None:
        s = self.settings
        if s.shutdown or self.binds:
            return
        if not s.complete:
            # Normal while an operator configures it line by line: not a
            # warning (show connections shows it unbound).
            missing = [f for f, v in (("host", s.host), ("system-id", s.system_id),
                                      ("password", s.password)) if not v]
            self.log.info("connection {name}: not binding until {missing} set",
                          name=s.name, missing=", ".join(missing))
            return
        self.binds = [Bind(self, n) for n in range(1, s.binds + 1)]
        for bind in self.binds:
            bind.start()

    def _stop_binds(self) -> defer.Deferred:
        binds, self.binds = self.binds, []
        if self._pacer is not None and self._pacer.active():
            self._pacer.cancel()
        self._pacer = None
        self.pump()
        return defer.DeferredList([b.stop() for b in binds],
                                  consumeErrors=True)

    @defer.inlineCallbacks
    def reconfigure(self, settings: ConnectionSettings):
        """
        Apply new settings: live for window and throughput, re-bind for
        address, credentials, bind type or count, stop or start for
        shutdown.
        """
        old, self.settings = self.settings, settings
        for bind in self.binds:
            if bind.protocol is not None:
                bind.protocol.window = settings.window
        if settings.shutdown and not old.shutdown:
            self.log.info("connection {name} shut down", name=settings.name)
        if settings.shutdown or old.endpoint_key() != settings.endpoint_key():
            yield self._stop_binds()
        if self.running:
            self._start_binds()
        self.pump()

    # -- state for routing and the shell -----------------------------------

    @property
    def available(self) -> bool:
        """Whether at least one bind is up."""
        for bind in self.binds:
            protocol = bind.protocol
            if protocol is not None and protocol.state == "bound":
                return True
        return False

    @property
    def state(self) -> str:
        """C{shutdown}, C{up}, C{partial}, C{refused}, C{connecting} or
        C{incomplete}."""
        s = self.settings
        if s.shutdown:
            return "shutdown"
        if not s.complete:
            return "incomplete"
        up = sum(b.up for b in self.binds)
        if up and up == len(self.binds):
            return "up"
        if up:
            return "partial"
        if any(b.refused is not None for b in self.binds):
            return "refused"
        return "connecting"

    def in_flight(self) -> int:
        """Submits awaiting a response plus parts waiting for a slot."""
        return sum(len(b.protocol.outstanding) for b in self.binds
                   if b.protocol is not None) + len(self._waiters)

    def rate(self) -> float:
        """submit_sm per second over the last ten seconds."""
        self._trim(self.clock.seconds())
        return len(self._recent) / _RATE_WINDOW

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - _RATE_WINDOW:
            self._recent.popleft()

    # -- sending -----------------------------------------------------------

    def acquire(self) -> defer.Deferred:
        """
        Wait for a bound protocol with a free window slot, within the
        throughput cap.

        @return: a Deferred firing with the L{ESMEProtocol}, or failing
            with L{BindLost} when no bind is up.
        """
        d: defer.Deferred = defer.Deferred()
        self._waiters.append(d)
        self.pump()
        return d

    def pump(self) -> None:
        """Hand free slots to waiters, in order."""
        while self._waiters:
            protocol = self._pick()
            if protocol is None:
                if not self.available:
                    waiters, self._waiters = self._waiters, \
                        collections.deque()
                    for d in waiters:
                        d.errback(BindLost(f"connection {self.settings.name}"
                                           " has no bind up"))
                return
            if self.settings.throughput:
                now = self.clock.seconds()
                if now < self._next_slot:
                    if self._pacer is None or not self._pacer.active():
                        self._pacer = self.clock.callLater(
                            self._next_slot - now, self.pump)
                    return
                self._next_slot = max(now, self._next_slot) \
                    + 1.0 / self.settings.throughput
            now = self.clock.seconds()
            self._recent.append(now)
            self._trim(now)
            self._waiters.popleft().callback(protocol)

    def _pick(self) -> ESMEProtocol | None:
        n = len(self.binds)
        for i in range(n):
            bind = self.binds[(self._rr + i) % n]
            if bind.up and bind.protocol.free > 0:
                self._rr = (self._rr + i + 1) % n
                return bind.protocol
        return None

    def send(self, outgoing: Any) -> defer.Deferred:
        """
        Submit every part of a message, one after another.

        @param outgoing: an L{appliance.smpp.remote.Outgoing}; its
            numbers are written as this connection's plan says.
        @return: a Deferred firing with C{(kind, reason, message_id)}:
            kind C{ok} (message_id of the last part), C{transient} or
            C{permanent}.
        """
        outgoing = addressed(outgoing, self.settings.plan)
        if outgoing.parts > 1:
            return self._send_parts(outgoing)
        # One part (most messages): a plain callback chain, no generator.
        d = self.acquire()
        d.addCallback(self._submit_one, outgoing)
        d.addCallbacks(self._sent_one, self._not_sent)
        return d

    def _submit_one(self, protocol: ESMEProtocol, outgoing: Any
                    ) -> defer.Deferred:
        self.counters["submitted"] += 1
        return protocol.submit(functools.partial(outgoing.frame, 0))

    def _sent_one(self, result: Any) -> tuple[str, str, str]:
        kind = classify(result.status)
        if kind != "ok":
            self.counters[kind] += 1
            return (kind, status_name(result.status), "")
        if not result.message_id:
            self.counters["permanent"] += 1
            return ("permanent", "submit_sm_resp without message_id", "")
        self.counters["accepted"] += 1
        return ("ok", "", result.message_id)

    def _not_sent(self, failure: Any) -> tuple[str, str, str]:
        failure.trap(BindLost, RequestTimeout)
        self.counters["transient"] += 1
        return ("transient", str(failure.value), "")

    @defer.inlineCallbacks
    def _send_parts(self, outgoing: Any):
        """L{send} for a message of several parts."""
        message_id = ""
        earlier: list[str] = []
        for part in range(outgoing.parts):
            try:
                protocol = yield self.acquire()
                self.counters["submitted"] += 1
                result = yield protocol.submit(
                    functools.partial(outgoing.frame, part))
            except (BindLost, RequestTimeout) as e:
                self.counters["transient"] += 1
                return ("transient", str(e), "")
            kind = classify(result.status)
            if kind != "ok":
                self.counters[kind] += 1
                return (kind, status_name(result.status), "")
            if not result.message_id:
                self.counters["permanent"] += 1
                return ("permanent", "submit_sm_resp without message_id", "")
            self.counters["accepted"] += 1
            if message_id:
                earlier.append(message_id)
            message_id = result.message_id
        self.pool.expect_part_receipts(self.settings.name, earlier)
        return ("ok", "", message_id)


def default_endpoints(reactor: Any, ca_file: Path | None = None
                      ) -> Callable[[ConnectionSettings], Any]:
    """
    Endpoints for real connections: TCP, or TLS verifying the far side's
    certificate (against the connection's own C{tls-ca}, else C{ca_file},
    else the system's trust store) and its name (the connection's host).

    @return: a function from settings to a client endpoint.
    """
    def endpoint(settings: ConnectionSettings) -> Any:
        tcp = HostnameEndpoint(reactor, settings.host, settings.port)
        if not settings.tls:
            return tcp
        return wrapClientTLS(
            tls_options(settings.host, settings.tls_ca or ca_file), tcp)
    return endpoint


def tls_options(host: str, ca_file: Path | None = None) -> Any:
    """
    TLS client options that verify the far side: its certificate chains
    to C{ca_file} (PEM) or, without one, to the system's trust store, and
    names C{host}.

    @raise OSError: the CA file cannot be read.
    """
    from appliance.tls import client_options
    return client_options(host, ca_file)
