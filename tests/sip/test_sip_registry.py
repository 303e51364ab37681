"""
Tests for the registration store: compact bindings, write-behind through
batched commits, one expiry heap, the lookup across nodes of one
database, the claim of bindings written before nodes were recorded, and
the account snapshot the digest path reads.
"""
from __future__ import annotations

import pickle
import sys

import pytest
import ZODB
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from appliance.application import GENERATIONS, memory_storage
from appliance.sip.auth import SERIAL_KEY, AccountBook
from appliance.sip.bindings import Binding, from_record
from appliance.sip.registrar import ROOT_KEY, TREE_KEY, BindingStore, aor_user
from appliance.store.database import Storage

try:
    from tests.sip.sipbench import DOMAIN, Bench, digest_response, populate
except ImportError:  # rootdir-relative import mode
    from sipbench import DOMAIN, Bench, digest_response, populate  # type: ignore[no-redef]


def binding(contact="sip:1111@198.51.100.7:40000", expires_at=1000.0, transport="UDP",
            source=("198.51.100.7", 40000), node="a", **kw) -> Binding:
    return Binding(contact, None, None, expires_at, transport, source, node=node, **kw)


@pytest.fixture
def clock():
    c = MemoryReactorClock()
    c.advance(100)
    return c


@pytest.fixture
def storage(clock):
    s = memory_storage(reactor=clock)
    yield s
    s.close()


def two_nodes(clock):
    """Two storages on one database, as two nodes on one PostgreSQL."""
    db = ZODB.DB(None)
    a = Storage(lambda: db, clock, generations=GENERATIONS)
    b = Storage(lambda: db, clock, generations=GENERATIONS)
    a.open()
    b.open()
    return db, a, b


def test_binding_is_slotted_and_small():
    """A binding has no per-instance dict: its fields live in slots, about
    120 bytes besides its strings (the dataclass it replaced carried a
    dict of its own, several hundred bytes)."""
    b = binding()
    assert not hasattr(b, "__dict__")
    assert sys.getsizeof(b) <= 136
    with pytest.raises(AttributeError):
        b.contact = "sip:x@y"  # type: ignore[misc]


def test_record_round_trip():
    """The record form an earlier version wrote (a plain tuple without the
    node, which the key carries) reads back, with the node, as an equal
    binding whose repeated texts are interned; a slotted binding pickles
    and unpickles equal."""
    b = binding(user_agent="Zoiper", call_id="c1", cseq=7, destination=("192.0.2.1", 5060),
                transport="TCP")
    assert pickle.loads(pickle.dumps(b, protocol=3)) == b
    record = b.record()
    assert type(record) is tuple and b"appliance" not in pickle.dumps(record)
    again = from_record(pickle.loads(pickle.dumps(record)), "a")
    assert again == b
    assert again.user_agent is sys.intern("Zoiper")
    with pytest.raises(ValueError):
        from_record(("too", "short"))


def old_pickle(state: dict, monkeypatch) -> bytes:
    """The bytes the earlier, unslotted dataclass pickled to (protocol 3,
    as ZODB writes): the class reference and the instance's __dict__."""
    import dataclasses
    import appliance.sip.bindings as module

    @dataclasses.dataclass(frozen=True)
    class Binding:  # noqa: F811 - the old class, under its own name
        contact: str
        instance: str | None
        reg_id: int | None
        expires_at: float
        transport: str
        source: tuple
        user_agent: str = ""
        call_id: str = ""
        cseq: int = 0
    Binding.__module__, Binding.__qualname__ = module.__name__, "Binding"
    with monkeypatch.context() as m:
        m.setattr(module, "Binding", Binding)
        return pickle.dumps(Binding(**state), protocol=3)


def test_old_pickles_of_bindings_still_load(monkeypatch):
    """A binding pickled by the earlier dataclass (its __dict__ as state,
    without destination or node) unpickles into the slotted class, the
    missing fields at their defaults."""
    state = {"contact": "sip:a@10.0.0.1", "instance": None, "reg_id": None,
             "expires_at": 10.0, "transport": "UDP", "source": ("10.0.0.1", 5060),
             "user_agent": "", "call_id": "x", "cseq": 3}
    old = pickle.loads(old_pickle(state, monkeypatch))
    assert isinstance(old, Binding)
    assert old.contact == "sip:a@10.0.0.1" and old.cseq == 3
    assert old.destination is None and old.node == ""
    assert old.target == ("10.0.0.1", 5060)
    assert from_record(old, "a").node == "a"


def test_put_is_written_behind_in_one_batch(clock, storage):
    """put() changes memory at once; the database gets every account
    changed since the last commit in one batched write (not one per
    change), keyed by (username, node)."""
    store = BindingStore(storage, clock, node="a")
    for i in range(50):
        store.put(f"u{i}", (binding(contact=f"sip:u{i}@h"),))
    store.put("u0", (binding(contact="sip:u0@other"),))
    assert store.get("u0")[0].contact == "sip:u0@other"
    assert store.dirty == 50 and storage.pending == 1
    assert storage.domain(TREE_KEY).get(("u0", "a")) is None
    clock.advance(0.01)
    tree = storage.domain(TREE_KEY)
    assert len(tree) == 50 and store.dirty == 0 and store.writes == 1
    assert tree[("u0", "a")] == store.get("u0")
    store.put("u0", ())
    clock.advance(0.01)
    assert ("u0", "a") not in tree and len(tree) == 49


def test_failed_write_is_retried(clock, storage):
    """A write-behind whose commit fails keeps the accounts dirty and is
    tried again after retry_delay; the retry commits the bindings as they
    are by then."""
    store = BindingStore(storage, clock, node="a", retry_delay=2)
    real = storage.batch
    calls = []

    def failing(fn, *args):
        calls.append(fn)
        if len(calls) == 1:
            return defer.fail(RuntimeError("database down"))
        return real(fn, *args)
    storage.batch = failing
    store.put("1111", (binding(),))
    assert store.dirty == 1 and len(calls) == 1
    store.put("1111", (binding(contact="sip:1111@later"),))
    clock.advance(1)
    assert len(calls) == 1
    clock.advance(1.01)
    clock.advance(0.01)
    assert len(calls) == 2 and store.dirty == 0
    assert storage.domain(TREE_KEY)[("1111", "a")][0].contact == "sip:1111@later"


def test_stop_queues_what_is_dirty_for_the_storage_to_commit(clock, storage):
    """Stopping cancels a pending retry and queues the dirty accounts, so
    the storage's final flush writes them."""
    store = BindingStore(storage, clock, node="a")
    store.put("1111", (binding(),))
    store.stop()
    storage.flush()
    assert ("1111", "a") in storage.domain(TREE_KEY)
    assert [c for c in clock.getDelayedCalls() if c.active()] == []


def test_one_heap_entry_per_account_across_refreshes(clock, storage):
    """Refreshing a registration many times does not grow the expiry heap
    (an entry is pushed only when the account's next lapse comes
    earlier), and the sweep still removes it on time."""
    store = BindingStore(storage, clock, node="a")
    for i in range(200):
        store.put("1111", (binding(expires_at=clock.seconds() + 60 + i),))
    assert len(store._heap) == 1
    clock.advance(61)
    assert store.sweep() == []  # its first due time passed, its binding did not
    assert len(store._heap) == 1 and store.get("1111")
    clock.advance(200)
    assert store.sweep() == ["1111"] and store.get("1111") == ()


def test_drop_flow_touches_only_that_connection(clock, storage):
    """Closing a TCP connection removes the bindings learnt over it,
    found through the flow index, and no others."""
    store = BindingStore(storage, clock, node="a")
    store.put("1111", (binding(transport="TCP", source=("192.0.2.1", 1)),
                       binding(contact="sip:1111@u")))
    store.put("2222", (binding(transport="TCP", source=("192.0.2.2", 2)),))
    assert store.drop_flow("TCP", ("192.0.2.1", 1)) == ["1111"]
    assert [b.contact for b in store.get("1111")] == ["sip:1111@u"]
    assert store.drop_flow("TCP", ("192.0.2.1", 1)) == []
    assert len(store.get("2222")) == 1


def test_lookup_finds_other_nodes_bindings(clock):
    """Two nodes on one database: node B's registration, once written
    behind, is found by node A's lookup (after A's storage saw the
    database move), with node 'b'; A's own come first and from memory;
    lapsed ones are not returned; an address of record works as well as
    a username; holders() names the nodes, the latest registration's
    first."""
    db, sa, sb = two_nodes(clock)
    a = BindingStore(sa, clock, node="a")
    b = BindingStore(sb, clock, node="b")
    try:
        b.put("1111", (binding(node="b", expires_at=clock.seconds() + 60),))
        a.put("1111", (binding(contact="sip:1111@a", expires_at=clock.seconds() + 60),))
        b.put("2222", (binding(node="b", expires_at=clock.seconds() + 5),))
        clock.advance(0.01)
        assert a.lookup("1111")[0].node == "a"
        sa.poll()
        found = a.lookup(f"sip:1111@{DOMAIN}")
        assert [(x.node, x.contact) for x in found] == [
            ("a", "sip:1111@a"), ("b", "sip:1111@198.51.100.7:40000")]
        sb.poll()
        assert [x.node for x in b.lookup("<sip:1111@x>")] == ["b", "a"]
        assert [x.node for x in a.lookup("2222")] == ["b"]
        assert a.holders("1111") == ("a", "b") and b.holders("1111") == ("b", "a")
        a.put("1111", (binding(contact="sip:1111@a", expires_at=clock.seconds() + 30),))
        assert a.holders("1111") == ("b", "a")  # B's lapses last: the more recent
        assert a.holders("2222") == ("b",) and a.holders("3333") == ()
        clock.advance(6)
        assert a.lookup("2222") == ()
        assert [u for u, _ in a.everywhere()] == ["1111", "1111"]
    finally:
        sa.close()
        sb.close()
        db.close()


def test_load_reads_only_this_nodes_bindings(clock):
    """After a restart a node loads its own bindings from the database,
    not the other nodes' (those stay found by lookup); it keeps the very
    tuple the object cache holds, and rewrites the record form of an
    earlier version."""
    db, sa, sb = two_nodes(clock)
    try:
        BindingStore(sa, clock, node="a").put("1111", (binding(expires_at=500.0),))
        BindingStore(sb, clock, node="b").put("2222", (binding(node="b", expires_at=500.0),))
        clock.advance(0.01)
        sa.poll()
        with sa.transaction() as _:
            sa.domain(TREE_KEY)[("3333", "a")] = (binding(expires_at=500.0).record(),)
        again = BindingStore(sa, clock, node="a")
        assert again.load() == 2
        assert again.get("1111")[0].node == "a" and again.get("2222") == ()
        assert again.get("1111") is sa.domain(TREE_KEY)[("1111", "a")]
        assert again.get("3333")[0].node == "a" and again.dirty == 1
        clock.advance(0.01)
        assert type(sa.domain(TREE_KEY)[("3333", "a")][0]) is Binding
        assert [x.node for x in again.lookup("2222")] == ["b"]
    finally:
        sa.close()
        sb.close()
        db.close()


def test_legacy_bindings_are_claimed(clock, storage):
    """Bindings of a database written before nodes were recorded
    (root["registrations"], username to Binding objects) are loaded by the
    first node, rewritten under its name and removed from the old tree."""
    with storage.transaction() as _:
        storage.domain(ROOT_KEY)["1111"] = (Binding("sip:1111@h", None, None, 500.0, "UDP",
                                                    ("192.0.2.1", 5060)),)
        storage.domain(ROOT_KEY)["2222"] = (Binding("sip:2222@h", None, None, 50.0, "UDP",
                                                    ("192.0.2.1", 5060)),)
    store = BindingStore(storage, clock, node="a")
    assert store.load() == 1  # 2222's lapsed
    assert store.get("1111")[0].node == "a"
    clock.advance(0.01)
    assert len(storage.domain(ROOT_KEY)) == 0
    assert list(storage.domain(TREE_KEY).keys()) == [("1111", "a")]


def test_aor_user():
    """A username, a sip/sips/tel URI, with or without brackets and
    parameters, names its user."""
    assert aor_user("1111") == "1111"
    assert aor_user("sip:1111@example.net") == "1111"
    assert aor_user("<sips:1111@example.net;transport=tls>") == "1111"
    assert aor_user("tel:+9647501111111") == "+9647501111111"


# -- the account snapshot ------------------------------------------------


def test_register_and_message_touch_no_persistent_object(bench, monkeypatch):
    """Once an account is in the snapshot, its REGISTERs (challenge and
    credentials) and MESSAGEs read nothing from the storage, not even
    through the snapshot's reader: the credentials, DIDs and numbering
    plan come from the snapshot's dict."""
    bench.register()  # warm: 1111 read once into the snapshot
    reads = bench.service.accounts.reads
    touched = []
    for name in ("root", "domain", "domain_get", "messages", "reader"):
        real = getattr(bench.storage, name)
        monkeypatch.setattr(bench.storage, name,
                            lambda *a, _real=real, _name=name: touched.append(_name) or _real(*a))
    ok = bench.register(extra=[], call_id="reg-2")
    assert ok.status == 200
    r = bench.register(user="1111", call_id="reg-3")
    assert r.status == 200
    uri = f"sip:2222@{DOMAIN}"
    first = bench.udp(bench.request("MESSAGE", uri, ["Content-Type: text/plain"], body=b"hi",
                                    to=f"<{uri}>"))[-1]
    assert first.status == 407
    auth = digest_response(first.headers.get("proxy-authenticate"), "MESSAGE", uri,
                           "1111", "secret")
    bench.udp(bench.request("MESSAGE", uri, ["Content-Type: text/plain",
                                             f"Proxy-Authorization: {auth}"],
                            body=b"hi", to=f"<{uri}>"), settle=False)
    assert [s.recipient for s, _ in bench.core.submitted] == ["2222"]
    assert touched == [] and bench.service.accounts.reads == reads


def test_snapshot_follows_configuration_commits(bench):
    """A password change or a disabled account counts for the very next
    REGISTER (the commit marks the snapshot stale, the next read starts a
    new one), several commits cost one new snapshot, and each account is
    read once per snapshot, not once per request."""
    assert bench.register().status == 200
    built = bench.service.accounts.rebuilds
    with bench.storage.transaction(user="test") as root:
        root.accounts["1111"].set_password("changed", DOMAIN)
    with bench.storage.transaction(user="test") as root:
        root.accounts["2222"].enabled = False
    assert bench.register(call_id="r2").status == 403
    assert bench.register(password="changed", call_id="r3").status == 200
    assert bench.register(user="2222", call_id="r4").status == 403
    assert bench.service.accounts.rebuilds == built + 1
    reads = bench.service.accounts.reads
    for n in range(5):
        assert bench.register(password="changed", call_id=f"again{n}").status == 200
    assert bench.service.accounts.reads == reads


def test_configuration_serial_tells_other_nodes(clock):
    """A configuration commit on node A bumps the serial in the database;
    node B's snapshot is rebuilt when its poll shows the serial moved, and
    not for a poll that shows only other writes (registrations)."""
    db, sa, sb = two_nodes(clock)
    populate(sa)
    book_a, book_b = AccountBook(sa), AccountBook(sb)
    book_a.start()
    book_b.start()
    try:
        assert book_b.get("1111").enabled and book_b.rebuilds == 1
        assert book_b.get("nobody") is None and len(book_b) == 1
        BindingStore(sa, clock, node="a").put("1111", (binding(),))
        clock.advance(0.01)
        sb.poll()
        assert book_b.get("1111").enabled and book_b.rebuilds == 1
        with sa.transaction(user="test") as root:
            root.accounts["1111"].enabled = False
        clock.advance(0.01)  # the serial's bump is a batched write
        assert sa.domain(SERIAL_KEY)() == 1
        sb.poll()
        assert not book_b.get("1111").enabled and book_b.rebuilds == 2
    finally:
        book_a.stop()
        book_b.stop()
        sa.close()
        sb.close()
        db.close()
