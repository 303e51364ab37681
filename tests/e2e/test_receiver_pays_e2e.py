"""
End-to-end tests of who pays (issue 11 items 3 and 4): the real node
(C{twistd -n appliance}) with SMPP, SIP and the shell on loopback, a
receiver-pays product whose prepaid accounts pay 0.01 USD per message
they receive, and authorization rules; smpplib is the carrier, SIPp the
apps, OpenSSH the operator.
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import smpplib.consts

from tests.e2e.harness import start_node, wait_for
from tests.e2e.sip_tools import (
    DOMAIN, SIPP, SIPp, parse_message_log, received_requests, run_sipp,
    write_users)
from tests.e2e.test_billing_e2e import (
    admin, carrier, queue, read_raw, run, send_multi, stored, submit_many,
    unbind)  # noqa: F401  (admin is a fixture)

pytestmark = pytest.mark.e2e

#: Accounts of the receiver-pays product: one with funds, one without.
RICH, RICH_PW = "9647800000001", "pw-rich-1"
POOR = "9647800000002"
#: An account of a product that receives for free.
OTHER = "9647800000003"
#: An app that sends (its own product charges nothing).
SENDER, SENDER_PW = "9647800000010", "pw-sender-10"

PROVISION = f"""configure terminal
 tariff RECV
  currency USD
  prefix 964 0.01
 exit
 tariff TATA-IN
  currency USD
  prefix 964 0.01
 exit
 product "Recv"
  messaging enable
  receiver-pays tariff RECV
  balance-low threshold 0.995
  balance-low text Your balance is {{balance}} {{currency}}
 exit
 product "SMS"
  messaging enable
 exit
 customer "E2E"
  account {RICH}
   password {RICH_PW}
   product "Recv"
   did {RICH}
   prepaid
   balance add 1.00
  exit
  account {POOR}
   password pw-poor-2
   product "Recv"
   did {POOR}
   prepaid
  exit
  account {OTHER}
   password pw-other-3
   product "SMS"
   did {OTHER}
  exit
  account {SENDER}
   password {SENDER_PW}
   product "SMS"
   did {SENDER}
  exit
 exit
 carrier PRE
  system-id pre
  password prepass
  allow-ip 127.0.0.0/8
  tariff TATA-IN
 exit
 carrier FREE
  system-id free
  password freepass
  allow-ip 127.0.0.0/8
  tariff TATA-IN
 exit
 authorization-rule free-on-loopback
  match origin carrier FREE
  match source 127.0.0.0/8
  charge nobody
 exit
end
"""

ESME_RSUBMITFAIL = smpplib.consts.SMPP_ESME_RSUBMITFAIL


def node_for(tmp_path: Path, admin: Path):
    """The node with SMPP, SIP and the shell, provisioned as above."""
    script = tmp_path / "provision.cli"
    script.write_text(PROVISION)
    return start_node(
        tmp_path, node={"provision": str(script)},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"},
        sip={"enabled": True, "domain": DOMAIN, "realm": DOMAIN,
             "listen": ["udp:port=0:interface=127.0.0.1"],
             "min_expires": 60, "max_expires": 3600, "validity": 120,
             "retry_schedule": [1, 2], "auth_failures": 100000},
        shell={"enabled": True,
               "admin_keys": str(admin.parent / "admin_keys")})


def app(workdir: Path, node, user: str, password: str, expected: int
        ) -> SIPp:
    """SIPp registered as C{user}'s app, answering C{expected} MESSAGEs
    with 200; returned once its REGISTER got 200."""
    csv = write_users(workdir.with_suffix(".csv"), [(user, password)])
    sipp = SIPp(workdir, "register_receive.xml", node.port("sip_udp"),
                users=csv, ooc="receive_ooc.xml", expected=expected,
                timeout=60)

    def registered():
        if sipp.process.poll() is not None:
            raise AssertionError(sipp.wait().explain())
        return any(m.direction == "received"
                   and m.first_line.startswith("SIP/2.0 200")
                   and "REGISTER" in (m.header("CSeq") or "")
                   for m in sipp.sent_and_received())
    wait_for(registered, what=f"{user}'s app registered")
    return sipp


@pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")
def test_submit_multi_refuses_only_the_recipient_without_funds(tmp_path,
                                                              admin):
    """A submit_multi from carrier PRE to two prepaid accounts of a
    receiver-pays product: the one with 1.00 USD gets the message on its
    app and pays 0.01, then its balance-low message (below 0.995); the
    one without funds is reported in unsuccess_sme with
    ESME_RSUBMITFAIL (and a submit_sm to it alone gets that status), is
    never stored, and nothing waits in the queue afterwards; PRE pays
    its own charge for the delivered one only."""
    node = node_for(tmp_path, admin)
    rich = app(tmp_path / "rich", node, RICH, RICH_PW, expected=2)
    c = carrier(node, "pre", "prepass")
    mid, unsuccess = send_multi(c, [RICH, POOR])
    assert mid
    assert unsuccess == [(POOR, ESME_RSUBMITFAIL)]
    # a single-recipient submit_sm to the same account: the refusal status
    c.send_message(source_addr_ton=1, source_addr="4412345",
                   dest_addr_ton=1, dest_addr_npi=1, destination_addr=POOR,
                   short_message=b"single")
    while True:
        command, status, _, _ = read_raw(c)
        if command == 0x80000004:
            break
    assert status == ESME_RSUBMITFAIL
    unbind(c)
    try:
        result = rich.wait()
    finally:
        rich.stop()
    assert result.returncode == 0, result.explain() + node.log()[-4000:]
    bodies = [m.body.decode() for m in
              received_requests(rich.sent_and_received(), "MESSAGE")]
    assert bodies[0] == "multi"
    assert bodies[1] == "Your balance is 0.99 USD"
    def settled():
        counts = queue(tmp_path, node, admin)
        waiting = counts.get("accepted", 0) + counts.get("delivering", 0)
        return counts if waiting == 0 and counts.get("delivered") == 2 \
            else None
    counts = wait_for(settled, what="both delivered, nothing waiting")
    assert sum(counts.values()) == 2, counts
    assert f"account {RICH}  prepaid  0.99" in run(
        tmp_path, node, admin, f"show balance account {RICH}")
    assert f"account {POOR}  prepaid  0" in run(
        tmp_path, node, admin, f"show balance account {POOR}")
    node.stop()
    messages, records = stored(node.data_dir, f"account:{RICH}")
    assert sorted(m[0] for m in messages.values()) == [RICH, RICH]
    (record,) = records.values()
    assert (record.direction, record.amount, record.state) == \
        ("receiving", Decimal("0.01"), "delivered")
    _, pre = stored(node.data_dir, "carrier:PRE")
    assert [r.destination for r in pre.values()] == [RICH]
    _, poor = stored(node.data_dir, f"account:{POOR}")
    assert poor == {}


@pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")
def test_sip_message_to_recipient_without_funds_gets_402(tmp_path, admin):
    """A SIP MESSAGE from an app to a receiver-pays account without funds
    gets 402 whose reason phrase and Warning say the recipient cannot
    receive, and nothing is queued."""
    node = node_for(tmp_path, admin)
    before = queue(tmp_path, node, admin)
    inject = write_users(tmp_path / "sender.csv",
                         [(SENDER, SENDER_PW, POOR)])
    refused = run_sipp(tmp_path / "refused", "message_refused.xml",
                       node.port("sip_udp"), users=inject, timeout=20)
    assert refused.returncode == 0 and refused.successful == 1, \
        refused.explain()
    final = [m for m in parse_message_log(refused.messages)
             if m.direction == "received"][-1]
    reason = f"Recipient +{POOR} cannot receive messages now: " \
        "insufficient balance"
    assert final.first_line == f"SIP/2.0 402 {reason}", final.first_line
    assert reason in (final.header("Warning") or "")
    assert queue(tmp_path, node, admin) == before
    node.stop()


def test_charge_nobody_and_test_route(tmp_path, admin):
    """Carrier FREE over loopback matches the rule free-on-loopback
    (origin carrier FREE, source 127.0.0.0/8, charge nobody): its
    messages are stored and delivered like any other but no record is
    written, while carrier PRE's are billed by the built-in rule;
    test route names the rule for each, with the receiving charge of the
    receiver-pays product."""
    node = node_for(tmp_path, admin)
    c = carrier(node, "free", "freepass")
    submit_many(c, 3, to=OTHER)
    unbind(c)
    c = carrier(node, "pre", "prepass")
    submit_many(c, 2, to=OTHER)
    unbind(c)
    free = run(tmp_path, node, admin, "test route from 4412345 to "
               f"{OTHER} origin carrier FREE source 127.0.0.1")
    assert free.strip().splitlines() == [
        f"local delivery to account {OTHER} over SIP",
        "authorization rule free-on-loopback: origin carrier FREE, source "
        "127.0.0.0/8: charge nobody"]
    outside = run(tmp_path, node, admin, "test route from 4412345 to "
                  f"{RICH} origin carrier FREE source 192.0.2.1")
    assert outside.strip().splitlines()[1:] == [
        "authorization rule built-in carrier: origin carrier: charge "
        "carrier", "payer: carrier FREE",
        f"receiver pays: account {RICH} with tariff RECV (product Recv)"]
    rules = run(tmp_path, node, admin, "show authorization-rules")
    assert "free-on-loopback" in rules.splitlines()[2]
    assert "show authorization-rules" not in run(
        tmp_path, node, admin, "show running-config")
    assert " authorization-rule free-on-loopback" in run(
        tmp_path, node, admin, "show running-config").splitlines()
    node.stop()
    messages, free_records = stored(node.data_dir, "carrier:FREE")
    _, pre_records = stored(node.data_dir, "carrier:PRE")
    assert free_records == {}
    assert len(pre_records) == 2
    db_payers = sorted((m[2] or "-") for m in messages.values())
    assert db_payers == ["-", "-", "-", "carrier:PRE", "carrier:PRE"]
