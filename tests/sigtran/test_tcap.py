"""
Tests for L{appliance.sigtran.tcap}: dialogues, timers on a clock, the
context negotiation and the answers to bad input.
"""
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.sigtran import tcapcodec as T
from appliance.sigtran.interfaces import ISCCPProvider, ISCCPUser, NoRoute, SCCPAddress
from appliance.sigtran.tcap import TCAPLayer, Reply, RESULT, ERROR
from tests.sigtran.fakes import FakeSCCP, pair

AC3 = (0, 4, 0, 0, 1, 0, 20, 3)
AC2 = (0, 4, 0, 0, 1, 0, 20, 2)
HLR = SCCPAddress(gt="447700900111", ssn=6)


class TCAPTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.a, self.b = pair()
        self.client = TCAPLayer(self.a, self.clock, 8, limit=20000, timeout=10)
        self.server = TCAPLayer(self.b, self.clock, 6, timeout=10)
        self.a.register_ssn(8, self.client)
        self.b.register_ssn(6, self.server)

    def test_interfaces(self):
        """The layer is an ISCCPUser and the fake an ISCCPProvider."""
        verifyObject(ISCCPUser, self.client)
        verifyObject(ISCCPProvider, self.a)

    def test_invoke_answered_in_an_end(self):
        """An invoke to a served context gets its result in an End with an accepting AARE; nothing stays open."""
        self.server.serve(20, {3}, {45: lambda op: Reply(RESULT, b"\x30\x00")})
        reply = self.successResultOf(self.client.invoke(HLR, AC3, 45, b"\x30\x00"))
        assert reply == Reply(RESULT, b"\x30\x00", 45)
        end = T.decode(self.b.sent[0][2])
        assert end.kind == T.TC_END and end.dialogue == T.AARE(AC3)
        assert self.client.dialogues == {} and self.server.dialogues == {}
        assert self.clock.getDelayedCalls() == [] or all(not c.active() for c in self.clock.getDelayedCalls())

    def test_deferred_handler_and_error(self):
        """A handler answering later with an error: the End carries returnError."""
        pending = defer.Deferred()
        self.server.serve(20, {3}, {45: lambda op: pending})
        d = self.client.invoke(HLR, AC3, 45, None)
        self.assertNoResult(d)
        assert len(self.server.dialogues) == 1
        pending.callback(Reply(ERROR, None, 6))
        assert self.successResultOf(d) == Reply(ERROR, None, 6)

    def test_unsupported_version_refused_with_the_one_we_have(self):
        """A Begin proposing v3 of a context served only in v2 gets a U-Abort whose AARE names v2."""
        self.server.serve(20, {1, 2}, {45: lambda op: Reply(RESULT)})
        reply = self.successResultOf(self.client.invoke(HLR, AC3, 45, None))
        assert (reply.kind, reply.ac, reply.code) == ("refused", AC2, T.DIAG_AC_NOT_SUPPORTED)

    def test_timeout_on_the_clock(self):
        """An unanswered invoke times out after its timeout, on the injected clock, and is forgotten."""
        self.a.peer = None
        d = self.client.invoke(HLR, AC3, 45, None, timeout=5)
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        assert self.successResultOf(d).kind == "timeout"
        assert self.client.dialogues == {} and not self.clock.getDelayedCalls()

    def test_thousands_of_dialogues_one_timer_and_a_limit(self):
        """Thousands of open dialogues share one delayed call; beyond the limit invokes are refused at once."""
        self.a.peer = None
        ds = [self.client.invoke(HLR, AC3, 45, None) for _ in range(20000)]
        assert len(self.client.dialogues) == 20000 and len(self.clock.getDelayedCalls()) == 1
        assert self.successResultOf(self.client.invoke(HLR, AC3, 45, None)).kind == "congested"
        self.clock.advance(10)
        assert all(self.successResultOf(d).kind == "timeout" for d in ds)
        assert not self.clock.getDelayedCalls()

    def test_continue_then_end(self):
        """A peer that answers with a Continue then an End: the result is taken and the dialogue closed."""
        self.a.peer = None
        d = self.client.invoke(HLR, AC3, 45, None)
        otid = T.decode(self.a.sent[0][2]).otid
        self.client.unitdata(self.a.local_address(8), HLR, T.encode(T.TCMessage(
            T.TC_CONTINUE, otid=b"\x09", dtid=otid, dialogue=T.AARE(AC3))))
        self.assertNoResult(d)
        self.client.unitdata(self.a.local_address(8), HLR, T.encode(T.TCMessage(
            T.TC_END, dtid=otid, components=[T.ReturnResult(1, 45, b"\x30\x00")])))
        assert self.successResultOf(d).kind == "result"

    def test_unroutable_invoke(self):
        """An invoke SCCP cannot route comes back at once as unreachable; nothing is kept."""
        self.a.fail = NoRoute("none")
        assert self.successResultOf(self.client.invoke(HLR, AC3, 45, None)).kind == "unreachable"
        assert self.client.dialogues == {}

    def test_returned_message(self):
        """A UDTS for our Begin fails its invoke with the return cause."""
        self.a.peer = None
        d = self.client.invoke(HLR, AC3, 45, None)
        called, calling, data = self.a.sent[0]
        self.client.notice(called, calling, data, 1)
        assert self.successResultOf(d) == Reply("returned", code=1)

    def test_malformed_begin_gets_p_abort(self):
        """A Begin with a bad transaction portion gets a P-Abort with the cause; an unknown operation a Reject."""
        self.server.unitdata(HLR, self.a.local_address(8), bytes.fromhex("62074805010203040506")[:9])
        self.server.unitdata(HLR, self.a.local_address(8), bytes.fromhex("62094801076c04a1020500"))
        self.server.unitdata(HLR, self.a.local_address(8), T.encode(T.TCMessage(
            T.TC_BEGIN, otid=b"\x08", components=[T.Invoke(1, 99)])))
        self.server.unitdata(HLR, self.a.local_address(8), T.encode(T.TCMessage(
            T.TC_CONTINUE, otid=b"\x08", dtid=b"\x00\x00\x99\x99")))
        # The 5-octet otid cannot be answered (no usable tid): three answers.
        second, third, fourth = (T.decode(s[2]) for s in self.b.sent)
        assert second.components == [T.Reject(None, T.R_GENERAL, T.R_BADLY_STRUCTURED)]
        assert third.components == [T.Reject(1, T.R_INVOKE, T.R_UNRECOGNIZED_OPERATION)]
        assert (fourth.kind, fourth.p_abort) == (T.TC_ABORT, T.P_UNRECOGNIZED_TID)

    def test_incoming_beyond_the_limit(self):
        """A Begin arriving when the table is full gets a P-Abort resourceLimitation."""
        self.server.limit = 0
        self.server.serve(20, {3}, {45: lambda op: Reply(RESULT)})
        reply = self.successResultOf(self.client.invoke(HLR, AC3, 45, None))
        assert (reply.kind, reply.code) == ("abort", T.P_RESOURCE_LIMITATION)

    def test_stop_aborts_waiting_invokes(self):
        """Stopping the layer leaves no delayed call and aborts what waits."""
        self.a.peer = None
        d = self.client.invoke(HLR, AC3, 45, None)
        self.client.stop()
        assert self.successResultOf(d).kind == "abort" and not self.clock.getDelayedCalls()
        assert self.client.summary()["open"] == 0

    def test_failing_handler_counted_and_answered(self):
        """A handler that raises gets the peer a reject, one whose
        Deferred fails a returnError (system failure, 34); each is logged
        with its traceback and counted (C{handler failed}); the layer
        serves the next invoke."""
        from twisted.logger import capturedLogs
        from appliance.sigtran.tcap import REJECT

        def broken(op):
            raise ZeroDivisionError("bug")
        self.server.serve(20, {3}, {45: broken,
                                    46: lambda op: defer.fail(KeyError(1)),
                                    47: lambda op: Reply(RESULT)})
        with capturedLogs() as events:
            first = self.successResultOf(
                self.client.invoke(HLR, AC3, 45, None))
            second = self.successResultOf(
                self.client.invoke(HLR, AC3, 46, None))
        assert first.kind == REJECT
        assert (second.kind, second.code) == (ERROR, 34)
        assert [e["log_failure"].type for e in events
                if "log_failure" in e] == [ZeroDivisionError, KeyError]
        assert self.server.counters["handler failed"] == 2
        assert len(self.flushLoggedErrors(ZeroDivisionError, KeyError)) == 2
        third = self.successResultOf(self.client.invoke(HLR, AC3, 47, None))
        assert third.kind == RESULT
