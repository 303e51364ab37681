"""
Accepted messages per second into the durable store: batched, fsync'd
commits against one commit per message, in one run.

A producer keeps `window` writes outstanding (as many binds with windows
would) and submits the next one when an acknowledgement arrives;
acknowledgements fire only after the commit holding the message returned
from FileStorage's fsync.  Prints msg/s, acknowledgement latency p50/p99,
commits, fsyncs and peak memory for each mode, then the ratio.

    .venv/bin/python bench/bench_store.py [N_BATCHED] [N_SINGLE]
"""
from __future__ import annotations

import os
import resource
import sys
import tempfile
import time

from twisted.internet import defer, task

from appliance.messaging.store import Message
from appliance.application import GENERATIONS
from appliance.store.database import Storage, open_database
import ZODB.FileStorage.FileStorage  # noqa: F401 (module, for its fsync)
fsmodule = sys.modules["ZODB.FileStorage.FileStorage"]



def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def accept(root, number: int, now: float):
    """What a protocol's accept does: one new message in the store."""
    store = root["messages"]
    m = Message(store_ids.next(), "carrier", "TATA", "AsiaCell", "111222333",
                now=now, validity=now + 86400,
                text=f"Promotion {number}: 50% off this week",
                encoding="gsm7", account="111222333")
    store.add(m)
    return m.id


class Fsyncs:
    def __init__(self):
        self.count = 0
        self.real = fsmodule.fsync

    def __call__(self, fd):
        self.count += 1
        return self.real(fd)


def run(reactor, n: int, batch_max: int, label: str, window: int) -> dict:
    global store_ids
    from appliance.messaging.store import MessageIds
    tmp = tempfile.mkdtemp(prefix="bench-store-")
    storage = Storage(lambda: open_database("Data.fs", __import__("pathlib").Path(tmp)),
                      reactor=reactor, batch_max=batch_max, batch_delay=0.002, generations=GENERATIONS)
    storage.startService()
    epoch = storage.run(lambda root: storage.messages().next_epoch(),
                        note="next epoch")
    store_ids = MessageIds(epoch)
    fsyncs = Fsyncs()
    fsmodule.fsync = fsyncs
    latencies: list[float] = []
    done = defer.Deferred()
    state = {"sent": 0, "acked": 0}
    start = time.perf_counter()

    def submit():
        i = state["sent"]
        state["sent"] += 1
        t0 = time.perf_counter()
        d = storage.batch(accept, i, time.time())

        def acked(_):
            latencies.append(time.perf_counter() - t0)
            state["acked"] += 1
            if state["sent"] < n:
                submit()
            elif state["acked"] == n:
                done.callback(None)
        d.addCallback(acked)
        d.addErrback(done.errback)

    for _ in range(min(window, n)):
        submit()
    yield done
    elapsed = time.perf_counter() - start
    fsmodule.fsync = fsyncs.real
    commits = storage.commits
    size = os.path.getsize(os.path.join(tmp, "Data.fs"))
    count = sum(storage.messages().counts().values())
    yield storage.stopService()
    latencies.sort()
    return {"label": label, "n": n, "rate": n / elapsed,
            "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[int(len(latencies) * 0.99)] * 1000,
            "commits": commits, "fsyncs": fsyncs.count, "stored": count,
            "bytes_per_msg": size / n, "rss": rss_mb()}


@defer.inlineCallbacks
def main(reactor, n_batched: str = "50000", n_single: str = "2000"):
    results = []
    results.append((yield from_gen(run(reactor, int(n_single), 1,
                                       "one commit per message", 100))))
    results.append((yield from_gen(run(reactor, int(n_batched), 2000,
                                       "batched, window 100", 100))))
    results.append((yield from_gen(run(reactor, int(n_batched), 2000,
                                       "batched, window 2000", 2000))))
    print(f"{'mode':<24}{'msgs':>8}{'msg/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'commits':>9}{'fsyncs':>8}{'B/msg':>7}{'maxRSS MB':>11}")
    for r in results:
        print(f"{r['label']:<24}{r['n']:>8}{r['rate']:>10.0f}{r['p50']:>9.2f}"
              f"{r['p99']:>9.2f}{r['commits']:>9}{r['fsyncs']:>8}"
              f"{r['bytes_per_msg']:>7.0f}{r['rss']:>11.0f}")
        assert r["stored"] == r["n"], r
    print(f"batched (window 2000) / one commit per message: "
          f"{results[2]['rate'] / results[0]['rate']:.1f}x")
    print("window = writes outstanding at once (as many binds x their "
          "windows); every acknowledgement came after its commit's fsync")


def from_gen(gen):
    return defer.inlineCallbacks(lambda: gen)()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
