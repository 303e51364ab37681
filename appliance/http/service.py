# -*- test-case-name: tests.http.test_service -*-
"""
The C{[http]} service: twisted.web listeners (TCP and TLS) in the node's
reactor with keep-alive, request size and header limits; the tenants'
API, the callback sender, and C{show http}.
"""
from __future__ import annotations

import json
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer, threads
from twisted.logger import Logger, LogLevel

from appliance.listen import listen_all, stop_all
from appliance.http.callbacks import CallbackSender, queue_hook
from appliance.http.guard import Guard
from appliance.http.model import KEY, TenantBook, book_of
from appliance.http.openapi import document
from appliance.http.resources import APIResource
from appliance.http.site import APISite
from appliance.http.sending import Sender
from appliance.model.numbering import node_plan
from appliance.model.passwords import verify_secret
from appliance.text_table import table


class Tenants:
    """
    The current L{TenantBook}: built on first use after each
    configuration commit (the storage's change listener L{changed}), so
    requests read an immutable snapshot, never persistent objects.
    """

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self._book: TenantBook | None = None
        self.builds = 0

    def __call__(self) -> TenantBook:
        """@return: the snapshot of the committed configuration."""
        book = self._book
        if book is None:
            book = self._book = book_of(self.storage.domain_get(KEY),
                                        node_plan(self.storage.root()))
            self.builds += 1
        return book

    def changed(self, note: str = "") -> None:
        """A configuration commit: rebuild at the next request."""
        self._book = None


def _thread_verify(reactor: Any):
    def verify(stored: str, password: str) -> defer.Deferred:
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(),
                                         verify_secret, stored, password)
    return verify


class HTTPService(MultiService):
    """
    The HTTP API as a service.

    @ivar ready: fires once every listener is bound.
    """

    log = Logger()
    _watching = False

    def __init__(self, section: Any, reactor: Any, storage: Any, core: Any,
                 ports: Any, charger: Any = None, metrics: Any = None,
                 verify: Any = None, tls: Any = None,
                 admission: Any = None) -> None:
        """
        @param section: the L{appliance.config.HTTPSection}.
        @param core: the messaging core.
        @param ports: the node's port map.
        @param charger: the billing charger (the prices answered come from
            the core's authorization of each recipient, rated once).
        @param metrics: the node's L{appliance.metrics.Metrics}.
        @param verify: password check returning a Deferred (default: in
            the reactor's thread pool).
        @param tls: the L{appliance.tls.TLSPolicy} of C{ssl:} listeners.
        @param admission: the node's L{appliance.admission.Admission}
            (sends refused with 503 while the node is overloaded).
        """
        super().__init__()
        self.tls = tls
        #: The worker processes (C{[http] workers}), once started.
        self.workers: Any = None
        self.section, self.reactor = section, reactor
        self.storage, self.core, self.ports = storage, core, ports
        self.charger, self.metrics = charger, metrics
        self.ready: defer.Deferred = defer.Deferred()
        self._ports: list = []
        self.listening: list[str] = []
        self.tenants = Tenants(storage)
        self.guard = Guard(reactor, self.tenants, verify or
                           _thread_verify(reactor), section.auth_failures,
                           section.max_in_flight, section.tenant_in_flight,
                           admission=admission)
        self.sender = Sender(core, storage, reactor, section.queue_limit)
        self.callbacks = CallbackSender(storage, reactor, metrics=metrics)
        self.callbacks.setServiceParent(self)
        self.resource = APIResource(
            self.guard, self.sender, reactor, section, metrics,
            self.health, json.dumps(document(), indent=1).encode(),
            self._balance)
        if metrics is not None:
            metrics.gauge("appliance_http_callbacks_pending",
                          "Delivery-report callbacks waiting", (),
                          lambda: [((), self.callbacks.pending())])
            metrics.gauge("appliance_http_requests_in_flight",
                          "Send requests being served", (),
                          lambda: [((), self.guard.in_flight)])

    def _balance(self, tenant: Any) -> tuple:
        stored = self.storage.domain(KEY).tenants.get(tenant.name)
        return (stored.balance if stored is not None else 0), None

    def health(self) -> dict:
        """Storage writable and listeners up."""
        problems = []
        try:
            self.storage.messages().counts()
            if getattr(self.storage, "db", None) is not None and \
                    self.storage.db.storage.isReadOnly():
                problems.append("storage is read-only")
        except Exception as e:
            # Broad: health reports whatever the storage raises as
            # failing; logged with its traceback.
            self.log.failure("health check: storage failed",
                             level=LogLevel.warn)
            problems.append(f"storage: {e}")
        if len(self._ports) < len(self.section.listen):
            problems.append("not every listener is up")
        wanted = getattr(self.section, "workers", 0)
        if wanted and (self.workers is None or self.workers.running() < wanted):
            running = 0 if self.workers is None else self.workers.running()
            problems.append(f"{running} of {wanted} HTTP workers running")
        return {"status": "ok" if not problems else "failing",
                "problems": problems, "listeners": self.listening}

    def startService(self) -> None:
        """Listen on every configured endpoint."""
        super().startService()
        self.storage.add_change_listener(self.tenants.changed)
        self._watching = True
        self.tenants.changed()
        site = APISite(self.resource, self.section, self.reactor)
        d = listen_all(self.reactor, "http", self.section.listen, site,
                       ports=self.ports, into=self._ports, tls=self.tls,
                       on_bound=self._listening)
        if getattr(self.section, "workers", 0):
            d.addCallback(self._start_workers)
        d.addCallbacks(lambda _: self.ready.callback(None),
                       self.ready.errback)

    def _start_workers(self, ports: list) -> defer.Deferred:
        """
        Hand the bound listening sockets to C{[http] workers} processes:
        this process stops accepting on them (they stay open here, so a
        worker's death loses no listener) and renders what the workers
        forward (L{appliance.http.proxied}).
        """
        from dataclasses import asdict

        from appliance.http.proxied import Dispatcher
        from appliance.tls import TLSPolicy
        from appliance.workers import WorkerSet
        listeners = []
        for port, listener in zip(ports, self.section.listen):
            port.stopReading()
            family = "inet6" if ":" in port.getHost().host else "inet"
            listeners.append({"family": family, "tls": listener.description
                              if listener.kind == "ssl" else None})
        limits = {key: getattr(self.section, key) for key in (
            "idle_timeout", "max_headers", "max_header_bytes", "max_request_bytes")}
        spec = {"section": limits, "listeners": listeners,
                "tls": asdict(self.tls or TLSPolicy())}
        self.dispatcher = Dispatcher(self.resource)
        self.workers = WorkerSet(self.reactor, "http", "appliance.http.worker",
                                 self.section.workers, lambda n: spec,
                                 [p.fileno() for p in ports], self.dispatcher)
        if self.metrics is not None:
            self.metrics.gauge("appliance_http_workers", "HTTP worker processes running",
                               (), lambda: [((), self.workers.running())])
        return self.workers.start()

    def _listening(self, port: Any, listener: Any) -> None:
        self.listening.append(f"{listener.kind}:{port.getHost().port}")

    @defer.inlineCallbacks
    def stopService(self):
        """Stop the workers (each finishes what it holds) and listening,
        then stop the callback sender."""
        if self._watching:
            self._watching = False
            self.storage.remove_change_listener(self.tenants.changed)
        if self.workers is not None:
            yield self.workers.stop()
        yield stop_all(self._ports)
        self.guard.stop()
        yield super().stopService()

    # -- shell -----------------------------------------------------------

    def statistics(self) -> dict[str, int]:
        """Counters for C{show statistics}."""
        out = {f"{e} {s}": n for (e, s), n in
               sorted(self.resource.counts.items())}
        out["callbacks_pending"] = self.callbacks.pending()
        out.update({f"callbacks_{k}": v
                    for k, v in self.callbacks.counters.items()})
        return out

    def shell_text(self) -> str:
        """C{show http}: listeners, answers by code, callbacks."""
        lines = ["Listeners: " + (" ".join(self.listening) or "none"),
                 f"Requests in flight: {self.guard.in_flight}"]
        if self.workers is not None:
            lines.append(f"Workers: {self.workers.running()} of {self.workers.count} "
                         f"running (pids {' '.join(map(str, self.workers.pids())) or '-'};"
                         f" restarted {self.workers.restarts})")
        text = "\n".join(lines) + "\n"
        text += table(("Endpoint", "Status", "Requests"), [
            (e, s, n) for (e, s), n in sorted(self.resource.counts.items())])
        c = self.callbacks.counters
        text += (f"Callbacks pending: {self.callbacks.pending()} "
                 f"(in flight {len(self.callbacks.in_flight)}; sent "
                 f"{c['sent']}, failed attempts {c['failed']}, expired "
                 f"{c['expired']})\n")
        return text


def make_service(section: Any, node: Any, core: Any, charger: Any = None,
                 metrics: Any = None, admission: Any = None) -> HTTPService:
    """
    Build the HTTP service (the application's factory for C{[http]}, which
    also has the core's transactions queue its callbacks: C{core.
    add_transaction_hook(queue_hook(reactor, service.callbacks.kick))}).

    @param section: the L{appliance.config.HTTPSection}.
    @param node: the L{appliance.node.NodeContext}.
    @param core: the L{IMessagingCore}.
    @param charger: the billing charger (the prices answered come from
            the core's authorization of each recipient, rated once).
    @param metrics: the node's L{appliance.metrics.Metrics}.
    @param admission: the node's L{appliance.admission.Admission}.
    """
    return HTTPService(section, node.reactor, node.storage, core,
                       node.ports, charger=charger, metrics=metrics,
                       tls=getattr(getattr(node, "config", None), "tls", None),
                       admission=admission)
