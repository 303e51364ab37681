"""
What one message costs the durable store, through the real messaging core
(route, Message, batch function, commit) on FileStorage, a batch at a time
through each step of its way (accept; the offline state commit when no app
is registered; the final state), per message: objects written, bytes written, pickling
CPU microseconds (ZODB's ObjectWriter), the batch functions' microseconds on
the reactor thread, and the commit's microseconds.  Commits run inline
(task.Clock), so each figure is the CPU of that step alone.

    .venv/bin/python bench/bench_message_cost.py [MESSAGES] [BATCH] [SECOND] [ACCOUNTS]

SECOND is the second step's outcome: C{offline} (the default: no app is
registered) or C{forwarded} (handed to an SMPP connection, which gave it
a remote id: the SMPP and HTTP egress path, whose receipt later decides
the final state).  ACCOUNTS (default 100) is how many recipients the
messages go to, round robin (the SIP ladder's 5,000 apps each get one).

Printed as a table, one row per step; run it before and after a change to
the message layout or the store's indexes, in the same sitting.
"""
from __future__ import annotations

import collections
import inspect
import sys
import tempfile
import time
from pathlib import Path

import ZODB.serialize
from ZODB.FileStorage import FileStorage
from twisted.internet import defer, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.application import GENERATIONS  # noqa: E402
from appliance.messaging.core import MessagingCore  # noqa: E402
from appliance.messaging.vocabulary import (Outcome,  # noqa: E402
                                            Submission)
from appliance.store.database import Storage, open_database  # noqa: E402


class Meter:
    """Counts what the writer pickles and FileStorage stores."""

    def __init__(self, storage_class: type = FileStorage) -> None:
        self.objects = 0
        self.bytes = 0
        self.pickle_s = 0.0
        self.by_class: collections.Counter = collections.Counter()
        self.class_s: collections.Counter = collections.Counter()
        self._serialize = ZODB.serialize.ObjectWriter.serialize
        self._store = storage_class.store
        meter = self

        def serialize(writer, obj):
            t0 = time.thread_time()
            data = meter._serialize(writer, obj)
            spent = time.thread_time() - t0
            meter.pickle_s += spent
            meter.by_class[type(obj).__name__] += 1
            meter.class_s[type(obj).__name__] += spent
            return data

        def store(fs, oid, serial, data, version, txn):
            meter.objects += 1
            meter.bytes += len(data)
            return meter._store(fs, oid, serial, data, version, txn)
        ZODB.serialize.ObjectWriter.serialize = serialize
        storage_class.store = store

    def take(self) -> tuple[int, int, float, collections.Counter]:
        out = (self.objects, self.bytes, self.pickle_s,
               (self.by_class, self.class_s))
        self.objects, self.bytes, self.pickle_s = 0, 0, 0.0
        self.by_class = collections.Counter()
        self.class_s = collections.Counter()
        return out


class Later:
    """The core's clock: time from C{clock}, calls kept in a list (a
    C{task.Clock} sorts its calls on every C{callLater}: quadratic)."""

    def __init__(self, clock: task.Clock) -> None:
        self.clock = clock
        self.calls: list = []

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay, fn, *args, **kwargs):
        self.calls.append((fn, args, kwargs))

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for fn, args, kwargs in calls:
            fn(*args, **kwargs)


class Agent:
    """Answers every delivery with one outcome (synchronously)."""

    def __init__(self) -> None:
        self.kind = "offline"

    def deliver(self, view):
        if self.kind == "forwarded":
            return defer.succeed(Outcome("forwarded", "bench",
                                         remote_id=f"{view.id:x}",
                                         connection="carrier"))
        return defer.succeed(Outcome(self.kind, "bench"))


def timed_storage(storage: Storage) -> list:
    """Wrap the batch functions to time them (apply, on the reactor)."""
    spent = [0.0]
    real = storage.batch

    def batch(fn, *args, **kwargs):
        def timed(root, *a, **k):
            t0 = time.thread_time()
            try:
                return fn(root, *a, **k)
            finally:
                spent[0] += time.thread_time() - t0
        return real(timed, *args, **kwargs)
    storage.batch = batch
    return spent


def main(n: int = 20000, batch: int = 1000, second: str = "offline",
         accounts: int = 100) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    clock = task.Clock()
    clock.advance(1_000_000)
    options = {}
    if "threaded" in inspect.signature(Storage).parameters:
        options["threaded"] = False
    storage = Storage(lambda: open_database("Data.fs", tmp), reactor=clock,
                      batch_max=batch, batch_delay=0.001,
                      generations=GENERATIONS, **options)
    storage.open()
    with storage.transaction(note="setup") as root:
        root.add_product("Chat")
        root.products["Chat"].messaging = True
        root.add_customer("Bench")
        for i in range(accounts):
            number = f"9647{i:07d}"
            root.add_account("Bench", number)
            root.add_did(number, number)
            root.set_account_product(number, "Chat")
    later = Later(clock)
    core = MessagingCore(storage, later, local_transport="sip",
                         scan_interval=3600, purge_interval=86400)
    agent = Agent()
    core.set_agent("sip", agent)
    core.startService()
    later.run()
    spent = timed_storage(storage)
    # The class the database opened (the node's own FileStorage class
    # may override store).
    meter = Meter(type(storage.db.storage))
    commit_s = [0.0]
    storage.batch_observer = lambda writes, seconds: commit_s.__setitem__(
        0, commit_s[0] + seconds)
    second_label = ("forwarded (remote id)" if second == "forwarded"
                    else "offline (no app)")
    labels = ("accept", second_label, "delivered (final)")
    totals = {label: [0, 0, 0.0, 0.0, 0.0, 0.0, 0, collections.Counter(),
                      collections.Counter()] for label in labels}

    def step(label: str, run) -> None:
        meter.take()
        spent[0] = commit_s[0] = 0.0
        commits = storage.commits
        t0 = time.process_time()
        run()
        storage.flush()
        cpu = time.process_time() - t0
        objects, size, pickle_s, (by_class, class_s) = meter.take()
        t = totals[label]
        t[0] += objects
        t[1] += size
        t[2] += pickle_s
        t[3] += spent[0]
        t[4] += commit_s[0]
        t[5] += cpu
        t[6] += storage.commits - commits
        t[7].update(by_class)
        t[8].update(class_s)

    # Chunk by chunk, as the node's flow goes: a batch accepted, then its
    # dispatches (each finds no app: the offline state), then its final
    # states (as if the app had answered), so each step finds the message
    # as hot as the node would.
    for first in range(0, n, batch):
        def accept() -> None:
            for i in range(first, min(first + batch, n)):
                core.submit(Submission("carrier", "TATA", "AsiaCell",
                                       f"9647{i % accounts:07d}",
                                       f"Promotion {i}: 50% off this week"))
        step("accept", accept)
        views = [args[0] for fn, args, kwargs in later.calls
                 if getattr(fn, "__name__", "") == "dispatch"]

        def offline() -> None:
            agent.kind = second
            later.run()
        step(second_label, offline)

        def delivered() -> None:
            for view in views:
                core._record(Outcome("delivered", "bench"), view)
        step("delivered (final)", delivered)
    rows = [(label, t[0] / n, t[1] / n, t[2] / n * 1e6, t[3] / n * 1e6,
             t[4] / n * 1e6, t[5] / n * 1e6, t[6], (t[7], t[8]))
            for label, t in totals.items()]
    print(f"{n} messages, batches of {batch}, FileStorage, inline commits")
    print(f"{'step':<22}{'objects':>8}{'bytes':>8}{'pickle us':>10}"
          f"{'apply us':>9}{'batch us':>10}{'CPU us':>8}{'commits':>8}")
    for label, objects, size, pickle_us, apply_us, commit_us, cpu_us, \
            commits, classes in rows:
        print(f"{label:<22}{objects:>8.2f}{size:>8.0f}{pickle_us:>10.1f}"
              f"{apply_us:>9.1f}{commit_us:>10.1f}{cpu_us:>8.1f}"
              f"{commits:>8}")
    print("objects written and pickling us, per message, by class:")
    for label, *_, (classes, seconds) in rows:
        print(f"  {label}: " + ", ".join(
            f"{name} {count / n:.2f} ({seconds[name] / n * 1e6:.1f} us)"
            for name, count in classes.most_common(5)))
    storage.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*(int(a) for a in args[:2]), *args[2:3], *(int(a) for a in args[3:4]))
