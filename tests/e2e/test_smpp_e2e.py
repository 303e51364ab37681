"""
End-to-end tests of the SMPP server: the real node (C{twistd -n
appliance}) with smpplib as the carrier.  No app is registered for John
Doe's DID here, so accepted messages stay C{accepted} in the store, which
the tests read from the Data.fs once the node is stopped or killed.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts
import smpplib.exceptions
import smpplib.gsm

from tests.e2e.harness import ROOT, start_node, wait_for

pytestmark = pytest.mark.e2e

EXTRA = """configure terminal
 carrier Remote
  system-id remote
  password rempass
  allow-ip 10.0.0.0/8
 exit
 carrier Closed
  system-id closed
  password closedpw
  allow-ip 127.0.0.0/8
  shutdown
 exit
 carrier Single
  system-id single
  password singlepw
  allow-ip 127.0.0.0/8
  max-binds 1
 exit
end
"""


def provision(tmp_path: Path) -> Path:
    """The seeds' demo plus carriers for the refusal tests."""
    path = tmp_path / "provision.cli"
    path.write_text((ROOT / "shell" / "demo.cli").read_text() + EXTRA)
    return path


def smpp_node(tmp_path, name="node", **smpp):
    table = {"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"}
    table.update(smpp)
    return start_node(tmp_path, name=name, smpp=table,
                      node={"provision": str(provision(tmp_path))})


def client(node, sid="carrier1", pw="car1pass", kind="transceiver"):
    c = smpplib.client.Client("127.0.0.1", node.port("smpp"), timeout=10,
                              allow_unknown_opt_params=True)
    c.connect()
    getattr(c, f"bind_{kind}")(system_id=sid, password=pw)
    return c


def submit(c, text, to="111222333", src="AsiaCell", receipt=0):
    """Send a text (split by smpplib if long); @return: the message ids
    from the submit_sm_resps, in order."""
    parts, coding, esm = smpplib.gsm.make_parts(text)
    ids = []
    c.set_message_sent_handler(lambda pdu: ids.append(
        pdu.message_id.decode()))
    for part in parts:
        c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                       source_addr=src, dest_addr_ton=1, dest_addr_npi=1,
                       destination_addr=to, short_message=part,
                       data_coding=coding, esm_class=esm,
                       registered_delivery=receipt)
    while len(ids) < len(parts):
        c.read_once()
    return ids


def stored_messages(data_dir: Path) -> dict[int, object]:
    """Read the messages from a stopped node's Data.fs."""
    import ZODB
    from ZODB.FileStorage import FileStorage
    db = ZODB.DB(FileStorage(str(data_dir / "Data.fs"), read_only=True))
    try:
        conn = db.open()
        messages = conn.root()["messages"].messages
        out = {k: (m.text, m.sender, m.recipient, m.state, m.parts)
               for k, m in messages.items()}
        conn.close()
        return out
    finally:
        db.close()


@pytest.mark.parametrize("sid,pw,code", [
    ("nobody", "x", smpplib.consts.SMPP_ESME_RINVSYSID),
    ("carrier1", "wrong", smpplib.consts.SMPP_ESME_RINVPASWD),
    ("remote", "rempass", smpplib.consts.SMPP_ESME_RBINDFAIL),
    ("closed", "closedpw", smpplib.consts.SMPP_ESME_RBINDFAIL),
])
def test_bind_refusals(tmp_path, sid, pw, code):
    """Each refused bind gets its status: unknown system_id, wrong
    password, source network not allowed, carrier shut down."""
    node = smpp_node(tmp_path)
    with pytest.raises(smpplib.exceptions.PDUError) as e:
        client(node, sid, pw)
    assert e.value.args[1] == code


def test_max_binds_refused(tmp_path):
    """A carrier with max-binds 1 gets ESME_RALYBND for a second bind."""
    node = smpp_node(tmp_path)
    first = client(node, "single", "singlepw")
    with pytest.raises(smpplib.exceptions.PDUError) as e:
        client(node, "single", "singlepw")
    assert e.value.args[1] == smpplib.consts.SMPP_ESME_RALYBND
    first.unbind()
    first.disconnect()


def test_gsm7_ucs2_multipart_accepted(tmp_path):
    """GSM 7-bit, UCS-2 and a 3-part UCS-2 Arabic message are accepted
    with ids; the store holds each as one message with the exact text."""
    node = smpp_node(tmp_path)
    c = client(node)
    gsm = "Asia Cell offer: 50% off {today} @ €5"
    arabic = "مرحبا بكم في عرض آسيا سيل " * 6
    ids = [submit(c, gsm), submit(c, "Viber code 🔑 123-456", src="Viber"),
           submit(c, arabic)]
    assert [len(i) for i in ids] == [1, 1, 3]
    assert len({x for i in ids for x in i}) == 5
    c.unbind()
    c.disconnect()
    assert node.stop() in (0, -signal.SIGTERM)
    texts = sorted(v[0] for v in stored_messages(node.data_dir).values())
    assert texts == sorted([gsm, "Viber code 🔑 123-456", arabic])
    stored = stored_messages(node.data_dir)
    assert stored[int(ids[0][0], 16)][1:3] == ("AsiaCell", "111222333")
    assert stored[int(ids[1][0], 16)][1] == "Viber"


def test_no_route_refused(tmp_path):
    """A destination with no account or policy gets ESME_RINVDSTADR."""
    node = smpp_node(tmp_path)
    c = client(node)
    with pytest.raises(smpplib.exceptions.PDUError) as e:
        submit(c, "hello", to="999000111")
    assert e.value.args[1] == smpplib.consts.SMPP_ESME_RINVDSTADR


def test_kill_after_ack_keeps_message(tmp_path):
    """kill -9 right after submit_sm_resp: the acknowledged message is in
    the Data.fs, and a restarted node still has it waiting."""
    node = smpp_node(tmp_path)
    c = client(node)
    (mid,) = submit(c, "survive the crash", receipt=1)
    node.kill()
    c.disconnect()
    stored = stored_messages(node.data_dir)
    assert stored[int(mid, 16)][0] == "survive the crash"
    # kill -9 leaves the old ports.json behind: remove it so the harness
    # waits for the restarted node's own.
    (node.data_dir / "ports.json").unlink(missing_ok=True)
    again = smpp_node(tmp_path)
    c2 = client(again)
    (mid2,) = submit(c2, "after restart")
    assert int(mid2, 16) > int(mid, 16)      # ids unique across restarts
    c2.unbind()
    c2.disconnect()
    again.stop()
    assert int(mid, 16) in stored_messages(again.data_dir)


def test_tshark_decodes_session(tmp_path):
    """A tshark capture of an smpplib session (bind, submits, an error
    response, enquire_link, unbind) decodes as SMPP with 0 malformed."""
    node = smpp_node(tmp_path)
    port = node.port("smpp")
    pcap = tmp_path / "smpp.pcap"
    cap = subprocess.Popen(["dumpcap", "-q", "-i", "lo", "-f",
                            f"tcp port {port}", "-w", str(pcap)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0, 10,
                 what="dumpcap started")
        c = client(node)
        submit(c, "hello from tshark test")
        submit(c, "مرحبا " * 40)
        with pytest.raises(smpplib.exceptions.PDUError):
            submit(c, "nowhere", to="999000111")
        c.unbind()
        c.disconnect()
        out = lambda: subprocess.run(
            ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},smpp",
             "-Y", "smpp.command_id == 0x80000006"], capture_output=True,
            text=True).stdout
        wait_for(lambda: out().strip(), 10, what="unbind_resp captured")
    finally:
        cap.send_signal(signal.SIGINT)
        cap.wait(10)
    decoded = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},smpp", "-V"],
        capture_output=True, text=True).stdout
    fields = subprocess.run(
        ["tshark", "-r", str(pcap), "-d", f"tcp.port=={port},smpp",
         "-Y", "smpp", "-T", "fields", "-e", "smpp.command_id"],
        capture_output=True, text=True).stdout.replace(",", " ").split()
    parts = len(smpplib.gsm.make_parts("مرحبا " * 40)[0])
    assert decoded.lower().count("malformed") == 0
    assert "0x80000009" in fields
    assert fields.count("0x80000004") == 1 + parts + 1
