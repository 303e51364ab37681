"""
End-to-end routing between two real nodes on loopback (issue 7): env1
takes app 1111 (SIP) and carrier TATA (SMPP, smpplib) and forwards
C{222%} over its SMPP connection C{env4}; env4 takes env1 as a carrier
and delivers to app 2222 (SIPp) over SIP.  Each node has its own
configuration and database, provisioned through its shell at first start.
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts
import smpplib.gsm

from tests.e2e.harness import Node, start_node, wait_for
from tests.e2e.sip_tools import (
    DOMAIN, PRODUCT, SIPP, SIPp, free_port, parse_message_log,
    received_requests, run_sipp, write_users)

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None,
                                 reason="needs sipp (Debian sip-tester)")]

PASSWORDS = {"1111": "pw-1111", "2222": "pw-2222", "2222123": "pw-2222123"}

def accounts_cli(*users: str) -> list[str]:
    """Shell lines: a product and one SIP account (and DID) per user."""
    lines = [f' product "{PRODUCT}"', "  messaging enable", " exit",
             ' customer "E2E"']
    for user in users:
        lines += [f"  account {user}", f"   password {PASSWORDS[user]}",
                  f'   product "{PRODUCT}"', f"   did {user}", "  exit"]
    return lines + [" exit"]


def carrier_cli(name: str, system_id: str, password: str) -> list[str]:
    """Shell lines: a carrier binding from loopback."""
    return [f" carrier {name}", f"  system-id {system_id}",
            f"  password {password}", "  allow-ip 127.0.0.0/8", " exit"]


def connection_cli(name: str, port: int, window: int = 10,
                   system_id: str = "env1") -> list[str]:
    """Shell lines: an SMPP connection to a node on loopback."""
    return [f" connection {name}", "  host 127.0.0.1", f"  port {port}",
            f"  system-id {system_id}", "  password env1pw",
            "  bind transceiver",
            f"  window {window}", " exit"]


def policy_cli(name: str, pattern: str, connection: str) -> list[str]:
    """Shell lines: a service policy forwarding a pattern."""
    return [f" service-policy {name}", f"  recipient-pattern {pattern}",
            f"  transport smpp connection {connection}", " exit"]


def start_env(tmp_path: Path, name: str, smpp_port: int, lines: list[str],
              wait: bool = True, log_level: str = "debug") -> Node:
    """
    Start a node with SIP (UDP) and SMPP on fixed loopback ports.

    @param lines: the configuration commands (inside configure terminal).
    """
    base = tmp_path / name
    base.mkdir(parents=True, exist_ok=True)
    script = base / "provision.cli"
    script.write_text("\n".join(["configure terminal", *lines, "end", ""]))
    return start_node(
        tmp_path, name=name, wait=wait,
        node={"provision": str(script), "log_level": log_level},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600, "retry_schedule": [1, 2],
             "validity": 120},
        smpp={"enabled": True,
              "listen": f"tcp:port={smpp_port}:interface=127.0.0.1"})


def two_nodes(tmp_path: Path, env4_lines=lambda p1: [],
              env1_lines=lambda p4: [], window=10, start_env4=True,
              log_level="debug"):
    """
    env4 (apps 2222 and 2222123, carrier env1) and env1 (app 1111,
    carrier TATA, connection env4, policy 222% to env4).

    @param env4_lines: more env4 commands, given env1's SMPP port.
    @param env1_lines: more env1 commands, given env4's SMPP port.
    """
    p1, p4 = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)
    env4_cli = [*accounts_cli("2222", "2222123"),
                *carrier_cli("env1", "env1", "env1pw"), *env4_lines(p1)]
    env1_cli = [*accounts_cli("1111"), *carrier_cli("TATA", "tata",
                                                    "tatapass"),
                *connection_cli("env4", p4, window),
                *policy_cli("to-env4", "222%", "env4"), *env1_lines(p4)]
    env4 = start_env(tmp_path, "env4", p4, env4_cli,
                     log_level=log_level) if start_env4 else None
    env1 = start_env(tmp_path, "env1", p1, env1_cli, log_level=log_level)
    return env1, env4, (p1, p4, env4_cli)


def connected(node: Node) -> bool:
    """Whether the node's log says a bind of the connection is up."""
    return "bound as transceiver" in node.log()


def receiver(tmp: Path, node: Node, user: str, expected: int) -> SIPp:
    """SIPp as app C{user}: registers, answers C{expected} MESSAGEs."""
    csv = write_users(tmp / f"uas-{user}.csv", [(user, PASSWORDS[user])])
    uas = SIPp(tmp / f"uas-{user}", "register_receive.xml",
               node.port("sip_udp"), users=csv, ooc="receive_ooc.xml",
               expected=expected, timeout=60)

    def registered():
        if uas.process.poll() is not None:
            raise AssertionError(uas.wait().explain())
        return any(m.direction == "received" and m.first_line.startswith(
            "SIP/2.0 200") and "REGISTER" in (m.header("CSeq") or "")
            for m in uas.sent_and_received())
    wait_for(registered, what=f"{user} registered")
    return uas


def tata(node: Node) -> smpplib.client.Client:
    """smpplib bound to env1 as TATA."""
    c = smpplib.client.Client("127.0.0.1", node.port("smpp"), timeout=20,
                              allow_unknown_opt_params=True)
    c.connect()
    c.bind_transceiver(system_id="tata", password="tatapass")
    return c


def tata_send(c, to: str, text: str) -> list[str]:
    """Submit (split by smpplib), asking for a receipt; @return: ids."""
    parts, coding, esm = smpplib.gsm.make_parts(text)
    ids: list[str] = []
    c.set_message_sent_handler(lambda pdu: ids.append(
        pdu.message_id.decode()))
    for part in parts:
        c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                       source_addr="TATA", dest_addr_ton=1,
                       dest_addr_npi=1, destination_addr=to,
                       short_message=part, data_coding=coding,
                       esm_class=esm, registered_delivery=1)
    while len(ids) < len(parts):
        c.read_once()
    return ids


def tata_receipts(c, count: int, timeout: float = 30.0) -> list[bytes]:
    """Read deliver_sm until C{count} arrived; @return: their texts."""
    got: list[bytes] = []
    c.set_message_received_handler(lambda pdu: got.append(
        pdu.short_message))
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"receipts so far: {got}"
        c.read_once()
    return got


def messages_to(uas: SIPp) -> list:
    """The MESSAGE requests an app received."""
    return received_requests(uas.sent_and_received(), "MESSAGE")


def test_app_to_app_through_env4(tmp_path):
    """1111 on env1 sends to 2222 on env4: the MESSAGE arrives from 1111
    with the UTF-8 body byte for byte, after one SMPP hop."""
    env1, env4, _ = two_nodes(tmp_path)
    wait_for(lambda: connected(env1), what="env1 bound to env4")
    uas = receiver(tmp_path, env4, "2222", expected=1)
    try:
        csv = write_users(tmp_path / "uac.csv",
                          [("1111", PASSWORDS["1111"], "2222")])
        uac = run_sipp(tmp_path / "uac", "message_uac.xml",
                       env1.port("sip_udp"), users=csv, timeout=20)
        assert uac.returncode == 0 and uac.successful == 1, uac.explain()
        got = uas.wait()
        assert got.returncode == 0, got.explain() + env1.log()[-3000:]
    finally:
        uas.stop()
    sent = [m for m in parse_message_log(uac.messages)
            if m.direction == "sent" and m.first_line.startswith("MESSAGE")]
    [delivered] = messages_to(uas)
    assert delivered.body == sent[-1].body
    assert "sip:1111@" in (delivered.header("From") or "")


def test_app_long_text_through_env4(tmp_path):
    """1111 on env1 sends 2222 a 400-character UTF-8 text (Arabic, emoji):
    it crosses as several UCS-2 SMPP parts and arrives as one MESSAGE
    with the body byte for byte."""
    env1, env4, _ = two_nodes(tmp_path)
    wait_for(lambda: connected(env1), what="env1 bound to env4")
    uas = receiver(tmp_path, env4, "2222", expected=1)
    text = ("مرحبا من 1111 ✓ 👋 long text across two nodes " * 12)[:400]
    assert len(text) == 400
    try:
        csv = write_users(tmp_path / "uac.csv",
                          [("1111", PASSWORDS["1111"], "2222", text)])
        uac = run_sipp(tmp_path / "uac", "message_text_uac.xml",
                       env1.port("sip_udp"), users=csv, timeout=20)
        assert uac.returncode == 0 and uac.successful == 1, uac.explain()
        got = uas.wait()
        assert got.returncode == 0, got.explain() + env1.log()[-3000:]
    finally:
        uas.stop()
    [delivered] = messages_to(uas)
    assert delivered.body.decode("utf-8").rstrip("\r\n") == text
    assert "sip:1111@" in (delivered.header("From") or "")


def test_tata_long_text_and_receipt(tmp_path):
    """TATA sends a 400-character text to 2222123: it crosses env1 and
    env4 as several SMPP parts, arrives as one MESSAGE with the exact
    text, and TATA gets DELIVRD receipts for its parts."""
    env1, env4, _ = two_nodes(tmp_path)
    wait_for(lambda: connected(env1), what="env1 bound to env4")
    uas = receiver(tmp_path, env4, "2222123", expected=1)
    text = ("Long text from TATA through env1 and env4 ✓ " * 10)[:400]
    c = tata(env1)
    try:
        ids = tata_send(c, "2222123", text)
        assert len(ids) > 1
        got = uas.wait()
        assert got.returncode == 0, got.explain() + env1.log()[-3000:]
        [delivered] = messages_to(uas)
        assert delivered.body.decode("utf-8") == text
        receipts = tata_receipts(c, len(ids))
        assert all(b"stat:DELIVRD" in r for r in receipts), receipts
        assert {r.split()[0][3:].decode() for r in receipts} == set(ids)
    finally:
        uas.stop()
        c.disconnect()


def test_env4_down_then_back(tmp_path):
    """With env4 down, env1 accepts TATA's message, retries, and delivers
    it once env4 is up again."""
    env1, _, (p1, p4, env4_cli) = two_nodes(tmp_path, start_env4=False)
    c = tata(env1)
    try:
        [mid] = tata_send(c, "2222", "queued while env4 was down")
        # Two refused connections later, env4 comes up.
        wait_for(lambda: env1.log().count("Scheduling retry") >= 2,
                 timeout=20, what="failed connection attempts")
        env4 = start_env(tmp_path, "env4", p4, env4_cli)
        uas = receiver(tmp_path, env4, "2222", expected=1)
        try:
            got = uas.wait()
            assert got.returncode == 0, got.explain() + env1.log()[-3000:]
        finally:
            uas.stop()
        [delivered] = messages_to(uas)
        assert delivered.body == b"queued while env4 was down"
        [receipt] = tata_receipts(c, 1)
        assert b"stat:DELIVRD" in receipt and mid.encode() in receipt
    finally:
        c.disconnect()


def test_loop_is_stopped(tmp_path):
    """Policies of env1 and env4 pointing 333% at each other: the hop
    count stops the message after MAX_HOPS nodes, with a loop log line,
    and TATA's receipt says it was not delivered."""
    env1, env4, _ = two_nodes(
        tmp_path,
        env4_lines=lambda p1: [*connection_cli("back", p1,
                                               system_id="env4"),
                               *policy_cli("loop", "333%", "back")],
        env1_lines=lambda p4: [*carrier_cli("env4", "env4", "env1pw"),
                               *policy_cli("loop", "333%", "env4")])
    wait_for(lambda: connected(env1) and connected(env4),
             what="both nodes bound")
    c = tata(env1)
    try:
        [mid] = tata_send(c, "3331", "round and round")
        [receipt] = tata_receipts(c, 1, timeout=60)
        assert b"stat:UNDELIV" in receipt and mid.encode() in receipt
    finally:
        c.disconnect()
    logs = env1.log() + env4.log()
    assert "routing loop" in logs
