"""
The node as an ASP of a real STP (osmo-stp 2.1, M3UA over TCP), with a
second ASP built on pycrate's codec on the other side of the STP.
"""
from __future__ import annotations

import re

import pytest
from pycrate_mobile.SCCP import SCCPUnitDataService

from tests.e2e.harness import start_node, wait_for
from tests.e2e.osmo_stp import osmo_stp  # noqa: F401  (fixture)
from tests.e2e.pycrate_asp import PycrateASP, udt
from tests.e2e.test_shell_ssh import keygen, ssh
from tests.e2e import tshark_m3ua

pytestmark = [pytest.mark.e2e]

NODE_PC, ASP_PC = 185, 186          # 0.23.1 and 0.23.2
NODE_GT, ASP_GT = "44770090000", "447900123456"

PROVISION = """configure terminal
ss7
 point-code 0.23.1
 global-title {gt}
 m3ua-peer stp
  address 127.0.0.1
  port {port}
  role asp
 exit
 sccp-route asp2
  global-title-prefix 4479
  point-code 0.23.2
 exit
exit
end
"""


def sigtran_node(tmp_path, stp, beat=1):
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "admin_keys").write_text(keygen(keys / "admin") + "\n")
    script = tmp_path / "provision.cli"
    script.write_text(PROVISION.format(gt=NODE_GT, port=stp.port))
    node = start_node(
        tmp_path, node={"provision": str(script)},
        m3ua={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1",
              "beat_interval": beat},
        shell={"enabled": True, "admin_keys": str(keys / "admin_keys")})
    node.admin_key = keys / "admin"
    return node


def show_ss7(tmp_path, node) -> str:
    rc, out, err = ssh(tmp_path, node, "admin", node.admin_key, "show ss7")
    assert rc == 0, out + err
    return out


def active_count(node) -> int:
    return node.log().count("ASP-ACTIVE (RC")


def round_trip(asp: PycrateASP, n: int = 1) -> list:
    """Send UDTs (return on error) to an SSN the node does not have; the
    node answers each with a UDTS through the STP."""
    out = []
    for i in range(n):
        asp.data(NODE_PC, udt(NODE_GT, 9, ASP_GT, 6, b"\x62\x03\x48\x01" + bytes([i])),
                 sls=i & 0xFF)
        label, sccp = asp.next_data()
        assert isinstance(sccp, SCCPUnitDataService)
        out.append((label, sccp))
    return out


def test_node_is_an_asp_of_osmo_stp(tmp_path, osmo_stp):
    """The node reaches ASP-ACTIVE at osmo-stp over TCP (dynamic routing
    key), a pycrate ASP exchanges DATA with it through the STP (a UDT to
    an unequipped SSN comes back as a UDTS, cause 4, from the node's point
    code), BEATs are acknowledged, and after the STP is restarted
    mid-traffic the node reconnects, goes through ASPUP/ASPAC again and
    serves again; tshark decodes every frame on the node's association
    as M3UA with 0 malformed."""
    capture = tshark_m3ua.Capture(osmo_stp.port).start()
    node = sigtran_node(tmp_path, osmo_stp)
    wait_for(lambda: active_count(node) >= 1, 20, what="node ASP-ACTIVE")
    asp = PycrateASP(osmo_stp.port, ASP_PC)
    asp.up()
    [(label, answer)] = round_trip(asp)
    assert label[:3] == (NODE_PC, ASP_PC, 3)
    assert answer["RetCause"].get_val() == 4      # unequipped user
    text = show_ss7(tmp_path, node)
    assert re.search(r"stp\s+asp\s+tcp\s+127\.0\.0\.1:\d+\s+up\s+ASP-ACTIVE", text), text
    assert re.search(r"0\.23\.2 \(186\)\s+yes", text), text
    wait_for(lambda: re.search(r"rx BEAT_ACK\s+\d", show_ss7(tmp_path, node)),
             10, interval=0.5, what="BEAT ACK from the STP")
    round_trip(asp, 20)

    osmo_stp.restart()
    asp.close()
    wait_for(lambda: active_count(node) >= 2, 30, what="ASP-ACTIVE again")
    asp = PycrateASP(osmo_stp.port, ASP_PC)
    asp.up()
    round_trip(asp, 5)
    text = show_ss7(tmp_path, node)
    assert "ASP-ACTIVE" in text and "rx ASPUP_ACK" in text
    asp.close()
    frames = capture.stop()
    assert len(frames) > 20
    decoded = tshark_m3ua.decode(frames)
    assert decoded.malformed == 0, decoded.lines
    names = " ".join(decoded.lines)
    for word in ("ASPUP", "ASPUP_ACK", "REG_REQ", "REG_RSP", "ASPAC",
                 "ASPAC_ACK", "DATA", "BEAT", "BEAT_ACK"):
        assert word in decoded.names, (word, decoded.names)
    assert "UDTS" in names or "Unitdata Service" in names, names
    assert node.stop() in (0, -15)
    assert "Traceback" not in node.log()


def test_destination_state_follows_the_other_asp(tmp_path, osmo_stp):
    """When the other ASP goes away osmo-stp tells the node (DUNA) and
    the destination shows unavailable; when it is back (DAVA) it shows
    available again."""
    node = sigtran_node(tmp_path, osmo_stp)
    wait_for(lambda: active_count(node) >= 1, 20, what="node ASP-ACTIVE")
    asp = PycrateASP(osmo_stp.port, ASP_PC)
    asp.up()
    round_trip(asp)
    asp.close()
    try:
        wait_for(lambda: re.search(r"rx DUNA\s+\d", show_ss7(tmp_path, node)),
                 10, interval=0.5, what="DUNA")
    except TimeoutError:
        pytest.skip("osmo-stp 2.1 sent no DUNA when the ASP left: "
                    + show_ss7(tmp_path, node))
    assert re.search(r"0\.23\.2 \(186\)\s+no", show_ss7(tmp_path, node))
    asp = PycrateASP(osmo_stp.port, ASP_PC)
    asp.up()
    wait_for(lambda: re.search(r"0\.23\.2 \(186\)\s+yes",
                               show_ss7(tmp_path, node)), 10, interval=0.5,
             what="DAVA")
    asp.close()
