"""
Bad peers against the real node (short): a black-hole app and a slow app
hold only their own delivery lanes; a flooding bind is throttled and
counted while another carrier is served; a half-open SMPP peer is closed
by its unanswered enquire_link.  Peers are raw sockets
(L{tests.e2e.overload_peers}).
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from appliance.http.model import token_hash
from tests.e2e import overload_peers as P
from tests.e2e.harness import ROOT, start_node, wait_for
from tests.e2e.http_tools import curl

pytestmark = pytest.mark.e2e

DOMAIN = "ov.test"
APPS = {"good": "964700000001", "slow": "964700000002",
        "hole": "964700000003"}
TOKEN = "overload-e2e-token-0123456789abcdefghijklm"


def provision(tmp_path: Path, smsc_port: int) -> Path:
    lines = [(ROOT / "shell" / "demo.cli").read_text(), "configure terminal",
             " connection fast", "  host 127.0.0.1", f"  port {smsc_port}",
             "  system-id node", "  password pw", " exit",
             " service-policy tofast", "  recipient-pattern 351%",
             "  transport smpp connection fast", " exit",
             " tenant acme", f"  token-hash {token_hash(TOKEN)}", " exit",
             ' product "SMS"', "  messaging enable", " exit",
             ' customer "E2E"']
    for user, did in APPS.items():
        lines += [f"  account {user}", "   password app-pass-1",
                  '   product "SMS"', f"   did {did}", "  exit"]
    lines += [" exit", "end", ""]
    path = tmp_path / "provision.cli"
    path.write_text("\n".join(lines))
    return path


@pytest.fixture
def node(tmp_path):
    smsc = P.DelayedSMSC(0)
    listen = "tcp:port=0:interface=127.0.0.1"
    n = start_node(
        tmp_path, node={"provision": str(provision(tmp_path, smsc.port)),
                        "log_level": "info"},
        smpp={"enabled": True, "listen": listen, "window": 100,
              "enquire_link_interval": 1, "response_timeout": 1},
        http={"enabled": True, "listen": listen},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "retry_schedule": [60],
             "validity": 600})
    n.smsc = smsc
    yield n
    n.stop()
    smsc.stop()


def submit_all(port, sid, pw, destination, count, window=50):
    """Submit C{count} messages closed loop; @return: statuses."""
    s = P.bind(port, sid, pw)
    s.setblocking(True)
    body = P.submit_body(destination, b"e2e")
    statuses, outstanding, seq, buffer = [], 0, 1, b""
    while len(statuses) < count:
        while outstanding < window and seq - 1 < count:
            seq += 1
            s.sendall(P.pdu(P.SUBMIT_SM, seq, body))
            outstanding += 1
        data = s.recv(65536)
        assert data, "node closed the bind"
        frames, buffer = P.split(buffer + data)
        for f in frames:
            _, cid, status, _ = P.HEADER.unpack_from(f)
            if cid == P.SUBMIT_SM | P.RESP:
                statuses.append(status)
                outstanding -= 1
            elif cid == P.ENQUIRE_LINK:
                s.sendall(P.pdu(P.ENQUIRE_LINK | P.RESP,
                                P.HEADER.unpack_from(f)[3]))
    s.close()
    return statuses


def test_black_hole_and_slow_app_delay_only_their_own(node):
    """With 300 messages waiting for an app that never answers and 300 for
    one that answers after 5 s, each gets at most its lane's 100 MESSAGEs
    at once, and 50 messages to a third app are all delivered within a
    few seconds."""
    sip = node.port("sip_udp")
    apps = {"good": P.SIPApp(sip, "good", "app-pass-1", DOMAIN),
            "slow": P.SIPApp(sip, "slow", "app-pass-1", DOMAIN, delay=5.0),
            "hole": P.SIPApp(sip, "hole", "app-pass-1", DOMAIN,
                             delay=3600.0)}
    for app in apps.values():
        app.start()
        assert app.registered.wait(10)
    try:
        smpp = node.port("smpp")
        for user in ("hole", "slow"):
            statuses = submit_all(smpp, "carrier2", "car2pass", APPS[user],
                                  300)
            assert statuses == [0] * 300
        wait_for(lambda: len(apps["hole"].received) >= 100, 15,
                 what="the black hole's lane full")
        started = time.monotonic()
        assert submit_all(smpp, "carrier1", "car1pass", APPS["good"],
                          50) == [0] * 50
        wait_for(lambda: len(apps["good"].received) >= 50, 10,
                 what="the good app's 50 messages")
        took = time.monotonic() - started
        assert len(apps["hole"].received) == 100
        assert len(apps["slow"].received) <= 200     # 100 per 5 s
        assert took < 10
    finally:
        for app in apps.values():
            app.stop()


def test_flood_throttled_counted_and_half_open_closed(node):
    """A bind that floods without reading gets ESME_RTHROTTLED beyond its
    window and is counted (appliance_refused_total in /metrics, a
    warning line) while another carrier's 100 submits are all accepted;
    a bind that then goes silent is closed once its enquire_link goes
    unanswered."""
    smpp = node.port("smpp")
    flood = P.half_open_smpp(smpp, "carrier3", "car3pass", 5000,
                             "351900000001")
    got = submit_all(smpp, "carrier1", "car1pass", "351900000001", 100)
    assert got == [0] * 100, [line for line in node.log().splitlines()
                              if "overload" in line]
    port = node.port("http")
    def refused():
        text = curl(f"http://127.0.0.1:{port}/metrics")[2]
        return [line for line in text.splitlines()
                if line.startswith('appliance_refused_total{listener="smpp"')]
    assert any('reason="window"' in line
               for line in wait_for(refused, 10, what="SMPP refusals in "
                                    "/metrics"))
    wait_for(lambda: "smpp overload:" in node.log(), 5,
             what="the overload warning")
    wait_for(lambda: "enquire_link unanswered" in node.log(), 10,
             what="the half-open bind closed")
    flood.settimeout(5)
    try:
        while flood.recv(1 << 16):
            pass
    except (ConnectionError, socket.timeout):
        pass
    flood.close()
