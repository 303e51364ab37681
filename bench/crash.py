"""
The crash campaign (issue 17, item 1, Bench): mixed load against the
real node, SIGKILL at random moments, restart, and after each kill and at
the end the checks of L{tests.e2e.crash_load}: nothing acknowledged lost,
billing records and messages matching, receipts owed only for final
messages and each sent, copies after a restart only of what was not yet
confirmed at that kill (each copy to an app with the same Message-ID).

    .venv/bin/python bench/crash.py [--runs 100] [--baseline 5] [--seed N]
        [--min-up 0.5] [--max-up 3.0] [--carrier 15] [--app 3]
        [--tenant 5] [--mo 5] [--startup-share 0.1] [--keep DIR]

A share of the restarts (C{--startup-share}) is killed again while
starting, at a random moment before the listeners are ready (opening the
database after the crash, the first commits, the index save), and
started once more; those kills are counted apart from the runs.

Prints one line per run, the figures (runs, messages, acknowledged by
kind, lost, not final, duplicates, recovery time from the restart to
every listener bound beside the same after a graceful SIGTERM
restart under the same load (the baseline), time from the kill to the first acknowledgement
after it), the machine's load average, and a JSON line; exits 1 if
anything was lost or a check failed.  The node runs as in the e2e tests
(C{twistd -n appliance}, FileStorage in a temporary folder, loopback,
ephemeral ports, log level info).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.crash_load import Campaign, main_figures  # noqa: E402
from tests.e2e.harness import kill_all  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--baseline", type=int, default=5,
                        help="graceful restarts (SIGTERM) after the kills, "
                        "the recovery time's baseline")
    parser.add_argument("--min-up", type=float, default=0.5,
                        help="shortest time the node runs before a kill (s)")
    parser.add_argument("--max-up", type=float, default=3.0,
                        help="longest time the node runs before a kill (s)")
    for kind, rate in (("carrier", 15), ("app", 3), ("tenant", 5),
                       ("mo", 5)):
        parser.add_argument(f"--{kind}", type=float, default=rate,
                            help=f"{kind} messages per second")
    parser.add_argument("--startup-share", type=float, default=0.1,
                        help="share of restarts killed again while starting, "
                        "before the listeners are ready")
    parser.add_argument("--keep", type=Path, default=None,
                        help="run in this folder and keep it")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        tmp = args.keep
    else:
        tmp = Path(tempfile.mkdtemp(prefix="crash-"))
    before = os.getloadavg()
    campaign = Campaign(
        tmp, runs=args.runs, seed=args.seed, up=(args.min_up, args.max_up),
        baseline=args.baseline, startup_share=args.startup_share,
        rates={"carrier": args.carrier, "app": args.app,
               "tenant": args.tenant, "mo": args.mo},
        log=lambda line: print(line, flush=True))
    try:
        figures = campaign.run()
    finally:
        kill_all()
    after = os.getloadavg()
    print()
    print(time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
          platform.node(), f"{os.cpu_count()} cores,",
          "load average before %.1f %.1f %.1f, after %.1f %.1f %.1f"
          % (*before, *after))
    print("seed", campaign.seed)
    print(figures.summary())
    for line in figures.problems[:50]:
        print("PROBLEM:", line)
    for line in figures.notes[:20]:
        print("note:", line)
    print(json.dumps({**main_figures(figures), "seed": campaign.seed,
                      "load_before": before, "load_after": after}))
    if args.keep is None and not figures.problems:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if figures.lost or figures.problems else 0


if __name__ == "__main__":
    sys.exit(main())
