"""
Benchmark the hot lookups of the model on a real FileStorage.

Builds a tariff with 1,000,000 random prefixes (1 to 9 digits) and
1,000,000 DIDs (100,000 accounts with 10 each) through the model API,
committing every 10,000 changes, then measures per-lookup time with a warm
object cache and the resident memory each structure adds. Prints a table;
this is not a test.

Run: C{.venv/bin/python bench/bench_lookups.py [--prefixes N] [--dids N]}
"""
from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from appliance.model.root import ApplianceRoot
from appliance.model.tariffs import Tariff

BATCH = 10_000
DIDS_PER_ACCOUNT = 10
#: Large enough that every BTree bucket stays in memory ("warm").
CACHE_SIZE = 400_000


def rss_kib() -> int:
    """
    @return: this process's resident set size in KiB (C{VmRSS}).
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def per_op_us(fn: Callable[[str], object], keys: Sequence[str]) -> float:
    """
    @param fn: the lookup.
    @param keys: its arguments.
    @return: mean microseconds per call over a second pass (the first
        pass warms the cache).
    """
    for key in keys:
        fn(key)
    start = time.perf_counter()
    for key in keys:
        fn(key)
    return (time.perf_counter() - start) / len(keys) * 1e6


def build_tariff(conn, tm, count: int, rng: random.Random) -> tuple[Tariff, float]:
    """
    Fill a tariff with C{count} distinct random prefixes (1 to 9 digits).

    @return: the committed tariff and the build time in seconds.
    """
    start = time.perf_counter()
    with tm:
        tariff = conn.root()["appliance"].add_tariff("bench")
    seen: set[str] = set()
    while len(seen) < count:
        with tm:
            batch_end = min(len(seen) + BATCH, count)
            while len(seen) < batch_end:
                length = rng.randint(1, 9)
                prefix = str(rng.randint(1, 9)) + "".join(
                    rng.choices("0123456789", k=length - 1))
                if prefix in seen:
                    continue  # short lengths saturate: draw again
                seen.add(prefix)
                tariff.set_price(prefix, f"0.{rng.randint(0, 9999):04d}")
    return tariff, time.perf_counter() - start


def build_dids(conn, tm, count: int) -> tuple[list[str], float]:
    """
    Create accounts with L{DIDS_PER_ACCOUNT} DIDs each, C{count} DIDs in all.

    @return: the DIDs created and the build time in seconds.
    """
    start = time.perf_counter()
    root = conn.root()["appliance"]
    with tm:
        root.add_customer("bench")
    dids: list[str] = []
    accounts = max(1, count // DIDS_PER_ACCOUNT)
    per_batch = max(1, BATCH // DIDS_PER_ACCOUNT)
    for first in range(0, accounts, per_batch):
        with tm:
            for n in range(first, min(first + per_batch, accounts)):
                username = f"u{n}"
                root.add_account("bench", username)
                for k in range(DIDS_PER_ACCOUNT):
                    did = f"9647{n * DIDS_PER_ACCOUNT + k:09d}"
                    root.add_did(username, did)
                    dids.append(did)
    return dids, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    """
    Build, measure and print the table.

    @param argv: command-line arguments (for tests and smaller runs).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prefixes", type=int, default=1_000_000)
    parser.add_argument("--dids", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    numbers = ["".join(rng.choices("0123456789", k=12)) for _ in range(args.lookups)]
    numbers = [str(rng.randint(1, 9)) + n[1:] for n in numbers]

    with tempfile.TemporaryDirectory() as tmp:
        storage = FileStorage(str(Path(tmp) / "Data.fs"))
        db = ZODB.DB(storage, cache_size=CACHE_SIZE)
        tm = transaction.TransactionManager(explicit=True)
        conn = db.open(transaction_manager=tm)
        with tm:
            conn.root()["appliance"] = ApplianceRoot()
        rows = []

        base = rss_kib()
        tariff, t_build = build_tariff(conn, tm, args.prefixes, rng)
        tm.begin()
        btree_us = per_op_us(tariff.lookup, numbers)
        tm.abort()
        tariff_rss = rss_kib() - base
        rows.append(("tariff BTree lookup (warm)", len(tariff.prices), t_build,
                     btree_us, tariff_rss))

        base = rss_kib()
        start = time.perf_counter()
        snap = tariff.snapshot()
        t_snap = time.perf_counter() - start
        snap_us = per_op_us(snap.lookup, numbers)
        rows.append(("tariff snapshot lookup", len(snap), t_snap, snap_us,
                     rss_kib() - base))
        agree = sum(tariff.lookup(n) == snap.lookup(n) for n in numbers[:10_000])

        base = rss_kib()
        dids, t_dids = build_dids(conn, tm, args.dids)
        root = conn.root()["appliance"]
        probes = rng.sample(dids, min(len(dids), args.lookups))
        tm.begin()
        did_us = per_op_us(root.account_for_did, probes)
        miss_us = per_op_us(root.account_for_did, numbers)
        tm.abort()
        rows.append(("account_for_did hit (warm)", len(root.dids), t_dids, did_us,
                     rss_kib() - base))
        rows.append(("account_for_did miss (warm)", len(root.dids), 0.0, miss_us, 0))
        size_mb = Path(tmp, "Data.fs").stat().st_size / 1e6
        conn.close()
        db.close()

    print(f"{'structure':32} {'entries':>9} {'build s':>8} {'us/op':>7} {'RSS +MiB':>9}")
    for name, entries, build, us, rss in rows:
        print(f"{name:32} {entries:>9} {build:>8.1f} {us:>7.2f} {rss / 1024:>9.1f}")
    print(f"Data.fs {size_mb:.0f} MB; cache_size={CACHE_SIZE} objects; "
          f"{len(numbers)} lookups per figure (second pass); "
          f"BTree and snapshot agree on {agree}/{min(10_000, len(numbers))} numbers")


if __name__ == "__main__":
    main()
