"""
Tests for L{appliance.sip.transaction}: every RFC 3261 section 17 timer
path, driven with C{task.Clock}.
"""
from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from appliance.sip.interfaces import ISIPTransport, ITransactionUser
from appliance.sip.message import Request, Response, make_response, parse
from appliance.sip.transaction import (
    InviteServerTransaction, NonInviteServerTransaction, State, TimerSettings, TransactionLayer,
    new_branch, response_destination,
)
from appliance.sip.headers import Via

T1, T2, T4 = 0.5, 4.0, 5.0


@implementer(ISIPTransport)
class FakeTransport:
    """
    Records what is sent; C{fail} makes C{send} raise.
    """

    def __init__(self, reliable: bool = False) -> None:
        self.reliable = reliable
        self.name = "TCP" if reliable else "UDP"
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.fail = False

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        """Record or fail."""
        if self.fail:
            raise OSError("network unreachable")
        self.sent.append((data, address))

    def first_lines(self) -> list[str]:
        """The start lines of what was sent."""
        return [d.split(b"\r\n", 1)[0].decode() for d, _ in self.sent]


@implementer(ITransactionUser)
class RecordingUser:
    """
    Records what the layer tells the TU; may answer at once or raise.
    """

    def __init__(self, answer: int | None = None, explode: bool = False) -> None:
        self.requests: list[tuple[Request, object]] = []
        self.responses: list[tuple[Response, object]] = []
        self.timeouts: list[object] = []
        self.answer = answer
        self.explode = explode

    def request_received(self, request, server_transaction) -> None:
        self.requests.append((request, server_transaction))
        if self.explode:
            raise RuntimeError("TU bug")
        if self.answer is not None and server_transaction is not None:
            server_transaction.respond(make_response(request, self.answer, to_tag="t"))

    def response_received(self, response, client_transaction) -> None:
        self.responses.append((response, client_transaction))

    def transaction_timed_out(self, server_transaction) -> None:
        self.timeouts.append(server_transaction)


def request(method: str = "MESSAGE", branch: str = "z9hG4bKabc", host: str = "192.0.2.1",
            extra: str = ";rport=4000;received=198.51.100.1", cseq_method: str | None = None) -> Request:
    """
    A parsed request with one Via.
    """
    raw = (f"{method} sip:bob@example.com SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP {host}:5060;branch={branch}{extra}\r\n"
           "From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
           f"Call-ID: call-1\r\nCSeq: 5 {cseq_method or method}\r\nContent-Length: 0\r\n\r\n")
    msg = parse(raw.encode())
    assert isinstance(msg, Request)
    return msg


def response(req: Request, status: int) -> Response:
    """
    A response to C{req} as a peer would send it (serialized and re-parsed).
    """
    msg = parse(make_response(req, status).to_bytes())
    assert isinstance(msg, Response)
    return msg


def setup(reliable: bool = False, answer: int | None = None):
    """
    A clock, a recording TU, a layer with default timers and a fake transport.
    """
    clock = Clock()
    user = RecordingUser(answer)
    layer = TransactionLayer(user, clock, TimerSettings(T1, T2, T4, trying_delay=0.2))
    return clock, user, layer, FakeTransport(reliable)


SOURCE = ("198.51.100.1", 4000)


def test_fakes_provide_interfaces() -> None:
    """
    The fake transport and the recording TU provide the interfaces.
    """
    assert verifyObject(ISIPTransport, FakeTransport())
    assert verifyObject(ITransactionUser, RecordingUser())


def test_client_timer_e_backoff_and_timer_f_408() -> None:
    """
    On UDP a non-INVITE request is retransmitted at T1, 2T1, 4T1, then every
    T2; timer F (64*T1) reports a synthesized 408 to the TU and the Deferred.
    """
    clock, user, layer, transport = setup()
    req = request(branch=new_branch())
    tx = layer.send_request(req, transport, ("203.0.113.5", 5060))
    results = []
    tx.final.addCallback(results.append)
    times = []
    for _ in range(int(64 * T1 / 0.25)):
        before = len(transport.sent)
        clock.advance(0.25)
        if len(transport.sent) > before:
            times.append(clock.seconds())
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert all(b - a == T2 for a, b in zip(times[3:], times[4:]))
    assert [r.status for r, _ in user.responses] == [408]
    assert results[0].status == 408 and tx.state is State.TERMINATED
    assert layer.transactions() == [] and clock.getDelayedCalls() == []


def test_client_provisional_then_final_then_timer_k() -> None:
    """
    A 1xx moves to Proceeding (E then fires every T2), a final response
    stops E and F, reaches the TU once, and timer K (T4) ends the transaction
    while retransmitted finals are absorbed.
    """
    clock, user, layer, transport = setup()
    req = request(branch=new_branch())
    tx = layer.send_request(req, transport, ("203.0.113.5", 5060))
    layer.receive(response(req, 100), transport, SOURCE)
    assert tx.state is State.PROCEEDING
    clock.advance(T1)
    clock.advance(T2)
    assert len(transport.sent) == 3
    layer.receive(response(req, 202), transport, SOURCE)
    layer.receive(response(req, 202), transport, SOURCE)
    assert [r.status for r, _ in user.responses] == [100, 202]
    assert tx.state is State.COMPLETED and tx.pending_timers() == ["K"]
    clock.advance(T4)
    assert tx.state is State.TERMINATED and clock.getDelayedCalls() == []


def test_client_reliable_no_retransmission() -> None:
    """
    Over TCP there is no timer E and a final response terminates at once.
    """
    clock, user, layer, transport = setup(reliable=True)
    req = request(branch=new_branch())
    tx = layer.send_request(req, transport, ("203.0.113.5", 5060))
    assert tx.pending_timers() == ["F"]
    clock.advance(10)
    assert len(transport.sent) == 1
    layer.receive(response(req, 200), transport, SOURCE)
    assert tx.state is State.TERMINATED and clock.getDelayedCalls() == []


def test_client_transport_error_reports_503() -> None:
    """
    A send that raises reports a synthesized 503 and leaves no timers.
    """
    clock, user, layer, transport = setup()
    transport.fail = True
    tx = layer.send_request(request(branch=new_branch()), transport, ("203.0.113.5", 5060))
    assert [r.status for r, _ in user.responses] == [503]
    assert tx.state is State.TERMINATED and clock.getDelayedCalls() == []


def test_send_request_refuses_bad_requests() -> None:
    """
    INVITE, a branch without the magic cookie and a reused branch are refused.
    """
    clock, user, layer, transport = setup()
    with pytest.raises(ValueError):
        layer.send_request(request("INVITE"), transport, SOURCE)
    with pytest.raises(ValueError):
        layer.send_request(request(branch="old-style"), transport, SOURCE)
    layer.send_request(request(), transport, SOURCE)
    with pytest.raises(ValueError):
        layer.send_request(request(), transport, SOURCE)


def test_stray_response_dropped() -> None:
    """
    A response matching no client transaction is dropped, not given to the TU.
    """
    clock, user, layer, transport = setup()
    layer.receive(response(request(), 200), transport, SOURCE)
    assert user.responses == []


def test_non_invite_server_absorbs_and_timer_j() -> None:
    """
    A new request reaches the TU once; retransmissions before the answer are
    dropped, after it re-send the final response; timer J ends it.
    """
    clock, user, layer, transport = setup()
    req = request()
    layer.receive(req, transport, SOURCE)
    layer.receive(request(), transport, SOURCE)
    assert len(user.requests) == 1 and transport.sent == []
    tx = user.requests[0][1]
    assert isinstance(tx, NonInviteServerTransaction) and tx.state is State.TRYING
    assert tx.respond(make_response(req, 100))
    layer.receive(request(), transport, SOURCE)
    assert transport.first_lines() == ["SIP/2.0 100 Trying"] * 2
    assert tx.respond(make_response(req, 202, to_tag="x"))
    layer.receive(request(), transport, SOURCE)
    assert transport.first_lines()[2:] == ["SIP/2.0 202 Accepted"] * 2
    assert not tx.respond(make_response(req, 500))
    assert transport.sent[0][1] == SOURCE
    clock.advance(64 * T1 - 0.01)
    [kept] = layer.transactions()
    assert kept.state is State.COMPLETED and kept.method == "MESSAGE"
    layer.receive(request(), transport, SOURCE)
    assert transport.first_lines()[4:] == ["SIP/2.0 202 Accepted"]
    clock.advance(0.01)
    assert layer.transactions() == [] and clock.getDelayedCalls() == []
    layer.receive(request(), transport, SOURCE)
    assert len(user.requests) == 2


def test_completed_udp_transaction_keeps_only_the_response_bytes() -> None:
    """
    Once a non-INVITE server transaction over UDP has sent its final
    response, the layer keeps a L{CompletedTransaction} (its key, the
    response bytes, the address) instead of the transaction and its
    request; a retransmission gets the same bytes, and the timer J of many
    completed transactions ends them with one delayed call.
    """
    from appliance.sip.transaction import CompletedTransaction
    clock, user, layer, transport = setup(answer=200)
    for i in range(3):
        layer.receive(request(branch=f"z9hG4bKc{i}"), transport, SOURCE)
        clock.advance(1)
    kept = layer.transactions()
    assert [type(k) for k in kept] == [CompletedTransaction] * 3
    assert [k.branch for k in kept] == ["z9hG4bKc0", "z9hG4bKc1", "z9hG4bKc2"]
    assert not hasattr(kept[0], "request") and kept[0].wire == transport.sent[0][0]
    layer.receive(request(branch="z9hG4bKc1"), transport, SOURCE)
    assert transport.sent[-1] == transport.sent[1] and len(user.requests) == 3
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(64 * T1 - 3 + 0.5)      # 0.5 s past the first one's timer J
    assert [k.branch for k in layer.transactions()] == ["z9hG4bKc1", "z9hG4bKc2"]
    clock.advance(1.5)
    assert layer.transactions() == [] and clock.getDelayedCalls() == []


def test_non_invite_server_reliable_terminates_at_once() -> None:
    """
    Over TCP, timer J is zero: the final response terminates the transaction.
    """
    clock, user, layer, transport = setup(reliable=True, answer=200)
    layer.receive(request(), transport, SOURCE)
    assert layer.transactions() == [] and clock.getDelayedCalls() == []


def test_tu_exception_answers_500() -> None:
    """
    A TU that raises gets its request answered with 500, the layer survives.
    """
    clock, user, layer, transport = setup()
    user.explode = True
    layer.receive(request(), transport, SOURCE)
    assert transport.first_lines() == ["SIP/2.0 500 Server Internal Error"]


def test_invite_server_trying_timer_g_h() -> None:
    """
    An INVITE gets 100 Trying after 200 ms; a 486 is retransmitted at T1,
    2T1, ... capped at T2 until timer H (64*T1) tells the TU no ACK came.
    """
    clock, user, layer, transport = setup()
    inv = request("INVITE")
    layer.receive(inv, transport, SOURCE)
    tx = user.requests[0][1]
    assert isinstance(tx, InviteServerTransaction) and transport.sent == []
    clock.advance(0.2)
    assert transport.first_lines() == ["SIP/2.0 100 Trying"]
    layer.receive(request("INVITE"), transport, SOURCE)
    assert len(transport.sent) == 2
    tx.respond(make_response(inv, 486, to_tag="b"))
    times = []
    for _ in range(int(64 * T1 / 0.25)):
        before = len(transport.sent)
        clock.advance(0.25)
        if len(transport.sent) > before:
            times.append(round(clock.seconds() - 0.2, 6))
    assert times[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]
    assert user.timeouts == [tx] and tx.state is State.TERMINATED
    assert clock.getDelayedCalls() == []


def test_invite_server_ack_confirms_and_timer_i() -> None:
    """
    The ACK for a 486 moves to Confirmed, stops G and H, is absorbed (not
    given to the TU), and timer I (T4) ends the transaction.
    """
    clock, user, layer, transport = setup(answer=486)
    inv = request("INVITE")
    layer.receive(inv, transport, SOURCE)
    tx = user.requests[0][1]
    assert transport.first_lines() == ["SIP/2.0 486 Busy Here"]
    layer.receive(request("INVITE"), transport, SOURCE)
    assert len(transport.sent) == 2
    ack = request("ACK")
    layer.receive(ack, transport, SOURCE)
    layer.receive(ack, transport, SOURCE)
    assert tx.state is State.CONFIRMED and tx.pending_timers() == ["I"]
    assert len(user.requests) == 1
    clock.advance(T4)
    assert tx.state is State.TERMINATED and clock.getDelayedCalls() == []


def test_invite_server_reliable() -> None:
    """
    Over TCP a final non-2xx is not retransmitted (no G), and the ACK ends
    the transaction at once (timer I is zero).
    """
    clock, user, layer, transport = setup(reliable=True, answer=480)
    layer.receive(request("INVITE"), transport, SOURCE)
    tx = user.requests[0][1]
    assert tx.pending_timers() == ["H"]
    layer.receive(request("ACK"), transport, SOURCE)
    assert tx.state is State.TERMINATED and clock.getDelayedCalls() == []


def test_invite_server_2xx_accepted_timer_l() -> None:
    """
    After a 2xx the transaction absorbs INVITE retransmissions (RFC 6026)
    until timer L; the ACK to the 2xx (new branch) goes to the TU.
    """
    clock, user, layer, transport = setup(answer=200)
    layer.receive(request("INVITE"), transport, SOURCE)
    tx = user.requests[0][1]
    assert tx.state is State.ACCEPTED
    layer.receive(request("INVITE"), transport, SOURCE)
    assert len(transport.sent) == 1
    layer.receive(request("ACK", branch="z9hG4bKother"), transport, SOURCE)
    assert user.requests[-1][1] is None
    clock.advance(64 * T1)
    assert tx.state is State.TERMINATED and clock.getDelayedCalls() == []


def test_rfc2543_key_matching() -> None:
    """
    Requests whose branch lacks the magic cookie are matched by the RFC 2543
    key, so a retransmission is still absorbed.
    """
    clock, user, layer, transport = setup(answer=200)
    layer.receive(request(branch="1234"), transport, SOURCE)
    layer.receive(request(branch="1234"), transport, SOURCE)
    assert len(user.requests) == 1 and len(transport.sent) == 2


def test_same_branch_different_sent_by_or_method() -> None:
    """
    The same branch from another sent-by, or with another method (CANCEL),
    is a different transaction; find_server_transaction finds the INVITE.
    """
    clock, user, layer, transport = setup()
    inv = request("INVITE")
    layer.receive(inv, transport, SOURCE)
    layer.receive(request(host="192.0.2.99"), transport, SOURCE)
    cancel = request("CANCEL")
    layer.receive(cancel, transport, SOURCE)
    assert len(user.requests) == 3
    assert layer.find_server_transaction(cancel, "INVITE") is user.requests[0][1]
    layer.stop()
    assert layer.transactions() == [] and clock.getDelayedCalls() == []


def test_response_destination() -> None:
    """
    UDP responses go to received/rport when present, else sent-by port.
    """
    assert response_destination(Via.parse("SIP/2.0/UDP h:5070;received=1.2.3.4;rport=9"), SOURCE) == ("1.2.3.4", 9)
    assert response_destination(Via.parse("SIP/2.0/UDP h:5070;received=1.2.3.4"), SOURCE) == ("1.2.3.4", 5070)
    assert response_destination(Via.parse("SIP/2.0/UDP [::1]"), SOURCE) == ("::1", 5060)
    assert response_destination(Via.parse("SIP/2.0/UDP h;rport"), SOURCE) == SOURCE


def test_invite_server_immediate_trying_and_late_responses() -> None:
    """
    With a zero Trying delay, 100 goes out at once; a provisional is re-sent
    on INVITE retransmission; responses after Completed are refused.
    """
    clock = Clock()
    user = RecordingUser()
    layer = TransactionLayer(user, clock, TimerSettings(trying_delay=0))
    transport = FakeTransport()
    inv = request("INVITE")
    layer.receive(inv, transport, SOURCE)
    tx = user.requests[0][1]
    assert transport.first_lines() == ["SIP/2.0 100 Trying"]
    assert tx.respond(make_response(inv, 180, to_tag="b"))
    layer.receive(request("INVITE"), transport, SOURCE)
    assert transport.first_lines()[1:] == ["SIP/2.0 180 Ringing"] * 2
    assert tx.respond(make_response(inv, 486, to_tag="b"))
    assert not tx.respond(make_response(inv, 200, to_tag="b"))
    layer.stop()
    assert clock.getDelayedCalls() == []
