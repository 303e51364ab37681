# -*- test-case-name: tests.sigtran.test_transport -*-
"""
M3UA transports.

TCP (RFC 4666 1.3.1, IANA port 2905): a byte stream, framed by the length
in each M3UA header (L{M3UAStreamProtocol}).  SCTP: a one-to-one
(C{SOCK_STREAM}) C{IPPROTO_SCTP} socket with payload protocol id 3 set as
the default send parameter, connected and adopted into the reactor, so
the same protocol runs on it (L{SCTPClientEndpoint}); only where the
kernel has SCTP (L{sctp_available}).
"""
from __future__ import annotations

import errno
import socket
import struct
from typing import Any, Callable

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from appliance.sigtran import m3ua

#: SCTP socket option level and the options we set (linux/sctp.h).
SOL_SCTP = 132
SCTP_DEFAULT_SEND_PARAM = 10
SCTP_NODELAY = 3
#: The M3UA payload protocol identifier (RFC 4666 1.4.7, IANA).
M3UA_PPID = 3


class M3UAStreamProtocol(Protocol):
    """
    Frames M3UA messages on a stream and hands them to an association.

    @ivar association: the L{appliance.sigtran.asp.Association} (or any
        object with C{connection_made}, C{message_received},
        C{frame_error}, C{connection_lost}).
    """

    log = Logger()

    def __init__(self, association: Any):
        self.association = association
        self._buffer = b""

    def connectionMade(self) -> None:
        """Tell the association it may start (signalling wants no
        Nagle delay: each message goes out at once)."""
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:
                pass        # not TCP (an adopted SCTP socket)
        self.association.connection_made(self.transport.write,
                                         self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:
        """Cut the stream into messages by their length."""
        buf = self._buffer + data
        offset = 0
        try:
            while True:
                length = m3ua.frame_length(buf[offset:offset + 8])
                if length is None or len(buf) - offset < length:
                    break
                frame = buf[offset:offset + length]
                offset += length
                self.association.message_received(frame)
        except m3ua.M3UAError as e:
            self._buffer = b""
            self.association.frame_error(e)
            self.transport.loseConnection()
            return
        self._buffer = buf[offset:]

    def connectionLost(self, reason: Any = None) -> None:
        """Tell the association it is down."""
        self.association.connection_lost()


class AssociationFactory(Factory):
    """Client side: one protocol for the association it is given."""

    protocol = M3UAStreamProtocol

    def __init__(self, association: Any):
        self.association = association

    def buildProtocol(self, addr: Any) -> M3UAStreamProtocol:
        """@return: the stream protocol of our association."""
        p = M3UAStreamProtocol(self.association)
        p.factory = self
        return p


class ListenerFactory(Factory):
    """
    Server side (role C{sg}): a connection is matched to a configured
    peer by its address; anything else is refused (closed at once).
    """

    log = Logger()

    def __init__(self, accept: Callable[[str], Any]):
        """
        @param accept: C{accept(host)} returns the association for a
            connection from C{host}, or None.
        """
        self.accept = accept

    def buildProtocol(self, addr: Any) -> M3UAStreamProtocol | None:
        """@return: a protocol for a configured peer, else None."""
        association = self.accept(getattr(addr, "host", ""))
        if association is None:
            self.log.warn("M3UA connection from {host} refused: no "
                          "m3ua-peer with role sg there",
                          host=getattr(addr, "host", "?"))
            return None
        return M3UAStreamProtocol(association)


def sctp_available() -> tuple[bool, str]:
    """
    @return: whether this kernel can open an SCTP socket, and why not.
    """
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                          socket.IPPROTO_SCTP)
    except OSError as e:
        return False, f"no SCTP in this kernel: {e.strerror} (errno {e.errno})"
    s.close()
    return True, ""


def default_send_param(ppid: int = M3UA_PPID, stream: int = 0) -> bytes:
    """
    @return: a C{struct sctp_sndrcvinfo} with the PPID (network order)
        for C{SCTP_DEFAULT_SEND_PARAM}.
    """
    # stream, ssn, flags, (pad), ppid, context, timetolive, tsn, cumtsn,
    # assoc_id
    return struct.pack("=HHHxxIIIIIi", stream, 0, 0,
                       socket.htonl(ppid), 0, 0, 0, 0, 0)


class SCTPClientEndpoint:
    """
    An L{IStreamClientEndpoint} over a one-to-one SCTP socket, adopted
    into the reactor once connected, carrying PPID 3 on every message.
    Twisted has no SCTP transport: the socket is made here and handed to
    C{reactor.adoptStreamConnection}, which reads and writes it as a
    stream (SCTP delivers M3UA messages whole; the length framing of
    L{M3UAStreamProtocol} works on both).
    """

    def __init__(self, reactor: Any, host: str, port: int):
        self.reactor = reactor
        self.host = host
        self.port = port

    def connect(self, factory: Any) -> defer.Deferred:
        """Connect; the Deferred fires with the protocol."""
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                              socket.IPPROTO_SCTP)
        except OSError as e:
            return defer.fail(e)
        try:
            s.setsockopt(SOL_SCTP, SCTP_NODELAY, 1)
            s.setsockopt(SOL_SCTP, SCTP_DEFAULT_SEND_PARAM,
                         default_send_param())
            s.setblocking(False)
            code = s.connect_ex((self.host, self.port))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, errno.errorcode.get(code, "connect"))
        except OSError as e:
            s.close()
            return defer.fail(e)
        d = defer.Deferred()

        def writable() -> None:
            self.reactor.removeWriter(waiter)
            code = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                s.close()
                d.errback(OSError(code, errno.errorcode.get(code, "connect")))
                return
            proto = factory.buildProtocol(None)
            self.reactor.adoptStreamConnection(s.fileno(), socket.AF_INET,
                                               _Fixed(proto))
            s.close()       # the reactor has its own duplicate
            d.callback(proto)

        waiter = _Waiter(s, writable)
        self.reactor.addWriter(waiter)
        return d


class _Fixed(Factory):
    def __init__(self, proto: Any):
        self.proto = proto

    def buildProtocol(self, addr: Any) -> Any:
        return self.proto


class _Waiter:
    """An IWriteDescriptor waiting for a non-blocking connect."""

    def __init__(self, sock: socket.socket, ready: Callable[[], None]):
        self.sock = sock
        self.ready = ready

    def fileno(self) -> int:
        return self.sock.fileno()

    def doWrite(self) -> None:
        self.ready()

    def connectionLost(self, reason: Any) -> None:
        pass

    def logPrefix(self) -> str:
        return "SCTPConnect"
