"""
Ingress and memory against the backlog (issue 16 item 4): does accepting
messages get slower, or the node bigger, when many messages wait?

For each backlog size K a database is prepared (in a process of its own)
with K messages waiting for offline apps (state accepted, next attempt at
their validity's end, as the core leaves them when no app is registered),
spread over 1,000 accounts.  Then a fresh process opens it as the node
does (storage with its writer thread on the real reactor, the messaging
core started, its resume and scans running) and accepts M more messages
through the core with WINDOW outstanding, each offline too (accept commit,
then the offline state commit).  Printed per K: RSS once started, RSS after
the ingress, accepted/s, CPU per accepted message, and the ratios against
K = 0; RSS per waiting message is (RSS after, K) - (RSS after, 0) over K.

    .venv/bin/python bench/bench_backlog.py [K,K,...] [M] [WINDOW]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ACCOUNTS = 1000
NOW = time.time()


def rss_mb() -> float:
    """The resident set now (not the peak)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def number(i: int) -> str:
    return f"9647{i % ACCOUNTS:07d}"


def prepare(path: str, k: int) -> None:
    """A database with the accounts and K offline messages waiting."""
    import transaction
    import ZODB
    from appliance.application import GENERATIONS
    from appliance.messaging.store import Message
    from appliance.store.database import open_database
    from appliance.store.generations import evolve_database
    db = open_database("Data.fs", Path(path))
    evolve_database(db, GENERATIONS)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    root = conn.root()
    app = root["appliance"]
    app.add_product("Chat")
    app.products["Chat"].messaging = True
    app.add_customer("Bench")
    for i in range(ACCOUNTS):
        app.add_account("Bench", number(i))
        app.add_did(number(i), number(i))
        app.set_account_product(number(i), "Chat")
    store = root["messages"]
    epoch = store.next_epoch()
    tm.commit()
    for i in range(k):
        m = Message(epoch << 32 | (i + 1), "carrier", "TATA", "AsiaCell",
                    number(i), now=NOW, validity=NOW + 86400,
                    text=f"Promotion {i}: 50% off this week",
                    account=number(i))
        m.route, m.transport = "local", "sip"
        store.add(m)
        store.set_state(m, "accepted", next_attempt=m.validity,
                        error="no registered contact", now=NOW)
        if i % 10000 == 9999:
            tm.commit()
            conn.cacheMinimize()
    tm.commit()
    conn.close()
    db.close()


def measure(path: str, m: int, window: int) -> None:
    """Open the prepared database as the node does and accept M more."""
    from twisted.internet import defer, task
    from appliance.application import GENERATIONS
    from appliance.messaging.core import MessagingCore
    from appliance.messaging.vocabulary import Outcome, Submission
    from appliance.store.database import Storage, open_database

    class Offline:
        def deliver(self, view):
            return defer.succeed(Outcome("offline", "no registered contact"))

    @defer.inlineCallbacks
    def run(reactor):
        t0 = time.perf_counter()
        storage = Storage(lambda: open_database("Data.fs", Path(path)),
                          reactor=reactor, generations=GENERATIONS)
        storage.startService()
        core = MessagingCore(storage, reactor, local_transport="sip")
        core.set_agent("sip", Offline())
        core.startService()
        yield task.deferLater(reactor, 1.5, lambda: None)   # resume, a scan
        started = time.perf_counter() - t0
        rss_start = rss_mb()
        done = defer.Deferred()
        state = {"sent": 0, "acked": 0}
        cpu0, t1 = time.process_time(), time.perf_counter()

        def submit():
            i = state["sent"]
            state["sent"] += 1
            d = core.submit(Submission("carrier", "TATA", "AsiaCell",
                                       number(i), f"Offer {i} for you"))

            def acked(_):
                state["acked"] += 1
                if state["sent"] < m:
                    submit()
                elif state["acked"] == m:
                    done.callback(None)
            d.addCallbacks(acked, done.errback)
        for _ in range(min(window, m)):
            submit()
        yield done
        elapsed = time.perf_counter() - t1
        yield storage.flush()       # the offline state commits
        cpu = time.process_time() - cpu0
        counts = storage.messages().counts()
        out = {"start_s": started, "rss_start": rss_start,
               "rss_after": rss_mb(), "rate": m / elapsed,
               "cpu_us": cpu / m * 1e6, "waiting": counts["accepted"]}
        core.stopService()
        yield storage.stopService()
        print(json.dumps(out))
    task.react(run)


def main(sizes: str = "0,100000,300000", m: str = "20000",
         window: str = "2000") -> None:
    rows = []
    order = [int(x) for x in sizes.split(",")]
    # Every size is prepared first, then measured in the order given, each
    # run on a fresh copy of its database: "0,1000000,0" measures the empty
    # queue before and after the big one, minutes apart rather than the
    # quarter of an hour preparing a million messages takes.
    prepared: dict[int, tuple[str, float]] = {}
    for k in dict.fromkeys(order):
        path = tempfile.mkdtemp(prefix="bench-backlog-")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--prepare", path,
                        str(k)], check=True)
        prepared[k] = (path, time.perf_counter() - t0)
        print(f"prepared {k} in {prepared[k][1]:.0f} s", flush=True)
    for k in order:
        pristine, prepare_s = prepared[k]
        path = tempfile.mkdtemp(prefix="bench-backlog-run-")
        subprocess.run(["cp", "-r", pristine + "/.", path], check=True)
        size = os.path.getsize(os.path.join(path, "Data.fs"))
        out = subprocess.run([sys.executable, __file__, "--measure", path,
                              m, window], check=True, capture_output=True,
                             text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        r["k"], r["prepare_s"] = k, prepare_s
        r["file_mb"] = size / 2**20
        r["load"] = open("/proc/loadavg").read().split()[0]
        rows.append(r)
        subprocess.run(["rm", "-rf", path])
        print(f"waiting {k}: {json.dumps(r)}", flush=True)
    for path, _ in prepared.values():
        subprocess.run(["rm", "-rf", path])
    base = rows[0]
    print(f"\ningress of {m} offline messages, window {window}, FileStorage,"
          " writer thread")
    print(f"{'waiting':>9}{'start s':>8}{'RSS start':>10}{'RSS after':>10}"
          f"{'msg/s':>8}{'CPU us':>8}{'rate/0':>8}{'B/waiting':>10}")
    for r in rows:
        per = ((r["rss_after"] - base["rss_after"]) * 2**20 / r["k"]
               if r["k"] else 0.0)
        print(f"{r['k']:>9}{r['start_s']:>8.1f}{r['rss_start']:>10.0f}"
              f"{r['rss_after']:>10.0f}{r['rate']:>8.0f}{r['cpu_us']:>8.0f}"
              f"{r['rate'] / base['rate']:>8.2f}{per:>10.0f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--prepare"]:
        prepare(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ["--measure"]:
        measure(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main(*sys.argv[1:])
