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
    assert len(store.due) == 2
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
    assert len(store.due) == 0
    store.set_state(store.get(2), "delivered", now=NOW)
    assert store.remove(2)
    assert sum(store.counts().values()) == 0
    assert store.oldest_waiting() is None
    assert len(store.messages) == 0 and len(store.by_account) == 0
    assert len(store.waiting) == 0


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
