"""
Tests for the writer thread of L{appliance.store.database.Storage}: batched
commits run in a real thread on FileStorage, and come back to the test's
thread (the stand-in reactor) through C{callFromThread}.

The stand-in reactor is a C{task.Clock} that queues what threads hand it;
the tests pump that queue, waiting on it (never sleeping) with a generous
timeout so a hang fails instead of blocking the suite.
"""
from __future__ import annotations

import queue
import sys
import threading

import pytest
import transaction
import ZODB
from persistent.mapping import PersistentMapping
from twisted.internet import task
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import LogLevel, capturedLogs
from zope.interface import implementer

from appliance.application import GENERATIONS
from appliance.store.database import Storage, open_database
from appliance.store.generations import KEY

import ZODB.FileStorage.FileStorage  # noqa: F401 (the module, for fsync)
fsmodule = sys.modules["ZODB.FileStorage.FileStorage"]

#: Seconds a pump waits for the writer thread before the test fails.
PATIENCE = 30


@implementer(IReactorFromThreads)
class ThreadedClock(task.Clock):
    """A clock that also takes calls from threads, run when pumped."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: queue.Queue = queue.Queue()
        self.thread = threading.current_thread()

    def callFromThread(self, f, *args, **kwargs) -> None:
        self.from_threads.put((f, args, kwargs))

    def pump(self) -> None:
        """Run the next call a thread handed over (waiting for it)."""
        f, args, kwargs = self.from_threads.get(timeout=PATIENCE)
        f(*args, **kwargs)

    def pump_until(self, d) -> object:
        """Pump until C{d} fired; return its result (raise its failure)."""
        while not d.called:
            self.pump()
        out = []
        d.addBoth(out.append)
        if hasattr(out[0], "raiseException"):
            out[0].raiseException()
        return out[0]


class GatedFsync:
    """FileStorage's fsync, recording each call and its thread, optionally
    held until the test opens the gate."""

    def __init__(self, gated: bool = False) -> None:
        self.real = fsmodule.fsync
        self.threads: list[threading.Thread] = []
        self.events: list[str] | None = None
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, fd) -> None:
        self.threads.append(threading.current_thread())
        self.entered.set()
        assert self.gate.wait(PATIENCE)
        self.real(fd)
        if self.events is not None:
            self.events.append("fsync")


@pytest.fixture
def fsync(monkeypatch):
    gate = GatedFsync()
    monkeypatch.setattr(fsmodule, "fsync", gate)
    yield gate
    gate.gate.set()


@pytest.fixture
def clock():
    return ThreadedClock()


def opened(tmp_path, clock, **kwargs) -> Storage:
    """An open storage on C{tmp_path}'s Data.fs with the stand-in
    reactor (batch_delay 1 ms unless given)."""
    kwargs.setdefault("batch_delay", 0.001)
    s = Storage(lambda: open_database("Data.fs", tmp_path), reactor=clock,
                generations=GENERATIONS, **kwargs)
    s.open()
    return s


@pytest.fixture
def storage(tmp_path, clock):
    """A storage whose fsyncs all run in the writer thread (the path a
    slow disk takes; test_inline_fsync_* test the quick disk's)."""
    s = opened(tmp_path, clock, inline_fsync_max=0)
    yield s
    s.close()


def put(root, key, value):
    """A batched write: a key of root['test']."""
    if "test" not in root:
        root["test"] = PersistentMapping()
    root["test"][key] = value
    return key


def on_disk(path) -> dict:
    """What a fresh process would read from the file: only what is on
    disk."""
    db = ZODB.DB(ZODB.FileStorage.FileStorage(str(path), read_only=True))
    try:
        conn = db.open(transaction.TransactionManager())
        return dict(conn.root().get("test", {}))
    finally:
        db.close()


def test_threaded_by_default_with_a_real_reactor(storage):
    """A reactor that takes calls from threads gets the writer thread."""
    assert storage.threaded


def test_ack_after_fsync_in_the_writer_thread(storage, clock, fsync,
                                              tmp_path):
    """A batch's Deferred fires on the reactor's thread only after the
    commit, fsync included, ran in the writer thread; the data is then in
    the file and visible through root()."""
    fsync.events = events = []
    d = storage.batch(put, "a", 1)
    d.addCallback(lambda key: events.append(
        ("ack", key, threading.current_thread())))
    clock.advance(0.001)
    assert not d.called
    clock.pump_until(d)
    assert events[0] == "fsync"
    assert events[1] == ("ack", "a", clock.thread)
    assert fsync.threads and all(t is not clock.thread for t in fsync.threads)
    assert storage.domain("test")["a"] == 1
    assert storage.commits == 1


def test_reactor_serves_while_the_writer_fsyncs(storage, clock, fsync):
    """While the writer thread waits on fsync, the reactor's thread reads
    and queues the next writes without waiting; they are applied only
    after the first commit returned and go out in the next commit
    (double buffering), each Deferred firing after its own commit."""
    fsync.gate.clear()
    first = storage.batch(put, "a", 1)
    clock.advance(0.001)
    assert fsync.entered.wait(PATIENCE)     # the writer is inside fsync
    applied = []

    def second_write(root):
        applied.append(storage.commits)
        return put(root, "b", 2)
    second = storage.batch(second_write)
    third = storage.batch(put, "c", 3)
    assert storage.pending == 3
    assert "test" not in storage._root()    # reads see committed data only
    # A load from disk (another connection, as the reactor's after its
    # cache was invalidated) does not wait for the writer's fsync.
    loaded = []

    def load():
        tm = transaction.TransactionManager()
        conn = storage.db.open(tm)
        conn.cacheMinimize()
        loaded.append(dict(conn.root()[KEY]))
        tm.abort()
        conn.close()
    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(10)
    assert loaded, "a load waited for the writer's fsync"
    clock.advance(1)                        # timers fire; nothing waits
    assert applied == [] and not first.called
    fsync.gate.set()
    assert clock.pump_until(first) == "a"
    assert applied == [1]                   # applied after commit 1 only
    assert not second.called
    assert clock.pump_until(second) == "b"
    assert clock.pump_until(third) == "c"
    assert storage.commits == 2
    assert dict(storage.domain("test")) == {"a": 1, "b": 2, "c": 3}


def test_writes_queued_behind_a_commit_wait_for_companions(tmp_path, clock, fsync):
    """A write queued while a commit is under way still waits batch_delay
    from its queueing for companions (not less) when that commit ends,
    so back-to-back commits of a write each do not take the process at a
    few hundred messages a second; a full batch goes at once (a flush
    too: test_flush_and_stop_wait_for_the_writer)."""
    storage = opened(tmp_path, clock, batch_delay=0.010, batch_max=3,
                     inline_fsync_max=0)
    try:
        fsync.gate.clear()
        first = storage.batch(put, "a", 1)
        clock.advance(0.010)
        assert fsync.entered.wait(PATIENCE)
        clock.advance(0.004)
        second = storage.batch(put, "b", 2)        # queued 4 ms before the end
        fsync.gate.set()
        clock.pump_until(first)
        assert storage.commits == 1 and storage.pending == 1
        clock.advance(0.009)                        # waited 9 ms: not yet
        assert storage.pending == 1 and storage._writing is None
        clock.advance(0.001)
        assert storage._writing is not None
        assert clock.pump_until(second) == "b"
        assert storage.commits == 2
        # A full batch behind a commit goes as soon as that commit ends.
        fsync.gate.clear()
        fsync.entered.clear()
        third = storage.batch(put, "c", 3)
        clock.advance(0.010)
        assert fsync.entered.wait(PATIENCE)
        rest = [storage.batch(put, k, n) for k, n in (("d", 4), ("e", 5), ("f", 6))]
        fsync.gate.set()
        clock.pump_until(third)
        clock.pump_until(rest[-1])                  # no clock advance needed
        assert storage.commits == 4
        assert on_disk(tmp_path / "Data.fs") == {
            "a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}
    finally:
        fsync.gate.set()
        storage.close()


def test_failing_function_left_out(storage, clock, fsync, tmp_path):
    """In the writer thread too, a function that raises fails alone and
    leaves nothing behind; the others of its batch commit."""
    def boom(root):
        root["test"]["half"] = "written"
        raise ValueError("bad")
    storage.batch(put, "a", 1)
    bad = storage.batch(boom)
    good = storage.batch(put, "c", 3)
    clock.advance(0.001)
    assert clock.pump_until(good) == "c"
    with pytest.raises(ValueError):
        clock.pump_until(bad)
    assert on_disk(tmp_path / "Data.fs") == {"a": 1, "c": 3}


def test_conflict_retried(storage, clock, fsync, tmp_path):
    """A batch whose commit conflicts with another connection's commit is
    counted, re-applied on fresh data after a short random wait, and
    committed: nothing is lost (here a commit wholly in the writer
    thread, inline_max 0)."""
    storage.inline_max = 0
    storage.run(lambda root: put(storage._root(), "n", 0))
    other_tm = transaction.TransactionManager()
    other = storage.db.open(other_tm)
    other.root()["test"]["n"]               # loaded before the batch

    def bump(root):
        root["test"]["n"] += 1
        return root["test"]["n"]
    storage._commit_lock.acquire()          # the writer waits to commit
    d = storage.batch(bump)
    clock.advance(0.001)
    other.root()["test"]["n"] += 10         # commits first: a conflict
    other_tm.commit()
    other.close()
    storage._commit_lock.release()
    clock.pump()                            # the commit's conflict is back
    assert storage.conflicts == 1 and not d.called
    clock.advance(1)                        # the re-run, after its wait
    assert clock.pump_until(d) == 11
    assert on_disk(tmp_path / "Data.fs")["n"] == 11
    assert storage.conflicts_failed == 0


def committers(storage) -> list:
    """The threads that ran the storage's inline commits so far (the
    first call starts recording)."""
    seen = storage.__dict__.get("_test_committers")
    if seen is None:
        seen = storage._test_committers = []
        real = storage._commit_flushed

        def commit_flushed():
            seen.append(threading.current_thread())
            real()
        storage._commit_flushed = commit_flushed
    return seen


def test_conflict_in_an_inline_commit_retried(storage, clock, fsync,
                                              tmp_path):
    """A conflict raised by a commit made on the reactor's thread is
    retried as one from the writer thread: counted, re-applied on fresh
    data after its wait, committed once, acknowledged after its fsync."""
    storage.run(lambda root: put(storage._root(), "n", 0))
    other_tm = transaction.TransactionManager()
    other = storage.db.open(other_tm)
    other.root()["test"]["n"]
    runs = []

    def bump(root):
        root["test"]["n"] += 1
        if not runs:
            # Another connection commits between this apply and its
            # commit (as a second node would): the commit conflicts.
            other.root()["test"]["n"] += 10
            other_tm.commit()
        runs.append(root["test"]["n"])
        return root["test"]["n"]
    d = storage.batch(bump)
    clock.advance(0.001)                    # applied and committed here
    assert storage.conflicts == 1 and not d.called
    # No fsync of the batch yet (the other connection's commit fsynced
    # on this thread, as FileStorage does).
    assert [t for t in fsync.threads if t is not clock.thread] == []
    clock.advance(1)                        # the re-run, after its wait
    assert clock.pump_until(d) == 11
    assert runs == [1, 11]
    assert fsync.threads[-1] is not clock.thread
    assert on_disk(tmp_path / "Data.fs")["n"] == 11
    other.close()


def test_small_batch_written_inline_and_fsynced_in_the_writer(
        storage, clock, fsync, tmp_path):
    """A batch of up to inline_max writes is pickled and written on the
    reactor's thread: its data is in the file before the writer thread's
    fsync returns, yet no caller hears of it (and the reader does not
    see it) until that fsync is done."""
    committers(storage)
    fsync.gate.clear()
    d = storage.batch(put, "a", 1)
    clock.advance(0.001)                    # committed on this thread...
    assert committers(storage) == [clock.thread]
    assert fsync.entered.wait(PATIENCE)     # ...fsync held in the writer
    assert on_disk(tmp_path / "Data.fs") == {"a": 1}
    assert not d.called and "test" not in storage._root()
    assert storage.pending == 1
    fsync.gate.set()
    assert clock.pump_until(d) == "a"
    assert storage.domain("test")["a"] == 1
    assert all(t is not clock.thread for t in fsync.threads)


def test_batch_above_inline_max_committed_in_the_writer(tmp_path, clock,
                                                       fsync):
    """A batch of more than inline_max writes is committed (pickled,
    written, fsynced) wholly in the writer thread: nothing is in the file
    while that thread waits to commit."""
    storage = opened(tmp_path, clock, inline_max=2)
    try:
        storage._commit_lock.acquire()      # the writer waits to commit
        ds = [storage.batch(put, k, n) for k, n in (("a", 1), ("b", 2),
                                                     ("c", 3))]
        clock.advance(0.001)                # handed to the writer thread
        assert storage.pending == 3
        assert on_disk(tmp_path / "Data.fs") == {}
        storage._commit_lock.release()
        for d in ds:
            clock.pump_until(d)
        assert on_disk(tmp_path / "Data.fs") == {"a": 1, "b": 2, "c": 3}
        assert committers(storage) == []
        # Two writes are at most inline_max: written on this thread.
        ds = [storage.batch(put, "d", 4), storage.batch(put, "e", 5)]
        clock.advance(0.001)
        clock.pump_until(ds[-1])
        assert committers(storage) == [clock.thread]
    finally:
        storage.close()


@pytest.fixture
def quick(tmp_path, clock):
    """A storage with the default inline fsync (a quick disk's path)."""
    s = opened(tmp_path, clock)
    yield s
    s.close()


def test_inline_fsync_acks_on_the_next_turn_after_it(quick, clock, fsync,
                                                     tmp_path):
    """With quick fsyncs a small batch is committed and fsynced on the
    reactor's thread; its callers hear of it on the next turn, after the
    fsync, and the reader sees it then, not before."""
    fsync.events = events = []
    d = quick.batch(put, "a", 1)
    d.addCallback(lambda key: events.append(("ack", key)))
    quick._reactor.callLater(0.001, lambda: events.append(
        ("turn", "test" in quick._root())))
    clock.advance(0.001)
    assert events[0] == "fsync" and fsync.threads == [clock.thread]
    assert events[1] == ("turn", False)     # the commit's turn: no ack yet
    assert events[2:] == [("ack", "a")]
    assert quick.domain("test")["a"] == 1 and quick.commits == 1
    assert on_disk(tmp_path / "Data.fs") == {"a": 1}
    assert quick._pool is not None and not clock.from_threads.qsize()


def test_slow_fsyncs_go_to_the_writer_until_quick_again(quick, clock,
                                                        fsync, monkeypatch):
    """While the moving average of fsync times is above inline_fsync_max
    the fsyncs run in the writer thread (counted, logged at warning once);
    once quick fsyncs bring it below, they are back on the reactor."""
    from appliance.store import database
    quick.inline_fsync_max = 0.05
    now = [0.0]
    monkeypatch.setattr(database.time, "perf_counter", lambda: now[0])
    real = fsync.real
    slow = [1.0]

    def fsync_timed(fd):
        now[0] += slow.pop() if slow else 0.0   # the first takes a second
        real(fd)
    fsync.real = fsync_timed

    def write(key):
        d = quick.batch(put, key, 1)
        clock.advance(0.001)
        return clock.pump_until(d) if not d.called else d.result
    fsync.threads.clear()
    with capturedLogs() as events:
        assert write("a") == "a"            # slow, but it was inline
        assert fsync.threads == [clock.thread]
        assert quick.fsync_average == pytest.approx(0.1)
        for key in "bcdefgh":               # 0.1 * 0.9 ** 6 > 0.05
            write(key)
        assert all(t is not clock.thread for t in fsync.threads[1:])
        assert quick.fsync_average < 0.05
        write("i")                          # quick again: inline
    assert fsync.threads[-1] is clock.thread
    assert len(fsync.threads) == 9 and quick.slow_fsyncs == 1
    warned = [e for e in events if e["log_level"] is LogLevel.warn]
    assert len(warned) == 1 and warned[0]["ms"] == pytest.approx(100.0)
    assert on_disk_keys(quick) == set("abcdefghi")


def on_disk_keys(storage) -> set:
    return set(storage.domain("test").keys())


def test_after_commit_hooks_on_the_reactor_thread(storage, clock, fsync):
    """After-commit hooks that batch functions register run on the
    reactor's thread once the commit is back, before the Deferreds."""
    seen = []

    def write(root):
        txn = root._p_jar.transaction_manager.get()
        txn.addAfterCommitHook(lambda ok: seen.append(
            ("hook", ok, threading.current_thread())))
        return put(root, "a", 1)
    d = storage.batch(write)
    d.addCallback(lambda _: seen.append("ack"))
    clock.advance(0.001)
    clock.pump_until(d)
    assert seen == [("hook", True, clock.thread), "ack"]


def test_flush_and_stop_wait_for_the_writer(tmp_path, clock, fsync):
    """flush() fires once what was queued before it is on disk, also with
    a commit under way; stopService commits the rest and closes."""
    storage = Storage(lambda: open_database("Data.fs", tmp_path),
                      reactor=clock, batch_delay=0.001,
                      generations=GENERATIONS, inline_fsync_max=0)
    storage.startService()
    fsync.entered.clear()
    fsync.gate.clear()
    a = storage.batch(put, "a", 1)
    clock.advance(0.001)
    assert fsync.entered.wait(PATIENCE)
    b = storage.batch(put, "b", 2)
    flushed = storage.flush()
    fsync.gate.set()
    clock.pump_until(flushed)
    assert a.called and b.called
    storage.batch(put, "c", 3)
    clock.pump_until(storage.stopService())
    assert storage.db is None
    assert on_disk(tmp_path / "Data.fs") == {"a": 1, "b": 2, "c": 3}


def test_write_through_the_reader_is_reported(tmp_path):
    """A batch function that writes through root() (the reader's objects)
    instead of the root it is given loses that write; the storage counts
    and logs it instead of dropping it silently."""
    storage = Storage(lambda: open_database("Data.fs", tmp_path),
                      reactor=task.Clock(), generations=GENERATIONS)
    storage.open()
    try:
        storage.run(lambda root: put(storage._root(), "a", 1))
        reader_copy = storage.domain("test")

        def wrong(root):
            reader_copy["a"] = 2
        storage.batch(wrong)
        storage.flush()
        assert storage.lost_writes == 1
        assert storage.domain("test")["a"] == 1
    finally:
        storage.close()


def test_big_batch_applied_a_slice_per_turn(tmp_path, clock, fsync):
    """With the writer thread, a batch larger than apply_slice is applied
    a slice per reactor turn (a call scheduled meanwhile runs between two
    slices), then committed once; a function that raises in a slice is
    left out and the rest commit."""
    storage = opened(tmp_path, clock, apply_slice=2)
    try:
        order = []

        def write(root, key):
            order.append(key)
            if key == "bad":
                raise ValueError(key)
            return put(root, key, 1)
        ds = [storage.batch(write, key) for key in ("a", "b", "bad", "d", "e")]
        clock.callLater(0.001, order.append, "other call")
        clock.advance(0.001)
        assert order[:3] == ["a", "b", "other call"]
        clock.advance(0)
        clock.advance(0)
        for d in ds:
            if d is not ds[2]:
                clock.pump_until(d)
        with pytest.raises(ValueError):
            clock.pump_until(ds[2])
        assert storage.commits == 1
        assert on_disk(tmp_path / "Data.fs") == {"a": 1, "b": 1, "d": 1,
                                                 "e": 1}
    finally:
        storage.close()


def test_writer_thread_runs_jobs_in_order_and_stop_waits():
    """The writer thread runs what it is handed in order in its own
    thread, fires each Deferred through callFromThread (a raising job's
    with its failure), and stop() returns once the jobs handed over
    before it ran."""
    from appliance.store.database import WriterThread

    class Reactor:
        def __init__(self):
            self.calls = []

        def callFromThread(self, fn, *args):
            self.calls.append((threading.current_thread().name, fn, args))

    reactor = Reactor()
    writer = WriterThread(reactor)
    writer.start()
    ran = []

    def job(n):
        def run():
            ran.append((threading.current_thread().name, n))
            if n == 2:
                raise ValueError("commit failed")
            return n
        return run
    results = []
    for n in range(4):
        writer.run(job(n)).addCallbacks(
            results.append, lambda f: results.append(f.type))
    writer.stop()
    assert [n for _, n in ran] == [0, 1, 2, 3]
    assert {name for name, _ in ran} == {"storage-writer"}
    assert results == []            # only on the reactor's turn
    for _, fn, args in reactor.calls:
        fn(*args)
    assert results == [0, 1, ValueError, 3]
    writer.stop()                   # idempotent
