"""
The running node's M3UA listener fed tens of thousands of mutated frames
by an ASP: it answers ERR or drops them (closing the association only
when the stream can no longer be framed), never crashes, and keeps
serving a good ASP on another association.
"""
from __future__ import annotations

import os
import random
import select
import socket

import pytest

from appliance.sigtran import m3ua, sccp
from appliance.sigtran.interfaces import ProtocolData, SCCPAddress
from tests.e2e.harness import start_node, wait_for
from tests.e2e.pycrate_asp import PycrateASP, udt
from tests.sigtran.test_m3ua import MESSAGES

pytestmark = [pytest.mark.e2e]

TOTAL = int(os.environ.get("M3UA_FUZZ_TOTAL", "100000"))
NODE_PC = 185

PROVISION = """configure terminal
ss7
 point-code 0.23.1
 global-title 44770090000
 m3ua-peer asp-good
  address 127.0.0.1
  role sg
 exit
 m3ua-peer fuzz
  address 127.0.0.1
  role sg
  routing-context 1
 exit
exit
end
"""


def seeds() -> list[bytes]:
    """Valid frames of every kind, and DATA carrying SCCP messages."""
    hlr, smsc = SCCPAddress(gt="447900123456", ssn=6), SCCPAddress(
        gt="44770090000", ssn=8)
    out = list(MESSAGES.values())
    for raw in [sccp.encode(sccp.Unitdata(sccp.UDT, smsc, hlr, b"\x62\x03abc",
                                          0, True)),
                *sccp.segment(smsc, hlr, b"L" * 600, 1, True, 3),
                sccp.encode(sccp.Unitdata(sccp.UDTS, smsc, hlr, b"x", cause=1))]:
        out.append(m3ua.data(ProtocolData(186, NODE_PC, 3, 2, 0, 1, raw), rc=1))
    return out


def mutate(rnd: random.Random, frame: bytes) -> bytes:
    """A few bytes changed after the header; mostly the length is fixed up
    so the stream stays framed, sometimes it is left wrong."""
    b = bytearray(frame)
    for _ in range(rnd.randrange(1, 6)):
        low = 0 if rnd.random() < 0.05 or len(b) <= 8 else 8
        b[rnd.randrange(low, len(b))] = rnd.randrange(256)
    if rnd.random() < 0.1:
        b = b[:rnd.randrange(8, len(b) + 1)]
    if rnd.random() < 0.1:
        b += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
    if rnd.random() < 0.97:
        b[0] = 1
        b[4:8] = (len(b) + 3 & ~3).to_bytes(4, "big")
        b += b"\0" * (-len(b) % 4)
    return bytes(b)


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(m3ua.aspsm(m3ua.ASPUP) + m3ua.asptm(m3ua.ASPAC, rcs=(1,)))
    return s


def drain(s: socket.socket) -> tuple[bytes, bool]:
    """Read what is there; @return: (bytes, still open)."""
    data = b""
    while select.select([s], [], [], 0)[0]:
        try:
            chunk = s.recv(65536)
        except ConnectionError:
            return data, False
        if not chunk:
            return data, False
        data += chunk
    return data, True


def test_mutated_frames_get_err_and_a_good_asp_is_served(tmp_path):
    """Mutated M3UA frames are answered with ERR or dropped, the node never
    crashes or logs a traceback, and afterwards a good ASP still comes up
    and gets its UDT answered (UDTS) on its own association."""
    script = tmp_path / "provision.cli"
    script.write_text(PROVISION)
    node = start_node(tmp_path, node={"provision": str(script)},
                      m3ua={"enabled": True, "beat_interval": 0,
                            "listen": "tcp:port=0:interface=127.0.0.1"})
    port = node.port("m3ua")
    rnd = random.Random(13)
    frames = seeds()
    good = PycrateASP(port, 186)
    good.up()
    sock = connect(port)
    answers = errs = reconnects = 0
    sent = 0
    while sent < TOTAL:
        batch = b"".join(mutate(rnd, rnd.choice(frames)) for _ in range(100))
        try:
            sock.sendall(batch)
        except (BrokenPipeError, ConnectionError):
            pass
        sent += 100
        data, open_ = drain(sock)
        answers += len(data)
        errs += data.count(b"\x01\x00\x00\x00")
        if not open_:
            sock.close()
            sock = connect(port)
            reconnects += 1
        assert node.process.poll() is None, node.log()[-3000:]
    sock.close()
    assert errs > 0
    good.data(NODE_PC, udt("44770090000", 9, "447900123456", 6, b"\x62\x01\x00"))
    # The fuzzer's own UDT/XUDT with return on error came back to PC 186
    # too, on this association: skip those, wait for ours.
    while True:
        label, answer = good.next_data()
        if answer["Data"]["Value"].get_val() == b"\x62\x01\x00":
            break
    assert label[:2] == (NODE_PC, 186) and answer["RetCause"].get_val() == 4
    good.close()
    log = node.log()
    assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]
    assert node.stop() in (0, -15)
    print(f"\n{sent} mutated frames, {errs} ERR answers, "
          f"{reconnects} reconnects after unframeable streams")
