"""
The missed-call service on a task.Clock, an in-memory database, a fake
MAP client (the HLR and MSC answers per subscriber) and a fake core:
every case and subcase of seed 003, one SMS per caller per session,
CLIR and the blacklist, the SIP INVITE answers.
"""
from twisted.internet import defer, task

from appliance.application import memory_storage
from appliance.notify.model import KEY
from appliance.notify.service import NotificationService
from appliance.sigtran import isupcodec as I
from appliance.sigtran import mapcodec as M
from appliance.sigtran.isup import IncomingCall
from appliance.sigtran.map import MAPOutcome
from appliance.sip.message import parse

SERVICE = "4930100"
A, B = "491700", "491800"


class FakeMAP:
    """SRI-SM and MT-ForwardSM answered per MSISDN/IMSI."""

    def __init__(self):
        self.sri = {}        # msisdn -> outcome
        self.mt = {}         # imsi -> outcome kind
        self.calls = []

    def sri_sm(self, msisdn):
        self.calls.append(("sri", msisdn))
        return defer.succeed(self.sri.get(msisdn, MAPOutcome("unknown")))

    def mt_forward_sm(self, imsi, msc, tpdu, more=False):
        self.calls.append(("mt", imsi, tpdu[1] if False else tpdu))
        return defer.succeed(MAPOutcome(self.mt.get(imsi, "ok")))

    def report_delivery_status(self, msisdn, outcome):
        self.calls.append(("report", msisdn, outcome))
        return defer.succeed(MAPOutcome("ok"))


class FakeCore:
    def __init__(self):
        self.sent = []

    def submit(self, submission):
        self.sent.append(submission)
        return defer.succeed(len(self.sent))


def build(**settings):
    clock = task.Clock()
    storage = memory_storage(reactor=clock)
    with storage.transaction() as root:
        n = root._p_jar.root()[KEY]
        n.service_numbers = (SERVICE,)
        for k, v in settings.items():
            setattr(n, k, v)
    mapc, core = FakeMAP(), FakeCore()
    svc = NotificationService(storage, clock, core=core, map_client=mapc)
    svc.startService()
    return svc, clock, storage, mapc, core


def iam(reason, presentation=0, b=B, called=SERVICE):
    return IncomingCall(1, 1, I.Number(called),
                        I.Number(A, presentation=presentation),
                        I.Number(b), None, None,
                        I.Redirection(3, reason, 1, reason))


def flush(clock, storage):
    clock.advance(1)
    storage.flush()


def pairs(core):
    return [(s.sender, s.recipient, s.text) for s in core.sent]


def test_isup_busy_who_called_at_once():
    """ISUP case A: REL cause 17 after the channel-seized timer, and Who
    Called to B at once with A as sender."""
    svc, clock, storage, mapc, core = build(seized_timer=3)
    assert svc.isup_iam(iam(1)) == (17, 3.0)
    assert pairs(core) == [(A, B, "Missed call from 491700")]
    assert core.sent[0].origin_kind == "node"
    assert mapc.calls == []
    svc.stopService()


def test_isup_no_reply_nothing():
    """ISUP case B: the congestion cause, no SMS, no HLR query."""
    svc, clock, storage, mapc, core = build(release_other=34)
    assert svc.isup_iam(iam(2)) == (34, 2.0)
    assert core.sent == [] and mapc.calls == []
    svc.stopService()


def test_not_a_service_number_keeps_defaults():
    """An IAM to another number leaves the SS7 defaults (None)."""
    svc, clock, storage, mapc, core = build()
    assert svc.isup_iam(iam(1, called="4930999")) is None
    assert core.sent == []
    svc.stopService()


def test_presentation_restricted_nothing():
    """CLIR: nothing to anyone in every case, no HLR query."""
    svc, clock, storage, mapc, core = build()
    for reason in (1, 2, 3):
        svc.isup_iam(iam(reason, presentation=1))
    assert core.sent == [] and mapc.calls == []
    assert svc.counters["triggers-clir"] == 3
    svc.stopService()


def test_subcase1_five_calls_one_sms_each_way():
    """Subcase 1: MSC absent; five calls leave one pending entry (count 5),
    ReportSM-DeliveryStatus once, and the alert sends one Who Called to B
    (A as sender) and one Notify Me to A (B as sender), then forgets."""
    svc, clock, storage, mapc, core = build(include=frozenset({"count"}))
    mapc.sri[B] = MAPOutcome("ok", M.RoutingInfo("26201" + B, "491900"))
    mapc.mt["26201" + B] = "absentSubscriberSM"
    svc.isup_iam(iam(3))
    flush(clock, storage)
    for _ in range(4):
        clock.advance(10)
        svc.isup_iam(iam(3))
        flush(clock, storage)
    root = storage.domain(KEY)
    assert root.pending_count() == 1
    assert root.get(B, A).count == 5
    assert [c[0] for c in mapc.calls] == ["sri", "mt", "report"]
    assert core.sent == []
    d = svc.alert(M.Alert(B, "491000"))
    flush(clock, storage)
    assert pairs(core) == [(A, B, "Missed call from 491700 (5 calls)"),
                           (B, A, "491800 can be reached again")]
    assert storage.domain(KEY).pending_count() == 0
    svc.alert(M.Alert(B, "491000"))
    assert len(core.sent) == 2
    svc.stopService()


def test_subcase2_hlr_absent():
    """Subcase 2: the HLR answers absent: remembered, reported, sent on the
    alert."""
    svc, clock, storage, mapc, core = build()
    mapc.sri[B] = MAPOutcome("absent")
    svc.isup_iam(iam(3))
    flush(clock, storage)
    assert [c[0] for c in mapc.calls] == ["sri", "report"]
    assert storage.domain(KEY).get(B, A) is not None
    svc.alert(M.Alert(B, "491000"))
    flush(clock, storage)
    assert {(s.sender, s.recipient) for s in core.sent} == {(A, B), (B, A)}
    svc.stopService()


def test_subcase3_delivered_both_at_once():
    """Subcase 3: the invisible SMS is delivered: both SMS at once, nothing
    remembered."""
    svc, clock, storage, mapc, core = build()
    mapc.sri[B] = MAPOutcome("ok", M.RoutingInfo("26201" + B, "491900"))
    svc.isup_iam(iam(3))
    flush(clock, storage)
    assert {(s.sender, s.recipient) for s in core.sent} == {(A, B), (B, A)}
    assert storage.domain(KEY).pending_count() == 0
    assert "report" not in [c[0] for c in mapc.calls]
    svc.stopService()


def test_blacklisted_recipient_gets_nothing():
    """A blacklisted A receives no Notify Me; B still gets Who Called."""
    svc, clock, storage, mapc, core = build()
    with storage.transaction() as root:
        root._p_jar.root()[KEY].blacklist.add(A)
    mapc.sri[B] = MAPOutcome("ok", M.RoutingInfo("1", "2"))
    svc.isup_iam(iam(3))
    flush(clock, storage)
    assert pairs(core) == [(A, B, "Missed call from 491700")]
    svc.stopService()


def test_expired_pending_swept():
    """An entry older than the expiry is forgotten by the sweep."""
    svc, clock, storage, mapc, core = build(pending_expiry=100)
    mapc.sri[B] = MAPOutcome("absent")
    svc.isup_iam(iam(3))
    flush(clock, storage)
    clock.advance(200)
    flush(clock, storage)
    assert storage.domain(KEY).pending_count() == 0
    assert svc.counters["expired"] == 1
    svc.stopService()


class FakeTx:
    def __init__(self):
        self.responses = []

    def respond(self, response):
        self.responses.append(response)
        return True


def invite(reason, extra=""):
    return parse((
        f"INVITE sip:{SERVICE}@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
        f"From: <sip:{A}@example.com>;tag=1\r\n"
        f"To: <sip:{SERVICE}@example.com>\r\n"
        "Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        f"Diversion: <sip:491555@example.com>;reason=unconditional\r\n"
        f"Diversion: <sip:{B}@example.com>;reason={reason}\r\n"
        f"{extra}Content-Length: 0\r\n\r\n").encode())


def test_sip_busy_486_and_who_called_from_last_diversion():
    """SIP case A: 486, Who Called to the last Diversion's number with From
    as sender."""
    svc, clock, storage, mapc, core = build()
    tx = FakeTx()
    assert svc.sip_invite(invite("user-busy"), tx)
    assert tx.responses[0].status == 486
    assert pairs(core) == [(A, B, "Missed call from 491700")]
    svc.stopService()


def test_sip_unavailable_480_probes_and_privacy_sends_nothing():
    """SIP case B: 480 and the HLR probe; with Privacy: id nothing at all;
    no-answer answers 480 and sends nothing."""
    svc, clock, storage, mapc, core = build()
    tx = FakeTx()
    svc.sip_invite(invite("unavailable", "Privacy: id\r\n"), tx)
    assert tx.responses[0].status == 480 and mapc.calls == []
    tx = FakeTx()
    svc.sip_invite(invite("no-answer"), tx)
    assert tx.responses[0].status == 480 and mapc.calls == []
    tx = FakeTx()
    svc.sip_invite(invite("unavailable"), tx)
    assert tx.responses[0].status == 480
    assert mapc.calls == [("sri", B)]
    assert core.sent == []
    svc.stopService()


def test_sip_other_number_not_ours():
    """An INVITE to another number is not taken (today's 405 stays)."""
    svc, clock, storage, mapc, core = build()
    r = invite("user-busy")
    r.uri = r.uri.__class__.parse("sip:4930999@example.com")
    r.headers.set("To", "<sip:4930999@example.com>")
    assert not svc.sip_invite(r, FakeTx())
    svc.stopService()


def test_opt_out_keyword():
    """An SMS to the service with the keyword (any case) puts its sender on
    the blacklist; any other text is refused; the agent is an
    IDeliveryAgent."""
    from zope.interface.verify import verifyObject
    from appliance.messaging.interfaces import IDeliveryAgent
    from appliance.messaging.vocabulary import MessageView
    svc, clock, storage, mapc, core = build(opt_out_keyword="STOP")
    assert verifyObject(IDeliveryAgent, svc.agent)
    view = lambda text: MessageView(1, "+491777", SERVICE, None, text,
                                    "gsm7", 1, 0.0, 0, 100.0)
    d = svc.agent.deliver(view("hello"))
    assert d.result.kind == "failed"
    d = svc.agent.deliver(view(" stop "))
    flush(clock, storage)
    assert d.result.kind == "delivered"
    assert "491777" in storage.domain(KEY).blacklist
    assert "491777" in svc.settings.blacklist
    svc.stopService()


def test_opt_out_said_only_once_in_force():
    """The opt-out is logged and counted only once the blacklist is
    committed and in the settings snapshot: a busy call to B on any
    reactor turn after the "opted out" line sends nothing (the e2e test
    waited on that line and sometimes still saw a Who Called to B)."""
    from twisted.logger import Logger
    from appliance.messaging.vocabulary import MessageView
    svc, clock, storage, mapc, core = build(opt_out_keyword="STOP")
    said = []
    svc.agent.log = Logger(observer=lambda e: said.append(
        (e["log_format"], B in svc.settings.blacklist)))
    d = svc.agent.deliver(MessageView(1, B, SERVICE, None, "stop", "gsm7",
                                      1, 0.0, 0, 100.0))
    assert not d.called
    assert said == [] and svc.counters["opt-outs"] == 0
    flush(clock, storage)
    assert d.result.kind == "delivered"
    assert said == [("{sender} opted out of notifications", True)]
    assert svc.counters["opt-outs"] == 1
    svc.isup_iam(iam(1))
    assert core.sent == []
    svc.stopService()


def test_cancel_after_answer_and_unknown_invite():
    """The SIP application answers INVITEs the hook takes, keeps 405 for
    the others."""
    from appliance.sip.application import DomainCheck, SIPApplication
    svc, clock, storage, mapc, core = build()
    app = SIPApplication(DomainCheck("example.com"), None, None)
    app.invite = svc.sip_invite
    tx = FakeTx()
    app.request_received(invite("user-busy"), tx)
    assert tx.responses[0].status == 486
    r = invite("user-busy")
    r.uri = r.uri.__class__.parse("sip:4930999@example.com")
    r.headers.set("To", "<sip:4930999@example.com>")
    tx = FakeTx()
    app.request_received(r, tx)
    assert tx.responses[0].status == 405
    svc.stopService()


def test_pending_rows_and_statistics():
    """show notification pending lists who waits for whom since when;
    the statistics count triggers by source and case, probes and the
    pending entries."""
    svc, clock, storage, mapc, core = build()
    clock.advance(1_800_000_000)
    mapc.sri[B] = MAPOutcome("absent")
    svc.isup_iam(iam(3))
    flush(clock, storage)
    clock.advance(60)
    svc.isup_iam(iam(3))
    flush(clock, storage)
    assert svc.pending_rows() == [(B, A, "2027-01-15 08:00:00",
                                   "2027-01-15 08:01:01", 2, "unreachable")]
    stats = svc.statistics()
    assert stats["triggers-isup-unreachable"] == 2
    assert stats["probes"] == 1 and stats["probe-absent"] == 1
    assert stats["pending"] == 1 and stats["hlr-errors"] == 0
    mapc.sri["491999"] = MAPOutcome("timeout")
    svc.isup_iam(iam(3, b="491999"))
    assert svc.statistics()["hlr-timeouts"] == 1
    svc.stopService()


def test_sweep_walks_in_slices():
    """The expiry sweep reads a bounded slice per run and resumes where it
    stopped: three old entries with a slice of two are gone after two
    runs, and a fresh one stays."""
    svc, clock, storage, mapc, core = build(pending_expiry=100)
    with storage.transaction() as root:
        n = root._p_jar.root()[KEY]
        from appliance.notify.decide import Pending
        for b in ("4911", "4912", "4913"):
            n.remember(b, A, Pending(0.0, 0.0, 1, "unreachable", "isup"))
        n.remember("4914", A, Pending(500.0, 500.0, 1, "unreachable", "isup"))
    svc._sweep.cancel()             # the runs below are the test's own
    clock.advance(550)
    svc.sweep(limit=2)
    flush(clock, storage)
    assert storage.domain(KEY).pending_count() == 2
    svc.sweep(limit=2)
    flush(clock, storage)
    assert storage.domain(KEY).pending_count() == 1
    assert storage.domain(KEY).get("4914", A) is not None
    svc.stopService()


class RaisingCore(FakeCore):
    """A core whose submit raises C{error} at once."""

    def __init__(self, error):
        super().__init__()
        self.error = error

    def submit(self, submission):
        raise self.error


def test_refused_and_broken_sends_counted_and_logged():
    """A message the core refuses (no route) is counted C{sms-failed}
    and logged as a warning with the reason; an unexpected error from
    the core is counted too and logged with its traceback; neither
    escapes into the ISUP handling, which still answers the call."""
    from twisted.logger import LogLevel, capturedLogs

    from appliance.messaging.vocabulary import NoRoute
    for error, traceback in ((NoRoute("no route to 491800"), False),
                             (ZeroDivisionError("bug"), True)):
        svc, clock, storage, mapc, core = build(seized_timer=3)
        svc.core = RaisingCore(error)
        with capturedLogs() as events:
            assert svc.isup_iam(iam(1)) == (17, 3.0)
        assert svc.counters["sms-failed"] == 1
        failures = [e for e in events if "log_failure" in e]
        warned = [e for e in events if e["log_level"] == LogLevel.warn
                  and "not sent" in e["log_format"]]
        assert len(warned) == 1
        if traceback:
            assert failures == warned
            assert failures[0]["log_failure"].check(ZeroDivisionError)
        else:
            assert failures == [] and warned[0]["why"] == "no route to 491800"
        svc.stopService()


def test_bad_caller_address_logged():
    """An INVITE whose P-Asserted-Identity does not parse is still
    answered (486), and the bad value is logged at info, not silently
    dropped."""
    from twisted.logger import capturedLogs
    svc, clock, storage, mapc, core = build()
    tx = FakeTx()
    with capturedLogs() as events:
        assert svc.sip_invite(invite(
            "user-busy", "P-Asserted-Identity: <sip:a@b> junk\r\n"), tx)
    assert tx.responses[0].status == 486
    assert [e["v"] for e in events
            if e.get("log_format", "").startswith("bad caller address")] \
        == ["<sip:a@b> junk"]
    svc.stopService()
