"""The SMPP session state machine: binds, refusals, timers, bad PDUs."""
import struct

import pytest
from smpp.pdu import operations

from appliance.smpp import pdus
from tests.smpp.smpp_env import Env, responses, status, submit_sm


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def test_bind_transceiver_ok(env):
    """A bind with the right system_id, password and source gets
    ESME_ROK with our system_id, and shows in the server's binds."""
    session, t, st = env.bind()
    assert st == 0
    assert session.state == "bound" and session.bind_type == "transceiver"
    assert env.server.binds["Carrier1"] == [session]


@pytest.mark.parametrize("sid,pw,ip,expected", [
    ("nobody", "car1pass", "127.0.0.1", "ESME_RINVSYSID"),
    ("carrier1", "wrong", "127.0.0.1", "ESME_RINVPASWD"),
    ("carrier1", "car1pass", "10.1.2.3", "ESME_RBINDFAIL"),
    ("closed", "closedpw", "127.0.0.1", "ESME_RBINDFAIL"),
])
def test_bind_refusals(env, sid, pw, ip, expected):
    """Each kind of refused bind gets its own status and is disconnected:
    unknown system_id, wrong password, source not allowed, disabled."""
    session, t, st = env.bind(sid=sid, pw=pw, ip=ip)
    assert st == status(expected)
    assert t.disconnecting
    assert not env.server.binds.get("Carrier1")


def test_max_binds(env):
    """A carrier at its max_binds gets ESME_RALYBND for one more bind."""
    _, _, first = env.bind(sid="carrier2", pw="car2pass")
    _, t, second = env.bind(sid="carrier2", pw="car2pass")
    assert (first, second) == (0, status("ESME_RALYBND"))
    assert t.disconnecting


def test_bind_twice(env):
    """A second bind on a bound session gets ESME_RALYBND and the session
    stays bound."""
    session, t, _ = env.bind()
    session.dataReceived(pdus.encode(operations.BindTransmitter(
        2, system_id="carrier1", password="car1pass")))
    (h, _), = responses(t)
    assert h.status == status("ESME_RALYBND")
    assert session.state == "bound" and not t.disconnecting


def test_submit_before_bind(env):
    """submit_sm on an unbound session gets ESME_RINVBNDSTS; the session
    stays open."""
    session, t = env.connect()
    session.dataReceived(submit_sm(3))
    (h, _), = responses(t)
    assert (h.command_id, h.status) == (0x80000004, status("ESME_RINVBNDSTS"))
    assert not t.disconnecting


def test_receiver_cannot_submit(env):
    """A receiver bind gets ESME_RINVBNDSTS for submit_sm."""
    session, t, _ = env.bind("receiver")
    session.dataReceived(submit_sm(3))
    (h, _), = responses(t)
    assert h.status == status("ESME_RINVBNDSTS")


def test_unknown_command_generic_nack(env):
    """An unknown command id gets generic_nack ESME_RINVCMDID with its
    sequence number, and the session still works."""
    session, t, _ = env.bind()
    session.dataReceived(struct.pack(">IIII", 16, 0x00000777, 0, 42))
    (h, _), = responses(t)
    assert (h.command_id, h.status, h.sequence) == (
        0x80000000, status("ESME_RINVCMDID"), 42)
    session.dataReceived(struct.pack(">IIII", 16, 0x15, 0, 43))
    (h, _), = responses(t)
    assert (h.command_id, h.status, h.sequence) == (0x80000015, 0, 43)


def test_malformed_submit_survives(env):
    """A truncated submit_sm body gets a submit_sm_resp with an error
    status; the next good submit is accepted."""
    session, t, _ = env.bind()
    good = submit_sm(5)
    bad = struct.pack(">I", 16 + 5) + good[4:16] + b"\0\x01\x01ab"
    session.dataReceived(bad)
    (h, _), = responses(t)
    assert h.command_id == 0x80000004 and h.status != 0
    assert session.state == "bound"
    session.dataReceived(good)
    env.settle()
    (h, _), = responses(t)
    assert (h.sequence, h.status) == (5, 0)


def test_enquire_link_with_body(env):
    """An enquire_link with a body gets generic_nack ESME_RINVCMDLEN."""
    session, t, _ = env.bind()
    session.dataReceived(struct.pack(">IIII", 20, 0x15, 0, 9) + b"abcd")
    (h, _), = responses(t)
    assert (h.command_id, h.status) == (0x80000000, status("ESME_RINVCMDLEN"))


def test_framing_error_closes(env):
    """A command_length below 16 makes the stream unreadable: generic_nack
    ESME_RINVCMDLEN, then the session closes."""
    session, t, _ = env.bind()
    session.dataReceived(struct.pack(">IIII", 8, 4, 0, 1))
    (h, _), = responses(t)
    assert h.status == status("ESME_RINVCMDLEN")
    assert t.disconnecting


def test_split_pdu_across_reads(env):
    """A PDU split across reads is handled once it is whole."""
    session, t, _ = env.bind()
    frame = struct.pack(">IIII", 16, 0x15, 0, 77)
    session.dataReceived(frame[:5])
    assert t.value() == b""
    session.dataReceived(frame[5:])
    (h, _), = responses(t)
    assert h.sequence == 77


def test_bind_timeout(env):
    """A connection that does not bind within bind_timeout is closed."""
    session, t = env.connect()
    env.clock.advance(29)
    assert not t.disconnecting
    env.clock.advance(2)
    assert t.disconnecting


def test_idle_timeout():
    """A bound session from which nothing arrives for idle_timeout is
    closed; any PDU from the peer restarts the count."""
    env = Env(idle_timeout=100, enquire_link_interval=1000)
    try:
        session, t, _ = env.bind()
        env.clock.advance(90)
        session.dataReceived(struct.pack(">IIII", 16, 0x15, 0, 5))
        env.clock.advance(90)
        assert not t.disconnecting
        env.clock.advance(11)
        assert t.disconnecting
    finally:
        env.close()


def test_enquire_link_sent_and_unanswered_closes(env):
    """After enquire_link_interval of silence we send enquire_link; no
    answer within response_timeout closes the session."""
    session, t, _ = env.bind()
    env.clock.advance(30)
    (h, _), = responses(t)
    assert h.command_id == 0x15
    env.clock.advance(31)
    assert t.disconnecting


def test_unbind(env):
    """unbind gets unbind_resp and the session closes; it leaves the
    carrier's binds when the connection is lost."""
    session, t, _ = env.bind()
    session.dataReceived(struct.pack(">IIII", 16, 6, 0, 8))
    (h, _), = responses(t)
    assert (h.command_id, h.sequence, h.status) == (0x80000006, 8, 0)
    assert t.disconnecting
    session.connectionLost(None)
    assert env.server.binds["Carrier1"] == []


def test_unbind_waits_for_inflight(env):
    """An unbind while a submit awaits its commit is answered after that
    submit's response."""
    session, t, _ = env.bind()
    session.dataReceived(submit_sm(2) + struct.pack(">IIII", 16, 6, 0, 3))
    assert t.value() == b""
    env.settle()
    got = [(h.command_id, h.sequence) for h, _ in responses(t)]
    assert got == [(0x80000004, 2), (0x80000006, 3)]


def test_query_sm_refused(env):
    """query_sm, which we do not serve, gets query_sm_resp
    ESME_RQUERYFAIL."""
    session, t, _ = env.bind()
    session.dataReceived(pdus.encode(operations.QuerySM(
        4, message_id="1", source_addr="x")))
    (h, _), = responses(t)
    assert (h.command_id, h.status) == (0x80000003, status("ESME_RQUERYFAIL"))
