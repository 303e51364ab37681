"""
Benchmark the chain app -> env1 -> env4 -> app (issue 7): two real nodes on
loopback, SIPp as app 1111 on env1 (MESSAGE with digest) and as app 2222 on
env4 (registered, answers 200), env1's SMPP connection to env4 with a
window of 1 and then of 10, in one run.

Each MESSAGE body carries its call number; SIPp's message traces carry a
microsecond timestamp per packet, so the end-to-end latency of a message is
the time from the authenticated MESSAGE leaving app 1111 to its MESSAGE
reaching app 2222.  Throughput is messages over the time from the first
send to the last arrival.  Prints a table; this is not a test.

Run: C{.venv/bin/python bench/bench_chain.py [--messages N] [--rate R]}
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import kill_all  # noqa: E402
from tests.e2e.sip_tools import SIPp, write_users  # noqa: E402
from tests.e2e.test_routing_nodes import (  # noqa: E402
    PASSWORDS, connected, receiver, two_nodes)
from tests.e2e.harness import wait_for  # noqa: E402

_ENTRY = re.compile(
    rb"^-{40,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n"
    rb"UDP message (sent|received) (?:\((\d+) bytes\)|\[(\d+)\] bytes) ?:"
    rb"\n\n", re.M)
_NUMBER = re.compile(rb"#(\d+)")


def traced(path: Path, direction: str) -> dict[int, float]:
    """
    MESSAGE requests in a SIPp trace: call number (from the body) to the
    time of the last one sent or received with that number.
    """
    raw = path.read_bytes()
    out: dict[int, float] = {}
    for m in _ENTRY.finditer(raw):
        if m.group(2).decode() != direction:
            continue
        packet = raw[m.end():m.end() + int(m.group(3) or m.group(4))]
        if not packet.startswith(b"MESSAGE "):
            continue
        if direction == "sent" and b"Proxy-Authorization" not in packet:
            continue
        number = _NUMBER.search(packet.partition(b"\r\n\r\n")[2])
        if number:
            stamp = datetime.strptime(m.group(1).decode(),
                                      "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out[int(number.group(1))] = stamp
    return out


def run(window: int, messages: int, rate: int, base: Path) -> dict:
    """One chain with C{window}; @return: its figures."""
    base.mkdir(parents=True)
    env1, env4, _ = two_nodes(base, window=window, log_level="info")
    try:
        wait_for(lambda: connected(env1), what="env1 bound to env4")
        uas = receiver(base, env4, "2222", expected=messages)
        csv = write_users(base / "uac.csv",
                          [("1111", PASSWORDS["1111"], "2222")])
        uac = SIPp(base / "uac", "message_uac.xml", env1.port("sip_udp"),
                   users=csv, calls=messages, rate=rate, limit=200,
                   timeout=300)
        sent_result = uac.wait()
        got = uas.wait()
        if got.returncode != 0:
            raise RuntimeError(got.explain())
        sent = traced(uac.messages, "sent")
        received = traced(uas.messages, "received")
        latencies = sorted((received[n] - sent[n]) * 1000
                           for n in received if n in sent)
        span = max(received.values()) - min(sent.values())
        return {"window": window, "sent": sent_result.successful,
                "received": len(received),
                "msg_s": len(received) / span,
                "p50": statistics.median(latencies),
                "p99": latencies[min(len(latencies) - 1,
                                     int(len(latencies) * 0.99))]}
    finally:
        env1.stop()
        if env4 is not None:
            env4.stop()
        kill_all()


def main(argv: list[str] | None = None) -> None:
    """Run window 1 and window 10; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=1000,
                        help="MESSAGE per second offered by app 1111")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for window in (1, 10):
            rows.append(run(window, args.messages, args.rate,
                            Path(tmp) / f"w{window}"))
    print(f"| window | sent | received | msg/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['window']} | {r['sent']} | {r['received']} | "
              f"{r['msg_s']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} |")


if __name__ == "__main__":
    main()
