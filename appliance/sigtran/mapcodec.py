# -*- test-case-name: tests.sigtran.test_mapcodec -*-
"""
MAP (3GPP TS 29.002) operations for short messages, encoded by hand:
the arguments, results and error parameters of sendRoutingInfoForSM,
mt-forwardSM (forwardSM in v2), mo-forwardSM, reportSM-DeliveryStatus and
alertServiceCentre.  Each is a plain value object; each C{encode_*}
returns one whole BER element (a TCAP component parameter) and each
C{decode_*} takes one and raises only L{MAPError}.

pycrate's C{TCAP_MAP} is the oracle of the tests.
"""
from __future__ import annotations

from dataclasses import dataclass

from appliance.sigtran.ber import (
    BERError, TAG_BOOLEAN, TAG_ENUMERATED, TAG_INTEGER, TAG_NULL,
    TAG_OCTETS, TAG_SEQUENCE, children, decode, decode_int, encode_int, tlv)

# Operation codes (29.002 section 17.5).
OP_MT_FORWARD_SM = 44
OP_SRI_SM = 45
OP_MO_FORWARD_SM = 46        # forwardSM in MAP v1/v2
OP_FORWARD_SM = 46
OP_REPORT_SM_DELIVERY_STATUS = 47
OP_ALERT_SC_WITHOUT_RESULT = 49
OP_ALERT_SC = 64

# Application contexts: (0, 4, 0, 0, 1, 0, name, version).
AC_GATEWAY = 20              # shortMsgGatewayContext
AC_MO_RELAY = 21             # shortMsgMO-RelayContext (v1/v2: shortMsgRelay)
AC_ALERT = 23                # shortMsgAlertContext
AC_MT_RELAY = 25             # shortMsgMT-RelayContext


def ac_name(name: int, version: int) -> tuple[int, ...]:
    """@return: the OID of MAP application context C{name} v C{version}."""
    return (0, 4, 0, 0, 1, 0, name, version)


def ac_parts(ac: tuple[int, ...]) -> tuple[int, int] | None:
    """@return: C{(name, version)} of a MAP context, or None."""
    if len(ac) == 8 and ac[:6] == (0, 4, 0, 0, 1, 0):
        return ac[6], ac[7]
    return None


AC_NAMES = {AC_GATEWAY: "shortMsgGateway", AC_MO_RELAY: "shortMsgMO-Relay",
            AC_ALERT: "shortMsgAlert", AC_MT_RELAY: "shortMsgMT-Relay"}

# Error codes (29.002 section 17.6.6).
ERR_UNKNOWN_SUBSCRIBER = 1
ERR_UNIDENTIFIED_SUBSCRIBER = 5
ERR_ABSENT_SUBSCRIBER_SM = 6
ERR_ILLEGAL_SUBSCRIBER = 9
ERR_TELESERVICE_NOT_PROVISIONED = 11
ERR_CALL_BARRED = 13
ERR_FACILITY_NOT_SUPPORTED = 21
ERR_SUBSCRIBER_BUSY_FOR_MT_SMS = 31
ERR_SM_DELIVERY_FAILURE = 32
ERR_MESSAGE_WAITING_LIST_FULL = 33
ERR_SYSTEM_FAILURE = 34
ERR_DATA_MISSING = 35
ERR_UNEXPECTED_DATA_VALUE = 36
ERROR_NAMES = {
    ERR_UNKNOWN_SUBSCRIBER: "unknownSubscriber",
    ERR_UNIDENTIFIED_SUBSCRIBER: "unidentifiedSubscriber",
    ERR_ABSENT_SUBSCRIBER_SM: "absentSubscriberSM",
    ERR_ILLEGAL_SUBSCRIBER: "illegalSubscriber",
    ERR_TELESERVICE_NOT_PROVISIONED: "teleserviceNotProvisioned",
    ERR_CALL_BARRED: "callBarred",
    ERR_FACILITY_NOT_SUPPORTED: "facilityNotSupported",
    ERR_SUBSCRIBER_BUSY_FOR_MT_SMS: "subscriberBusyForMT-SMS",
    ERR_SM_DELIVERY_FAILURE: "sm-DeliveryFailure",
    ERR_MESSAGE_WAITING_LIST_FULL: "messageWaitingListFull",
    ERR_SYSTEM_FAILURE: "systemFailure",
    ERR_DATA_MISSING: "dataMissing",
    ERR_UNEXPECTED_DATA_VALUE: "unexpectedDataValue",
}
# SM-EnumeratedDeliveryFailureCause.
FAIL_MEMORY_CAPACITY_EXCEEDED = 0
FAIL_EQUIPMENT_PROTOCOL_ERROR = 1
FAIL_NOT_SM_EQUIPPED = 2
FAIL_UNKNOWN_SERVICE_CENTRE = 3
FAIL_SC_CONGESTION = 4
FAIL_CAUSES = ("memoryCapacityExceeded", "equipmentProtocolError",
               "equipmentNotSM-Equipped", "unknownServiceCentre",
               "sc-Congestion", "invalidSME-Address",
               "subscriberNotSC-Subscriber")
# SM-DeliveryOutcome.
OUTCOME_MEMORY_EXCEEDED = 0
OUTCOME_ABSENT = 1
OUTCOME_SUCCESS = 2
OUTCOMES = ("memoryCapacityExceeded", "absentSubscriber",
            "successfulTransfer")


class MAPError(Exception):
    """A MAP parameter that cannot be read (answer: unexpectedDataValue)."""


# -- numbers ----------------------------------------------------------------

def tbcd(digits: str) -> bytes:
    """@return: C{digits} as TBCD (two per octet, low nibble first, F fill)."""
    if len(digits) % 2:
        digits += "F"
    try:
        return bytes(int(digits[i + 1], 16) << 4 | int(digits[i], 16)
                     for i in range(0, len(digits), 2))
    except ValueError:
        raise MAPError(f"not digits: {digits!r}") from None


_TBCD_DIGITS = "0123456789*#abc"


def untbcd(data: bytes) -> str:
    """@return: the digits of TBCD octets (filler dropped)."""
    out = []
    for octet in data:
        for nibble in (octet & 0x0F, octet >> 4):
            if nibble == 0x0F:
                return "".join(out)
            out.append(_TBCD_DIGITS[nibble])
    return "".join(out)


def address(digits: str, nai: int = 1, npi: int = 1) -> bytes:
    """@return: an AddressString: international ISDN by default."""
    return bytes((0x80 | nai << 4 | npi,)) + tbcd(digits)


def unaddress(data: bytes) -> str:
    """@return: the digits of an AddressString."""
    if not 1 <= len(data) <= 20:
        raise MAPError("bad AddressString")
    return untbcd(data[1:])


# -- parameters ----------------------------------------------------------------

def _seq(buf: bytes) -> dict[int, bytes]:
    """The fields of one SEQUENCE element (first of each tag)."""
    try:
        tag, s, e, _ = decode(buf, 0)
        if tag != TAG_SEQUENCE:
            raise MAPError(f"SEQUENCE expected, got {tag:#x}")
        out: dict[int, bytes] = {}
        for t, cs, ce, _ in children(buf, s, e):
            out.setdefault(t, buf[cs:ce])
        return out
    except BERError as e:
        raise MAPError(str(e)) from None


def _need(fields: dict[int, bytes], tag: int, what: str) -> bytes:
    try:
        return fields[tag]
    except KeyError:
        raise MAPError(f"{what} missing") from None


@dataclass(frozen=True, slots=True)
class SRIForSM:
    """RoutingInfoForSM-Arg."""
    msisdn: str
    service_centre: str
    priority: bool = True


def encode_sri_sm(a: SRIForSM) -> bytes:
    """@return: the RoutingInfoForSM-Arg element."""
    return tlv(TAG_SEQUENCE, tlv(0x80, address(a.msisdn))
               + tlv(0x81, b"\xff" if a.priority else b"\x00")
               + tlv(0x82, address(a.service_centre)))


def decode_sri_sm(buf: bytes) -> SRIForSM:
    """@raise MAPError: not a RoutingInfoForSM-Arg."""
    f = _seq(buf)
    return SRIForSM(unaddress(_need(f, 0x80, "msisdn")),
                    unaddress(_need(f, 0x82, "serviceCentreAddress")),
                    _need(f, 0x81, "sm-RP-PRI") != b"\x00")


@dataclass(frozen=True, slots=True)
class RoutingInfo:
    """RoutingInfoForSM-Res: the subscriber's IMSI and serving node."""
    imsi: str
    msc: str
    lmsi: bytes | None = None


def encode_routing_info(r: RoutingInfo) -> bytes:
    """@return: the RoutingInfoForSM-Res element."""
    loc = tlv(0x81, address(r.msc))
    if r.lmsi:
        loc += tlv(TAG_OCTETS, r.lmsi)
    return tlv(TAG_SEQUENCE, tlv(TAG_OCTETS, tbcd(r.imsi)) + tlv(0xA0, loc))


def decode_routing_info(buf: bytes) -> RoutingInfo:
    """@raise MAPError: not a RoutingInfoForSM-Res."""
    f = _seq(buf)
    loc = _seq(tlv(TAG_SEQUENCE, _need(f, 0xA0, "locationInfoWithLMSI")))
    return RoutingInfo(untbcd(_need(f, TAG_OCTETS, "imsi")),
                       unaddress(_need(loc, 0x81, "networkNode-Number")),
                       loc.get(TAG_OCTETS))


@dataclass(frozen=True, slots=True)
class ForwardSM:
    """
    MT-ForwardSM-Arg, MO-ForwardSM-Arg or (v2) ForwardSM-Arg.

    @ivar da: C{("imsi", digits)}, C{("lmsi", hex)} or C{("sc", digits)}.
    @ivar oa: C{("sc", digits)} or C{("msisdn", digits)}.
    @ivar ui: the TPDU (SMS-DELIVER or SMS-SUBMIT).
    """
    da: tuple[str, str]
    oa: tuple[str, str]
    ui: bytes
    more: bool = False
    imsi: str | None = None


_DA = {"imsi": 0x80, "lmsi": 0x81, "sc": 0x84}
_OA = {"msisdn": 0x82, "sc": 0x84}


def _party(kind: str, value: str) -> bytes:
    if kind == "imsi":
        return tbcd(value)
    if kind == "lmsi":
        return bytes.fromhex(value)
    return address(value)


def encode_forward_sm(a: ForwardSM) -> bytes:
    """@return: the ForwardSM argument element."""
    body = tlv(_DA[a.da[0]], _party(*a.da)) \
        + tlv(_OA[a.oa[0]], _party(*a.oa)) + tlv(TAG_OCTETS, a.ui)
    if a.more:
        body += tlv(TAG_NULL, b"")
    if a.imsi:
        body += tlv(TAG_OCTETS, tbcd(a.imsi))
    return tlv(TAG_SEQUENCE, body)


def decode_forward_sm(buf: bytes) -> ForwardSM:
    """@raise MAPError: not a ForwardSM argument."""
    try:
        tag, s, e, _ = decode(buf, 0)
        parts = children(buf, s, e)
    except BERError as err:
        raise MAPError(str(err)) from None
    if tag != TAG_SEQUENCE or len(parts) < 3:
        raise MAPError("ForwardSM-Arg: three fields expected")
    (dt, ds, de, _), (ot, os_, oe, _), (ut, us, ue, _) = parts[:3]
    da = {v: k for k, v in _DA.items()}.get(dt)
    oa = {v: k for k, v in _OA.items()}.get(ot)
    if da is None or oa is None or ut != TAG_OCTETS:
        raise MAPError("ForwardSM-Arg: bad sm-RP-DA/OA/UI")
    dval = buf[ds:de]
    more = any(t == TAG_NULL for t, *_ in parts[3:])
    imsi = next((untbcd(buf[a:b]) for t, a, b, _ in parts[3:]
                 if t == TAG_OCTETS), None)
    return ForwardSM(
        (da, untbcd(dval) if da == "imsi" else dval.hex() if da == "lmsi"
         else unaddress(dval)), (oa, unaddress(buf[os_:oe])), buf[us:ue],
        more, imsi)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """ReportSM-DeliveryStatusArg."""
    msisdn: str
    service_centre: str
    outcome: int


def encode_report(a: DeliveryReport) -> bytes:
    """@return: the ReportSM-DeliveryStatusArg element."""
    return tlv(TAG_SEQUENCE, tlv(TAG_OCTETS, address(a.msisdn))
               + tlv(TAG_OCTETS, address(a.service_centre))
               + tlv(TAG_ENUMERATED, encode_int(a.outcome)))


def decode_report(buf: bytes) -> DeliveryReport:
    """@raise MAPError: not a ReportSM-DeliveryStatusArg."""
    try:
        tag, s, e, _ = decode(buf, 0)
        parts = children(buf, s, e)
        if tag != TAG_SEQUENCE or len(parts) < 3 or \
                parts[2][0] != TAG_ENUMERATED or \
                parts[0][0] != TAG_OCTETS or parts[1][0] != TAG_OCTETS:
            raise MAPError("ReportSM-DeliveryStatusArg: three fields")
        return DeliveryReport(unaddress(buf[parts[0][1]:parts[0][2]]),
                              unaddress(buf[parts[1][1]:parts[1][2]]),
                              decode_int(buf[parts[2][1]:parts[2][2]]))
    except BERError as err:
        raise MAPError(str(err)) from None


@dataclass(frozen=True, slots=True)
class Alert:
    """AlertServiceCentreArg: C{msisdn} can take short messages again."""
    msisdn: str
    service_centre: str


def encode_alert(a: Alert) -> bytes:
    """@return: the AlertServiceCentreArg element."""
    return tlv(TAG_SEQUENCE, tlv(TAG_OCTETS, address(a.msisdn))
               + tlv(TAG_OCTETS, address(a.service_centre)))


def decode_alert(buf: bytes) -> Alert:
    """@raise MAPError: not an AlertServiceCentreArg."""
    try:
        tag, s, e, _ = decode(buf, 0)
        parts = children(buf, s, e)
        if tag != TAG_SEQUENCE or len(parts) < 2 or \
                parts[0][0] != TAG_OCTETS or parts[1][0] != TAG_OCTETS:
            raise MAPError("AlertServiceCentreArg: two fields")
        return Alert(unaddress(buf[parts[0][1]:parts[0][2]]),
                     unaddress(buf[parts[1][1]:parts[1][2]]))
    except BERError as err:
        raise MAPError(str(err)) from None


# -- error parameters ------------------------------------------------------------

def encode_delivery_failure(cause: int) -> bytes:
    """@return: the SM-DeliveryFailureCause parameter."""
    return tlv(TAG_SEQUENCE, tlv(TAG_ENUMERATED, encode_int(cause)))


def decode_error_param(code: int, param: bytes | None) -> str:
    """
    @return: a short reading of an error's parameter for logs and
        outcomes (the failure cause of sm-DeliveryFailure; the
        diagnostic of absentSubscriberSM), or "".
    """
    if not param:
        return ""
    try:
        tag, s, e, _ = decode(param, 0)
        parts = children(param, s, e) if tag & 0x20 else []
        if code == ERR_SM_DELIVERY_FAILURE and parts and \
                parts[0][0] == TAG_ENUMERATED:
            n = decode_int(param[parts[0][1]:parts[0][2]])
            return FAIL_CAUSES[n] if 0 <= n < len(FAIL_CAUSES) else str(n)
        if code == ERR_ABSENT_SUBSCRIBER_SM and parts and \
                parts[0][0] == TAG_INTEGER:
            return f"diagnostic {decode_int(param[parts[0][1]:parts[0][2]])}"
        if code in (ERR_CALL_BARRED, ERR_SYSTEM_FAILURE) and \
                tag == TAG_ENUMERATED:
            return f"cause {decode_int(param[s:e])}"
    except (BERError, IndexError):
        return "unreadable"
    return ""


def boolean(value: bool) -> bytes:
    """@return: a BOOLEAN element."""
    return tlv(TAG_BOOLEAN, b"\xff" if value else b"\x00")
