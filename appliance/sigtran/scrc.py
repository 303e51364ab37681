# -*- test-case-name: tests.sigtran.test_scrc -*-
"""
SCCP routing control and connectionless control (Q.714 2.3 and 4): the
L{ISCCPProvider} the node's TCAP uses, and the L{IMTPUser} for SI 3.

Outgoing: the called address is routed by the configured C{sccp-route}
entries (longest global-title prefix, else the called point code), long
data goes out as XUDT segments, and a message that cannot be sent with
return on error is reported back at once through N-NOTICE.  Incoming:
UDT and XUDT (reassembled) go to the user registered for the called SSN;
an unknown SSN is answered with a UDTS (unequipped user) when the sender
asked for return on error; UDTS and XUDTS come back as N-NOTICE.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from appliance.sigtran import sccp
from appliance.sigtran.interfaces import (
    RC_MTP_FAILURE, RC_NO_REASSEMBLY, RC_NO_TRANSLATION_ADDRESS,
    RC_SEGMENTATION_FAILURE, RC_UNEQUIPPED_USER, SI_SCCP, SSN_HLR,
    DestinationUnavailable, IMTPUser, ISCCPProvider, NoRoute, ProtocolData,
    SCCPAddress, SS7Settings)

#: Seconds a segmented message may take to arrive whole (Q.714 T(reass)).
REASSEMBLY_TIMEOUT = 10.0
#: Segmented messages reassembled at once, at most (older ones dropped).
MAX_REASSEMBLIES = 1000


@dataclass(frozen=True)
class Route:
    """
    One C{sccp-route}: called addresses it matches and where they go.

    @ivar name: the route's name.
    @ivar gt_prefix: called GT digits it matches by prefix, or None.
    @ivar pc: the destination point code (for a GT route: the DPC the
        translation gives; alone: the called point code it matches).
    @ivar peer: the M3UA peer to send through, or None (any).
    """
    name: str
    gt_prefix: str | None = None
    pc: int | None = None
    peer: str | None = None


def translate(routes: tuple[Route, ...], called: SCCPAddress
              ) -> tuple[int, str | None] | None:
    """
    Global title translation and point code routing (pure).

    @return: C{(dpc, peer)} for C{called}, or None when nothing routes it.
    """
    if called.route_on_gt and called.gt is not None:
        best = None
        for r in routes:
            if r.gt_prefix is not None and called.gt.startswith(r.gt_prefix):
                if best is None or len(r.gt_prefix) > len(best.gt_prefix):
                    best = r
        if best is not None:
            dpc = best.pc if best.pc is not None else called.pc
            return None if dpc is None else (dpc, best.peer)
        if called.pc is None:
            return None
    if called.pc is None:
        return None
    for r in routes:
        if r.gt_prefix is None and r.pc == called.pc:
            return called.pc, r.peer
    return called.pc, None


@implementer(ISCCPProvider, IMTPUser)
class SCCPRouter:
    """
    The SCCP connectionless service over an MTP provider.

    @ivar counters: messages by direction and type (C{"rx UDT"}...).
    """

    log = Logger()

    def __init__(self, mtp: Any, clock: Any):
        """
        @param mtp: the L{IMTPProvider} (M3UA); its C{transfer} may take
            a C{via} keyword naming the peer.
        @param clock: an L{IReactorTime} for reassembly timers.
        """
        self.mtp = mtp
        self.clock = clock
        self.users: dict[int, Any] = {}
        self.settings = SS7Settings()
        self.routes: tuple[Route, ...] = ()
        self.counters: Counter = Counter()
        self._reference = 0
        self._reassembly: dict[tuple, tuple[Any, list[bytes]]] = {}

    def configure(self, settings: SS7Settings,
                  routes: tuple[Route, ...]) -> None:
        """Swap in a new configuration snapshot."""
        self.settings = settings
        self.routes = routes

    # ISCCPProvider

    def register_ssn(self, ssn: int, user: Any) -> None:
        """Make C{user} the subsystem C{ssn}."""
        self.users[ssn] = user

    def local_address(self, ssn: int) -> SCCPAddress:
        """@return: our address for C{ssn}."""
        s = self.settings
        if s.global_title:
            return SCCPAddress(gt=s.global_title, ssn=ssn)
        return SCCPAddress(ssn=ssn, pc=s.point_code, route_on_gt=False)

    def hlr_address(self) -> SCCPAddress | None:
        """@return: the HLR's address (C{hlr global-title}), or None."""
        gt = self.settings.hlr_gt
        return None if gt is None else SCCPAddress(gt=gt, ssn=SSN_HLR)

    def send_unitdata(self, called: SCCPAddress, calling: SCCPAddress,
                      data: bytes, return_on_error: bool = True,
                      sequence: int | None = None) -> None:
        """
        Send C{data} to C{called}: one UDT, or XUDT segments.

        @raise NoRoute: nothing routes C{called}.
        @raise DestinationUnavailable: the route's DPC is down.
        @raise ValueError: the data is too long even for XUDT.
        """
        found = translate(self.routes, called)
        if found is None:
            self.counters["no route"] += 1
            raise NoRoute(f"no sccp-route for {called}")
        dpc, peer = found
        self._reference = (self._reference + 1) & 0xFFFFFF
        messages = sccp.segment(called, calling, data,
                                0 if sequence is None else 1,
                                return_on_error, self._reference)
        sls = (sequence if sequence is not None else self._reference) & 0xFF
        s = self.settings
        for raw in messages:
            self.mtp.transfer(ProtocolData(
                s.point_code, dpc, SI_SCCP, s.network_indicator, 0, sls,
                raw), via=peer)
            self.counters["tx " + sccp.NAMES[raw[0]]] += 1

    # IMTPUser

    def mtp_transfer(self, pd: ProtocolData) -> None:
        """An SCCP message arrived from MTP."""
        try:
            u = sccp.decode(pd.data)
        except sccp.SCCPError as e:
            self.counters["rx malformed"] += 1
            self.log.warn("malformed SCCP from {opc}: {why}", opc=pd.opc,
                          why=str(e))
            return
        self.counters["rx " + sccp.NAMES[u.kind]] += 1
        if u.kind in (sccp.UDTS, sccp.XUDTS):
            self._notice(u, pd)
            return
        data = u.data
        if u.segmentation is not None:
            data = self._reassemble(u, pd)
            if data is None:
                return
        ssn = u.called.ssn
        if ssn is None and u.called.gt == self.settings.global_title:
            ssn = self.settings.smsc_ssn
        user = self.users.get(ssn)
        if user is None:
            self.counters["rx unequipped"] += 1
            if u.return_on_error:
                self._return(u, pd, RC_UNEQUIPPED_USER, data)
            return
        user.unitdata(u.called, u.calling, data)

    def mtp_pause(self, dpc: int) -> None:
        """Tell every subsystem that C{dpc} is unreachable."""
        for user in list(self.users.values()):
            user.pcstate(dpc, False)

    def mtp_resume(self, dpc: int) -> None:
        """Tell every subsystem that C{dpc} is reachable again."""
        for user in list(self.users.values()):
            user.pcstate(dpc, True)

    def mtp_status(self, dpc: int, cause: str) -> None:
        """Congestion or a user part down at C{dpc}: logged and counted."""
        self.counters["mtp status " + cause] += 1

    # Inside

    def _notice(self, u: sccp.Unitdata, pd: ProtocolData) -> None:
        """A UDTS/XUDTS: our message came back; tell its sender."""
        user = self.users.get(u.called.ssn)
        if user is not None:
            user.notice(u.calling, u.called, u.data, u.cause or 0)

    def _return(self, u: sccp.Unitdata, pd: ProtocolData, cause: int,
                data: bytes) -> None:
        """Send the message back to its origin as a UDTS/XUDTS."""
        kind = sccp.UDTS if u.kind == sccp.UDT else sccp.XUDTS
        try:
            raw = sccp.encode(sccp.Unitdata(kind, u.calling, u.called,
                                            data[:160], cause=cause))
        except ValueError:      # addresses too long to send back
            self.counters["return failed"] += 1
            return
        s = self.settings
        try:
            self.mtp.transfer(ProtocolData(s.point_code, pd.opc, SI_SCCP,
                                           pd.ni, 0, pd.sls, raw))
            self.counters["tx " + sccp.NAMES[kind]] += 1
        except DestinationUnavailable:
            pass

    def _reassemble(self, u: sccp.Unitdata,
                    pd: ProtocolData) -> bytes | None:
        """Collect XUDT segments; return the whole data at the last."""
        seg = u.segmentation
        key = (pd.opc, u.calling, seg.reference)
        if seg.first:
            if key in self._reassembly:
                self._reassembly.pop(key)[0].cancel()
            if seg.remaining == 0:
                return u.data
            if len(self._reassembly) >= MAX_REASSEMBLIES:
                oldest = next(iter(self._reassembly))
                self._reassembly.pop(oldest)[0].cancel()
                self.counters["reassembly dropped"] += 1
            timer = self.clock.callLater(REASSEMBLY_TIMEOUT, self._expire,
                                         key, u, pd)
            self._reassembly[key] = (timer, seg.remaining, [u.data])
            return None
        entry = self._reassembly.get(key)
        if entry is None or entry[1] - 1 != seg.remaining:
            self.counters["reassembly failed"] += 1
            if entry is not None:
                self._reassembly.pop(key)[0].cancel()
            if u.return_on_error:
                self._return(u, pd, RC_SEGMENTATION_FAILURE, u.data)
            return None
        timer, _, parts = entry
        parts.append(u.data)
        if seg.remaining:
            self._reassembly[key] = (timer, seg.remaining, parts)
            return None
        del self._reassembly[key]
        timer.cancel()
        return b"".join(parts)

    def _expire(self, key: tuple, u: sccp.Unitdata, pd: ProtocolData) -> None:
        """Segments that never all arrived (Q.714 4.1.1.3)."""
        entry = self._reassembly.pop(key, None)
        if entry is None:
            return
        self.counters["reassembly timeout"] += 1
        if u.return_on_error:
            self._return(u, pd, RC_NO_REASSEMBLY, u.data)

    def stop(self) -> None:
        """Cancel the reassembly timers (the node is stopping)."""
        for timer, _, _ in self._reassembly.values():
            timer.cancel()
        self._reassembly.clear()


def unavailable_reason(error: Exception) -> int:
    """@return: the N-NOTICE reason for a failure to send."""
    if isinstance(error, NoRoute):
        return RC_NO_TRANSLATION_ADDRESS
    return RC_MTP_FAILURE
