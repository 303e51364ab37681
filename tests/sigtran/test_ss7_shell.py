"""The ss7 shell configuration: issue 13's spellings, validation, and the
running-config round trip into an empty node."""
import pytest
from twisted.internet.task import Clock

from appliance.shell.script import open_session, run_script
from appliance.shell.session import execute
from appliance.sigtran.model import ss7_of
from appliance.application import memory_storage

SCRIPT = """configure terminal
ss7
 point-code 0.23.1
 network-indicator national
 global-title 44770090000
 ssn smsc 8
 hlr global-title 447900000001
 isup circuits 0.23.5 1 31
 isup circuits 300 64 95
 m3ua-peer stp1
  address 127.0.0.1
  port 2905
  transport tcp
  role asp
  routing-context 7
  traffic-mode loadshare
 exit
 m3ua-peer msc
  address 127.0.0.2
  role sg
 exit
 sccp-route hlr
  global-title-prefix 4479
  point-code 0.23.2
  peer stp1
 exit
 sccp-route pc300
  point-code 300
 exit
exit
end
"""


@pytest.fixture
def storage():
    st = memory_storage(reactor=Clock())
    yield st
    st.close()


def render(storage):
    session = open_session(storage, "admin", "admin")
    result = execute(session, "show running-config")
    assert result.ok
    return result.text


def test_script_configures_the_model(storage):
    """The issue's spellings are accepted and land in the model: 3-8-3
    point codes become integers, circuits are kept as ranges."""
    result = run_script(storage, SCRIPT, user="t")
    assert result.ok, result.text
    ss7 = storage.domain("ss7")
    assert ss7 is ss7_of(storage.root())
    assert ss7.point_code == 0 << 11 | 23 << 3 | 1
    assert ss7.settings().network_indicator == 2
    assert ss7.circuits == ((0 << 11 | 23 << 3 | 5, 1, 31), (300, 64, 95))
    peer = ss7.peers["stp1"]
    assert (peer.address, peer.port, peer.role, peer.routing_context,
            peer.traffic_mode) == ("127.0.0.1", 2905, "asp", 7, "loadshare")
    assert ss7.route_table()[0].peer == "stp1"


def test_running_config_round_trip(storage):
    """show running-config writes the ss7 block; replayed into an empty
    node it renders identically."""
    assert run_script(storage, SCRIPT, user="t").ok
    first = render(storage)
    assert " ss7" in first and "  isup circuits 0.23.5 1 31" in first
    fresh = memory_storage(reactor=Clock())
    try:
        replay = run_script(fresh, first, user="t")
        assert replay.ok, replay.text
        assert render(fresh) == first
    finally:
        fresh.close()


@pytest.mark.parametrize("line", [
    "point-code 8.0.0", "point-code 16384", "ssn smsc 1", "global-title 44x",
    "network-indicator galactic", "isup circuits 1 10 5",
])
def test_bad_values_change_nothing(storage, line):
    """Out-of-range or malformed values are refused and nothing changes."""
    assert run_script(storage, "configure terminal\nss7\n", user="t").ok
    session = open_session(storage, "admin", "admin")
    for setup in ("configure terminal", "ss7"):
        assert execute(session, setup).ok
    before = render(storage)
    assert not execute(session, line).ok
    assert render(storage) == before


def test_route_peer_must_exist_and_peer_in_use_stays(storage):
    """A route cannot name an unknown peer; a peer a route uses cannot be
    removed."""
    assert run_script(storage, SCRIPT, user="t").ok
    session = open_session(storage, "admin", "admin")
    for line in ("configure terminal", "ss7", "sccp-route x"):
        assert execute(session, line).ok
    assert not execute(session, "peer nobody").ok
    assert execute(session, "exit").ok
    assert not execute(session, "no m3ua-peer stp1").ok


def test_show_ss7_without_the_service(storage):
    """show ss7 on a node without the M3UA service says so."""
    session = open_session(storage, "admin", "admin")
    assert "not configured" in execute(session, "show ss7").text
