"""
Messages from vendors over our own connections (issue 11, item 5): the
node binds to a vendor's SMSC (the test SMSC of L{tests.e2e.smsc}) as an
ESME; the vendor sends a deliver_sm that is not a receipt (an MO) to John
Doe's DID; the node accepts it with origin the connection, answers
deliver_sm_resp after the commit, and SIPp as John Doe's app receives it.
"""
from __future__ import annotations

import pytest

from tests.e2e.harness import start_node, wait_for
from tests.e2e.sip_tools import DOMAIN, SIPP
from tests.e2e.smsc import SMSC
from tests.e2e.test_usecase1 import JOHN, demo_in_tmp, johns_app, wait_app

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None,
                                 reason="needs sipp (Debian sip-tester)")]

DELIVER_SM_RESP = 0x80000005


def test_vendor_mo_reaches_the_app(tmp_path):
    """A vendor's MO deliver_sm over an outbound connection reaches the
    DID's app as a SIP MESSAGE from the vendor's sender, after a
    deliver_sm_resp with status 0; one to a number nobody takes gets
    ESME_RINVDSTADR."""
    vendor = SMSC("vendor")
    script = tmp_path / "provision.cli"
    script.write_text(demo_in_tmp(tmp_path).read_text() + "\n".join([
        "configure terminal", " connection vendor", "  host 127.0.0.1",
        f"  port {vendor.port}", "  system-id node", "  password nodepw",
        "  bind transceiver", " exit", "end", ""]))
    node = start_node(
        tmp_path, node={"provision": str(script)},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600, "retry_schedule": [1, 2],
             "validity": 300},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"})
    try:
        app = johns_app(tmp_path / "app", node, expected=1)
        wait_for(lambda: vendor.sessions and vendor.binds, timeout=20,
                 what="the node bound to the vendor")
        session = next(iter(vendor.sessions))
        text = "Vendor says hello"
        seq = session.deliver("447700900123", "964" + JOHN, text.encode())
        [request] = wait_app(app, node)
        assert request.body == text.encode()
        assert "<sip:447700900123@" in request.header("From")
        wait_for(lambda: (DELIVER_SM_RESP, 0, seq) in vendor.responses,
                 what="deliver_sm_resp OK")
        bad = session.deliver("447700900123", "999", b"nobody")
        wait_for(lambda: any(r[2] == bad for r in vendor.responses),
                 what="the refusal")
        assert (DELIVER_SM_RESP, 0x0B, bad) in vendor.responses
    finally:
        vendor.stop()
