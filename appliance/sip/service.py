"""
The SIP service: listeners on every C{[sip] listen} endpoint (UDP, TCP,
TLS; IPv4 and IPv6), the transaction layer, the registrar, the MESSAGE
intake and the delivery agent, wired together; plus the live tables the
shell shows.

L{make_service} is what C{appliance.application} calls for C{[sip]}.
"""
from __future__ import annotations

import socket
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from appliance.listen import listen_all, stop_all
from appliance.model.numbering import node_plan
from appliance.sip.application import DomainCheck, SIPApplication
from appliance.sip.auth import AccountBook, DigestGate
from appliance.sip.delivery import SIPDeliveryAgent
from appliance.sip.flows import FlowTable, probe_local_host
from appliance.sip.messages import MessageIntake
from appliance.sip.overload import LoadShedder, socket_inode, udp_drops
from appliance.sip.protocol import SIPDatagramProtocol, SIPStreamProtocol
from appliance.sip.registrar import BindingStore, Registrar
from appliance.sip.transaction import TimerSettings, TransactionLayer
from appliance.sip.udp import listen_udp

__all__ = ["SIPService", "TRANSPORT", "make_service"]

#: The transport name of messages this service delivers (to local
#: accounts' apps).
TRANSPORT = "sip"

#: Listener kind to the Via transport name (port map keys: port_key).
_KINDS = {"udp": "UDP", "tcp": "TCP", "ssl": "TLS"}

REGISTRATION_HEADERS = ("account", "contact", "transport", "source", "sent to",
                        "expires in", "user agent", "node")
TRANSACTION_HEADERS = ("branch", "kind", "method", "state", "age")


class _StreamFactory(Factory):
    """
    Builds one L{SIPStreamProtocol} per TCP/TLS connection, tied to the
    flow table.
    """

    def __init__(self, service: SIPService, name: str) -> None:
        self.service = service
        self.name = name

    def buildProtocol(self, addr: Any) -> SIPStreamProtocol:
        """
        @param addr: the peer address.
        @return: a stream protocol feeding the transaction layer.
        """
        s = self.service
        return SIPStreamProtocol(s.layer, agent=s.section.domain, name=self.name,
                                 on_lost=s.flows.lost, on_made=s._connection_made)


#: Bytes of kernel receive buffer asked for on SIP UDP sockets by default
#: (C{[sip] udp_receive_buffer}): under load the apps' 200 OKs to our
#: MESSAGEs arrive in bursts, and the default (about 208 KiB) overflows,
#: which costs a retransmission per drop.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


def _grow_receive_buffer(port: Any, log: Logger, size: int = UDP_RECEIVE_BUFFER) -> None:
    """Ask for C{size} bytes (the kernel caps it at rmem_max)."""
    handle = getattr(port, "socket", None)
    if handle is None:
        return
    try:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    except OSError as e:
        log.warn("cannot grow the SIP UDP receive buffer: {e}", e=e)
        return
    log.info("SIP UDP receive buffer: {size} bytes",
             size=handle.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


def _format_source(source: tuple[str, int]) -> str:
    host, port = source
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class SIPService(Service):
    """
    The registrar and messaging endpoint for apps.

    @ivar ready: fires once every listener is bound (ports recorded in
        C{node.ports} as C{sip_udp}, C{sip_tcp}, C{sip_tls}).
    @ivar layer: the L{TransactionLayer}.
    @ivar registrar: the L{Registrar}; C{registrar.store} the bindings.
    @ivar intake: the L{MessageIntake}.
    @ivar agent: the L{SIPDeliveryAgent} (the wiring sets it on the core
        for L{TRANSPORT}).
    @ivar flows: the L{FlowTable}.
    @ivar ports: the listening ports.
    @ivar shedder: the L{LoadShedder} answering new requests 503 when the
        node is over capacity; its counters feed C{/metrics}.
    """

    log = Logger()

    def __init__(self, section: Any, node: Any, core: Any = None,
                 local_host: Callable[[str], str | None] | None = probe_local_host,
                 secret: bytes | None = None, timers: TimerSettings | None = None,
                 metrics: Any = None) -> None:
        """
        @param section: the L{appliance.config.SIPSection}.
        @param node: the L{appliance.node.NodeContext}.
        @param core: the L{IMessagingCore} MESSAGE requests and
            registrations go to (C{None}: MESSAGE requests get 500).
        @param local_host: finds the local address towards a destination
            (for Via, when a UDP socket is bound to a wildcard address).
        @param secret: the digest nonce secret; random when C{None}.
        @param timers: the transaction timers (RFC 3261 defaults).
        @param metrics: the node's L{appliance.metrics.Metrics}, fed the
            drop counters (C{appliance_sip_drops}); none when C{None}.
        """
        self.section = section
        self.node = node
        self.core = core
        clock = node.reactor
        self.ready: defer.Deferred = defer.Deferred()
        self.ports: list[Any] = []
        self.flows = FlowTable()
        self.domains = DomainCheck(section.domain, [l.interface for l in section.listen])
        #: The accounts' credentials and DIDs, and the numbering plan: a
        #: snapshot rebuilt on configuration commits.
        self.accounts = AccountBook(node.storage, plan=node_plan)
        self.gate = DigestGate(section.realm, tuple(section.digest_algorithms),
                               section.nonce_lifetime, section.auth_failures, clock,
                               self.accounts.get, secret)
        node_config = getattr(getattr(node, "config", None), "node", None)
        self.store = BindingStore(node.storage, clock,
                                  node=getattr(node_config, "name", "appliance"))
        self.registrar = Registrar(section, self.gate, self.store, self.accounts.get, clock,
                                   online=self._online)
        self.intake = MessageIntake(section, self.gate, core,
                                    plan=self.accounts.current_plan)
        self.application = SIPApplication(self.domains, self.registrar.handle,
                                          self.intake.handle)
        self.layer = TransactionLayer(self.application, clock, timers)
        self.application.layer = self.layer
        self._udp_inodes: set[int] = set()
        self._udp_ports: list[Any] = []
        self.shedder = LoadShedder(
            clock, max_rate=getattr(section, "max_requests_per_second", 0),
            max_lag=getattr(section, "overload_lag_ms", 0) / 1000.0,
            backlog=self._backlog, max_backlog=getattr(section, "overload_backlog", 0),
            retry_after=getattr(section, "retry_after", 5),
            drops=self._kernel_drops,
            max_queue=getattr(section, "overload_queue_ms", 0) / 1000.0)
        self.layer.admission = self.shedder
        if metrics is not None:
            metrics.gauge("appliance_sip_drops", "SIP requests refused at the door with 503 "
                          "(by reason) and datagrams the kernel dropped on the UDP sockets, "
                          "since start", ("kind",),
                          lambda: [((k,), n) for k, n in sorted(self.shedder.counters().items())])
        self.agent = SIPDeliveryAgent(section.domain, self.store.get, self.flows, self.layer,
                                      local_host)
        self.flows.on_lost(self._flow_lost)
        self._stopping = False
        self._metrics = metrics
        #: The UDP workers (C{[sip] workers}), once started.
        self.workers: Any = None
        self._worker_protocols: list[Any] = []
        #: Challenges the workers answered, by method, since start.
        self.worker_challenges: dict[str, int] = {}

    # -- wiring ------------------------------------------------------------

    def _kernel_drops(self) -> int:
        """Datagrams the kernel dropped on our UDP sockets: what the kernel
        says with each datagram (SO_RXQ_OVFL), else (and when the workers
        read the sockets) from /proc/net/udp."""
        counts = [getattr(p, "kernel_drops", None) for p in self._udp_ports]
        if counts and None not in counts and self.workers is None:
            return sum(counts)  # type: ignore[arg-type]
        return udp_drops(self._udp_inodes)

    def _backlog(self) -> int:
        pending = getattr(self.node.storage, "pending", 0)
        return int(pending() if callable(pending) else pending)

    def _online(self, username: str) -> None:
        if self.core is None:
            return
        try:
            d = self.core.account_online(username)
        except Exception:
            # Broad: the core's callback; the REGISTER is answered anyway.
            self.log.failure("account_online({u}) failed", u=username)
            return
        if isinstance(d, defer.Deferred):
            d.addErrback(lambda f: self.log.failure("account_online({u}) failed", f, u=username))

    def _connection_made(self, protocol: SIPStreamProtocol) -> None:
        self.flows.made(protocol)
        self.domains.add(getattr(protocol.transport.getHost(), "host", ""))

    def _flow_lost(self, transport: str, peer: tuple[str, int]) -> None:
        if self._stopping:
            return  # keep stream bindings across a restart: apps re-register
        for username in self.store.drop_flow(transport, peer):
            self.log.info("{transport} flow {peer} of {username} closed: its bindings are"
                          " gone", transport=transport, peer=peer, username=username)

    # -- life cycle --------------------------------------------------------

    def startService(self) -> None:
        """
        Load the bindings, start the expiry sweep and listen on every
        endpoint.
        """
        super().startService()
        self._stopping = False
        if self.core is None:
            self.log.warn("no messaging core: MESSAGE requests will get 500")
        self.accounts.start()
        loaded = self.store.load()
        self.log.info("{n} SIP bindings loaded", n=loaded)
        self.store.start()
        self.shedder.start()
        config = getattr(self.node, "config", None)
        d = listen_all(self.node.reactor, "sip", self.section.listen,
                       factory_for=self._factory, ports=self.node.ports,
                       into=self.ports, tls=getattr(config, "tls", None),
                       on_bound=self._bound, udp=listen_udp)
        if getattr(self.section, "workers", 0):
            d.addCallback(lambda _: self._start_workers())
        d.addCallbacks(lambda _: self.ready.callback(None), self.ready.errback)

    # -- UDP workers (issue 16 item 5) ----------------------------------------

    def _start_workers(self) -> defer.Deferred | None:
        """
        Hand the bound UDP sockets to C{[sip] workers} processes
        (L{appliance.sip.worker}): this process stops reading them (they
        stay open here: it still sends on them, and a worker's death loses
        no socket), the workers answer the first request of each digest
        exchange themselves and forward every other datagram here, where
        it is handled as if read from the socket.
        """
        from appliance.workers import WorkerSet
        ports = list(self._udp_ports)
        if not ports:
            self.log.warn("[sip] workers = {n} but no UDP listener: no SIP workers",
                          n=self.section.workers)
            return None
        self._worker_protocols = [port.protocol for port in ports]
        families = []
        for port in ports:
            port.stopReading()
            families.append("inet6" if ":" in port.getHost().host else "inet")
        spec = {"families": families, "realm": self.section.realm,
                "algorithms": list(self.section.digest_algorithms),
                "nonce_lifetime": self.section.nonce_lifetime,
                "max_packet": getattr(ports[0], "maxPacketSize", 8192)}
        self.workers = WorkerSet(self.node.reactor, "sip", "appliance.sip.worker",
                                 self.section.workers, lambda n: spec,
                                 [port.fileno() for port in ports], self._from_worker)
        self.workers.on_hello = self._greet
        self.gate.limiter.on_block = self._blocked
        self.accounts.on_stale = self._forget
        if self._metrics is not None:
            self._metrics.gauge("appliance_sip_workers", "SIP UDP worker processes running",
                                (), lambda: [((), self.workers.running())])
        return self.workers.start()

    def _greet(self, worker: Any) -> None:
        """What a worker must know before it answers: the nonce secret,
        our hosts and the sources blocked for failed authentications."""
        worker.send(("secret", self.gate.secret))
        worker.send(("domains", self.domains.hosts()))
        for source, until in self.gate.limiter.blocks():
            worker.send(("block", source, until))

    def _blocked(self, source: str, until: float) -> None:
        if self.workers is not None:
            self.workers.send_all(("block", source, until))

    def _forget(self) -> None:
        """The configuration changed: the workers drop the HA1s taught."""
        if self.workers is not None:
            self.workers.send_all(("forget",))

    def _teach(self, usernames: list[str]) -> None:
        """Send the workers the HA1s of accounts just verified here."""
        realm = self.gate.verifier.realm
        for username in usernames:
            account = self.accounts.get(username)
            if account is not None and account.enabled and account.realm == realm:
                self.workers.send_all(("ha1", username, account.ha1_md5,
                                       account.ha1_sha256))

    def _from_worker(self, worker: Any, value: tuple) -> None:
        """A frame from a worker: a datagram it forwarded (its credentials
        verified there or not), or its counts."""
        kind = value[0]
        if kind == "dgram" or kind == "vouched":
            index, data, host, port, arrived = value[1:6]
            try:
                protocol = self._worker_protocols[index]
            except (IndexError, TypeError):
                self.log.error("SIP worker {n} forwarded to socket {i}: no such socket",
                               n=worker.number, i=index)
                return
            gate = self.gate
            taught: list[str] = []
            if kind == "vouched":
                gate.vouched = tuple(value[6])
            else:
                gate.taught = taught
            protocol.arrived = arrived
            try:
                protocol.datagramReceived(data, (host, port))
            finally:
                protocol.arrived = None
                gate.vouched = gate.taught = None
            if taught and self.workers is not None:
                self._teach(taught)
        elif kind == "counts":
            for method, n in value[1].items():
                self.worker_challenges[method] = self.worker_challenges.get(method, 0) + n
        else:
            self.log.warn("SIP worker {n} sent an unknown frame {kind!r}", n=worker.number,
                          kind=kind)

    def _factory(self, listener: Any) -> Any:
        """A listener's factory (UDP: its datagram protocol)."""
        if listener.kind == "udp":
            protocol = SIPDatagramProtocol(self.layer, agent=self.section.domain)
            protocol.on_queue_delay = self.shedder.note_queue_delay
            self.flows.udp.append(protocol)
            return protocol
        return _StreamFactory(self, _KINDS[listener.kind])

    def _bound(self, port: Any, listener: Any) -> None:
        if listener.kind == "udp":
            _grow_receive_buffer(port, self.log, getattr(
                self.section, "udp_receive_buffer", UDP_RECEIVE_BUFFER))
            self._udp_ports.append(port)
            inode = socket_inode(port)
            if inode is not None:
                self._udp_inodes.add(inode)
        self.domains.add(port.getHost().host)

    def stopService(self) -> defer.Deferred:
        """
        Stop the sweep and every transaction, close connections and ports.

        @return: a Deferred firing when every port is closed.
        """
        super().stopService()
        self._stopping = True
        self.store.stop()
        self.accounts.stop()
        self.shedder.stop()
        self.layer.stop()
        for protocol in self.flows.connections():
            try:
                protocol.transport.loseConnection()
            except Exception:
                # Broad: the stop goes on closing the other connections.
                self.log.failure("closing a SIP connection failed")
        self.flows.udp.clear()
        self._udp_inodes.clear()
        self._udp_ports.clear()
        self.gate.limiter.on_block = None
        workers, self.workers = self.workers, None
        if workers is None:
            return stop_all(self.ports)
        d = workers.stop()
        d.addCallback(lambda _: stop_all(self.ports))
        return d

    # -- live state for the shell ------------------------------------------

    def shell_table(self, topic: str, account: str | None = None
                    ) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """
        A live table for C{show sip <topic>}.

        @param topic: C{registrations} or C{transactions}.
        @param account: for C{registrations}, only this account.
        @return: C{(headers, rows)}, rows of text, sorted.
        @raise KeyError: for an unknown topic.
        """
        now = self.node.reactor.seconds()
        if topic == "registrations":
            rows = []
            if account is not None:
                found = [(account, b) for b in self.store.lookup(account)]
            else:
                found = list(self.store.everywhere())
            for username, b in found:
                local = b.node == self.store.node
                transport = b.transport
                if local and b.stream and self.flows.get(b.transport, b.source) is None:
                    transport += " (no connection)"
                if b.stream:
                    sent_to = "connection"
                elif b.destination:
                    sent_to = _format_source(b.target) + " (contact)"
                else:
                    sent_to = "flow"
                rows.append((username, b.contact, transport, _format_source(b.source),
                             sent_to, str(b.remaining(now)), b.user_agent, b.node))
            return REGISTRATION_HEADERS, sorted(rows)
        if topic == "transactions":
            rows = []
            j = 64 * self.layer.timers.t1
            for tx in self.layer.transactions():
                created = getattr(tx, "created", None)
                if created is None:  # a CompletedTransaction: timer J's deadline
                    created = tx.deadline - j
                rows.append((tx.branch or "-", tx.kind, tx.method, tx.state.value,
                             f"{max(0.0, now - created):.1f}s"))
            return TRANSACTION_HEADERS, sorted(rows)
        raise KeyError(f"no SIP table {topic!r}: registrations or transactions")

    def statistics(self) -> dict[str, int]:
        """
        @return: counters: registers, registered accounts and contacts,
            authentication failures, MESSAGEs accepted and refused,
            deliveries, open connections and transactions; with
            C{[sip] workers}, the workers running and restarted and the
            challenges they answered.
        """
        return {
            "registers": self.registrar.registers,
            "registered_accounts": self.store.accounts(),
            "registered_contacts": self.store.count(),
            "auth_failures": self.gate.failures,
            "messages_in": self.intake.received,
            "messages_refused": self.intake.refused,
            "delivery_attempts": self.agent.attempts,
            "delivered": self.agent.delivered,
            "connections": len(self.flows),
            "transactions": len(self.layer.transactions()),
            **{f"dropped_{k}": n for k, n in self.shedder.counters().items()},
            **self._worker_statistics(),
        }

    def _worker_statistics(self) -> dict[str, int]:
        if not getattr(self.section, "workers", 0) and self.workers is None:
            return {}
        running = 0 if self.workers is None else self.workers.running()
        return {"workers": running,
                "worker_restarts": 0 if self.workers is None else self.workers.restarts,
                "worker_verified": self.gate.vouches,
                **{f"worker_challenges_{m.lower()}": n
                   for m, n in sorted(self.worker_challenges.items())}}


def make_service(section: Any, node: Any, core: Any, metrics: Any = None) -> SIPService:
    """
    @param section: the C{[sip]} section.
    @param node: the C{NodeContext}.
    @param core: the L{IMessagingCore}.
    @param metrics: the node's metrics registry.
    @return: the unstarted SIP service; C{appliance.application} makes
        its C{agent} the core's agent for L{TRANSPORT}.
    """
    return SIPService(section, node, core=core, metrics=metrics)
