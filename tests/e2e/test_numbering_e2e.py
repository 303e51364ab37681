"""
Numbers as carriers and apps write them (issue 11, item 2), end to end:
the real node provisioned with the seeds' demo as shipped (numbering plan
country code 964, trunk prefix 0; John Doe's DID 964111222333; TATA rated
by TATA-IN), smpplib as TATA, SIPp as John Doe's app and as an app that
sends, OpenSSH reading the billing records.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts

from tests.e2e.harness import Node, start_node, wait_for
from tests.e2e.sip_tools import DOMAIN, SIPP, run_sipp, write_users
from tests.e2e.test_billing_e2e import export, run, unbind
from tests.e2e.test_shell_ssh import keygen
from tests.e2e.test_usecase1 import (
    JOHN, JOHN_PASSWORD, demo_in_tmp, johns_app, wait_app)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None,
                                 reason="needs sipp (Debian sip-tester)")]

#: John Doe's DID in E.164 form, as the demo stores it.
E164 = "964111222333"


@pytest.fixture
def admin(tmp_path: Path) -> Path:
    """The admin's private key; its public key is the bootstrap file."""
    d = tmp_path / "keys"
    d.mkdir()
    (d / "admin_keys").write_text(keygen(d / "admin") + "\n")
    return d / "admin"


def demo_node(tmp_path: Path, admin: Path) -> Node:
    """The node with SMPP, SIP over UDP and the shell, provisioned with
    the seeds' demo unchanged."""
    return start_node(
        tmp_path, node={"provision": str(demo_in_tmp(tmp_path))},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600, "retry_schedule": [1, 2],
             "validity": 300},
        shell={"enabled": True,
               "admin_keys": str(admin.parent / "admin_keys")})


def tata(node: Node) -> smpplib.client.Client:
    """smpplib bound as TATA (transceiver)."""
    c = smpplib.client.Client("127.0.0.1", node.port("smpp"), timeout=10,
                              allow_unknown_opt_params=True)
    c.connect()
    c.bind_transceiver(system_id="tata", password="tatapass")
    return c


def test_national_submit_reaches_the_app_and_rates_as_international(
        tmp_path, admin):
    """submit_sm from TATA to 0111222333 (TON 2), 111222333 (TON 2, no
    trunk prefix), 0111222333 (TON 0) and 964111222333 (TON 1) all reach
    John Doe's app (SIPp) addressed to his account, and every one is
    rated like the international form: prefix 964, 0.01 USD, destination
    964111222333 in the billing records."""
    node = demo_node(tmp_path, admin)
    forms = [("0111222333", 2), ("111222333", 2), ("0111222333", 0),
             (E164, 1)]
    app = johns_app(tmp_path / "app", node, expected=len(forms))
    c = tata(node)
    ids: list[str] = []
    c.set_message_sent_handler(
        lambda pdu: ids.append(pdu.message_id.decode()))
    try:
        for n, (number, ton) in enumerate(forms):
            c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                           source_addr="TATA", dest_addr_ton=ton,
                           dest_addr_npi=1, destination_addr=number,
                           short_message=f"form {n}".encode())
        deadline = time.monotonic() + 20
        while len(ids) < len(forms):
            assert time.monotonic() < deadline, ids
            c.read_once()
    finally:
        unbind(c)
    requests = wait_app(app, node)
    assert sorted(r.body for r in requests) == [
        f"form {n}".encode() for n in range(len(forms))]
    for r in requests:
        assert f"sip:{JOHN}@" in (r.header("To") or "")
    rows = export(tmp_path, node, admin)
    assert len(rows) == len(forms)
    assert {(r["prefix"], r["price"], r["destination"]) for r in rows} == \
        {("964", "0.01", E164)}
    node.stop()


def test_sip_message_forms_reach_the_same_account(tmp_path, admin):
    """A SIP MESSAGE to sip:00964111222333@ and one to the national form
    sip:0111222333@ (sent by an app with John's credentials) are both
    accepted (202) and both arrive at John Doe's registered app."""
    node = demo_node(tmp_path, admin)
    app = johns_app(tmp_path / "app", node, expected=2)
    users = write_users(tmp_path / "sender.csv",
                        [(JOHN, JOHN_PASSWORD, "00" + E164),
                         (JOHN, JOHN_PASSWORD, "0111222333")])
    sent = run_sipp(tmp_path / "sender", "message_uac.xml",
                    node.port("sip_udp"), users=users, calls=2, rate=1,
                    timeout=30)
    assert sent.returncode == 0 and sent.successful == 2, sent.explain()
    requests = wait_app(app, node)
    assert len(requests) == 2
    for r in requests:
        assert f"sip:{JOHN}@" in (r.header("To") or "")
    wait_for(lambda: node.log().count(f"to {E164}: delivered") == 2,
             what="both recorded as delivered to the E.164 DID")
    assert "numbering-plan" in run(tmp_path, node, admin,
                                   "show running-config")
    node.stop()
