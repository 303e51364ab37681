"""
Tests for L{appliance.cluster.service}: two nodes on one in-memory
database (two storages, each with its own connection, as two processes on
one server), each with its messaging core and a fake SIP agent, on one
L{task.Clock}.  A node is "killed" by stopping everything it schedules
without any clean-up, as SIGKILL would.
"""
import pytest
import ZODB
from twisted.internet import defer, task
from ZODB.MappingStorage import MappingStorage
from zope.interface import implementer
from zope.interface.verify import verifyObject

from appliance.application import GENERATIONS
from appliance.cluster.interfaces import IOwnership, IRegistrationLocator
from appliance.cluster.locator import RegistrarLocator
from appliance.cluster.model import KEY
from appliance.cluster.service import ClusterService
from appliance.messaging.core import MessagingCore
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.messaging.vocabulary import Outcome, Submission
from appliance.store.database import Storage

LEASE = 3.0
BEAT = 0.5
USER = "111222333"


@implementer(IDeliveryAgent)
class Agent:
    """Answers every delivery at once with C{self.answer} (None: keeps it
    pending), and remembers the ids it was given."""

    def __init__(self):
        self.ids = []
        self.answer = "delivered"
        self.pending = []

    def deliver(self, view):
        self.ids.append(view.id)
        if self.answer is None:
            d = defer.Deferred()
            self.pending.append(d)
            return d
        return defer.succeed(Outcome(self.answer, "test"))


class Node:
    """One node: storage, cluster share, core, agent."""

    def __init__(self, db, clock, name, registry, incarnation=None):
        self.name = name
        self.clock = clock
        self.storage = Storage(lambda: db, clock, generations=GENERATIONS,
                               poll_interval=0.5, batch_delay=0.001)
        self.storage.startService()
        self.registry = registry
        self.locator = RegistrarLocator(lambda u: registry.holders(u, name))
        self.cluster = ClusterService(self.storage, clock, name,
                                      locator=self.locator, lease=LEASE,
                                      heartbeat=BEAT,
                                      incarnation=incarnation)
        self.core = MessagingCore(self.storage, clock, local_transport="sip",
                                  retry_schedule=(30,), validity=600,
                                  scan_interval=1, ownership=self.cluster)
        self.cluster.dispatch = self.core.dispatch_ids
        self.core.add_transaction_hook(self.cluster.transaction_hook)
        self.agent = Agent()
        self.core.set_agent("sip", self.agent)
        self.cluster.startService()
        self.core.startService()
        self.dead = False

    def register(self, username=USER):
        """An app of C{username} registers here (the registrar's memory
        and the core's account_online)."""
        self.registry.put(username, self.name, self.clock.seconds() + 3600)
        return self.core.account_online(username)

    def submit(self, to=USER, text="hi"):
        d = self.core.submit(Submission("carrier", "Carrier1", "9647",
                                        to, text=text))
        self.storage.flush()
        return d

    def kill(self):
        """As SIGKILL: nothing more runs, nothing is cleaned up."""
        self.dead = True
        for loop in (self.cluster._beater, self.core._scanner,
                     self.core._purger, self.storage._poller):
            if loop is not None and loop.running:
                loop.stop()
        if self.storage._timer is not None and self.storage._timer.active():
            self.storage._timer.cancel()
        self.storage._pending.clear()
        self.storage._listeners.clear()

    def state(self, id):
        self.storage.sync()
        return self.storage.messages().get(id).state


class Registry:
    """The registrar's bindings across nodes, as its C{holders} sees them
    (each node's own at once, the others' as of the last poll is left
    out: here every node sees every binding at once)."""

    def __init__(self):
        self.bindings = {}

    def put(self, username, node, expires_at):
        self.bindings.setdefault(username, {})[node] = expires_at

    def drop(self, username, node):
        self.bindings.get(username, {}).pop(node, None)

    def holders(self, username, me):
        latest = self.bindings.get(username, {})
        return tuple(sorted(latest, key=lambda n: (-latest[n], n != me, n)))


class Cluster:
    def __init__(self):
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.db = ZODB.DB(MappingStorage())
        self.registry = Registry()
        self.nodes = {}
        self.a = self.add("a")
        with self.a.storage.transaction(note="setup") as root:
            root.add_product("P")
            root.products["P"].messaging = True
            root.add_customer("C")
            root.add_account("C", USER)
            root.add_did(USER, USER)
            root.set_account_product(USER, "P")
        self.b = self.add("b")
        self.run(1)

    def add(self, name, incarnation=None):
        node = Node(self.db, self.clock, name, self.registry, incarnation)
        self.nodes.setdefault(name, []).append(node)
        return node

    def run(self, seconds, step=0.05):
        """Let the clock run (batches, polls, heartbeats, scans)."""
        for _ in range(int(round(seconds / step))):
            self.clock.advance(step)

    def close(self):
        for nodes in self.nodes.values():
            for node in nodes:
                node.kill()
                if node.storage._conn is not None:
                    node.storage._tm.abort()
                    node.storage._conn.close()
                    node.storage._conn = None
        self.db.close()


@pytest.fixture
def two():
    c = Cluster()
    yield c
    c.close()


def accepted(d):
    assert d.called, "not committed"
    return d.result


def test_interfaces(two):
    """The cluster service provides IOwnership and the registrar's
    locator IRegistrationLocator."""
    verifyObject(IOwnership, two.a.cluster)
    verifyObject(IRegistrationLocator, two.a.locator)


def test_registry_lists_both_nodes_alive(two):
    """Each node enters the registry and heartbeats: both are alive, each
    with its own slot (the epoch its core took)."""
    c = two.a.storage.domain(KEY)
    two.a.storage.sync()
    assert sorted(c.nodes) == ["a", "b"]
    now = two.clock.seconds()
    assert all(r.alive(now) for r in c.nodes.values())
    assert two.a.cluster.slot != two.b.cluster.slot
    assert c.slots[two.a.cluster.slot].holder == "a"
    assert c.slots[two.b.cluster.slot].holder == "b"
    assert two.a.cluster.counters["heartbeats"] >= 1


def test_heartbeat_commits_on_its_own(two):
    """A heartbeat is one small transaction of its own, not queued behind
    message writes: with a write queued and not committed, a beat
    commits at once and the other node sees the new beat at its next
    poll; the queued write is still queued."""
    d = two.a.core.submit(Submission("carrier", "Carrier1", "9647", USER,
                                     text="queued"))
    assert not d.called and two.a.storage.pending == 1
    before = two.b.storage.domain(KEY).nodes["a"].beat
    two.clock.advance(0.0005)   # before the batch's timer (1 ms)
    two.a.cluster._beating = False
    two.a.cluster.beat()
    assert two.a.storage.pending == 1
    two.b.storage.poll()
    assert two.b.storage.domain(KEY).nodes["a"].beat > before
    two.a.storage.flush()
    assert d.called


def test_accepting_node_delivers_once(two):
    """A message accepted on A for an app registered nowhere else is
    delivered by A alone; B, on the same database, never touches it."""
    id = accepted(two.a.submit())
    two.run(5)
    assert two.a.agent.ids == [id]
    assert two.b.agent.ids == []
    assert two.a.state(id) == "delivered"


def test_no_takeover_while_alive(two):
    """A message waiting on a live node (its app offline) stays its own:
    B does not take A's slot however long it waits."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(LEASE * 4)
    assert two.a.agent.ids == [id]
    assert two.b.agent.ids == []
    assert two.b.cluster.counters["slots_taken"] == 0
    assert not two.b.cluster.owns(id)
    assert two.a.cluster.owns(id)


def test_takeover_after_kill(two):
    """A killed with a message queued (app offline): once A's lease has
    run out, B takes A's slot and delivers the message, once; not
    before the lease ran out."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(0.2)
    assert two.a.agent.ids == [id]
    two.a.kill()
    killed = two.clock.seconds()
    two.run(LEASE - 1)
    assert two.b.agent.ids == []
    two.run(3)
    assert two.b.agent.ids == [id]
    assert two.b.state(id) == "delivered"
    assert two.a.agent.ids == [id]
    assert two.b.cluster.counters["slots_taken"] == 1
    two.run(LEASE * 3)
    assert two.b.agent.ids == [id]
    assert two.clock.seconds() - killed > LEASE


def test_takeover_many_none_twice(two):
    """Fifty messages queued on A when it dies: B delivers each exactly
    once, and A had delivered none."""
    two.a.agent.answer = "offline"
    ids = [accepted(two.a.submit(text=str(i))) for i in range(50)]
    two.run(0.5)
    two.a.kill()
    two.run(LEASE + 3)
    assert sorted(two.b.agent.ids) == sorted(ids)
    assert len(set(two.b.agent.ids)) == 50
    assert {two.b.state(i) for i in ids} == {"delivered"}


def test_fenced_when_heartbeats_stop(two):
    """A node whose heartbeats no longer commit (cut off from the
    database) stops acting on its messages before its lease runs out,
    so it is never delivering when another node takes over."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(0.2)
    two.a.cluster._beater.stop()
    two.run(LEASE - BEAT + 0.1)
    assert not two.a.cluster.owns(id)
    assert two.a.core.dispatch_ids([id]) == 0


def test_back_after_takeover_stays_out(two):
    """A node that was stalled past its lease and comes back finds its
    slot taken: it renews nothing it lost and delivers none of those
    messages, while the taker does."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(0.2)
    two.a.cluster._beater.stop()
    two.run(LEASE + 2)
    assert two.b.agent.ids == [id]
    two.a.cluster._beater.start(BEAT, now=True)
    two.run(3)
    assert not two.a.cluster.owns(id)
    assert two.a.core.dispatch_ids([id]) == 0
    assert two.a.agent.ids == [id]      # its one attempt before the stall


def test_clean_stop_hands_over_at_once(two):
    """A node stopped cleanly gives up its slots: another node takes its
    waiting messages at its next heartbeat, without waiting for the
    lease."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(0.2)
    d = two.a.cluster.stopService()
    two.a.storage.flush()
    assert d.called
    two.a.kill()
    two.run(2 * BEAT + 0.6)
    assert two.b.agent.ids == [id]


def test_handed_at_accept_to_registration_holder(two):
    """A message accepted on A for an app registered on B belongs to B
    from the accepting commit: A never delivers it, B does after its next
    poll of the database."""
    two.b.register()
    two.run(1)
    id = accepted(two.a.submit())
    two.run(1)
    assert two.a.agent.ids == []
    assert two.b.agent.ids == [id]
    assert two.b.state(id) == "delivered"
    assert two.a.cluster.counters["handed_out"] == 1
    # Final: the receiving node's tidy-up forgets the hand-over.
    two.b.storage.sync()
    assert id in two.b.storage.domain(KEY).handed
    two.b.cluster.tidy()
    two.b.storage.flush()
    assert id not in two.b.storage.domain(KEY).handed


def test_registering_elsewhere_wakes_owner(two):
    """A message waiting on A (its app offline) is delivered by B once
    the app registers on B: B points it out to A, A hands it over, B
    delivers it; A tried it only once, before."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(0.5)
    assert two.a.agent.ids == [id]
    two.b.register()
    two.run(2)
    assert two.b.agent.ids == [id]
    assert two.a.agent.ids == [id]
    assert two.b.state(id) == "delivered"


def test_handed_then_holder_killed(two):
    """A message handed to B whose app stays offline, then B killed: A
    takes B's slot over and tries the message itself."""
    two.b.register()
    two.run(1)
    two.b.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(1)
    assert two.b.agent.ids == [id]
    two.registry.drop(USER, "b")
    two.b.kill()
    two.run(LEASE + 3)
    assert two.a.agent.ids == [id]
    assert two.a.state(id) == "delivered"


def test_same_name_usurped(two):
    """A second process started under a node's name takes its record
    over; the first one's next heartbeat finds that out and it stops
    delivering."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(0.2)
    again = two.add("a", incarnation="second")
    two.run(2)
    assert two.a.cluster.usurped
    assert not two.a.cluster.owns(id)
    # The new process owns the old epoch's slot (same name) and goes on.
    assert again.cluster.owns(id)


def test_orphan_epoch_adopted(two):
    """Waiting messages of an epoch without a slot (stored before the
    cluster existed) are adopted by the first node alive and delivered
    once."""
    from appliance.messaging.store import Message
    store = two.a.storage.messages()

    def add(raw):
        epoch = raw["messages"].next_epoch()
        m = Message((epoch << 32) | 1, "carrier", "Carrier1", "9647", USER,
                    now=two.clock.seconds(), validity=two.clock.seconds()
                    + 600, account=USER)
        m.transport = "sip"
        m.state = "delivering"
        raw["messages"].add(m)
        m.next_attempt = None
        return m.id
    d = two.a.storage.batch(add)
    two.a.storage.flush()
    id = accepted(d)
    assert store.get(id) is not None
    two.a.cluster.tidy()
    two.run(1)
    assert two.a.agent.ids == [id]
    assert two.b.agent.ids == []


def test_show_cluster_tables(two):
    """The shell's tables: both nodes alive with their slot, and each
    slot with its holder, lease left and waiting messages; a killed node
    shows gone and its slot lapsed, then taken."""
    two.a.agent.answer = "offline"
    accepted(two.a.submit())
    two.run(0.5)
    headers, rows = two.b.cluster.shell_table("nodes")
    assert headers[0] == "Node"
    by = {r[0]: r for r in rows}
    assert by["a"][1] == "alive" and by["a"][5] == "1"
    assert by["b"][1] == "alive" and by["b"][5] == "0"
    two.a.kill()
    two.b.cluster._beater.stop()        # no takeover yet
    two.run(LEASE + 0.5)
    headers, rows = two.b.cluster.shell_table("leases")
    lease_a = [r for r in rows if r[1] == "a"]
    assert lease_a and lease_a[0][2] == "lapsed"
    two.b.cluster._beater.start(BEAT, now=True)
    two.run(1)
    _, rows = two.b.cluster.shell_table("nodes")
    by = {r[0]: r for r in rows}
    assert by["a"][1] == "gone" and by["a"][4] == "0"
    _, rows = two.b.cluster.shell_table("leases")
    taken = [r for r in rows if r[3] == "a"]
    assert taken and taken[0][1] == "b"
    with pytest.raises(KeyError):
        two.b.cluster.shell_table("nope")


def test_stop_leaves_no_calls():
    """A cluster service stopped leaves no delayed call behind."""
    clock = task.Clock()
    clock.advance(1000)
    storage = Storage(lambda: ZODB.DB(None), clock, generations=GENERATIONS)
    storage.startService()
    service = ClusterService(storage, clock, "solo", lease=LEASE,
                             heartbeat=BEAT)
    service.startService()
    clock.advance(BEAT)
    storage.flush()
    d = service.stopService()
    storage.flush()
    assert d.called
    assert clock.getDelayedCalls() == []
    storage.close()


def test_lease_must_exceed_two_beats():
    """A lease of two heartbeats or less is refused."""
    with pytest.raises(ValueError):
        ClusterService(None, task.Clock(), "x", lease=1.0, heartbeat=0.5)


def test_renewal_and_takeover_race_one_wins(two):
    """A's renewal commits while B's takeover of the same lapsed slot is
    in its transaction: B's commit conflicts in the database, B retries on
    the new state and takes nothing; A keeps its slot and its message."""
    two.a.agent.answer = "offline"
    id = accepted(two.a.submit())
    two.run(0.2)
    two.a.cluster._beater.stop()
    two.b.cluster._beater.stop()
    two.run(LEASE + 1)
    key = two.a.cluster.slot
    ran = []

    def a_commits_meanwhile(raw):
        if not ran:
            ran.append(1)
            two.a.cluster.beat()
            two.a.storage.flush()
    taken = two.b.storage.batch(two.b.cluster._write_take, [key])
    two.b.storage.batch(a_commits_meanwhile)
    two.b.storage.flush()
    assert ran and taken.called
    assert taken.result == []
    two.b.storage.sync()
    assert two.b.storage.domain(KEY).slots[key].holder == "a"
    assert two.a.cluster.owns(id)
    assert not two.b.cluster.owns(id)


def test_show_cluster_command(two):
    """'show cluster' (view role) lists both nodes alive and each slot
    with its holder; a node without a cluster says it is alone."""
    from appliance.shell.live import LiveState
    from appliance.shell.script import open_session
    from tests.shell_helpers import run
    live = LiveState()
    live.add_source("cluster", two.b.cluster)
    session = open_session(two.b.storage, "alice", "view", live=live)
    text = run(session, "show cluster")
    assert "Node" in text and "Holder" in text
    lines = text.splitlines()
    assert any(l.split()[:2] == ["a", "alive"] for l in lines)
    assert any(l.split()[:2] == ["b", "alive"] for l in lines)
    assert any(l.split()[:2] == [str(two.a.cluster.slot), "a"]
               for l in lines)
    alone = open_session(two.b.storage, "alice", "view", live=LiveState())
    assert "alone" in run(alone, "sh cluster")


def test_scan_looks_past_other_nodes_due_messages(two):
    """A node's scan skips the due messages of other nodes without
    counting them against its limit: with a limit of 2 and five of A's
    retries due first, B still reaches its own due retry within a few
    scans."""
    two.a.agent.answer = "retry"
    two.b.agent.answer = "retry"
    for node in (two.a, two.b):
        node.core.scan_limit = 2
    a_ids = [accepted(two.a.submit(text=str(i))) for i in range(5)]
    two.run(0.2)
    b_id = accepted(two.b.submit())
    two.run(0.2)
    two.a.core._scanner.stop()          # A leaves its retries be
    assert two.b.agent.ids == [b_id]
    two.run(30 + 4)
    assert two.b.agent.ids == [b_id, b_id]
    assert not set(a_ids) & set(two.b.agent.ids)


def test_mailbox_never_empties(two):
    """A mailbox keeps its sentinel when its node takes every id out, so
    a node adding to it while its owner empties it touch a bucket that
    stays non-empty (a change the database can merge); the sentinel is
    never dispatched."""
    from appliance.cluster.model import SENTINEL
    two.b.register()
    two.run(1)
    ids = [accepted(two.a.submit(text=str(i))) for i in range(3)]
    two.run(1)
    assert sorted(two.b.agent.ids) == sorted(ids)
    two.b.storage.sync()
    box = two.b.storage.domain(KEY).mailboxes["b"]
    assert list(box) == [SENTINEL]
    assert SENTINEL not in two.b.agent.ids
