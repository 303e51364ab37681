"""
Tests for L{appliance.sigtran.map}: the MAP client against a MAP peer
built on a second TCAP layer, the v3-to-v2 fallback, and the server's
mo-forwardSM and alertServiceCentre.
"""
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from appliance.sigtran import mapcodec as M
from appliance.sigtran import tcapcodec as T
from appliance.sigtran.map import MAPClient, MAPOutcome, MAPServer
from appliance.sigtran.tcap import ERROR, RESULT, Reply, TCAPLayer
from appliance.sigtran.tpdu import decode_deliver, deliver_tpdus, encode_submit
from tests.sigtran.fakes import pair

INFO = M.RoutingInfo("234150999999999", "447700900222")


class MAPClientTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.a, self.b = pair()
        self.node = TCAPLayer(self.a, self.clock, 8)
        self.peer = TCAPLayer(self.b, self.clock, 6)
        self.a.register_ssn(8, self.node)
        self.b.register_ssn(6, self.peer)
        self.client = MAPClient(self.node, lambda: "447700900000", lambda msisdn: None)
        self.seen = []

    def hlr(self, answer, versions=(3,)):
        def sri(op):
            self.seen.append((op.ac, M.decode_sri_sm(op.param)))
            return answer
        self.peer.serve(M.AC_GATEWAY, set(versions), {M.OP_SRI_SM: sri})

    def test_sri_sm_reachable(self):
        """SRI-SM answered with IMSI and MSC gives an ok outcome with both; the HLR saw our SC address."""
        self.hlr(Reply(RESULT, M.encode_routing_info(INFO)))
        out = self.successResultOf(self.client.sri_sm("447900123456"))
        assert out == MAPOutcome("ok", INFO)
        assert self.seen == [(M.ac_name(20, 3), M.SRIForSM("447900123456", "447700900000"))]
        assert self.b.sent and self.a.sent[0][0].gt == "447900123456" and self.a.sent[0][0].ssn == 6

    def test_sri_sm_errors_are_named(self):
        """Each SRI-SM error the HLR may give maps to its outcome."""
        for code, kind in ((6, "absent"), (1, "unknown"), (13, "barred"), (11, "not-provisioned"),
                           (34, "system-failure")):
            self.peer._handlers.clear()
            self.hlr(Reply(ERROR, None, code))
            assert self.successResultOf(self.client.sri_sm("447900123456")).kind == kind

    def test_fallback_to_v2(self):
        """An HLR that has only v2 refuses v3; the client tries again in v2 and succeeds."""
        self.hlr(Reply(RESULT, M.encode_routing_info(INFO)), versions=(1, 2))
        out = self.successResultOf(self.client.sri_sm("447900123456"))
        assert (out.kind, out.version) == ("ok", 2)
        assert [ac for ac, _ in self.seen] == [M.ac_name(20, 2)]

    def test_mt_forward_sm_v3_and_v2(self):
        """MT-ForwardSM is opcode 44 in v3, forwardSM (46) in v2; refusals carry their cause."""
        got = []

        def mt(op):
            got.append((op.opcode, M.decode_forward_sm(op.param)))
            return Reply(ERROR, M.encode_delivery_failure(0), 32) if len(got) > 1 else Reply(RESULT)
        self.peer.serve(M.AC_MT_RELAY, {3}, {44: mt})
        tpdu = deliver_tpdus("447700900002", "hi")[0]
        assert self.successResultOf(self.client.mt_forward_sm(INFO.imsi, INFO.msc, tpdu)).ok
        out = self.successResultOf(self.client.mt_forward_sm(INFO.imsi, INFO.msc, tpdu))
        assert (out.kind, out.detail) == ("sm-DeliveryFailure", "memoryCapacityExceeded")
        assert got[0][1].da == ("imsi", INFO.imsi) and decode_deliver(got[0][1].ui).text == "hi"
        self.peer._handlers.clear()
        self.peer._contexts.clear()
        self.peer.serve(M.AC_MT_RELAY, {2}, {46: mt})
        out = self.successResultOf(self.client.mt_forward_sm(INFO.imsi, INFO.msc, tpdu))
        assert out.version == 2 and got[-1][0] == 46

    def test_report_delivery_status(self):
        """reportSM-DeliveryStatus carries the MSISDN, our address and the outcome."""
        got = []
        self.peer.serve(M.AC_GATEWAY, {3}, {47: lambda op: (got.append(M.decode_report(op.param)),
                                                           Reply(RESULT))[1]})
        assert self.successResultOf(self.client.report_delivery_status("447900123456", M.OUTCOME_ABSENT)).ok
        assert got == [M.DeliveryReport("447900123456", "447700900000", M.OUTCOME_ABSENT)]

    def test_timeout(self):
        """No answer within the timeout is a timeout outcome."""
        self.a.peer = None
        d = self.client.sri_sm("447900123456")
        self.clock.advance(30)
        assert self.successResultOf(d).kind == "timeout"


class MAPServerTests(SynchronousTestCase):

    def setUp(self):
        self.clock = Clock()
        self.a, self.b = pair()
        self.node = TCAPLayer(self.a, self.clock, 8)
        self.msc = TCAPLayer(self.b, self.clock, 8)
        self.a.register_ssn(8, self.node)
        self.b.register_ssn(8, self.msc)
        self.mos = []
        self.answer = defer.succeed(MAPOutcome("ok"))
        self.server = MAPServer(self.node, lambda mo: (self.mos.append(mo), self.answer)[1])

    def mo(self, tpdu, ac=M.ac_name(21, 3)):
        arg = M.encode_forward_sm(M.ForwardSM(("sc", "447700900000"), ("msisdn", "447900123456"), tpdu,
                                              imsi="234150999999999"))
        return self.successResultOf(self.msc.invoke(self.a.local_address(8), ac, 46, arg))

    def test_mo_forward_sm_submitted(self):
        """An mo-forwardSM is decoded (SMS-SUBMIT inside) and submitted with the MSC's GT; the MSC gets a result."""
        reply = self.mo(encode_submit("1111", "hello app", 3))
        assert reply.kind == "result"
        mo, = self.mos
        assert (mo.sender, mo.recipient, mo.text, mo.msc) == ("447900123456", "1111", "hello app",
                                                              "447700900111")

    def test_mo_v2(self):
        """A v2 MSC (shortMsgRelay v2, forwardSM) is served too."""
        assert self.mo(encode_submit("1111", "x"), M.ac_name(21, 2)).kind == "result"

    def test_mo_refused_and_malformed(self):
        """A refused submission is sm-DeliveryFailure with its cause; a bad TPDU unexpectedDataValue."""
        self.answer = defer.succeed(MAPOutcome("invalidSME-Address"))
        reply = self.mo(encode_submit("1111", "x"))
        assert (reply.kind, reply.code) == ("error", 32)
        assert M.decode_error_param(32, reply.param) == "invalidSME-Address"
        reply = self.mo(b"\x01\x02")
        assert (reply.kind, reply.code) == ("error", M.ERR_UNEXPECTED_DATA_VALUE)

    def test_alert_service_centre(self):
        """alertServiceCentre is answered with an empty result and reported to listeners."""
        alerts = []
        self.server.add_alert_listener(lambda a, hlr: alerts.append((a, hlr)))
        reply = self.successResultOf(self.msc.invoke(
            self.a.local_address(8), M.ac_name(23, 2), 64, M.encode_alert(M.Alert("447900123456", "447700900000"))))
        assert reply.kind == "result"
        assert alerts == [(M.Alert("447900123456", "447700900000"), "447700900111")]
        end = T.decode(self.a.sent[-1][2])
        assert end.components == [T.ReturnResult(1)]
