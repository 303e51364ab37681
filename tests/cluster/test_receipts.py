"""
Receipts owed to carriers across two nodes on one database
(L{appliance.cluster.receipts}): each node's receipt courier, fake
carrier sessions, the two-node set-up of L{tests.cluster.test_service}.
"""
from types import SimpleNamespace

import pytest
from twisted.internet import defer
from zope.interface.verify import verifyObject

from appliance.cluster.interfaces import IReceiptPlacement
from appliance.cluster.model import KEY
from appliance.smpp.courier import ReceiptCourier
from tests.cluster.test_service import LEASE, Cluster

CARRIER = "C1"


class Session:
    """A carrier's receiving bind: records each deliver_sm, answered by
    the test."""

    def __init__(self):
        self.sent = []
        self.answers = []

    def can_deliver(self):
        return True

    def send_request(self, command, build):
        self.sent.append(build(len(self.sent) + 1))
        d = defer.Deferred()
        self.answers.append(d)
        return d

    def answer_all(self, status=0):
        for d in self.answers:
            if not d.called:
                d.callback(status)


class Binds:
    """The sessions of one node, by carrier."""

    def __init__(self):
        self.by_carrier = {}

    def receivers(self, carrier):
        return self.by_carrier.get(carrier, [])

    def receiving(self):
        return [c for c, s in self.by_carrier.items() if s]

    def bind(self, carrier=CARRIER):
        session = Session()
        self.by_carrier.setdefault(carrier, []).append(session)
        return session


@pytest.fixture
def two():
    c = Cluster()
    for node in (c.a, c.b):
        node.binds = Binds()
        node.courier = ReceiptCourier(node.storage, c.clock,
                                      node.binds.receivers, 5.0)
        node.cluster.place_receipts(node.courier, node.binds.receiving)
        node.courier.load(node.storage.domain("smpp"))
    c.run(1)
    yield c
    c.close()


def message(id, carrier=CARRIER):
    return SimpleNamespace(id=id, origin_kind="carrier", origin=carrier,
                           receipt=1, created=1_000_000.0, text="hi",
                           sender="Carrier", recipient="964111222333")


def final(node, id):
    """Node C{node} records message C{id}'s final state (delivered) with
    its receipt, as the core does."""
    d = node.storage.batch(lambda raw: node.courier.final_state(
        raw, message(id), "delivered"))
    d.addCallback(lambda written: node.courier.committed(
        None, "delivered", written))
    node.storage.flush()
    return d


def pending_in_db(node):
    node.storage.sync()
    return len(node.storage.domain("smpp").receipts)


def test_interface(two):
    """The cluster's placement provides IReceiptPlacement."""
    verifyObject(IReceiptPlacement, two.a.cluster.receipts)


def test_heartbeat_says_which_carriers_are_bound(two):
    """Each node's heartbeat writes the carriers it holds receiving
    binds of, so the others can hand receipts to it."""
    two.a.binds.bind()
    two.run(1)
    two.b.storage.sync()
    nodes = two.b.storage.domain(KEY).nodes
    assert nodes["a"].carriers == frozenset({CARRIER})
    assert nodes["b"].carriers == frozenset()


def test_written_on_b_sent_over_a_once(two):
    """A receipt written on B (the final state was recorded there) for a
    carrier bound on A only is handed to A in the same commit and sent
    over A's bind once; B sends nothing; once the carrier answered, it
    leaves the database and nobody sends it again."""
    session = two.a.binds.bind()
    two.run(1)
    final(two.b, 7)
    assert two.b.courier.count() == 0
    two.run(2)
    assert len(session.sent) == 1
    session.answer_all()
    two.run(1)
    assert pending_in_db(two.a) == 0
    two.run(LEASE * 2)
    assert len(session.sent) == 1
    assert two.b.cluster.counters["receipts_handed"] == 1


def test_pending_on_dead_node_sent_by_taker(two):
    """A receipt A wrote while its carrier was bound nowhere, A killed:
    the carrier binds on B; once B took A's slot it sends the receipt
    once."""
    final(two.a, 8)
    two.run(0.5)
    assert two.a.courier.count() == 1
    two.a.kill()
    session = two.b.binds.bind()
    two.run(LEASE - 1.5)
    assert session.sent == []
    two.run(3)
    assert len(session.sent) == 1
    session.answer_all()
    two.run(LEASE)
    assert len(session.sent) == 1
    assert pending_in_db(two.b) == 0


def test_carrier_binds_elsewhere_later(two):
    """A receipt waiting on A (carrier bound nowhere) is handed to B once
    the carrier binds there, and sent once over B's bind, never by A
    (even when the carrier binds on A again afterwards)."""
    final(two.a, 9)
    two.run(0.5)
    session_b = two.b.binds.bind()
    two.run(3)
    assert len(session_b.sent) == 1
    assert two.a.courier.count() == 0
    session_a = two.a.binds.bind()
    two.a.courier.flush(CARRIER)
    two.run(3)
    assert session_a.sent == []
    session_b.answer_all()
    two.run(2)
    assert pending_in_db(two.a) == 0
    assert len(session_b.sent) == 1 and session_a.sent == []


def test_both_bound_each_sends_its_own(two):
    """With the carrier bound on both nodes, each sends the receipts it
    wrote, once each, and neither takes the other's."""
    sa, sb = two.a.binds.bind(), two.b.binds.bind()
    two.run(1)
    final(two.a, 10)
    final(two.b, 11)
    two.run(3)
    assert len(sa.sent) == 1 and len(sb.sent) == 1
    sa.answer_all()
    sb.answer_all()
    two.run(3)
    assert len(sa.sent) == 1 and len(sb.sent) == 1
    assert pending_in_db(two.a) == 0
