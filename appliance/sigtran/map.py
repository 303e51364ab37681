# -*- test-case-name: tests.sigtran.test_map -*-
"""
The MAP short-message service of the node (3GPP TS 29.002 chapter 12):

  - L{MAPClient}, the SMS gateway side: sendRoutingInfoForSM to the HLR,
    mt-forwardSM to the serving MSC, reportSM-DeliveryStatus to the HLR;
    each opens its dialogue in MAP v3 and, when the peer refuses that
    context (a U-Abort with "application context not supported"), tries
    again once in the version it offered (v2: forwardSM for MT).
  - L{MAPServer}, the interworking side: mo-forwardSM (forwardSM in v2)
    from an MSC, handed to a submit callable; alertServiceCentre (and
    v1's alertServiceCentreWithoutResult) from the HLR, answered and
    reported to listeners.

Every client call returns a Deferred of a L{MAPOutcome}, never an
errback: an error of the peer, a refusal, a timeout all become outcomes
with a C{kind} the caller maps to its own results.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from appliance.sigtran import mapcodec as M
from appliance.sigtran import tcap as TC
from appliance.sigtran.interfaces import SCCPAddress, SSN_HLR, SSN_MSC
from appliance.sigtran.tpdu import TPDUError, decode_submit

#: Outcome kinds beside C{ok} and the MAP error names.
TRANSPORT_FAILURES = ("timeout", "abort", "unreachable", "reject",
                      "returned", "congested", "refused", "ended")
#: SRI-SM errors and what they mean for a message waiting for delivery.
SRI_ERRORS = {
    M.ERR_ABSENT_SUBSCRIBER_SM: "absent",
    M.ERR_UNKNOWN_SUBSCRIBER: "unknown",
    M.ERR_CALL_BARRED: "barred",
    M.ERR_TELESERVICE_NOT_PROVISIONED: "not-provisioned",
    M.ERR_SYSTEM_FAILURE: "system-failure",
    M.ERR_FACILITY_NOT_SUPPORTED: "facility-not-supported",
    M.ERR_DATA_MISSING: "data-missing",
    M.ERR_UNEXPECTED_DATA_VALUE: "unexpected-data-value",
}


@dataclass(frozen=True, slots=True)
class MAPOutcome:
    """
    What a MAP operation came to.

    @ivar kind: C{ok}; for SRI-SM errors the names of L{SRI_ERRORS}
        (C{absent}, C{unknown}, C{barred}, C{not-provisioned},
        C{system-failure}); otherwise the MAP error name (as in
        L{M.ERROR_NAMES}) or a transport failure (L{TRANSPORT_FAILURES}).
    @ivar value: the decoded result (L{M.RoutingInfo} for SRI-SM).
    @ivar detail: the error's parameter, read (e.g.
        C{memoryCapacityExceeded}).
    @ivar version: the MAP version the dialogue used.
    """
    kind: str
    value: Any = None
    detail: str = ""
    version: int = 3

    @property
    def ok(self) -> bool:
        """Whether the operation succeeded."""
        return self.kind == "ok"


def _failure(reply: TC.Reply, errors: dict[int, str] | None = None
             ) -> tuple[str, str]:
    if reply.kind == TC.ERROR:
        name = (errors or {}).get(reply.code) or M.ERROR_NAMES.get(
            reply.code, f"error-{reply.code}")
        return name, M.decode_error_param(reply.code, reply.param)
    return reply.kind, "" if reply.code is None else f"cause {reply.code}"


class MAPClient:
    """
    The node's MAP operations towards HLRs and MSCs.

    @ivar service_centre: our own address (the SMSC's GT) put in
        serviceCentreAddress and sm-RP-OA.
    """

    log = Logger()

    def __init__(self, tcap: TC.TCAPLayer, service_centre: Callable[[], str],
                 hlr: Callable[[str], SCCPAddress | None],
                 timeout: float = 30.0, version: int = 3):
        """
        @param tcap: the layer the dialogues run on.
        @param service_centre: returns our GT digits (the configuration
            may change it).
        @param hlr: the HLR address for an MSISDN (the configured HLR GT,
            else the MSISDN itself as GT, SSN 6).
        @param timeout: seconds each operation waits.
        @param version: the MAP version tried first.
        """
        self.tcap = tcap
        self.service_centre = service_centre
        self.hlr = hlr
        self.timeout = timeout
        self.version = version

    @defer.inlineCallbacks
    def _call(self, called: SCCPAddress, ac_name: int, opcode: Callable,
              param: bytes):
        version = self.version
        reply = yield self.tcap.invoke(called, M.ac_name(ac_name, version),
                                       opcode(version), param, self.timeout)
        if reply.kind == TC.REFUSED and version > 1:
            offered = M.ac_parts(reply.ac or ())
            fallback = offered[1] if offered and offered[0] == ac_name \
                and 1 < offered[1] < version else 2
            if fallback < version:
                self.log.info("{gt} refused {name} v{v}: trying v{fb}",
                              gt=called.gt, name=M.AC_NAMES[ac_name],
                              v=version, fb=fallback)
                version = fallback
                reply = yield self.tcap.invoke(
                    called, M.ac_name(ac_name, version), opcode(version),
                    param, self.timeout)
        return reply, version

    @defer.inlineCallbacks
    def sri_sm(self, msisdn: str):
        """
        sendRoutingInfoForSM: where is C{msisdn} now?

        @return: a Deferred of a L{MAPOutcome}; when C{ok}, its value is
            the L{M.RoutingInfo} (IMSI and serving MSC).
        """
        called = self.hlr(msisdn) or SCCPAddress(gt=msisdn, ssn=SSN_HLR)
        param = M.encode_sri_sm(M.SRIForSM(msisdn, self.service_centre()))
        reply, version = yield self._call(called, M.AC_GATEWAY,
                                          lambda v: M.OP_SRI_SM, param)
        if reply.kind == TC.RESULT and reply.param:
            try:
                return MAPOutcome("ok", M.decode_routing_info(reply.param),
                                  version=version)
            except M.MAPError as e:
                return MAPOutcome("unexpected-data-value", detail=str(e),
                                  version=version)
        kind, detail = _failure(reply, SRI_ERRORS)
        return MAPOutcome(kind, detail=detail, version=version)

    @defer.inlineCallbacks
    def mt_forward_sm(self, imsi: str, msc: str, tpdu: bytes,
                      more: bool = False):
        """
        mt-forwardSM (v3) or forwardSM (v2): one SMS-DELIVER to the
        subscriber C{imsi} served by MSC C{msc}.

        @return: a Deferred of a L{MAPOutcome} (C{ok}, C{absentSubscriberSM},
            C{sm-DeliveryFailure} with the cause as detail, ...).
        """
        param = M.encode_forward_sm(M.ForwardSM(
            ("imsi", imsi), ("sc", self.service_centre()), tpdu, more))
        reply, version = yield self._call(
            SCCPAddress(gt=msc, ssn=SSN_MSC), M.AC_MT_RELAY,
            lambda v: M.OP_MT_FORWARD_SM if v >= 3 else M.OP_FORWARD_SM,
            param)
        if reply.kind == TC.RESULT:
            return MAPOutcome("ok", version=version)
        kind, detail = _failure(reply)
        return MAPOutcome(kind, detail=detail, version=version)

    @defer.inlineCallbacks
    def report_delivery_status(self, msisdn: str, outcome: int):
        """
        reportSM-DeliveryStatus: tell the HLR how delivery to C{msisdn}
        went (so it sets or clears its message-waiting data).

        @param outcome: L{M.OUTCOME_ABSENT}, L{M.OUTCOME_MEMORY_EXCEEDED}
            or L{M.OUTCOME_SUCCESS}.
        """
        called = self.hlr(msisdn) or SCCPAddress(gt=msisdn, ssn=SSN_HLR)
        param = M.encode_report(M.DeliveryReport(
            msisdn, self.service_centre(), outcome))
        reply, version = yield self._call(
            called, M.AC_GATEWAY, lambda v: M.OP_REPORT_SM_DELIVERY_STATUS,
            param)
        if reply.kind == TC.RESULT:
            return MAPOutcome("ok", version=version)
        kind, detail = _failure(reply)
        return MAPOutcome(kind, detail=detail, version=version)


@dataclass(frozen=True, slots=True)
class MobileOriginated:
    """
    A short message an MSC relayed from a handset (mo-forwardSM).

    @ivar sender: the subscriber's MSISDN (sm-RP-OA).
    @ivar recipient: TP-DA of the SMS-SUBMIT.
    @ivar msc: the relaying MSC's GT (the SCCP calling address).
    @ivar concat: C{(reference, total, sequence)} of a part, or None.
    """
    sender: str
    recipient: str
    text: str
    msc: str
    imsi: str | None = None
    concat: tuple[int, int, int] | None = None
    encoding: str = "gsm7"


class MAPServer:
    """
    The operations the node answers: mo-forwardSM and alertServiceCentre.
    """

    log = Logger()

    def __init__(self, tcap: TC.TCAPLayer,
                 submit: Callable[[MobileOriginated], defer.Deferred],
                 ):
        """
        @param tcap: the layer to serve on.
        @param submit: takes a L{MobileOriginated} and returns a Deferred
            firing with a L{MAPOutcome} once the message is stored (C{ok})
            or refused (C{kind} a failure cause name of
            L{M.FAIL_CAUSES}).
        """
        self.submit = submit
        self._alert_listeners: list[Callable[[M.Alert, str], Any]] = []
        self.counters = {"mo": 0, "mo-refused": 0, "alerts": 0}
        tcap.serve(M.AC_MO_RELAY, {1, 2, 3}, {M.OP_MO_FORWARD_SM: self._mo})
        tcap.serve(M.AC_ALERT, {1, 2}, {
            M.OP_ALERT_SC: self._alert,
            M.OP_ALERT_SC_WITHOUT_RESULT: self._alert})

    def add_alert_listener(self, listener: Callable[[M.Alert, str], Any]
                           ) -> None:
        """
        Call C{listener(alert, hlr_gt)} for each alertServiceCentre: the
        subscriber can receive short messages again.
        """
        self._alert_listeners.append(listener)

    def _alert(self, op: TC.Incoming) -> TC.Reply:
        try:
            alert = M.decode_alert(op.param or b"")
        except M.MAPError as e:
            self.log.info("bad alertServiceCentre from {gt}: {why}",
                          gt=op.calling.gt, why=str(e))
            return TC.Reply(TC.ERROR, code=M.ERR_UNEXPECTED_DATA_VALUE)
        self.counters["alerts"] += 1
        self.log.info("alertServiceCentre: {msisdn} reachable again",
                      msisdn=alert.msisdn)
        for listener in list(self._alert_listeners):
            try:
                listener(alert, op.calling.gt or "")
            except Exception:
                # Broad: a listener (the SMSC's retry, notifications) is a
                # callback; the others still hear of it, the HLR gets its
                # result.
                self.counters["alert-listener-failed"] = \
                    self.counters.get("alert-listener-failed", 0) + 1
                self.log.failure("alert listener failed")
        return TC.Reply(TC.RESULT)

    def _mo(self, op: TC.Incoming):
        try:
            arg = M.decode_forward_sm(op.param or b"")
            if arg.oa[0] != "msisdn":
                raise M.MAPError("sm-RP-OA is not an MSISDN")
            submit = decode_submit(arg.ui)
        except (M.MAPError, TPDUError) as e:
            self.log.info("bad mo-forwardSM from {gt}: {why}",
                          gt=op.calling.gt, why=str(e))
            self.counters["mo-refused"] += 1
            return TC.Reply(TC.ERROR, code=M.ERR_UNEXPECTED_DATA_VALUE)
        mo = MobileOriginated(
            arg.oa[1], submit.recipient, submit.text, op.calling.gt or "",
            arg.imsi, submit.concat,
            "ucs2" if submit.dcs & 0x0C == 0x08 else "gsm7")
        d = defer.maybeDeferred(self.submit, mo)

        def answered(outcome: MAPOutcome) -> TC.Reply:
            if outcome.ok:
                self.counters["mo"] += 1
                return TC.Reply(TC.RESULT)
            self.counters["mo-refused"] += 1
            cause = M.FAIL_CAUSES.index(outcome.kind) \
                if outcome.kind in M.FAIL_CAUSES else M.FAIL_SC_CONGESTION
            return TC.Reply(TC.ERROR, M.encode_delivery_failure(cause),
                            M.ERR_SM_DELIVERY_FAILURE)
        return d.addCallback(answered)
