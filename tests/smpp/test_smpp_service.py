"""The [smpp] service: listeners, shell data, disconnect."""
from pathlib import Path

from twisted.internet.testing import MemoryReactorClock

from appliance.config import Listener, NodeConfig
from appliance.node import NodeContext, PortMap
from appliance.smpp.service import BIND_HEADERS, make_service
from tests.smpp.smpp_env import Env


def test_service_listens_and_reports(tmp_path):
    """make_service listens on each configured endpoint, records the
    ports, and serves shell_table, statistics and disconnect_carrier."""
    env = Env()
    reactor = env.clock
    listen = (Listener("tcp", "tcp:port=0:interface=127.0.0.1", 0,
                       "127.0.0.1"),)
    section = env.section.__class__(**{**env.section.__dict__,
                                       "listen": listen})
    ctx = NodeContext(reactor=reactor, config=NodeConfig(None),
                      storage=env.storage,
                      ports=PortMap(Path(tmp_path) / "ports.json"))
    service = make_service(section, ctx, env.core)
    service.startService()
    try:
        assert service.ready.called
        assert list(ctx.ports.ports) == ["smpp"]
        assert reactor.tcpServers[0][3] == "127.0.0.1"
        factory = reactor.tcpServers[0][1]
        env.server = service.server
        # Bind through a session of the service's own server.
        session, t, st = env.bind()
        assert st == 0
        headers, rows = service.shell_table("binds")
        assert headers == BIND_HEADERS
        assert rows[0][:3] == ("Carrier1", "transceiver", "127.0.0.1")
        stats = service.statistics()
        assert stats["binds"] == 1 and stats["Carrier1.accepted"] == 0
        assert service.disconnect_carrier("Carrier1") == 1
        assert t.disconnecting
        assert factory.buildProtocol(None).window == section.window
    finally:
        service.stopService()
        env.close()
