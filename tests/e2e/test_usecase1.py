"""
The seeds' use case 1 end to end (issue 6, item 7): carriers to apps.

One real node (C{twistd -n appliance}) with C{[smpp]} and C{[sip]} on
loopback port 0, provisioned at first start with the seeds' demo
(C{shell/demo.cli}: Carrier1 binds as C{carrier1}/C{car1pass}; John Doe's
account and DID 111222333 with password C{john-demo-pass}).  smpplib is
Carrier1, SIPp (C{register_receive.xml} + C{receive_ooc.xml}) is John
Doe's app, tshark decodes the SMPP it captured.  Every wait polls a
condition against a deadline.
"""
from __future__ import annotations

import re
import select
import subprocess
import time
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts
import smpplib.gsm

from tests.e2e.harness import ROOT, Node, start_node, wait_for
from tests.e2e.sip_tools import (
    DOMAIN, SIPP, TSHARK, Capture, SIPp, received_requests, write_users)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None,
                                 reason="needs sipp (Debian sip-tester)")]

#: John Doe's account, DID and password, as in shell/demo.cli.
JOHN = "111222333"
JOHN_PASSWORD = "john-demo-pass"
#: Carrier1's credentials, as in shell/demo.cli.
CARRIER1 = ("carrier1", "car1pass")
#: message_state TLV value for DELIVERED (SMPP 3.4, 5.3.2.35).
DELIVERED = 2
#: esm_class bit: this deliver_sm is a delivery receipt.
RECEIPT_BIT = 0x04

ASIACELL_TEXT = ("Asia Cell: new promotion! 5 GB for 5,000 IQD this week. "
                 "Reply STOP to opt out.")
VIBER_TEXT = "Your Viber code: 123-456"
ARABIC_TEXT = "مرحبا بكم في عرض آسيا سيل " * 6
GSM_EXTENSION_TEXT = "Offer {50%} [now] ~ ^ € | \\ end"


def demo_in_tmp(tmp_path: Path) -> Path:
    """The seeds' demo, unchanged, as the node's provisioning script."""
    path = tmp_path / "demo.cli"
    path.write_text((ROOT / "shell" / "demo.cli").read_text())
    return path


def usecase_node(tmp_path: Path, name: str = "node") -> Node:
    """
    Start (or restart, on the same data directory) the node with SMPP
    and SIP over UDP on loopback, provisioned with the seeds' demo.
    """
    # A kill -9 leaves the old ports.json: the harness would read it.
    (tmp_path / name / "data" / "ports.json").unlink(missing_ok=True)
    return start_node(
        tmp_path, name=name,
        node={"provision": str(demo_in_tmp(tmp_path))},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600, "retry_schedule": [1, 2],
             "validity": 300},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"})


def johns_app(workdir: Path, node: Node, expected: int) -> SIPp:
    """
    SIPp registered as John Doe's app on 111222333; it answers MESSAGEs
    with 200 and exits after C{expected} of them.

    @return: the running SIPp, once its REGISTER got 200.
    """
    csv = write_users(workdir.with_suffix(".csv"), [(JOHN, JOHN_PASSWORD)])
    app = SIPp(workdir, "register_receive.xml", node.port("sip_udp"),
               users=csv, ooc="receive_ooc.xml", expected=expected,
               timeout=60)

    def registered():
        if app.process.poll() is not None:
            raise AssertionError(app.wait().explain())
        return any(m.direction == "received"
                   and m.first_line.startswith("SIP/2.0 200")
                   and "REGISTER" in (m.header("CSeq") or "")
                   for m in app.sent_and_received())
    wait_for(registered, what="John Doe's app registered")
    return app


def wait_app(app: SIPp, node: Node) -> list:
    """
    Wait until the app has answered all its expected MESSAGEs.

    @return: the MESSAGE requests it received.
    """
    try:
        result = app.wait()
    finally:
        app.stop()
    assert result.returncode == 0, result.explain() + node.log()[-4000:]
    return received_requests(app.sent_and_received(), "MESSAGE")


class Carrier:
    """
    smpplib bound as a carrier (transceiver), keeping every deliver_sm.

    @ivar client: the smpplib client.
    @ivar delivered: the deliver_sm PDUs received so far.
    """

    def __init__(self, node: Node, credentials: tuple[str, str] = CARRIER1):
        """Connect and bind as a transceiver."""
        self.client = smpplib.client.Client(
            "127.0.0.1", node.port("smpp"), timeout=2,
            allow_unknown_opt_params=True)
        self.client.connect()
        self.client.bind_transceiver(system_id=credentials[0],
                                     password=credentials[1])
        self.delivered: list = []
        self.client.set_message_received_handler(
            lambda pdu: self.delivered.append(pdu))

    def submit(self, text: str, sender: str, to: str = JOHN) -> list[str]:
        """
        Submit a text (split by smpplib into UDH parts when long) from an
        alphanumeric sender, asking for a receipt.

        @return: the message ids of the submit_sm_resps, in order.
        """
        parts, coding, esm = smpplib.gsm.make_parts(text)
        ids: list[str] = []
        self.client.set_message_sent_handler(
            lambda pdu: ids.append(pdu.message_id.decode()))
        for part in parts:
            self.client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
                source_addr=sender, dest_addr_ton=1, dest_addr_npi=1,
                destination_addr=to, short_message=part,
                data_coding=coding, esm_class=esm, registered_delivery=1)
        deadline = time.monotonic() + 20
        while len(ids) < len(parts):
            assert time.monotonic() < deadline, f"ids so far: {ids}"
            self.client.read_once()
        return ids

    def receipts(self, count: int, timeout: float = 30.0) -> list:
        """
        Read until C{count} deliver_sm arrived (enquire_link answered
        meanwhile).

        @return: them.
        """
        deadline = time.monotonic() + timeout
        while len(self.delivered) < count:
            assert time.monotonic() < deadline, \
                f"deliver_sm so far: {[p.short_message for p in self.delivered]}"
            self.client.read_once()
        return list(self.delivered)

    def nothing_pending(self) -> bool:
        """Whether no PDU waits unread on the socket right now."""
        readable, _, _ = select.select([self.client._socket], [], [], 0)
        return not readable and not self.delivered

    def close(self) -> None:
        """Unbind (best effort) and disconnect."""
        try:
            self.client.unbind()
        except Exception:
            pass
        self.client.disconnect()


def text_of(value) -> str:
    """A smpplib field as text (it gives bytes or str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def assert_receipt(pdu, message_id: str, sender: str) -> None:
    """
    A deliver_sm is Carrier1's DELIVRD receipt for C{message_id}: receipt
    esm_class, both TLVs, the standard text with the same id, addresses
    swapped.
    """
    assert pdu.esm_class & RECEIPT_BIT, pdu.esm_class
    assert text_of(pdu.receipted_message_id) == message_id
    assert pdu.message_state == DELIVERED
    text = text_of(pdu.short_message)
    assert text.startswith(f"id:{message_id} "), text
    assert re.search(r"sub:001 dlvrd:001 submit date:\d{10} "
                     r"done date:\d{10} stat:DELIVRD err:000 text:", text), \
        text
    assert text_of(pdu.source_addr) == JOHN
    assert text_of(pdu.destination_addr) == sender


def assert_message(request, sender: str, text: str) -> None:
    """
    A MESSAGE shows the alphanumeric sender as display name and user part
    of its From, goes to John's DID, and carries the text byte for byte.
    """
    sender_header = request.header("From") or ""
    assert re.match(rf'^"{sender}"\s*<sip:{sender}@', sender_header), \
        sender_header
    assert f"sip:{JOHN}@" in (request.header("To") or "")
    assert (request.header("Content-Type") or "").startswith("text/plain")
    assert request.body == text.encode("utf-8")


def campaign(tmp_path: Path, node: Node, sender: str, text: str) -> str:
    """
    The seeds' scenario: John's app is registered, Carrier1 submits from
    C{sender}, the app receives it, Carrier1 gets the receipt.

    @return: the message id.
    """
    app = johns_app(tmp_path / f"app-{sender}", node, expected=1)
    carrier = Carrier(node)
    try:
        [mid] = carrier.submit(text, sender)
        [request] = wait_app(app, node)
        assert_message(request, sender, text)
        [receipt] = carrier.receipts(1)
        assert_receipt(receipt, mid, sender)
    finally:
        carrier.close()
    return mid


def test_asiacell_campaign(tmp_path):
    """Asia Cell's campaign through Carrier1 reaches John Doe's app on
    111222333 from "AsiaCell" (display name and user part), byte-exact,
    and Carrier1 gets a DELIVRD receipt with the submit_sm_resp's id."""
    node = usecase_node(tmp_path)
    campaign(tmp_path, node, "AsiaCell", ASIACELL_TEXT)


def test_viber_verification_code(tmp_path):
    """Viber's verification code arrives in John's app from "Viber" the
    same way, and its receipt carries the submit_sm_resp's id."""
    node = usecase_node(tmp_path)
    campaign(tmp_path, node, "Viber", VIBER_TEXT)


def test_arabic_three_parts_and_gsm_extension(tmp_path):
    """A 3-part UCS-2 Arabic message (UDH concatenation) arrives as one
    MESSAGE with its exact UTF-8 text, a GSM 7 text with extension
    characters arrives byte-exact, and every part gets its receipt."""
    assert len(smpplib.gsm.make_parts(ARABIC_TEXT)[0]) == 3
    assert smpplib.gsm.make_parts(GSM_EXTENSION_TEXT)[1] == \
        smpplib.consts.SMPP_ENCODING_DEFAULT
    node = usecase_node(tmp_path)
    app = johns_app(tmp_path / "app", node, expected=2)
    carrier = Carrier(node)
    try:
        arabic_ids = carrier.submit(ARABIC_TEXT, "AsiaCell")
        [gsm_id] = carrier.submit(GSM_EXTENSION_TEXT, "AsiaCell")
        assert len(set(arabic_ids + [gsm_id])) == 4
        requests = wait_app(app, node)
        assert sorted(r.body for r in requests) == sorted(
            [ARABIC_TEXT.encode("utf-8"), GSM_EXTENSION_TEXT.encode("utf-8")])
        for request in requests:
            assert_message(request, "AsiaCell", request.body.decode("utf-8"))
        receipts = carrier.receipts(4)
        by_id = {text_of(p.receipted_message_id): p for p in receipts}
        assert set(by_id) == set(arabic_ids + [gsm_id])
        for mid, pdu in by_id.items():
            assert_receipt(pdu, mid, "AsiaCell")
    finally:
        carrier.close()


def test_app_offline_then_registers(tmp_path):
    """With John's app offline the message is accepted and nothing is
    delivered or receipted; once the app registers the message arrives
    and the receipt follows on the same bind."""
    node = usecase_node(tmp_path)
    carrier = Carrier(node)
    try:
        [mid] = carrier.submit(VIBER_TEXT, "Viber")
        assert carrier.nothing_pending()
        assert f"to {JOHN}: delivered" not in node.log()
        app = johns_app(tmp_path / "app", node, expected=1)
        [request] = wait_app(app, node)
        assert_message(request, "Viber", VIBER_TEXT)
        [receipt] = carrier.receipts(1)
        assert_receipt(receipt, mid, "Viber")
    finally:
        carrier.close()


def test_kill_9_before_delivery(tmp_path):
    """kill -9 of the node after submit_sm_resp, app offline: restarted
    on the same data, the node delivers the message when the app
    registers, and Carrier1, binding again, gets the receipt with the
    original id."""
    node = usecase_node(tmp_path)
    carrier = Carrier(node)
    [mid] = carrier.submit(ASIACELL_TEXT, "AsiaCell")
    node.kill()
    carrier.client.disconnect()
    again = usecase_node(tmp_path)
    app = johns_app(tmp_path / "app", again, expected=1)
    [request] = wait_app(app, again)
    assert_message(request, "AsiaCell", ASIACELL_TEXT)
    wait_for(lambda: f"to {JOHN}: delivered" in again.log(),
             what="delivery recorded")
    carrier = Carrier(again)
    try:
        [receipt] = carrier.receipts(1)
        assert_receipt(receipt, mid, "AsiaCell")
    finally:
        carrier.close()


class Transmitter(Carrier):
    """Carrier1 bound as a transmitter: no receipt can reach it."""

    def __init__(self, node: Node, credentials: tuple[str, str] = CARRIER1):
        self.client = smpplib.client.Client(
            "127.0.0.1", node.port("smpp"), timeout=2,
            allow_unknown_opt_params=True)
        self.client.connect()
        self.client.bind_transmitter(system_id=credentials[0],
                                     password=credentials[1])
        self.delivered: list = []


def test_kill_9_after_final_state_one_receipt(tmp_path):
    """kill -9 of the node as soon as a message's final state is committed
    (its "delivered" line is logged after that commit), while Carrier1 has
    no receiver bind: restarted on the same data, the node sends Carrier1
    exactly one receipt, with the id it was given (the receipt was written
    in the same commit as the final state)."""
    node = usecase_node(tmp_path)
    app = johns_app(tmp_path / "app", node, expected=1)
    carrier = Transmitter(node)
    [mid] = carrier.submit(VIBER_TEXT, "Viber")
    wait_for(lambda: f"to {JOHN}: delivered" in node.log(), timeout=20,
             what="final state committed")
    node.kill()
    app.stop()
    carrier.client.disconnect()
    again = usecase_node(tmp_path)
    carrier = Carrier(again)
    try:
        [receipt] = carrier.receipts(1)
        assert_receipt(receipt, mid, "Viber")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            carrier.client._socket.settimeout(0.5)
            try:
                carrier.client.read_once()
            except Exception:
                pass
        assert len(carrier.delivered) == 1
    finally:
        carrier.close()


@pytest.mark.skipif(TSHARK is None, reason="needs tshark")
def test_tshark_decodes_campaign(tmp_path):
    """A capture of the SMPP port during Asia Cell's campaign (bind,
    submit, receipt, unbind) decodes as SMPP with 0 malformed, and
    tshark reads the receipt's receipted_message_id as the id given."""
    node = usecase_node(tmp_path)
    port = node.port("smpp")
    capture = Capture(tmp_path / "smpp.pcapng", tcp=[port])
    decode = ["-d", f"tcp.port=={port},smpp"]

    def tshark(*args: str) -> str:
        return subprocess.run(
            [TSHARK, "-r", str(capture.path), *decode, *args],
            capture_output=True, text=True, errors="replace",
            timeout=60).stdout
    try:
        mid = campaign(tmp_path, node, "AsiaCell", ASIACELL_TEXT)
        wait_for(lambda: tshark("-Y", "smpp.command_id == 0x80000006")
                 .strip(), timeout=15, what="unbind_resp captured")
    finally:
        capture.stop()
    verbose = tshark("-V")
    assert "smpp" in verbose.lower()
    assert verbose.lower().count("malformed") == 0
    commands = tshark("-Y", "smpp", "-T", "fields", "-e",
                      "smpp.command_id").replace(",", " ").split()
    for command in ("0x00000009", "0x80000009", "0x00000004", "0x80000004",
                    "0x00000005", "0x80000005", "0x00000006", "0x80000006"):
        assert command in commands, (command, commands)
    receipted = tshark("-Y", "smpp.command_id == 0x00000005", "-T",
                       "fields", "-e", "smpp.receipted_message_id").split()
    assert receipted == [mid]
