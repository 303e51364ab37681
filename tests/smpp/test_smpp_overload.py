"""Overload at the SMPP door: the node's admission, fairness between
binds, back-pressure from a peer that does not read, and the counts."""
import pytest

from appliance.admission import Refusals
from appliance.smpp.session import PER_TURN
from tests.smpp.smpp_env import Env, responses, status, submit_sm


class FakeAdmission:
    """The node's admission, told by the test whether it is overloaded."""

    def __init__(self, clock):
        self.why = None
        self.limit = 4000
        self.refusals = Refusals(clock)

    def overloaded(self):
        return self.why

    def pending_limit(self):
        return self.limit


@pytest.fixture
def env():
    from twisted.internet.testing import MemoryReactorClock
    e = Env(admission=FakeAdmission(MemoryReactorClock()))
    yield e
    e.close()


def stored(env):
    return sum(env.storage.messages().counts().values())


def test_overloaded_node_throttles_before_decoding(env):
    """While the node's admission refuses, a submit gets ESME_RTHROTTLED
    at once, before it is decoded (a malformed one too, instead of its
    decode error); nothing is stored; refusals are counted by reason and
    in the carrier's counters; once admitted again, submits are taken."""
    session, t, _ = env.bind()
    env.server.admission.why = "storage"
    bad = submit_sm(3)[:-6]
    bad = bad[:0] + (len(bad)).to_bytes(4, "big") + bad[4:]
    session.dataReceived(submit_sm(2) + bad)
    got = [(h.sequence, h.status) for h, _ in responses(t)]
    assert got == [(2, status("ESME_RTHROTTLED")),
                   (3, status("ESME_RTHROTTLED"))]
    env.settle()
    assert stored(env) == 0
    assert env.server.refusals.totals == {("smpp", "storage"): 2}
    assert env.server.counters["Carrier1"]["throttled"] == 2
    env.server.admission.why = None
    session.dataReceived(submit_sm(4))
    env.settle()
    assert [(h.sequence, h.status) for h, _ in responses(t)] == [(4, 0)]


def test_queue_limit_is_msgqful_and_counted():
    """The waiting-queue limit answers ESME_RMSGQFUL, counted as
    "queue"."""
    env = Env(queue_limit=1)
    try:
        session, t, _ = env.bind()
        session.dataReceived(submit_sm(1))
        env.settle()
        session.dataReceived(submit_sm(2))
        env.settle()
        assert [h.status for h, _ in responses(t)] == [
            0, status("ESME_RMSGQFUL")]
        assert env.server.refusals.totals == {("smpp", "queue"): 1}
    finally:
        env.close()


def test_window_refusals_counted():
    """Submits beyond the window are counted as "window" refusals."""
    env = Env(window=2)
    try:
        session, t, _ = env.bind()
        session.dataReceived(b"".join(submit_sm(i) for i in range(1, 6)))
        assert env.server.refusals.totals == {("smpp", "window"): 3}
    finally:
        env.close()


def test_flood_handled_per_turn_with_reading_paused():
    """A read holding many PDUs is handled PER_TURN at a time: the rest
    wait for the next reactor turn with the connection's reading paused
    (other connections are read meanwhile); then reading resumes."""
    env = Env(window=5000, queue_limit=10_000)
    try:
        session, t, _ = env.bind()
        n = PER_TURN * 2 + 5
        session.dataReceived(b"".join(submit_sm(i) for i in range(1, n + 1)))
        assert session.in_flight == PER_TURN
        assert t.producerState == "paused"
        other, t2, _ = env.bind(sid="carrier2", pw="car2pass")
        other.dataReceived(submit_sm(1))
        assert other.in_flight == 1     # not behind the flood
        env.clock.advance(0)            # the next turns
        assert session.submits == n and t.producerState == "producing"
        env.settle()
        assert len(responses(t)) == n
    finally:
        env.close()


def test_peer_not_reading_is_not_read(env):
    """A peer that does not read our answers (the transport's buffer is
    full and pauses us, its producer) is not read either: what it sent
    waits, unhandled, until what we wrote drains."""
    session, t, _ = env.bind()
    assert t.producer is session and t.streaming
    session.pauseProducing()
    assert t.producerState == "paused"
    session.dataReceived(submit_sm(2) + submit_sm(3))
    assert session.submits == 0
    session.resumeProducing()
    assert t.producerState == "paused"      # the rest on the next turn
    env.clock.advance(0)
    assert session.submits == 2 and t.producerState == "producing"
    env.settle()
    assert [h.status for h, _ in responses(t)] == [0, 0]


def test_half_open_peer_closed_by_enquire_link(env):
    """A bound peer that stops reading and sending is closed once our
    enquire_link goes unanswered (interval plus response timeout); its
    timers are gone."""
    session, t, _ = env.bind()
    session.pauseProducing()
    env.clock.advance(30)
    assert not t.disconnecting
    env.clock.advance(31)
    assert t.disconnecting
    session.connectionLost(None)
    assert session not in env.server.sessions


@pytest.fixture
def wide():
    from twisted.internet.testing import MemoryReactorClock
    e = Env(admission=FakeAdmission(MemoryReactorClock()), window=100)
    yield e
    e.close()


def test_flooding_bind_gets_its_fair_share(wide):
    """Once the submits in processing reach half of what the node lets
    wait, a bind holds at most its share of that half: a flooding bind
    is throttled ("fair share") while another carrier's bind is still
    taken, up to its own share; both counts go back to 0 after the
    commits."""
    wide.server.admission.limit = 40
    flood, t1, _ = wide.bind()
    other, t2, _ = wide.bind(sid="carrier2", pw="car2pass")
    flood.dataReceived(b"".join(submit_sm(i) for i in range(1, 26)))
    assert flood.in_flight == 20
    assert [h.sequence for h, _ in responses(t1)] == list(range(21, 26))
    other.dataReceived(b"".join(submit_sm(i) for i in range(1, 16)))
    assert other.in_flight == 10
    assert wide.server.refusals.totals == {("smpp", "fair share"): 10}
    assert (wide.server.in_flight, wide.server.busy) == (30, 2)
    wide.settle()
    assert (wide.server.in_flight, wide.server.busy) == (0, 0)
    assert sum(1 for h, _ in responses(t1) if h.status == 0) == 20
