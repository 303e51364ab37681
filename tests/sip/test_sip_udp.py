"""
Tests for L{appliance.sip.udp.TimestampedPort.write}: the direct
C{sendto} for hosts Twisted's checks already accepted, on a fake socket
(no network).
"""
from __future__ import annotations

import errno
import socket

import pytest
from twisted.internet import error
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactor

from appliance.sip.udp import TimestampedPort


class FakeSocket:
    """Records C{sendto}; C{fail} makes the next calls raise that errno."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.fail: list[int] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        if self.fail:
            raise OSError(self.fail.pop(0), "fake")
        self.sent.append((data, addr))
        return len(data)


def port(family: int = socket.AF_INET) -> tuple[TimestampedPort, FakeSocket]:
    p = TimestampedPort(0, DatagramProtocol(), "", 8192, MemoryReactor())
    p.addressFamily = family
    p.socket = FakeSocket()  # type: ignore[assignment]
    return p, p.socket  # type: ignore[return-value]


def test_known_hosts_skip_the_checks_and_host_names_never_pass() -> None:
    """
    The first datagram to a host goes through Twisted's checks; later ones
    go straight to sendto, with the same bytes and address.  A host name
    and an address of the other family are refused every time.
    """
    p, sock = port()
    p.write(b"one", ("127.0.0.1", 5070))
    assert p._sendable == {"127.0.0.1": True}
    p.write(b"two", ("127.0.0.1", 5071))
    assert sock.sent == [(b"one", ("127.0.0.1", 5070)), (b"two", ("127.0.0.1", 5071))]
    for _ in range(2):
        with pytest.raises(error.InvalidAddressError):
            p.write(b"x", ("example.com", 5060))
        with pytest.raises(error.InvalidAddressError):
            p.write(b"x", ("::1", 5060))
    assert set(p._sendable) == {"127.0.0.1"} and len(sock.sent) == 2


def test_errors_on_the_direct_path_are_handled_as_twisted_does() -> None:
    """
    A send error on the direct path is handled by Twisted's write: a
    refused port (an ICMP error of an earlier datagram) is ignored, a
    datagram too long raises MessageLengthError.
    """
    p, sock = port()
    p.write(b"one", ("127.0.0.1", 5070))
    sock.fail = [errno.ECONNREFUSED]
    p.write(b"two", ("127.0.0.1", 5070))     # sent again by Twisted's write
    assert sock.sent[-1] == (b"two", ("127.0.0.1", 5070))
    sock.fail = [errno.EMSGSIZE, errno.EMSGSIZE]
    with pytest.raises(error.MessageLengthError):
        p.write(b"huge", ("127.0.0.1", 5070))


def test_remembered_hosts_are_bounded() -> None:
    """At most MAX_SENDABLE hosts are remembered (sources come from the network)."""
    p, sock = port()
    p.MAX_SENDABLE = 3
    for i in range(5):
        p.write(b"x", (f"192.0.2.{i}", 5060))
    assert len(p._sendable) == 3 and len(sock.sent) == 5
