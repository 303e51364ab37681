# -*- test-case-name: tests.store.test_database -*-
"""
The storage service: owns the ZODB database and gives the reactor thread
short synchronous transactions and a batched, durable commit path.

Two connections, each with its own transaction manager:

  - the I{reader} is the reactor thread's: C{root()}, C{messages()},
    C{domain()} read through it, and configuration changes
    (L{Storage.transaction}, L{Storage.run}) commit through it;
  - the I{writer} belongs to the batched commit path alone.  High-rate
    writes go through L{Storage.batch}: the functions queued within
    C{batch_delay} seconds (or C{batch_max} of them) are applied to the
    writer's objects on the reactor thread and committed.  On a
    FileStorage a batch of up to C{inline_max} writes is committed on the
    reactor thread too (a few milliseconds), and fsynced there while
    fsyncs are quick (else in the writer thread); a bigger batch, and any
    batch on another storage (ZEO, RelStorage: a commit there waits on
    the network), commits wholly in the writer thread.  Either way the
    reactor goes on serving and queues the next batch meanwhile (double
    buffering: it starts when the commit before ends, once its oldest
    write has waited C{batch_delay}).
    The reactor never touches the writer's objects while it commits.  Once
    the commit is on disk the reader is synced (so reads see it), the
    transaction's after-commit hooks run on the reactor, and only then
    does each caller's Deferred fire.  That is how a protocol acknowledges
    a message only once it is on disk, at the price of one fsync per batch
    instead of per message, and without the reactor waiting on a slow
    disk's fsync.

Batch functions receive the writer's root mapping and must reach
persistent objects through it only: an object read through C{root()}
belongs to the reader, and a change to it outside L{Storage.transaction}
is lost (and logged) when the reader syncs.

With a reactor that cannot take calls from threads (the unit tests'
C{MemoryReactorClock}, C{task.Clock}) the commit runs inline, so tests
stay deterministic; the threaded path is the same code with the commit
handed to the writer thread.
"""
from __future__ import annotations

import contextlib
import queue
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import transaction
import ZODB
import ZODB.Connection
from persistent import Persistent
from twisted.application.service import MultiService
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from ZODB.POSException import (ConflictError, InvalidObjectReference,
                                ReadOnlyHistoryError)
from ZODB.serialize import ObjectWriter
from ZODB.utils import z64
from zodbpickle import binary
from zope.interface import implementer

from appliance.store.generations import Domains, evolve_database
from appliance.store.interfaces import IStorage

#: How many times a transaction is retried after a ConflictError (8: with
#: two nodes on PostgreSQL a big batch was measured conflicting six times
#: running, on a different index each time).
RETRIES = 8
#: Seconds before a conflicted batch is re-run, at most, doubled at each
#: attempt (the wait itself is random up to that), so that two nodes
#: whose batches conflicted do not meet again at once.  0: re-run at once.
#: Off: with the wait, a node on PostgreSQL hung at its clean stop in the
#: two-node prepaid e2e test (its reader's poll blocked in the database
#: after a conflicted batch); not understood yet.
RETRY_JITTER = 0.0


#: Objects each connection keeps in memory.  ZODB's default (400) is far
#: too small for a node whose hot path touches accounts, DIDs and message
#: index buckets: every miss is a load from disk and an unpickle.
CACHE_SIZE = 200_000

#: Objects the writer's connection keeps between batches: the index
#: buckets a batch touches again (the newest ids, the busiest accounts).
#: A message is ghosted once its batch committed, so waiting messages
#: live on disk, not in memory.
WRITER_CACHE_SIZE = 10_000

#: Seconds between saves of a FileStorage's index (C{Data.fs.index}).
#: FileStorage writes it only when it closes or packs, so after a SIGKILL
#: the next start re-reads every transaction since the last clean stop
#: (or daily pack) to rebuild it: a start time that grows with the day's
#: traffic.  Saved at start and then every interval, a restart after a
#: kill reads at most that interval's commits.
INDEX_INTERVAL = 60.0

#: On a FileStorage, a batch of at most this many writes is committed on
#: the reactor thread, and fsynced there too while fsyncs are quick
#: (L{INLINE_FSYNC_MAX}); a bigger batch commits in the writer thread.
#: Handing each commit to the writer thread and hearing back from it cost
#: the node a quarter of its SMPP ingress (bench/RESULTS.md, 2026-12-04:
#: 2,804-3,192 submit_sm_resp/s before, 3,948-4,359 after).
INLINE_MAX = 250
#: While the moving average of fsync times (L{FSYNC_WEIGHT} to the last
#: one) is above this (seconds), fsyncs run in the writer thread, so a
#: slow disk holds the reactor for a commit or two, not at every commit;
#: they come back to the reactor once the average falls below it.
INLINE_FSYNC_MAX = 0.005
FSYNC_WEIGHT = 0.1
#: At most one warning about slow fsyncs per this many seconds.
FSYNC_WARN_INTERVAL = 60.0


def save_index(db: ZODB.DB) -> bool:
    """
    Save a FileStorage's index now (under its lock, so a commit in the
    writer thread waits), as its C{close()} would.

    @return: whether the database is a writable FileStorage (otherwise
        there is nothing to save).
    """
    storage = db.storage
    save = getattr(storage, "_save_index", None)
    lock = getattr(storage, "_lock", None)
    if save is None or lock is None or storage.isReadOnly():
        return False
    with lock:
        save()
    return True


def open_database(uri: str, data_dir: Path,
                  cache_size: int = CACHE_SIZE) -> ZODB.DB:
    """
    Open the database a storage URI names.

    @param uri: C{file:///abs/Data.fs}, a path (relative to C{data_dir}),
        C{zeo://host:port[?wait_timeout=s]}, C{postgresql://...}
        (RelStorage, the C{postgresql} extra) or C{memory:}.
    @param cache_size: objects each connection keeps in memory.
    @raise ValueError: unknown scheme, or RelStorage not installed.
    """
    parts = urlsplit(uri)
    if parts.scheme == "memory":
        return ZODB.DB(None, cache_size=cache_size)
    if parts.scheme in ("", "file"):
        path = Path(parts.path) if parts.scheme == "file" else Path(uri)
        if not path.is_absolute():
            path = data_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return ZODB.DB(_file_storage_class()(str(path)), pool_size=4,
                       cache_size=cache_size)
    if parts.scheme == "zeo":
        from ZEO.ClientStorage import ClientStorage
        query = parse_qs(parts.query)
        wait = float(query.get("wait_timeout", ["10"])[0])
        storage = ClientStorage((parts.hostname, parts.port),
                                wait_timeout=wait)
        return ZODB.DB(storage, cache_size=cache_size)
    if parts.scheme in ("postgresql", "postgres"):
        try:
            from relstorage.adapters.postgresql import PostgreSQLAdapter
            from relstorage.options import Options
            from relstorage.storage import RelStorage
        except ImportError:
            raise ValueError("postgresql:// needs the 'postgresql' extra "
                             "(RelStorage and psycopg2)") from None
        options = Options(keep_history=False)
        adapter = PostgreSQLAdapter(dsn=libpq_dsn(uri), options=options)
        return ZODB.DB(RelStorage(adapter, options=options),
                       cache_size=cache_size)
    raise ValueError(f"unknown storage scheme {parts.scheme!r}")


#: Set in the writer thread around its commit: FileStorage leaves the
#: fsync to L{_file_storage_class}'s C{sync_committed}.
_deferred_fsync = threading.local()
_FileStorageClass: Any = None
#: The ZODB methods this module overrides with an edited copy, and the
#: SHA-256 of the original's source (C{inspect.getsource}) each copy was
#: made from: ZODB 6.4.  A copy is right only for that code, so
#: C{tests/store/test_zodb_copies.py} fails when an upgrade changes one.
COPIED = {
    "FileStorage.store":
        "96d0ff9eb8137aa36b8639d3f1a02a1839e7f9391ba46e43e244b9afa9211d31",
    "FileStorage._finish_finish":
        "3c9d50ec0ddaba86507da36df869491ccec23aace625f470789e9cc3f0021b6e",
    "Connection._commit":
        "f23c4bb110ad601e5e334878fd70421e056ac4c014cd3f524a9bbb9c66908761",
    # Not copied whole: L{_ObjectWriter} answers two of its cases itself
    # with what the original returns for them.
    "ObjectWriter.persistent_id":
        "76ce72dd0f0c6bf9c226013d12bcffb0e30a5cca1f7aa5a95fdd8391d94d37e3",
}
#: Objects whose serial a FileStorage remembers per generation (two
#: generations: at most twice this many, some 100 bytes each).
TID_MEMORY = 50_000


def _file_storage_class() -> Any:
    """
    FileStorage whose batched commits fsync outside its locks.

    FileStorage fsyncs in C{tpc_finish} while it holds its file pool's
    write lock, so any load from another connection (the reactor reading
    an object the last batch invalidated) waits for that fsync.  Commits
    made by the writer thread (L{_deferred_fsync} set) only flush there;
    the writer then calls C{sync_committed} (an fsync of the same file,
    no lock held) before any caller hears of the commit, so every
    acknowledgement still follows its fsync.  Other commits (configuration
    transactions, generations, packs) fsync as FileStorage always does.
    """
    global _FileStorageClass
    if _FileStorageClass is not None:
        return _FileStorageClass
    import os
    from ZODB.FileStorage import FileStorage
    module = sys.modules["ZODB.FileStorage.FileStorage"]

    class WriterSyncedFileStorage(FileStorage):
        """See L{_file_storage_class}.

        It also remembers the serial (tid) of each object the last
        commits stored (two generations of L{TID_MEMORY} objects), so
        that re-storing one of those (a message's next state a batch
        after its accept, an index bucket every batch) does not read the
        old record's header back from the file to learn it, as
        C{FileStorage.store} does for each object rewritten.  Every
        commit's C{_finish_finish} (batches, configuration transactions,
        undo, restore) records its objects' new serial there, and a pack
        or an undo forgets them all, so a remembered serial is always the
        committed one; an object not remembered is read as before.  The
        same memory answers C{getTid} (the serial checks of the objects a
        commit only read).
        """

        _tids: dict | None = None
        _older_tids: dict | None = None

        def store(self, oid, oldserial, data, version, transaction):
            if self._is_read_only or transaction is not self._transaction:
                return super().store(oid, oldserial, data, version,
                                     transaction)
            tids = self._tids
            with self._lock:
                committed_tid = None if tids is None else (
                    tids.get(oid) or self._older_tids.get(oid))
                old = self._index_get(oid, 0) if committed_tid else 0
                if not old:
                    # Not remembered (or no longer stored): FileStorage's.
                    return super().store(oid, oldserial, data, version,
                                         transaction)
                # FileStorage.store (ZODB 5 and 6) with the old record's
                # serial from memory rather than from its header.
                if oid > self._oid:
                    self.set_max_oid(oid)
                if oldserial != committed_tid:
                    data = self.tryToResolveConflict(oid, committed_tid,
                                                     oldserial, data)
                    self._resolved.append(oid)
                pos = self._pos
                here = pos + self._tfile.tell() + self._thl
                self._tindex[oid] = here
                new = module.DataHeader(oid, self._tid, old, pos, 0,
                                        len(data))
                self._tfile.write(new.asString())
                self._tfile.write(data)
                if self._quota is not None and here > self._quota:
                    raise module.FileStorageQuotaError(
                        "The storage quota has been exceeded.")

        def _remember(self, tid: bytes) -> None:
            """Record the serial of each object this commit stored."""
            if self._undone:
                self._undone = False
                self._tids = self._older_tids = None
                return
            tids = self._tids
            if tids is None or len(tids) > TID_MEMORY:
                self._older_tids = tids if tids is not None else {}
                self._tids = tids = {}
            tids.update(dict.fromkeys(self._tindex, tid))

        def _finish_finish(self, tid: bytes) -> None:
            self._remember(tid)
            if not getattr(_deferred_fsync, "on", False):
                return super()._finish_finish(tid)
            # FileStorage._finish_finish (ZODB 5 and 6) without its fsync.
            self._file.flush()
            self._pos = self._nextpos
            self._index.update(self._tindex)
            self._ltid = tid
            self._blob_tpc_finish()

        def getTid(self, oid):
            # The committed serial of an object, asked at each commit for
            # every BTree node a batch only read (readCurrent: a bucket
            # another connection split meanwhile must conflict), which
            # FileStorage answers by reading the record's header from the
            # file under its lock: 6.6 % of the process in
            # bench/profiles/smpp-paced-half-rate.txt.  From memory when
            # remembered (the committed one, see the class).
            with self._lock:
                tids = self._tids
                if tids is not None:
                    tid = tids.get(oid) or self._older_tids.get(oid)
                    if tid is not None:
                        return tid
            return super().getTid(oid)

        def undo(self, *args: Any, **kwargs: Any) -> Any:
            # An undone creation has no serial (getTid raises POSKeyError)
            # yet its oid is stored: forget everything, as a pack does.
            try:
                return super().undo(*args, **kwargs)
            finally:
                with self._lock:
                    self._undone = True

        _undone = False

        def pack(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return super().pack(*args, **kwargs)
            finally:
                with self._lock:
                    self._tids = self._older_tids = None

        def sync_committed(self) -> None:
            """fsync what the writer's commit flushed (no lock held: a
            duplicate of the descriptor survives a pack's file swap)."""
            with self._lock:
                fd = os.dup(self._file.fileno())
            try:
                if module.fsync is not None:
                    module.fsync(fd)
            finally:
                os.close(fd)

    _FileStorageClass = WriterSyncedFileStorage
    return _FileStorageClass


#: Types never persistent: their objects are pickled by value.
_PLAIN = frozenset((int, str, bytes, float, bool, tuple, list, dict,
                    type(None)))
#: Class to whether its instances are referred to as (oid, class): a
#: Persistent subclass without __getnewargs__ (ZODB's persistent_id).
_SIMPLE_REFS: dict[type, bool] = {}


class _ObjectWriter(ObjectWriter):
    """
    ZODB's C{ObjectWriter} with a shorter C{persistent_id} for the two
    cases a batch pickles most: a value of a plain type (each key and
    value of an index bucket, each field of a message's state) and a
    reference to a persistent object this connection already stored (each
    message in the message tree's buckets); anything else (a new object,
    another database's, a persistent class, a weak reference) goes
    through ZODB's own.  The pickles are the same (tested); a bucket of
    60 messages pickles in about 150 us instead of 255.
    """

    def persistent_id(self, obj: Any, _plain: frozenset = _PLAIN,
                      _simple: dict = _SIMPLE_REFS) -> Any:
        klass = type(obj)
        if klass in _plain:
            return None
        simple = _simple.get(klass)
        if simple is None:
            simple = _simple[klass] = (
                issubclass(klass, Persistent)
                and not hasattr(klass, "__getnewargs__"))
        if simple:
            oid = obj._p_oid
            if oid is not None and obj._p_jar is self._jar:
                return binary(oid), klass
        return ObjectWriter.persistent_id(self, obj)


class _Connection(ZODB.Connection.Connection):
    """
    ZODB's connection, committing with one C{ObjectWriter} for all the
    objects a transaction changed: ZODB's C{Connection._commit} makes a
    new one (a C{BytesIO} and a C{Pickler}, some 11 us) for each changed
    object, and a batch changes one per message at each state after the
    accept.  The writer's memo is cleared for each object it pickles, so
    the pickles are the same.
    """

    def _commit(self, transaction: Any) -> None:
        """C{Connection._commit} of ZODB 5 and 6, sharing the writer."""
        if self.before is not None:
            raise ReadOnlyHistoryError()
        if self._import:
            self._importDuringCommit(transaction, *self._import)
            self._import = None
        self._added_during_commit = []
        writer = None
        for obj in self._registered_objects:
            oid = obj._p_oid
            assert oid
            if obj._p_jar is not self:
                raise InvalidObjectReference(obj, obj._p_jar)
            elif oid in self._added:
                assert obj._p_serial == z64
            elif oid in self._creating or not obj._p_changed:
                continue
            if writer is None:
                writer = _ObjectWriter(obj)
            else:
                writer._stack.append(obj)
            self._store_objects(writer, transaction)
        for obj in self._added_during_commit:
            if writer is None:
                writer = _ObjectWriter(obj)
            else:
                writer._stack.append(obj)
            self._store_objects(writer, transaction)
        self._added_during_commit = None


def _use_one_writer(db: ZODB.DB) -> None:
    """Open C{db}'s connections as L{_Connection}s (unless it has its
    own connection class)."""
    if db.klass is ZODB.Connection.Connection:
        db.klass = _Connection


def shared_uri(uri: str) -> bool:
    """@return: whether other nodes may write the database C{uri} names
    (ZEO, PostgreSQL), so a node must poll it for their changes."""
    return urlsplit(uri).scheme in ("zeo", "postgresql", "postgres")


def libpq_dsn(uri: str) -> str:
    """
    The libpq keyword DSN (C{host='h' port='5432' dbname='db' ...}) that a
    C{postgresql://user:password@host:port/db?sslmode=require} URI names.

    RelStorage appends C{ application_name='...'} to the DSN it is given,
    which only a keyword DSN survives: appended to a URI it becomes part
    of the database name.  User, password, host and database name are
    percent-decoded; a host that is a folder (C{%2Frun%2Fpostgresql}, or
    C{?host=/run/postgresql}) is a Unix socket.  Query parameters pass
    through as keywords.

    @raise ValueError: not a postgresql:// URI, or a bad port.
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URI: {uri!r}")
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"bad port {port!r} in {uri!r}")
    fields: list[tuple[str, str]] = []
    for key, value in (("host", unquote(host)), ("port", port),
                       ("dbname", unquote(parts.path.lstrip("/"))),
                       ("user", unquote(user))):
        if value:
            fields.append((key, value))
    if has_password:
        fields.append(("password", unquote(password)))
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        fields = [f for f in fields if f[0] != key]
        fields.append((key, value))
    return " ".join(f"{key}={_libpq_quote(value)}" for key, value in fields)


def _libpq_quote(value: str) -> str:
    """A libpq keyword value: single-quoted, backslash and quote escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


@implementer(IStorage)
class Storage(MultiService):
    """
    The database as a service.  Start it first and stop it last: it opens
    the database and brings it to the current generation in
    C{startService}, and in C{stopService} commits what is queued and
    closes the database.

    @ivar db: the open C{ZODB.DB}, or C{None} before start / after stop.
    @ivar generation: the database generation after start-up upgrades.
    @ivar commits: batched commits done (for statistics and tests).
    @ivar threaded: whether batched commits use the writer thread, for
        their fsync or wholly (C{False}: inline, for reactors that take
        no calls from threads).
    @ivar lost_writes: changes found on the reader's connection outside a
        transaction, dropped when it synced (a batch function that wrote
        through C{root()}; should stay 0).
    @ivar conflicts: commits that raised C{ConflictError} (another writer
        of a shared database changed an object this one changed, and the
        object's own resolution, if any, could not merge the two); each
        is re-run up to L{RETRIES} times.
    @ivar conflicts_failed: of those, commits that ran out of retries.
    @ivar conflict_classes: class name of the conflicting object to count.
    """

    name = "storage"
    log = Logger()
    #: Called with (writes, seconds) after each batched commit (metrics).
    batch_observer: Callable[[int, float], Any] | None = None

    def __init__(self, opener: Callable[[], ZODB.DB],
                 reactor: IReactorTime | None = None,
                 batch_max: int = 2000, batch_delay: float = 0.002,
                 pack_interval: float = 0.0, pack_days: float = 0.0,
                 generations: Domains = (), poll_interval: float = 0.0,
                 threaded: bool | None = None,
                 writer_cache_size: int = WRITER_CACHE_SIZE,
                 index_interval: float = INDEX_INTERVAL,
                 apply_slice: int = 250, inline_max: int = INLINE_MAX,
                 inline_fsync_max: float = INLINE_FSYNC_MAX):
        """
        @param opener: returns the C{ZODB.DB} to use (see L{open_database}).
        @param generations: the domains' upgrade steps, C{(domain, steps)}
            in dependency order (L{appliance.application.GENERATIONS}).
        @param reactor: provides C{callLater} and the thread pool for packs.
        @param batch_max: commit once this many writes are queued.
        @param batch_delay: seconds a queued write waits for companions;
            0 commits on the next reactor turn.
        @param pack_interval: seconds between packs, 0 for never.
        @param pack_days: history a pack keeps.
        @param poll_interval: seconds between polls of a database other
            nodes write too (ZEO, RelStorage; L{shared_uri}): each poll
            syncs the reactor thread's connection and, when the database
            moved on, calls the change listeners (note C{"sync"}) so the
            snapshots built from the configuration are rebuilt.  0 for
            never (a database of this node alone).
        @param threaded: commit batches in the writer thread; default:
            whenever the reactor takes calls from threads.
        @param writer_cache_size: objects the writer's connection keeps.
        @param index_interval: seconds between saves of a FileStorage's
            index (L{INDEX_INTERVAL}), the first at start; 0 for never.
        @param apply_slice: with the writer thread, a batch's functions
            applied per reactor turn.
        @param inline_max: with the writer thread on a FileStorage, a
            batch of at most this many writes is committed on the reactor
            thread (L{INLINE_MAX}); 0 commits every batch in the writer
            thread.
        @param inline_fsync_max: such a batch is fsynced on the reactor
            thread too, unless the moving average of fsync times is above
            this (seconds): then the writer thread fsyncs it.  0: always
            the writer thread.
        """
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as _reactor
            reactor = _reactor
        self._reactor = reactor
        self._opener = opener
        self.batch_max = batch_max
        self.batch_delay = batch_delay
        self.pack_days = pack_days
        self.db: ZODB.DB | None = None
        self.domains = tuple(generations)
        self.generations: dict[str, int] = {}
        self.commits = 0
        self.lost_writes = 0
        self.conflicts = 0
        self.conflicts_failed = 0
        self.conflict_classes: dict[str, int] = {}
        if threaded is None:
            threaded = IReactorFromThreads.providedBy(reactor)
        self.threaded = threaded
        self.writer_cache_size = writer_cache_size
        self.apply_slice = apply_slice
        self.inline_max = inline_max
        self.inline_fsync_max = inline_fsync_max
        #: The moving average of fsync times (seconds), wherever they ran.
        self.fsync_average = 0.0
        #: Times fsyncs moved to the writer thread (the average went above
        #: inline_fsync_max); whether they are there now.
        self.slow_fsyncs = 0
        self._fsync_in_thread = False
        self._fsync_warned = float("-inf")
        self._conn = None
        self._tm: transaction.TransactionManager | None = None
        self._wconn = None
        self._wtm: transaction.TransactionManager | None = None
        self._pool: WriterThread | None = None
        #: Held by the writer thread while it commits, and by the reactor
        #: around a configuration transaction, so neither commit sees the
        #: other's objects change under it.
        self._commit_lock = threading.Lock()
        self._pending: list[tuple[Callable, tuple, dict, defer.Deferred]] = []
        #: When the oldest queued write was queued (reactor seconds); for
        #: the writes left over by a full batch, when that batch started
        #: (they wait at most one batch_delay more than they had to).
        self._pending_since = 0.0
        #: The batch being committed (the writer's objects are off limits
        #: to the reactor meanwhile), or None.
        self._writing: list | None = None
        self._timer = None
        self._listeners: list[Callable[[str], Any]] = []
        self._in_transaction = False
        self.pack_interval = pack_interval
        self._packer: task.LoopingCall | None = None
        self.poll_interval = poll_interval
        self._poller: task.LoopingCall | None = None
        self._seen_tid: bytes | None = None
        self.index_interval = index_interval
        self._indexer: task.LoopingCall | None = None
        self._saving: defer.Deferred | None = None

    @classmethod
    def open_memory(cls, reactor: IReactorTime | None = None,
                    **kwargs: Any) -> "Storage":
        """
        An in-memory storage, already opened: for unit tests (which pass
        C{generations}; see L{appliance.application.memory_storage}).
        """
        storage = cls(lambda: ZODB.DB(None), reactor=reactor, **kwargs)
        storage.open()
        return storage

    # -- life cycle ----------------------------------------------------

    def open(self) -> None:
        """
        Open the database, apply pending generations (each in its own
        transaction) and open the reactor thread's connection.

        @raise appliance.store.generations.GenerationError: the database
            is newer than this code.
        """
        db = self._opener()
        try:
            changes = evolve_database(db, self.domains)
        except Exception:
            db.close()      # whatever refused the start: leave it closed
            raise
        for domain, (old, new) in changes.items():
            if old != new:
                self.log.info("database: {domain} upgraded from generation "
                              "{old} to {new}", domain=domain, old=old,
                              new=new)
        self.db = db
        self.generations = {d: new for d, (_, new) in changes.items()}
        _use_one_writer(db)
        self._tm = transaction.TransactionManager()
        self._conn = db.open(self._tm)
        self._wtm = transaction.TransactionManager()
        self._wconn = db.open(self._wtm)
        # The writer's own cache bound (the reader keeps the database's).
        self._wconn._cache.cache_size = self.writer_cache_size

    def startService(self) -> None:
        """
        Open the database before any other service starts, and schedule
        packs (the first one an interval from now).
        """
        if self.db is None:
            self.open()
        super().startService()
        if self.pack_interval > 0:
            self._packer = task.LoopingCall(self.pack)
            self._packer.clock = self._reactor
            self._packer.start(self.pack_interval, now=False)
        if self.index_interval > 0 and hasattr(self.db.storage,
                                               "_save_index"):
            self._indexer = task.LoopingCall(self.save_index)
            self._indexer.clock = self._reactor
            self._indexer.start(self.index_interval, now=True)
        if self.poll_interval > 0:
            self._seen_tid = self._last_tid()
            self._poller = task.LoopingCall(self.poll)
            self._poller.clock = self._reactor
            self._poller.start(self.poll_interval, now=False)

    @defer.inlineCallbacks
    def stopService(self):
        """
        Commit what is queued, stop the packer, close the database.
        """
        if self._packer is not None and self._packer.running:
            self._packer.stop()
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        if self._indexer is not None and self._indexer.running:
            self._indexer.stop()
        if self._saving is not None:
            yield self._saving      # close() saves it too: not both at once
        yield super().stopService()
        yield self.flush()
        self.close()

    def close(self) -> None:
        """Close the connections and the database (idempotent); a commit
        under way in the writer thread finishes first."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._pool is not None:
            self._pool.stop()       # joins the writer thread
            self._pool = None
        if self._wconn is not None:
            self._wtm.abort()
            self._wconn.close()
            self._wconn = None
        if self._conn is not None:
            self._tm.abort()
            self._conn.close()
            self._conn = None
        if self.db is not None:
            self.db.close()
            self.db = None
            self.log.info("database closed")

    # -- reading -------------------------------------------------------

    def _root(self) -> Any:
        if self._conn is None:
            raise RuntimeError("storage is not open")
        return self._conn.root()

    def root(self) -> Any:
        """@return: the C{ApplianceRoot}."""
        return self._root()["appliance"]

    def messages(self) -> Any:
        """@return: the C{MessageStore}."""
        return self._root()["messages"]

    def domain(self, key: str) -> Any:
        """
        @return: the root entry a domain owns (created by its generations),
            e.g. C{domain("smpp")}; the reactor thread's view.
        @raise KeyError: no such entry.
        """
        return self._root()[key]

    def domain_get(self, key: str, default: Any = None) -> Any:
        """@return: the root entry C{key}, or C{default} if absent (flags
        such as the provisioning mark)."""
        return self._root().get(key, default)

    def reader(self) -> "Reader":
        """
        A read-only view in a connection of its own: for output read over
        many reactor turns (a long export), which must neither see the
        batched commits of this connection mid-way nor fill its cache.

        @return: the L{Reader}; close it when done.
        @raise RuntimeError: the storage is not open.
        """
        if self.db is None:
            raise RuntimeError("storage is not open")
        return Reader(self.db.open(transaction.TransactionManager()))

    def sync(self) -> None:
        """
        Start a new read transaction, so changes other clients committed
        (ZEO, RelStorage) become visible.  Nothing queued is lost: queued
        writes are applied only when their batch commits.
        """
        if not self._in_transaction:
            self._tm.abort()

    def _last_tid(self) -> bytes:
        """The newest transaction the reactor thread's connection can see
        (RelStorage's instance knows it only once it polled)."""
        return self._conn._storage.lastTransaction()

    def poll(self) -> bool:
        """
        See what other nodes committed: sync the connection and, if the
        database moved on since the last poll, call the change listeners.
        Skipped while a transaction is open; writes queued for a batch
        are not applied yet, so the sync loses nothing.  Commits of this
        node count too: a listener rebuilds at most once a poll for them.

        @return: whether the listeners were called.
        """
        if self._conn is None or self._in_transaction:
            return False
        try:
            self.sync()
            tid = self._last_tid()
        except Exception:
            # Broad: a poll runs from a timer; a database error is logged
            # with its traceback and the next poll tries again.
            self.log.failure("database poll failed")
            return False
        if tid == self._seen_tid:
            return False
        self._seen_tid = tid
        self._changed("sync")
        return True

    # -- configuration transactions ------------------------------------

    @contextlib.contextmanager
    def transaction(self, user: str = "", note: str = "") -> Iterator[Any]:
        """
        One transaction: yields the root, commits on normal exit, aborts
        if the block raises.  Change listeners run after the commit.
        """
        if self._in_transaction:
            raise RuntimeError("transactions do not nest")
        self._in_transaction = True
        tm = self._tm
        # A batch commit under way finishes first (a few milliseconds), and
        # none starts until this one is done: the two connections never
        # race on the same objects (no ConflictError for the shell).
        self._commit_lock.acquire()
        try:
            tm.abort()      # start clean, and see others' commits
            txn = tm.get()
            if user:
                txn.user = user
            if note:
                txn.note(note)
            try:
                yield self.root()
            except BaseException:
                # Anything the block raised: nothing of it is committed.
                tm.abort()
                raise
            tm.commit()
        finally:
            self._commit_lock.release()
            self._in_transaction = False
        self._changed(note)

    def run(self, fn: Callable[..., Any], *args: Any, user: str = "",
            note: str = "", **kwargs: Any) -> Any:
        """
        C{fn(root, *args, **kwargs)} in a transaction, retried on
        C{ConflictError}.

        @return: what C{fn} returned.
        """
        for attempt in range(RETRIES + 1):
            try:
                with self.transaction(user=user, note=note) as root:
                    return fn(root, *args, **kwargs)
            except ConflictError as e:
                self._conflicted(e, attempt, note)
                if attempt == RETRIES:
                    raise

    def add_change_listener(self, listener: Callable[[str], Any]) -> None:
        """Call C{listener(note)} after each committed transaction."""
        self._listeners.append(listener)

    def remove_change_listener(self, listener: Callable[[str], Any]) -> None:
        """Stop calling C{listener}."""
        self._listeners.remove(listener)

    def _changed(self, note: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(note)
            except Exception:
                # Broad: a listener is another service's callback; the
                # others still reconcile after the commit.
                self.log.failure("change listener {listener!r} failed",
                                 listener=listener)

    # -- batched commits -----------------------------------------------

    def batch(self, fn: Callable[..., Any], *args: Any,
              **kwargs: Any) -> defer.Deferred:
        """
        Queue C{fn(root, *args, **kwargs)} for the next batched commit; it
        runs on the reactor thread and receives the writer's raw ZODB root
        mapping (C{root["appliance"]}, C{root["messages"]}), through which
        alone it reaches persistent objects.  Its result should be plain
        data (not a persistent object: that belongs to the writer).

        @return: a Deferred firing with C{fn}'s result once the commit is
            on disk, or failing with C{fn}'s exception (the others in the
            batch still commit) or with the commit's error.
        """
        if self._wconn is None:
            return defer.fail(RuntimeError("storage is not open"))
        d: defer.Deferred = defer.Deferred()
        if not self._pending:
            self._pending_since = self._reactor.seconds()
        self._pending.append((fn, args, kwargs, d))
        if self._writing is not None:
            # The batch under way takes what is queued once it is done.
            return d
        if len(self._pending) >= self.batch_max:
            # Full: commit on the next reactor turn rather than now, so a
            # caller that queues more from its callback never recurses.
            self._commit_soon()
        elif self._timer is None:
            self._timer = self._reactor.callLater(self.batch_delay,
                                                  self._commit_batch)
        return d

    def flush(self) -> defer.Deferred:
        """
        Commit what is queued now.

        @return: a Deferred that fires once nothing queued before this
            call is left uncommitted (at once without the writer thread).
        """
        if self._in_transaction:
            if self._pending:
                self._commit_soon()
            return defer.succeed(None)
        if not self.threaded:
            while self._pending and self._wconn is not None:
                self._commit_batch()
            return defer.succeed(None)
        if not self._pending and self._writing is None:
            return defer.succeed(None)
        # Batches commit in order: once this marker is on disk, so is all
        # that was queued before it.
        d = self.batch(_nothing)
        self._pending_since = float("-inf")   # no waiting behind a commit
        self._commit_batch()        # unless a commit is under way
        # A failed commit is logged ("batch commit failed") and fails each
        # write's own Deferred; flush only waits for it.
        return d.addErrback(lambda _: None)

    def _commit_soon(self) -> None:
        """Commit on the next reactor turn (replacing a later timer)."""
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._reactor.seconds():
                return
            self._timer.cancel()
        self._timer = self._reactor.callLater(0, self._commit_batch)

    @property
    def pending(self) -> int:
        """Writes queued or being committed, not yet on disk."""
        return len(self._pending) + len(self._writing or ())

    def _commit_batch(self) -> None:
        """Start committing the oldest queued writes, unless a batch is
        under way (its end starts the next one)."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self._writing is not None or self._wconn is None:
            return
        if not self._pending:
            return
        if self._in_transaction:
            # A configuration transaction is open (a listener queued a
            # write): commit right after it instead of inside it.
            self._commit_soon()
            return
        items = self._pending[:self.batch_max]
        del self._pending[:self.batch_max]
        if self._pending:
            self._pending_since = self._reactor.seconds()
        results: list[Any] = [None] * len(items)
        if self.threaded and len(items) > self.apply_slice:
            # A big batch is applied a slice per reactor turn, so calls
            # queued meanwhile wait for one slice, not for the whole batch.
            self._writing = items
            self._wtm.abort()
            self._apply_slices(items, results, 0, time.perf_counter())
            return
        self._start(items, results, list(range(len(items))), 0,
                    time.perf_counter())

    def _apply_slices(self, items: list, results: list, first: int,
                      started: float) -> None:
        """Apply C{items[first:first + apply_slice]} to the writer's open
        transaction; the last slice hands the commit over.  Should one
        raise, the good ones are re-applied at once on a fresh transaction
        (as L{_apply} does)."""
        if self._wconn is None:
            self._writing = None
            failure = Failure(RuntimeError("storage closed"))
            self._done(items, [failure] * len(items), started)
            return
        root = self._wconn.root()
        last = min(first + self.apply_slice, len(items))
        for i in range(first, last):
            fn, args, kwargs, _ = items[i]
            try:
                results[i] = fn(root, *args, **kwargs)
            except Exception:
                # Broad: a write that raises fails alone; its caller's
                # Deferred gets the Failure, the batch commits the rest.
                results[i] = Failure()
        if last < len(items):
            self._reactor.callLater(0, self._apply_slices, items, results,
                                    last, started)
            return
        self._writing = None
        live = [i for i in range(len(items))
                if not isinstance(results[i], Failure)]
        if len(live) < len(items):
            self._start(items, results, live, 0, started)
        else:
            self._hand_off(items, results, live, 0, started)

    def _start(self, items: list, results: list, live: list[int],
               attempt: int, started: float) -> None:
        """
        Apply the C{live} items to the writer's objects (on the reactor)
        and hand the commit to the writer thread (or run it inline).
        """
        live = self._apply(items, results, live)
        self._hand_off(items, results, live, attempt, started)

    def _hand_off(self, items: list, results: list, live: list[int],
                  attempt: int, started: float) -> None:
        """Commit the applied writer transaction in the writer thread (or
        inline), unless nothing is left to commit."""
        if not live:
            self._wtm.abort()
            self._done(items, results, started)
            return
        txn = self._wtm.get()
        txn.note(f"batch of {len(live)}")
        hooks = _take_after_commit_hooks(txn)
        self._writing = items
        if self.threaded:
            if self._pool is None:
                self._pool = WriterThread(self._reactor)
                self._pool.start()
            sync = self._sync_of_storage()
            if sync is not None and len(live) <= self.inline_max:
                self._commit_inline(sync, items, results, live, attempt,
                                    started, hooks)
                return
            d = self._pool.run(self._commit_writer)
        else:
            d = defer.maybeDeferred(self._commit_writer)
        d.addBoth(self._committed, items, results, live, attempt, started,
                  hooks)

    def _apply(self, items: list, results: list, live: list[int]
               ) -> list[int]:
        """
        Run the C{live} queued functions on a fresh writer transaction.  A
        function that raises is left out and the rest re-run (no
        half-applied function is ever committed).

        @return: the items still live (each other has a L{Failure}).
        """
        tm = self._wtm
        while True:
            tm.abort()          # see what the reader (and others) committed
            root = self._wconn.root()
            failed_one = False
            for i in live:
                fn, args, kwargs, _ = items[i]
                try:
                    results[i] = fn(root, *args, **kwargs)
                except Exception:
                    # Broad, as in _apply_slices: it fails alone.
                    results[i] = Failure()
                    failed_one = True
            if not failed_one:
                return live
            # Re-run only the good ones on a clean transaction, so no
            # half-applied function is committed.
            live = [i for i in live if not isinstance(results[i], Failure)]
            if not live:
                return live

    def _commit_inline(self, sync: Callable[[], None], items: list,
                       results: list, live: list[int], attempt: int,
                       started: float, hooks: list) -> None:
        """Commit a small batch on the reactor thread and fsync it there
        while fsyncs are quick (else in the writer thread); the callers
        hear of it on the next reactor turn, after that fsync, as they
        would from the writer thread."""
        done = self._committed
        try:
            self._commit_flushed()
        except Exception:
            # Broad, as a commit in the writer thread: _committed retries
            # a conflict and fails the batch otherwise.
            done(Failure(), items, results, live, attempt, started, hooks)
            return
        if self._fsyncs_in_thread():
            self._pool.run(lambda: self._timed(sync)).addBoth(
                done, items, results, live, attempt, started, hooks)
            return
        try:
            self._timed(sync)
        except Exception:
            # Broad: a failed fsync fails the batch, as in the thread.
            outcome: Any = Failure()
        else:
            outcome = None
        # Not now: _done starts the next batch, which would fire its
        # callers before these.
        self._reactor.callLater(0, done, outcome, items, results, live,
                                attempt, started, hooks)

    def _timed(self, sync: Callable[[], None]) -> None:
        """Run C{sync} (an fsync, on either thread), adding its time to
        L{fsync_average}."""
        began = time.perf_counter()
        try:
            sync()
        finally:
            self.fsync_average += FSYNC_WEIGHT * (
                time.perf_counter() - began - self.fsync_average)

    def _fsyncs_in_thread(self) -> bool:
        """Whether the next inline commit's fsync goes to the writer
        thread; logs (at most once per L{FSYNC_WARN_INTERVAL}) when slow
        fsyncs send them there."""
        slow = self.inline_fsync_max <= 0 or \
            self.fsync_average > self.inline_fsync_max
        if slow and not self._fsync_in_thread and self.inline_fsync_max > 0:
            self.slow_fsyncs += 1
            now = self._reactor.seconds()
            if now - self._fsync_warned >= FSYNC_WARN_INTERVAL:
                self._fsync_warned = now
                self.log.warn(
                    "fsyncs take {ms:.1f} ms on average: they run in the "
                    "writer thread until they are quicker than {max:.1f} "
                    "ms ({n} times so far)", ms=self.fsync_average * 1000,
                    max=self.inline_fsync_max * 1000, n=self.slow_fsyncs)
        self._fsync_in_thread = slow
        return slow

    def _commit_writer(self) -> None:
        """The writer's commit: in the writer thread (or inline); a
        FileStorage fsyncs it after releasing its locks, before this
        returns (L{_file_storage_class})."""
        self._commit_flushed()
        sync = self._sync_of_storage()
        if sync is not None:
            self._timed(sync)

    def _commit_flushed(self) -> None:
        """The writer's commit, written but (on a FileStorage) not yet
        fsynced: the caller runs L{_sync_of_storage}'s fsync before anyone
        hears of it."""
        with self._commit_lock:
            _deferred_fsync.on = True
            try:
                self._wtm.commit()
            except BaseException:
                # The commit failed: leave the writer clean, re-raise.
                self._wtm.abort()
                raise
            finally:
                _deferred_fsync.on = False

    def _sync_of_storage(self) -> Callable[[], None] | None:
        """The FileStorage's fsync of what a commit flushed, or C{None}
        for a storage that syncs its commits itself."""
        return getattr(self.db.storage, "sync_committed", None) \
            if self.db is not None else None

    def _committed(self, outcome: Any, items: list, results: list,
                   live: list[int], attempt: int, started: float,
                   hooks: list) -> None:
        """Back on the reactor once the writer's commit returned."""
        self._writing = None
        ok = not isinstance(outcome, Failure)
        if ok:
            self.commits += 1
        _run_hooks(hooks, ok)
        if not ok:
            if outcome.check(ConflictError):
                self._conflicted(outcome.value, attempt,
                                 f"batch of {len(live)}")
            if (outcome.check(ConflictError) and attempt < RETRIES
                    and self._wconn is not None):
                if not self.threaded or not RETRY_JITTER:
                    self._start(items, results, live, attempt + 1, started)
                    return
                # The writer stays ours meanwhile: queued writes wait.
                self._writing = items
                self._reactor.callLater(
                    random.uniform(0, min(0.5, RETRY_JITTER * 2 ** attempt)),
                    self._retry, items, results, live, attempt + 1, started)
                return
            if not outcome.check(ConflictError):
                self.log.failure("batch commit failed", outcome)
            for i in live:
                results[i] = outcome
        self._done(items, results, started)

    def _retry(self, items: list, results: list, live: list[int],
               attempt: int, started: float) -> None:
        """Re-run a conflicted batch on a fresh transaction (unless the
        storage closed meanwhile: then it fails)."""
        if self._wconn is None:
            self._writing = None
            failure = Failure(RuntimeError("storage closed"))
            self._done(items, [failure] * len(items), started)
            return
        self._start(items, results, live, attempt, started)

    def _conflicted(self, error: ConflictError, attempt: int,
                    note: str) -> None:
        """Count and log a commit that conflicted with another writer's
        (another node's, on a shared database): re-run up to L{RETRIES}
        times, then failed."""
        self.conflicts += 1
        name = _conflict_class(error)
        self.conflict_classes[name] = self.conflict_classes.get(name, 0) + 1
        oid = getattr(error, "oid", None)
        oid = "0x" + oid.hex().lstrip("0") if isinstance(oid, bytes) else "?"
        if attempt < RETRIES:
            self.log.warn("commit of {note} conflicted on {cls} (attempt "
                          "{n}, oid {oid}), retrying", note=note, cls=name,
                          n=attempt + 1, oid=oid)
        else:
            self.conflicts_failed += 1
            self.log.error("commit of {note} conflicted on {cls} {n} times "
                           "(oid {oid}): failed", note=note, cls=name,
                           n=attempt + 1, oid=oid)

    def _done(self, items: list, results: list, started: float) -> None:
        """Make the commit visible to the reactor's reads, start the next
        batch, then fire the callers' Deferreds."""
        self._sync_reader()
        if self.batch_observer is not None:
            self.batch_observer(len(items), time.perf_counter() - started)
        if self._pending and self._wconn is not None:
            if self.threaded:
                # Double buffering: the writer thread commits the writes
                # queued meanwhile while the reactor fires these, once the
                # oldest of them has waited batch_delay, as behind an idle
                # writer (or at once for a full batch).  Not sooner: a
                # commit costs the process about a millisecond whatever
                # its size, and committing each write or two as soon as
                # the last commit ended took a core at 800 paced submits a
                # second (bench/RESULTS.md, 2026-12-04).
                wait = self._pending_since + self.batch_delay - self._reactor.seconds()
                if wait <= 0 or len(self._pending) >= self.batch_max:
                    self._commit_batch()
                elif self._timer is None:
                    self._timer = self._reactor.callLater(wait, self._commit_batch)
            else:
                # More than one batch queued: the rest go on the next turn.
                self._commit_soon()
        for (fn, args, kwargs, d), result in zip(items, results):
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def _sync_reader(self) -> None:
        """Start a new read transaction on the reactor's connection, so it
        sees what the writer committed (not inside a transaction: that one
        began seeing everything and will commit or abort itself)."""
        if self._conn is None or self._in_transaction:
            return
        changed = self._conn._registered_objects
        if changed:
            self.lost_writes += len(changed)
            self.log.error(
                "{n} objects changed through root() outside a transaction "
                "are dropped (a batch function must write through the root "
                "it is given): {objects}", n=len(changed),
                objects=", ".join(repr(o) for o in changed[:5]))
        self._tm.abort()

    # -- maintenance ---------------------------------------------------

    def save_index(self) -> defer.Deferred:
        """
        Save the FileStorage index (in a thread when the storage commits
        in one, see L{save_index}); one save at a time.

        @return: a Deferred firing when it is written (never failing: a
            failure is logged).
        """
        if self._saving is not None:
            return self._saving
        if self.db is None:
            return defer.succeed(None)
        if self.threaded:
            d = threads.deferToThreadPool(self._reactor,
                                          self._reactor.getThreadPool(),
                                          save_index, self.db)
        else:
            d = defer.maybeDeferred(save_index, self.db)
        self._saving = d

        def done(result):
            self._saving = None
            return None
        d.addErrback(lambda f: self.log.failure("saving the index failed",
                                                f))
        d.addBoth(done)
        return d

    def pack(self) -> defer.Deferred:
        """
        Pack the database in a thread (FileStorage packs concurrently with
        commits), removing old revisions and deleted messages, so the file
        does not grow without bound.
        """
        if self.db is None:
            return defer.succeed(None)
        db, days = self.db, self.pack_days
        self.log.info("packing database (keeping {days} days)", days=days)
        d = threads.deferToThreadPool(self._reactor,
                                      self._reactor.getThreadPool(),
                                      db.pack, days=days)

        def done(result):
            self.log.info("pack done")
            return result

        def failed(f):
            self.log.failure("pack failed", f)
        d.addCallbacks(done, failed)
        return d


class WriterThread:
    """
    The storage's writer: one daemon thread taking one commit at a time
    from a C{SimpleQueue} (a C lock hand-off: Twisted's C{ThreadPool}
    hands each call over through C{queue.Queue}, whose C{Condition.notify}
    in Python, with the pool's team and context bookkeeping, was 3-13 %
    self of the reactor's GIL time in the HTTP and SMPP profiles), and
    firing its Deferred on the reactor with C{callFromThread}.  C{stop}
    joins it after the commits handed over before; should a process exit
    without closing its storage, a commit cut short is what FileStorage
    survives anyway (a crash).
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._work, daemon=True,
                                        name="storage-writer")
        self._thread.start()

    def run(self, fn: Callable[[], Any]) -> defer.Deferred:
        """
        @return: a Deferred firing (on the reactor) with C{fn()}'s result
            once the thread ran it, or failing with its exception.
        """
        d: defer.Deferred = defer.Deferred()
        self._jobs.put((fn, d))
        return d

    def _work(self) -> None:
        call = self._reactor.callFromThread
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, d = job
            try:
                result = fn()
            except BaseException:
                # Broad: whatever the commit raised fails its Deferred.
                call(d.errback, Failure())
            else:
                call(d.callback, result)

    def stop(self) -> None:
        """Let the commits handed over finish, then end the thread."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


def _conflict_class(error: ConflictError) -> str:
    """The class of the object a ConflictError names, or, if it names
    none, the error's own type in brackets (RelStorage's row-lock
    failures, for one)."""
    try:
        name = error.get_class_name()
    except AttributeError:      # BTreesConflictError sets no class_name
        name = None
    return name or f"[{type(error).__name__}]"


def _nothing(root: Any) -> None:
    """The marker L{Storage.flush} queues."""


def _take_after_commit_hooks(txn: Any) -> list:
    """
    Take the after-commit hooks the batch functions registered off the
    transaction, to run them on the reactor thread once the commit is
    back (they touch reactor state: reservations, queues to kick).
    """
    hooks = list(txn.getAfterCommitHooks())
    if hooks:
        # transaction keeps them in this list (transaction 2 to 5); there
        # is no public call to remove a hook.
        del txn._after_commit[:]
    return hooks


def _run_hooks(hooks: list, ok: bool) -> None:
    """Call after-commit hooks as transaction would: C{hook(ok, ...)}."""
    for hook, args, kwargs in hooks:
        try:
            hook(ok, *args, **kwargs)
        except Exception:
            # Broad: as transaction does, a hook's failure is logged and
            # the other hooks still run.
            Storage.log.failure("after-commit hook {hook!r} failed",
                                hook=hook)


class Reader:
    """
    A snapshot of the database in its own connection (L{Storage.reader}).
    """

    def __init__(self, conn: Any) -> None:
        """
        @param conn: a connection with its own transaction manager.
        """
        self._conn = conn

    def root(self) -> Any:
        """@return: the C{ApplianceRoot} as of the snapshot."""
        return self._conn.root()["appliance"]

    def release(self) -> None:
        """Drop the objects read so far from memory (they reload if needed)."""
        self._conn.cacheMinimize()

    def close(self) -> None:
        """End the snapshot and give the connection back (idempotent)."""
        if self._conn is not None:
            self._conn.transaction_manager.abort()
            self._conn.close()
            self._conn = None
