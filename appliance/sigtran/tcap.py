# -*- test-case-name: tests.sigtran.test_tcap -*-
"""
TCAP transaction and dialogue handling (ITU-T Q.774 in its simplest
useful form) for one subsystem of the node: the SMSC's SSN.

Both directions are single-operation dialogues, which is all the
short-message MAP needs:

  - I{outgoing}: L{TCAPLayer.invoke} sends a Begin (AARQ with the
    application context, one Invoke) and returns a Deferred that fires
    with a L{Reply}: the result, an error, a reject, a refusal of the
    context (the AARE in a U-Abort names what the peer supports, so the
    MAP layer can fall back to v2), an abort, a returned message (UDTS)
    or a timeout.  A Continue from the peer is followed; once the answer
    is in, the dialogue is ended.
  - I{incoming}: a Begin for a registered context and operation calls
    its handler; its answer (at once or by Deferred) is sent in an End
    with an accepting AARE.  An unknown context version is refused with
    the version we have; malformed input is answered with the P-Abort
    or Reject the standard gives.

Memory is bounded: dialogues are slotted objects in one dict (at most
C{limit}); a new one beyond it is refused (outgoing: a C{congested}
reply; incoming: P-Abort resourceLimitation).  Timers cost one heap
entry each and one delayed call for the whole layer.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from appliance.sigtran import tcapcodec as T
from appliance.sigtran.interfaces import (
    DestinationUnavailable, ISCCPUser, NoRoute, SCCPAddress)

#: Reply kinds.
RESULT, ERROR, REJECT, REFUSED, ABORT, TIMEOUT, RETURNED, UNREACHABLE, \
    CONGESTED, ENDED = ("result", "error", "reject", "refused", "abort",
                        "timeout", "returned", "unreachable", "congested",
                        "ended")


@dataclass(frozen=True, slots=True)
class Reply:
    """
    What an invoke came to (or, from a handler, what to answer).

    @ivar kind: L{RESULT}, L{ERROR}, L{REJECT}, L{REFUSED}, L{ABORT},
        L{TIMEOUT}, L{RETURNED}, L{UNREACHABLE}, L{CONGESTED}, L{ENDED}.
    @ivar param: the result or error parameter (one BER element).
    @ivar code: the error code, reject problem, abort or return cause.
    @ivar ac: for L{REFUSED}: the context the peer proposed instead.
    """
    kind: str
    param: bytes | None = None
    code: int | None = None
    ac: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Incoming:
    """An operation a peer invoked, as a handler sees it."""
    opcode: int
    param: bytes | None
    ac: tuple[int, ...] | None
    calling: SCCPAddress
    called: SCCPAddress


class Dialogue:
    """One open dialogue (a slotted object: thousands are cheap)."""

    __slots__ = ("tid", "remote", "peer", "local", "ac", "opcode",
                 "invoke_id", "deferred", "deadline", "state", "incoming",
                 "started", "aare")

    def __init__(self, tid: int, peer: SCCPAddress, local: SCCPAddress,
                 ac: tuple[int, ...] | None, opcode: int, now: float,
                 incoming: bool):
        self.tid = tid
        self.remote: bytes | None = None
        self.peer = peer
        self.local = local
        self.ac = ac
        self.opcode = opcode
        self.invoke_id = 1
        self.deferred: defer.Deferred | None = None
        self.deadline = 0.0
        self.state = "initiated"
        self.incoming = incoming
        self.started = now
        self.aare = False

    @property
    def otid(self) -> bytes:
        """Our transaction id as sent."""
        return self.tid.to_bytes(4, "big")


@implementer(ISCCPUser)
class TCAPLayer:
    """
    The TCAP of one subsystem: outgoing invokes, incoming operations,
    timers, and the dialogue table.

    @ivar counters: messages sent and received by type, and outcomes.
    """

    log = Logger()

    def __init__(self, sccp: Any, clock: Any, ssn: int, *,
                 limit: int = 100_000, timeout: float = 30.0):
        """
        @param sccp: the L{ISCCPProvider}.
        @param clock: the reactor's time and scheduling.
        @param ssn: our subsystem number (calling address of invokes).
        @param limit: most dialogues open at once.
        @param timeout: default seconds an invoke waits for its answer,
            and an incoming operation for its handler.
        """
        self.sccp = sccp
        self.clock = clock
        self.ssn = ssn
        self.limit = limit
        self.timeout = timeout
        self.dialogues: dict[int, Dialogue] = {}
        self._next_tid = 1
        self._heap: list[tuple[float, int]] = []
        self._timer: Any = None
        self._contexts: dict[int, set[int]] = {}
        self._handlers: dict[int, Callable[[Incoming], Any]] = {}
        self.counters: dict[str, int] = {}

    # -- configuration ---------------------------------------------------

    def serve(self, ac_name: int, versions: set[int] | frozenset[int],
              handlers: dict[int, Callable[[Incoming], Any]]) -> None:
        """
        Accept dialogues of MAP context C{ac_name} in C{versions}, and
        the operations in C{handlers} (opcode to a callable taking an
        L{Incoming} and returning a L{Reply} or a Deferred of one).
        """
        self._contexts.setdefault(ac_name, set()).update(versions)
        self._handlers.update(handlers)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    # -- outgoing ----------------------------------------------------------

    def invoke(self, called: SCCPAddress, ac: tuple[int, ...] | None,
               opcode: int, param: bytes | None,
               timeout: float | None = None) -> defer.Deferred:
        """
        Begin a dialogue with one invoke.

        @param called: the peer (HLR, MSC) address.
        @param ac: the application context, or None (MAP v1: no
            dialogue portion).
        @return: a Deferred firing with a L{Reply}; it never errbacks.
        """
        if len(self.dialogues) >= self.limit:
            self._count("congested")
            return defer.succeed(Reply(CONGESTED))
        now = self.clock.seconds()
        d = Dialogue(self._allocate(), called,
                     self.sccp.local_address(self.ssn), ac, opcode, now,
                     False)
        d.deferred = defer.Deferred()
        data = T.encode(T.TCMessage(
            T.TC_BEGIN, otid=d.otid,
            dialogue=T.AARQ(ac) if ac is not None else None,
            components=[T.Invoke(1, opcode, param)]))
        self.dialogues[d.tid] = d
        deferred = d.deferred
        try:
            self.sccp.send_unitdata(called, d.local, data, True,
                                    sequence=d.tid)
        except (NoRoute, DestinationUnavailable) as e:
            self.dialogues.pop(d.tid, None)
            self._count("unreachable")
            self.log.info("TCAP begin to {gt} not sent: {why}",
                          gt=called.gt, why=str(e))
            return defer.succeed(Reply(UNREACHABLE))
        self._count("begin-sent")
        if d.state != "closed":
            self._schedule(d, now + (self.timeout if timeout is None
                                     else timeout))
        return deferred

    def _allocate(self) -> int:
        tid = self._next_tid
        while tid in self.dialogues:
            tid = tid % 0xFFFFFFFF + 1
        self._next_tid = tid % 0xFFFFFFFF + 1
        return tid

    def _forget(self, d: Dialogue) -> bool:
        """Drop C{d}; with nothing left open, drop the timer too."""
        gone = self.dialogues.pop(d.tid, None) is not None
        if not self.dialogues and self._heap:
            self._heap.clear()
            if self._timer is not None and self._timer.active():
                self._timer.cancel()
            self._timer = None
        return gone

    def _finish(self, d: Dialogue, reply: Reply) -> None:
        self._forget(d)
        d.state = "closed"
        if d.deferred is not None and not d.deferred.called:
            self._count(reply.kind)
            d.deferred.callback(reply)

    # -- timers ------------------------------------------------------------

    def _schedule(self, d: Dialogue, deadline: float) -> None:
        d.deadline = deadline
        heapq.heappush(self._heap, (deadline, d.tid))
        if self._timer is None or not self._timer.active():
            self._arm()
        elif deadline < self._timer.getTime():
            self._timer.cancel()
            self._arm()

    def _arm(self) -> None:
        self._timer = None
        if self._heap:
            delay = max(0.0, self._heap[0][0] - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        heap = self._heap
        while heap and heap[0][0] <= now:
            deadline, tid = heapq.heappop(heap)
            d = self.dialogues.get(tid)
            if d is None or d.deadline != deadline:
                continue
            if d.incoming:
                self.dialogues.pop(tid, None)
                self._count("handler-timeout")
                self._send(d.peer, d.local, T.TCMessage(
                    T.TC_ABORT, dtid=d.remote, dialogue=T.ABRT()), d.tid)
            else:
                self.log.info("TCAP invoke {op} to {gt} timed out",
                              op=d.opcode, gt=d.peer.gt)
                self._finish(d, Reply(TIMEOUT))
        if len(heap) > 4 * len(self.dialogues) + 64:
            self._heap = [(dl, t) for dl, t in heap
                          if t in self.dialogues
                          and self.dialogues[t].deadline == dl]
            heapq.heapify(self._heap)
        self._arm()

    def stop(self) -> None:
        """Cancel the timer; every waiting invoke gets an L{ABORT}."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._heap.clear()
        for d in list(self.dialogues.values()):
            self._finish(d, Reply(ABORT))
        self.dialogues.clear()

    # -- incoming ------------------------------------------------------------

    def _send(self, to: SCCPAddress, local: SCCPAddress, m: T.TCMessage,
              sequence: int | None = None) -> None:
        try:
            self.sccp.send_unitdata(to, local, T.encode(m), False,
                                    sequence=sequence)
        except (NoRoute, DestinationUnavailable) as e:
            self.log.info("TCAP answer to {gt} not sent: {why}",
                          gt=to.gt, why=str(e))
            return
        self._count(T.KINDS[m.kind] + "-sent")

    def unitdata(self, called: SCCPAddress, calling: SCCPAddress,
                 data: bytes) -> None:
        """A TCAP message arrived from C{calling}."""
        try:
            m = T.decode(data)
        except T.TCAPError as e:
            self._count("malformed")
            self.log.info("malformed TCAP from {gt}: {why}",
                          gt=calling.gt, why=str(e))
            if e.tid is not None:
                if e.component:
                    self._send(calling, called, T.TCMessage(
                        T.TC_END, dtid=e.tid, components=[
                            T.Reject(None, T.R_GENERAL,
                                     T.R_BADLY_STRUCTURED)]))
                else:
                    self._send(calling, called, T.TCMessage(
                        T.TC_ABORT, dtid=e.tid, p_abort=e.cause))
            return
        self._count(T.KINDS[m.kind] + "-received")
        if m.kind == T.TC_BEGIN:
            self._begin(m, called, calling)
            return
        if m.kind == T.TC_UNI:
            return
        d = self.dialogues.get(int.from_bytes(m.dtid, "big"))
        if d is None or d.incoming:
            self._count("unknown-tid")
            if m.kind == T.TC_CONTINUE:
                self._send(calling, called, T.TCMessage(
                    T.TC_ABORT, dtid=m.otid, p_abort=T.P_UNRECOGNIZED_TID))
            return
        if m.kind == T.TC_ABORT:
            self._aborted(d, m)
            return
        if m.kind == T.TC_CONTINUE:
            d.remote = m.otid
            d.peer = calling
            d.state = "active"
        reply = self._answer(d, m.components)
        if reply is not None:
            if m.kind == T.TC_CONTINUE:
                self._send(calling, d.local, T.TCMessage(
                    T.TC_END, dtid=d.remote), d.tid)
            self._finish(d, reply)
        elif m.kind == T.TC_END:
            self._finish(d, Reply(ENDED))

    def _aborted(self, d: Dialogue, m: T.TCMessage) -> None:
        pdu = m.dialogue
        if isinstance(pdu, T.AARE) and pdu.result == T.AARE_REJECTED:
            self._finish(d, Reply(REFUSED, code=pdu.diagnostic, ac=pdu.ac))
        elif m.p_abort is not None:
            self._finish(d, Reply(ABORT, code=m.p_abort))
        else:
            self._finish(d, Reply(ABORT))

    def _answer(self, d: Dialogue, components: list) -> Reply | None:
        for c in components:
            if c.invoke_id != d.invoke_id:
                continue
            if isinstance(c, T.ReturnResult):
                if c.last:
                    return Reply(RESULT, c.param, c.opcode)
            elif isinstance(c, T.ReturnError):
                return Reply(ERROR, c.param, c.code)
            elif isinstance(c, T.Reject):
                return Reply(REJECT, code=c.code)
        return None

    def _begin(self, m: T.TCMessage, called: SCCPAddress,
               calling: SCCPAddress) -> None:
        ac = m.dialogue.ac if isinstance(m.dialogue, T.AARQ) else None
        if len(self.dialogues) >= self.limit:
            self._count("congested")
            self._send(calling, called, T.TCMessage(
                T.TC_ABORT, dtid=m.otid, p_abort=T.P_RESOURCE_LIMITATION))
            return
        if ac is not None:
            refusal = self._refusal(ac)
            if refusal is not None:
                self._count("refused")
                self._send(calling, called, T.TCMessage(
                    T.TC_ABORT, dtid=m.otid, dialogue=T.AARE(
                        refusal, T.AARE_REJECTED, T.SOURCE_USER,
                        T.DIAG_AC_NOT_SUPPORTED)))
                return
        invokes = [c for c in m.components if isinstance(c, T.Invoke)]
        if not invokes:
            self._send(calling, called, T.TCMessage(
                T.TC_END, dtid=m.otid,
                dialogue=T.AARE(ac) if ac is not None else None))
            return
        inv = invokes[0]
        handler = self._handlers.get(inv.opcode)
        reply_to = T.TCMessage(T.TC_END, dtid=m.otid,
                               dialogue=T.AARE(ac) if ac is not None
                               else None)
        if handler is None:
            reply_to.components = [T.Reject(inv.invoke_id, T.R_INVOKE,
                                            T.R_UNRECOGNIZED_OPERATION)]
            self._send(calling, called, reply_to)
            return
        now = self.clock.seconds()
        d = Dialogue(self._allocate(), calling, called, ac, inv.opcode, now,
                     True)
        d.remote = m.otid
        d.invoke_id = inv.invoke_id
        d.state = "active"
        self.dialogues[d.tid] = d
        self._schedule(d, now + self.timeout)
        try:
            answer = handler(Incoming(inv.opcode, inv.param, ac, calling,
                                      called))
        except Exception:
            # Broad: a handler (MAP) is a callback; its bug is a reject
            # to the peer, the dialogue machinery goes on.
            self._count("handler failed")
            self.log.failure("TCAP handler of operation {op} failed",
                             op=inv.opcode)
            answer = Reply(REJECT, code=T.R_MISTYPED_PARAMETER)
        if isinstance(answer, defer.Deferred):
            answer.addErrback(self._handler_failed, inv.opcode)
            answer.addCallback(self._respond, d, reply_to)
        else:
            self._respond(answer, d, reply_to)

    def _handler_failed(self, failure: Any, opcode: int) -> Reply:
        """A handler's Deferred failed: logged with its traceback,
        counted, answered with a system failure (code 34)."""
        self._count("handler failed")
        self.log.failure("TCAP handler of operation {op} failed", failure,
                         op=opcode)
        return Reply(ERROR, code=34)

    def _refusal(self, ac: tuple[int, ...]) -> tuple[int, ...] | None:
        """@return: the context to propose instead of C{ac}, or None."""
        if len(ac) != 8 or ac[:6] != (0, 4, 0, 0, 1, 0):
            return ac
        versions = self._contexts.get(ac[6])
        if versions is None:
            return ac
        if ac[7] in versions:
            return None
        return ac[:7] + (max(v for v in versions if v <= ac[7])
                         if any(v <= ac[7] for v in versions)
                         else min(versions),)

    def _respond(self, answer: Reply, d: Dialogue,
                 reply_to: T.TCMessage) -> None:
        if not self._forget(d):
            return          # timed out or stopped meanwhile
        if answer.kind == RESULT:
            reply_to.components = [T.ReturnResult(
                d.invoke_id, d.opcode if answer.param is not None else None,
                answer.param)]
        elif answer.kind == ERROR:
            reply_to.components = [T.ReturnError(d.invoke_id, answer.code,
                                                 answer.param)]
        elif answer.kind == REJECT:
            reply_to.components = [T.Reject(d.invoke_id, T.R_INVOKE,
                                            answer.code or 0)]
        self._send(d.peer, d.local, reply_to)

    def notice(self, called: SCCPAddress, calling: SCCPAddress, data: bytes,
               reason: int) -> None:
        """A message we sent came back (UDTS): its invoke fails."""
        self._count("returned-messages")
        try:
            m = T.decode(data)
        except T.TCAPError:
            return
        if m.otid is None:
            return
        d = self.dialogues.get(int.from_bytes(m.otid, "big"))
        if d is not None and not d.incoming:
            self.log.info("TCAP to {gt} returned by SCCP, cause {cause}",
                          gt=called.gt, cause=reason)
            self._finish(d, Reply(RETURNED, code=reason))

    def pcstate(self, pc: int, available: bool) -> None:
        """Noted only: invokes towards C{pc} will time out or return."""
        self.log.info("point code {pc} available: {available}", pc=pc,
                      available=available)

    # -- reading ------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """@return: the open dialogues by direction and context, counters."""
        by: dict[str, int] = {}
        for d in self.dialogues.values():
            key = ("in " if d.incoming else "out ") + _ac_text(d.ac)
            by[key] = by.get(key, 0) + 1
        return {"open": len(self.dialogues), "limit": self.limit,
                "by_context": by, "counters": dict(self.counters)}


def _ac_text(ac: tuple[int, ...] | None) -> str:
    if ac is None:
        return "v1"
    from appliance.sigtran.mapcodec import AC_NAMES, ac_parts
    parts = ac_parts(ac)
    if parts is None:
        return ".".join(map(str, ac))
    return f"{AC_NAMES.get(parts[0], parts[0])}-v{parts[1]}"
