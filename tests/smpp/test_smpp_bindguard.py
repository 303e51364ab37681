"""Bind attempts: password checks off the reactor thread, per-source limits,
lock-out after repeated failures, disallowed addresses."""
import pytest
from smpp.pdu import operations
from twisted.internet import defer
from twisted.logger import Logger

from appliance.model.passwords import verify_secret
from appliance.smpp import pdus
from tests.smpp.smpp_env import Env, responses, status


class Checks:
    """A C{verify} whose answers the test gives, as a thread would."""

    def __init__(self):
        self.calls = []

    def __call__(self, stored, password):
        d = defer.Deferred()
        self.calls.append((stored, password, d))
        return d

    def answer(self, i=-1):
        stored, password, d = self.calls[i]
        d.callback(verify_secret(stored, password))


@pytest.fixture
def env():
    e = Env(bind_failures=3, bind_lockout=60)
    e.checks = Checks()
    e.server.bind_guard.verify_fn = e.checks
    yield e
    e.close()


def send_bind(env, ip="127.0.0.1", sid="carrier1", pw="car1pass"):
    session, t = env.connect(ip)
    session.dataReceived(pdus.encode(operations.BindTransceiver(
        1, system_id=sid, password=pw)))
    return session, t


def test_bind_answered_only_after_the_check(env):
    """The bind is not answered until the (threaded) password check fires;
    meanwhile the session refuses a submit and a second bind."""
    session, t = send_bind(env)
    assert responses(t) == [] and len(env.checks.calls) == 1
    assert session.state == "binding"
    session.dataReceived(pdus.encode(operations.BindTransceiver(
        2, system_id="carrier1", password="car1pass")))
    assert [r.status for r, _ in responses(t)] == [status("ESME_RALYBND")]
    t.clear()
    env.checks.answer(0)
    [(resp, _)] = responses(t)
    assert resp.status == 0 and session.state == "bound"
    assert env.server.binds["Carrier1"] == [session]


def test_wrong_password_then_lockout(env):
    """After bind_failures wrong passwords from one address, binds from it
    are refused with ESME_RBINDFAIL without a check (even the right
    password), other addresses still bind, and the lock ends after
    bind_lockout seconds.  The lock-out is logged with the address."""
    events = []
    env.server.bind_guard.log = Logger(observer=events.append)
    for _ in range(3):
        _, t = send_bind(env, "127.0.0.5", pw="wrong")
        env.checks.answer()
        assert responses(t)[0][0].status == status("ESME_RINVPASWD")
        assert t.disconnecting
    checks = len(env.checks.calls)
    _, t = send_bind(env, "127.0.0.5")
    assert responses(t)[0][0].status == status("ESME_RBINDFAIL")
    assert len(env.checks.calls) == checks      # no scrypt for it
    locked = [e for e in events if "locked out" in e["log_format"]]
    assert locked and locked[0]["source"] == "127.0.0.5"
    _, t = send_bind(env, "127.0.0.6")
    env.checks.answer()
    assert responses(t)[0][0].status == 0
    env.clock.advance(61)
    checks = len(env.checks.calls)
    _, t = send_bind(env, "127.0.0.5")
    # The right password checked out from 127.0.0.6: no new check.
    assert len(env.checks.calls) == checks
    assert responses(t)[0][0].status == 0


def test_unknown_system_ids_count_too(env):
    """Guessing system_ids counts toward the lock-out (no check needed)."""
    for i in range(3):
        _, t = send_bind(env, "127.0.0.7", sid=f"guess{i}")
        assert responses(t)[0][0].status == status("ESME_RINVSYSID")
    _, t = send_bind(env, "127.0.0.7")
    assert responses(t)[0][0].status == status("ESME_RBINDFAIL")
    assert env.checks.calls == []


def test_success_forgets_failures(env):
    """A successful bind clears its address's failures."""
    for _ in range(2):
        _, t = send_bind(env, "127.0.0.8", pw="wrong")
        env.checks.answer()
    _, t = send_bind(env, "127.0.0.8")
    env.checks.answer()
    assert responses(t)[0][0].status == 0
    for _ in range(2):
        _, t = send_bind(env, "127.0.0.8", pw="wrong")
        env.checks.answer()
        assert responses(t)[0][0].status == status("ESME_RINVPASWD")


def test_disallowed_address_refused_without_check(env):
    """A bind from an address outside the carrier's allow-ip networks gets
    ESME_RBINDFAIL and costs no password check."""
    _, t = send_bind(env, "192.0.2.1")
    assert responses(t)[0][0].status == status("ESME_RBINDFAIL")
    assert env.checks.calls == [] and t.disconnecting


def test_checks_from_one_source_wait_their_turn():
    """Binds a carrier opens together from one address are checked one at
    a time, each answered in turn; other addresses are checked meanwhile;
    past the per-source limit a bind is refused at once."""
    e = Env(bind_failures=100)
    e.checks = Checks()
    e.server.bind_guard.verify_fn = e.checks
    e.server.bind_guard.per_source = 3
    try:
        ts = [send_bind(e, "127.0.0.9", pw=f"wrong{i}")[1] for i in range(3)]
        assert len(e.checks.calls) == 1
        _, refused = send_bind(e, "127.0.0.9")
        assert responses(refused)[0][0].status == status("ESME_RBINDFAIL")
        send_bind(e, "127.0.0.10")
        assert len(e.checks.calls) == 2
        e.checks.answer(0)
        assert responses(ts[0])[0][0].status == status("ESME_RINVPASWD")
        assert len(e.checks.calls) == 3 and responses(ts[1]) == []
        e.checks.answer(2)
        assert responses(ts[1])[0][0].status == status("ESME_RINVPASWD")
    finally:
        e.close()


def test_good_password_remembered_not_bad_ones(env):
    """A carrier's re-bind with a password that checked out costs no new
    check; a wrong password is checked every time; a changed password
    (another stored hash) is checked again."""
    s1, t1 = send_bind(env, "127.0.0.11")
    env.checks.answer()
    assert responses(t1)[0][0].status == 0
    s1.connectionLost(None)
    s2, t2 = send_bind(env, "127.0.0.11")
    assert len(env.checks.calls) == 1
    assert responses(t2)[0][0].status == 0
    s2.connectionLost(None)
    for _ in range(2):
        _, t = send_bind(env, "127.0.0.12", pw="wrong")
        env.checks.answer()
        assert responses(t)[0][0].status == status("ESME_RINVPASWD")
    assert len(env.checks.calls) == 3
    guard = env.server.bind_guard
    assert not guard._good or all(
        b"car1pass" not in k for k in guard._good)
    guard._good.clear()
    _, t3 = send_bind(env, "127.0.0.11")
    assert len(env.checks.calls) == 4


def test_checks_run_two_at_a_time():
    """At most two password checks run at once; more wait their turn."""
    e = Env(bind_failures=100)
    e.checks = Checks()
    e.server.bind_guard.verify_fn = e.checks
    try:
        ts = [send_bind(e, f"127.0.1.{i}")[1] for i in range(4)]
        assert len(e.checks.calls) == 2
        e.checks.answer(0)
        assert len(e.checks.calls) == 3
        assert responses(ts[0])[0][0].status == 0
    finally:
        e.close()


def test_connection_lost_during_check(env):
    """A session closed while its check runs is not counted as bound."""
    session, t = send_bind(env)
    session.connectionLost(None)
    env.checks.answer()
    assert env.server.binds.get("Carrier1", []) == []
    assert env.server.bind_guard.checking == {}


def test_failed_check_answers_system_error(env):
    """A check that fails (not: says no) answers ESME_RSYSERR, closes."""
    session, t = send_bind(env)
    env.checks.calls[0][2].errback(RuntimeError("pool gone"))
    assert responses(t)[0][0].status == status("ESME_RSYSERR")
    assert t.disconnecting
