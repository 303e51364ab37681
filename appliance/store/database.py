# -*- test-case-name: tests.store.test_database -*-
"""
The storage service: owns the ZODB database and gives the reactor thread
short synchronous transactions and a batched, durable commit path.

ZODB calls block.  Everything here runs on the reactor thread with one
connection and its own transaction manager, so a transaction is a plain
C{with} block that never spans a C{yield}.  High-rate writes go through
L{Storage.batch}: the functions queued within C{batch_delay} seconds (or
C{batch_max} of them) run in one transaction, one commit (FileStorage
fsyncs it), and only then does each caller's Deferred fire.  That is how a
protocol acknowledges a message only once it is on disk, at the price of
one fsync per batch instead of per message.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import transaction
import ZODB
from twisted.application.service import MultiService
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appliance.store.generations import Domains, evolve_database
from appliance.store.interfaces import IStorage

#: How many times a transaction is retried after a ConflictError.
RETRIES = 5


#: Objects each connection keeps in memory.  ZODB's default (400) is far
#: too small for a node whose hot path touches accounts, DIDs and message
#: index buckets: every miss is a load from disk and an unpickle.
CACHE_SIZE = 200_000


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
        from ZODB.FileStorage import FileStorage
        path = Path(parts.path) if parts.scheme == "file" else Path(uri)
        if not path.is_absolute():
            path = data_dir / path
        path.parent.mkdir(parents=True, exist_ok=True)
        return ZODB.DB(FileStorage(str(path)), pool_size=4,
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
    """

    name = "storage"
    log = Logger()
    #: Called with (writes, seconds) after each batched commit (metrics).
    batch_observer: Callable[[int, float], Any] | None = None

    def __init__(self, opener: Callable[[], ZODB.DB],
                 reactor: IReactorTime | None = None,
                 batch_max: int = 2000, batch_delay: float = 0.002,
                 pack_interval: float = 0.0, pack_days: float = 0.0,
                 generations: Domains = (), poll_interval: float = 0.0):
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
        self._conn = None
        self._tm: transaction.TransactionManager | None = None
        self._pending: list[tuple[Callable, tuple, dict, defer.Deferred]] = []
        self._timer = None
        self._listeners: list[Callable[[str], Any]] = []
        self._in_transaction = False
        self.pack_interval = pack_interval
        self._packer: task.LoopingCall | None = None
        self.poll_interval = poll_interval
        self._poller: task.LoopingCall | None = None
        self._seen_tid: bytes | None = None

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
            db.close()
            raise
        for domain, (old, new) in changes.items():
            if old != new:
                self.log.info("database: {domain} upgraded from generation "
                              "{old} to {new}", domain=domain, old=old,
                              new=new)
        self.db = db
        self.generations = {d: new for d, (_, new) in changes.items()}
        self._tm = transaction.TransactionManager()
        self._conn = db.open(self._tm)

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
        yield super().stopService()
        yield self.flush()
        self.close()

    def close(self) -> None:
        """Close the connection and the database (idempotent)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
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
                tm.abort()
                raise
            tm.commit()
        finally:
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
            except ConflictError:
                if attempt == RETRIES:
                    raise
                self.log.warn("conflict in {note!r}, retrying", note=note)

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
                self.log.failure("change listener {listener!r} failed",
                                 listener=listener)

    # -- batched commits -----------------------------------------------

    def batch(self, fn: Callable[..., Any], *args: Any,
              **kwargs: Any) -> defer.Deferred:
        """
        Queue C{fn(root, *args, **kwargs)} for the next batched commit; it
        receives the raw ZODB root mapping (C{root["appliance"]},
        C{root["messages"]}).

        @return: a Deferred firing with C{fn}'s result once the commit is
            on disk, or failing with C{fn}'s exception (the others in the
            batch still commit) or with the commit's error.
        """
        if self._conn is None:
            return defer.fail(RuntimeError("storage is not open"))
        d: defer.Deferred = defer.Deferred()
        self._pending.append((fn, args, kwargs, d))
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
            call is left uncommitted.
        """
        if self._in_transaction:
            if self._pending:
                self._commit_soon()
            return defer.succeed(None)
        while self._pending:
            self._commit_batch()
        return defer.succeed(None)

    def _commit_soon(self) -> None:
        """Commit on the next reactor turn (replacing a later timer)."""
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= self._reactor.seconds():
                return
            self._timer.cancel()
        self._timer = self._reactor.callLater(0, self._commit_batch)

    @property
    def pending(self) -> int:
        """Writes queued and not yet committed."""
        return len(self._pending)

    def _commit_batch(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        items = self._pending[:self.batch_max]
        del self._pending[:self.batch_max]
        if not items:
            return
        if self._pending:
            # More than one batch queued: the rest go on the next turn.
            self._commit_soon()
        if self._in_transaction:
            # A configuration transaction is open (a listener queued a
            # write): commit right after it instead of inside it.
            self._pending[:0] = items
            self._commit_soon()
            return
        started = time.perf_counter()
        results = self._apply(items)
        if self.batch_observer is not None:
            self.batch_observer(len(items), time.perf_counter() - started)
        for (fn, args, kwargs, d), result in zip(items, results):
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    def _apply(self, items: list) -> list:
        """
        Run the queued functions in one transaction and commit.  A function
        that raises is left out and the rest re-run (no half-applied
        function is ever committed); a commit that conflicts is retried.

        @return: one result or L{Failure} per item.
        """
        tm = self._tm
        results: list[Any] = [None] * len(items)
        live = list(range(len(items)))
        for attempt in range(RETRIES + 1):
            while True:
                tm.abort()
                root = self._root()
                failed_one = False
                for i in live:
                    fn, args, kwargs, _ = items[i]
                    try:
                        results[i] = fn(root, *args, **kwargs)
                    except Exception:
                        results[i] = Failure()
                        failed_one = True
                if not failed_one:
                    break
                # Re-run only the good ones on a clean transaction, so no
                # half-applied function is committed.
                live = [i for i in live
                        if not isinstance(results[i], Failure)]
                if not live:
                    tm.abort()
                    return results
            try:
                tm.get().note(f"batch of {len(live)}")
                tm.commit()
            except ConflictError:
                tm.abort()
                if attempt == RETRIES:
                    failure = Failure()
                    return [results[i] if isinstance(results[i], Failure)
                            else failure for i in range(len(items))]
                self.log.warn("batch commit conflicted, retrying")
                continue
            except Exception:
                tm.abort()
                failure = Failure()
                self.log.failure("batch commit failed", failure)
                return [results[i] if isinstance(results[i], Failure)
                        else failure for i in range(len(items))]
            self.commits += 1
            return results
        raise AssertionError("unreachable")

    # -- maintenance ---------------------------------------------------

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
