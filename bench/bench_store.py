"""
Accepted messages per second into the durable store: batched, fsync'd
commits against one commit per message, in one run.

A producer keeps `window` writes outstanding (as many binds with windows
would) and submits the next one when an acknowledgement arrives;
acknowledgements fire only after the commit holding the message returned
from FileStorage's fsync.  Prints msg/s, acknowledgement latency p50/p99,
commits, fsyncs and peak memory for each mode, then the ratio.

Batched modes run twice: with the commit inline on the reactor thread
(C{threaded=False}, as before the writer thread) and in the storage's
writer thread.  For each, CPU per message (the process's) and the
reactor's lag: how late a 1 ms timer fired at worst and at p99 while the
load ran (what any other call waits behind a commit).

    .venv/bin/python bench/bench_store.py [N_BATCHED] [N_SINGLE]
"""
from __future__ import annotations

import inspect
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


def run(reactor, n: int, batch_max: int, label: str, window: int,
        threaded: bool = True) -> dict:
    global store_ids
    from appliance.messaging.store import MessageIds
    tmp = tempfile.mkdtemp(prefix="bench-store-")
    options = {}
    if "threaded" in inspect.signature(Storage).parameters:
        options["threaded"] = threaded
    elif threaded:
        label += " (no writer thread in this code)"
    storage = Storage(lambda: open_database("Data.fs", __import__("pathlib").Path(tmp)),
                      reactor=reactor, batch_max=batch_max, batch_delay=0.002,
                      generations=GENERATIONS, **options)
    storage.startService()
    epoch = storage.run(lambda root: storage.messages().next_epoch(),
                        note="next epoch")
    store_ids = MessageIds(epoch)
    fsyncs = Fsyncs()
    fsmodule.fsync = fsyncs
    latencies: list[float] = []
    done = defer.Deferred()
    state = {"sent": 0, "acked": 0}
    lags: list[float] = []
    tick = {"due": time.perf_counter() + 0.001}

    def ticker():
        now = time.perf_counter()
        lags.append(max(0.0, now - tick["due"]))
        tick["due"] = now + 0.001
    lag = task.LoopingCall(ticker)
    lag.clock = reactor
    lag.start(0.001, now=False)
    start = time.perf_counter()
    cpu0 = time.process_time()

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
    cpu = time.process_time() - cpu0
    lag.stop()
    lags.sort()
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
            "bytes_per_msg": size / n, "rss": rss_mb(),
            "cpu_us": cpu / n * 1e6,
            "lag_p99": lags[int(len(lags) * 0.99)] * 1000 if lags else 0.0,
            "lag_max": lags[-1] * 1000 if lags else 0.0}


@defer.inlineCallbacks
def main(reactor, n_batched: str = "50000", n_single: str = "2000"):
    results = []
    results.append((yield from_gen(run(reactor, int(n_single), 1,
                                       "one commit per message", 100))))
    for threaded, how in ((False, "inline"), (True, "writer thread")):
        for window in (100, 2000):
            results.append((yield from_gen(run(
                reactor, int(n_batched), 2000,
                f"batched, w {window}, {how}", window, threaded))))
    print(f"{'mode':<32}{'msgs':>7}{'msg/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'commits':>8}{'fsyncs':>7}{'B/msg':>6}{'CPU us':>7}"
          f"{'lag p99':>8}{'lag max':>8}{'RSS':>5}")
    for r in results:
        print(f"{r['label']:<32}{r['n']:>7}{r['rate']:>8.0f}{r['p50']:>8.2f}"
              f"{r['p99']:>8.2f}{r['commits']:>8}{r['fsyncs']:>7}"
              f"{r['bytes_per_msg']:>6.0f}{r['cpu_us']:>7.0f}"
              f"{r['lag_p99']:>8.2f}{r['lag_max']:>8.2f}{r['rss']:>5.0f}")
        assert r["stored"] == r["n"], r
    print(f"batched (window 2000, writer thread) / one commit per message: "
          f"{results[4]['rate'] / results[0]['rate']:.1f}x; writer thread / "
          f"inline at window 2000: {results[4]['rate'] / results[2]['rate']:.2f}x"
          f" msg/s, reactor lag max {results[4]['lag_max']:.1f} vs "
          f"{results[2]['lag_max']:.1f} ms")
    print("window = writes outstanding at once (as many binds x their "
          "windows); every acknowledgement came after its commit's fsync; "
          "lag = how late a 1 ms reactor timer fired")


def from_gen(gen):
    return defer.inlineCallbacks(lambda: gen)()


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
