"""
End to end: where the node sends MESSAGE to an app registered over UDP
(RFC 3261 10, RFC 3581, RFC 5626), with SIPp as the apps.  An app that
registers from one port with a Contact on another port gets its messages
at the Contact; a NATed one (private Contact and Via) and an outbound one
(C{+sip.instance} and C{reg-id}) get them over the flow their REGISTER
came on; C{[sip] nat = "flow"} forces the flow.
"""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.e2e.harness import Node, wait_for
from tests.e2e.sip_tools import (
    SIPP, SIPp, free_port, received_requests, run_sipp, start_sip_node, write_users)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")]

APP, SENDER = "5111", "5222"
ACCOUNTS = {APP: "pw-app", SENDER: "pw-sender"}
INSTANCE = '"<urn:uuid:2f1b7e40-7a8c-4f2a-9d39-5b6a6a1c0001>"'


def start_app(tmp: Path, node: Node, contact: str, params: str, sent_by: str | None,
              expected: int) -> SIPp:
    """
    SIPp as the app's registering socket (register_contact.xml): it
    REGISTERs from its own port with the given Contact and Via sent-by
    (its own address when C{None}), then answers C{expected} MESSAGEs.
    """
    port = free_port(socket.SOCK_DGRAM)
    csv = write_users(tmp / "app.csv", [(APP, ACCOUNTS[APP])])
    return SIPp(tmp / "app", "register_contact.xml", node.port("sip_udp"),
                users=csv, ooc="receive_ooc.xml", expected=expected, timeout=30,
                local_port=port,
                extra=["-key", "contact", contact, "-key", "contact_params", params,
                       "-key", "sent_by", sent_by or f"127.0.0.1:{port}"])


def start_listener(tmp: Path, node: Node) -> SIPp:
    """SIPp as the app's listening socket (message_uas.xml): answers one MESSAGE."""
    return SIPp(tmp / "listener", "message_uas.xml", node.port("sip_udp"), timeout=30)


def registered(app: SIPp) -> bool:
    """Whether the app got its 200 to REGISTER."""
    return any(m.direction == "received" and m.first_line.startswith("SIP/2.0 200")
               and "REGISTER" in (m.header("CSeq") or "") for m in app.sent_and_received())


def send_one(tmp: Path, node: Node) -> None:
    """The sender's MESSAGE to the app is accepted (407, then 202)."""
    csv = write_users(tmp / "sender.csv", [(SENDER, ACCOUNTS[SENDER], APP)])
    uac = run_sipp(tmp / "sender", "message_uac.xml", node.port("sip_udp"), users=csv,
                   timeout=20)
    assert uac.returncode == 0 and uac.successful == 1, uac.explain()


def messages(peer: SIPp) -> list:
    """The MESSAGE requests a SIPp run received."""
    return received_requests(peer.sent_and_received(), "MESSAGE")


def delivered(node: Node) -> bool:
    """Whether the node logged the delivery of the message."""
    return "delivered" in node.log()


@pytest.fixture
def node(tmp_path, request):
    """A node with SIP on UDP, the app and the sender; C{nat} from the test's param."""
    nat = getattr(request, "param", "auto")
    n = start_sip_node(tmp_path, ACCOUNTS, nat=nat)
    yield n
    assert n.process.poll() is None, "node died:\n" + n.log()
    n.stop()
    assert "Traceback" not in n.log(), n.log()


def test_contact_on_another_port_receives(tmp_path, node):
    """
    An app registering from one port with a Contact on another port of
    the same host (its Via is its source: no NAT) receives the MESSAGE on
    the Contact's port, where a second SIPp listens; nothing goes to the
    registering socket.
    """
    listener = start_listener(tmp_path, node)
    app = start_app(tmp_path, node, f"127.0.0.1:{listener.local_port}", ";x-e2e=1", None, 0)
    try:
        result = app.wait()
        assert result.returncode == 0, result.explain()
        assert "(contact)" in node.log(), node.log()[-3000:]
        send_one(tmp_path, node)
        got = listener.wait()
        assert got.returncode == 0 and got.successful == 1, got.explain()
    finally:
        listener.stop()
        app.stop()
    (message,) = messages(listener)
    assert message.first_line.startswith(f"MESSAGE sip:{APP}@127.0.0.1:{listener.local_port}")
    assert messages(app) == []


def test_natted_app_receives_on_its_flow(tmp_path, node):
    """
    An app behind NAT (private Contact and Via 10.1.2.3:5060, packets from
    127.0.0.1) receives the MESSAGE on the socket it registered from, with
    its Contact as the Request-URI.
    """
    app = start_app(tmp_path, node, "10.1.2.3:5060", ";x-e2e=1", "10.1.2.3:5060", 1)
    try:
        wait_for(lambda: registered(app), what="app registered")
        send_one(tmp_path, node)
        result = app.wait()
        assert result.returncode == 0, result.explain()
    finally:
        app.stop()
    (message,) = messages(app)[:1]
    assert message.first_line.startswith(f"MESSAGE sip:{APP}@10.1.2.3:5060")


def test_outbound_app_receives_on_its_flow(tmp_path, node):
    """
    An app asking for outbound (C{+sip.instance} and C{reg-id}) with a
    Contact on another port receives the MESSAGE on its flow (the
    registering socket); the SIPp listening at the Contact gets nothing.
    The 200 carries C{Require: outbound}.
    """
    listener = start_listener(tmp_path, node)
    app = start_app(tmp_path, node, f"127.0.0.1:{listener.local_port}",
                    f";+sip.instance={INSTANCE};reg-id=1", None, 1)
    try:
        wait_for(lambda: registered(app), what="app registered")
        send_one(tmp_path, node)
        result = app.wait()
        assert result.returncode == 0, result.explain()
    finally:
        app.stop()
        listener.stop()
    assert len(messages(app)) >= 1
    assert messages(listener) == []
    ok = [m for m in app.sent_and_received() if m.direction == "received"
          and m.first_line.startswith("SIP/2.0 200")]
    assert "outbound" in (ok[-1].header("Require") or "")


@pytest.mark.parametrize("node", ["flow"], indirect=True)
def test_nat_flow_forces_the_flow(tmp_path, node):
    """
    With C{[sip] nat = "flow"}, the app with a Contact on another port
    (delivered to the Contact under C{auto}) receives on its flow.
    """
    listener = start_listener(tmp_path, node)
    app = start_app(tmp_path, node, f"127.0.0.1:{listener.local_port}", ";x-e2e=1", None, 1)
    try:
        wait_for(lambda: registered(app), what="app registered")
        send_one(tmp_path, node)
        result = app.wait()
        assert result.returncode == 0, result.explain()
    finally:
        app.stop()
        listener.stop()
    assert len(messages(app)) >= 1
    assert messages(listener) == []
