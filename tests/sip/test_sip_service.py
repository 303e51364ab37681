"""
Tests for the SIP service's listeners: TLS from the configured
certificate and key, IPv6 UDP, make_service wiring.
"""
from __future__ import annotations

from pathlib import Path

import twisted.test

from appliance.config import Listener
from appliance.sip.service import SIPService, make_service

try:
    from tests.sip.sipbench import Bench
except ImportError:  # rootdir-relative import mode
    from sipbench import Bench  # type: ignore[no-redef]

PEM = str(Path(twisted.test.__file__).parent / "server.pem")


def test_tls_and_ipv6_listeners(tmp_path: Path):
    """
    A TLS listener is built from the listener's key and certificate and
    recorded as sip_tls; a UDP listener on ::1 binds that interface, and
    ::1 requests count as ours.
    """
    listen = (Listener("udp", "udp:port=5062:interface=::1", 5062, "::1"),
              Listener("ssl", f"ssl:port=5061:privateKey={PEM}:certKey={PEM}", 5061, ""))
    bench = Bench(tmp_path, listen=listen)
    assert bench.node.ports.ports == {"sip_udp": [5062], "sip_tls": [5061]}
    assert bench.reactor.udp[0][1].host == "::1"
    port, factory = bench.reactor.sslServers[0][:2]
    assert port == 5061
    assert factory.name == "TLS" and factory.service is bench.service
    assert bench.service.ready.called
    bench.stop()


def test_bad_tls_key_fails_ready(tmp_path: Path):
    """A TLS listener whose key file is unusable makes ready fail (the node stops) with the reason."""
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    listen = (Listener("ssl", f"ssl:port=5061:privateKey={bad}:certKey={bad}", 5061, ""),)
    bench = Bench(tmp_path, listen=listen)
    failures: list = []
    bench.service.ready.addErrback(failures.append)
    assert failures
    bench.stop()


def test_make_service_takes_the_core_it_is_given(tmp_path: Path):
    """make_service hands MESSAGE requests and registrations to the core
    it is given, and never registers on it itself (the wiring does)."""
    bench = Bench(tmp_path)
    bench.core.agents.clear()
    service = make_service(bench.section, bench.node, bench.core)
    assert isinstance(service, SIPService) and service.core is bench.core
    assert service.intake.core is bench.core
    service.startService()
    assert bench.core.agents == {}
    service.stopService()
    bench.stop()


def test_udp_receive_buffer_grown():
    """The SIP UDP socket asks the kernel for a large receive buffer, so
    bursts of answers from apps are not dropped."""
    import socket as socketlib
    from twisted.logger import Logger
    from appliance.sip.service import UDP_RECEIVE_BUFFER, _grow_receive_buffer

    class Port:
        socket = socketlib.socket(socketlib.AF_INET, socketlib.SOCK_DGRAM)
    try:
        before = Port.socket.getsockopt(socketlib.SOL_SOCKET,
                                        socketlib.SO_RCVBUF)
        _grow_receive_buffer(Port, Logger())
        after = Port.socket.getsockopt(socketlib.SOL_SOCKET,
                                       socketlib.SO_RCVBUF)
        assert after > before
        assert after <= 2 * UDP_RECEIVE_BUFFER
    finally:
        Port.socket.close()
