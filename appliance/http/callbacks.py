# -*- test-case-name: tests.http.test_callbacks -*-
"""
Delivery-report callbacks to tenants, from a durable queue.

The messaging core calls L{queue_hook} inside the transaction that
stores a message or changes its state; for a tenant's message with a
dlr-url whose level asks for that state, it adds a L{Callback} to
C{root["http"].callbacks} in the same transaction, so a report can never
be lost between the state change and the queue, and a restart resumes
every report not yet acknowledged.

L{CallbackSender} POSTs the due callbacks (JSON, C{X-Signature:
sha256=<HMAC-SHA256 of the body with the tenant's dlr-secret>}; Kannel's
dlr-url as a GET with its escapes; Jasmin's as a form), deletes each once
answered 2xx (and, for Jasmin's, with the body C{ACK/Jasmin}, as Jasmin
itself requires of a receiver), and retries a failure with exponential
backoff until the message's validity ends.

On a database several nodes share, the cluster's placement
(L{appliance.cluster.callbacks}) numbers each callback from the slot of
the node that queued it and says which node sends it: the slot's holder,
so that each report is POSTed by one node, and by the node that took the
slot over when its holder was killed.
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger, LogLevel
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from appliance.http.model import KEY, Callback, sign
from appliance.http.params import (
    JASMIN_STATUS, kannel_dlr_url, kannel_type)
from appliance.http.sending import describe, message_id

FINAL = ("delivered", "failed", "expired")
#: The body a Jasmin receiver answers a delivery report with.
JASMIN_ACK = b"ACK/Jasmin"
#: Seconds between attempts of one callback (the last repeats).
BACKOFF = (1, 2, 5, 15, 30, 60, 120, 300)
#: Kannel dlr-mask bits by state.
_KANNEL_MASK = {"delivered": 1, "failed": 2, "expired": 2, "accepted": 4,
                "delivering": 8}


def wanted(meta: dict, state: str) -> bool:
    """Whether a message's dlr settings ask for a report of C{state}."""
    api = meta.get("api", "native")
    if api == "kannel":
        try:
            mask = int(meta.get("dlr-mask", "0"))
        except ValueError:
            return False
        return bool(mask & _KANNEL_MASK.get(state, 0))
    if api == "jasmin":
        level = meta.get("dlr-level", "2")
        if state in FINAL:
            return level in ("2", "3")
        return state == "delivering" and level in ("1", "3")
    if state in FINAL:
        return True
    return meta.get("dlr-level") == "all"


def report_body(message: Any, state: str, now: float) -> bytes:
    """The JSON report of a message in C{state}."""
    out = describe(message)
    out["state"] = state
    out["event"] = "final" if state in FINAL else "progress"
    return json.dumps(out, sort_keys=True).encode("utf-8")


def queue_hook(clock: Any, kick: Any = None, placement: Any = None):
    """
    @return: the core's transaction hook that queues callbacks.

    @param kick: called after the commit of a transaction that queued one.
    @param placement: on a shared database, the cluster's
        L{appliance.cluster.interfaces.ICallbackPlacement}, which numbers
        the callbacks from this node's slot; C{None}: the queue numbers
        them.
    """
    def hook(raw: Any, message: Any, state: str) -> None:
        if message.origin_kind != "tenant" or not message.meta:
            return
        meta = dict(message.meta)
        url = meta.get("dlr-url")
        if not url or not wanted(meta, state):
            return
        http = raw.get(KEY)
        if http is None:
            return
        now = clock.seconds()
        http.queue_callback(Callback(
            message.id, message.origin, url,
            report_body(message, state, now), now,
            max(message.validity, now + 60)),
            placement.next_serial() if placement is not None else None)
        if kick is not None:
            txn = raw._p_jar.transaction_manager.get()
            txn.addAfterCommitHook(lambda ok: ok and kick())
    return hook


@implementer(IBodyProducer)
class _Body:
    """A fixed request body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


def _shown(url: str) -> str:
    """A callback URL as logs show it: without its query, where tenants
    often put credentials of their own."""
    head, sep, _ = url.partition("?")
    return head + ("?..." if sep else "")


def build_request(callback: Any, secret: str | None,
                  meta: dict | None = None) -> tuple[bytes, str, dict, bytes]:
    """
    The HTTP request of one callback.

    @param meta: the message's dlr settings (which API asked).
    @return: (method, url, headers, body).
    """
    meta = meta or {}
    report = json.loads(callback.body)
    api = meta.get("api", "native")
    if api == "kannel":
        url = kannel_dlr_url(callback.url, kannel_type(report["state"]),
                             report["to"], report["from"],
                             _epoch(report["updated_at"]),
                             report.get("error", report["state"]))
        return b"GET", url, {}, b""
    if api == "jasmin":
        form = {"id": report["id"], "message_status":
                JASMIN_STATUS.get(report["state"], "UNDELIV"),
                "level": meta.get("dlr-level", "2"),
                "connector": report.get("connection", ""),
                "id_smsc": report.get("carrier_id", ""),
                "err": report.get("error", "")}
        body = urlencode(form).encode("ascii")
        headers = {b"Content-Type": [b"application/x-www-form-urlencoded"]}
        if meta.get("dlr-method", "POST").upper() == "GET":
            sep = "&" if "?" in callback.url else "?"
            return b"GET", callback.url + sep + body.decode(), {}, b""
        return b"POST", callback.url, headers, body
    headers = {b"Content-Type": [b"application/json"],
               b"X-Signature": [sign(secret, callback.body).encode()]}
    return b"POST", callback.url, headers, callback.body


def _epoch(iso: str) -> float:
    import calendar
    import time
    return float(calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")))


class CallbackSender(Service):
    """
    Sends the queued callbacks.

    @ivar in_flight: serials being sent now.
    @ivar counters: C{sent}, C{failed}, C{expired}.
    """

    name = "http-callbacks"
    log = Logger()

    def __init__(self, storage: Any, clock: Any, agent: Any = None,
                 interval: float = 0.5, timeout: float = 10.0,
                 concurrency: int = 50, metrics: Any = None) -> None:
        """
        @param agent: an L{IAgent} (default: an L{Agent} on C{clock},
            which must then be the reactor).
        """
        self.storage, self.clock = storage, clock
        self._agent = agent
        self._given = agent is not None
        self._agents: dict[str | None, Any] = {}
        self.interval, self.timeout = interval, timeout
        self.concurrency = concurrency
        self.metrics = metrics
        self.in_flight: set[int] = set()
        self.counters = {"sent": 0, "failed": 0, "expired": 0}
        self._loop: task.LoopingCall | None = None
        self._pool: HTTPConnectionPool | None = None
        self._kicked = None
        #: The cluster's L{appliance.cluster.interfaces.ICallbackPlacement}
        #: on a shared database (set by the wiring), else C{None}: this
        #: node sends every callback.
        self.placement: Any = None

    def _http(self) -> Any:
        return self.storage.domain(KEY)

    @property
    def agent(self) -> Any:
        """The HTTP client (https: certificates verified against the
        system's trust store)."""
        return self.agent_for(None)

    def agent_for(self, ca_file: str | None) -> Any:
        """
        The HTTP client of callbacks whose https servers must have
        certificates chaining to C{ca_file} (a tenant's C{callback-ca}),
        or to the system's trust store for C{None}.  An agent given to
        the constructor serves every callback.
        """
        if self._agent is not None and (ca_file is None or self._given):
            return self._agent
        if ca_file in self._agents:
            return self._agents[ca_file]
        if self._pool is None:
            self._pool = HTTPConnectionPool(self.clock, persistent=True)
        from appliance.tls import VerifyingPolicy
        agent = Agent(self.clock, contextFactory=VerifyingPolicy(ca_file),
                      pool=self._pool, connectTimeout=self.timeout)
        self._agents[ca_file] = agent
        if ca_file is None:
            self._agent = agent
        return agent

    def startService(self) -> None:
        """Look for due callbacks now and every C{interval}."""
        super().startService()
        self._loop = task.LoopingCall(self.scan)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True)

    def stopService(self) -> defer.Deferred:
        """Stop looking; close idle client connections."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._kicked is not None and self._kicked.active():
            self._kicked.cancel()
        if self._pool is not None:
            return self._pool.closeCachedConnections()
        return defer.succeed(None)

    def kick(self) -> None:
        """A callback was queued: look soon (on the next turn)."""
        if self.running and (self._kicked is None
                             or not self._kicked.active()):
            self._kicked = self.clock.callLater(0, self.scan)

    def pending(self) -> int:
        """Callbacks waiting in the queue."""
        try:
            return len(self._http().callbacks)
        except (KeyError, RuntimeError):    # no HTTP domain; storage closed
            return 0

    def scan(self) -> None:
        """Send what is due (up to the concurrency); on a shared database
        only the callbacks this node holds (expiring one is acting on it
        too)."""
        now = self.clock.seconds()
        http = self._http()
        placement = self.placement
        expired = []
        for serial, callback in http.callbacks.items():
            if len(self.in_flight) >= self.concurrency:
                break
            if serial in self.in_flight or callback.due > now:
                continue
            if placement is not None and not placement.mine(serial):
                continue
            if now >= callback.expires:
                expired.append(serial)
                continue
            self._send(serial, callback, http)
        if expired:
            self.counters["expired"] += len(expired)
            self._count("expired", len(expired))
            self.log.warn("dropped {n} callbacks past their message's "
                          "validity", n=len(expired))
            self.storage.batch(self._delete, expired)

    def _count(self, result: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.callbacks.labels(result).inc(n)

    def _send(self, serial: int, callback: Any, http: Any) -> None:
        tenant = http.tenants.get(callback.tenant)
        secret = tenant.dlr_secret if tenant is not None else None
        message = self.storage.messages().get(callback.message)
        meta = dict(message.meta) if message is not None else {}
        method, url, headers, body = build_request(callback, secret, meta)
        self.in_flight.add(serial)
        ca_file = getattr(tenant, "callback_ca", None)
        try:
            d = self.agent_for(ca_file).request(
                method, url.encode("utf-8"), Headers(headers),
                _Body(body) if body else None)
        except Exception:
            # Broad: a request the agent cannot even start (a URL it
            # refuses, a bug) is a failed attempt, retried with backoff;
            # logged with its traceback.
            self.log.failure("callback of message {id} to {url} not "
                             "started", id=message_id(callback.message),
                             url=_shown(callback.url), level=LogLevel.warn)
            d = defer.fail()
        timer = self.clock.callLater(self.timeout, d.cancel)

        jasmin = meta.get("api") == "jasmin"

        def answered(response):
            def read(body):
                if jasmin and 200 <= response.code < 300 and \
                        (not isinstance(body, bytes)
                         or body.strip() != JASMIN_ACK):
                    return "no ACK/Jasmin in the answer"
                return response.code
            return readBody(response).addBoth(read)

        def release(result):
            # Only once the delete (or the new due time) is committed may a
            # scan see the callback again: before, the database still holds
            # it as due, and a scan would POST an answered report twice.
            self.in_flight.discard(serial)
            return result

        def done(result):
            if timer.active():
                timer.cancel()
            if isinstance(result, int) and 200 <= result < 300:
                self.counters["sent"] += 1
                self._count("sent")
                self.log.info("callback of message {id} to {url}: {code}",
                              id=message_id(callback.message),
                              url=_shown(callback.url), code=result)
                return self.storage.batch(self._delete, [serial]) \
                    .addBoth(release)
            why = f"HTTP {result}" if isinstance(result, int) else \
                result if isinstance(result, str) else \
                result.getErrorMessage()
            self.counters["failed"] += 1
            self._count("failed")
            self.log.info("callback of message {id} to {url} failed "
                          "({why}); will retry",
                          id=message_id(callback.message),
                          url=_shown(callback.url), why=why)
            return self.storage.batch(self._retry, serial, why,
                                      self.clock.seconds()).addBoth(release)
        d.addCallback(answered)
        d.addBoth(done)
        d.addErrback(lambda f: self.log.failure("callback bookkeeping "
                                                "failed", f))

    @staticmethod
    def _delete(raw: Any, serials: list[int]) -> None:
        callbacks = raw[KEY].callbacks
        for serial in serials:
            callbacks.pop(serial, None)

    @staticmethod
    def _retry(raw: Any, serial: int, why: str, now: float) -> None:
        callback = raw[KEY].callbacks.get(serial)
        if callback is None:
            return
        callback.attempts += 1
        callback.error = why[:200]
        delay = BACKOFF[min(callback.attempts, len(BACKOFF)) - 1]
        callback.due = now + delay
