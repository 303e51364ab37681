"""
Twisted adapters for SIP over UDP and over TCP/TLS: thin.

They frame bytes, parse them, stamp the top Via of requests with
C{received}/C{rport} (RFC 3261 18.2.1, RFC 3581), answer malformed requests
with C{400} and a Warning when enough was parsed (else drop them), log
every malformed message with its source, and hand the rest to the
transaction layer. No exception escapes C{datagramReceived} or
C{dataReceived}: a listener survives anything.
"""
from __future__ import annotations

import time
from typing import Callable, Protocol as TypingProtocol

from twisted.internet.protocol import DatagramProtocol, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from appliance.sip.framing import FramingError, KeepAlive, StreamFramer
from appliance.sip.headers import HeaderError
from appliance.sip.interfaces import ISIPTransport
from appliance.sip.message import Request, Response, SIPParseError, make_error_response, parse

__all__ = ["MessageReceiver", "SIPDatagramProtocol", "SIPStreamProtocol", "stamp_via"]

Address = tuple[str, int]


class MessageReceiver(TypingProtocol):
    """
    What the protocols hand messages to (the L{TransactionLayer}).
    """

    def receive(self, message: Request | Response, transport: ISIPTransport,
                source: Address) -> None:
        """
        @param message: the parsed message.
        @param transport: the transport it came on.
        @param source: where it came from.
        """


def stamp_via(request: Request, source: Address) -> None:
    """
    Add C{received} to the top Via when its host is not the source address
    or C{rport} is present, and fill in C{rport} (RFC 3581).

    @param request: the request, changed in place.
    @param source: C{(host, port)} it came from.
    @raise HeaderError: for a missing or malformed Via.
    """
    via = request.top_via()
    host, port = source
    if via.has_rport:
        request.set_top_via(via.stamped(host, port))
    elif (via.host[1:-1] if via.host.startswith("[") else via.host) != host:
        request.set_top_via(via.stamped(host, None))


def _deliver(data: bytes, source: Address, protocol: SIPDatagramProtocol | SIPStreamProtocol,
             receiver: MessageReceiver) -> None:
    """
    Parse one message and pass it on, or answer or drop it if malformed.

    The protocol's logger and warn-agent are reached only for a malformed
    message (C{protocol.log} makes a new Logger at each access).
    """
    try:
        message = parse(data, stream=protocol.reliable)
        if isinstance(message, Request):
            stamp_via(message, source)
    except (SIPParseError, HeaderError) as e:
        error = e if isinstance(e, SIPParseError) else SIPParseError(str(e))
        response = make_error_response(error, protocol._agent())
        protocol.log.warn("malformed SIP message from {source} ({size} bytes): {reason};"
                          " {action}", source=source, size=len(data), reason=error.reason,
                          action="answered 400" if response is not None else "dropped")
        if response is not None:
            protocol.send(response.to_bytes(), source)
        return
    receiver.receive(message, protocol, source)


@implementer(ISIPTransport)
class SIPDatagramProtocol(DatagramProtocol):
    """
    SIP over UDP: one protocol for every peer.

    @ivar receiver: where parsed messages go.
    @ivar agent: the warn-agent of our C{400} answers.
    @ivar arrived: while a datagram is handled, when the kernel queued it
        (set by L{appliance.sip.udp.TimestampedPort}), else C{None}.
    @ivar on_queue_delay: told how long each datagram waited in the
        kernel (seconds; C{0.0} once it is handled), when known.
    """

    reliable = False
    name = "UDP"
    log = Logger()
    arrived: float | None = None
    on_queue_delay: Callable[[float], None] | None = None

    def __init__(self, receiver: MessageReceiver, agent: str | None = None) -> None:
        """
        @param receiver: the transaction layer.
        @param agent: host name for Warning headers; the bound address when C{None}.
        """
        self.receiver = receiver
        self.agent = agent

    def send(self, data: bytes, address: Address) -> None:
        """
        Send one datagram.

        @param data: the message bytes.
        @param address: C{(host, port)}.
        """
        self.transport.write(data, address)

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        """
        Handle one datagram; never raises.

        @param datagram: the bytes.
        @param addr: the source C{(host, port)}.
        """
        waited = self.on_queue_delay if self.arrived is not None else None
        try:
            if not datagram.strip(b"\r\n\x00"):
                return  # keep-alive padding some phones send over UDP
            if waited is not None:
                waited(time.time() - self.arrived)  # type: ignore[operator]
            source = (addr[0], addr[1])
            _deliver(datagram, source, self, self.receiver)
        except Exception:
            # Broad: a bug on one datagram must not stop the UDP listener
            # serving the others.
            self.log.failure("SIP datagram from {source} not handled", source=addr)
        finally:
            if waited is not None:
                waited(0.0)

    def _agent(self) -> str:
        if self.agent is None:
            self.agent = getattr(self.transport.getHost(), "host", "") or "appliance"
        return self.agent


@implementer(ISIPTransport)
class SIPStreamProtocol(Protocol):
    """
    SIP over one TCP or TLS connection.

    @ivar receiver: where parsed messages go.
    @ivar name: C{"TCP"} or C{"TLS"}.
    @ivar peer: the peer's C{(host, port)} once connected.
    @ivar connected: whether the connection is up.
    """

    reliable = True
    log = Logger()

    def __init__(self, receiver: MessageReceiver, agent: str | None = None, name: str = "TCP",
                 framer: StreamFramer | None = None,
                 on_lost: Callable[[SIPStreamProtocol], None] | None = None,
                 on_made: Callable[[SIPStreamProtocol], None] | None = None) -> None:
        """
        @param receiver: the transaction layer.
        @param agent: host name for Warning headers; the local address when C{None}.
        @param name: C{"TCP"} or C{"TLS"}.
        @param framer: a framer with custom limits; a default one when C{None}.
        @param on_lost: called with this protocol when the connection goes
            (the seam for the flow table that reuses registered connections).
        @param on_made: called with this protocol once connected.
        """
        self.receiver = receiver
        self.agent = agent
        self.name = name
        self.framer = framer or StreamFramer()
        self.on_lost = on_lost
        self.on_made = on_made
        self.peer: Address = ("", 0)
        self.connected = False

    def connectionMade(self) -> None:
        """
        Remember the peer address; tell the flow table, if any.
        """
        self.connected = True
        peer = self.transport.getPeer()
        self.peer = (getattr(peer, "host", ""), getattr(peer, "port", 0))
        if self.agent is None:
            self.agent = getattr(self.transport.getHost(), "host", "") or "appliance"
        if self.on_made is not None:
            try:
                self.on_made(self)
            except Exception:
                # Broad: the flow table's callback; the connection is served.
                self.log.failure("on_made callback failed")

    def send(self, data: bytes, address: Address | None = None) -> None:
        """
        Send one message to the peer.

        @param data: the message bytes.
        @param address: ignored: a connection has one peer.
        """
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        """
        Frame, answer keep-alives, deliver messages; never raises.

        @param data: bytes from the stream.
        """
        try:
            items = self.framer.feed(data)
        except Exception:
            # Broad: bad framing comes back as FramingError items; this is
            # a framer bug, so this connection is closed, the others served.
            self.log.failure("SIP data from {source} not framed", source=self.peer)
            self.transport.loseConnection()
            return
        for item in items:
            try:
                if isinstance(item, KeepAlive):
                    self.transport.write(b"\r\n")
                elif isinstance(item, FramingError):
                    self.log.warn("closing SIP connection from {source}: {reason}",
                                  source=self.peer, reason=item.reason)
                    self.transport.loseConnection()
                else:
                    _deliver(item, self.peer, self, self.receiver)
            except Exception:
                # Broad: a bug on one message; the next ones are served.
                self.log.failure("SIP message from {source} not handled", source=self.peer)

    def _agent(self) -> str:
        return self.agent or "appliance"

    def connectionLost(self, reason: Failure | None = None) -> None:
        """
        Tell the flow table, if any.

        @param reason: why.
        """
        self.connected = False
        if self.on_lost is not None:
            try:
                self.on_lost(self)
            except Exception:
                # Broad: the flow table's callback; the loss is complete.
                self.log.failure("on_lost callback failed")
