"""The message store's and billing's append-mostly trees have small
internal nodes, so the parent a bucket split rewrites is a small pickle
(appliance.messaging.store.INTERNAL_SIZE)."""
from __future__ import annotations


from BTrees.LLBTree import LLTreeSet
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree

from appliance.billing.records import PayerMonth, RecordTree
from appliance.messaging.store import (INTERNAL_SIZE, IdSet, MessageStore, MessageTree,
                                       RemoteIndex)


def widest(tree) -> int:
    """The most children an internal node of C{tree} has."""
    state = tree.__getstate__()
    if not state or len(state) < 2:       # empty, or one bucket inline
        return 0
    children = state[0][::2]
    return max([len(children)] + [widest(c) for c in children if type(c) is type(tree)])


def test_new_stores_use_the_small_trees():
    store = MessageStore()
    assert type(store.messages) is MessageTree
    assert type(store.waiting) is IdSet and type(store.unscheduled) is IdSet
    assert type(store._remote_index()) is RemoteIndex
    assert type(PayerMonth().records) is RecordTree


def test_a_split_rewrites_a_small_parent():
    """Appending 20,000 keys: the default tree's internal nodes hold
    hundreds of children (a pickle of several KB rewritten at each split),
    the small tree's a few dozen."""
    for small, default, key in ((MessageTree, LOBTree, lambda i: i),
                                (RemoteIndex, OOBTree, lambda i: ("sink", "%x" % i)),
                                (RecordTree, OOBTree, lambda i: (1_800_000_000_000, i))):
        a, b = small(), default()
        for i in range(20_000):
            a[key(i)] = b[key(i)] = i
        assert widest(a) <= INTERNAL_SIZE * 2 < 4 * INTERNAL_SIZE < widest(b)
        assert list(a.items()) == list(b.items())
    ids, plain = IdSet(), LLTreeSet()
    for i in range(50_000):
        ids.add(i)
        plain.add(i)
    assert widest(ids) <= INTERNAL_SIZE * 2 < 4 * INTERNAL_SIZE < widest(plain)


def test_stores_made_before_keep_working():
    """A store whose trees are the BTrees defaults (made before) works
    unchanged: the small trees are subclasses, nothing is converted."""
    store = MessageStore()
    store.messages, store.waiting = LOBTree(), LLTreeSet()
    store.remote_ids = OOBTree()
    assert type(store._remote_index()) is OOBTree
