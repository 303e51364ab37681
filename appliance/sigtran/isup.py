# -*- test-case-name: tests.sigtran.test_isup -*-
"""
ISUP call control for incoming calls (ITU-T Q.764), as a call
notification service needs it: the node is the far end of a diverted
call.  An IAM on a configured circuit is answered with ACM; after the
configured delay the call is released (REL with the configured cause,
or the one the IAM listener chose), and RLC returns the circuit to
idle.  Circuit reset (RSC, GRS) and blocking (BLO/UBL, CGB/CGU) are
answered; messages that do not fit the circuit's state get the answer
Q.764 gives (RLC for a REL on an idle circuit, RSC for call messages on
an idle circuit, CFN for an unknown message type, UCIC for a circuit we
do not have), and every one is logged and counted.

L{ISUPLayer} is the MTP user of service indicator 5; L{IncomingCall} is
what IAM listeners (the missed-call service) receive.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twisted.logger import Logger
from zope.interface import implementer

from appliance.sigtran import isupcodec as I
from appliance.sigtran.interfaces import (
    DestinationUnavailable, IMTPUser, ProtocolData, SI_ISUP)

#: Backward call indicators of our ACM: no charge, subscriber free,
#: ordinary subscriber, ISDN user part all the way.
ACM_BCI = b"\x15\x04"
#: Q.764 T1: waiting for RLC after REL (REL is repeated).
T1 = 15.0
#: Call messages that are unreasonable on an idle circuit (answer RSC).
_CALL_MESSAGES = frozenset({I.SAM, I.INR, I.INF, I.COT, I.ACM, I.CON,
                            I.FOT, I.ANM, I.SUS, I.RES, I.CPG})


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """
    An IAM, as IAM listeners see it.

    @ivar opc: the switch's point code; C{cic}: the circuit.
    @ivar called: the called party number (the service number).
    @ivar calling: the calling party number, with its presentation.
    @ivar original_called: the original called number (B), or None.
    @ivar redirecting: the redirecting number, or None.
    @ivar redirection_number: the redirection number, or None.
    @ivar redirection: the redirection information, or None.
    """
    opc: int
    cic: int
    called: I.Number
    calling: I.Number | None
    original_called: I.Number | None
    redirecting: I.Number | None
    redirection_number: I.Number | None
    redirection: I.Redirection | None


class Circuit:
    """One circuit's state (C{idle}, C{incoming}, C{releasing})."""

    __slots__ = ("pc", "cic", "state", "remote_blocked", "timer", "cause",
                 "call")

    def __init__(self, pc: int, cic: int):
        self.pc = pc
        self.cic = cic
        self.state = "idle"
        self.remote_blocked = False
        self.timer: Any = None
        self.cause = I.CAUSE_NORMAL
        self.call: IncomingCall | None = None

    def cancel(self) -> None:
        """Cancel this circuit's timer."""
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None


@implementer(IMTPUser)
class ISUPLayer:
    """
    The ISUP user part: circuits, their state and the answers.

    @ivar release_cause: the cause of the REL we send (Q.850; default
        17 user busy); an IAM listener may choose another per call.
    @ivar release_delay: seconds between our ACM and our REL.
    """

    log = Logger()

    def __init__(self, mtp: Any, clock: Any, settings: Callable[[], Any],
                 release_cause: int = I.CAUSE_BUSY,
                 release_delay: float = 2.0):
        """
        @param mtp: the L{IMTPProvider}.
        @param clock: the reactor's scheduling.
        @param settings: returns the current SS7 settings (C{circuits};
            C{isup_release_cause} and C{isup_release_delay} when the
            configuration has them).
        """
        self.mtp = mtp
        self.clock = clock
        self.settings = settings
        self.release_cause = release_cause
        self.release_delay = release_delay
        self.circuits: dict[tuple[int, int], Circuit] = {}
        self._listeners: list[Callable[[IncomingCall], int | None]] = []
        self.counters: dict[str, int] = {}

    def add_iam_listener(self, listener: Callable[[IncomingCall],
                                                  int | None]) -> None:
        """
        Call C{listener(call)} for each IAM accepted on a circuit; it may
        return a release cause for that call, or C{(cause, seconds)} to
        choose the delay from ACM to REL too (None: the configured ones).
        """
        self._listeners.append(listener)

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _configured(self, pc: int, cic: int) -> bool:
        return any(r.pc == pc and r.first <= cic <= r.last
                   for r in getattr(self.settings(), "circuits", ()))

    def circuit(self, pc: int, cic: int) -> Circuit | None:
        """@return: the circuit (made on first use), or None if unknown."""
        c = self.circuits.get((pc, cic))
        if c is None and self._configured(pc, cic):
            c = self.circuits[(pc, cic)] = Circuit(pc, cic)
        return c

    def _cause(self) -> int:
        return getattr(self.settings(), "isup_release_cause", None) \
            or self.release_cause

    def _delay(self) -> float:
        value = getattr(self.settings(), "isup_release_delay", None)
        return self.release_delay if value is None else value

    # -- sending ------------------------------------------------------------

    def send(self, pc: int, m: I.ISUPMessage) -> None:
        """Send C{m} to the switch C{pc}."""
        try:
            self.mtp.transfer(ProtocolData(
                self.mtp.point_code, pc, SI_ISUP, self.mtp.network_indicator,
                0, m.cic & 0x1F, I.encode(m)))
        except DestinationUnavailable:
            self.log.info("ISUP {name} to {pc} not sent: unavailable",
                          name=m.name, pc=pc)
            return
        self._count(m.name + "-sent")

    def _release(self, c: Circuit) -> None:
        c.timer = None
        c.state = "releasing"
        self.send(c.pc, I.ISUPMessage(c.cic, I.REL,
                                      variable=[I.encode_cause(c.cause)]))
        c.timer = self.clock.callLater(T1, self._release, c)

    def _idle(self, c: Circuit) -> None:
        c.cancel()
        c.state = "idle"
        c.call = None

    # -- MTP user -----------------------------------------------------------

    def mtp_transfer(self, pd: ProtocolData) -> None:
        """An ISUP message from the switch C{pd.opc}."""
        try:
            m = I.decode(pd.data)
        except I.ISUPError as e:
            self._count("malformed")
            self.log.info("bad ISUP from {pc}: {why}", pc=pd.opc, why=str(e))
            if e.cic is not None:
                cause = I.CAUSE_MESSAGE_TYPE_NONEXISTENT \
                    if e.unknown_type is not None else 100
                diagnostic = bytes((e.unknown_type,)) \
                    if e.unknown_type is not None else b""
                self.send(pd.opc, I.ISUPMessage(e.cic, I.CFN, variable=[
                    I.encode_cause(cause) + diagnostic]))
            return
        self._count(m.name + "-received")
        if m.type == I.UCIC:
            self.log.info("switch {pc} has no circuit {cic}", pc=pd.opc,
                          cic=m.cic)
            return
        if m.type in (I.GRS, I.CGB, I.CGU):
            self._group(pd.opc, m)
            return
        c = self.circuit(pd.opc, m.cic)
        if c is None:
            self._count("unequipped")
            self.send(pd.opc, I.ISUPMessage(m.cic, I.UCIC))
            return
        handler = getattr(self, "_on_" + m.name.lower(), None)
        if handler is not None:
            handler(c, m)
        elif m.type in _CALL_MESSAGES and c.state == "idle":
            self._unexpected(c, m, "reset")
            self._idle(c)
            self.send(c.pc, I.ISUPMessage(c.cic, I.RSC))
        else:
            self._unexpected(c, m, "discarded")

    def _unexpected(self, c: Circuit, m: I.ISUPMessage, what: str) -> None:
        self._count("unexpected")
        self.log.info("unexpected ISUP {name} on {pc}/{cic} ({state}): "
                      "{what}", name=m.name, pc=c.pc, cic=c.cic,
                      state=c.state, what=what)

    def _on_iam(self, c: Circuit, m: I.ISUPMessage) -> None:
        if c.state != "idle":
            self._unexpected(c, m, "reset")
            self._idle(c)
            self.send(c.pc, I.ISUPMessage(c.cic, I.RSC))
            return
        try:
            call = IncomingCall(
                c.pc, c.cic, I.decode_number(m.variable[0], "called"),
                *(I.decode_number(m.optional[code], kind)
                  if code in m.optional else None
                  for code, kind in ((I.P_CALLING, "calling"),
                                     (I.P_ORIGINAL_CALLED, "original"),
                                     (I.P_REDIRECTING, "original"),
                                     (I.P_REDIRECTION_NUMBER, "called"))),
                I.decode_redirection(m.optional[I.P_REDIRECTION_INFO])
                if I.P_REDIRECTION_INFO in m.optional else None)
        except I.ISUPError as e:
            self.log.info("bad IAM on {cic}: {why}", cic=c.cic, why=str(e))
            self.send(c.pc, I.ISUPMessage(c.cic, I.REL, variable=[
                I.encode_cause(100)]))
            c.state = "releasing"
            c.timer = self.clock.callLater(T1, self._release, c)
            return
        c.remote_blocked = False          # an IAM unblocks (Q.764 2.8.2.3)
        c.state = "incoming"
        c.call = call
        c.cause = self._cause()
        delay = self._delay()
        for listener in list(self._listeners):
            try:
                chosen = listener(call)
            except Exception:
                # Broad: a listener (the notification service) is a
                # callback; the call is still answered with the defaults.
                self._count("listener failed")
                self.log.failure("IAM listener failed")
                continue
            if isinstance(chosen, tuple):
                c.cause, delay = chosen
            elif chosen:
                c.cause = chosen
        self.send(c.pc, I.ISUPMessage(c.cic, I.ACM, fixed=[ACM_BCI]))
        c.timer = self.clock.callLater(delay, self._release, c)

    def _on_rel(self, c: Circuit, m: I.ISUPMessage) -> None:
        if c.state == "idle":
            self._unexpected(c, m, "answered RLC")
        self._idle(c)
        self.send(c.pc, I.ISUPMessage(c.cic, I.RLC))

    def _on_rlc(self, c: Circuit, m: I.ISUPMessage) -> None:
        if c.state != "releasing":
            self._unexpected(c, m, "discarded")
            return
        self._idle(c)

    def _on_rsc(self, c: Circuit, m: I.ISUPMessage) -> None:
        self._idle(c)
        c.remote_blocked = False
        self.send(c.pc, I.ISUPMessage(c.cic, I.RLC))

    def _on_blo(self, c: Circuit, m: I.ISUPMessage) -> None:
        c.remote_blocked = True
        self.send(c.pc, I.ISUPMessage(c.cic, I.BLA))

    def _on_ubl(self, c: Circuit, m: I.ISUPMessage) -> None:
        c.remote_blocked = False
        self.send(c.pc, I.ISUPMessage(c.cic, I.UBA))

    def _on_ccr(self, c: Circuit, m: I.ISUPMessage) -> None:
        self._unexpected(c, m, "no continuity check here: reset")
        self.send(c.pc, I.ISUPMessage(c.cic, I.RSC))

    def _group(self, pc: int, m: I.ISUPMessage) -> None:
        value = m.variable[0] if m.variable else b""
        if not value:
            return
        count = value[0] + 1
        if not 2 <= count <= 32 or (m.type != I.GRS and
                                    len(value) < 1 + (count + 7) // 8):
            self._count("malformed")
            self.log.info("ISUP {name} from {pc}: bad range", name=m.name,
                          pc=pc)
            return
        status = bytearray((count + 7) // 8)
        for n in range(count):
            c = self.circuit(pc, m.cic + n)
            if m.type == I.GRS:
                if c is not None:
                    self._idle(c)
                    c.remote_blocked = False
                continue
            if not value[1 + n // 8] >> (n % 8) & 1:
                continue
            status[n // 8] |= 1 << (n % 8)
            if c is not None:
                c.remote_blocked = m.type == I.CGB
        if m.type == I.GRS:
            self.send(pc, I.ISUPMessage(m.cic, I.GRA, variable=[
                I.range_status(count, bytes(status))]))
        else:
            ack = I.CGBA if m.type == I.CGB else I.CGUA
            self.send(pc, I.ISUPMessage(m.cic, ack, fixed=m.fixed, variable=[
                I.range_status(count, bytes(status))]))

    def mtp_pause(self, dpc: int) -> None:
        """The switch C{dpc} is unreachable: nothing can be sent."""
        self.log.info("ISUP: switch {pc} unreachable", pc=dpc)

    def mtp_resume(self, dpc: int) -> None:
        """The switch C{dpc} is reachable again."""
        self.log.info("ISUP: switch {pc} reachable", pc=dpc)

    def mtp_status(self, dpc: int, cause: str) -> None:
        """Congestion or user part unavailable at C{dpc}."""
        self.log.info("ISUP: switch {pc} status {cause}", pc=dpc,
                      cause=cause)

    def stop(self) -> None:
        """Cancel every circuit's timer."""
        for c in self.circuits.values():
            c.cancel()
