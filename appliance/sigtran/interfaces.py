"""
Interfaces of the SIGTRAN domain: the MTP service that M3UA provides to
its users (SCCP for SI 3, ISUP for SI 5) and the SCCP connectionless
service that TCAP uses (ITU Q.711 primitives, in Python).

The lower half (M3UA, SCCP, the node service) implements the providers;
the upper half (TCAP/MAP, ISUP) implements the users.  Wiring happens in
C{appliance.application}: the node service exposes C{mtp}
(L{IMTPProvider}) and C{sccp} (L{ISCCPProvider}); an upper layer is
registered on them with L{IMTPProvider.register_user} or
L{ISCCPProvider.register_ssn}.

Every method here is called on the reactor thread and returns at once:
no Deferreds cross this boundary (SS7 is datagram-like: what comes back
is another primitive, not a result).
"""
from __future__ import annotations

from dataclasses import dataclass

from zope.interface import Attribute, Interface

#: Service indicators (Q.704 14.2.1) of the MTP users we serve.
SI_SCCP = 3
SI_ISUP = 5

#: Network indicators (Q.704 14.2.2), as in the M3UA Protocol Data.
NI_INTERNATIONAL = 0
NI_SPARE = 1
NI_NATIONAL = 2
NI_RESERVED = 3

#: Subsystem numbers (Q.713 3.4.2.2, 3GPP TS 23.003).
SSN_HLR = 6
SSN_VLR = 7
SSN_MSC = 8
SSN_GSMSCF = 147

#: MTP-STATUS causes (Q.701 / RFC 4666 3.4.4 and 3.4.5).
STATUS_CONGESTED = "congested"
STATUS_USER_UNAVAILABLE = "user-part-unavailable"
STATUS_USER_UNEQUIPPED = "user-part-unequipped"
STATUS_USER_INACCESSIBLE = "user-part-inaccessible"

#: SCCP return causes (Q.713 3.12) a UDTS/XUDTS carries to
#: L{ISCCPUser.notice}.
RC_NO_TRANSLATION_NATURE = 0
RC_NO_TRANSLATION_ADDRESS = 1
RC_SUBSYSTEM_CONGESTION = 2
RC_SUBSYSTEM_FAILURE = 3
RC_UNEQUIPPED_USER = 4
RC_MTP_FAILURE = 5
RC_NETWORK_CONGESTION = 6
RC_UNQUALIFIED = 7
RC_MESSAGE_TRANSPORT = 8
RC_LOCAL_PROCESSING = 9
RC_NO_REASSEMBLY = 10
RC_SCCP_FAILURE = 11
RC_HOP_COUNTER = 12
RC_SEGMENTATION_NOT_SUPPORTED = 13
RC_SEGMENTATION_FAILURE = 14


class DestinationUnavailable(Exception):
    """
    The destination point code is not reachable now (no ASP active for
    it, or the SG said DUNA): nothing was sent.

    @ivar dpc: the point code.
    """

    def __init__(self, dpc: int):
        self.dpc = dpc
        super().__init__(f"destination {dpc} unavailable")


class NoRoute(Exception):
    """
    SCCP has no route for a called address (no C{sccp-route} matches its
    global title or point code, and it is not local): nothing was sent.
    """


@dataclass(frozen=True)
class ProtocolData:
    """
    One MTP-TRANSFER: the M3UA Protocol Data parameter (RFC 4666 3.3.1).

    @ivar opc: originating point code (14-bit ITU as an integer).
    @ivar dpc: destination point code.
    @ivar si: service indicator (L{SI_SCCP}, L{SI_ISUP}).
    @ivar ni: network indicator (0-3).
    @ivar mp: message priority (0-3; 0 in ITU networks).
    @ivar sls: signalling link selection (0-255); messages that must
        stay in order (one TCAP dialogue, one ISUP circuit) keep one SLS.
    @ivar data: the user part's bytes (an SCCP or ISUP message).
    """
    opc: int
    dpc: int
    si: int
    ni: int
    mp: int
    sls: int
    data: bytes


class IMTPUser(Interface):
    """
    An MTP user part (SCCP for SI 3, ISUP for SI 5): what M3UA tells it.
    """

    def mtp_transfer(pd):
        """
        MTP-TRANSFER indication: a message for this user arrived.

        @param pd: the L{ProtocolData} (its C{dpc} is ours).
        """

    def mtp_pause(dpc):
        """
        MTP-PAUSE: C{dpc} became unreachable (DUNA, or the last ASP or
        association serving it went down).  Stop sending to it.
        """

    def mtp_resume(dpc):
        """
        MTP-RESUME: C{dpc} is reachable again (DAVA, or an association
        serving it became active).
        """

    def mtp_status(dpc, cause):
        """
        MTP-STATUS: C{dpc} is congested (SCON) or its user part is
        unavailable (DUPU).

        @param cause: one of the C{STATUS_*} strings.
        """


class IMTPProvider(Interface):
    """
    The MTP service M3UA offers to its users.
    """

    point_code = Attribute("int: our own point code (from C{ss7 point-code}).")
    network_indicator = Attribute("int: our network indicator (0-3).")

    def transfer(pd):
        """
        MTP-TRANSFER request: send C{pd} towards C{pd.dpc}.

        @param pd: a L{ProtocolData}; its C{opc} should be our point code.
        @raise DestinationUnavailable: no route or no active peer to
            C{pd.dpc} now; nothing was sent.
        """

    def register_user(si, user):
        """
        Make C{user} (an L{IMTPUser}) the user part for service
        indicator C{si}; it then gets transfers for C{si} and every
        pause, resume and status.  Replaces any earlier user of C{si}.
        """

    def available(dpc):
        """
        @return: whether C{dpc} is reachable now.
        """


@dataclass(frozen=True)
class SCCPAddress:
    """
    A called or calling party address (Q.713 3.4).

    A global title is the E.164 form (global title indicator 4) with
    translation type C{tt}, numbering plan C{np} (1: ISDN/E.164), and
    nature of address C{nai} (4: international); digits only, no C{+}.

    @ivar gt: the global title digits, or C{None}.
    @ivar ssn: the subsystem number, or C{None}.
    @ivar pc: the signalling point code, or C{None}.
    @ivar route_on_gt: routing indicator: C{True} route on GT, C{False}
        route on DPC + SSN.
    """
    gt: str | None = None
    ssn: int | None = None
    pc: int | None = None
    route_on_gt: bool = True
    tt: int = 0
    np: int = 1
    nai: int = 4


class ISCCPUser(Interface):
    """
    A subsystem on our node (the SMSC's TCAP, SSN C{ssn smsc}): what SCCP
    tells it (N-UNITDATA, N-NOTICE, N-PCSTATE of Q.711).
    """

    def unitdata(called, calling, data):
        """
        N-UNITDATA indication: a UDT or XUDT (reassembled) arrived for
        our SSN.

        @param called: the L{SCCPAddress} it was sent to.
        @param calling: the L{SCCPAddress} it came from (answer to it).
        @param data: the user data (a TCAP message).
        """

    def notice(called, calling, data, reason):
        """
        N-NOTICE indication: a message we sent with return on error came
        back in a UDTS/XUDTS, or could not be sent at all.

        @param called: the called address of the message we sent.
        @param calling: the calling address of the message we sent.
        @param data: the user data we sent.
        @param reason: the return cause (C{RC_*}).
        """

    def pcstate(pc, available):
        """
        N-PCSTATE indication: the signalling point C{pc} became
        unavailable (C{False}) or available again (C{True}).
        """


class ISCCPProvider(Interface):
    """
    The SCCP connectionless service (protocol classes 0 and 1).
    """

    def send_unitdata(called, calling, data, return_on_error=True,
                      sequence=None):
        """
        N-UNITDATA request: send C{data} to C{called} as a UDT, or as
        XUDT segments when it does not fit in one UDT.

        @param called: the L{SCCPAddress} to send to; routed by the
            C{sccp-route} entries (longest GT prefix, else point code).
        @param calling: our address (see L{local_address}).
        @param return_on_error: ask for a UDTS on failure, reported
            through L{ISCCPUser.notice} of the calling SSN.
        @param sequence: C{None} for protocol class 0, or an integer
            (e.g. the TCAP transaction id) for class 1: messages with
            the same sequence keep one SLS and so stay in order.
        @raise NoRoute: no route for C{called}; nothing was sent.
        @raise DestinationUnavailable: the route's point code is not
            reachable now; nothing was sent.
        """

    def register_ssn(ssn, user):
        """
        Make C{user} (an L{ISCCPUser}) the subsystem C{ssn} of this node.
        """

    def local_address(ssn):
        """
        @return: our L{SCCPAddress} for subsystem C{ssn}: our own global
            title (C{ss7 global-title}), C{ssn} and our point code,
            routed on GT.
        """

    def hlr_address():
        """
        @return: the L{SCCPAddress} of the HLR (C{ss7 hlr global-title},
            SSN 6, route on GT), or C{None} when none is configured.
        """


@dataclass(frozen=True)
class CircuitRange:
    """
    ISUP circuits towards one switch (C{ss7 isup circuits PC FIRST LAST}).

    @ivar pc: the switch's point code.
    @ivar first: the first circuit identification code.
    @ivar last: the last CIC (inclusive).
    """
    pc: int
    first: int
    last: int


@dataclass(frozen=True)
class SS7Settings:
    """
    An immutable snapshot of the C{ss7} configuration that the upper
    layers read (rebuilt after each configuration commit).

    @ivar point_code: our point code.
    @ivar network_indicator: 0-3 (L{NI_INTERNATIONAL}...).
    @ivar global_title: our own GT digits, or C{None}.
    @ivar smsc_ssn: the SSN of our SMSC (C{ss7 ssn smsc}).
    @ivar hlr_gt: the HLR's GT digits (C{ss7 hlr global-title}), or None.
    @ivar circuits: the ISUP CIC ranges, in configuration order.
    """
    point_code: int = 0
    network_indicator: int = NI_INTERNATIONAL
    global_title: str | None = None
    smsc_ssn: int = SSN_MSC
    hlr_gt: str | None = None
    circuits: tuple[CircuitRange, ...] = ()


class ISS7Settings(Interface):
    """
    Where upper layers read the C{ss7} configuration (the node service
    implements it).
    """

    def settings():
        """
        @return: the current L{SS7Settings}.
        """

    def add_settings_listener(listener):
        """
        Call C{listener(settings)} with the new L{SS7Settings} after each
        configuration commit that changed them.
        """
