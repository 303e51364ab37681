# -*- test-case-name: tests.test_metrics -*-
"""
The node's metrics: one registry that C{application.py} makes and hands to
the services, exposed in Prometheus text format by the HTTP service's
C{/metrics}.

Services feed it at their seams (the messaging core's accept and state
changes, the storage's batched commits, the HTTP API's requests) and
register gauges read at scrape time (queue depth, SMPP binds, SIP
registrations), so a scrape costs nothing between scrapes.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from twisted.logger import Logger

#: Latency buckets in seconds.
LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
           2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
#: Batch-size buckets (writes per commit).
BATCH = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class _Gauges:
    """A collector of gauges whose values are read at scrape time."""

    log = Logger()

    def __init__(self) -> None:
        self.readers: list[tuple[str, str, tuple[str, ...],
                                 Callable[[], Iterable]]] = []

    def collect(self):
        for name, doc, labels, read in self.readers:
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            try:
                for values, value in read():
                    family.add_metric(list(values), float(value))
            except Exception:
                # Broad: a reader is a service's callback; a bug in one
                # must not fail the whole scrape.
                self.log.failure("reading gauge {name} failed", name=name)
            yield family


class Metrics:
    """
    The registry and the node's metrics.

    @ivar registry: the C{prometheus_client} registry.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.messages = Counter(
            "appliance_messages", "Messages by state reached, origin, "
            "transport and route (policy or local)",
            ["origin", "transport", "state", "route"],
            registry=self.registry)
        self.accept_latency = Histogram(
            "appliance_accept_latency_seconds", "From a request's arrival "
            "to its acknowledgement (after the commit)", ["protocol"],
            buckets=LATENCY, registry=self.registry)
        self.delivery_latency = Histogram(
            "appliance_end_to_end_latency_seconds", "From acceptance to the "
            "final state", ["origin", "state"], buckets=LATENCY,
            registry=self.registry)
        self.batch_size = Histogram(
            "appliance_commit_batch_size", "Writes per batched commit",
            buckets=BATCH, registry=self.registry)
        self.commit_seconds = Histogram(
            "appliance_commit_seconds", "Time of one batched commit",
            buckets=LATENCY, registry=self.registry)
        self.http_requests = Counter(
            "appliance_http_requests", "HTTP API requests by endpoint and "
            "status", ["endpoint", "status"], registry=self.registry)
        self.callbacks = Counter(
            "appliance_http_callbacks", "Delivery-report callbacks by "
            "result", ["result"], registry=self.registry)
        self.refused = Counter(
            "appliance_refused", "Requests refused at the door under load "
            "or over a limit, by listener and reason",
            ["listener", "reason"], registry=self.registry)
        self._gauges = _Gauges()
        self.registry.register(self._gauges)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...],
              read: Callable[[], Iterable[tuple[tuple[str, ...], float]]]
              ) -> None:
        """
        Add a gauge read at scrape time.

        @param read: returns C{(label values, value)} pairs.
        """
        self._gauges.readers.append((name, doc, labels, read))

    # -- seams ---------------------------------------------------------

    def message_state(self, view: Any, state: str,
                      transport: str | None = None,
                      now: float | None = None) -> None:
        """
        A message reached C{state} (committed).

        @param view: its L{MessageView}.
        @param transport: where it goes (when known).
        @param now: the time, for the end-to-end latency of final states.
        """
        if transport is None:
            transport = "sip" if view.account else "smpp"
        self.messages.labels(view.origin_kind, transport, state,
                             view.route or "local").inc()
        if now is not None and state in ("delivered", "failed", "expired"):
            self.delivery_latency.labels(view.origin_kind, state).observe(
                max(now - view.created, 0.0))

    def batch_committed(self, size: int, seconds: float) -> None:
        """A batched commit of C{size} writes took C{seconds}."""
        self.batch_size.observe(size)
        self.commit_seconds.observe(seconds)

    def text(self) -> bytes:
        """@return: the Prometheus text exposition."""
        return generate_latest(self.registry)


def watch_node(metrics: Metrics, storage: Any, live: Any) -> None:
    """
    Register the node-wide gauges read at scrape time: messages by state
    (queue depth), SMPP binds of carriers and of outbound connections,
    messages waiting for their destination's delivery lane, SIP
    registrations.  Called by C{application.py} once every service is
    built; each gauge reads what its service already shows the shell.

    @param live: the node's L{appliance.shell.live.LiveState} (its
        sources by name).
    """
    def queue():
        return [((state,), n) for state, n in
                sorted(dict(storage.messages().counts()).items())]
    metrics.gauge("appliance_queue_messages", "Stored messages by state",
                  ("state",), queue)

    def carrier_binds():
        smpp = live.source("smpp")
        server = getattr(smpp, "server", None)
        if server is None:
            return []
        return [((name,), len(sessions))
                for name, sessions in sorted(server.binds.items())]
    metrics.gauge("appliance_smpp_binds", "SMPP binds of carriers",
                  ("carrier",), carrier_binds)

    def connection_binds():
        pool = live.source("smpp-client")
        if pool is None or not hasattr(pool, "shell_table"):
            return []
        out = []
        for row in pool.shell_table("connections")[1]:
            up = str(row[2]).split("/")[0]
            out.append(((str(row[0]),), int(up) if up.isdigit() else 0))
        return out
    metrics.gauge("appliance_smpp_connection_binds",
                  "Bound binds of outbound SMPP connections",
                  ("connection",), connection_binds)

    def waiting_for_destination():
        lanes = getattr(getattr(live, "core", None), "lanes", None)
        return [((), lanes.waiting_count())] if lanes is not None else []
    metrics.gauge("appliance_delivery_waiting", "Messages waiting for a "
                  "free delivery slot of their destination (an app, a "
                  "route)", (), waiting_for_destination)

    def registrations():
        # This node's bindings, counted (the shell's table also lists
        # the other nodes' of a shared database, read from it).
        sip = live.source("sip")
        if sip is None or not hasattr(sip, "statistics"):
            return []
        # A failure is logged with its traceback by the collector.
        return [((), sip.statistics()["registered_contacts"])]
    metrics.gauge("appliance_sip_registrations", "Live SIP registrations",
                  (), registrations)
