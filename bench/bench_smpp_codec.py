#!/usr/bin/env python3
"""
SMPP ingress with the generic smpp.pdu3 codec and with the struct
submit_sm reader / submit_sm_resp writer, in one run (issue 16 item 3):
the node under the Jasmin anchor's load.py (4 binds x window 50,
forwarding to sink.py), alternating APPLIANCE_SMPP_FAST_PDUS=0 and 1,
REPS times each.  Prints submit_sm_resp/s, p99 and the node's CPU per
submit_sm accepted (ingress phase), the figure least disturbed by a
shared machine.

    .venv/bin/python bench/bench_smpp_codec.py [N] [REPS]
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_peers  # noqa: E402


def main(n: int = 8000, reps: int = 2) -> None:
    rows = []
    loads = bench_peers.Loads()
    with tempfile.TemporaryDirectory(prefix="bench-codec-") as tmp:
        for rep in range(reps):
            for fast in ("0", "1"):
                os.environ["APPLIANCE_SMPP_FAST_PDUS"] = fast
                r = bench_peers.node_smpp(n, Path(tmp) / f"{fast}-{rep}",
                                          loads)
                cpu = r["cpu_pct_ingress"]["node"]
                us = cpu / 100 / r["ingress_rate"] * 1e6
                rows.append((fast, r["ingress_rate"],
                             r["resp_latency_ms"]["p99"], us))
                print(f"fast={fast} rep {rep + 1}: {r['ingress_rate']:.0f} "
                      f"submit_sm_resp/s, p99 {r['resp_latency_ms']['p99']}"
                      f" ms, node CPU {cpu:.0f}% = {us:.0f} µs per submit_sm",
                      flush=True)
    print(f"\nload average (1 min) during the run: {loads.text()}")
    print("\n| codec | submit_sm_resp/s | p99 ms | node CPU µs per submit_sm |")
    print("|---|---|---|---|")
    for fast, rate, p99, us in rows:
        name = "struct fast path" if fast == "1" else "smpp.pdu3 generic"
        print(f"| {name} | {rate:.0f} | {p99:.0f} | {us:.0f} |")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
