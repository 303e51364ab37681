"""A database several nodes share: the PostgreSQL DSN and the poll that
shows each node the others' commits."""
import pytest
import ZODB
from ZODB.MappingStorage import MappingStorage
from twisted.internet import task

from appliance.application import GENERATIONS
from appliance.store.database import Storage, libpq_dsn, shared_uri


def put(root, key, value):
    root["test"] = {**root.get("test", {}), key: value}


def test_dsn_host_port_user_db():
    """A URI with user, host, port and database gives the four keywords."""
    assert libpq_dsn("postgresql://app@db.example:5433/appliance") == (
        "host='db.example' port='5433' dbname='appliance' user='app'")


def test_dsn_survives_relstorage_suffix():
    """RelStorage appends application_name to the DSN: as keywords the
    database name stays what the URI said."""
    psycopg2 = pytest.importorskip("psycopg2.extensions")
    dsn = libpq_dsn("postgres://app@h:5432/db") + " application_name='RS'"
    parsed = psycopg2.parse_dsn(dsn)
    assert parsed["dbname"] == "db"
    assert parsed["application_name"] == "RS"


def test_dsn_percent_encoded_password():
    """User and password are percent-decoded, and quotes and backslashes
    in them are escaped so libpq reads them back exactly."""
    psycopg2 = pytest.importorskip("psycopg2.extensions")
    uri = "postgresql://us%40er:p%40ss%3Aw%2Frd%27%5C%25@127.0.0.1:5432/db"
    dsn = libpq_dsn(uri)
    parsed = psycopg2.parse_dsn(dsn)
    assert parsed["user"] == "us@er"
    assert parsed["password"] == "p@ss:w/rd'\\%"
    assert parsed["host"] == "127.0.0.1"


def test_dsn_empty_password_kept():
    """user: (an empty password) still says password=''."""
    assert "password=''" in libpq_dsn("postgresql://u:@h/db")


def test_dsn_unix_socket_host():
    """A percent-encoded folder as host, or ?host=/folder, is a Unix socket
    folder; case is kept (not lowercased like a host name)."""
    assert libpq_dsn("postgresql://app@%2Fvar%2FRun%2Fpg/db") == (
        "host='/var/Run/pg' dbname='db' user='app'")
    assert libpq_dsn("postgresql:///db?host=/tmp/pg&user=app") == (
        "dbname='db' host='/tmp/pg' user='app'")


def test_dsn_query_parameters():
    """Query parameters (sslmode, connect_timeout) pass as keywords."""
    assert libpq_dsn(
        "postgresql://h/db?sslmode=require&connect_timeout=3") == (
        "host='h' dbname='db' sslmode='require' connect_timeout='3'")


def test_dsn_ipv6_host():
    """A bracketed IPv6 host loses its brackets."""
    assert libpq_dsn("postgresql://[::1]:5433/db") == (
        "host='::1' port='5433' dbname='db'")


@pytest.mark.parametrize("uri", ["postgresql://h:99999/db",
                                 "postgresql://h:x/db", "zeo://h:1"])
def test_dsn_bad(uri):
    """A bad port, or another scheme, is a ValueError."""
    with pytest.raises(ValueError):
        libpq_dsn(uri)


def test_shared_uri():
    """ZEO and PostgreSQL are shared; files and memory are not."""
    assert shared_uri("zeo://h:1")
    assert shared_uri("postgresql://h/db")
    assert not shared_uri("file:///x/Data.fs")
    assert not shared_uri("Data.fs")
    assert not shared_uri("memory:")


def commit(storage, key, value):
    """Write on C{storage} and commit now."""
    d = storage.batch(put, key, value)
    storage.flush()
    assert d.called


class Two:
    """Two storages on one database, as two nodes on one server."""

    def __init__(self):
        self.clock = task.Clock()
        db = ZODB.DB(MappingStorage())
        self.a = Storage(lambda: db, self.clock, generations=GENERATIONS,
                         poll_interval=0.5)
        self.b = Storage(lambda: db, self.clock, generations=GENERATIONS,
                         poll_interval=0.5)
        self.a.startService()
        self.b.startService()
        self.notes = []
        self.b.add_change_listener(self.notes.append)

    def close(self):
        if self.b._conn is not None:
            self.b._conn.close()
            self.b._conn = None
            self.b.db = None
        self.a.close()


@pytest.fixture
def two():
    t = Two()
    yield t
    t.close()


def test_poll_shows_other_commit(two):
    """A commit on A is seen on B, and B's listeners are called, within
    one poll interval; not before the poll."""
    commit(two.a, "carrier", 1)
    assert two.b._root().get("test") is None
    assert two.notes == []
    two.clock.advance(0.5)
    assert two.b._root()["test"] == {"carrier": 1}
    assert two.notes == ["sync"]


def test_poll_quiet_when_nothing_changed(two):
    """No commit anywhere: the polls call no listener."""
    two.clock.advance(0.5)
    two.clock.advance(0.5)
    assert two.notes == []


def test_poll_once_per_change(two):
    """One commit is reported once, however many polls follow."""
    commit(two.a, "x", 1)
    for _ in range(4):
        two.clock.advance(0.5)
    assert two.notes == ["sync"]


def test_poll_skipped_in_transaction(two):
    """A poll during an open transaction neither syncs nor reports."""
    commit(two.a, "x", 1)
    with two.b.transaction():
        assert two.b.poll() is False
    # The transaction itself started from a fresh view; the poll after
    # it still reports the change once.
    assert two.b.poll() is True


def test_poll_keeps_queued_writes(two):
    """Writes queued on B survive a poll and commit with the batch."""
    d = two.b.batch(put, "queued", 1)
    commit(two.a, "other", 2)
    assert two.b.poll() is True
    two.b.flush()
    assert d.called
    assert two.b._root()["test"] == {"queued": 1, "other": 2}


def test_no_poll_unshared():
    """poll_interval 0 (a node's own file): no poller runs."""
    clock = task.Clock()
    s = Storage(lambda: ZODB.DB(MappingStorage()), clock,
                generations=GENERATIONS)
    s.startService()
    try:
        assert s._poller is None
        assert clock.getDelayedCalls() == []
    finally:
        s.close()


def test_poller_stops_with_service(two):
    """Stopping the service stops the poll."""
    two.b.stopService()
    assert not two.b._poller.running
