"""Tests for appliance.messaging.store: messages, indexes, counters, ids."""
import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage
from zope.interface.verify import verifyObject

from appliance.messaging.interfaces import IMessage, IMessageIds, IMessageStore
from appliance.messaging.store import (
    IdsExhausted, Message, MessageIds, MessageStore,
)
from appliance.model.errors import ModelError

NOW = 1_800_000_000.0


@pytest.fixture
def store(conn):
    """A committed MessageStore in the in-memory database."""
    conn.root()["messages"] = MessageStore()
    conn.transaction_manager.commit()
    conn.transaction_manager.begin()
    return conn.root()["messages"]


def _message(id, account="111222333", recipient="964111222333", **kw):
    kw.setdefault("now", NOW)
    kw.setdefault("validity", NOW + 86400)
    return Message(id, "carrier", "Carrier1", "AsiaCell", recipient,
                   account=account, text="hello", **kw)


def test_interfaces(store):
    """Message, MessageStore and MessageIds provide their interfaces."""
    assert verifyObject(IMessageStore, store)
    assert verifyObject(IMessage, _message(1))
    assert verifyObject(IMessageIds, MessageIds(1))


def test_message_defaults_and_fields():
    """A new message is accepted, with zero attempts and the given times."""
    m = _message(7, parts=2, receipt=1, encoding="ucs2")
    assert (m.id, m.state, m.attempts, m.parts, m.receipt, m.encoding) == (
        7, "accepted", 0, 2, 1, "ucs2")
    assert m.created == m.updated == NOW and m.validity == NOW + 86400
    assert m.next_attempt is None and m.error is None and m.route is None
    assert Message.hops == 0 and Message.payload is None


@pytest.mark.parametrize("change", [
    {"id": 0}, {"id": True}, {"id": 1 << 63}, {"origin_kind": "smtp"},
    {"recipient": "+964"}, {"recipient": "1" * 16}, {"sender": ""},
    {"sender": "x" * 33}, {"encoding": "ebcdic"}, {"payload": "text"},
    {"parts": 0}, {"receipt": -1}, {"validity": NOW - 1}, {"text": b"bytes"},
])
def test_message_rejects(change):
    """Invalid message fields raise ModelError."""
    args = dict(id=1, origin_kind="carrier", origin="C", sender="S",
                recipient="964", now=NOW, validity=NOW + 1)
    args.update(change)
    with pytest.raises(ModelError):
        Message(**args)


def test_ids_unique_across_epochs(store):
    """Ids are epoch << 32 | seq, increasing, and distinct across epochs."""
    first = MessageIds(store.next_epoch())
    second = MessageIds(store.next_epoch())
    a = [first.next() for _ in range(3)]
    b = [second.next() for _ in range(3)]
    assert a == [(1 << 32) | 1, (1 << 32) | 2, (1 << 32) | 3]
    assert b[0] == (2 << 32) | 1 and min(b) > max(a)
    assert store.epoch == 2


def test_ids_exhausted():
    """After 2**32 - 1 ids the allocator raises IdsExhausted instead of wrapping."""
    ids = MessageIds(5)
    ids._seq = (1 << 32) - 2
    assert ids.next() == (5 << 32) | ((1 << 32) - 1)
    with pytest.raises(IdsExhausted):
        ids.next()


@pytest.mark.parametrize("epoch", [0, -1, 1 << 31, "1", True])
def test_ids_bad_epoch(epoch):
    """An epoch outside 1..2**31-1 raises ModelError (ids must fit 63 bits)."""
    with pytest.raises(ModelError):
        MessageIds(epoch)


def test_add_get_and_counts(store):
    """add() stores the message, indexes it as waiting and counts it."""
    m = _message(10)
    store.add(m)
    assert store.get(10) is m
    assert store.get(11) is None and store.get("10") is None and store.get(-1) is None
    assert store.counts() == {"accepted": 1, "delivering": 0, "delivered": 0,
                              "failed": 0, "expired": 0}
    assert list(store.waiting_for("111222333")) == [m]
    assert store.oldest_waiting() is m
    with pytest.raises(ModelError, match="already exists"):
        store.add(_message(10))
    done = _message(11)
    done.state = "delivered"
    with pytest.raises(ModelError, match="cannot be delivered"):
        store.add(done)
    with pytest.raises(ModelError):
        store.add("not a message")


def test_waiting_for_in_id_order(store):
    """waiting_for() yields only that account's waiting messages, in id order."""
    for id, account in [(30, "a"), (10, "a"), (20, "b"), (15, "a"), (5, None)]:
        store.add(_message(id, account=account))
    assert [m.id for m in store.waiting_for("a")] == [10, 15, 30]
    assert [m.id for m in store.waiting_for("b")] == [20]
    assert list(store.waiting_for("c")) == []
    store.set_state(store.get(15), "delivered", now=NOW + 1)
    assert [m.id for m in store.waiting_for("a")] == [10, 30]
    assert store.oldest_waiting().id == 5


def test_due_index(store):
    """A waiting state with next_attempt enters the due index; re-scheduling moves it."""
    for id in (1, 2, 3):
        store.add(_message(id))
    store.set_state(store.get(1), "delivering", next_attempt=NOW + 30, now=NOW)
    store.set_state(store.get(2), "delivering", next_attempt=NOW + 10, now=NOW)
    store.set_state(store.get(3), "delivering", now=NOW)
    assert [m.id for m in store.due_before(NOW + 60, 10)] == [2, 1]
    assert [m.id for m in store.due_before(NOW + 10, 10)] == [2]
    assert [m.id for m in store.due_before(NOW + 60, 1)] == [2]
    assert store.due_before(NOW, 10) == []
    store.set_state(store.get(2), "delivering", next_attempt=NOW + 90, now=NOW + 10)
    assert [m.id for m in store.due_before(NOW + 60, 10)] == [1]
    assert sum(len(ids) for ids in store.due_at.values()) == 2
    store.set_state(store.get(1), "failed", error="no route", now=NOW + 31)
    assert store.get(1).error == "no route" and store.get(1).next_attempt is None
    assert [m.id for m in store.due_before(NOW + 100, 10)] == [2]
    assert store.counts()["delivering"] == 2 and store.counts()["failed"] == 1


def test_set_state_refusals(store):
    """Unknown states, foreign messages, final messages and final+retry are refused."""
    m = _message(1)
    with pytest.raises(ModelError, match="not in the store"):
        store.set_state(m, "delivering", now=NOW)
    store.add(m)
    with pytest.raises(ModelError, match="state is one of"):
        store.set_state(m, "lost", now=NOW)
    with pytest.raises(ModelError, match="no next attempt"):
        store.set_state(m, "expired", next_attempt=NOW, now=NOW)
    store.set_state(m, "expired", now=NOW + 5)
    assert m.updated == NOW + 5
    with pytest.raises(ModelError, match="already expired"):
        store.set_state(m, "delivering", now=NOW)
    assert store.counts()["expired"] == 1 and store.counts()["accepted"] == 0


def test_set_account_reindexes(store):
    """set_account() moves a waiting message to the new account's index."""
    m = _message(1, account=None)
    store.add(m)
    store.set_account(m, "444")
    assert list(store.waiting_for("444")) == [m]
    store.set_account(m, "555")
    assert list(store.waiting_for("444")) == [] and list(store.waiting_for("555")) == [m]
    with pytest.raises(ModelError):
        store.set_account(_message(2), "444")


def test_remove_cleans_every_index(store):
    """remove() deletes the message from the tree, all indexes and its counter."""
    store.add(_message(1))
    store.add(_message(2))
    store.set_state(store.get(1), "delivering", next_attempt=NOW, now=NOW)
    assert store.remove(1) is True
    assert store.remove(1) is False
    assert store.get(1) is None
    assert [m.id for m in store.waiting_for("111222333")] == [2]
    assert len(store.due_at) == 0
    store.set_state(store.get(2), "delivered", now=NOW)
    assert store.remove(2)
    assert sum(store.counts().values()) == 0
    assert store.oldest_waiting() is None
    assert len(store.messages) == 0
    # Only the sentinel stays: the sets never empty (a change two
    # writers' commits could not merge), the account's set stays.
    assert list(store.account_ids["111222333"]) == [0]
    assert list(store.waiting) == [0] and list(store.unscheduled) == [0]
    assert store.unscheduled_ids() == []


def test_survives_filestorage_reopen(tmp_path):
    """Messages, indexes, counters and the epoch survive closing and reopening a FileStorage."""
    path = str(tmp_path / "Data.fs")
    tm = transaction.TransactionManager(explicit=True)
    db = ZODB.DB(FileStorage(path))
    conn = db.open(transaction_manager=tm)
    with tm:
        conn.root()["messages"] = MessageStore()
    with tm:
        store = conn.root()["messages"]
        ids = MessageIds(store.next_epoch())
    with tm:
        first, second = ids.next(), ids.next()
        store.add(_message(first))
        store.add(_message(second, account="444"))
        store.set_state(store.get(first), "delivering", next_attempt=NOW + 5, now=NOW)
        store.set_state(store.get(second), "delivered", now=NOW)
    conn.close()
    db.close()

    db = ZODB.DB(FileStorage(path))
    conn = db.open(transaction_manager=tm)
    with tm:
        store = conn.root()["messages"]
        assert store.epoch == 1 and store.next_epoch() == 2
        assert store.counts()["delivering"] == 1 and store.counts()["delivered"] == 1
        assert [m.id for m in store.due_before(NOW + 5, 10)] == [first]
        assert [m.id for m in store.waiting_for("111222333")] == [first]
        assert list(store.waiting_for("444")) == []
        assert store.get(first).text == "hello"
        assert store.oldest_waiting().id == first
    conn.close()
    db.close()


def test_compact_state_round_trip(tmp_path):
    """A message is stored as its packed fields plus the attributes not in
    FIELDS (a domain's own, persistent references included) and loads back
    equal in a fresh process's view of the file."""
    from persistent.mapping import PersistentMapping
    from decimal import Decimal
    from appliance.messaging.store import FIELDS
    path = str(tmp_path / "Data.fs")
    db = ZODB.DB(FileStorage(path))
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    m = _message(1 << 32 | 7)
    m.charged = Decimal("0.015")
    m.meta = (("dlr-url", "http://x/"),)
    m.remote = ("vendor", "abc")
    m.owner = "node-2"                      # not in FIELDS
    m.lease = PersistentMapping(until=5)    # a persistent reference
    conn.root()["m"] = m
    tm.commit()
    packed, extra = m.__getstate__()
    assert isinstance(packed, bytes) and set(extra) == {"owner", "lease"}
    db.close()
    db = ZODB.DB(FileStorage(path))
    try:
        again = db.open(transaction.TransactionManager()).root()["m"]
        for name in FIELDS:
            assert getattr(again, name) == getattr(m, name), name
        assert again.owner == "node-2" and again.lease["until"] == 5
    finally:
        db.close()


def test_dict_state_of_older_messages_loads():
    """A message pickled with the default (dict) state, as before the
    compact one, still loads; missing attributes take class defaults."""
    m = Message.__new__(Message)
    m.__setstate__({"id": 9, "state": "delivered", "sender": "A"})
    assert (m.id, m.state, m.sender, m.encoding, m.attempts) == \
        (9, "delivered", "A", "gsm7", 0)
    shorter = Message.__new__(Message)
    import pickle
    shorter.__setstate__((pickle.dumps((5, "carrier")), None))
    assert (shorter.id, shorter.origin_kind, shorter.state) == \
        (5, "carrier", "accepted")


def test_waiting_state_change_leaves_account_index_alone(store):
    """A change between waiting states (offline, a retry) moves only the
    due entry: the account and waiting indexes are not written."""
    m = _message(1)
    store.add(m)
    conn = store._p_jar
    conn.transaction_manager.commit()
    conn.transaction_manager.begin()
    store.set_state(m, "accepted", next_attempt=NOW + 60, now=NOW)
    changed = {type(o).__name__ for o in conn._registered_objects}
    assert store.account_ids["111222333"]._p_changed is False
    assert store.waiting._p_changed is False
    assert "Message" in changed
    assert [x.id for x in store.due_before(NOW + 60, 10)] == [1]
    assert store.due_before(NOW + 59.5, 10) == []


def test_generation_2_rebuilds_the_indexes(conn):
    """Messaging generation 2 builds the id-set indexes from the tuple
    indexes of generation 1 and drops those."""
    from BTrees.OOBTree import OOTreeSet
    from appliance.messaging.generations import evolve2
    store = MessageStore()
    conn.root()["messages"] = store
    for id, account, due in ((1, "a", NOW + 30.5), (2, "a", None),
                             (3, "b", NOW + 10)):
        m = _message(id, account=account)
        m.next_attempt = due
        store.messages[id] = m
        store.waiting.add(id)
    store.account_ids = store.due_at = None
    store.by_account = OOTreeSet([("a", 1), ("a", 2), ("b", 3)])
    store.due = OOTreeSet([(int((NOW + 30.5) * 1000), 1),
                           (int((NOW + 10) * 1000), 3)])
    evolve2(conn.root())
    evolve2(conn.root())                    # idempotent
    assert store.by_account is None and store.due is None
    assert [m.id for m in store.waiting_for("a")] == [1, 2]
    assert [m.id for m in store.due_before(NOW + 31, 10)] == [3, 1]
    assert [m.id for m in store.due_before(NOW + 30, 10)] == [3]


def test_unscheduled_index(store):
    """unscheduled_ids() lists, in slices, the waiting messages without a
    next attempt: a scheduled, final or removed message leaves it."""
    for id in (1, 2, 3, 4):
        store.add(_message(id))
    assert store.unscheduled_ids() == [1, 2, 3, 4]
    assert store.unscheduled_ids(after=1, limit=2) == [2, 3]
    store.set_state(store.get(1), "accepted", next_attempt=NOW + 60, now=NOW)
    store.set_state(store.get(2), "delivered", now=NOW)
    store.remove(3)
    assert store.unscheduled_ids() == [4]
    store.set_state(store.get(1), "delivering", now=NOW)
    assert store.unscheduled_ids() == [1, 4]
