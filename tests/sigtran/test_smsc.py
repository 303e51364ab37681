"""
Tests for L{appliance.sigtran.smsc}: the MAP delivery agent (SRI-SM then
MT-ForwardSM), alerts, and mo-forwardSM into the core.
"""
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.messaging.core import MessageView, NoRoute
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.sigtran import mapcodec as M
from appliance.sigtran.map import MAPOutcome, MobileOriginated
from appliance.sigtran.smsc import MAPDeliveryAgent, MOIntake, SMSCService
from appliance.sigtran.tpdu import decode_deliver
from tests.sigtran.fakes import FakeSS7

INFO = M.RoutingInfo("234150999999999", "447700900222")


class FakeClient:
    """Scripted MAP answers; records the calls."""

    def __init__(self, sri, mt=()):
        self.sri, self.mt = sri, list(mt)
        self.calls = []

    def sri_sm(self, msisdn):
        self.calls.append(("sri", msisdn))
        return defer.succeed(self.sri)

    def mt_forward_sm(self, imsi, msc, tpdu, more=False):
        self.calls.append(("mt", imsi, msc, decode_deliver(tpdu), more))
        return defer.succeed(self.mt.pop(0) if self.mt else MAPOutcome("ok"))

    def report_delivery_status(self, msisdn, outcome):
        self.calls.append(("report", msisdn, outcome))
        return defer.succeed(MAPOutcome("ok"))


class FakeCore:
    def __init__(self, fail=None):
        self.agents, self.submitted, self.dispatched, self.fail = {}, [], [], fail

    def set_agent(self, transport, agent):
        self.agents[transport] = agent

    def submit(self, s):
        if self.fail:
            raise self.fail
        self.submitted.append(s)
        return defer.succeed(7)

    def dispatch(self, view, transport="sip"):
        self.dispatched.append((view.id, transport))


def view(text="hello", id=5):
    return MessageView(id, "447700900002", "447900123456", None, text, "utf-8", 1, 0.0, 0, 1e12)


class AgentTests(SynchronousTestCase):

    def agent(self, client, core=None):
        return MAPDeliveryAgent(client, core or FakeCore(), Clock())

    def test_interface(self):
        """The agent is an IDeliveryAgent."""
        verifyObject(IDeliveryAgent, self.agent(FakeClient(None)))

    def test_delivered(self):
        """SRI-SM then one MT-ForwardSM per part to the MSC the HLR named: delivered."""
        client = FakeClient(MAPOutcome("ok", INFO))
        out = self.successResultOf(self.agent(client).deliver(view("x" * 200)))
        assert out.kind == "delivered"
        sri, mt1, mt2 = client.calls
        assert sri == ("sri", "447900123456")
        assert mt1[1:3] == (INFO.imsi, INFO.msc) and mt1[4] is True and mt2[4] is False
        assert mt1[3].concat == (5, 2, 1) and mt1[3].sender == "447700900002"

    def test_sri_outcomes(self):
        """Unknown/barred subscribers fail the message; absent and system failures retry it."""
        for kind, expect in (("unknown", "failed"), ("barred", "failed"), ("not-provisioned", "failed"),
                             ("absent", "retry"), ("system-failure", "retry"), ("timeout", "retry")):
            out = self.successResultOf(self.agent(FakeClient(MAPOutcome(kind))).deliver(view()))
            assert out.kind == expect, kind

    def test_absent_then_alert_then_delivered(self):
        """An MSC answering absent: ReportSM-DeliveryStatus absent, retry; the alert dispatches it; success is reported."""
        core = FakeCore()
        client = FakeClient(MAPOutcome("ok", INFO), [MAPOutcome("absentSubscriberSM")])
        agent = self.agent(client, core)
        out = self.successResultOf(agent.deliver(view()))
        assert out.kind == "retry" and client.calls[-1] == ("report", "447900123456", M.OUTCOME_ABSENT)
        agent.alert(M.Alert("447900123456", "447700900000"))
        assert core.dispatched == [(5, "map")]
        assert self.successResultOf(agent.deliver(view())).kind == "delivered"
        assert client.calls[-1] == ("report", "447900123456", M.OUTCOME_SUCCESS)

    def test_memory_full(self):
        """Memory capacity exceeded is reported as such and retried; a permanent cause fails."""
        client = FakeClient(MAPOutcome("ok", INFO), [MAPOutcome("sm-DeliveryFailure", detail="memoryCapacityExceeded"),
                                                     MAPOutcome("sm-DeliveryFailure", detail="equipmentNotSM-Equipped")])
        agent = self.agent(client)
        assert self.successResultOf(agent.deliver(view())).kind == "retry"
        assert client.calls[-1] == ("report", "447900123456", M.OUTCOME_MEMORY_EXCEEDED)
        assert self.successResultOf(agent.deliver(view())).kind == "failed"

    def test_invisible(self):
        """send(invisible=True) sends a type 0 SMS-DELIVER."""
        client = FakeClient(MAPOutcome("ok", INFO))
        assert self.successResultOf(self.agent(client).send("447900123456", "447700900002", "", invisible=True)).ok
        assert client.calls[1][3].pid == 0x40


class IntakeTests(SynchronousTestCase):

    def test_mo_becomes_a_submission(self):
        """mo-forwardSM is submitted with origin kind map and the MSC's GT as origin."""
        core = FakeCore()
        out = self.successResultOf(MOIntake(core).submit(MobileOriginated("447900123456", "1111", "hi", "447700900111")))
        assert out.ok
        s, = core.submitted
        assert (s.origin_kind, s.origin, s.sender, s.recipient, s.text) == \
            ("map", "447700900111", "447900123456", "1111", "hi")

    def test_no_route(self):
        """No route is invalidSME-Address (the MSC answers the handset with an RP-ERROR)."""
        out = self.successResultOf(MOIntake(FakeCore(NoRoute("x"))).submit(
            MobileOriginated("447900123456", "1111", "hi", "447700900111")))
        assert out.kind == "invalidSME-Address"

    def test_service_wiring(self):
        """The service registers its SSN and ISUP, offers its map agent (the wiring sets it on the core), and leaves no timer when stopped."""
        ss7, core, clock = FakeSS7(), FakeCore(), Clock()
        svc = SMSCService(ss7, core, clock)
        svc.startService()
        assert ss7.sccp.users == {8: svc.tcap} and ss7.mtp.users == {5: svc.isup}
        assert core.agents == {} and svc.agent is not None
        svc.stopService()
        assert not clock.getDelayedCalls()


class CoreRetryTests(SynchronousTestCase):
    """The core hands retries of a map-routed message back to the map agent."""

    def test_retry_goes_to_the_policy_transport(self):
        """A message routed by a transport-map policy is retried through the map agent, not smpp."""
        from twisted.internet.testing import MemoryReactorClock
        from appliance.application import memory_storage
        from appliance.messaging.core import MessagingCore
        from appliance.messaging.vocabulary import Outcome, Submission
        clock = MemoryReactorClock()
        clock.advance(1_000_000)
        storage = memory_storage(reactor=clock, batch_delay=0.001)
        self.addCleanup(storage.close)
        with storage.transaction(note="setup") as root:
            root.add_policy("mobiles")
            root.policies["mobiles"].recipient_pattern = "4479%"
            root.policies["mobiles"].transport = "map"
        core = MessagingCore(storage, clock, retry_schedule=(5,), validity=600, scan_interval=1,
                             local_transport="sip")
        calls = []

        class Agent:
            def deliver(self, view):
                calls.append(view.id)
                return defer.succeed(Outcome("retry", "absent"))
        core.set_agent("map", Agent())
        core.startService()
        self.addCleanup(core.stopService)
        d = core.submit(Submission("map", "19995550002", "447900000001", "447900123456", "hi"))
        clock.advance(0.01)
        id = self.successResultOf(d)
        for _ in range(8):
            clock.advance(1)
        assert calls == [id, id]
        assert storage.messages().get(id).state == "delivering"
