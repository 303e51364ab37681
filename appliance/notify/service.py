# -*- test-case-name: tests.notify.test_service -*-
"""
The missed-call service as the node runs it: the SIP INVITE hook, the
ISUP IAM listener and the alertServiceCentre listener feed triggers to
the pure decisions of L{appliance.notify.decide}; the probe of an
unreachable subscriber (SRI-SM, invisible MT-ForwardSM,
reportSM-DeliveryStatus) runs on the node's L{MAPClient}; the pending set
lives in C{root["notify"]}; the SMS leave through the messaging core
(C{delivery smpp}: a C{Submission} of origin kind C{node}, origin
C{notification}, routed by the service policies like any message) or by
MAP directly (C{delivery map}).

The operator's settings are read into an immutable L{Settings} snapshot
after every configuration commit; the hot paths read only the snapshot.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from appliance.messaging.interfaces import IDeliveryAgent

from appliance.notify import decide as D
from appliance.notify import texts
from appliance.notify.model import KEY, RESPONSES, notify_of

#: The transport of service policies whose messages the service reads
#: (SMS to a service number: the opt-out keyword).
TRANSPORT = "notification"
#: The origin of the SMS the service submits to the core.
ORIGIN_KIND, ORIGIN = "node", "notification"
#: Presentation restricted / address not available (Q.763 3.10 e).
_RESTRICTED = (1, 2)
#: reportSM-DeliveryStatus: absent subscriber (TS 29.002).
OUTCOME_ABSENT = 1
#: Counters the statistics show (and the alarms engineer reads).
COUNTERS = (
    "triggers-sip-busy", "triggers-sip-unreachable", "triggers-sip-no-reply",
    "triggers-isup-busy", "triggers-isup-unreachable",
    "triggers-isup-no-reply", "triggers-clir", "triggers-blacklisted",
    "sms-who-called", "sms-notify-me", "sms-failed", "alerts",
    "probes", "probe-delivered", "probe-absent", "probe-dropped",
    "hlr-errors", "hlr-timeouts", "msc-errors", "msc-timeouts",
    "expired", "opt-outs")


@dataclass(frozen=True)
class Settings:
    """What the hot paths read, rebuilt after each configuration commit."""
    service_numbers: frozenset = frozenset()
    responses: dict = field(default_factory=lambda: dict(RESPONSES))
    release_busy: int = 17
    release_other: int = 42
    seized_timer: float = 2.0
    templates: dict = field(default_factory=dict)
    include: frozenset = frozenset()
    language: str = ""
    expiry: float = 7 * 86400
    delivery: str = "smpp"
    keyword: str = "STOP"
    blacklist: frozenset = frozenset()

    @classmethod
    def of(cls, root: Any) -> "Settings":
        """@return: the snapshot of a L{NotifyRoot} (defaults if None)."""
        if root is None:
            return cls()
        responses = dict(RESPONSES)
        responses.update(dict(root.responses))
        return cls(frozenset(root.service_numbers), responses,
                   root.release_busy, root.release_other,
                   float(root.seized_timer), dict(root.templates),
                   frozenset(root.include), root.language,
                   float(root.pending_expiry), root.delivery,
                   root.opt_out_keyword, frozenset(root.blacklist))


def _digits(text: str | None) -> str:
    """@return: C{text} as E.164 digits, C{""} when it is not a number."""
    from appliance.model.errors import ModelError
    from appliance.model.numbers import normalize_e164
    if not text:
        return ""
    try:
        return normalize_e164(text)
    except ModelError:
        return ""


class NotificationService(Service):
    """
    Who Called and Notify Me.

    @ivar settings: the current L{Settings}.
    @ivar counters: L{COUNTERS} to counts.
    """

    name = "notification"
    log = Logger()

    def __init__(self, storage: Any, clock: Any, core: Any = None,
                 map_client: Any = None, map_agent: Any = None,
                 sweep_interval: float = 60.0):
        """
        @param storage: the node's storage (C{root["notify"]}).
        @param clock: the reactor's time and scheduling.
        @param core: the messaging core (C{delivery smpp}), or None.
        @param map_client: the L{appliance.sigtran.map.MAPClient} for the
            probe, or None (no SS7: unreachable cases are dropped).
        @param map_agent: what sends an SMS by MAP (C{send(msisdn,
            sender, text)}), for C{delivery map}.
        """
        self.storage = storage
        self.clock = clock
        self.core = core
        self.map_client = map_client
        self.map_agent = map_agent
        self.sweep_interval = sweep_interval
        self.settings = Settings()
        self.counters = {k: 0 for k in COUNTERS}
        self._sweep = None
        self.agent = OptOutAgent(self)
        #: Where the next expiry sweep starts (None: at the beginning).
        self._cursor: str | None = None
        #: (B, A) probes under way, with the calls that came meanwhile.
        self._probing: dict[tuple[str, str], list[D.Trigger]] = {}

    # -- life cycle ---------------------------------------------------------

    def startService(self) -> None:
        """Read the settings, follow commits, start the expiry sweep."""
        super().startService()
        self._configured()
        self.storage.add_change_listener(self._configured)
        self._sweep = self.clock.callLater(self.sweep_interval, self.sweep)

    def stopService(self):
        """Stop the sweep and stop following commits."""
        if self._sweep is not None and self._sweep.active():
            self._sweep.cancel()
        self._sweep = None
        try:
            self.storage.remove_change_listener(self._configured)
        except ValueError:
            pass
        return super().stopService()

    def _root(self):
        return self.storage.domain_get(KEY)

    def _configured(self, note: str = "") -> None:
        self.settings = Settings.of(self._root())

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def statistics(self) -> dict[str, int]:
        """@return: counter name to value, with the pending count."""
        out = dict(self.counters)
        root = self._root()
        out["pending"] = root.pending_count() if root is not None else 0
        return out

    # -- SIP ----------------------------------------------------------------

    def sip_invite(self, request: Any, tx: Any) -> bool:
        """
        An INVITE: answer it if it is to a service number.

        @return: whether it was ours (else the caller answers as before).
        """
        from appliance.sip.headers import HeaderError
        from appliance.sip.message import make_response
        s = self.settings
        try:
            to = request.to_address()
        except HeaderError:
            return False        # the caller answers it (400) as before
        service = _digits(request.uri.user) if request.uri.user else ""
        if service not in s.service_numbers:
            service = _digits(to.uri.user)
            if service not in s.service_numbers:
                return False
        trigger, reason = self._sip_trigger(request, service)
        status = s.responses.get(reason) or s.responses["other"]
        import secrets
        tx.respond(make_response(request, status,
                                 to_tag=secrets.token_hex(6)))
        if trigger is not None:
            self.trigger(trigger)
        return True

    def _sip_trigger(self, request: Any, service: str
                     ) -> tuple[D.Trigger | None, str]:
        from appliance.sip.headers import Address, HeaderError, split_list
        headers = request.headers
        diversions = []
        for value in headers.get_all("diversion"):
            diversions.extend(split_list(value))
        reason, called = "other", ""
        if diversions:
            try:
                d = Address.parse(diversions[-1])
                called = _digits(d.uri.user)
                reason = (d.param("reason") or "").strip('"').lower()
            except HeaderError:
                self.log.info("bad Diversion in INVITE: {v}",
                              v=diversions[-1])
        case = D.sip_case(reason)
        answer = {"user-busy": "busy", "unavailable": "unavailable",
                  "no-answer": "no-answer"}.get(reason, "other")
        privacy = {p.strip().lower() for v in headers.get_all("privacy")
                   for p in v.split(";")}
        caller_value = headers.get("p-asserted-identity") or \
            headers.get("from")
        caller, anonymous = "", False
        try:
            a = Address.parse(caller_value or "")
            caller = _digits(a.uri.user)
            anonymous = (a.uri.user or "").lower() == "anonymous" or \
                a.uri.host.lower() == "anonymous.invalid" or \
                a.display_name.lower() == "anonymous"
        except HeaderError:
            self.log.info("bad caller address in INVITE: {v}",
                          v=caller_value)
        restricted = anonymous or bool(privacy & {"id", "user", "header"})
        if not called:
            return None, answer
        return D.Trigger("sip", case, caller, called, service, restricted,
                         self.clock.seconds(), reason), answer

    # -- ISUP ---------------------------------------------------------------

    def isup_iam(self, call: Any):
        """
        An IAM on one of our circuits: if its called number is a service
        number, choose the REL cause and delay and act on the trigger.

        @return: C{(cause, delay)} or None (not ours: the SS7 defaults).
        """
        s = self.settings
        service = call.called.digits if call.called else ""
        if service not in s.service_numbers:
            return None
        info = call.redirection
        reason = None
        if info is not None:
            reason = info.reason or info.original_reason or None
        case = D.isup_case(reason)
        b = call.original_called or call.redirection_number or \
            call.redirecting
        a = call.calling
        restricted = a is None or a.presentation in _RESTRICTED
        trigger = D.Trigger("isup", case, a.digits if a else "",
                            b.digits if b else "", service, restricted,
                            self.clock.seconds(), case)
        cause = s.release_busy if case == "busy" else s.release_other
        self.trigger(trigger)
        return cause, s.seized_timer

    # -- the decisions --------------------------------------------------------

    def trigger(self, t: D.Trigger) -> defer.Deferred:
        """
        Act on one trigger.

        @return: a Deferred fired once its actions are done (tests wait
            on it; nothing else does).
        """
        s = self.settings
        self._count(f"triggers-{t.source}-{t.case}")
        if t.restricted:
            self._count("triggers-clir")
        action = D.plan(t, s.blacklist)
        self.log.info("{source} trigger {case}: {a} -> {b} via {svc}: "
                      "{action}", source=t.source, case=t.case, a=t.caller,
                      b=t.called, svc=t.service, action=action)
        if action == D.NOW:
            return self._send("who-called", t.called, t.caller, t.caller,
                              t.called, t.at, 1, t.case)
        if action == D.PROBE:
            return self._probe(t)
        return defer.succeed(None)

    def _probe(self, t: D.Trigger) -> defer.Deferred:
        root = self._root()
        pair = (t.called, t.caller)
        if pair in self._probing:
            self._probing[pair].append(t)
            return defer.succeed(None)
        if root is not None and root.get(t.called, t.caller) is not None:
            # Already waiting for B: one SMS per caller per session.
            return self._remember([t])
        if self.map_client is None:
            self._count("probe-dropped")
            return defer.succeed(None)
        self._probing[pair] = [t]
        d = self._run_probe(t)

        def done(result):
            self._probing.pop(pair, None)
            return result
        return d.addBoth(done)

    @defer.inlineCallbacks
    def _run_probe(self, t: D.Trigger):
        self._count("probes")
        sri = yield self.map_client.sri_sm(t.called)
        self._count_failure("hlr", sri)
        mt = None
        if sri.ok:
            from appliance.sigtran.tpdu import deliver_tpdus
            tpdu = deliver_tpdus(t.service or "0", "",
                                 scts=self.clock.seconds(),
                                 invisible=True)[0]
            outcome = yield self.map_client.mt_forward_sm(
                sri.value.imsi, sri.value.msc, tpdu)
            self._count_failure("msc", outcome)
            mt = outcome
        result = D.after_probe(sri.kind, mt.kind if mt else None,
                               mt.detail if mt else "")
        if result == D.BOTH:
            self._count("probe-delivered")
            entry = None
            for call in self._probing.get((t.called, t.caller), [t]):
                entry = D.fold(entry, call)
            yield self._both(t.called, t.caller, entry)
        elif result == D.REMEMBER:
            self._count("probe-absent")
            yield self._remember(self._probing.get((t.called, t.caller),
                                                   [t]))
            report = yield self.map_client.report_delivery_status(
                t.called, OUTCOME_ABSENT)
            self._count_failure("hlr", report)
        else:
            self._count("probe-dropped")

    def _count_failure(self, side: str, outcome: Any) -> None:
        if outcome.ok or outcome.kind in ("absent", "absentSubscriberSM",
                                          "absentSubscriber"):
            return
        self._count(f"{side}-timeouts" if outcome.kind == "timeout"
                    else f"{side}-errors")

    def _remember(self, calls: list[D.Trigger]) -> defer.Deferred:
        calls = list(calls)

        def write(raw):
            root = raw[KEY]
            t = calls[0]
            entry = root.get(t.called, t.caller)
            for call in calls:
                entry = D.fold(entry, call)
            root.remember(t.called, t.caller, entry)
        return self.storage.batch(write)

    def alert(self, alert: Any, hlr: str = "") -> defer.Deferred:
        """
        alertServiceCentre for B: send what waits for B, then forget it.
        """
        called = alert.msisdn
        root = self._root()
        if root is None:
            return defer.succeed(0)
        waiting = root.waiting_for(called)
        if not waiting:
            return defer.succeed(0)
        self._count("alerts")
        now, expiry = self.clock.seconds(), self.settings.expiry

        def purge(raw):
            r = raw[KEY]
            for caller, _ in waiting:
                r.forget(called, caller)

        d = self.storage.batch(purge)
        sent = []
        for caller, entry in waiting:
            if D.expired(entry, now, expiry):
                self._count("expired")
                continue
            sent.append(self._both(called, caller, entry))
        return defer.gatherResults([d] + sent)

    def _both(self, called: str, caller: str, entry: D.Pending):
        """Who Called to B (A as sender), Notify Me to A (B as sender)."""
        return defer.gatherResults([
            self._send("who-called", called, caller, caller, called,
                       entry.last, entry.count, entry.reason),
            self._send("notify-me", caller, called, caller, called,
                       entry.last, entry.count, entry.reason)])

    def _send(self, kind: str, recipient: str, sender: str, caller: str,
              called: str, at: float, count: int, reason: str
              ) -> defer.Deferred:
        s = self.settings
        if recipient in s.blacklist:
            self._count("triggers-blacklisted")
            return defer.succeed(None)
        text = texts.render(kind, s.templates, s.language, s.include,
                            caller=caller, called=called, at=at,
                            count=count, reason=reason)
        self.log.info("{kind} to {to} from {sender}: {text!r}", kind=kind,
                      to=recipient, sender=sender, text=text)
        from appliance.messaging.vocabulary import (
            NoRoute, Refused, Submission)
        from appliance.model.errors import ModelError
        if s.delivery == "map" and self.map_agent is not None:
            d = defer.maybeDeferred(self.map_agent.send, recipient,
                                    sender, text)
        elif self.core is not None:
            d = defer.maybeDeferred(self.core.submit, Submission(
                ORIGIN_KIND, ORIGIN, sender, recipient, text,
                encoding=texts.coding(text)))
        else:
            self._count("sms-failed")
            self.log.warn("{kind} to {to} not sent: no messaging core",
                          kind=kind, to=recipient)
            return defer.succeed(None)

        def done(result):
            if getattr(result, "ok", True):
                self._count("sms-" + kind)
            else:
                self._count("sms-failed")
            return result

        def failed(f):
            self._count("sms-failed")
            if f.check(NoRoute, Refused, ModelError):
                # Refused by the core (no route, the payer, a field):
                # nothing was stored.
                self.log.warn("{kind} to {to} not sent: {why}", kind=kind,
                              to=recipient, why=f.getErrorMessage())
            else:
                # Anything else (the MAP agent's failures, a bug) is
                # logged with its traceback; the other message of the
                # pair is still sent.
                self.log.failure("{kind} to {to} not sent", f, kind=kind,
                                 to=recipient, level=LogLevel.warn)
        return d.addCallbacks(done, failed)

    # -- expiry ------------------------------------------------------------

    def sweep(self, limit: int = 20_000) -> defer.Deferred | None:
        """
        Forget pending entries whose last call is older than the expiry.
        Each run reads at most C{limit} entries from where the last one
        stopped (a million pending are walked in 50 runs, never all on one
        reactor turn); reschedules itself.
        """
        self._sweep = self.clock.callLater(self.sweep_interval, self.sweep)
        root = self._root()
        expiry = self.settings.expiry
        if root is None or expiry <= 0:
            return None
        now = self.clock.seconds()
        old, seen, last = [], 0, None
        for k, v in root.pending.items(min=self._cursor,
                                       excludemin=self._cursor is not None):
            seen += 1
            last = k
            if now - v[1] > expiry:
                old.append(k)
            if seen >= limit:
                break
        self._cursor = last if seen >= limit else None
        if not old:
            return None

        def purge(raw):
            r = raw[KEY]
            for k in old:
                if k in r.pending:
                    del r.pending[k]
                    r.pending_count.change(-1)
        self._count("expired", len(old))
        return self.storage.batch(purge)

    # -- shell ---------------------------------------------------------------

    def pending_rows(self) -> list[tuple[str, str, str, str, int, str]]:
        """@return: (B, A, first, last, count, reason) for C{show
        notification pending}."""
        import time
        root = self._root()
        if root is None:
            return []
        fmt = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))
        out = []
        for k, v in root.pending.items():
            b, _, a = k.partition("\x00")
            e = D.Pending.from_tuple(v)
            out.append((b, a, fmt(e.first), fmt(e.last), e.count, e.reason))
        return out


@implementer(IDeliveryAgent)
class OptOutAgent:
    """
    The delivery agent of transport C{notification}: an SMS routed to the
    service (a service policy for the service numbers with C{transport
    notification}) whose text is the opt-out keyword puts its sender on
    the blacklist; any other text is refused (C{failed}).
    """

    log = Logger()

    def __init__(self, service: NotificationService):
        """@param service: the missed-call service."""
        self.service = service

    def deliver(self, message: Any) -> defer.Deferred:
        """See L{IDeliveryAgent.deliver}."""
        from appliance.messaging.vocabulary import Outcome
        s = self.service.settings
        word = (message.text or "").strip()
        sender = _digits(message.sender)
        if not sender or word.upper() != s.keyword.upper():
            return defer.succeed(Outcome("failed", "not the opt-out keyword"))

        def write(raw):
            raw[KEY].blacklist.add(sender)

        def effective(_):
            # Only now, committed and in the snapshot the hot paths read,
            # is the opt-out in force: say so (and count it) only now, so
            # that whoever reads the log or the counter and then calls B
            # sees B's calls send nothing.
            self.service._configured()
            self.service._count("opt-outs")
            self.log.info("{sender} opted out of notifications",
                          sender=sender)
            return Outcome("delivered")
        return self.service.storage.batch(write).addCallback(effective)
