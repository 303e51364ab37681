"""
Tests for L{appliance.cluster.callbacks}: tenants' delivery-report
callbacks (dlr-url) with two nodes on one database (the two-node bench of
L{tests.cluster.test_service}), each with its own callback sender: each
report is POSTed by one node, the node that queued it while it lives,
the node that took its slot over once it was killed, and a slot that
still owns callbacks or receipts is neither retired nor left to nobody.
"""
import pytest
from zope.interface.verify import verifyObject

from appliance.cluster import leases
from appliance.cluster.interfaces import ICallbackPlacement
from appliance.cluster.model import KEY
from appliance.http.callbacks import CallbackSender, queue_hook
from appliance.http.model import Callback
from appliance.messaging.vocabulary import Submission
from tests.cluster.test_service import BEAT, LEASE, USER, Cluster, accepted
from tests.http.fakes import FakeAgent, FakeResponse

URL = "http://127.0.0.1:9/dlr"


class HTTPAgent(FakeAgent):
    """Records each request; answers none until the test does."""

    def answer(self, code=200):
        """Answer every request not answered yet with C{code}."""
        for *_, d in self.requests:
            if not d.called:
                d.callback(FakeResponse(code))


def with_callbacks(node):
    """Give C{node} a callback sender (an L{HTTPAgent}) placed by its
    cluster share, and the hook that queues callbacks, as the wiring
    does on a shared database."""
    node.http = HTTPAgent()
    node.sender = CallbackSender(node.storage, node.clock, agent=node.http,
                                 interval=BEAT)
    placement = node.cluster.place_callbacks(node.sender)
    node.core.add_transaction_hook(queue_hook(node.clock, node.sender.kick,
                                              placement))
    node.sender.startService()
    return node


def kill(node):
    """As SIGKILL, callback sender included."""
    if node.sender._loop.running:
        node.sender._loop.stop()
    if node.sender._kicked is not None and node.sender._kicked.active():
        node.sender._kicked.cancel()
    node.kill()


@pytest.fixture
def two():
    c = Cluster()
    with_callbacks(c.a)
    with_callbacks(c.b)
    yield c
    for node in (c.a, c.b):
        if node.sender._loop.running:
            node.sender._loop.stop()
    c.close()


def submit(node):
    """A tenant's message with a dlr-url, accepted on C{node}; its app
    (the fake SIP agent) takes it at once."""
    d = node.core.submit(Submission(
        "tenant", "acme", "9647", USER, text="hi",
        meta=(("dlr-url", URL),)))
    node.storage.flush()
    return accepted(d)


def queued(two):
    """The callbacks in the database: serial to message id."""
    two.a.storage.sync()
    return {serial: cb.message for serial, cb in
            two.a.storage.domain("http").callbacks.items()}


def posts(two):
    return len(two.a.http.requests) + len(two.b.http.requests)


def test_interface(two):
    """The placement provides ICallbackPlacement."""
    verifyObject(ICallbackPlacement, two.a.cluster.callbacks)


def test_each_callback_posted_once_by_the_node_that_queued_it(two):
    """A report of a message accepted and delivered on A is numbered from
    A's slot and POSTed by A alone, once; one of a message on B by B
    alone; after the answers, the queue is empty and nothing is POSTed
    again."""
    id_a = submit(two.a)
    id_b = submit(two.b)
    two.run(2)
    assert two.a.agent.ids == [id_a] and two.b.agent.ids == [id_b]
    serials = queued(two)
    assert sorted(serials.values()) == sorted([id_a, id_b])
    by_message = {m: s for s, m in serials.items()}
    assert leases.epoch_of(by_message[id_a]) == two.a.cluster.slot
    assert leases.epoch_of(by_message[id_b]) == two.b.cluster.slot
    assert len(two.a.http.requests) == 1 and len(two.b.http.requests) == 1
    two.a.http.answer()
    two.b.http.answer()
    two.run(3)
    assert queued(two) == {}
    assert posts(two) == 2
    # The shared queue's counter was not written: no conflict on it.
    assert two.a.storage.domain("http").serial == 0


def test_killed_nodes_callback_posted_once_by_the_taker(two):
    """A queues a report and is killed before its POST is answered: B
    does not POST it while A's lease holds; once B took A's slot over it
    POSTs it, once (a retry after a failed answer is the one retry), and
    its answer empties the queue."""
    submit(two.a)
    two.run(1)
    assert len(two.a.http.requests) == 1      # under way, never answered
    kill(two.a)
    two.run(LEASE - 2 * BEAT)
    assert two.b.http.requests == []
    two.run(LEASE)
    assert two.b.cluster.counters["slots_taken"] == 1
    assert len(two.b.http.requests) == 1
    two.b.http.answer(500)                    # retried after its backoff
    two.run(1.5)
    assert len(two.b.http.requests) == 2
    two.b.http.answer(200)
    two.run(2)
    assert queued(two) == {}
    assert len(two.b.http.requests) == 2 and len(two.a.http.requests) == 1


def test_tidy_keeps_a_slot_that_owns_callbacks(two):
    """The taker's tidy-up does not retire a taken slot that owns no
    waiting message but still owns a callback being retried (retired, it
    would leave the callback to nobody); once the callback is answered,
    the slot is retired."""
    submit(two.a)
    two.run(1)
    key = two.a.cluster.slot
    kill(two.a)
    two.run(2 * LEASE)
    assert len(two.b.http.requests) == 1
    two.b.http.answer(500)
    two.run(0.2)
    two.b.cluster.tidy()
    two.run(0.5)
    two.b.storage.sync()
    assert key in two.b.storage.domain(KEY).slots
    two.run(2)
    assert len(two.b.http.requests) == 2
    two.b.http.answer(200)
    two.run(1)
    assert queued(two) == {}
    two.b.cluster.tidy()
    two.run(0.5)
    two.b.storage.sync()
    assert key not in two.b.storage.domain(KEY).slots


def test_orphaned_callbacks_adopted(two):
    """A callback numbered from an epoch that has no slot (its slot was
    retired by an older node) is adopted at the first node's tidy-up and
    then POSTed, once."""
    orphan = (two.a.cluster.slot + 100) << leases.EPOCH_SHIFT | 1
    now = two.clock.seconds()

    def add(raw):
        raw["http"].queue_callback(
            Callback(1, "acme", URL, b"{}", now, now + 600), orphan)
    two.a.storage.batch(add)
    two.a.storage.flush()
    two.run(2)
    assert posts(two) == 0
    two.a.cluster.tidy()
    two.run(1)
    assert len(two.a.http.requests) == 1 and two.b.http.requests == []


def test_callbacks_from_before_the_cluster_sent_by_the_first_node(two):
    """A callback numbered by the queue's own counter (epoch 0: queued
    before the node joined a cluster) is POSTed by the first node alive
    by name only; when that node is killed, by the next one."""
    now = two.clock.seconds()

    def add(raw):
        raw["http"].queue_callback(
            Callback(1, "acme", URL, b"{}", now, now + 600))
    two.a.storage.batch(add)
    two.a.storage.flush()
    two.run(2)
    assert len(two.a.http.requests) == 1 and two.b.http.requests == []
    kill(two.a)
    two.run(2 * LEASE)
    assert len(two.b.http.requests) == 1


def test_tidy_keeps_a_slot_that_owns_receipts(two):
    """A slot with no waiting message that still owns a receipt owed to
    a carrier (its carrier not bound) is kept by its taker's tidy-up."""
    submit(two.a)
    two.run(1)
    key = two.a.cluster.slot

    def add(raw):
        raw["smpp"].add_receipt("Carrier1", ("m1", "DELIVRD", 0, 0, "",
                                             "1", "2"), (key << 32) | 7)
    two.a.storage.batch(add)
    two.a.storage.flush()
    two.a.http.answer()
    two.run(1)
    kill(two.a)
    two.run(2 * LEASE)
    two.b.storage.sync()
    assert two.b.storage.domain(KEY).slots[key].holder == "b"
    two.b.cluster.tidy()
    two.run(0.5)
    two.b.storage.sync()
    assert key in two.b.storage.domain(KEY).slots


def test_show_cluster_holds(two):
    """'show cluster' lists, per node, the carriers it holds receiving
    binds of, the receipts and the callbacks its slots own; a slot that
    nobody holds shows on a '(no holder)' row."""
    from appliance.shell.live import LiveState
    from appliance.shell.script import open_session
    from tests.shell_helpers import run
    submit(two.a)
    two.run(1)
    key_b = two.b.cluster.slot
    orphan = (key_b + 100) << leases.EPOCH_SHIFT | 1

    def add(raw):
        raw["smpp"].add_receipt("Carrier1", ("m1", "DELIVRD", 0, 0, "",
                                             "1", "2"), (key_b << 32) | 7)
        raw["smpp"].add_receipt("Carrier1", ("m2", "DELIVRD", 0, 0, "",
                                             "1", "2"), orphan)
        raw[KEY].nodes["a"].carriers = frozenset(["Carrier1", "Carrier2"])
    two.a.storage.batch(add)
    two.a.storage.flush()
    two.b.storage.sync()
    headers, rows = two.b.cluster.shell_table("holds")
    assert headers == ("Node", "Receiving binds of", "Receipts", "Callbacks")
    by = {r[0]: r[1:] for r in rows}
    assert by["a"] == ("Carrier1,Carrier2", "0", "1")
    assert by["b"] == ("-", "1", "0")
    assert by["(no holder)"] == ("-", "1", "0")
    live = LiveState()
    live.add_source("cluster", two.b.cluster)
    text = run(open_session(two.b.storage, "alice", "view", live=live),
               "show cluster")
    lines = text.splitlines()
    assert any(l.split()[:2] == ["a", "alive"] for l in lines)
    assert "Receiving binds of" in text
    assert any(l.split() == ["a", "Carrier1,Carrier2", "0", "1"]
               for l in lines)
