"""
SMPP submit throughput against the running node, with durable accept:
several smpplib binds (one process each), each keeping `window` submit_sm
outstanding, against a node started with the e2e harness.  Measures
sustained submit_sm/s (every submit_sm_resp is sent only after the
message's commit) and p50/p99 from submit_sm to submit_sm_resp; then the
same with commit batching off (`[storage] batch_max = 1`), in one run.

    .venv/bin/python bench/bench_smpp.py [MESSAGES_PER_BIND] [BINDS] [WINDOW]

No SIP app is registered, so messages stay accepted in the store (this
measures the SMPP side and durable accept, not delivery).
"""
from __future__ import annotations

import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import smpplib.client  # noqa: E402
import smpplib.consts  # noqa: E402

from tests.e2e.harness import start_node  # noqa: E402
from tests.e2e.test_smpp_e2e import provision  # noqa: E402


def one_bind(port: int, count: int, window: int, out) -> None:
    """Submit `count` messages with `window` outstanding; report latencies."""
    c = smpplib.client.Client("127.0.0.1", port, timeout=30,
                              allow_unknown_opt_params=True)
    c.connect()
    c.bind_transceiver(system_id="carrier1", password="car1pass")
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    errors = [0]

    def done(pdu):
        latencies.append(time.perf_counter() - sent_at.pop(pdu.sequence))

    def error(pdu):
        errors[0] += 1
        sent_at.pop(pdu.sequence, None)
    c.set_message_sent_handler(done)
    c.set_error_pdu_handler(error)
    start = time.perf_counter()
    for i in range(count):
        while len(sent_at) >= window:
            c.read_once()
        pdu = c.send_message(source_addr_ton=5, source_addr="AsiaCell",
                             dest_addr_ton=1, dest_addr_npi=1,
                             destination_addr="111222333",
                             short_message=b"Promotion %d: 50%% off" % i,
                             registered_delivery=1)
        sent_at[pdu.sequence] = time.perf_counter()
    while sent_at:
        c.read_once()
    elapsed = time.perf_counter() - start
    c.unbind()
    c.disconnect()
    out.put((latencies, elapsed, errors[0]))


def run(label: str, storage: dict, count: int, binds: int,
        window: int) -> None:
    """Start a node, run the binds, print the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        node = start_node(tmp_path, smpp={
            "enabled": True, "listen": "tcp:port=0:interface=127.0.0.1",
            "window": max(window, 10), "queue_limit": 10_000_000},
            storage=storage,
            node={"provision": str(provision(tmp_path)),
                  "log_level": "error"})
        try:
            port = node.port("smpp")
            out = multiprocessing.Queue()
            procs = [multiprocessing.Process(target=one_bind,
                                             args=(port, count, window, out))
                     for _ in range(binds)]
            t0 = time.perf_counter()
            for p in procs:
                p.start()
            results = [out.get() for _ in procs]
            wall = time.perf_counter() - t0
            for p in procs:
                p.join()
        finally:
            node.stop()
    lat = sorted(x for r in results for x in r[0])
    errors = sum(r[2] for r in results)
    total = len(lat)
    slowest = max(r[1] for r in results)
    p50 = lat[total // 2] * 1000
    p99 = lat[int(total * 0.99)] * 1000
    print(f"{label}: {binds} binds x {count} msgs, window {window}: "
          f"{total / slowest:,.0f} submit_sm/s sustained "
          f"(wall {wall:.1f} s incl. bind), p50 {p50:.1f} ms, "
          f"p99 {p99:.1f} ms, errors {errors}, "
          f"mean {statistics.mean(lat) * 1000:.1f} ms")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    binds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    run("batched commits", {}, count, binds, window)
    run("batch_max = 1 ", {"batch_max": 1}, count, binds, window)


if __name__ == "__main__":
    main()
