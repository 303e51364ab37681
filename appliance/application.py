# -*- test-case-name: tests.test_application -*-
"""
The one wiring module: builds the node's service tree from a validated
configuration and hands each service its collaborators.  The database
comes first, then billing, the messaging core and the outbound SMPP
connections (when a messaging section is enabled), then one named child
per enabled section, each made by its factory in L{SERVICE_FACTORIES}.

Every cross-service call is set up here and nowhere else: the core's
delivery agents (C{set_agent}), its charger (constructor), the SMPP
receipt writer (C{add_state_writer}), and the shell's
L{appliance.shell.live.LiveState} (the core, balances, carrier operations
and the sources C{show statistics} and the live tables read).  No service
looks another up.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pathlib import Path

from twisted.application.service import Service
from twisted.logger import Logger

from appliance.config import NodeConfig
from appliance.billing.service import BillingService
from appliance.logs import observer
from appliance.admission import Admission
from appliance.messaging.lanes import Lanes
from appliance.metrics import Metrics, watch_node
from appliance.messaging.core import MessagingCore
from appliance.shell.live import LiveState
from appliance.smpp import connections as smpp_connections
from appliance.node import NodeContext, NodeService, PortMap, child
from appliance.store.database import Storage, open_database, shared_uri
from appliance.alarms import generations as alarms_generations
from appliance.billing import generations as billing_generations
from appliance.cluster import generations as cluster_generations
from appliance.http import generations as http_generations
from appliance.messaging import generations as messaging_generations
from appliance.model import generations as model_generations
from appliance.notify import generations as notify_generations
from appliance.sigtran import generations as sigtran_generations
from appliance.sip import generations as sip_generations
from appliance.smpp import generations as smpp_generations

log = Logger()

@dataclass
class Built:
    """
    What the section factories are handed besides their section and the
    node context: the services built before them.

    @ivar core: the messaging core (C{None} without a messaging section).
    @ivar billing: the billing service (likewise).
    @ivar pool: the outbound SMPP connections (likewise).
    @ivar live: what the shell shows of the running node.
    @ivar metrics: the node's metrics registry.
    @ivar m3ua: the SIGTRAN service, once built (the SMSC runs on it).
    @ivar admission: the node's L{Admission} (overload at the door).
    """
    core: Any = None
    billing: Any = None
    pool: Any = None
    live: LiveState | None = None
    metrics: Any = None
    m3ua: Any = None
    sip: Any = None
    notification: Any = None
    cluster: Any = None
    admission: Any = None


def make_cluster(node: NodeService, context: NodeContext, built: Built,
                 local_transport: str) -> Any:
    """
    On a database other nodes share (ZEO, PostgreSQL): the node's share
    of the cluster (registry, heartbeat, message leases, takeover,
    hand-over to the node holding an app's registration), before the
    core that asks it; C{None} on a node's own database.
    """
    config = context.config
    if not shared_uri(config.storage.uri):
        return None
    from appliance.cluster.service import ClusterService
    service = ClusterService(
        context.storage, context.reactor, config.node.name,
        local_transport=local_transport, lease=config.storage.lease,
        heartbeat=config.storage.heartbeat)
    built.cluster = service
    built.live.add_source("cluster", service)
    child(node, service, "cluster")
    return service


def make_shell(section: Any, context: NodeContext, built: Built) -> Any:
    """The C{[shell]} service, showing C{built.live}."""
    from appliance.shell.service import make_service
    return make_service(section, context, built.live)


def make_sip(section: Any, context: NodeContext, built: Built) -> Any:
    """The C{[sip]} service: MESSAGE and REGISTER go to the core, and its
    agent delivers the core's local messages."""
    from appliance.sip import service as sip
    service = sip.make_service(section, context, built.core, metrics=built.metrics)
    built.core.set_agent(sip.TRANSPORT, service.agent)
    built.live.add_source("sip", service)
    built.sip = service
    return service


def make_smpp(section: Any, context: NodeContext, built: Built) -> Any:
    """The C{[smpp]} service: carriers' submits go to the core, which
    hands final states back for receipts."""
    from appliance.smpp.service import make_service
    service = make_service(section, context, built.core, built.admission)
    # A message's receipt commits with its final state.
    built.core.add_state_writer(service.server.courier)
    built.live.add_source("smpp", service)
    built.live.carriers = service
    return service


def make_m3ua(section: Any, context: NodeContext, built: Built) -> Any:
    """The C{[m3ua]} service (SIGTRAN associations)."""
    from appliance.sigtran.service import make_service
    service = make_service(section, context)
    built.m3ua = service
    built.live.add_source("m3ua", service)
    return service


def make_http(section: Any, context: NodeContext, built: Built) -> Any:
    """The C{[http]} service: tenants' requests go to the core (prices
    from the charger); the core's transactions queue its callbacks."""
    from appliance.http.service import make_service, queue_hook
    service = make_service(section, context, built.core,
                           charger=built.billing.charger,
                           metrics=built.metrics,
                           admission=built.admission)
    # On a shared database each callback is sent by one node only.
    placement = built.cluster.place_callbacks(service.callbacks) \
        if built.cluster is not None else None
    built.core.add_transaction_hook(queue_hook(context.reactor,
                                               service.callbacks.kick,
                                               placement))
    built.live.add_source("http", service)
    return service


#: Section name to the factory C{make(section, context, built)} of that
#: service.  Later protocols add their line here.
SERVICE_FACTORIES: dict[str, Callable[[Any, NodeContext, Built], Any]] = {
    "shell": make_shell,
    "sip": make_sip,
    "smpp": make_smpp,
    "m3ua": make_m3ua,
    "http": make_http,
}

#: Each domain's database upgrade steps, in dependency order: the store
#: runs them (one counter per domain) before any service starts.  A new
#: domain with persistent state adds its line here.
GENERATIONS = (
    ("model", model_generations.GENERATIONS),
    ("messaging", messaging_generations.GENERATIONS),
    ("sip", sip_generations.GENERATIONS),
    ("smpp", smpp_generations.GENERATIONS),
    ("billing", billing_generations.GENERATIONS),
    ("http", http_generations.GENERATIONS),
    ("ss7", sigtran_generations.GENERATIONS),
    ("notify", notify_generations.GENERATIONS),
    ("alarms", alarms_generations.GENERATIONS),
    ("cluster", cluster_generations.GENERATIONS),
)


def memory_storage(reactor: Any = None, **kwargs: Any) -> Storage:
    """
    An opened in-memory storage with every domain's generations applied:
    what unit tests and benches build their services on.
    """
    return Storage.open_memory(reactor=reactor, generations=GENERATIONS,
                               **kwargs)


#: Sections whose service carries messages through the messaging core.
MESSAGING_SECTIONS = frozenset({"sip", "smpp", "http", "m3ua"})


def make_node(config: NodeConfig, reactor: Any,
              log_observer: Any = None,
              factories: dict[str, Callable] | None = None) -> NodeService:
    """
    Build the unstarted service tree.

    @param config: the validated node configuration.
    @param reactor: the reactor every service uses.
    @param log_observer: the observer twistd should log through (default:
        the node's own, at the configured level).
    @param factories: section name to factory (default
        L{SERVICE_FACTORIES}).
    """
    if log_observer is None:
        log_observer = observer(config.node.log_level)
    storage = Storage(
        lambda: open_database(config.storage.uri, config.node.data_dir,
                              config.storage.cache_size),
        reactor=reactor, batch_max=config.storage.batch_max,
        batch_delay=config.storage.batch_delay,
        pack_interval=config.storage.pack_interval,
        pack_days=config.storage.pack_days, generations=GENERATIONS,
        poll_interval=0.5 if shared_uri(config.storage.uri) else 0.0)
    context = NodeContext(reactor=reactor, config=config, storage=storage,
                          ports=PortMap(config.ports_file))
    node = NodeService(context, log_observer)
    # One metrics registry for the node; [http] serves it on /metrics.
    metrics = Metrics()
    storage.batch_observer = metrics.batch_committed
    child(node, storage, "storage")
    if config.node.provision is not None:
        child(node, Provisioner(context, config.node.provision), "provision")
    built = Built(live=LiveState(), metrics=metrics)
    if any(s.name in MESSAGING_SECTIONS for s in config.enabled()):
        from appliance.sip.service import TRANSPORT as LOCAL_TRANSPORT
        sip, overload = config.sip, config.overload
        # Rating, prepaid charging and records, inside the core's writes.
        # Tenants (HTTP API users) pay through a lookup the HTTP domain owns.
        from appliance.http.model import tenant_of
        built.billing = BillingService(storage, reactor, tenants=tenant_of)
        child(node, built.billing, "billing")
        # Several nodes on one database: who delivers which message.
        cluster = make_cluster(node, context, built, LOCAL_TRANSPORT)
        built.core = MessagingCore(storage, reactor,
                                   local_transport=LOCAL_TRANSPORT,
                                   retry_schedule=sip.retry_schedule,
                                   validity=sip.validity,
                                   charger=built.billing.charger,
                                   metrics=metrics, ownership=cluster,
                                   lanes=Lanes(
                                       overload.destination_in_flight,
                                       overload.destination_waiting,
                                       overload.total_waiting))
        if cluster is not None:
            cluster.dispatch = built.core.dispatch_ids
            built.core.add_transaction_hook(cluster.transaction_hook)
        # Balance-low notifications are messages like any other.
        built.billing.charger.submit = built.core.submit
        child(node, built.core, "messaging")
        # What the listeners ask before they take new work (overload).
        built.admission = admission = Admission(
            reactor, lambda: storage.pending, max_delay=overload.max_delay,
            min_pending=overload.min_pending,
            max_pending=overload.max_pending, max_lag=overload.max_lag,
            metrics=metrics)
        observe = storage.batch_observer

        def committed(size: int, seconds: float) -> None:
            admission.committed(size)
            observe(size, seconds)
        storage.batch_observer = committed
        child(node, admission, "admission")
        # Outbound SMPP connections (service policies with transport smpp):
        # after the core they deliver for, before the protocol services.
        built.pool = smpp_connections.make_pool(context, built.core)
        built.core.set_agent(smpp_connections.TRANSPORT, built.pool)
        child(node, built.pool, "smpp-client")
        built.live.core = built.core
        built.live.balances = built.billing
        for name, source in (("billing", built.billing),
                             ("messaging", built.core),
                             ("smpp-client", built.pool)):
            built.live.add_source(name, source)
    # Before the sections (the shell stays last); it reads them at checks.
    make_alarms(node, context, built, log_observer)
    factories = SERVICE_FACTORIES if factories is None else factories
    for section in config.enabled():
        service = factories[section.name](section, context, built)
        child(node, service, section.name)
    if built.m3ua is not None:
        # TCAP/MAP (SMSC) and ISUP on the SIGTRAN service; the MAP agent
        # delivers policies with transport map, mo-forwardSM is submitted.
        from appliance.sigtran import smsc as sigtran_smsc
        smsc = sigtran_smsc.SMSCService(built.m3ua, built.core, reactor,
                                        storage=storage)
        if built.core is not None and smsc.agent is not None:
            built.core.set_agent(sigtran_smsc.TRANSPORT, smsc.agent)
        built.live.add_source("map", smsc)
        child(node, smsc, "map")
    if built.core is not None or built.m3ua is not None:
        built.notification = make_notification(
            node, context, built, smsc if built.m3ua is not None else None)
    if built.cluster is not None and built.sip is not None:
        # Where apps are registered: the registrar's bindings, each with
        # the node holding it, across the cluster.
        from appliance.cluster.locator import RegistrarLocator
        built.cluster.locator = RegistrarLocator(built.sip.store.holders)
    if built.cluster is not None and built.live.carriers is not None:
        # Carriers' receipts go out over the node holding their bind.
        server = built.live.carriers.server
        built.cluster.place_receipts(server.courier,
                                     server.receiving_carriers)
    watch_node(metrics, storage, built.live)
    node.live = built.live
    return node


def make_notification(node: NodeService, context: NodeContext,
                      built: Built, smsc: Any) -> Any:
    """
    The missed-call service (seed 003): INVITEs to its service numbers
    (SIP), IAMs on the ISUP circuits and alertServiceCentre (MAP) are its
    triggers; its SMS leave through the core or by MAP.
    """
    from appliance.notify.service import NotificationService
    service = NotificationService(
        context.storage, context.reactor, core=built.core,
        map_client=smsc.client if smsc is not None else None,
        map_agent=smsc.agent if smsc is not None else None)
    if built.core is not None:
        # SMS to the service numbers (a policy with transport
        # notification): the opt-out keyword.
        from appliance.notify.service import TRANSPORT
        built.core.set_agent(TRANSPORT, service.agent)
    if built.sip is not None:
        built.sip.application.invite = service.sip_invite
    if smsc is not None:
        smsc.isup.add_iam_listener(service.isup_iam)
        smsc.server.add_alert_listener(service.alert)
    built.live.add_source("notification", service)

    def counts():
        return [((name,), n) for name, n in
                sorted(service.statistics().items())]
    built.metrics.gauge("appliance_notification",
                        "Missed-call service: triggers by source and "
                        "case, SMS by kind, pending, alerts, HLR/MSC "
                        "errors", ("counter",), counts)
    child(node, service, "notification")
    return service


def make_alarms(node: NodeService, context: NodeContext, built: Built,
                log_observer: Any) -> Any:
    """
    The node's alarms (every service's): conditions read, at each check,
    from the M3UA associations, the outbound SMPP connections, the message
    store, the missed-call service's HLR/MSC timeouts (whichever of them
    C{built} holds by then) and the storage's commit times; traps to the
    SNMP managers; the shell's log levels applied to the node's log
    observer.
    """
    from appliance.alarms.service import AlarmService, Readers
    storage = context.storage

    def associations():
        if built.m3ua is None:
            return None
        return [(a.name, a.state) for a in built.m3ua.associations.values()]

    def connections():
        if built.pool is None:
            return None
        return [(name, sum(b.up for b in c.binds))
                for name, c in sorted(built.pool.connections.items())]

    def waiting():
        if built.core is None:
            return None
        return sum(n for state, n in storage.messages().counts().items()
                   if state in ("accepted", "delivering"))

    def timeouts():
        if built.notification is None:
            return 0
        return sum(n for name, n in built.notification.statistics().items()
                   if name.endswith("-timeouts"))
    service = AlarmService(
        storage, context.reactor,
        Readers(associations, connections, waiting, timeouts),
        log_filter=log_observer if hasattr(log_observer, "set_levels")
        else None)
    observe = storage.batch_observer

    def batch_committed(size: int, seconds: float) -> None:
        if observe is not None:
            observe(size, seconds)
        service.observe_commit(size, seconds)
    storage.batch_observer = batch_committed
    built.live.add_source("alarms", service)
    child(node, service, "alarms")
    return service


class ProvisionError(Exception):
    """The start-up provisioning script failed."""


class Provisioner(Service):
    """
    Runs the operator's provisioning script (C{[node] provision}, e.g.
    C{shell/demo.cli}) through the shell's command path the first time the
    node starts on a database that has not been provisioned yet.  Success
    is recorded in the database, so later starts skip it; a failure stops
    the start-up with the script's line number and reason, and the next
    start tries again (each command is its own transaction, and the
    object commands enter existing objects, so a re-run is safe).
    """

    KEY = "appliance.provisioned"
    log = Logger()

    def __init__(self, context: NodeContext, script: Path):
        """
        @param context: the node context (its storage is started first).
        @param script: the shell script to run.
        """
        self.context = context
        self.script = script

    def startService(self) -> None:
        """Provision now if the database never was."""
        super().startService()
        storage = self.context.storage
        if storage.root().provisioned or storage.domain_get(self.KEY):
            return
        from appliance.shell.script import run_script
        text = self.script.read_text("utf-8")
        result = run_script(storage, text, user="provision",
                            source=f"startup:{self.script.name}",
                            realm=self.context.config.sip.realm)
        if not result.ok:
            raise ProvisionError(f"{self.script}: {result.text.strip()}")
        with storage.transaction(user="provision",
                                 note=f"provisioned from {self.script}"
                                 ) as root:
            root.provisioned = str(self.script)
        self.log.info("provisioned the database from {script}",
                      script=str(self.script))
