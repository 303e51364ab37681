"""
End-to-end tests of billing (issue 8): the real node (C{twistd -n
appliance}) with C{[smpp]}, C{[sip]} and C{[shell]} on loopback port 0,
provisioned through C{[node] provision}; smpplib is the carrier, SIPp the
app, and the real OpenSSH client reads the settlement from the shell.

Carrier TATA keeps the default billable rule C{accepted}: its messages go
to DIDs of app accounts that never register, so they stay C{accepted} in
the store and every one of them is billable (with C{delivered} an app
would have to register and answer each MESSAGE first).  Periods run from
the current UTC month's first day to the next month's.
"""
from __future__ import annotations

import csv
import datetime
import io
import socket
import struct
from decimal import Decimal
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from tests.e2e.harness import ROOT, start_node
from tests.e2e.sip_tools import (
    DOMAIN, SIPP, parse_message_log, run_sipp, write_users)
from tests.e2e.test_shell_ssh import keygen, ssh
from tests.smpp.smpp_env import submit_multi

pytestmark = pytest.mark.e2e

#: DIDs of app accounts under the +964 prefix; none of them registers.
DID = ["9647700000001", "9647700000002", "9647700000003"]
#: A DID of an account outside every tariff's prefixes.
UNPRICED = "4470000000001"
#: The prepaid app account (product "Paid", rated by tariff APP-OUT).
SENDER, SENDER_PW = "9647700000010", "pw-sender-10"

PROVISION = f"""configure terminal
 product "SMS"
  messaging enable
 exit
 product "Paid"
  messaging enable
 exit
 customer "E2E"
  account {DID[0]}
   password pw-{DID[0]}
   product "SMS"
   did {DID[0]}
  exit
  account {DID[1]}
   password pw-{DID[1]}
   product "SMS"
   did {DID[1]}
  exit
  account {DID[2]}
   password pw-{DID[2]}
   product "SMS"
   did {DID[2]}
  exit
  account {UNPRICED}
   password pw-{UNPRICED}
   product "SMS"
   did {UNPRICED}
  exit
  account {SENDER}
   password {SENDER_PW}
   product "Paid"
   did {SENDER}
   prepaid
  exit
 exit
 tariff TATA-IN
  currency USD
  prefix 964 0.01
 exit
 tariff PRE-IN
  currency USD
  prefix 964 0.01
 exit
 tariff APP-OUT
  currency USD
  prefix 964 0.05
  product "Paid"
 exit
 carrier TATA
  system-id tata
  password tatapass
  allow-ip 127.0.0.0/8
  tariff TATA-IN
  billable accepted
 exit
 carrier PRE
  system-id pre
  password prepass
  allow-ip 127.0.0.0/8
  tariff PRE-IN
  prepaid
  balance add 0.02
 exit
end
"""

ESME_RSUBMITFAIL = smpplib.consts.SMPP_ESME_RSUBMITFAIL
ESME_RINVDSTADR = smpplib.consts.SMPP_ESME_RINVDSTADR


# -- the node and its peers ------------------------------------------------

def period() -> tuple[str, str]:
    """This UTC month's first day and the next month's, C{YYYY-MM-DD}."""
    today = datetime.datetime.now(datetime.timezone.utc).date()
    start = today.replace(day=1)
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return start.isoformat(), end.isoformat()


def today() -> str:
    """The UTC date, C{YYYY-MM-DD}."""
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


@pytest.fixture
def admin(tmp_path: Path) -> Path:
    """The admin's private key; its public key is the bootstrap file."""
    d = tmp_path / "keys"
    d.mkdir()
    (d / "admin_keys").write_text(keygen(d / "admin") + "\n")
    return d / "admin"


def billing_node(tmp_path: Path, admin: Path):
    """Start the node with SMPP, SIP and the shell, billing provisioned."""
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


def run(tmp_path: Path, node, admin: Path, command: str | None = None,
        stdin: str | None = None) -> str:
    """Run a shell command (or a script on stdin) over ssh; @return: its
    output, asserting that it succeeded."""
    rc, out, err = ssh(tmp_path, node, "admin", admin, command, stdin)
    assert rc == 0, f"{command or stdin!r} failed ({rc}): {out}{err}"
    return out


def settlement(tmp_path, node, admin, carrier="TATA") -> dict[str, list]:
    """C{show billing carrier} for this month: first cell to row."""
    start, end = period()
    out = run(tmp_path, node, admin,
              f"show billing carrier {carrier} from {start} to {end}")
    return {line.split()[0]: line.split() for line in out.splitlines()[1:]
            if line.strip()}


def export(tmp_path, node, admin, carrier="TATA") -> list[dict[str, str]]:
    """The CSV export of this month, as dicts (header row first)."""
    start, end = period()
    out = run(tmp_path, node, admin, f"billing export carrier {carrier} "
              f"from {start} to {end} csv")
    return list(csv.DictReader(io.StringIO(out)))


def queue(tmp_path, node, admin) -> dict[str, int]:
    """C{show queue}: state to count."""
    out = run(tmp_path, node, admin, "show queue")
    counts = {}
    for line in out.splitlines()[2:]:
        cells = line.split()
        if len(cells) == 2 and cells[1].isdigit():
            counts[cells[0]] = int(cells[1])
    return counts


def carrier(node, sid="tata", pw="tatapass") -> smpplib.client.Client:
    """smpplib bound as a transceiver."""
    c = smpplib.client.Client("127.0.0.1", node.port("smpp"), timeout=10,
                              allow_unknown_opt_params=True)
    c.connect()
    c.bind_transceiver(system_id=sid, password=pw)
    return c


def submit_many(c, count: int, to: str = DID[0], window: int = 50,
                ton: int = 1) -> list[str]:
    """
    Send C{count} one-part submit_sm, up to C{window} outstanding, to
    C{to} with type of number C{ton} (1 international, 2 national).

    @return: the message ids of the submit_sm_resps, in arrival order
        (the last one read is the last response).
    """
    ids: list[str] = []
    c.set_message_sent_handler(
        lambda pdu: ids.append(pdu.message_id.decode()))
    sent = 0
    while len(ids) < count:
        while sent < count and sent - len(ids) < window:
            c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                           source_addr="TATA", dest_addr_ton=ton,
                           dest_addr_npi=1, destination_addr=to,
                           short_message=f"bill {sent}".encode())
            sent += 1
        c.read_once()
    return ids


def read_raw(c) -> tuple[int, int, int, bytes]:
    """One PDU off smpplib's socket: (command_id, status, seq, body)."""
    head = c._recv_exact(16)
    length, command, status, seq = struct.unpack(">IIII", head)
    return command, status, seq, c._recv_exact(length - 16)


def send_multi(c, dests: list[str], seq: int = 0x7000_0001
               ) -> tuple[str, list[tuple[str, int]]]:
    """
    Send a submit_multi over smpplib's bound socket (smpplib has no
    submit_multi) and read its response.

    @return: the message id and C{(address, error_status)} per
        unsuccess_sme entry.
    """
    c._socket.sendall(submit_multi(seq, dests, b"multi", src="PRE"))
    while True:
        command, status, got, body = read_raw(c)
        if command == 0x80000021 and got == seq:
            break
    assert status == 0, hex(status)
    mid, _, rest = body.partition(b"\0")
    unsuccess, o = [], 1
    for _ in range(rest[0]):
        end = rest.index(b"\0", o + 2)
        addr = rest[o + 2:end].decode()
        (error,) = struct.unpack(">I", rest[end + 1:end + 5])
        unsuccess.append((addr, error))
        o = end + 5
    return mid.decode(), unsuccess


def unbind(c) -> None:
    """Unbind and close, tolerating a node already gone."""
    try:
        c.unbind()
    except (smpplib.exceptions.ConnectionError, socket.error):
        pass
    c.disconnect()


def open_store(data_dir: Path):
    """
    Open a stopped node's Data.fs read-only.

    @return: C{(db, root)}; close the db when done.
    """
    import ZODB
    from ZODB.FileStorage import FileStorage
    db = ZODB.DB(FileStorage(str(data_dir / "Data.fs"), read_only=True))
    return db, db.open().root()


def stored(data_dir: Path, payer: str) -> tuple[dict, dict]:
    """
    The messages and the billing records of a payer this month, from a
    stopped node's Data.fs.

    @return: C{({id: (recipient, state, payer)}, {id: record})}.
    """
    start, end = (datetime.datetime.fromisoformat(d).replace(
        tzinfo=datetime.timezone.utc).timestamp() for d in period())
    db, root = open_store(data_dir)
    try:
        messages = {k: (m.recipient, m.state, m.payer)
                    for k, m in root["messages"].messages.items()}
        records = {r.id: r for r in
                   root["billing"].records.records(payer, start, end)}
        return messages, records
    finally:
        db.close()


def demo_node(tmp_path: Path, admin: Path):
    """Start the node with SMPP and the shell, provisioned with the seeds'
    demo exactly as shipped (C{shell/demo.cli})."""
    script = tmp_path / "demo.cli"
    script.write_text((ROOT / "shell" / "demo.cli").read_text())
    return start_node(
        tmp_path, node={"provision": str(script)},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"},
        shell={"enabled": True,
               "admin_keys": str(admin.parent / "admin_keys")})


# -- the tests ---------------------------------------------------------------

def test_demo_settles_the_seeds_figure(tmp_path, admin):
    """Seed 000, use case 4, from the demo data as shipped: 1000 SMS from
    TATA to John Doe's DID 111222333, written as an Iraqi number in
    national form (TON 2), settle at exactly 10.00 USD: the demo's plan
    (country code 964) makes it E.164 964111222333, which TATA-IN prices
    at 0.01 by prefix 964; every CSV row names the E.164 DID."""
    node = demo_node(tmp_path, admin)
    c = carrier(node)
    ids = submit_many(c, 1000, to="111222333", ton=2)
    assert len(set(ids)) == 1000
    unbind(c)
    lines = settlement(tmp_path, node, admin)
    assert lines["964"][1:] == ["USD", "1000", "1000", "10.00"]
    assert lines["Total"][1:] == ["USD", "1000", "1000", "10.00"]
    rows = export(tmp_path, node, admin)
    assert len(rows) == 1000
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("10.00")
    assert {(r["payer"], r["prefix"], r["price"], r["destination"])
            for r in rows} == {("carrier:TATA", "964", "0.01",
                                "964111222333")}
    node.stop()


def test_settle_1000_sms_from_tata(tmp_path, admin):
    """1000 SMS from TATA at 0.01 USD each settle to 1000 messages and
    10.00 USD in C{show billing}; the CSV export has 1000 rows whose
    amounts add up to exactly 10.00."""
    node = billing_node(tmp_path, admin)
    c = carrier(node)
    ids = submit_many(c, 1000)
    assert len(set(ids)) == 1000
    unbind(c)
    lines = settlement(tmp_path, node, admin)
    assert lines["964"][1:] == ["USD", "1000", "1000", "10.00"]
    assert lines["Total"][1:] == ["USD", "1000", "1000", "10.00"]
    rows = export(tmp_path, node, admin)
    assert len(rows) == 1000
    assert sum(Decimal(r["amount"]) for r in rows) == Decimal("10.00")
    assert {(r["payer"], r["prefix"], r["price"], r["destination"])
            for r in rows} == {("carrier:TATA", "964", "0.01", DID[0])}
    assert queue(tmp_path, node, admin).get("accepted") == 1000
    node.stop()


def test_tariff_change_mid_period(tmp_path, admin):
    """A price from today set through the shell rates the later messages
    at 0.02 while the earlier records keep 0.01; the settlement is the
    exact sum of both."""
    node = billing_node(tmp_path, admin)
    c = carrier(node)
    before = submit_many(c, 5)
    run(tmp_path, node, admin, stdin=f"configure terminal\n tariff TATA-IN\n"
        f"  prefix 964 0.02 from {today()}\nend\n")
    after = submit_many(c, 3)
    unbind(c)
    rows = export(tmp_path, node, admin)
    price = {r["id"]: r["price"] for r in rows}
    assert len(price) == 8
    # the CSV id is the stored id; the SMPP id is its hex form
    assert [price[str(int(i, 16))] for i in before] == ["0.01"] * 5
    assert [price[str(int(i, 16))] for i in after] == ["0.02"] * 3
    lines = settlement(tmp_path, node, admin)
    assert lines["Total"][1:] == ["USD", "8", "8", "0.11"]
    node.stop()


@pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")
def test_prepaid_refusal_402_then_accepted(tmp_path, admin):
    """A prepaid app with balance 0 gets 402 with the reason in the reason
    phrase and a Warning, and nothing is queued; after C{balance add 5.00}
    the same MESSAGE gets 202, is queued, and 0.05 is debited."""
    node = billing_node(tmp_path, admin)
    port = node.port("sip_udp")
    inject = write_users(tmp_path / "sender.csv",
                         [(SENDER, SENDER_PW, DID[1])])
    before = queue(tmp_path, node, admin)
    refused = run_sipp(tmp_path / "refused", "message_refused.xml", port,
                       users=inject, timeout=20)
    assert refused.returncode == 0 and refused.successful == 1, \
        refused.explain()
    final = [m for m in parse_message_log(refused.messages)
             if m.direction == "received"][-1]
    assert final.first_line.startswith("SIP/2.0 402 Insufficient balance"), \
        final.first_line
    assert "0.05 USD" in final.first_line
    assert "Insufficient balance" in (final.header("Warning") or "")
    assert queue(tmp_path, node, admin) == before
    out = run(tmp_path, node, admin, stdin=f'configure terminal\n'
              f' customer "E2E"\n  account {SENDER}\n   balance add 5.00\n'
              f'end\n')
    assert "balance 5.00" in out
    accepted = run_sipp(tmp_path / "accepted", "message_uac.xml", port,
                        users=inject, timeout=20)
    assert accepted.returncode == 0 and accepted.successful == 1, \
        accepted.explain()
    after = queue(tmp_path, node, admin)
    assert sum(after.values()) == sum(before.values()) + 1
    balance = run(tmp_path, node, admin, f"show balance account {SENDER}")
    assert f"account {SENDER}  prepaid  4.95" in balance, balance
    node.stop()


def test_submit_multi_charged_per_recipient(tmp_path, admin):
    """A submit_multi from prepaid carrier PRE (balance 0.02, 0.01 per
    SMS to +964) to three +964 DIDs and one unpriced DID: two go through,
    the third comes back with ESME_RSUBMITFAIL and the unpriced one with
    ESME_RINVDSTADR; only the two are stored and billed."""
    node = billing_node(tmp_path, admin)
    c = carrier(node, "pre", "prepass")
    mid, unsuccess = send_multi(c, DID + [UNPRICED])
    assert mid
    assert unsuccess == [(DID[2], ESME_RSUBMITFAIL),
                         (UNPRICED, ESME_RINVDSTADR)]
    unbind(c)
    lines = settlement(tmp_path, node, admin, "PRE")
    assert lines["Total"][1:] == ["USD", "2", "2", "0.02"]
    assert queue(tmp_path, node, admin).get("accepted") == 2
    assert "carrier PRE  prepaid  0.00" in run(
        tmp_path, node, admin, "show balance carrier PRE")
    node.stop()
    messages, records = stored(node.data_dir, "carrier:PRE")
    assert sorted(m[0] for m in messages.values()) == DID[:2]
    assert set(records) == set(messages)
    assert {r.amount for r in records.values()} == {Decimal("0.01")}


def test_records_survive_kill_9(tmp_path, admin):
    """kill -9 right after the last submit_sm_resp: after a restart every
    acknowledged message is stored with its record and there is no record
    without its message (shell counts, then the Data.fs)."""
    node = billing_node(tmp_path, admin)
    c = carrier(node)
    ids = submit_many(c, 300, window=100)
    node.kill()
    c.disconnect()
    # kill -9 leaves ports.json behind: the restart must write its own
    (node.data_dir / "ports.json").unlink(missing_ok=True)
    again = billing_node(tmp_path, admin)
    lines = settlement(tmp_path, again, admin)
    assert lines["Total"][1:] == ["USD", "300", "300", "3.00"]
    assert queue(tmp_path, again, admin).get("accepted") == 300
    again.stop()
    messages, records = stored(again.data_dir, "carrier:TATA")
    acknowledged = {int(i, 16) for i in ids}
    assert set(messages) == acknowledged
    assert set(records) == acknowledged
    assert {m[2] for m in messages.values()} == {"carrier:TATA"}
    assert all(r.state == messages[r.id][1] for r in records.values())


def test_units_per_part(tmp_path, admin):
    """With C{unit part} a 3-part UCS-2 SMS from TATA is one message of 3
    units: 0.03 USD in the settlement and in its CSV row."""
    node = billing_node(tmp_path, admin)
    run(tmp_path, node, admin,
        stdin="configure terminal\n tariff TATA-IN\n  unit part\nend\n")
    c = carrier(node)
    parts, coding, esm = smpplib.gsm.make_parts("مرحبا بكم في عرض " * 8)
    assert len(parts) == 3
    acks: list[str] = []
    c.set_message_sent_handler(lambda pdu: acks.append(pdu.message_id))
    for part in parts:
        c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                       source_addr="TATA", dest_addr_ton=1, dest_addr_npi=1,
                       destination_addr=DID[1], short_message=part,
                       data_coding=coding, esm_class=esm)
    while len(acks) < len(parts):
        c.read_once()
    unbind(c)
    lines = settlement(tmp_path, node, admin)
    assert lines["Total"][1:] == ["USD", "1", "3", "0.03"]
    (row,) = export(tmp_path, node, admin)
    assert (row["parts"], row["units"], row["amount"]) == ("3", "3", "0.03")
    node.stop()
