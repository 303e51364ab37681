#!/usr/bin/env python3
"""
submit_sm_resp latency at a paced rate (issue 16: p99 at most 20 ms at half
the ingress rate): the node as bench_peers runs it (forwarding to the Jasmin
anchor's sink.py at full speed), 4 binds, submit_sm sent on a fixed schedule
(RATE per second in all, open loop, at most WINDOW outstanding per bind: a
submit whose bind is full waits and is counted late), for SECONDS; prints
the latency from each submit_sm written to its submit_sm_resp read, p50 /
p99 / max, with the node's CPU and the load average.

    .venv/bin/python bench/bench_smpp_latency.py RATE [SECONDS] [WINDOW]

Run it at half the ingress rate bench_peers measured in the same sitting.
"""
from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_peers  # noqa: E402
from peers_net import free_port, sink_stats, wait_port  # noqa: E402

HEAD = struct.Struct(">IIII")
BIND_TRX, SUBMIT_SM, ENQUIRE_LINK = 0x09, 0x04, 0x15
RESP = 0x80000000


def cstring(text: str) -> bytes:
    return text.encode("ascii") + b"\0"


def submit_sm(seq: int, i: int) -> bytes:
    text = b"Paced message %07d" % i
    body = (b"\0" + b"\x01\x01" + cstring("12345") + b"\x01\x01"
            + cstring("336%08d" % (i % 10**8)) + bytes(3) + b"\0\0"
            + bytes(4) + bytes((len(text),)) + text)
    return HEAD.pack(16 + len(body), SUBMIT_SM, 0, seq) + body


class Bind(asyncio.Protocol):
    """One bind_transceiver: writes what it is given, times the
    responses."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.buffer = b""
        self.sent: dict[int, float] = {}
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.seq = 1
        loop = asyncio.get_running_loop()
        self.bound = loop.create_future()
        self.slot = asyncio.Event()

    def connection_made(self, transport) -> None:
        self.transport = transport
        body = cstring("bench") + cstring("benchpw") + cstring("") \
            + b"\x34\x00\x00\0"
        self.transport.write(HEAD.pack(16 + len(body), BIND_TRX, 0, 1)
                             + body)

    def submit(self, i: int) -> None:
        self.seq += 1
        self.sent[self.seq] = time.perf_counter()
        self.transport.write(submit_sm(self.seq, i))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        while len(self.buffer) >= 16:
            length, command, status, seq = HEAD.unpack_from(self.buffer)
            if len(self.buffer) < length:
                break
            self.buffer = self.buffer[length:]
            if command == BIND_TRX | RESP:
                if status:
                    self.bound.set_exception(RuntimeError(
                        f"bind refused: 0x{status:x}"))
                else:
                    self.bound.set_result(None)
            elif command == SUBMIT_SM | RESP:
                started = self.sent.pop(seq, None)
                if started is not None:
                    self.latencies.append(now - started)
                    self.statuses[status] = self.statuses.get(status, 0) + 1
                    self.slot.set()
            elif command == ENQUIRE_LINK:
                self.transport.write(HEAD.pack(16, ENQUIRE_LINK | RESP, 0,
                                               seq))


async def paced(port: int, rate: float, seconds: float, window: int,
                binds: int = 4) -> dict:
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(binds):
        _, b = await loop.create_connection(lambda: Bind(window),
                                            "127.0.0.1", port)
        await asyncio.wait_for(b.bound, 60)
        conns.append(b)
    total = int(rate * seconds)
    late = 0
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        b = conns[i % binds]
        if len(b.sent) >= window:
            late += 1
            while len(b.sent) >= window:
                b.slot.clear()
                await b.slot.wait()
        b.submit(i)
    sent_s = time.perf_counter() - start
    deadline = time.monotonic() + 120
    while any(b.sent for b in conns) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    lat = sorted(x for b in conns for x in b.latencies)
    statuses: dict[int, int] = {}
    for b in conns:
        for k, v in b.statuses.items():
            statuses[k] = statuses.get(k, 0) + v
        b.transport.close()

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3, 2)
    return {"rate_asked": rate, "sent": total, "answered": len(lat),
            "sent_rate": round(total / sent_s, 1), "late_for_window": late,
            "statuses": {f"0x{k:x}": v for k, v in statuses.items()},
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0)}


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def main(rate: str, seconds: str = "20", window: str = "50") -> None:
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        work = Path(tmp)
        sink_port, ctl = free_port(), free_port()
        sink = subprocess.Popen(
            [sys.executable, str(bench_peers.JASMIN / "sink.py"), "--port",
             str(sink_port), "--ctl-port", str(ctl)],
            stdout=open(work / "sink.log", "w"), stderr=subprocess.STDOUT)
        node = None
        try:
            wait_port(sink_port)
            wait_port(ctl)
            node = bench_peers.start_twistd(
                bench_peers.node_smpp_config(work, sink_port), work)
            port = bench_peers.wait_ports(node, work)["smpp"][0]
            deadline = time.monotonic() + 30
            while sink_stats(ctl).get("binds", 0) < 1:
                if time.monotonic() > deadline:
                    raise RuntimeError("the node did not bind to the sink")
                time.sleep(0.1)
            # warm-up: two seconds at the same rate
            asyncio.run(paced(port, float(rate), 2.0, int(window)))
            load0 = bench_peers.loadavg()
            t0, c0 = time.monotonic(), cpu_ticks(node.pid)
            result = asyncio.run(paced(port, float(rate), float(seconds),
                                       int(window)))
            cpu = (cpu_ticks(node.pid) - c0) / os.sysconf("SC_CLK_TCK") \
                / (time.monotonic() - t0)
            result.update(node_cpu_pct=round(100 * cpu, 1),
                          load=f"{load0} / {bench_peers.loadavg()}")
            print(json.dumps(result), flush=True)
        finally:
            if node is not None:
                bench_peers.stop(node)
            sink.terminate()
            sink.wait(10)


if __name__ == "__main__":
    main(*sys.argv[1:4])
