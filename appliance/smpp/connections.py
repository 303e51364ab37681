# -*- test-case-name: tests.smpp.test_smpp_client_pool -*-
"""
Outbound SMPP connections: the pool that keeps every configured
L{appliance.model.carriers.Connection} bound, and the messaging core's
delivery agent for transport C{smpp}.

  - One L{appliance.smpp.outbound.OutboundConnection} per Connection;
    one C{ClientService} per
    bind of it (C{binds} of them), each reconnecting with exponential
    backoff after a loss and a longer one after a refused bind.
  - After each configuration commit the pool reconciles: a new connection
    binds, a removed one unbinds and closes, C{shutdown} unbinds and stops
    reconnecting (C{no shutdown} binds again), a changed address or
    credentials re-bind, a changed window or throughput applies live.
  - L{ConnectionPool.deliver} sends a message over the first connection of
    its policy (priority order) that has a bind up, falling through to the
    next on a down connection or a transient error.  Each part waits for a
    window slot on some bind and for the connection's throughput pacing.
  - Results: all parts accepted gives C{Outcome("forwarded")} with the
    message id of the LAST part (the far side reassembles there; receipts
    for the other parts are acknowledged and change nothing); a transient
    status, a timeout or a lost bind on every connection gives
    C{Outcome("retry")} (the core retries on its schedule; parts already
    accepted are sent again, under a new reference); a permanent status
    gives C{Outcome("failed", "<status name>")}.
  - Receipts (deliver_sm with a receipt esm_class) go to
    C{core.receipt_received}; deliver_sm_resp is sent once that is
    committed.  A receipt that matches nothing is tried again a few times
    (it can overtake the commit of its own C{forwarded} outcome).
"""
from __future__ import annotations

import collections
from dataclasses import replace
from typing import Any, Callable

from smpp.pdu.pdu_encoding import EsmClassEncoder
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from appliance.messaging.vocabulary import (NoRoute, Outcome, Refused,
                                            Submission, normalize_remote_id)
from appliance.model.errors import ModelError
from appliance.smpp import pdus
from appliance.model.numbers import normalize_e164
from appliance.smpp.concat import GroupKey, ReassemblyFull, text_of
from appliance.smpp.reassembly import DurableReassembler, PartInfo
from appliance.sms.udh import ConcatenationError
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.model.numbering import plan_for
from appliance.smpp.client import Timers
from appliance.smpp.outbound import (
    Backoff, ConnectionSettings, OutboundConnection, default_endpoints,
    tls_options)
from appliance.smpp.remote import (
    References, is_receipt, parse_receipt, submit_frames)

__all__ = ["ConnectionPool", "make_pool", "Backoff", "ConnectionSettings",
           "OutboundConnection", "default_endpoints", "tls_options"]

#: The transport name of service policies this pool delivers.
TRANSPORT = "smpp"
#: Columns of C{show connections}.
CONNECTION_HEADERS = ("name", "state", "binds", "in-flight", "rate")
#: deliver_sm_resp status for a deliver_sm that is not a receipt.
ESME_RX_R_APPN = 0x00000065
#: Seconds between tries of a receipt that matched no message yet.
RECEIPT_RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0)
_esm = EsmClassEncoder()


@implementer(IDeliveryAgent)
class ConnectionPool(MultiService):
    """
    Every outbound connection, kept in line with the configuration; the
    messaging core's agent for transport C{smpp}.

    @ivar connections: name to L{OutboundConnection}.
    """

    name = "smpp-client"
    log = Logger()

    def __init__(self, storage: Any, core: Any, clock: IReactorTime,
                 endpoint_for: Callable[[ConnectionSettings], Any],
                 timers: Timers = Timers(), backoff: Backoff | None = None,
                 registered_delivery: int = 1,
                 reassembly_timeout: float = 300.0,
                 reassembly_policy: str = "deliver_partial"):
        """
        @param storage: the L{IStorage} (configuration and change events).
        @param core: the messaging core.
        @param clock: timers and time.
        @param endpoint_for: settings to a client endpoint.
        @param timers: the client timers.
        @param backoff: reconnection delays.
        @param registered_delivery: what submit_sm asks for (1: a receipt).
        @param reassembly_timeout: seconds the parts of a vendor's
            concatenated message may take (C{[smpp]}'s).
        @param reassembly_policy: what becomes of one whose parts did not
            all arrive (C{[smpp]}'s).
        """
        super().__init__()
        self.storage = storage
        self.core = core
        self.clock = clock
        self.endpoint_for = endpoint_for
        self.timers = timers
        self.backoff = backoff or Backoff()
        self.registered_delivery = registered_delivery
        self.references = References()
        self.connections: dict[str, OutboundConnection] = {}
        self._parts: collections.OrderedDict = collections.OrderedDict()
        self.receipts = collections.Counter()
        self.messages = collections.Counter()
        self.parts = DurableReassembler(storage, clock, reassembly_timeout,
                                        reassembly_policy,
                                        container="connection_parts")
        self.reassembly_timeout = reassembly_timeout
        self._authorized: dict[GroupKey, Any] = {}
        self._refused: dict[GroupKey, tuple[int, float]] = {}
        self._expiry: Any = None

    def startService(self) -> None:
        """Bind every connection, and follow configuration changes (the
        wiring made this the core's agent for L{TRANSPORT})."""
        self.parts.load(self.storage.domain("smpp"))
        self.reconcile()
        super().startService()
        self.storage.add_change_listener(self._changed)
        from twisted.internet import task
        self._expiry = task.LoopingCall(self.expire_parts)
        self._expiry.clock = self.clock
        self._expiry.start(max(1.0, min(10.0, self.reassembly_timeout / 4)),
                           now=False)

    def stopService(self) -> defer.Deferred:
        """Stop following changes; unbind everything."""
        if self._expiry is not None and self._expiry.running:
            self._expiry.stop()
        try:
            self.storage.remove_change_listener(self._changed)
        except ValueError:
            pass
        return super().stopService()

    def _changed(self, note: str) -> None:
        self.reconcile()

    def reconcile(self) -> None:
        """Bring the connections in line with the database."""
        root = self.storage.root()
        wanted = {name: ConnectionSettings.of(
                      c, plan_for(root, "connection", name))
                  for name, c in root.connections.items()}
        for name in list(self.connections):
            if name not in wanted:
                conn = self.connections.pop(name)
                self.log.info("connection {name} removed; closing",
                              name=name)
                conn.disownServiceParent()
        for name, settings in wanted.items():
            conn = self.connections.get(name)
            if conn is None:
                conn = OutboundConnection(self, settings)
                self.connections[name] = conn
                conn.setServiceParent(self)
            elif conn.settings != settings:
                conn.reconfigure(settings).addErrback(
                    lambda f, name=name: self.log.failure(
                        "reconfiguring connection {name} failed", f,
                        name=name))

    # -- delivering ----------------------------------------------------------

    def deliver(self, message: Any) -> defer.Deferred:
        """
        Send a message over its policy's connections (see the module
        docstring for the outcomes).

        @param message: a L{appliance.messaging.vocabulary.MessageView}.
        @return: a Deferred firing with an L{Outcome}.
        """
        return self._deliver(message)

    def _deliver(self, view: Any) -> defer.Deferred:
        table = self.core.route_table()
        entry = table.entry(view.route) if view.route else None
        if entry is None:
            return defer.succeed(Outcome(
                "failed", f"service policy {view.route!r} no longer exists"))
        if not entry.connections:
            return defer.succeed(Outcome(
                "failed", f"service policy {entry.name} has no connections"))
        if view.text is None:
            return defer.succeed(Outcome("failed", "message has no text"))
        try:
            # The concatenation reference is taken only for a message of
            # several parts (a single part carries none).
            outgoing = submit_frames(
                view.sender, view.recipient, view.text, 0, view.hops + 1,
                self.registered_delivery, view.encoding)
            if outgoing.parts > 1:
                outgoing = submit_frames(
                    view.sender, view.recipient, view.text,
                    self.references.next(view.recipient), view.hops + 1,
                    self.registered_delivery, view.encoding)
        except ValueError as e:
            return defer.succeed(Outcome("failed",
                                         f"cannot be sent as SMS: {e}"))
        return self._over(entry.connections, 0, outgoing, [])

    def _over(self, names: tuple, first: int, outgoing: Any,
              reasons: list[str]) -> defer.Deferred:
        """Send over the first of C{names[first:]} with a bind up, falling
        through on a transient result (a callback chain, no generator)."""
        for i in range(first, len(names)):
            name = names[i]
            conn = self.connections.get(name)
            if conn is None or not conn.available:
                reasons.append(f"{name}: "
                               f"{conn.state if conn else 'not configured'}")
                continue
            return conn.send(outgoing).addCallback(
                self._sent, name, names, i + 1, outgoing, reasons)
        return defer.succeed(Outcome("retry", "; ".join(reasons)))

    def _sent(self, result: tuple, name: str, names: tuple, following: int,
              outgoing: Any, reasons: list[str]) -> Any:
        kind, reason, message_id = result
        if kind == "ok":
            return Outcome("forwarded", f"accepted by {name}",
                           remote_id=message_id, connection=name)
        if kind == "permanent":
            return Outcome("failed", f"{name}: {reason}")
        reasons.append(f"{name}: {reason}")
        return self._over(names, following, outgoing, reasons)

    # -- receipts ------------------------------------------------------------

    def expect_part_receipts(self, connection: str, ids: list[str]) -> None:
        """
        Note the ids of a forwarded message's parts other than the last:
        their receipts are acknowledged without a lookup (the last part's
        receipt decides the message).  At most 100,000 are remembered.
        """
        for mid in ids:
            self._parts[(connection, normalize_remote_id(mid))] = None
        while len(self._parts) > 100_000:
            self._parts.popitem(last=False)

    def receipt(self, connection: str, pdu: Any) -> defer.Deferred:
        """
        A deliver_sm from the far side of C{connection}.

        @return: a Deferred firing with the deliver_sm_resp status, once
            a receipt's final state is committed (or matched nothing).
        """
        params = pdu.params
        esm = params.get("esm_class")
        esm_value = _esm.encode(esm)[0] if esm is not None else 0
        if not is_receipt(esm_value):
            return self.message(connection, pdu)
        info = parse_receipt(params)
        if info is None:
            self.log.warn("connection {name}: receipt without a message id",
                          name=connection)
            return defer.succeed(0)
        self.receipts[connection] += 1
        key = (connection, normalize_remote_id(info.message_id))
        if key in self._parts:
            if info.state is not None:
                del self._parts[key]
            return defer.succeed(0)
        if info.state is None:
            self.log.debug("connection {name}: receipt {id} {stat} is not "
                           "final", name=connection, id=info.message_id,
                           stat=info.stat)
            return defer.succeed(0)
        return self._match(connection, info, 0)

    def _match(self, connection: str, info: Any, attempt: int
               ) -> defer.Deferred:
        error = f"{info.stat} err:{info.error}" if info.error else info.stat
        d = defer.maybeDeferred(self.core.receipt_received, connection,
                                info.message_id, info.state, error)

        def matched(found: bool) -> Any:
            if found or attempt >= len(RECEIPT_RETRIES):
                return 0
            return defer.Deferred.fromCoroutine(self._later(
                RECEIPT_RETRIES[attempt], connection, info, attempt + 1))

        def failed(f: Any) -> int:
            self.log.failure("receipt {id} from {name} not recorded", f,
                             id=info.message_id, name=connection)
            return 0
        return d.addCallback(matched).addErrback(failed)

    async def _later(self, delay: float, connection: str, info: Any,
                     attempt: int) -> int:
        await _sleep(self.clock, delay)
        return await self._match(connection, info, attempt)

    # -- messages from vendors (MO) --------------------------------------

    def message(self, connection: str, pdu: Any) -> defer.Deferred:
        """
        A deliver_sm that is not a receipt: a vendor's message to us.  It
        is accepted with origin kind C{connection} (origin: the connection's
        name) and routed like any other; the Deferred fires with the
        deliver_sm_resp status only once the message (or, for a part of a
        concatenated one, the part) is on disk.  No route is
        C{ESME_RINVDSTADR}; a charging refusal its status.
        """
        try:
            fields = pdus.submit_fields(pdu)
            text, concat, encoding = text_of(fields)
        except pdus.PDUError as e:
            self.log.info("connection {name}: deliver_sm refused: {why}",
                          name=connection, why=str(e))
            return defer.succeed(pdus.status_value(e.status))
        submission = Submission("connection", connection, fields.source,
                                fields.recipients[0][2], text,
                                encoding=encoding, hops=fields.hops)
        if concat is not None and concat.total > 1:
            return self._part(connection, submission, concat)
        try:
            d = self.core.submit(submission)
        except (NoRoute, Refused, ModelError) as e:
            return defer.succeed(self._refusal(connection, e))
        self.messages[connection] += 1
        return d.addCallback(lambda _: 0)

    def _refusal(self, connection: str, e: Exception) -> int:
        self.log.info("connection {name}: message refused: {why}",
                      name=connection, why=str(e))
        if isinstance(e, NoRoute) or (isinstance(e, Refused)
                                      and e.kind == "destination"):
            return pdus.status_value(pdus.Status.ESME_RINVDSTADR)
        return pdus.status_value(pdus.Status.ESME_RSUBMITFAIL)

    def _part(self, connection: str, submission: Submission, concat: Any
              ) -> defer.Deferred:
        """One part: authorized at the first, held on disk, submitted
        whole at the last (the server's rules for carriers' parts)."""
        try:
            number = normalize_e164(submission.recipient)
        except ModelError as e:
            return defer.succeed(self._refusal(connection, e))
        key = GroupKey(connection, submission.sender, number,
                       concat.reference, concat.total)
        now = self.clock.seconds()
        refused = self._refused.get(key)
        if refused is not None and now < refused[1]:
            return defer.succeed(refused[0])
        self._refused.pop(key, None)
        try:
            if key not in self._authorized:
                self._authorized[key] = self.core.authorize(
                    replace(submission, text=None, parts=concat.total))
            added = self.parts.add(key, concat.sequence, submission.text,
                                   PartInfo("", 0, submission.encoding, now))
            if added.kind == "duplicate":
                return defer.succeed(0)
            if added.kind == "held":
                return added.written.addCallback(lambda _: 0)
            whole = replace(submission, text=added.text,
                            parts=len(added.parts)
                            if added.kind == "whole" else 1)
            d = self.core.submit(whole, self._authorized.pop(key, None)
                                 if added.kind == "whole" else None)
        except (NoRoute, Refused, ModelError) as e:
            status = self._refusal(connection, e)
            self._authorized.pop(key, None)
            self._refused[key] = (status, now + self.reassembly_timeout)
            self.parts.discard(key)
            self.storage.batch(DurableReassembler.forget, key,
                               "connection_parts")
            return defer.succeed(status)
        except ReassemblyFull:
            return defer.succeed(pdus.status_value(pdus.Status.ESME_RMSGQFUL))
        except ConcatenationError:
            return defer.succeed(pdus.status_value(
                pdus.Status.ESME_RINVESMCLASS))
        self.messages[connection] += 1
        return d.addCallback(lambda _: self.storage.batch(
            DurableReassembler.forget, key, "connection_parts")).addCallback(
            lambda _: 0)

    def expire_parts(self) -> None:
        """Vendors' concatenated messages whose parts did not all arrive:
        deliver what arrived (policy C{deliver_partial}) or drop it."""
        now = self.clock.seconds()
        for key in [k for k, (_, t) in self._refused.items() if t <= now]:
            del self._refused[key]
        for incomplete, parts in self.parts.expired():
            key = incomplete.key
            authorization = self._authorized.pop(key, None)
            if incomplete.text is not None and parts:
                try:
                    self.core.submit(Submission(
                        "connection", key.origin, key.sender, key.recipient,
                        incomplete.text, encoding=parts[0].encoding,
                        parts=len(parts)), authorization)
                except (NoRoute, Refused, ModelError) as e:
                    self.log.info("partial message not routed: {why}",
                                  why=str(e))
            self.storage.batch(DurableReassembler.forget, key,
                               "connection_parts")

    # -- shell -----------------------------------------------------------

    def shell_table(self, topic: str) -> tuple[tuple[str, ...], list]:
        """
        Live data for C{show connections}.

        @param topic: C{connections}.
        @return: (headers, rows): name, state, binds up/configured,
            in-flight, rate (submit_sm/s over ten seconds).
        @raise KeyError: another topic.
        """
        if topic != "connections":
            raise KeyError(topic)
        rows = []
        for name in sorted(self.connections):
            c = self.connections[name]
            up = sum(b.up for b in c.binds)
            rows.append((name, c.state, f"{up}/{c.settings.binds}",
                         c.in_flight(), f"{c.rate():.1f}"))
        return CONNECTION_HEADERS, rows

    def statistics(self) -> dict[str, int]:
        """Per-connection counters (C{<name>.<counter>})."""
        out: dict[str, int] = {}
        for name, c in self.connections.items():
            for key in ("submitted", "accepted", "transient", "permanent"):
                out[f"{name}.{key}"] = c.counters[key]
            out[f"{name}.receipts"] = self.receipts[name]
            out[f"{name}.messages_in"] = self.messages[name]
        return out


def _sleep(clock: IReactorTime, delay: float) -> defer.Deferred:
    d: defer.Deferred = defer.Deferred()
    clock.callLater(delay, d.callback, None)
    return d


def make_pool(context: Any, core: Any) -> ConnectionPool:
    """
    Build the pool for a node (C{appliance.application} wires it after the
    messaging core, whenever a messaging section is enabled, and makes it
    the core's agent for L{TRANSPORT}).

    Timers come from C{[smpp]} (C{bind_timeout}, C{response_timeout},
    C{enquire_link_interval}) when that section exists; TLS connections
    verify against the system trust store, or C{[smpp] client_ca} if the
    configuration has it.

    @param context: the L{appliance.node.NodeContext}.
    @param core: the L{appliance.messaging.interfaces.IMessagingCore}.
    """
    timers, ca_file, reassembly = Timers(), None, {}
    try:
        section = context.config.smpp
    except KeyError:
        section = None
    if section is not None:
        timers = Timers(float(section.bind_timeout),
                        float(section.response_timeout),
                        float(section.enquire_link_interval))
        ca_file = getattr(section, "client_ca", None)
        reassembly = dict(
            reassembly_timeout=float(section.reassembly_timeout),
            reassembly_policy=section.reassembly_policy)
    return ConnectionPool(context.storage, core, context.reactor,
                          default_endpoints(context.reactor, ca_file),
                          timers=timers, **reassembly)
