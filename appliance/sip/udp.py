"""
A UDP port that knows how long each datagram waited in the kernel.

L{TimestampedPort} is Twisted's UDP port with the socket option
C{SO_TIMESTAMPNS} (Linux): each datagram is read with C{recvmsg} together
with the time the kernel queued it (and, with C{SO_RXQ_OVFL}, the count of
datagrams the kernel dropped on the socket so far, kept in
L{TimestampedPort.kernel_drops}), and its protocol's C{arrived}
attribute holds that time (wall-clock seconds, C{None} when the kernel
gave none) while C{datagramReceived} runs.  The SIP protocol turns it into
the queueing delay the overload check reads: when datagrams arrive faster
than they are handled, the receive queue grows long before the reactor
looks late, since one read drains up to C{maxThroughput} bytes at a time.

L{listen_udp} uses it on a real reactor and falls back to
C{reactor.listenUDP} (memory reactors in tests, other platforms).
"""
from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet import udp
from twisted.python import log

__all__ = ["SO_TIMESTAMPNS", "TimestampedPort", "listen_udp"]

#: Linux's values, when the socket module does not name them.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
_TIMESPEC = struct.Struct("@qq")
_COUNTER = struct.Struct("@I")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_COUNTER.size)


class TimestampedPort(udp.Port):
    """
    A UDP port reading each datagram with the kernel's receive time.

    @ivar kernel_drops: datagrams the kernel dropped on this socket (its
        receive buffer full), as of the last datagram read; C{None} when
        the kernel does not say (no C{SO_RXQ_OVFL}).
    """

    timestamps = False
    kernel_drops: int | None = None
    #: Destination hosts Twisted's C{write} has accepted (IP addresses of
    #: this port's family), bounded: C{write} checks each host with
    #: C{isIPAddress} and C{isIPv6Address} twice per datagram.
    _sendable: dict[str, bool] | None = None
    MAX_SENDABLE = 4096

    def write(self, datagram: bytes, addr: Any = None) -> Any:
        """
        Send a datagram: straight to C{sendto} for a host already
        accepted, else through Twisted's checks (which raise for host
        names and the other address family) and remember the host.
        """
        sendable = self._sendable
        if sendable is None:
            sendable = self._sendable = {}
        if addr is not None and addr[0] in sendable and not self._connectedAddr:
            try:
                return self.socket.sendto(datagram, addr)
            except OSError:
                pass  # Twisted's write sends again and handles the error its way
        result = super().write(datagram, addr)
        if addr is not None and len(sendable) < self.MAX_SENDABLE:
            sendable[addr[0]] = True
        return result

    def createInternetSocket(self) -> socket.socket:
        """
        The socket, with C{SO_TIMESTAMPNS} on when the kernel has it.
        """
        skt = super().createInternetSocket()
        try:
            skt.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.timestamps = True
        except OSError:
            self.timestamps = False
        try:
            skt.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
            self.kernel_drops = 0
        except OSError:
            self.kernel_drops = None
        return skt

    def doRead(self) -> None:
        """
        Read datagrams (up to C{maxThroughput} bytes) as Twisted's port
        does, setting the protocol's C{arrived} for each.
        """
        if not self.timestamps:
            return super().doRead()
        read = 0
        protocol = self.protocol
        while read < self.maxThroughput:
            try:
                data, ancillary, _, addr = self.socket.recvmsg(self.maxPacketSize, _ANCILLARY)
            except OSError as se:
                no = se.args[0]
                if no in udp._sockErrReadIgnore:
                    return
                if no in udp._sockErrReadRefuse:
                    if self._connectedAddr:
                        protocol.connectionRefused()
                    return
                raise
            read += len(data)
            arrived = None
            for level, kind, value in ancillary:
                if level != socket.SOL_SOCKET:
                    continue
                if kind == SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
                    seconds, nanoseconds = _TIMESPEC.unpack_from(value)
                    arrived = seconds + nanoseconds * 1e-9
                elif kind == SO_RXQ_OVFL and len(value) >= _COUNTER.size:
                    self.kernel_drops = _COUNTER.unpack_from(value)[0]
            if self.addressFamily == socket.AF_INET6:
                addr = addr[:2]
            protocol.arrived = arrived
            try:
                protocol.datagramReceived(data, addr)
            except Exception:
                # Broad: one datagram's bug must not stop the reads; logged
                # with its traceback (SystemExit and the like propagate).
                log.err()
            finally:
                protocol.arrived = None


def listen_udp(reactor: Any, port: int, protocol: Any, interface: str = "",
               max_packet_size: int = 8192) -> Any:
    """
    Listen on UDP with a L{TimestampedPort} when the reactor is a real
    one, else with C{reactor.listenUDP}.

    @return: the listening port.
    """
    from twisted.internet.posixbase import PosixReactorBase
    if not isinstance(reactor, PosixReactorBase):
        return reactor.listenUDP(port, protocol, interface=interface)
    listening = TimestampedPort(port, protocol, interface, max_packet_size, reactor)
    listening.startListening()
    return listening
