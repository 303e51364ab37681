#!/usr/bin/env python3
"""
SMPP ingress with durable accept, the node's CPU per accepted submit_sm:
the node under the Jasmin anchor's load.py (4 binds x window 50,
forwarding at full speed to sink.py), REPS times (bench_peers.node_smpp).
Run it from two trees one after the other (before/after a change) in the
same sitting; with PROFILE set, py-spy records the node of the first rep
into that file (raw, for bench/profile_node.py's summary).

    .venv/bin/python bench/bench_ingress_cpu.py [N] [REPS] [LABEL]
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_peers  # noqa: E402


def main(n: str = "8000", reps: str = "2", label: str = "node") -> None:
    loads = bench_peers.Loads()
    profile = os.environ.get("PROFILE")
    with tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp:
        for rep in range(int(reps)):
            r = bench_peers.node_smpp(
                int(n), Path(tmp) / str(rep), loads,
                Path(profile) if profile and rep == 0 else None)
            cpu = r["cpu_pct_ingress"]["node"]
            us = cpu / 100 / r["ingress_rate"] * 1e6
            print(f"{label} rep {rep + 1}: {r['ingress_rate']:.0f} "
                  f"submit_sm_resp/s, p99 {r['resp_latency_ms']['p99']} ms, "
                  f"node CPU {cpu:.0f}% = {us:.0f} us per submit_sm, "
                  f"load average {loads.text()}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
