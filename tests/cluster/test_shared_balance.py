"""
Prepaid reservations shared by two nodes on one database: each node holds
in memory what it authorized, so only the database can stop the two from
spending one balance twice.  Two cores with billing on two storages of one
in-memory database (two connections, as two processes), one clock.
"""
from decimal import Decimal

import ZODB
from twisted.internet.testing import MemoryReactorClock
from ZODB.MappingStorage import MappingStorage

from appliance.application import GENERATIONS
from appliance.billing.model import billing_of
from appliance.messaging.vocabulary import Refused
from appliance.store.database import Storage
from tests.billing.helpers import NOV_1, BillingNode, provision


def two_nodes(balance):
    clock = MemoryReactorClock()
    clock.advance(NOV_1 + 3600)
    db = ZODB.DB(MappingStorage())
    storages = [Storage(lambda: db, clock, batch_delay=0.001,
                        generations=GENERATIONS) for _ in range(2)]
    for s in storages:
        s.open()
    with storages[0].transaction(note="setup") as root:
        provision(root)
        terms = billing_of(root).terms("carriers", root.carriers["TATA"],
                                       create=True)
        terms.prepaid, terms.balance = True, Decimal(balance)
    storages[1].sync()
    return clock, db, [BillingNode(s, clock) for s in storages]


def outcomes(ds):
    ok, refused = 0, 0
    for d in ds:
        assert d.called
        if isinstance(getattr(d, "result", None), int):
            ok += 1
        else:
            d.result.trap(Refused)
            d.addErrback(lambda f: None)
            refused += 1
    return ok, refused


def test_two_nodes_cannot_overspend():
    """A prepaid carrier with 0.05 (five SMS at 0.01) submits five to
    each of two nodes before either commits: both authorize all five
    from the balance they read, but the database makes the second
    commit conflict, and re-run on the balance the first one left it
    refuses its five: five accepted in all, the balance ends at 0.00,
    never below."""
    clock, db, (a, b) = two_nodes("0.05")
    ds = [a.submit() for _ in range(5)] + [b.submit() for _ in range(5)]
    a.commit()
    b.commit()
    assert outcomes(ds) == (5, 5)
    terms = a.billing_root().carriers["TATA"]
    assert terms.balance == Decimal("0.00")
    stored = sum(a.storage.messages().counts().values())
    assert stored == 5
    # The refused node holds nothing back for them.
    assert a.billing.held("carrier:TATA") == b.billing.held("carrier:TATA") \
        == 0
    for node in (a, b):
        node.stop()
        node.storage.close()
    db.close()


def test_two_nodes_share_what_is_left():
    """With 0.07 left and five submits on each node at once, seven are
    accepted in all and the balance ends at 0.00."""
    clock, db, (a, b) = two_nodes("0.07")
    ds = [a.submit() for _ in range(5)] + [b.submit() for _ in range(5)]
    a.commit()
    b.commit()
    assert outcomes(ds)[0] == 7
    assert a.billing_root().carriers["TATA"].balance == Decimal("0.00")
    for node in (a, b):
        node.stop()
        node.storage.close()
    db.close()
