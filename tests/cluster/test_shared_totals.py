"""
Billing totals changed by two nodes at once merge in the database instead
of conflicting (L{appliance.billing.records.Totals}).
"""
from decimal import Decimal

import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from appliance.billing.records import Totals

KEY = ("964", "USD", "accepted")
DONE = ("964", "USD", "delivered")


def test_concurrent_changes_add_up(tmp_path):
    """Node A adds a record's total while node B moves another from
    accepted to delivered: both commit, and the totals hold both
    changes."""
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        tm0 = transaction.TransactionManager()
        c0 = db.open(tm0)
        c0.root()["t"] = t = Totals()
        t[KEY] = (2, 2, Decimal("0.02"))
        tm0.commit()
        tma, tmb = transaction.TransactionManager(), \
            transaction.TransactionManager()
        ta, tb = db.open(tma).root()["t"], db.open(tmb).root()["t"]
        count, units, amount = ta[KEY]
        ta[KEY] = (count + 1, units + 1, amount + Decimal("0.01"))
        count, units, amount = tb[KEY]
        tb[KEY] = (count - 1, units - 1, amount - Decimal("0.01"))
        tb[DONE] = (1, 1, Decimal("0.01"))
        tma.commit()
        tmb.commit()            # would raise ConflictError on an OOBTree
        tm0.abort()
        got = dict(c0.root()["t"].items())
        assert got == {KEY: (2, 2, Decimal("0.02")),
                       DONE: (1, 1, Decimal("0.01"))}
    finally:
        db.close()


def test_a_total_back_to_zero_leaves(tmp_path):
    """A key whose merged total comes to zero is dropped, as the
    single-writer code drops it."""
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        tm0 = transaction.TransactionManager()
        c0 = db.open(tm0)
        c0.root()["t"] = t = Totals()
        t[KEY] = (2, 2, Decimal("0.02"))
        tm0.commit()
        tma, tmb = transaction.TransactionManager(), \
            transaction.TransactionManager()
        ta, tb = db.open(tma).root()["t"], db.open(tmb).root()["t"]
        ta[KEY] = (1, 1, Decimal("0.01"))
        tb[KEY] = (1, 1, Decimal("0.01"))
        tma.commit()
        tmb.commit()
        tm0.abort()
        assert KEY not in c0.root()["t"]
    finally:
        db.close()


def test_two_nodes_waiting_sets_merge(tmp_path):
    """One node delivers an account's last waiting message while another
    accepts a new one for it: both commits go through (the waiting,
    unscheduled and per-account sets keep their sentinel, so neither
    change empties a bucket), and the sets hold just the new message."""
    from appliance.messaging.store import MessageStore
    from tests.messaging.test_store import NOW, _message
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    try:
        tm0 = transaction.TransactionManager()
        c0 = db.open(tm0)
        c0.root()["m"] = store = MessageStore()
        store.add(_message(1 << 32 | 1))
        tm0.commit()
        tma, tmb = transaction.TransactionManager(), \
            transaction.TransactionManager()
        sa, sb = db.open(tma).root()["m"], db.open(tmb).root()["m"]
        sa.set_state(sa.get(1 << 32 | 1), "delivered", now=NOW)
        sb.add(_message(2 << 32 | 1))
        tma.commit()
        tmb.commit()            # conflicted when the sets emptied
        tm0.abort()
        store = c0.root()["m"]
        new = 2 << 32 | 1
        assert list(store.waiting.keys(min=1)) == [new]
        assert store.unscheduled_ids() == [new]
        assert [m.id for m in store.waiting_for("111222333")] == [new]
    finally:
        db.close()
