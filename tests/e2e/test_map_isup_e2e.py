"""
MAP and ISUP end to end through a real STP: the node and the simulator
(HLR, MSC/VLR and switch built on pycrate, L{tests.peers.sigsim}) are
two ASPs of osmo-stp 2.1 over M3UA/TCP; SIPp plays the app.  Every frame
on the STP's port is decoded by tshark (re-wrapped as SCTP PPID 3) as
the intended MAP or ISUP operation, with 0 malformed.
"""
from __future__ import annotations

import pytest

from tests.e2e import tshark_m3ua
from tests.e2e.harness import wait_for
from tests.e2e.osmo_stp import osmo_stp  # noqa: F401  (fixture)
from tests.e2e.sigsim_tools import MSC_GT, NODE_GT, Sim, node_active, node_for_sim
from tests.e2e.sip_tools import SIPP, SIPp, run_sipp, write_users
from tests.e2e.test_shell_ssh import keygen, ssh

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")]

APP, PASSWORD = "1111", "pw-1111"
REACHABLE, ABSENT, UNKNOWN = "447900123456", "447900000002", "447900000003"
FULL, GONE = "447900000004", "447900000005"
SUBSCRIBERS = {
    REACHABLE: {"state": "reachable", "imsi": "234150000000001", "msc": MSC_GT},
    ABSENT: {"state": "absent"},
    UNKNOWN: {"state": "unknown"},
    FULL: {"state": "reachable", "imsi": "234150000000004", "msc": MSC_GT},
    GONE: {"state": "reachable", "imsi": "234150000000005", "msc": MSC_GT},
}
REFUSE = {"234150000000004": "memory", "234150000000005": "absent"}


@pytest.fixture
def network(request, tmp_path, osmo_stp):
    """osmo-stp, the node (ASP, dynamic routing key) and the simulator
    (ASP; its MSC's MAP versions are the test's parameter), all active."""
    capture = tshark_m3ua.Capture(osmo_stp.port).start()
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "admin_keys").write_text(keygen(keys / "admin") + "\n")
    node = node_for_sim(tmp_path, osmo_stp.port, {APP: PASSWORD},
                        admin_keys=keys / "admin_keys")
    node.admin_key = keys / "admin"
    wait_for(lambda: node_active(node), 20, what="node ASP-ACTIVE")
    versions = getattr(request, "param", [2, 3])
    sim = Sim(tmp_path / "sim", osmo_stp.port, hlr={"subscribers": SUBSCRIBERS},
              msc={"refuse": REFUSE, "versions": versions})
    assert sim.ctl(cmd="wait-active", timeout=15) == {"active": True}, sim.log()
    yield node, sim, capture
    sim.stop()


def messages_from_app(tmp_path, node, recipients):
    """SIPp (the app 1111) sends one MESSAGE to each recipient; all get 202."""
    rows = [(APP, PASSWORD, to) for to in recipients]
    tmp_path.mkdir(parents=True, exist_ok=True)
    users = write_users(tmp_path / "uac.csv", rows)
    result = run_sipp(tmp_path / "uac", "message_uac.xml", node.port("sip_udp"),
                      users=users, calls=len(rows), rate=len(rows), timeout=20)
    assert result.successful == len(rows), result.explain()


def decoded(capture):
    out = tshark_m3ua.decode(capture.stop())
    assert out.malformed == 0, "\n".join(out.lines)
    return " | ".join(out.lines), out


def test_map_sms_through_osmo_stp(tmp_path, network):
    """SRI-SM answered reachable, absent and unknown; MT-ForwardSM accepted
    (the app's UCS-2 text reaches the simulated MSC) and refused (memory
    full, absent subscriber), each refusal reported to the HLR by
    ReportSM-DeliveryStatus; the absent subscriber's AlertServiceCentre
    makes the node deliver at once and report success; an MO-ForwardSM
    from the simulated MSC reaches the registered SIP app as a MESSAGE;
    tshark decodes it all as GSM MAP with 0 malformed."""
    node, sim, capture = network
    uas = SIPp(tmp_path / "uas", "register_receive.xml", node.port("sip_udp"),
               users=write_users(tmp_path / "uas.csv", [(APP, PASSWORD)]),
               ooc="receive_ooc.xml", expected=1, timeout=40)
    messages_from_app(tmp_path, node, [REACHABLE, ABSENT, UNKNOWN, FULL, GONE])

    def records():
        return sim.ctl(cmd="records")
    wait_for(lambda: len(records()["reports"]) >= 2 and records()["mt"], 30,
             interval=0.3, what="MT-ForwardSM and the reports")
    r = records()
    assert {s["msisdn"] for s in r["sri"]} >= {REACHABLE, ABSENT, UNKNOWN, FULL, GONE}
    assert all(s["ac"] == [0, 4, 0, 0, 1, 0, 20, 3] for s in r["sri"])
    ok = [m for m in r["mt"] if m["imsi"] == "234150000000001"]
    assert ok and ok[0]["answer"] == "ok" and ok[0]["sender"] == APP
    assert "مرحبا من SIPp" in ok[0]["text"] and ok[0]["opcode"] == 44
    outcomes = {(x["msisdn"], x["outcome"]) for x in r["reports"]}
    assert (FULL, "memoryCapacityExceeded") in outcomes
    assert (GONE, "absentSubscriber") in outcomes
    assert all(x["sc"] == NODE_GT for x in r["reports"])

    # The absent subscriber comes back: the HLR alerts, the node delivers.
    sim.ctl(cmd="set", msisdn=ABSENT, state="reachable", imsi="234150000000002", msc=MSC_GT)
    assert sim.ctl(cmd="alert", msisdn=ABSENT)["result"] == "ok"
    wait_for(lambda: any(m["imsi"] == "234150000000002" for m in records()["mt"]), 15,
             interval=0.3, what="delivery after the alert")
    wait_for(lambda: (ABSENT, "successfulTransfer") in {
        (x["msisdn"], x["outcome"]) for x in records()["reports"]}, 15, interval=0.3,
        what="success reported to the HLR")

    # A handset sends to the app: MO-ForwardSM -> core -> SIP MESSAGE.
    wait_for(lambda: "REGISTER" in uas.screen.read_text(errors="replace")
             or uas.messages.exists(), 15, what="app registered")
    mo = sim.ctl(cmd="mo", **{"from": REACHABLE, "to": APP, "text": "Call me back, Ünal"})
    assert mo["result"] == "ok", mo
    result = uas.wait(30)
    assert result.successful == 1, result.explain()
    bodies = uas.messages.read_text(errors="replace")
    assert "Call me back, Ünal" in bodies and f"sip:{REACHABLE}@" in bodies

    lines, out = decoded(capture)
    for op in ("sendRoutingInfoForSM", "mt-forwardSM", "reportSM-DeliveryStatus",
               "alertServiceCentre", "mo-forwardSM"):
        assert op in lines, (op, lines)
    assert "returnError" in lines and "gsm_map" in " ".join(out.protocols)
    assert "Traceback" not in node.log()


def test_isup_through_osmo_stp(tmp_path, network):
    """The switch's IAM (calling number with presentation, original called
    number, redirecting number and redirection information) gets an ACM at once and,
    after the configured 1 s, a REL with the configured cause 34; the
    switch's RLC frees the circuit, which takes the next call; tshark
    decodes IAM, ACM, REL and RLC with 0 malformed."""
    node, sim, capture = network
    for cic, presentation, reason in ((5, 0, 6), (5, 1, 1), (6, 0, 2)):
        call = sim.ctl(cmd="iam", cic=cic, called="447900999000", calling="447700900002",
                       presentation=presentation, original=REACHABLE,
                       redirecting=REACHABLE, reason=reason)
        assert call.get("acm") is not None and call["acm"] < 0.9, call
        assert 0.9 <= call["rel"] < 3.0 and call["cause"] == 34, call
    lines, out = decoded(capture)
    for name in ("IAM", "ACM", "REL", "RLC"):
        assert name in lines, (name, lines)
    assert "isup" in " ".join(out.protocols)
    assert "Traceback" not in node.log()


@pytest.mark.parametrize("network", [[1, 2]], indirect=True)
def test_v2_msc_gets_forward_sm(tmp_path, network):
    """An MSC without MAP v3 refuses shortMsgMT-RelayContext-v3 (U-Abort,
    AARE "application context not supported", naming v2); the node tries
    again in v2 with forwardSM (opcode 46) and the message is delivered;
    show tcap dialogues over SSH shows the counters and nothing left
    open; tshark sees the refusal and the v2 dialogue, 0 malformed."""
    node, sim, capture = network
    messages_from_app(tmp_path, node, [REACHABLE])
    wait_for(lambda: sim.ctl(cmd="records")["mt"], 20, interval=0.3, what="MT in v2")
    mt, = sim.ctl(cmd="records")["mt"]
    assert (mt["opcode"], mt["ac"][-1], mt["answer"]) == (46, 2, "ok"), mt
    rc, out, err = ssh(tmp_path, node, "admin", node.admin_key, "show tcap dialogues")
    assert rc == 0, out + err
    assert "0 dialogues open" in out and "refused" in out and "begin-sent" in out, out
    lines, _ = decoded(capture)
    assert "abort" in lines.lower() and "forwardSM" in lines, lines


def test_stp_restart_mid_traffic(tmp_path, network, osmo_stp):
    """osmo-stp restarted while messages flow: both ASPs reconnect
    (ASPUP, REG REQ, ASPAC again), messages that met the outage are
    retried, and every message reaches the MSC afterwards."""
    node, sim, capture = network
    messages_from_app(tmp_path / "before", node, [REACHABLE] * 3)
    osmo_stp.restart()
    messages_from_app(tmp_path / "during", node, [REACHABLE] * 3)
    wait_for(lambda: node_active(node, 2), 30, what="node ASP-ACTIVE again")
    assert sim.ctl(cmd="wait-active", timeout=20) == {"active": True}
    messages_from_app(tmp_path / "after", node, [REACHABLE] * 3)
    wait_for(lambda: len([m for m in sim.ctl(cmd="records")["mt"] if m["answer"] == "ok"]) >= 9,
             60, interval=0.5, what="all nine delivered")
    capture.stop()
    assert "Traceback" not in node.log()
