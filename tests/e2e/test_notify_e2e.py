"""
The missed-call service (seed 003) end to end: the real node and the
SIGTRAN simulator (switch, HLR, MSC/VLR) as two ASPs of osmo-stp over
M3UA/TCP, SIPp sending INVITEs with Diversion.  The SMS leave by MAP
(C{delivery map}) and are checked where they arrive, at the simulated
MSC: recipient (IMSI), sender, text, count.
"""
from __future__ import annotations

import pytest

from tests.e2e.harness import wait_for
from tests.e2e.osmo_stp import osmo_stp  # noqa: F401  (fixture)
from tests.e2e.sigsim_tools import MSC_GT, Sim, node_active, node_for_sim
from tests.e2e.sip_tools import SIPP, parse_message_log, run_sipp

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")]

SERVICE = "447900999000"
A = "447900100001"          # the caller, reachable
BUSY = "447900100002"       # reachable (busy case)
GONE = "447900100003"       # HLR knows the MSC, the MSC says absent (subcase 1)
ABSENT = "447900100004"     # the HLR says absent (subcase 2)
BACK = "447900100005"       # reachable after all (subcase 3)
SIP_B = "447900100006"      # the SIP unreachable case (subcase 1)
IMSI = {n: "23415" + n[-10:] for n in (A, BUSY, GONE, BACK, ABSENT, SIP_B)}
SUBSCRIBERS = {n: {"state": "reachable", "imsi": IMSI[n], "msc": MSC_GT}
               for n in (A, BUSY, GONE, BACK, SIP_B)}
SUBSCRIBERS[ABSENT] = {"state": "absent"}
REFUSE = {IMSI[GONE]: "absent", IMSI[SIP_B]: "absent"}

NOTIFICATION = f"""configure terminal
notification
 service-number {SERVICE}
 isup channel-seized-timer 1
 isup release-cause other 34
 include count
 template notify-me {{called}} can be reached again
 delivery map
exit
service-policy optout
 recipient-pattern {SERVICE}
 transport notification
exit
service-policy-order optout 1
end
"""


def start(tmp_path, port):
    node = node_for_sim(tmp_path, port, {"1111": "pw-1111"},
                        extra=NOTIFICATION)
    wait_for(lambda: node_active(node), 20, what="node ASP-ACTIVE")
    return node


@pytest.fixture
def network(tmp_path, osmo_stp):
    """osmo-stp, the node and the simulator, all active."""
    node = start(tmp_path, osmo_stp.port)
    sim = Sim(tmp_path / "sim", osmo_stp.port,
              hlr={"subscribers": SUBSCRIBERS}, msc={"refuse": REFUSE})
    assert sim.ctl(cmd="wait-active", timeout=15) == {"active": True}, sim.log()
    yield node, sim
    sim.stop()
    node.stop()


def call(sim, b, reason, presentation=0, cic=5):
    """One IAM to the service number; @return: the switch's record."""
    return sim.ctl(cmd="iam", cic=cic, called=SERVICE, calling=A,
                   presentation=presentation, original=b, redirecting=b,
                   reason=reason)


def shown(sim, imsi=None):
    """The visible MT-ForwardSM the MSC accepted, as (imsi, sender, text)."""
    return [(m["imsi"], m["sender"], m["text"]) for m in sim.ctl(cmd="records")["mt"]
            if m["pid"] == 0 and m["answer"] == "ok"
            and (imsi is None or m["imsi"] == imsi)]


def invisible(sim, imsi):
    """The type 0 MT-ForwardSM tried to C{imsi}, their answers."""
    return [m["answer"] for m in sim.ctl(cmd="records")["mt"]
            if m["pid"] == 0x40 and m["imsi"] == imsi]


def reports(sim, msisdn):
    return [r["outcome"] for r in sim.ctl(cmd="records")["reports"]
            if r["msisdn"] == msisdn]


def test_isup_busy_no_reply_and_clir(tmp_path, network):
    """ISUP case A: ACM, REL cause 17 after the 1 s channel-seized timer,
    and Who Called to B at once with A as sender; case B (no reply): REL
    with the configured cause 34 and no SMS; presentation restricted:
    REL 17 and nothing to anyone; after B sends the opt-out keyword to the
    service number (MO-ForwardSM), B's busy calls send nothing."""
    node, sim = network
    busy = call(sim, BUSY, 1)
    assert busy["acm"] is not None and busy["acm"] < 0.9, busy
    assert 0.9 <= busy["rel"] < 3.0 and busy["cause"] == 17, busy
    wait_for(lambda: shown(sim), 15, interval=0.3, what="Who Called")
    assert shown(sim) == [(IMSI[BUSY], A, f"Missed call from {A} (1 calls)")]
    no_reply = call(sim, BUSY, 2)
    assert no_reply["cause"] == 34 and 0.9 <= no_reply["rel"] < 3.0
    for reason in (1, 2, 6):
        r = call(sim, BUSY, reason, presentation=1)
        assert r["cause"] in (17, 34) and r["rel"] is not None
    sri = [s["msisdn"] for s in sim.ctl(cmd="records")["sri"]]
    assert len(shown(sim)) == 1 and sri == [BUSY]
    # B opts out by SMS to the service number: no Who Called any more.
    mo = sim.ctl(cmd="mo", **{"from": BUSY, "to": SERVICE, "text": "stop"})
    assert mo["result"] == "ok", mo
    # The node logs this once the blacklist is committed and in force.
    wait_for(lambda: "opted out" in node.log(), 15, what="opt-out")
    call(sim, BUSY, 1)
    # A later busy call to another B is shown alone: B got nothing.
    call(sim, BACK, 1)
    wait_for(lambda: shown(sim, IMSI[BACK]), 15, interval=0.3,
             what="Who Called to the next B")
    assert sorted(m[0] for m in shown(sim)) == [IMSI[BUSY], IMSI[BACK]], \
        shown(sim)
    assert node.log().count(f"who-called to {BUSY} ") == 1
    assert "Traceback" not in node.log()


def test_isup_unreachable_subcases(tmp_path, osmo_stp):
    """Subcase 1 (MSC absent): five calls, one invisible SMS refused, one
    ReportSM-DeliveryStatus; the pending entry survives a restart of the
    node; the alert brings one Who Called to B (A as sender, count 5) and
    one Notify Me to A (B as sender).  Subcase 2 (HLR absent): reported,
    both SMS on the alert.  Subcase 3 (delivered): both at once."""
    node = start(tmp_path, osmo_stp.port)
    sim = Sim(tmp_path / "sim", osmo_stp.port,
              hlr={"subscribers": SUBSCRIBERS}, msc={"refuse": REFUSE})
    try:
        assert sim.ctl(cmd="wait-active", timeout=15) == {"active": True}
        for _ in range(5):
            r = call(sim, GONE, 6)
            assert r["cause"] == 34 and 0.9 <= r["rel"] < 3.0, r
        wait_for(lambda: reports(sim, GONE), 15, interval=0.3, what="report")
        assert invisible(sim, IMSI[GONE]) == ["ok" if False else "absent"]
        assert reports(sim, GONE) == ["absentSubscriber"]
        call(sim, ABSENT, 6)
        wait_for(lambda: reports(sim, ABSENT), 15, interval=0.3, what="report")
        call(sim, BACK, 6)
        wait_for(lambda: len(shown(sim)) == 2, 15, interval=0.3,
                 what="subcase 3 SMS")
        assert sorted(shown(sim)) == sorted([
            (IMSI[BACK], A, f"Missed call from {A} (1 calls)"),
            (IMSI[A], BACK, f"{BACK} can be reached again")])
        assert shown(sim, IMSI[GONE]) == []

        # A restart while pending loses nothing.
        node.stop()
        node = start(tmp_path, osmo_stp.port)
        assert sim.ctl(cmd="wait-active", timeout=15) == {"active": True}
        sim.ctl(cmd="refuse", imsi=IMSI[GONE], how=None)
        sim.ctl(cmd="set", msisdn=ABSENT, state="reachable",
                imsi=IMSI[ABSENT], msc=MSC_GT)
        wait_for(lambda: sim.ctl(cmd="alert", msisdn=GONE)["result"] == "ok",
                 20, interval=0.5, what="alert accepted")
        wait_for(lambda: len(shown(sim)) == 4, 15, interval=0.3,
                 what="subcase 1 SMS")
        assert shown(sim, IMSI[GONE]) == [(IMSI[GONE], A, f"Missed call from {A} (5 calls)")]
        assert (IMSI[A], GONE, f"{GONE} can be reached again") in shown(sim)
        assert sim.ctl(cmd="alert", msisdn=ABSENT)["result"] == "ok"
        wait_for(lambda: len(shown(sim)) == 6, 15, interval=0.3,
                 what="subcase 2 SMS")
        assert shown(sim, IMSI[ABSENT]) == [(IMSI[ABSENT], A, f"Missed call from {A} (1 calls)")]
        # Forgotten: a second alert sends nothing more.
        sim.ctl(cmd="alert", msisdn=GONE)
        assert len(shown(sim)) == 6
        assert "Traceback" not in node.log()
    finally:
        sim.stop()
        node.stop()


def invite(tmp_path, node, name, reason, called, privacy="none"):
    """SIPp sends one INVITE with Diversion; @return: the final status."""
    result = run_sipp(tmp_path / name, "invite_div.xml", node.port("sip_udp"),
                      timeout=15, extra=["-key", "svc", SERVICE,
                                         "-key", "caller", A,
                                         "-key", "called", called,
                                         "-key", "reason", reason,
                                         "-key", "privacy", privacy])
    assert result.successful == 1, result.explain()
    finals = [m.first_line for m in parse_message_log(result.messages)
              if m.direction == "received" and not m.first_line.startswith("SIP/2.0 100")]
    assert len(finals) == 1, finals     # the ACK stopped the retransmissions
    return int(finals[0].split()[1])


def test_sip_cases(tmp_path, network):
    """SIP: user-busy gets 486 and Who Called to the Diversion's number
    with From as sender; with Privacy: id, 486 and nothing; no-answer gets
    480 and nothing; unavailable gets 480, the HLR probe (MSC absent), and
    on the alert one SMS each way."""
    node, sim = network
    assert invite(tmp_path, node, "busy", "user-busy", BUSY) == 486
    wait_for(lambda: shown(sim), 15, interval=0.3, what="Who Called")
    assert shown(sim) == [(IMSI[BUSY], A, f"Missed call from {A} (1 calls)")]
    assert invite(tmp_path, node, "clir", "user-busy", BUSY, "id") == 486
    assert invite(tmp_path, node, "noanswer", "no-answer", BUSY) == 480
    assert invite(tmp_path, node, "gone", "unavailable", SIP_B) == 480
    wait_for(lambda: reports(sim, SIP_B), 15, interval=0.3, what="report")
    assert len(shown(sim)) == 1
    sim.ctl(cmd="refuse", imsi=IMSI[SIP_B], how=None)
    assert sim.ctl(cmd="alert", msisdn=SIP_B)["result"] == "ok"
    wait_for(lambda: len(shown(sim)) == 3, 15, interval=0.3, what="SMS")
    assert (IMSI[SIP_B], A, f"Missed call from {A} (1 calls)") in shown(sim)
    assert (IMSI[A], SIP_B, f"{SIP_B} can be reached again") in shown(sim)
    assert "Traceback" not in node.log()


def test_delivery_smpp_through_the_core(tmp_path):
    """With C{delivery smpp}, the Who Called of a SIP busy call is a message
    of the core: a service policy sends it over an SMPP connection to the
    operator's SMSC, with A as source, B as destination and the template's
    text in UCS-2 when it needs it."""
    from tests.e2e.harness import start_node
    from tests.e2e.smsc import SMSC
    from tests.e2e.sip_tools import DOMAIN, provision_script
    smsc = SMSC("operator")
    base = tmp_path / "node"
    base.mkdir(parents=True)
    script = base / "provision.cli"
    script.write_text(provision_script({}) + f"""configure terminal
connection operator
 host 127.0.0.1
 port {smsc.port}
 system-id node
 password pw
exit
service-policy mobiles
 recipient-pattern 4479%
 transport smpp connection operator
exit
notification
 service-number {SERVICE}
 template who-called Пропущенный звонок: {{caller}}
exit
end
""")
    node = start_node(tmp_path, sip={
        "enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
        "domain": DOMAIN, "realm": DOMAIN}, node={"provision": str(script)})
    try:
        wait_for(lambda: smsc.binds, 20, what="SMSC bound")
        assert invite(tmp_path, node, "busy", "user-busy", BUSY) == 486
        wait_for(lambda: smsc.received, 20, interval=0.3, what="submit_sm")
        (got,) = smsc.received
        assert (got.source, got.destination) == (A, BUSY)
        assert got.text.decode("utf-16-be") == f"Пропущенный звонок: {A}"
        assert invite(tmp_path, node, "clir", "user-busy", BUSY, "id") == 486
        # A later call's SMS arrives alone: the CLIR call sent nothing.
        assert invite(tmp_path, node, "next", "user-busy", BACK) == 486
        wait_for(lambda: len(smsc.received) == 2, 20, interval=0.3,
                 what="the next submit_sm")
        assert [r.destination for r in smsc.received] == [BUSY, BACK]
        assert "Traceback" not in node.log()
    finally:
        node.stop()
        smsc.stop()
