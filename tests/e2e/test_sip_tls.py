"""
End-to-end tests of SIP over TLS: the node's C{ssl:} listener with a
self-signed certificate made by openssl in the test.  Debian's SIPp has no
TLS, so it goes through stunnel4 (client mode: TCP in, TLS out); Debian's
baresip registers and sends MESSAGE over TLS as a real softphone would.
"""
from __future__ import annotations

import pytest

from tests.e2e.harness import wait_for
from tests.e2e.sip_tools import (
    BARESIP, DOMAIN, OPENSSL, SIPP, STUNNEL, Baresip, SIPp, Stunnel,
    make_certificate, parse_message_log, received_requests, run_sipp,
    start_sip_node, write_users)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(OPENSSL is None, reason="needs openssl"),
    pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)"),
]

ACCOUNTS = {"5111": "pw-5111", "5222": "pw-5222", "6111": "pw-6111",
            "6222": "pw-6222"}
ARABIC = "مرحبا من SIPp"


def _tls_node(tmp_path, **sip):
    """A node with SIP on UDP, TCP and TLS (a fresh self-signed cert)."""
    key, cert = make_certificate(tmp_path / "pki")
    node = start_sip_node(tmp_path, ACCOUNTS, tls=(key, cert), **sip)
    node.cert = cert
    yield node
    assert node.process.poll() is None, "node died:\n" + node.log()
    node.stop()
    assert "Traceback" not in node.log(), node.log()


@pytest.fixture
def tls_node(tmp_path):
    """A TLS node offering MD5 and SHA-256 (the default)."""
    yield from _tls_node(tmp_path)


@pytest.fixture
def md5_tls_node(tmp_path):
    """A TLS node offering MD5 only (C{digest_algorithms = ["MD5"]})."""
    yield from _tls_node(tmp_path, digest_algorithms=["MD5"])


def receiver(tmp_path, port, user, expected=1):
    """SIPp over TCP as app C{user}: registers, answers MESSAGEs."""
    csv = write_users(tmp_path / f"uas-{user}.csv", [(user, ACCOUNTS[user])])
    return SIPp(tmp_path / f"uas-{user}", "register_receive.xml", port,
                transport="tcp", users=csv, ooc="receive_ooc.xml",
                expected=expected, timeout=30)


def is_registered(uas):
    """Whether SIPp got its 200 to REGISTER."""
    if uas.process.poll() is not None:
        raise AssertionError("receiver exited:\n" + uas.wait().explain())
    return any(m.direction == "received" and m.first_line.startswith(
        "SIP/2.0 200") and "REGISTER" in (m.header("CSeq") or "")
        for m in uas.sent_and_received())


@pytest.mark.skipif(STUNNEL is None, reason="needs stunnel4")
def test_sipp_through_stunnel(tmp_path, tls_node):
    """Over TLS (stunnel verifying the node's certificate): REGISTER with
    digest (401, 200), a wrong password gets 403, and a MESSAGE from one
    TLS app reaches another over its TLS flow with the body byte-exact."""
    tunnel = Stunnel(tmp_path / "stunnel", tls_node.port("sip_tls"),
                     tls_node.cert)
    try:
        port = tunnel.port
        csv = write_users(tmp_path / "reg.csv", [("5111", "pw-5111")])
        reg = run_sipp(tmp_path / "reg", "register.xml", port,
                       transport="tcp", users=csv, timeout=15)
        assert reg.returncode == 0 and reg.successful == 1, reg.explain()
        bad = run_sipp(tmp_path / "bad", "register_wrong_password.xml", port,
                       transport="tcp", timeout=15,
                       users=write_users(tmp_path / "bad.csv",
                                         [("5111", "nope")]))
        assert bad.returncode == 0 and bad.successful == 1, bad.explain()
        uas = receiver(tmp_path, port, "5222")
        try:
            wait_for(lambda: is_registered(uas), what="5222 registered")
            msg = run_sipp(
                tmp_path / "uac", "message_uac.xml", port, transport="tcp",
                timeout=15, users=write_users(
                    tmp_path / "uac.csv", [("5111", "pw-5111", "5222")]))
            assert msg.returncode == 0 and msg.successful == 1, msg.explain()
            got = uas.wait()
            assert got.returncode == 0, got.explain()
        finally:
            uas.stop()
    finally:
        tunnel.stop()
    sent = [m for m in parse_message_log(msg.messages)
            if m.direction == "sent" and m.first_line.startswith("MESSAGE")]
    delivered = received_requests(uas.sent_and_received(), "MESSAGE")
    assert len(delivered) == 1
    assert delivered[0].body == sent[-1].body
    assert ARABIC.encode("utf-8") in delivered[0].body


@pytest.mark.skipif(BARESIP is None, reason="needs baresip")
def test_baresip_registers_and_sends_message_over_tls(tmp_path,
                                                      md5_tls_node):
    """baresip (a real softphone) registers over TLS with digest and sends
    a MESSAGE over TLS; the recipient app, registered with SIPp over UDP,
    gets the UTF-8 text byte-exact from the baresip account.

    The node offers MD5 only here: baresip 1.0.0 (libre) answers a 401
    that also carries a SHA-256 challenge with "Function not implemented"
    and never registers, which is what C{digest_algorithms} is for."""
    text = "سلام from baresip 👋"
    tls_node = md5_tls_node
    uas = SIPp(tmp_path / "uas", "register_receive.xml",
               tls_node.port("sip_udp"), transport="udp",
               users=write_users(tmp_path / "uas.csv",
                                 [("6222", ACCOUNTS["6222"])]),
               ooc="receive_ooc.xml", expected=1, timeout=40)
    phone = None
    try:
        wait_for(lambda: is_registered(uas), what="6222 registered")
        phone = Baresip(tmp_path / "baresip", "6111", ACCOUNTS["6111"],
                        tls_node.port("sip_tls"), tls_node.cert,
                        contact=f"sip:6222@{DOMAIN}", run_for=40)
        phone.wait_output(r"6111@e2e\.test: \{0/TLS/v4\} 200 OK")
        phone.command("message", text)
        phone.wait_event(lambda e: e.get("response") is True,
                         what="ctrl_tcp response to message")
        got = uas.wait()
        assert got.returncode == 0, got.explain() + phone.output()
    finally:
        uas.stop()
        if phone is not None:
            phone.stop()
    delivered = received_requests(uas.sent_and_received(), "MESSAGE")
    assert len(delivered) == 1
    assert delivered[0].body == text.encode("utf-8")
    assert f"sip:6111@{DOMAIN}" in (delivered[0].header("From") or "")
