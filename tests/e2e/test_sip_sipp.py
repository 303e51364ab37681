"""
End-to-end tests of the SIP side with SIPp as the apps: the real node
(C{twistd -n appliance}) with C{[sip]} on UDP and TCP, accounts provisioned
at first start, and the committed scenarios in C{tests/sipp/}.  A tshark
capture of a whole run must decode without a malformed packet.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import Node, wait_for
from tests.e2e.sip_tools import (
    DOMAIN, SIPP, TSHARK, Capture, LoggedMessage, SIPp, parse_message_log,
    received_requests, run_sipp, start_sip_node, write_users)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None,
                                 reason="needs sipp (Debian sip-tester)")]

#: Sender, recipient and offline recipient per transport: separate
#: accounts, because an app that exits leaves its contact registered.
USERS = {"udp": ("1111", "2222", "3333"), "tcp": ("4111", "4222", "4333")}
ACCOUNTS = {user: f"pw-{user}" for trio in USERS.values() for user in trio}

#: Text the scenario message_uac.xml puts in every body (UTF-8).
ARABIC = "مرحبا من SIPp"
EMOJI = "👋🌍"


def node_port(node: Node, transport: str) -> int:
    """The node's port for a transport."""
    return node.port(f"sip_{transport}")


def users(tmp: Path, name: str, *rows: tuple[str, ...]) -> Path:
    """An injection file of (user, password, *more) rows."""
    tmp.mkdir(parents=True, exist_ok=True)
    return write_users(tmp / f"{name}.csv", rows)


def sent_messages(path: Path) -> list[LoggedMessage]:
    """The MESSAGE requests a SIPp run sent with credentials."""
    return [m for m in parse_message_log(path) if m.direction == "sent"
            and m.first_line.startswith("MESSAGE ")
            and m.header("Proxy-Authorization")]


def registered(uas: SIPp) -> bool:
    """Whether a register_receive.xml run got its 200 to REGISTER."""
    if uas.process.poll() is not None:
        raise AssertionError("receiver exited early:\n" + uas.wait().explain())
    return any(m.direction == "received" and m.first_line.startswith(
        "SIP/2.0 200") and "REGISTER" in (m.header("CSeq") or "")
        for m in uas.sent_and_received())


def start_receiver(tmp: Path, node: Node, transport: str, user: str,
                   expected: int, port: int | None = None,
                   name: str = "uas") -> SIPp:
    """
    Start SIPp as app C{user}: it registers over C{transport}, then
    answers C{expected} MESSAGE requests with 200 and exits.
    """
    return SIPp(tmp / f"{name}-{transport}", "register_receive.xml",
                port or node_port(node, transport), transport=transport,
                users=users(tmp, f"{name}-{user}", (user, ACCOUNTS[user])),
                ooc="receive_ooc.xml", expected=expected, timeout=30)


def send_messages(tmp: Path, port: int, transport: str, sender: str,
                  to: str, calls: int = 1, name: str = "uac"):
    """Run message_uac.xml from C{sender} to C{to}; return the result."""
    csv = users(tmp, f"{name}-{sender}", (sender, ACCOUNTS[sender], to))
    return run_sipp(tmp / f"{name}-{transport}", "message_uac.xml", port,
                    transport=transport, users=csv, calls=calls,
                    rate=calls, timeout=20)


# -- scenarios, each usable alone or inside a capture ---------------------------

def check_register(tmp: Path, node: Node, transport: str) -> None:
    """REGISTER with digest: 401 then 200; a wrong password: 403."""
    port = node_port(node, transport)
    sender = USERS[transport][0]
    ok = run_sipp(tmp / f"reg-{transport}", "register.xml", port,
                  transport=transport,
                  users=users(tmp, f"reg-{transport}",
                              (sender, ACCOUNTS[sender])),
                  timeout=15)
    assert ok.returncode == 0 and ok.successful == 1, ok.explain()
    log = parse_message_log(ok.messages)
    statuses = [m.first_line for m in log if m.direction == "received"]
    assert statuses[0].startswith("SIP/2.0 401"), statuses
    assert statuses[-1].startswith("SIP/2.0 200"), statuses
    assert f"{sender}@127.0.0.1" in (log[-1].header("Contact") or "")
    bad = run_sipp(tmp / f"bad-{transport}", "register_wrong_password.xml",
                   port, transport=transport,
                   users=users(tmp, f"bad-{transport}", (sender, "nope")),
                   timeout=15)
    assert bad.returncode == 0 and bad.successful == 1, bad.explain()


def check_message_byte_exact(tmp: Path, node: Node, transport: str) -> None:
    """MESSAGE sender -> recipient (407, 202); the recipient (SIPp,
    registered on the same transport) gets the UTF-8 body byte for byte."""
    port = node_port(node, transport)
    sender, recipient, _ = USERS[transport]
    uas = start_receiver(tmp, node, transport, recipient, expected=1)
    try:
        wait_for(lambda: registered(uas), what=f"{recipient} registered")
        uac = send_messages(tmp, port, transport, sender, recipient)
        assert uac.returncode == 0 and uac.successful == 1, uac.explain()
        got = uas.wait()
        assert got.returncode == 0, got.explain()
    finally:
        uas.stop()
    sent = sent_messages(uac.messages)
    assert len(sent) == 1
    log = parse_message_log(uac.messages)
    statuses = [m.first_line for m in log if m.direction == "received"]
    assert statuses[0].startswith("SIP/2.0 407"), statuses
    assert statuses[-1].startswith("SIP/2.0 202"), statuses
    delivered = received_requests(got_messages(uas), "MESSAGE")
    assert len(delivered) == 1
    body = delivered[0].body
    assert body == sent[0].body
    assert ARABIC.encode("utf-8") in body and EMOJI.encode("utf-8") in body
    assert int(delivered[0].header("Content-Length") or -1) == len(body)
    ctype = (delivered[0].header("Content-Type") or "").lower().replace(" ", "")
    assert ctype.startswith("text/plain") and "charset=utf-8" in ctype
    assert f"sip:{sender}@{DOMAIN}" in (delivered[0].header("From") or "")


def got_messages(uas: SIPp) -> list[LoggedMessage]:
    """Everything a receiver logged."""
    return uas.sent_and_received()


def check_offline_delivery(tmp: Path, node: Node, transport: str) -> None:
    """Two MESSAGEs to an app that is not registered are accepted (202);
    when it registers it gets both, in order, byte-exact."""
    port = node_port(node, transport)
    sender, _, offline = USERS[transport]
    uac = send_messages(tmp, port, transport, sender, offline, calls=2,
                        name="offline")
    assert uac.returncode == 0 and uac.successful == 2, uac.explain()
    sent = sent_messages(uac.messages)
    assert len(sent) == 2
    uas = start_receiver(tmp, node, transport, offline, expected=2,
                         name="late")
    try:
        got = uas.wait()
    finally:
        uas.stop()
    assert got.returncode == 0, got.explain()
    delivered = received_requests(got_messages(uas), "MESSAGE")
    bodies = [m.body for m in delivered]
    # A retransmission may repeat a body; the order of first arrival counts.
    firsts = list(dict.fromkeys(bodies))
    assert firsts == [sent[0].body, sent[1].body]
    assert b"#1 " in firsts[0] and b"#2 " in firsts[1]


@pytest.fixture
def node(tmp_path):
    """A node with SIP on UDP and TCP and the accounts of L{USERS}."""
    n = start_sip_node(tmp_path, ACCOUNTS)
    yield n
    assert n.process.poll() is None, "node died:\n" + n.log()
    n.stop()
    assert "Traceback" not in n.log(), n.log()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_register_digest_and_wrong_password(tmp_path, node, transport):
    """REGISTER gets a 401 challenge, then 200 with the right digest; the
    wrong password gets 403 after the challenge."""
    check_register(tmp_path, node, transport)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_message_between_apps_byte_exact(tmp_path, node, transport):
    """An app's MESSAGE with an Arabic and emoji UTF-8 body is challenged
    (407), accepted (202) and reaches the registered recipient with the
    same body bytes, Content-Length in bytes, text/plain;charset=UTF-8,
    From the sender."""
    check_message_byte_exact(tmp_path, node, transport)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_offline_messages_delivered_on_register(tmp_path, node, transport):
    """MESSAGEs to an app that is not registered are stored (202) and
    delivered in order when it registers."""
    check_offline_delivery(tmp_path, node, transport)


@pytest.mark.skipif(TSHARK is None, reason="needs tshark")
def test_capture_of_whole_run_has_no_malformed_packet(tmp_path, node):
    """tshark captures every scenario above on UDP and TCP: it decodes the
    SIP requests and responses (REGISTER, MESSAGE, 401, 407, 403, 200,
    202) and finds 0 malformed packets."""
    udp, tcp = node_port(node, "udp"), node_port(node, "tcp")
    capture = Capture(tmp_path / "run.pcap", udp=[udp], tcp=[tcp])
    try:
        for transport in ("udp", "tcp"):
            check_register(tmp_path / "cap", node, transport)
            check_message_byte_exact(tmp_path / "cap", node, transport)
            check_offline_delivery(tmp_path / "cap", node, transport)
    finally:
        capture.stop()
    seen = capture.sip_methods()
    for kind in ("REGISTER", "MESSAGE", "401", "407", "403", "200", "202"):
        assert seen.get(kind, 0) > 0, seen
    text = capture.verbose()
    assert "Session Initiation Protocol" in text
    assert text.lower().count("malformed") == 0
