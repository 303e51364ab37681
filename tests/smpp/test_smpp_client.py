"""Tests for L{appliance.smpp.client}: the ESME bind state machine on a
C{StringTransport} and a C{task.Clock}."""
from smpp.pdu import operations, pdu_types as T
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from appliance.smpp import pdus
from appliance.smpp import receipts as R
from appliance.smpp.client import (
    BindLost, BindRefused, Credentials, ESMEFactory, ESMEProtocol,
    RequestTimeout, Timers)
from appliance.smpp.pdus import Status
from appliance.smpp.remote import read_hops, submit_frames


def written(transport):
    """Decode and clear what the client wrote: [(Header, frame)]."""
    frames, rest = pdus.split_frames(transport.value())
    assert rest == b""
    transport.clear()
    return [(pdus.header(f), f) for f in frames]


def bind_resp(seq, status=0, command=0x80000009):
    """A bind response."""
    if status:
        return pdus.HEADER.pack(16, command, status, seq)
    return pdus.bind_response(pdus.Header(0, command & 0x7FFFFFFF, 0, seq),
                              "env4")


def submit_resp(seq, message_id="ff", status=0):
    """A submit_sm_resp."""
    if status:
        return pdus.HEADER.pack(16, 0x80000004, status, seq)
    return pdus.encode(operations.SubmitSMResp(seq, message_id=message_id))


class ClientTests(SynchronousTestCase):
    """One bind on a fake transport."""

    def setUp(self):
        self.clock = task.Clock()
        self.slots = 0
        self.lost = []
        self.receipts = []
        self.protocol = ESMEProtocol(
            Credentials("env1", "secret", "transceiver"), self.clock,
            Timers(bind_timeout=5, response_timeout=10, enquire_link=30),
            window=2, on_receipt=self.on_receipt, on_slot=self.on_slot,
            on_lost=self.lost.append, name="env4#1")
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def on_receipt(self, pdu):
        self.receipts.append(pdu)
        return 0

    def on_slot(self):
        self.slots += 1

    def bind(self):
        [(h, frame)] = written(self.transport)
        self.protocol.dataReceived(bind_resp(h.sequence))
        return self.successResultOf(self.protocol.bound)

    def close(self):
        self.protocol.connectionLost(Failure(ConnectionError("gone")))

    def test_bind_sent_and_accepted(self):
        """The client sends bind_transceiver with its system_id and
        password; a bind_resp OK fires C{bound} and opens the window."""
        [(h, frame)] = written(self.transport)
        assert h.command_id == 0x00000009
        pdu = pdus.decode(frame)
        assert pdu.params["system_id"] == b"env1"
        assert pdu.params["password"] == b"secret"
        assert self.protocol.free == 0
        self.protocol.dataReceived(bind_resp(h.sequence))
        assert self.successResultOf(self.protocol.bound) is self.protocol
        assert self.protocol.state == "bound"
        assert self.protocol.peer_system_id == "env4"
        assert self.protocol.free == 2 and self.slots == 1

    def test_transmitter_bind(self):
        """A transmitter connection sends bind_transmitter."""
        p = ESMEProtocol(Credentials("a", "b", "transmitter"), self.clock)
        t = StringTransport()
        p.makeConnection(t)
        [(h, _)] = written(t)
        assert h.command_id == 0x00000002
        self.assertRaises(ValueError, ESMEProtocol,
                          Credentials("a", "b", "receiver"), self.clock)

    def test_bind_refused(self):
        """A bind_resp with an error fails C{bound} with L{BindRefused}
        carrying the status, and closes the connection."""
        [(h, _)] = written(self.transport)
        self.protocol.dataReceived(bind_resp(h.sequence, status=0x0E))
        f = self.failureResultOf(self.protocol.bound, BindRefused)
        assert f.value.status == 0x0E
        assert "ESME_RINVPASWD" in str(f.value)
        assert self.transport.disconnecting

    def test_bind_timeout(self):
        """No bind_resp within the bind timeout: C{bound} fails and the
        connection closes."""
        self.clock.advance(5)
        self.failureResultOf(self.protocol.bound, RequestTimeout)
        assert self.transport.disconnecting

    def test_lost_before_bind(self):
        """A connection closed before the bind_resp fails C{bound} with
        L{BindLost}, and no timer is left."""
        self.close()
        self.failureResultOf(self.protocol.bound, BindLost)
        assert self.clock.getDelayedCalls() == []
        assert self.lost == [self.protocol]

    def test_submit_before_bind(self):
        """Submitting before the bind is up fails at once."""
        self.failureResultOf(self.protocol.submit(lambda s: b""), BindLost)

    def test_window_and_response(self):
        """Two submits fill a window of 2; a response frees a slot, calls
        on_slot, and gives the message id."""
        self.bind()
        out = submit_frames("1111", "2222", "hi", 0, hops=3)
        d1 = self.protocol.submit(lambda seq: out.frame(0, seq))
        d2 = self.protocol.submit(lambda seq: out.frame(0, seq))
        assert self.protocol.free == 0
        sent = written(self.transport)
        assert [h.command_id for h, _ in sent] == [4, 4]
        assert read_hops(sent[0][1]) == 3
        self.protocol.dataReceived(submit_resp(sent[1][0].sequence, "abc"))
        assert self.successResultOf(d2) == (0, "abc")
        assert self.protocol.free == 1 and self.slots == 2
        self.assertNoResult(d1)
        self.protocol.dataReceived(submit_resp(sent[0][0].sequence,
                                               status=0x58))
        assert self.successResultOf(d1) == (0x58, "")

    def test_response_timeout(self):
        """A submit without a response within the response timeout fails
        with L{RequestTimeout} and frees its slot; a late response is
        ignored."""
        self.bind()
        d = self.protocol.submit(lambda seq: pdus.request(4, seq))
        [(h, _)] = written(self.transport)
        self.clock.advance(10)
        self.failureResultOf(d, RequestTimeout)
        assert self.protocol.free == 2
        self.protocol.dataReceived(submit_resp(h.sequence))
        assert not self.transport.disconnecting

    def test_response_timeouts_staggered(self):
        """Requests sent at different times each time out at their own
        deadline, answered ones never; one timer serves them all."""
        self.bind()
        timers = len(self.clock.getDelayedCalls())
        d1 = self.protocol.submit(lambda seq: pdus.request(4, seq))
        self.clock.advance(4)
        d2 = self.protocol.submit(lambda seq: pdus.request(4, seq))
        self.clock.advance(3)
        d3 = self.protocol.submit(lambda seq: pdus.request(4, seq))
        assert len(self.clock.getDelayedCalls()) == timers + 1
        [(h1, _), (h2, _), (h3, _)] = written(self.transport)
        self.protocol.dataReceived(submit_resp(h1.sequence))
        assert self.successResultOf(d1) == (0, "ff")
        self.clock.advance(3.5)         # t=10.5: d1's deadline, answered
        self.assertNoResult(d2)
        self.clock.advance(3.5)         # t=14: d2's deadline
        self.failureResultOf(d2, RequestTimeout)
        self.assertNoResult(d3)
        self.clock.advance(2.9)
        self.assertNoResult(d3)
        self.clock.advance(0.1)         # t=17: d3's deadline
        self.failureResultOf(d3, RequestTimeout)
        assert self.protocol.free == 2
        assert len(self.clock.getDelayedCalls()) == timers

    def test_lost_bind_fails_outstanding(self):
        """Losing the connection fails every outstanding submit with
        L{BindLost} and cancels its timers."""
        self.bind()
        d = self.protocol.submit(lambda seq: pdus.request(4, seq))
        self.close()
        self.failureResultOf(d, BindLost)
        assert self.protocol.state == "closed"
        assert self.clock.getDelayedCalls() == []

    def test_enquire_link_when_idle(self):
        """After the enquire_link interval of silence the client sends
        enquire_link; no answer within the response timeout closes the
        connection."""
        self.bind()
        self.clock.advance(30)
        [(h, _)] = written(self.transport)
        assert h.command_id == 0x00000015
        self.clock.advance(10)
        assert self.transport.disconnecting

    def test_enquire_link_answered(self):
        """An answered enquire_link keeps the bind; traffic defers the next
        one."""
        self.bind()
        self.clock.advance(30)
        [(h, _)] = written(self.transport)
        self.protocol.dataReceived(pdus.bare_response(
            0x80000015, h.sequence, Status.ESME_ROK))
        self.clock.advance(29)
        assert written(self.transport) == []
        assert not self.transport.disconnecting

    def test_answers_peer_enquire_link(self):
        """The far side's enquire_link gets enquire_link_resp."""
        self.bind()
        self.protocol.dataReceived(pdus.request(0x15, 77))
        [(h, _)] = written(self.transport)
        assert (h.command_id, h.sequence, h.status) == (0x80000015, 77, 0)

    def test_receipt_answered(self):
        """A deliver_sm goes to on_receipt; its status comes back in
        deliver_sm_resp."""
        self.bind()
        frame = R.deliver_sm(9, R.Receipt("ab", "delivered", 0, 0, "x",
                                          "1111", "2222"))
        self.protocol.dataReceived(frame)
        assert len(self.receipts) == 1
        [(h, _)] = written(self.transport)
        assert (h.command_id, h.sequence, h.status) == (0x80000005, 9, 0)

    def test_receipt_answer_waits(self):
        """deliver_sm_resp waits for the handler's Deferred and carries an
        error status it returns."""
        self.bind()
        pending = defer.Deferred()
        self.protocol.on_receipt = lambda pdu: pending
        self.protocol.dataReceived(R.deliver_sm(
            4, R.Receipt("ab", "failed", 0, 0, "x", "1", "2")))
        assert written(self.transport) == []
        pending.callback(0x65)
        [(h, _)] = written(self.transport)
        assert (h.sequence, h.status) == (4, 0x65)

    def test_bad_deliver_sm(self):
        """A malformed deliver_sm is answered with an error, not a crash."""
        self.bind()
        self.protocol.dataReceived(pdus.HEADER.pack(17, 5, 0, 3) + b"\xff")
        [(h, _)] = written(self.transport)
        assert h.command_id == 0x80000005 and h.status != 0

    def test_peer_unbind(self):
        """The far side's unbind is answered and the connection closed."""
        self.bind()
        self.protocol.dataReceived(pdus.request(6, 5))
        [(h, _)] = written(self.transport)
        assert (h.command_id, h.status) == (0x80000006, 0)
        assert self.transport.disconnecting

    def test_unbind(self):
        """unbind() sends unbind and closes on unbind_resp; the Deferred
        fires once the connection is lost."""
        self.bind()
        d = self.protocol.unbind()
        [(h, _)] = written(self.transport)
        assert h.command_id == 6
        self.protocol.dataReceived(pdus.bare_response(
            0x80000006, h.sequence, Status.ESME_ROK))
        assert self.transport.disconnecting
        self.assertNoResult(d)
        self.close()
        self.successResultOf(d)

    def test_unknown_request_nacked(self):
        """An unknown request gets generic_nack ESME_RINVCMDID."""
        self.bind()
        self.protocol.dataReceived(pdus.request(0x0099, 8))
        [(h, _)] = written(self.transport)
        assert (h.command_id, h.status) == (0x80000000, 0x03)

    def test_framing_error_closes(self):
        """A command_length below 16 closes the connection."""
        self.protocol.dataReceived(b"\x00\x00\x00\x02" + b"\x00" * 12)
        assert self.transport.disconnecting

    def test_sequence_wraps(self):
        """Sequence numbers stay within 1..0x7FFFFFFF."""
        self.protocol._sequence = 0x7FFFFFFF
        assert self.protocol._next_sequence() == 1

    def test_factory(self):
        """The factory builds a fresh protocol each time."""
        f = ESMEFactory(lambda: ESMEProtocol(Credentials("a", "b"),
                                             self.clock))
        p1, p2 = f.buildProtocol(None), f.buildProtocol(None)
        assert p1 is not p2 and p1.factory is f
