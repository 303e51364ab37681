"""
Tests for L{appliance.listen}: the one "listen on every endpoint, record
the port, fire ready" helper of every service.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import twisted.test
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.internet.testing import MemoryReactor

from appliance.config import Listener
from appliance.listen import listen_all, stop_all
from appliance.node import PortMap
from appliance.tls import TLSPolicy

PEM = str(Path(twisted.test.__file__).parent / "server.pem")


def _results(d: defer.Deferred) -> list:
    out: list = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    return out


def test_records_each_port_under_its_key(tmp_path: Path):
    """Every listener is bound with its factory, its port recorded under
    port_key(section, kind), appended to C{into} and passed to
    C{on_bound}; the Deferred fires with the ports in order."""
    reactor = MemoryReactor()
    ports = PortMap(tmp_path / "ports.json")
    factory = Factory()
    into: list = []
    seen: list = []
    d = listen_all(reactor, "smpp", [
        Listener("tcp", "tcp:port=2775:interface=127.0.0.1", 2775, "127.0.0.1"),
        Listener("ssl", f"ssl:port=3550:privateKey={PEM}", 3550, "")],
        factory, ports=ports, into=into,
        on_bound=lambda p, l: seen.append(l.kind))
    [result] = _results(d)
    assert ports.ports == {"smpp": [2775], "smpp_tls": [3550]}
    assert result == into and len(into) == 2
    assert seen == ["tcp", "ssl"]
    assert reactor.tcpServers[0][1] is factory
    assert reactor.tcpServers[0][3] == "127.0.0.1"
    assert reactor.sslServers[0][1] is factory


def test_shell_and_manhole_keys_and_strings(tmp_path: Path):
    """Endpoint strings work as well as parsed listeners; a section's plain
    TCP port is recorded under the section's name (shell, manhole,
    m3ua)."""
    reactor = MemoryReactor()
    ports = PortMap(tmp_path / "ports.json")
    for section, port in (("shell", 2022), ("manhole", 2023), ("m3ua", 2905)):
        _results(listen_all(reactor, section,
                            [f"tcp:port={port}:interface=127.0.0.1"],
                            Factory(), ports=ports))
    assert ports.ports == {"shell": [2022], "manhole": [2023], "m3ua": [2905]}


class _UDPReactor(MemoryReactor):
    """Records listenUDP calls."""

    def __init__(self):
        super().__init__()
        self.udp: list = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        self.udp.append((port, protocol, interface))
        from twisted.internet.address import IPv6Address
        from twisted.internet.testing import _FakePort
        return _FakePort(IPv6Address("UDP", interface, port))


def test_udp_takes_a_datagram_protocol(tmp_path: Path):
    """A udp: listener (SIP) is bound with listenUDP on its interface,
    with the protocol C{factory_for} gives it, and recorded as sip_udp."""
    reactor = _UDPReactor()
    ports = PortMap(tmp_path / "ports.json")
    protocol = DatagramProtocol()
    _results(listen_all(reactor, "sip",
                        [Listener("udp", "udp:port=5060:interface=::1", 5060, "::1")],
                        factory_for=lambda l: protocol, ports=ports))
    assert reactor.udp[0][0] == 5060 and reactor.udp[0][1] is protocol
    assert reactor.udp[0][2] == "::1"
    assert ports.ports == {"sip_udp": [5060]}


class _BusyReactor(MemoryReactor):
    """Refuses one port number."""

    def listenTCP(self, port, factory, backlog=50, interface=""):
        if port == 9999:
            raise CannotListenError(interface, port, OSError("in use"))
        return super().listenTCP(port, factory, backlog, interface)


def test_failure_is_the_first_error_and_bound_ports_stop(tmp_path: Path):
    """A port in use fails the Deferred with that error itself (not
    wrapped); the listeners that did bind are in C{into}, and stop_all
    stops them and empties the list."""
    reactor = _BusyReactor()
    into: list = []
    d = listen_all(reactor, "http", ["tcp:port=8080", "tcp:port=9999"],
                   Factory(), into=into)
    [failure] = _results(d)
    assert failure.check(CannotListenError)
    assert len(into) == 1
    stopped: list = []
    into[0].stopListening = lambda: stopped.append(1)
    _results(stop_all(into))
    assert into == [] and stopped == [1]


def test_bad_tls_key_fails(tmp_path: Path):
    """A TLS listener whose key file holds no key fails the Deferred with
    a ValueError naming the file."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    d = listen_all(MemoryReactor(), "sip",
                   [Listener("ssl", f"ssl:port=5061:privateKey={bad}", 5061, "")],
                   Factory())
    [failure] = _results(d)
    assert failure.check(ValueError) and str(bad) in str(failure.value)


def test_tls_listener_gets_the_policy():
    """A TLS listener's context factory carries the node's policy: the
    minimum version and the cipher string."""
    reactor = MemoryReactor()
    policy = TLSPolicy(min_version="1.3")
    _results(listen_all(reactor, "http",
                        [Listener("ssl", f"ssl:port=8443:privateKey={PEM}", 8443, "")],
                        Factory(), tls=policy))
    context = reactor.sslServers[0][2].getContext()
    from OpenSSL import SSL
    try:
        from tests.test_tls import _handshake
    except ImportError:  # rootdir-relative import mode
        from test_tls import _handshake  # type: ignore[no-redef]
    with pytest.raises(SSL.Error):
        _handshake(context, SSL.TLS1_2_VERSION)
    assert _handshake(context, SSL.TLS1_3_VERSION)
