# -*- test-case-name: tests.smpp.test_smpp_server -*-
"""
The SMPP server's controller: who may bind, what becomes of each submit,
and where receipts go.  Sessions (L{appliance.smpp.session}) frame and
keep state; this decides.

Durable accept: a C{submit_sm_resp} carrying a message id is written only
after the messaging core's batched commit of that message (or, for a part
of a concatenated message, after the part is on disk).  Message ids: see
L{appliance.smpp.receipts} and L{appliance.smpp.reassembly}.  For a
C{submit_multi} the id reported is that of its first accepted recipient;
the other recipients' messages get it as their alias, so every receipt
carries the id the carrier saw.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from appliance.admission import Refusals
from appliance.messaging.vocabulary import NoRoute, Refused, Submission
from appliance.messaging.vocabulary import MessageIds
from appliance.model.errors import ModelError
from appliance.model.numbering import (Alphanumeric, NumberError, Plan,
                                       normalize, plan_for, resolve_name)
from appliance.model.numbers import normalize_e164
from appliance.smpp import pdus
from appliance.smpp import receipts as R
from appliance.smpp.bindguard import BindGuard, Verify, inline_verify
from appliance.smpp.concat import GroupKey, ReassemblyFull, text_of
from appliance.smpp.courier import ReceiptCourier
from appliance.smpp.pdus import Status
from appliance.smpp.reassembly import DurableReassembler, PartInfo
from appliance.smpp.state import KEY, state
from appliance.sms.text import Alphabet, TextCodingError, alphabet_for, \
    decode_short_message
from appliance.sms.udh import ConcatenationError, concatenation_from_sar, \
    concatenation_from_udh, split_user_data

#: Stored message encoding by alphabet.
ENCODINGS = {Alphabet.GSM7: "gsm7", Alphabet.UCS2: "ucs2",
             Alphabet.LATIN1: "latin1", Alphabet.ASCII: "ascii"}
COUNTERS = ("submitted", "accepted", "rejected", "throttled",
            "receipts_sent")
#: Submits in processing a session may always hold (see L{SMPPServer.
#: _unfair}).
FAIR_FLOOR = 10


@dataclass(frozen=True)
class CarrierBind:
    """A snapshot of the carrier a session bound as (taken at bind)."""
    name: str
    system_id: str
    throughput: int
    max_binds: int


def _accepted(id: int) -> tuple:
    """What L{SMPPServer._one} gives for a stored message."""
    return Status.ESME_ROK, R.message_id(id), id


class SMPPServer:
    """
    Decisions for every session of the SMPP service.

    @ivar binds: carrier name to its bound sessions, in bind order.
    @ivar sessions: every connected session.
    @ivar counters: carrier name to its counters (see L{COUNTERS}).
    """

    log = Logger()

    def __init__(self, storage: Any, core: Any, clock: Any, section: Any,
                 system_id: str = "appliance",
                 verify: Verify = inline_verify, admission: Any = None):
        """
        @param storage: the L{IStorage}.
        @param core: the L{IMessagingCore}.
        @param clock: the reactor's time and scheduling.
        @param section: the L{appliance.config.SMPPSection}.
        @param system_id: ours, sent in bind responses.
        @param verify: C{verify(hash, password)} returns a Deferred firing
            with whether it matches: L{thread_verify} in the node.
        @param admission: the node's L{appliance.admission.Admission}
            (C{overloaded()} and its C{refusals}), or C{None}: then only
            this server's own limits apply and refusals are counted here.
        """
        self.storage = storage
        self.core = core
        self.clock = clock
        self.section = section
        self.system_id = system_id
        self.admission = admission
        self.refusals = admission.refusals if admission is not None \
            else Refusals(clock)
        self.binds: dict[str, list] = {}
        self.bind_guard = BindGuard(clock, verify,
                                    limit=section.bind_failures,
                                    window=section.bind_lockout)
        self.sessions: set = set()
        self.counters: dict[str, dict[str, int]] = {}
        self._buckets: dict[str, list[float]] = {}
        self._rr: dict[str, list] = {}
        self._ids: MessageIds | None = None
        #: Concatenated messages authorized at their first part, by group.
        self._authorized: dict[GroupKey, Any] = {}
        #: Refused concatenated messages: group to (status, until when).
        self._refused: dict[GroupKey, tuple[Any, float]] = {}
        self.parts = DurableReassembler(storage, clock,
                                        section.reassembly_timeout,
                                        section.reassembly_policy)
        self.courier = ReceiptCourier(storage, clock, self.receivers,
                                      section.response_timeout)
        self._expiry: task.LoopingCall | None = None
        #: Numbering plan snapshots by carrier, dropped at each
        #: configuration commit.
        self._plans: dict[str, Plan] = {}
        #: Submits in processing in all sessions, and sessions with any.
        self.in_flight = 0
        self.busy = 0
        #: Messages waiting as of the storage's commit C{_counted_at}.
        self._waiting = 0
        self._counted_at: int | None = None

    # -- life cycle ----------------------------------------------------

    def start(self) -> None:
        """Load the durable state, take a part-id epoch, start the timers
        (the wiring hands the core's final states to L{outcome})."""
        smpp = self.storage.domain(KEY)
        with self.storage.transaction(user="smpp", note="smpp part id epoch"):
            epoch = smpp.next_epoch()
        self._ids = MessageIds(epoch)
        parts = self.parts.load(smpp)
        waiting = self.courier.load(smpp)
        if parts or waiting:
            self.log.info("SMPP: {parts} concatenation parts held, "
                          "{receipts} receipts pending", parts=parts,
                          receipts=waiting)
        self.storage.add_change_listener(self._config_changed)
        self.courier.start()
        self._expiry = task.LoopingCall(self.expire_parts)
        self._expiry.clock = self.clock
        self._expiry.start(max(1.0, min(10.0, self.section.reassembly_timeout
                                        / 4)), now=False)

    def stop(self) -> None:
        """Stop the timers and close every session."""
        try:
            self.storage.remove_change_listener(self._config_changed)
        except ValueError:
            pass
        self.courier.stop()
        if self._expiry is not None and self._expiry.running:
            self._expiry.stop()
        for session in list(self.sessions):
            session.close("service stopping")
        if self.admission is None:
            self.refusals.stop()

    def _config_changed(self, note: str) -> None:
        self._plans.clear()

    def plan(self, root: Any, carrier: str) -> Plan:
        """@return: the numbering plan a carrier's addresses are read with
        (a snapshot, rebuilt after configuration commits)."""
        plan = self._plans.get(carrier)
        if plan is None:
            plan = self._plans[carrier] = plan_for(root, "carrier", carrier)
        return plan

    # -- sessions --------------------------------------------------------

    def connected(self, session: Any) -> None:
        """A connection was made."""
        self.sessions.add(session)

    def disconnected(self, session: Any, was_bound: bool) -> None:
        """A connection was lost."""
        self.sessions.discard(session)
        if session.carrier is not None:
            line = self.binds.get(session.carrier.name, [])
            if session in line:
                line.remove(session)
            rr = self._rr.get(session.carrier.name, [])
            if session in rr:
                rr.remove(session)

    def authenticate(self, session: Any, bind_type: str, system_id: str,
                     password: str) -> defer.Deferred:
        """
        Check a bind against the Carrier objects.  The password is checked
        by the L{BindGuard} (off the reactor thread in the node); a source
        with too many recent failures is refused without a check.

        @return: a Deferred firing with C{(ESME_ROK, record)} or C{(error
            status, None)}: C{ESME_RINVSYSID} unknown system_id,
            C{ESME_RINVPASWD} wrong password, C{ESME_RBINDFAIL} carrier
            disabled, source address not allowed, source locked out or a
            check from it already in progress, C{ESME_RALYBND} the carrier
            has C{max_binds} binds already.
        """
        source = session.peer
        guard = self.bind_guard
        wait = guard.locked(source)
        if wait:
            self.log.info("SMPP bind of {system_id!r} from {source} refused: "
                          "locked out for {wait} s more",
                          system_id=system_id, source=source, wait=wait)
            return defer.succeed((Status.ESME_RBINDFAIL, None))
        busy = guard.busy(source)
        if busy:
            guard.failed(source, system_id, busy)
            return defer.succeed((Status.ESME_RBINDFAIL, None))
        carrier = self.storage.root().carrier_by_system_id(system_id) \
            if system_id else None
        if carrier is None:
            guard.failed(source, system_id, "unknown system_id")
            return defer.succeed((Status.ESME_RINVSYSID, None))
        if not carrier.source_allowed(source):
            guard.failed(source, system_id, "address not allowed")
            return defer.succeed((Status.ESME_RBINDFAIL, None))
        name, stored = carrier.name, carrier.password_hash

        def checked(ok: bool):
            carrier = self.storage.root().carriers.get(name)
            if not ok:
                guard.failed(source, system_id, "wrong password")
                return Status.ESME_RINVPASWD, None
            if carrier is None or not carrier.enabled:
                return Status.ESME_RBINDFAIL, None
            guard.succeeded(source)
            if len(self.binds.get(carrier.name, ())) >= carrier.max_binds:
                return Status.ESME_RALYBND, None
            return Status.ESME_ROK, CarrierBind(carrier.name, system_id,
                                                carrier.throughput,
                                                carrier.max_binds)
        return guard.verify(source, stored, password).addCallback(checked)

    def bound(self, session: Any) -> None:
        """A session bound: count it, and send it waiting receipts."""
        name = session.carrier.name
        self.binds.setdefault(name, []).append(session)
        self.counters.setdefault(name, dict.fromkeys(COUNTERS, 0))
        if session.bind_type != "transmitter":
            self._rr.setdefault(name, []).append(session)
            self.courier.flush(name)

    def unbinding(self, session: Any) -> None:
        """A session asked to unbind: no more receipts go to it."""
        rr = self._rr.get(session.carrier.name, [])
        if session in rr:
            rr.remove(session)

    def receiving_carriers(self) -> list[str]:
        """@return: the carriers with a session here that takes
        deliver_sm (receiver or transceiver, bound)."""
        return [name for name, sessions in self._rr.items() if sessions]

    def receivers(self, carrier: str) -> list:
        """@return: the carrier's sessions that take deliver_sm (the list
        the courier rotates)."""
        return self._rr.get(carrier, [])

    def count(self, session: Any, counter: str, n: int = 1) -> None:
        """Add to a carrier's counter."""
        if session.carrier is not None:
            name = session.carrier.name
            c = self.counters.get(name)
            if c is None:
                c = self.counters[name] = dict.fromkeys(COUNTERS, 0)
            c[counter] += n

    # -- submits ---------------------------------------------------------

    def _take_token(self, record: CarrierBind) -> bool:
        if record.throughput <= 0:
            return True
        now = self.clock.seconds()
        bucket = self._buckets.setdefault(record.name,
                                          [float(record.throughput), now])
        tokens = min(float(record.throughput),
                     bucket[0] + (now - bucket[1]) * record.throughput)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _queue_full(self) -> bool:
        # The reader sees the store move only when a batch commits, so
        # the waiting count is read once per commit, not per submit
        # (five counters looked up each time before).
        commits = getattr(self.storage, "commits", None)
        if commits is None or commits != self._counted_at:
            counts = self.storage.messages().counts()
            self._waiting = counts["accepted"] + counts["delivering"]
            self._counted_at = commits
        return self._waiting >= self.section.queue_limit

    def admit(self, session: Any) -> Any:
        """
        Whether a bound session's next submit is taken, decided before it
        is decoded: its carrier's throughput, then the node's admission
        (storage backlog, reactor lag), then the queue limit.

        @return: C{None} to take it, else the status that answers it
            (C{ESME_RTHROTTLED}, or C{ESME_RMSGQFUL} for the queue);
            the refusal is counted.
        """
        if not self._take_token(session.carrier):
            self.refuse(session, "throughput")
            return Status.ESME_RTHROTTLED
        if self.admission is not None:
            why = self.admission.overloaded() or self._unfair(session)
            if why is not None:
                self.refuse(session, why)
                return Status.ESME_RTHROTTLED
        if self._queue_full():
            self.refuse(session, "queue", "rejected")
            return Status.ESME_RMSGQFUL
        return None

    def took(self, session: Any) -> None:
        """A session took a submit into processing (its C{in_flight}
        grew by one)."""
        self.in_flight += 1
        if session.in_flight == 1:
            self.busy += 1

    def answered(self, session: Any) -> None:
        """A session answered a submit it took (its C{in_flight} fell by
        one)."""
        self.in_flight -= 1
        if session.in_flight == 0:
            self.busy -= 1

    def _unfair(self, session: Any) -> str | None:
        """
        Fair shares: once the submits in processing reach half of what
        the node's admission lets wait, a session may hold at most its
        share of that half (at least L{FAIR_FLOOR}), so a bind that
        floods gets no more of the node than the others.

        @return: C{"fair share"} when C{session} holds its share.
        """
        half = self.admission.pending_limit() // 2
        if self.in_flight < half:
            return None
        share = max(FAIR_FLOOR, half // max(1, self.busy))
        return "fair share" if session.in_flight >= share else None

    def refuse(self, session: Any, reason: str,
               counter: str = "throttled") -> None:
        """Count a submit refused at the door: in the carrier's counters
        and in the node's refusals (a warning at most once a second)."""
        self.count(session, counter)
        self.refusals.refused("smpp", reason)

    #: Decoding a submit's text and concatenation (L{concat.text_of}).
    text_of = staticmethod(text_of)

    def submit(self, session: Any, h: pdus.Header, submit: pdus.Submit):
        """
        Decide on one submit_sm, data_sm or submit_multi that
        L{admit} took.

        @return: the response octets, or a Deferred firing with them once
            the message (or part) is on disk.
        """
        rec = session.carrier
        self.count(session, "submitted")
        resp = pdus.response_id(h.command_id)
        try:
            text, concat, encoding = self.text_of(submit)
            if not 0 < len(submit.source) <= 32:
                raise pdus.PDUError(Status.ESME_RINVSRCADR,
                                    "source_addr must be 1 to 32 characters")
        except pdus.PDUError as e:
            self.count(session, "rejected")
            self.log.debug("submit from {carrier} refused: {why}",
                           carrier=rec.name, why=str(e))
            return pdus.bare_response(resp, h.sequence, e.status)
        receipt = submit.registered_delivery & 0x03
        pid = R.part_id(self._next_part()) \
            if concat is not None and concat.total > 1 else None
        root = self.storage.root()
        plan = self.plan(root, rec.name)
        try:
            source = str(normalize(submit.source, submit.source_ton,
                                   submit.source_npi, plan))
        except NumberError as e:
            self.count(session, "rejected")
            self.log.debug("submit from {carrier} refused: {why}",
                           carrier=rec.name, why=str(e))
            return pdus.bare_response(resp, h.sequence,
                                      Status.ESME_RINVSRCADR)
        if h.command_id != pdus.SUBMIT_MULTI and len(submit.recipients) == 1:
            # One recipient: its Deferred answers it (no DeferredList).
            (ton, npi, addr), = submit.recipients
            number = self.recipient(root, plan, ton, npi, addr)
            if number is None:
                return self._single_done(
                    (Status.ESME_RINVDSTADR, "", None), session, h)
            return self._one(rec, source, number, text, concat, encoding,
                             receipt, pid, submit.hops, session.peer or None
                             ).addCallback(self._single_done, session, h)
        results = [self._one(rec, source, number, text, concat, encoding,
                             receipt, pid, submit.hops,
                             session.peer or None)
                   if number is not None else
                   defer.succeed((Status.ESME_RINVDSTADR, "", None))
                   for number in (self.recipient(root, plan, ton, npi, addr)
                                  for ton, npi, addr in submit.recipients)]
        d = defer.gatherResults(results, consumeErrors=True)
        if h.command_id == pdus.SUBMIT_MULTI:
            d.addCallback(self._multi_done, session, h, submit)
        else:
            d.addCallback(lambda results: self._single_done(
                results[0], session, h))
        return d

    def recipient(self, root: Any, plan: Plan, ton: int, npi: int,
                  address: str) -> str | None:
        """
        Read a destination address by the carrier's numbering plan.

        @return: its E.164 digits; for an alphanumeric or abbreviated
            address, the account of that username (by its DID when it has
            one); C{None} when it is no number and names no account.
        """
        try:
            number = normalize(address, ton, npi, plan)
        except NumberError as e:
            self.log.debug("destination {addr!r} refused: {why}",
                           addr=address, why=str(e))
            return None
        if isinstance(number, Alphanumeric):
            return resolve_name(root, number)
        return number.digits

    def _single_done(self, result, session, h) -> bytes:
        status, mid, _ = result
        if status != Status.ESME_ROK:
            self.count(session, "rejected")
            return pdus.bare_response(pdus.response_id(h.command_id),
                                      h.sequence, status)
        self.count(session, "accepted")
        return pdus.ok_response(h, mid)

    def _multi_done(self, results, session, h, submit) -> defer.Deferred:
        unsuccess = list(submit.unsuccess)
        accepted = [(mid, core_id) for status, mid, core_id in results
                    if status == Status.ESME_ROK]
        for (ton, npi, addr), (status, _, _) in zip(submit.recipients,
                                                    results):
            if status != Status.ESME_ROK:
                unsuccess.append((ton, npi, addr, pdus.status_value(status)))
        self.count(session, "accepted" if accepted else "rejected")
        shown = accepted[0][0] if accepted else ""
        aliases = {core_id: (shown,) for mid, core_id in accepted[1:]
                   if core_id is not None and mid != shown}

        def write(raw):
            for core_id, ids in aliases.items():
                state(raw).aliases[core_id] = ids
        d = self.storage.batch(write) if aliases else defer.succeed(None)
        d.addCallback(lambda _: pdus.submit_multi_resp(h.sequence, shown,
                                                       unsuccess))
        return d

    def _next_part(self) -> int:
        return self._ids.next()

    def _one(self, rec: CarrierBind, source: str, recipient: str, text: str,
             concat, encoding: str, receipt: int, pid: str | None,
             hops: int = 0, peer: str | None = None) -> defer.Deferred:
        """
        Accept a message (or part) for one recipient.

        @return: a Deferred firing with C{(status, message_id, stored id
            or None)}.
        """
        try:
            number = normalize_e164(recipient)
        except ModelError:
            return defer.succeed((Status.ESME_RINVDSTADR, "", None))
        submission = Submission("carrier", rec.name, source, number, text,
                                encoding=encoding, receipt=receipt,
                                hops=hops, source=peer)
        if pid is not None:
            return self._part_of(rec, source, number, text, concat,
                                 encoding, receipt, pid, submission)
        try:
            # A refusal found in the accepting transaction (another node
            # spent the prepaid balance meanwhile) is answered like one
            # found before it.
            return self.core.submit(submission).addCallbacks(
                _accepted, lambda f: (self._refusal(rec, number, f.trap(
                    Refused) and f.value), "", None))
        except (NoRoute, Refused, ModelError) as e:
            return defer.succeed((self._refusal(rec, number, e), "", None))
        except ReassemblyFull:
            return defer.succeed((Status.ESME_RMSGQFUL, "", None))
        except ConcatenationError:
            return defer.succeed((Status.ESME_RINVESMCLASS, "", None))

    def _refusal(self, rec: CarrierBind, number: str, e: Exception) -> Any:
        """The status that answers a routing or charging refusal."""
        try:
            raise e
        except NoRoute as e:
            self.log.debug("no route for {number}: {why}", number=number,
                           why=str(e))
            return Status.ESME_RINVDSTADR
        except Refused as e:
            self.log.info("submit from {carrier} to {number} refused: {why}",
                          carrier=rec.name, number=number, why=str(e))
            return Status.ESME_RINVDSTADR if e.kind == "destination" \
                else Status.ESME_RSUBMITFAIL
        except ModelError as e:
            self.log.info("submit refused: {why}", why=str(e))
            return Status.ESME_RSUBMITFAIL

    # -- concatenated messages ------------------------------------------

    def _part_of(self, rec, source, number, text, concat, encoding, receipt,
                 pid, submission) -> defer.Deferred:
        """
        One part of a concatenated message.  Its first part authorizes
        the whole (route and charge for all the parts its UDH or SAR
        announces); a refusal of any part removes the parts held, and the
        later parts of that reference get the same refusal until the
        group would have timed out: no partial message comes of it.
        """
        key = GroupKey(rec.name, source, number, concat.reference,
                       concat.total)
        now = self.clock.seconds()
        refused = self._refused.get(key)
        if refused is not None:
            if now < refused[1]:
                return defer.succeed((refused[0], "", None))
            del self._refused[key]
        try:
            if key not in self._authorized:
                self._authorized[key] = self.core.authorize(
                    replace(submission, text=None, parts=concat.total))
            return self._part(key, text, concat, encoding, receipt, pid,
                              submission)
        except (NoRoute, Refused, ModelError) as e:
            status = self._refusal(rec, number, e)
            self._refuse_group(key, status, now)
            return defer.succeed((status, "", None))
        except ReassemblyFull:
            return defer.succeed((Status.ESME_RMSGQFUL, "", None))
        except ConcatenationError:
            return defer.succeed((Status.ESME_RINVESMCLASS, "", None))

    def _refuse_group(self, key: GroupKey, status: Any, now: float) -> None:
        """Drop a refused concatenated message's parts (memory and disk),
        send REJECTD receipts for the parts that asked, and refuse its
        later parts until the reassembly timeout."""
        self._authorized.pop(key, None)
        self._refused[key] = (status, now + self.section.reassembly_timeout)
        held = self.parts.discard(key)
        self.storage.batch(DurableReassembler.forget, key)
        wanting = [p for p in held if R.wants_receipt(p.receipt, "rejected")]
        if wanting:
            self.courier.enqueue(key.origin, [
                R.Receipt(p.part_id, "rejected", p.arrived, now, "",
                          key.sender, key.recipient) for p in wanting])
        self.log.info("concatenated message {ref} from {carrier} refused: "
                      "{n} parts held dropped", ref=key.reference,
                      carrier=key.origin, n=len(held))

    def _part(self, key, text, concat, encoding, receipt, pid,
              submission) -> defer.Deferred:
        rec_name, source, number = key.origin, key.sender, key.recipient
        info = PartInfo(pid, receipt, encoding, self.clock.seconds())
        added = self.parts.add(key, concat.sequence, text, info)
        if added.kind == "duplicate":
            return defer.succeed((Status.ESME_ROK, added.part_id, None))
        if added.kind == "held":
            added.written.addCallback(
                lambda _: (Status.ESME_ROK, added.part_id, None))
            return added.written
        parts = added.parts
        # Every part of a forwarded message carries the same hop count:
        # the part that completes it speaks for the whole.
        whole = Submission("carrier", rec_name, source, number, added.text,
                           encoding=encoding, parts=len(parts) if
                           added.kind == "whole" else 1,
                           receipt=max(p.receipt for p in parts),
                           hops=submission.hops, source=submission.source)
        authorization = self._authorized.pop(key, None) \
            if added.kind == "whole" else None
        d = self.core.submit(whole, authorization)

        def stored(id):
            ids = tuple(p.part_id for p in parts)

            def write(raw):
                DurableReassembler.forget(raw, key)
                state(raw).aliases[id] = ids
            return self.storage.batch(write).addCallback(
                lambda _: (Status.ESME_ROK, pid, None))
        d.addCallback(stored)
        return d

    # -- incomplete messages --------------------------------------------

    def expire_parts(self) -> None:
        """Apply the reassembly policy to messages whose parts did not all
        arrive in time."""
        now = self.clock.seconds()
        for key in [k for k, (_, until) in self._refused.items()
                    if until <= now]:
            del self._refused[key]
        for incomplete, parts in self.parts.expired():
            key = incomplete.key
            text = incomplete.text
            authorization = self._authorized.pop(key, None)
            self.log.info("concatenated message {ref} from {carrier}: parts "
                          "{missing} missing after the timeout",
                          ref=key.reference, carrier=key.origin,
                          missing=list(incomplete.missing))
            d = None
            if text is not None and parts:
                try:
                    d = self.core.submit(Submission(
                        "carrier", key.origin, key.sender, key.recipient,
                        text, encoding=parts[0].encoding, parts=len(parts),
                        receipt=max(p.receipt for p in parts)),
                        authorization)
                except (NoRoute, Refused, ModelError) as e:
                    self.log.info("partial message not routed: {why}",
                                  why=str(e))
            if d is not None:
                ids = tuple(p.part_id for p in parts)

                def stored(id, key=key, ids=ids):
                    def write(raw):
                        DurableReassembler.forget(raw, key)
                        state(raw).aliases[id] = ids
                    return self.storage.batch(write)
                d.addCallback(stored)
            else:
                self.storage.batch(DurableReassembler.forget, key)
                texts = "".join(t for _, t in incomplete.parts)
                now = self.clock.seconds()
                self.courier.enqueue(key.origin, [
                    R.Receipt(p.part_id, "rejected", incomplete.first_seen,
                              now, texts, key.sender, key.recipient)
                    for p in parts if R.wants_receipt(p.receipt,
                                                      "rejected")])
