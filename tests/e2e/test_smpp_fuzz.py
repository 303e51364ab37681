"""
Fuzzing the running node's SMPP port with mutated PDUs: at least 100,000
of them, from a bound session; the node must not crash and a valid bind
must keep working.
"""
from __future__ import annotations

import os
import random
import socket
import struct
import time

import pytest
from smpp.pdu import operations, pdu_types as T

from appliance.smpp import pdus
from tests.e2e.test_smpp_e2e import client, smpp_node, submit
from tests.smpp.smpp_env import submit_multi, submit_sm

pytestmark = [pytest.mark.e2e]

TOTAL = int(os.environ.get("SMPP_FUZZ_TOTAL", "100000"))


def seeds() -> list[bytes]:
    """Valid PDUs of every kind the server reads, to mutate."""
    out = [submit_sm(1), submit_sm(2, b"\x05\x00\x03\x07\x02\x01abc",
                                   esm=True, rd=1),
           submit_sm(3, "مرحبا".encode("utf-16-be"), dc=8),
           submit_sm(4, b"x", sar_msg_ref_num=1, sar_total_segments=2,
                     sar_segment_seqnum=1),
           submit_multi(5, ["111222333", "999"], b"multi"),
           struct.pack(">IIII", 16, 0x15, 0, 6),
           struct.pack(">IIII", 16, 0x80000005, 0, 7),
           pdus.encode(operations.DataSM(
               8, source_addr="Viber", destination_addr="111222333",
               esm_class=T.EsmClass(T.EsmClassMode.DEFAULT,
                                    T.EsmClassType.DEFAULT),
               registered_delivery=T.RegisteredDelivery(
                   T.RegisteredDeliveryReceipt
                   .NO_SMSC_DELIVERY_RECEIPT_REQUESTED),
               data_coding=T.DataCoding())),
           pdus.encode(operations.QuerySM(9, message_id="1",
                                          source_addr="x"))]
    return out


def mutate(rnd: random.Random, pdu: bytes) -> bytes:
    """Overwrite a few octets after the length (rarely the length too, or
    truncate/extend the body and fix the length)."""
    b = bytearray(pdu)
    roll = rnd.random()
    if roll < 0.1 and len(b) > 17:
        b = b[:rnd.randrange(16, len(b))]
    elif roll < 0.15:
        b += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 20)))
    for _ in range(rnd.randrange(1, 5)):
        b[rnd.randrange(4, len(b))] = rnd.randrange(256)
    if rnd.random() < 0.3:           # keep command ids plausible
        b[4:8] = pdu[4:8]
    b[0:4] = struct.pack(">I", len(b))
    if rnd.random() < 0.0002:        # a lying length: desynchronises
        b[0:4] = struct.pack(">I", rnd.randrange(0, 200))
    return bytes(b)


def bound_socket(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(pdus.encode(operations.BindTransceiver(
        1, system_id="carrier1", password="car1pass")))
    head = b""
    while len(head) < 16:
        head += s.recv(16 - len(head))
    length, _, status, _ = struct.unpack(">IIII", head)
    rest = length - 16
    while rest > 0:
        rest -= len(s.recv(rest))
    assert status == 0
    return s


def confirmed(s: socket.socket, marker: int, timeout: float = 1.0) -> bool:
    """
    Read the node's answers until the enquire_link_resp to our marker
    (so every PDU before it was handled).

    @return: False if the node closed the session or the marker was lost
        (a lying length swallowed it).
    """
    buffer = b""
    deadline = time.monotonic() + timeout
    s.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = s.recv(1 << 20)
        except socket.timeout:
            continue
        except OSError:
            return False
        if not data:
            return False
        buffer += data
        try:
            frames, buffer = pdus.split_frames(buffer)
        except pdus.FramingError:
            return False
        for f in frames:
            h = pdus.header(f)
            if h.command_id == 0x80000015 and h.sequence == marker:
                return True
    return False


def test_fuzz_100k_mutated_pdus(tmp_path):
    """100,000 mutated PDUs on bound sessions (reconnecting whenever the
    node closes one for an unreadable stream): the node stays up and a
    valid smpplib bind then submits normally."""
    node = smpp_node(tmp_path, window=10000, queue_limit=10_000_000)
    port = node.port("smpp")
    rnd = random.Random(20261123)
    base = seeds()
    sent, handled, reconnects, marker = 0, 0, 0, 0x7000_0000
    s = bound_socket(port)
    deadline = time.monotonic() + 600
    while handled < TOTAL:
        assert time.monotonic() < deadline, "fuzz run too slow"
        marker += 1
        chunk = b"".join(mutate(rnd, rnd.choice(base)) for _ in range(200))
        try:
            s.sendall(chunk + struct.pack(">IIII", 16, 0x15, 0, marker))
            ok = confirmed(s, marker)
        except OSError:
            ok = False
        sent += 200
        if ok:
            handled += 200
        else:
            s.close()
            reconnects += 1
            s = bound_socket(port)
    s.close()
    assert node.process.poll() is None, node.log()
    c = client(node)
    (mid,) = submit(c, "still working after the fuzz")
    assert int(mid, 16) > 0
    c.unbind()
    c.disconnect()
    log = node.log()
    assert "Unhandled" not in log and "handling a PDU" not in log, log[-3000:]
    print(f"fuzz: {sent} PDUs sent, {handled} confirmed handled, "
          f"{reconnects} reconnects")
