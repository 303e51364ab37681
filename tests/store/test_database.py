"""Tests for L{appliance.store.database}: transactions and batched commits."""
from appliance.application import GENERATIONS, memory_storage
import persistent
import pytest
import transaction
import ZODB
from twisted.internet import task
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from ZODB.POSException import ConflictError
from zope.interface.verify import verifyObject

from appliance.store.database import Storage, open_database
from appliance.store.generations import KEY
from appliance.store.interfaces import IStorage


def other_view(storage):
    """What a second, independent connection sees: only committed data."""
    tm = transaction.TransactionManager()
    conn = storage.db.open(tm)
    try:
        return dict(conn.root().get("test", {}))
    finally:
        tm.abort()
        conn.close()


def put(root, key, value):
    """A batched write: store a value under root['test'] (a plain copy)."""
    data = dict(root.get("test", {}))
    data[key] = value
    root["test"] = data
    return key


def boom(root):
    """A batched write that fails half-way."""
    root["test"] = {"half": "written"}
    raise ValueError("bad message")


class StorageTests(SynchronousTestCase):
    """Storage on an in-memory database with a fake reactor."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.storage = memory_storage(reactor=self.reactor,
                                           batch_max=3, batch_delay=0.01)
        self.addCleanup(self.storage.close)

    def test_interface(self):
        """Storage provides IStorage."""
        verifyObject(IStorage, self.storage)

    def test_generations_applied(self):
        """A new database is brought to the newest generation of every
        domain, and each domain's root entry is reachable by accessor."""
        newest = {name: len(steps) for name, steps in GENERATIONS}
        self.assertEqual(self.storage.generations, newest)
        self.assertEqual(dict(self.storage.domain(KEY)), newest)
        self.assertIsNotNone(self.storage.domain("smpp"))
        self.assertIsNone(self.storage.domain_get("no such entry"))
        self.assertRaises(KeyError, self.storage.domain, "no such entry")
        self.assertIsNotNone(self.storage.root())
        self.assertIsNotNone(self.storage.messages())

    def test_batch_waits_for_commit(self):
        """A batched write's Deferred fires only after its commit, and the
        data is invisible to other connections until then."""
        d = self.storage.batch(put, "a", 1)
        self.assertNoResult(d)
        self.assertEqual(other_view(self.storage), {})
        self.reactor.advance(0.01)
        self.assertEqual(self.successResultOf(d), "a")
        self.assertEqual(other_view(self.storage), {"a": 1})
        self.assertEqual(self.storage.commits, 1)

    def test_many_writes_one_commit(self):
        """Writes queued together share one commit."""
        ds = [self.storage.batch(put, k, 1) for k in "ab"]
        self.reactor.advance(0.01)
        self.assertEqual([self.successResultOf(d) for d in ds], ["a", "b"])
        self.assertEqual(self.storage.commits, 1)

    def test_batch_max_commits_at_once(self):
        """Reaching batch_max commits on the next reactor turn, without
        waiting for batch_delay (and never inside the caller's stack)."""
        ds = [self.storage.batch(put, k, 1) for k in "abc"]
        self.assertNoResult(ds[2])
        self.reactor.advance(0)
        self.assertEqual([self.successResultOf(d) for d in ds], list("abc"))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_batch_max_bounds_a_commit(self):
        """No commit carries more than batch_max writes; the rest follow on
        the next turn."""
        sizes = []
        real = self.storage._apply
        self.storage._apply = lambda items, results, live: (
            sizes.append(len(live)), real(items, results, live))[1]
        ds = [self.storage.batch(put, str(k), 1) for k in range(7)]
        self.reactor.advance(0)
        self.assertEqual(sizes, [3, 3, 1])
        self.assertEqual([self.successResultOf(d) for d in ds],
                         [str(k) for k in range(7)])

    def test_callback_queues_more(self):
        """A caller that queues its next write from the acknowledgement
        (as a windowed protocol does) gets it committed in a later batch."""
        acks = []

        def again(key):
            acks.append(key)
            if len(acks) < 50:
                self.storage.batch(put, str(len(acks)), 1).addCallback(again)
        self.storage.batch(put, "0", 1).addCallback(again)
        for _ in range(60):
            self.reactor.advance(0.01)
        self.assertEqual(len(acks), 50)

    def test_failure_isolated(self):
        """A failing write fails alone, leaves nothing behind, and the
        others in its batch still commit."""
        d1 = self.storage.batch(put, "a", 1)
        d2 = self.storage.batch(boom)
        d3 = self.storage.batch(put, "c", 3)
        self.reactor.advance(0.01)
        self.assertEqual(self.successResultOf(d1), "a")
        self.failureResultOf(d2, ValueError)
        self.assertEqual(self.successResultOf(d3), "c")
        self.assertEqual(other_view(self.storage), {"a": 1, "c": 3})

    def test_commit_conflict_retried(self):
        """A commit that conflicts is retried with the writes re-applied."""
        tm = self.storage._wtm
        real = tm.commit
        calls = []

        def flaky():
            calls.append(1)
            if len(calls) == 1:
                raise ConflictError()
            return real()
        tm.commit = flaky
        d = self.storage.batch(put, "a", 1)
        self.reactor.advance(0.01)
        self.assertEqual(self.successResultOf(d), "a")
        self.assertEqual(len(calls), 2)
        self.assertEqual(other_view(self.storage), {"a": 1})

    def test_commit_error_fails_all(self):
        """A commit that fails for good fails every write of the batch."""
        def broken():
            raise OSError("disk full")
        self.storage._wtm.commit = broken
        ds = [self.storage.batch(put, k, 1) for k in "ab"]
        self.reactor.advance(0.01)
        for d in ds:
            self.failureResultOf(d, OSError)
        self.flushLoggedErrors(OSError)

    def test_flush(self):
        """flush() commits what is queued now."""
        d = self.storage.batch(put, "a", 1)
        self.storage.flush()
        self.assertEqual(self.successResultOf(d), "a")
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_transaction_commits_and_notifies(self):
        """A transaction commits with its user and note, then listeners run."""
        notes = []
        self.storage.add_change_listener(notes.append)
        with self.storage.transaction(user="alice", note="carrier TATA"):
            self.storage._root()["test"] = {"x": 1}
        self.assertEqual(other_view(self.storage), {"x": 1})
        self.assertEqual(notes, ["carrier TATA"])
        last = list(self.storage.db.storage.iterator())[-1]
        self.assertEqual((last.user, last.description),
                         (b"alice", b"carrier TATA"))

    def test_transaction_aborts(self):
        """A block that raises changes nothing and notifies nobody."""
        notes = []
        self.storage.add_change_listener(notes.append)
        with self.assertRaises(ValueError):
            with self.storage.transaction(note="bad"):
                self.storage._root()["test"] = {"x": 1}
                raise ValueError("refused")
        self.assertEqual(other_view(self.storage), {})
        self.assertNotIn("test", self.storage._root())
        self.assertEqual(notes, [])

    def test_batch_during_transaction(self):
        """A write queued from inside a transaction commits after it."""
        with self.storage.transaction(note="cfg"):
            d = self.storage.batch(put, "a", 1)
            self.storage.flush()
        self.assertNoResult(d)
        self.reactor.advance(0)
        self.assertEqual(self.successResultOf(d), "a")

    def test_run_retries_conflicts(self):
        """run() retries a function that hits ConflictError."""
        calls = []

        def fn(root):
            calls.append(1)
            if len(calls) < 3:
                raise ConflictError()
            return "done"
        self.assertEqual(self.storage.run(fn, note="x"), "done")
        self.assertEqual(len(calls), 3)

    def test_stop_flushes(self):
        """Stopping the service commits queued writes, then closes."""
        storage = memory_storage(reactor=self.reactor, batch_delay=10)
        storage.startService()
        d = storage.batch(put, "a", 1)
        zstorage = storage.db.storage
        self.successResultOf(storage.stopService())
        self.assertEqual(self.successResultOf(d), "a")
        self.assertIsNone(storage.db)
        self.assertFalse(zstorage.opened())

    def test_closed_storage_refuses(self):
        """A write to a closed storage fails instead of vanishing."""
        self.storage.close()
        self.failureResultOf(self.storage.batch(put, "a", 1), RuntimeError)

    def test_pack_timer(self):
        """With a pack interval, a pack is scheduled on the reactor."""
        storage = Storage(lambda: ZODB.DB(None), reactor=self.reactor,
                          pack_interval=60, generations=GENERATIONS)
        packs = []
        storage.pack = lambda: packs.append(1)
        storage.startService()
        self.assertEqual(packs, [])
        self.reactor.advance(60)
        self.assertEqual(len(packs), 1)
        self.reactor.advance(60)
        self.assertEqual(len(packs), 2)
        self.successResultOf(storage.stopService())
        self.assertEqual(self.reactor.getDelayedCalls(), [])


def test_filestorage_survives_restart(tmp_path):
    """Committed batched writes are in the file after a close and reopen."""
    clock = MemoryReactorClock()
    path = tmp_path / "sub" / "Data.fs"
    storage = Storage(lambda: open_database(str(path), tmp_path), clock, generations=GENERATIONS)
    storage.startService()
    d = storage.batch(put, "kept", 1)
    storage.flush()
    assert d.called
    storage.stopService()
    again = Storage(lambda: open_database(f"file://{path}", tmp_path), clock, generations=GENERATIONS)
    again.open()
    try:
        assert again._root()["test"] == {"kept": 1}
    finally:
        again.close()


def test_relative_path_under_data_dir(tmp_path):
    """A relative FileStorage path lives under data_dir."""
    db = open_database("db/Data.fs", tmp_path)
    db.close()
    assert (tmp_path / "db" / "Data.fs").exists()


def test_unknown_scheme(tmp_path):
    """An unknown URI scheme is refused."""
    with pytest.raises(ValueError):
        open_database("mysql://x", tmp_path)


def _index_position(path) -> int:
    """Where the saved Data.fs.index says the file ended."""
    from ZODB.fsIndex import fsIndex
    return fsIndex.load(str(path) + ".index")["pos"]


def test_filestorage_index_saved_while_running(tmp_path):
    """
    The FileStorage index is saved at start and every C{index_interval}
    while the node runs (FileStorage itself saves it only on close or
    pack): after a SIGKILL, the next start reads only the commits since
    the last save instead of everything since the last clean stop.
    """
    clock = MemoryReactorClock()
    path = tmp_path / "Data.fs"
    storage = Storage(lambda: open_database(str(path), tmp_path), clock,
                      generations=GENERATIONS, index_interval=60)
    storage.startService()
    at_start = _index_position(path)
    assert at_start == path.stat().st_size       # saved at start
    for i in range(20):
        storage.batch(put, f"k{i}", i)
        storage.flush()
    assert _index_position(path) == at_start < path.stat().st_size
    clock.advance(60)
    assert _index_position(path) == path.stat().st_size
    storage.stopService()
    assert storage._indexer is not None and not storage._indexer.running


def test_index_not_saved_when_off_or_not_filestorage(tmp_path):
    """index_interval 0 saves nothing while running; an in-memory
    database has no index to save."""
    clock = MemoryReactorClock()
    path = tmp_path / "Data.fs"
    storage = Storage(lambda: open_database(str(path), tmp_path), clock,
                      generations=GENERATIONS, index_interval=0)
    storage.startService()
    before = _index_position(path)           # FileStorage's own, at creation
    storage.batch(put, "k", 1)
    storage.flush()
    clock.advance(600)
    assert _index_position(path) == before < path.stat().st_size
    assert storage._indexer is None
    storage.stopService()
    memory = Storage(lambda: ZODB.DB(None), clock, generations=GENERATIONS)
    memory.startService()
    assert memory._indexer is None
    assert memory.save_index().called
    memory.stopService()


def test_conflict_class_of_a_btrees_conflict():
    """A BTrees conflict names no class (ZODB sets none on it): the
    conflict counter files it under its own type; an object's conflict
    names the object's class."""
    from BTrees.OOBTree import OOBTree
    from ZODB.POSException import BTreesConflictError, ConflictError
    from appliance.store.database import _conflict_class
    assert _conflict_class(BTreesConflictError(1, 2, 3, 4)) == \
        "[BTreesConflictError]"
    assert _conflict_class(ConflictError(object=OOBTree())) == \
        "BTrees.OOBTree.OOBTree"


# -- the commit path's cuts (issue 16 items 2 and 4) -------------------


def _two_connections(tmp_path):
    db = open_database("Data.fs", tmp_path)
    from appliance.store.database import _use_one_writer
    _use_one_writer(db)
    tm1 = transaction.TransactionManager()
    tm2 = transaction.TransactionManager()
    return db, (tm1, db.open(tm1)), (tm2, db.open(tm2))


def _count_header_reads(fs) -> list:
    """The positions of the record headers the FileStorage reads from now."""
    reads: list = []
    real = type(fs)._read_data_header

    def counting(self, pos, oid=None, _file=None):
        reads.append(pos)
        return real(self, pos, oid, _file)
    fs._read_data_header = counting.__get__(fs)
    return reads


def test_remembered_serial_still_detects_a_conflict(tmp_path):
    """A FileStorage that remembers the serials it committed still refuses
    a commit made from a stale copy of an object another connection
    committed since (the serial it compares with is the newest one)."""
    from persistent.mapping import PersistentMapping
    db, (tm1, c1), (tm2, c2) = _two_connections(tmp_path)
    try:
        c1.root()["thing"] = PersistentMapping(n=0)
        tm1.commit()
        tm2.begin()
        c2.root()["thing"]["n"]         # c2 reads it at this serial
        c1.root()["thing"]["n"] = 1
        tm1.commit()                    # serial remembered: its new one
        c2.root()["thing"]["n"] = 2     # from the stale copy
        with pytest.raises(ConflictError):
            tm2.commit()
        tm2.abort()
        assert c2.root()["thing"]["n"] == 1
    finally:
        tm1.abort()
        tm2.abort()
        db.close()


def test_rewrite_does_not_read_the_old_header(tmp_path):
    """Re-storing an object committed a moment ago takes its serial from
    memory; after a pack (or for an object not remembered) FileStorage
    reads the old record's header as before, and what it stored reads
    back after a restart."""
    from persistent.mapping import PersistentMapping
    db, (tm1, c1), (tm2, c2) = _two_connections(tmp_path)
    fs = db.storage
    reads = _count_header_reads(fs)
    try:
        c1.root()["thing"] = PersistentMapping(n=0)
        tm1.commit()
        for n in range(1, 4):
            c1.root()["thing"]["n"] = n
            tm1.commit()
        assert reads == []
        fs._tids = fs._older_tids = None          # as after a pack
        c1.root()["thing"]["n"] = 4
        tm1.commit()
        assert len(reads) >= 1
        del reads[:]
        c1.root()["thing"]["n"] = 5     # remembered again
        tm1.commit()
        assert reads == []
    finally:
        tm1.abort()
        tm2.abort()
        db.close()
    db = open_database("Data.fs", tmp_path)
    try:
        conn = db.open()
        assert conn.root()["thing"]["n"] == 5
        conn.close()
    finally:
        db.close()


def test_serial_check_of_a_read_object_comes_from_memory(tmp_path):
    """At commit, the serial of each object a transaction only read
    (readCurrent, as BTrees do for the nodes above a bucket they change)
    is taken from memory without reading its header; a stale read still
    fails with a read conflict; after an undo, the memory is forgotten."""
    from persistent.mapping import PersistentMapping
    from ZODB.POSException import ReadConflictError
    db, (tm1, c1), (tm2, c2) = _two_connections(tmp_path)
    fs = db.storage
    try:
        c1.root()["read"] = PersistentMapping(n=0)
        c1.root()["written"] = PersistentMapping(n=0)
        tm1.commit()
        reads = _count_header_reads(fs)
        c1.root()["read"]["n"]                      # loaded: its serial known
        c1.readCurrent(c1.root()["read"])
        c1.root()["written"]["n"] = 1
        tm1.commit()
        assert reads == []
        tm2.begin()
        c2.root()["read"]["n"]                      # c2 read it at this serial
        c2.readCurrent(c2.root()["read"])
        c1.root()["read"]["n"] = 1
        tm1.commit()
        c2.root()["written"]["n"] = 2
        with pytest.raises(ReadConflictError):
            tm2.commit()
        tm2.abort()
        undo_id = db.undoLog(0, 1)[0]["id"]
        tm = transaction.TransactionManager()
        db.undo(undo_id, tm.get())
        tm.commit()
        assert fs._tids is None
    finally:
        tm1.abort()
        tm2.abort()
        db.close()


def test_pack_forgets_serials(tmp_path):
    from persistent.mapping import PersistentMapping
    db, (tm1, c1), _ = _two_connections(tmp_path)
    try:
        c1.root()["thing"] = PersistentMapping(n=0)
        tm1.commit()
        assert db.storage._tids
        db.pack()
        assert db.storage._tids is None
        c1.root()["thing"]["n"] = 1
        tm1.commit()
        assert c1.root()["thing"]["n"] == 1
    finally:
        tm1.abort()
        db.close()


def test_serial_memory_is_bounded(tmp_path, monkeypatch):
    """Two generations of at most TID_MEMORY objects each."""
    from persistent.mapping import PersistentMapping
    from appliance.store import database
    monkeypatch.setattr(database, "TID_MEMORY", 10)
    db, (tm1, c1), _ = _two_connections(tmp_path)
    try:
        for i in range(30):
            c1.root()[f"k{i}"] = PersistentMapping(n=i)
            tm1.commit()
            fs = db.storage
            assert len(fs._tids) <= 10 + 2
            assert len(fs._older_tids) <= 10 + 2
    finally:
        tm1.abort()
        db.close()


def test_one_object_writer_per_commit(tmp_path):
    """The storage's connections pickle all of a commit's changed objects
    with one ObjectWriter, and each object's own state is what is stored."""
    from persistent.mapping import PersistentMapping
    import ZODB.serialize
    storage = Storage(lambda: open_database("Data.fs", tmp_path),
                      reactor=task.Clock(), generations=GENERATIONS,
                      threaded=False)
    storage.open()
    made = []
    real = ZODB.serialize.ObjectWriter.__init__

    def init(self, obj=None):
        made.append(obj)
        real(self, obj)
    try:
        with storage.transaction():
            pass

        def create(raw):
            raw["things"] = PersistentMapping(
                {i: PersistentMapping(n=i) for i in range(5)})
        storage.batch(create)
        storage.flush()

        def change(raw):
            for i in range(5):
                raw["things"][i]["n"] = i * 10
        storage.batch(change)
        ZODB.serialize.ObjectWriter.__init__ = init
        try:
            storage.flush()
        finally:
            ZODB.serialize.ObjectWriter.__init__ = real
        assert len(made) == 1
    finally:
        storage.close()
    db = open_database("Data.fs", tmp_path)
    try:
        conn = db.open()
        assert [conn.root()["things"][i]["n"] for i in range(5)] == \
            [0, 10, 20, 30, 40]
        conn.close()
    finally:
        db.close()


class WithNewArgs(persistent.Persistent):
    """A persistent class whose references ZODB writes without it."""

    def __getnewargs__(self):
        return ()


def test_short_persistent_id_pickles_as_zodb_does(tmp_path):
    """The writer's persistent_id gives ZODB's pickles: for index buckets,
    a bucket of stored messages, a message, a mapping holding a new
    object (which it assigns an oid and queues, as ZODB's does), a weak
    reference and a persistent object with __getnewargs__."""
    from BTrees.LLBTree import LLSet
    from BTrees.LOBTree import LOBucket
    from persistent.mapping import PersistentMapping
    from persistent.wref import WeakRef
    from ZODB.serialize import ObjectWriter
    from appliance.messaging.store import Message
    from appliance.store.database import _ObjectWriter

    db = ZODB.DB(None)
    conn = db.open()
    root = conn.root()
    bucket = LOBucket()
    for i in range(1, 40):
        bucket[i] = Message(i, "carrier", "TATA", "AsiaCell", "9647000001",
                            now=1e6, validity=1e6 + 60, text="hi")
    root["bucket"] = bucket
    root["set"] = LLSet(range(100, 220))
    root["other"] = PersistentMapping(n=1)
    root["odd"] = WithNewArgs()
    transaction.commit()
    try:
        for obj in (bucket, root["set"], bucket[5], root):
            assert _ObjectWriter(obj).serialize(obj) == \
                ObjectWriter(obj).serialize(obj)
        holder = PersistentMapping(old=root["other"], odd=root["odd"],
                                   weak=WeakRef(root["other"]))
        root["holder"] = holder
        transaction.savepoint()         # holder gets its oid
        holder["new"] = fresh = PersistentMapping(x=1)
        writer = _ObjectWriter(holder)
        mine = writer.serialize(holder)
        assert fresh._p_oid is not None
        assert list(writer) == [fresh, holder]     # popped from the end
        assert mine == ObjectWriter(holder).serialize(holder)
    finally:
        transaction.abort()
        conn.close()
        db.close()
