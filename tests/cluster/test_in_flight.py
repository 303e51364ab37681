"""
Messages in flight when their node dies, and commits that conflict
between two nodes: two nodes on one in-memory database, as in
L{tests.cluster.test_service}.
"""
from twisted.internet import defer
from ZODB.POSException import ConflictError

from appliance.cluster.model import KEY
from appliance.messaging.vocabulary import Outcome, Submission
from tests.cluster.test_service import (LEASE, USER, accepted,  # noqa: F401
                                        two)


def test_in_flight_at_kill_sent_again_by_taker(two):
    """A message A handed to its app without an answer yet when A is
    killed is sent again by B once B took A's slot over: the same id
    (so the same Message-ID toward a SIP app), and it ends delivered."""
    two.a.agent.answer = None           # the app never answers A
    id = accepted(two.a.submit())
    two.run(0.2)
    assert two.a.agent.ids == [id]
    two.a.kill()
    two.run(LEASE + 3)
    assert two.b.agent.ids == [id]
    assert two.b.state(id) == "delivered"


def test_outcome_not_committed_at_kill_sent_again(two):
    """The app answered A but A died before the outcome's commit: the
    message is still waiting in the database, and B sends it again after
    the takeover (at least once: the app drops the copy by its id)."""
    two.a.agent.answer = None
    id = accepted(two.a.submit())
    two.run(0.2)
    two.a.kill()
    # The answer comes while A dies: its write never reaches the disk.
    two.a.storage.batch = lambda *args, **kwargs: defer.Deferred()
    two.a.agent.pending[0].callback(Outcome("delivered", "app said 200"))
    two.run(0.5)
    assert two.b.state(id) == "accepted"
    two.run(LEASE + 3)
    assert two.b.agent.ids == [id]
    assert two.b.state(id) == "delivered"


def test_forwarded_not_sent_again_receipt_on_other_node(two):
    """A message A forwarded to an SMSC (submit_sm_resp: the far side has
    it) is not sent again by B after A was killed; its receipt arriving
    on B makes it delivered."""
    forwarded = Outcome("forwarded", "vendor took it", connection="vendor",
                        remote_id="V1")
    two.a.agent.answer = None
    id = accepted(two.a.submit())
    two.run(0.2)
    two.a.agent.pending[0].callback(forwarded)
    two.run(0.5)
    assert two.b.state(id) == "delivering"
    two.a.kill()
    two.run(LEASE + 3)
    assert two.b.cluster.counters["slots_taken"] == 1
    assert two.b.agent.ids == []
    matched = two.b.core.receipt_received("vendor", "V1", "delivered")
    two.run(0.2)
    assert matched.result is True
    assert two.b.state(id) == "delivered"


def test_conflicted_outcome_queued_again(two):
    """An outcome whose batched commit still conflicts after the
    storage's retries is queued again later: the message ends delivered
    (not left waiting to be sent again), and the retry is counted."""
    batch = two.a.storage.batch
    failed = []

    def conflicting(fn, *args, **kwargs):
        if getattr(fn, "__name__", "") == "write" and not failed:
            failed.append(fn)
            return defer.fail(ConflictError())
        return batch(fn, *args, **kwargs)
    two.a.storage.batch = conflicting
    id = accepted(two.a.submit())
    two.run(1)
    assert failed
    assert two.a.state(id) == "delivered"
    assert two.a.agent.ids == [id]
    assert two.a.core.counters["record_retries"] == 1


def test_conflicts_counted(two):
    """Two nodes changing one object at once: the later commit conflicts
    in the database, is counted with the object's class, re-run on the
    new state and commits; none failed."""
    ran = []

    def touch(raw):
        raw[KEY].nodes["a"].stopped = None
        if not ran:
            ran.append(1)
            with two.a.storage.transaction(note="meanwhile") as _:
                two.a.storage.domain(KEY).nodes["a"].lease = 11.0
    before = two.b.storage.conflicts
    d = two.b.storage.batch(touch)
    two.b.storage.flush()
    assert d.called and ran
    assert two.b.storage.conflicts == before + 1
    assert two.b.storage.conflicts_failed == 0
    assert two.b.storage.conflict_classes.get(
        "appliance.cluster.model.NodeRecord") == 1
    assert two.b.cluster.statistics()["storage_conflicts"] >= 1


def test_handed_messages_loaded_in_one_round_trip(two, monkeypatch):
    """Messages handed to B (accepted on A for B's app) are loaded on B's
    connection with one prefetch of all of them, not one load each, and
    then delivered by B."""
    from ZODB.Connection import Connection
    fetched = []
    monkeypatch.setattr(Connection, "prefetch",
                        lambda self, *args: fetched.append(
                            [m.id for m in args[0]]), raising=False)
    two.b.register()
    two.run(1)
    two.a.storage.batch_delay = 1.0      # three accepts in one commit
    ds = [two.a.core.submit(Submission("carrier", "Carrier1", "9647", USER,
                                       text=str(i))) for i in range(3)]
    two.run(1.2)
    ids = [accepted(d) for d in ds]
    two.run(1)
    assert sorted(two.b.agent.ids) == sorted(ids)
    assert sorted(ids) in [sorted(f) for f in fetched]
