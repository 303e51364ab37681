# -*- test-case-name: tests.sigtran.test_smsc -*-
"""
The node as an SMSC on the SS7 network: the glue between the MAP
service and the messaging core.

  - L{MAPDeliveryAgent} (C{IDeliveryAgent} for transport C{map}):
    SRI-SM to the HLR, then one mt-forwardSM per SMS-DELIVER part to the
    serving MSC; absent subscribers and full memories are reported to
    the HLR (reportSM-DeliveryStatus) and retried, and an
    alertServiceCentre for the subscriber dispatches them at once.
  - L{MOIntake}: an mo-forwardSM becomes a C{Submission} of origin kind
    C{map} (origin: the MSC's GT), acknowledged only after the commit.
  - L{SMSCService}: builds TCAP, MAP and ISUP on the node's SS7 service
    and registers them (SSN C{ss7 ssn smsc}, SI 5).
"""
from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from appliance.messaging.vocabulary import NoRoute, Outcome, Refused, Submission
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.model.errors import ModelError
from appliance.sigtran import mapcodec as M
from appliance.sigtran.map import MAPClient, MAPOutcome, MAPServer, \
    MobileOriginated
from appliance.sigtran.tcap import TCAPLayer
from appliance.sigtran.tpdu import TPDUError, deliver_tpdus

#: SRI-SM outcomes after which the message cannot be delivered.
PERMANENT_SRI = frozenset({"unknown", "barred", "not-provisioned",
                           "illegalSubscriber", "unexpected-data-value",
                           "data-missing"})
#: sm-DeliveryFailure causes that will not heal by waiting.
PERMANENT_CAUSES = frozenset({"equipmentNotSM-Equipped",
                              "invalidSME-Address",
                              "subscriberNotSC-Subscriber",
                              "unknownServiceCentre"})


#: The transport name of service policies the MAP agent delivers.
TRANSPORT = "map"


@implementer(IDeliveryAgent)
class MAPDeliveryAgent:
    """
    Delivers stored messages to mobile subscribers by MAP.

    @ivar waiting: MSISDN to the views of messages that found it absent
        (or its memory full), redispatched on its alertServiceCentre.
    @ivar flagged: MSISDNs the HLR was told were absent (or full), so
        their next successful delivery is reported to it.
    """

    log = Logger()

    def __init__(self, client: MAPClient, core: Any, clock: Any):
        """
        @param client: the MAP client.
        @param core: the messaging core (for redispatch on an alert).
        @param clock: for the service centre time stamp.
        """
        self.client = client
        self.core = core
        self.clock = clock
        self.waiting: dict[str, dict[int, Any]] = {}
        self.flagged: set[str] = set()
        self.counters = {"delivered": 0, "absent": 0, "failed": 0,
                         "retry": 0, "alerts": 0}

    @defer.inlineCallbacks
    def send(self, msisdn: str, sender: str, text: str, *,
             invisible: bool = False, reference: int = 0):
        """
        SRI-SM then mt-forwardSM of each part of C{text} to C{msisdn}.

        @param invisible: a type 0 SMS (TP-PID 0x40), as the missed-call
            service sends to learn whether a handset is reachable.
        @return: a Deferred of the last L{MAPOutcome}, with C{kind}
            C{ok} when every part was accepted by the MSC.
        """
        sri = yield self.client.sri_sm(msisdn)
        if not sri.ok:
            return sri
        try:
            tpdus = deliver_tpdus(sender, text or "",
                                  scts=self.clock.seconds(),
                                  reference=reference, invisible=invisible)
        except TPDUError as e:
            return MAPOutcome("invalidSME-Address", detail=str(e))
        outcome = sri
        for n, tpdu in enumerate(tpdus, 1):
            outcome = yield self.client.mt_forward_sm(
                sri.value.imsi, sri.value.msc, tpdu, more=n < len(tpdus))
            if not outcome.ok:
                report = M.OUTCOME_MEMORY_EXCEEDED \
                    if outcome.detail == "memoryCapacityExceeded" \
                    else M.OUTCOME_ABSENT if outcome.kind in (
                        "absentSubscriberSM", "absentSubscriber") else None
                if report is not None:
                    yield self.client.report_delivery_status(msisdn, report)
                return outcome
        return MAPOutcome("ok", sri.value, version=outcome.version)

    @defer.inlineCallbacks
    def deliver(self, message: Any):
        """Deliver one stored message; see L{IDeliveryAgent.deliver}."""
        msisdn = message.recipient
        outcome = yield self.send(msisdn, message.sender, message.text,
                                  reference=message.id & 0xFF)
        if outcome.ok:
            self.counters["delivered"] += 1
            self.waiting.get(msisdn, {}).pop(message.id, None)
            if not self.waiting.get(msisdn):
                self.waiting.pop(msisdn, None)
            if msisdn in self.flagged:
                self.flagged.discard(msisdn)
                yield self.client.report_delivery_status(msisdn,
                                                         M.OUTCOME_SUCCESS)
            return Outcome("delivered")
        reason = outcome.kind + (f" ({outcome.detail})" if outcome.detail
                                 else "")
        if outcome.kind in PERMANENT_SRI or \
                outcome.detail in PERMANENT_CAUSES:
            self.counters["failed"] += 1
            return Outcome("failed", reason)
        if outcome.kind in ("absent", "absentSubscriberSM",
                            "absentSubscriber") \
                or outcome.detail == "memoryCapacityExceeded":
            self.counters["absent"] += 1
            self.flagged.add(msisdn)
            self.waiting.setdefault(msisdn, {})[message.id] = message
        else:
            self.counters["retry"] += 1
        return Outcome("retry", reason)

    def alert(self, alert: M.Alert, hlr: str = "") -> None:
        """
        alertServiceCentre for C{alert.msisdn}: dispatch what waits.
        """
        self.counters["alerts"] += 1
        views = self.waiting.pop(alert.msisdn, {})
        self.log.info("{msisdn} reachable: {n} waiting messages",
                      msisdn=alert.msisdn, n=len(views))
        for view in views.values():
            self.core.dispatch(view, "map")


class MOIntake:
    """mo-forwardSM into the messaging core."""

    log = Logger()

    def __init__(self, core: Any):
        """@param core: the L{IMessagingCore}."""
        self.core = core

    def submit(self, mo: MobileOriginated) -> defer.Deferred:
        """
        @return: a Deferred of a L{MAPOutcome}: C{ok} once committed, else
            the delivery failure cause to answer the MSC with.
        """
        try:
            d = self.core.submit(Submission(
                "map", mo.msc, mo.sender, mo.recipient, mo.text,
                encoding=mo.encoding))
        except NoRoute as e:
            self.log.info("MO from {sender} to {to}: no route ({why})",
                          sender=mo.sender, to=mo.recipient, why=str(e))
            return defer.succeed(MAPOutcome("invalidSME-Address"))
        except Refused as e:
            return defer.succeed(MAPOutcome("subscriberNotSC-Subscriber",
                                            detail=str(e)))
        except ModelError as e:
            return defer.succeed(MAPOutcome("invalidSME-Address",
                                            detail=str(e)))

        def stored(_id: int) -> MAPOutcome:
            return MAPOutcome("ok")

        def failed(f) -> MAPOutcome:
            self.log.failure("MO from {sender} not stored", f,
                             sender=mo.sender)
            return MAPOutcome("sc-Congestion")
        return d.addCallbacks(stored, failed)


class SMSCService(Service):
    """
    TCAP, MAP and ISUP on top of the node's SS7 service.

    @ivar tcap: the L{TCAPLayer} of our SMSC subsystem.
    @ivar client: the L{MAPClient}; C{server}: the L{MAPServer};
        C{agent}: the L{MAPDeliveryAgent}; C{isup}: the ISUP layer.
    """

    name = "map"
    log = Logger()

    def __init__(self, ss7: Any, core: Any, clock: Any, *,
                 storage: Any = None, dialogue_limit: int = 100_000,
                 timeout: float = 30.0):
        """
        @param ss7: the node's SS7 service: C{sccp} (ISCCPProvider),
            C{mtp} (IMTPProvider) and C{settings()} (SS7Settings).
        @param core: the messaging core, or None (no SMS, ISUP only).
        @param clock: the reactor.
        @param storage: where the ISUP release settings are read (after
            each configuration commit), or None.
        """
        from appliance.sigtran.isup import ISUPLayer
        self.ss7 = ss7
        self.storage = storage
        settings = ss7.settings()
        self.tcap = TCAPLayer(ss7.sccp, clock, settings.smsc_ssn,
                              limit=dialogue_limit, timeout=timeout)
        self.client = MAPClient(
            self.tcap, lambda: ss7.settings().global_title or "",
            lambda msisdn: ss7.sccp.hlr_address(), timeout=timeout)
        self.agent = self.intake = None
        if core is not None:
            self.agent = MAPDeliveryAgent(self.client, core, clock)
            self.intake = MOIntake(core)
            # appliance.application makes self.agent the core's agent for
            # TRANSPORT (no service registers itself on the core).
        self.server = MAPServer(self.tcap, self.intake.submit
                                if self.intake else _no_mo)
        if self.agent is not None:
            self.server.add_alert_listener(self.agent.alert)
        self.isup = ISUPLayer(ss7.mtp, clock, ss7.settings)

    def startService(self) -> None:
        """Register our subsystem and the ISUP user part."""
        super().startService()
        from appliance.sigtran.interfaces import SI_ISUP
        self.ss7.sccp.register_ssn(self.tcap.ssn, self.tcap)
        self.ss7.mtp.register_user(SI_ISUP, self.isup)
        if self.storage is not None:
            self._configured()
            self.storage.add_change_listener(self._configured)

    def _configured(self, note: str = "") -> None:
        from appliance.sigtran.model import isup_release
        from appliance.sigtran.model import ss7_of
        ss7 = ss7_of(self.storage.root())
        if ss7 is not None:
            self.isup.release_cause, self.isup.release_delay = \
                isup_release(ss7)

    def stopService(self) -> None:
        """Cancel every timer; waiting invokes end as aborted."""
        if self.storage is not None:
            try:
                self.storage.remove_change_listener(self._configured)
            except ValueError:
                pass
        self.tcap.stop()
        self.isup.stop()
        return super().stopService()


def _no_mo(mo: MobileOriginated) -> defer.Deferred:
    return defer.succeed(MAPOutcome("subscriberNotSC-Subscriber"))
