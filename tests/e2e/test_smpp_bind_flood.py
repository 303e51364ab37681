"""
End-to-end: wrong SMPP binds (a flood, and a brute force from one
address) against the real node, while a bound carrier keeps submitting
with smpplib.
"""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
import smpplib.consts

from tests.e2e.harness import wait_for
from tests.e2e.test_smpp_e2e import client, smpp_node, submit

pytestmark = pytest.mark.e2e

RINVPASWD, RBINDFAIL = 0x0E, 0x0D


def wrong_bind(port: int, source: str, password: bytes = b"guess") -> int:
    """One bind_transceiver as carrier1 from C{source}; @return: the
    bind_resp's command_status."""
    body = b"carrier1\0" + password + b"\0\0" + bytes([0x34, 0, 0]) + b"\0"
    pdu = struct.pack(">IIII", 16 + len(body), 0x09, 0, 1) + body
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as s:
        s.sendall(pdu)
        head = b""
        while len(head) < 16:
            chunk = s.recv(16 - len(head))
            if not chunk:
                raise ConnectionError("closed before bind_resp")
            head += chunk
        return struct.unpack(">IIII", head)[2]


def rate(c, seconds: float) -> float:
    """Submits answered per second by one carrier over C{seconds}."""
    n, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        submit(c, f"m{n}")
        n += 1
    return n / (time.monotonic() - start)


def test_bind_flood_does_not_stall_other_carriers(tmp_path):
    """A flood of wrong binds from eight addresses (lock-out set high, so
    every attempt costs a password check: the worst case) is answered
    while a bound carrier keeps being served: its submits keep getting
    submit_sm_resp during the flood.  Prints both rates."""
    node = smpp_node(tmp_path, bind_failures=1000)
    port = node.port("smpp")
    good = client(node)
    before = rate(good, 2.0)
    stop = threading.Event()
    statuses: list[int] = []

    def attacker(i: int) -> None:
        for _ in range(40):
            if stop.is_set():
                return
            statuses.append(wrong_bind(port, f"127.0.0.{10 + i}"))
    threads = [threading.Thread(target=attacker, args=(i,))
               for i in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    during = rate(good, 3.0)
    stop.set()
    for t in threads:
        t.join(30)
    flood_time = time.monotonic() - started
    print(f"\nbind flood: {len(statuses)} wrong binds in {flood_time:.1f} s "
          f"({len(statuses) / flood_time:.0f}/s); carrier submit rate "
          f"{before:.0f}/s before, {during:.0f}/s during "
          f"({during / before:.2f}x)")
    assert during > 0
    assert statuses and set(statuses) <= {RINVPASWD, RBINDFAIL}
    assert RINVPASWD in statuses
    good.unbind()
    good.disconnect()


def test_brute_force_locked_out_and_logged(tmp_path):
    """After bind_failures (5) wrong passwords from one address, its next
    bind, even with the right password, gets ESME_RBINDFAIL, the node logs
    the lock-out with the address, and other addresses still bind."""
    node = smpp_node(tmp_path)
    port = node.port("smpp")
    got = [wrong_bind(port, "127.0.0.77") for _ in range(5)]
    assert got == [RINVPASWD] * 5
    assert wrong_bind(port, "127.0.0.77", b"car1pass") == RBINDFAIL
    wait_for(lambda: "locked out" in node.log() and "127.0.0.77"
             in node.log())
    c = client(node)          # from 127.0.0.1
    assert c.state == smpplib.consts.SMPP_CLIENT_STATE_BOUND_TRX
    c.unbind()
    c.disconnect()
