# -*- test-case-name: tests.test_application -*-
"""
The one wiring module: builds the node's service tree from a validated
configuration.  The database comes first, then one named child per
enabled protocol section, each made by its domain's C{make_service}.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from pathlib import Path

from twisted.application.service import Service
from twisted.logger import Logger

from appliance.config import NodeConfig
from appliance.billing.service import BillingService
from appliance.logs import observer
from appliance.metrics import Metrics, watch_node
from appliance.messaging.core import MessagingCore
from appliance.smpp.connections import make_pool
from appliance.node import NodeContext, NodeService, PortMap, child
from appliance.store.database import Storage, open_database
from appliance.billing import generations as billing_generations
from appliance.http import generations as http_generations
from appliance.messaging import generations as messaging_generations
from appliance.model import generations as model_generations
from appliance.sigtran import generations as sigtran_generations
from appliance.sip import generations as sip_generations
from appliance.smpp import generations as smpp_generations

log = Logger()

#: Section name to the module whose C{make_service(section, node)} builds
#: that service.  Later protocols add their line here.
SERVICE_FACTORIES = {
    "shell": "appliance.shell.service",
    "sip": "appliance.sip.service",
    "smpp": "appliance.smpp.service",
    "m3ua": "appliance.sigtran.service",
    "http": "appliance.http.service",
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
              factories: dict[str, str] | None = None) -> NodeService:
    """
    Build the unstarted service tree.

    @param config: the validated node configuration.
    @param reactor: the reactor every service uses.
    @param log_observer: the observer twistd should log through (default:
        the node's own, at the configured level).
    @param factories: section name to module path (default
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
        pack_days=config.storage.pack_days, generations=GENERATIONS)
    context = NodeContext(reactor=reactor, config=config, storage=storage,
                          ports=PortMap(config.ports_file))
    node = NodeService(context, log_observer)
    # One metrics registry for the node; [http] serves it on /metrics.
    metrics = Metrics()
    context.services["metrics"] = metrics
    storage.batch_observer = metrics.batch_committed
    child(node, storage, "storage")
    if config.node.provision is not None:
        child(node, Provisioner(context, config.node.provision), "provision")
    if any(s.name in MESSAGING_SECTIONS for s in config.enabled()):
        sip = config.sip
        core = MessagingCore(storage, reactor,
                             retry_schedule=sip.retry_schedule,
                             validity=sip.validity)
        core.metrics = metrics
        # Rating, prepaid charging and records, inside the core's writes.
        billing = BillingService(storage, reactor)
        billing.attach(core)
        context.services["billing"] = billing
        child(node, billing, "billing")
        context.services["messaging"] = core
        child(node, core, "messaging")
        # Outbound SMPP connections (service policies with transport smpp):
        # after the core they deliver for, before the protocol services.
        pool = make_pool(context)
        context.services["smpp-client"] = pool
        child(node, pool, "smpp-client")
    factories = SERVICE_FACTORIES if factories is None else factories
    for section in config.enabled():
        make: Callable = importlib.import_module(
            factories[section.name]).make_service
        service = make(section, context)
        context.services[section.name] = service
        child(node, service, section.name)
    if "m3ua" in context.services:
        # TCAP/MAP (SMSC) and ISUP on the SIGTRAN service; the MAP agent
        # delivers policies with transport map, mo-forwardSM is submitted.
        from appliance.sigtran.smsc import SMSCService
        smsc = SMSCService(context.services["m3ua"],
                           context.services.get("messaging"), reactor,
                           storage=storage)
        context.services["map"] = smsc
        child(node, smsc, "map")
    watch_node(metrics, storage, context.services)
    return node


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
