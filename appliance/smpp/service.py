# -*- test-case-name: tests.smpp.test_smpp_service -*-
"""
The C{[smpp]} service: listeners (TCP and TLS) for carriers' binds, the
controller, and the live data the shell shows.

Built on C{smpp.pdu3} for PDU encoding and decoding
(L{appliance.smpp.pdus}); the session protocol is our own (see
L{appliance.smpp.session} for why smpp.twisted3's server protocol is not
used).
"""
from __future__ import annotations

import time
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from appliance.listen import listen_all, stop_all
from appliance.smpp.bindguard import inline_verify, thread_verify
from appliance.smpp.server import COUNTERS, SMPPServer
from appliance.smpp.session import SMPPSession

BIND_HEADERS = ("Carrier", "Type", "Source", "Since", "In-flight", "Rate")


class SMPPFactory(Factory):
    """Makes an L{SMPPSession} per connection."""

    def __init__(self, server: SMPPServer, clock: Any, section: Any):
        """
        @param server: the controller.
        @param clock: for the sessions' timers.
        @param section: the L{appliance.config.SMPPSection}.
        """
        self.server = server
        self.clock = clock
        self.section = section

    def buildProtocol(self, addr: Any) -> SMPPSession:
        """@return: a new session."""
        s = self.section
        session = SMPPSession(
            self.server, self.clock, window=s.window,
            bind_timeout=s.bind_timeout, idle_timeout=s.idle_timeout,
            enquire_link_interval=s.enquire_link_interval,
            response_timeout=s.response_timeout)
        session.factory = self
        return session


class SMPPService(Service):
    """
    The SMPP server as a service.

    @ivar ready: fires once every listener is bound.
    @ivar server: the L{SMPPServer}.
    """

    log = Logger()

    def __init__(self, section: Any, node: Any, core: Any,
                 admission: Any = None):
        """
        @param section: the L{appliance.config.SMPPSection}.
        @param node: the L{appliance.node.NodeContext} (reactor, storage,
            ports, config).
        @param core: the L{appliance.messaging.interfaces.IMessagingCore}.
        @param admission: the node's L{appliance.admission.Admission}.
        """
        self.section = section
        self.node = node
        self.reactor = node.reactor
        self.ready: defer.Deferred = defer.Deferred()
        config = getattr(node, "config", None)
        name = config.node.name if config is not None else "appliance"
        self.server = SMPPServer(node.storage, core, self.reactor, section,
                                 system_id=name[:15],
                                 verify=thread_verify(self.reactor)
                                 if hasattr(self.reactor, "getThreadPool")
                                 else inline_verify,
                                 admission=admission)
        self._ports: list = []
        self._rates: dict[int, tuple[float, int, float]] = {}

    def startService(self) -> None:
        """Start the controller and listen."""
        super().startService()
        self.server.start()
        factory = SMPPFactory(self.server, self.reactor, self.section)
        config = getattr(self.node, "config", None)
        d = listen_all(self.reactor, "smpp", self.section.listen, factory,
                       ports=self.node.ports, into=self._ports,
                       tls=getattr(config, "tls", None))
        d.addCallbacks(lambda _: self.ready.callback(None),
                       self.ready.errback)

    @defer.inlineCallbacks
    def stopService(self):
        """Stop listening and close the sessions."""
        super().stopService()
        yield stop_all(self._ports)
        if self.server is not None:
            self.server.stop()

    # -- shell ------------------------------------------------------------

    def _rate(self, session: Any) -> float:
        """Submits per second since the last look (first look: since
        bind)."""
        now = self.reactor.seconds()
        last = self._rates.get(id(session))
        if last is None or last[2] is not session:
            then, count = session.since, 0
        else:
            then, count = last[0], last[1]
        self._rates[id(session)] = (now, session.submits, session)
        return (session.submits - count) / max(now - then, 1e-3)

    def shell_table(self, topic: str) -> tuple[tuple[str, ...], list]:
        """
        Live data for C{show smpp binds}.

        @param topic: C{binds}.
        @return: (headers, rows).
        @raise KeyError: another topic.
        """
        if topic != "binds":
            raise KeyError(topic)
        rows = []
        if self.server is not None:
            for name in sorted(self.server.binds):
                for s in self.server.binds[name]:
                    since = time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.gmtime(s.since))
                    rows.append((name, s.bind_type, s.peer, since,
                                 s.in_flight + s.outstanding,
                                 f"{self._rate(s):.1f}"))
        live = {id(s) for rows_ in self.server.binds.values()
                for s in rows_} if self.server else set()
        for key in list(self._rates):
            if key not in live:
                del self._rates[key]
        return BIND_HEADERS, rows

    def statistics(self) -> dict[str, int]:
        """Per-carrier counters (C{<carrier>.<counter>}) and totals."""
        out: dict[str, int] = {}
        if self.server is None:
            return out
        sent = self.server.courier.sent
        for name, counters in self.server.counters.items():
            for key in COUNTERS:
                value = sent.get(name, 0) if key == "receipts_sent" \
                    else counters[key]
                out[f"{name}.{key}"] = value
        out["binds"] = sum(len(v) for v in self.server.binds.values())
        out["refused"] = self.server.refusals.count("smpp")
        out["receipts_pending"] = self.server.courier.count()
        out["concatenations_held"] = len(self.server.parts)
        return out

    def disconnect_carrier(self, name: str) -> int:
        """
        Close every bind of a carrier (C{smpp disconnect carrier NAME}).

        @return: the number of sessions closed.
        """
        if self.server is None:
            return 0
        sessions = list(self.server.binds.get(name, ()))
        for session in sessions:
            session.close("disconnected by the operator")
        return len(sessions)


def make_service(section: Any, node: Any, core: Any,
                 admission: Any = None) -> SMPPService:
    """
    Build the SMPP service (the application's factory for C{[smpp]}).

    @param section: the L{appliance.config.SMPPSection}.
    @param node: the L{appliance.node.NodeContext}.
    @param core: the L{appliance.messaging.interfaces.IMessagingCore}.
    @param admission: the node's L{appliance.admission.Admission}.
    """
    return SMPPService(section, node, core, admission)
