# -*- test-case-name: tests.sigtran.test_m3ua -*-
"""
M3UA messages (RFC 4666 section 3): a pure codec written with C{struct}.

A message is a common header (version 1, class, type, length) and a
sequence of tag-length-value parameters padded to 4 bytes.  L{decode}
checks the framing and the parameters this node reads, and raises
L{M3UAError} with the RFC's error code for anything malformed, so the
association can answer with an ERR (3.8.1) and keep serving.  Builders
return bytes directly; the hot path (DATA) packs one C{struct} call.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from appliance.sigtran.interfaces import ProtocolData

VERSION = 1
#: The largest message we accept (a DATA with a 64 KiB payload and room).
MAX_LENGTH = 70_000

# Message classes (3.1.2).
MGMT, TRANSFER, SSNM, ASPSM, ASPTM, RKM = 0, 1, 2, 3, 4, 9

# (class, type) of every M3UA message, by its spec name.
ERR = (MGMT, 0)
NTFY = (MGMT, 1)
DATA = (TRANSFER, 1)
DUNA, DAVA, DAUD, SCON, DUPU, DRST = ((SSNM, t) for t in range(1, 7))
ASPUP, ASPDN, BEAT, ASPUP_ACK, ASPDN_ACK, BEAT_ACK = (
    (ASPSM, t) for t in range(1, 7))
ASPAC, ASPIA, ASPAC_ACK, ASPIA_ACK = ((ASPTM, t) for t in range(1, 5))
REG_REQ, REG_RSP, DEREG_REQ, DEREG_RSP = ((RKM, t) for t in range(1, 5))

#: Spec name of each message, as shown by C{show ss7}.
NAMES = {
    ERR: "ERR", NTFY: "NTFY", DATA: "DATA", DUNA: "DUNA", DAVA: "DAVA",
    DAUD: "DAUD", SCON: "SCON", DUPU: "DUPU", DRST: "DRST",
    ASPUP: "ASPUP", ASPDN: "ASPDN", BEAT: "BEAT", ASPUP_ACK: "ASPUP_ACK",
    ASPDN_ACK: "ASPDN_ACK", BEAT_ACK: "BEAT_ACK", ASPAC: "ASPAC",
    ASPIA: "ASPIA", ASPAC_ACK: "ASPAC_ACK", ASPIA_ACK: "ASPIA_ACK",
    REG_REQ: "REG_REQ", REG_RSP: "REG_RSP", DEREG_REQ: "DEREG_REQ",
    DEREG_RSP: "DEREG_RSP",
}
_TYPES_OF_CLASS = {}
for _c, _t in NAMES:
    _TYPES_OF_CLASS.setdefault(_c, set()).add(_t)

# Parameter tags (3.2 and 3.3-3.8).
TAG_INFO_STRING = 0x0004
TAG_ROUTING_CONTEXT = 0x0006
TAG_DIAGNOSTIC_INFO = 0x0007
TAG_HEARTBEAT_DATA = 0x0009
TAG_TRAFFIC_MODE = 0x000B
TAG_ERROR_CODE = 0x000C
TAG_STATUS = 0x000D
TAG_ASP_ID = 0x0011
TAG_AFFECTED_PC = 0x0012
TAG_CORRELATION_ID = 0x0013
TAG_NETWORK_APPEARANCE = 0x0200
TAG_USER_CAUSE = 0x0204
TAG_CONGESTION = 0x0205
TAG_CONCERNED_DPC = 0x0206
TAG_ROUTING_KEY = 0x0207
TAG_REG_RESULT = 0x0208
TAG_DEREG_RESULT = 0x0209
TAG_LOCAL_RK_ID = 0x020A
TAG_DPC = 0x020B
TAG_SI = 0x020C
TAG_OPC_LIST = 0x020E
TAG_PROTOCOL_DATA = 0x0210
TAG_REG_STATUS = 0x0212
TAG_DEREG_STATUS = 0x0213

# Error codes (3.8.1).
E_INVALID_VERSION = 0x01
E_UNSUPPORTED_CLASS = 0x03
E_UNSUPPORTED_TYPE = 0x04
E_UNSUPPORTED_TRAFFIC_MODE = 0x05
E_UNEXPECTED_MESSAGE = 0x06
E_PROTOCOL_ERROR = 0x07
E_INVALID_STREAM = 0x09
E_REFUSED_MANAGEMENT_BLOCKING = 0x0D
E_ASP_ID_REQUIRED = 0x0E
E_INVALID_ASP_ID = 0x0F
E_INVALID_PARAMETER_VALUE = 0x11
E_PARAMETER_FIELD_ERROR = 0x12
E_UNEXPECTED_PARAMETER = 0x13
E_DESTINATION_STATUS_UNKNOWN = 0x14
E_INVALID_NETWORK_APPEARANCE = 0x15
E_MISSING_PARAMETER = 0x16
E_INVALID_ROUTING_CONTEXT = 0x19
E_NO_CONFIGURED_AS = 0x1A

# Traffic mode types (3.5.5) and NTFY status (3.8.2).
TM_OVERRIDE, TM_LOADSHARE, TM_BROADCAST = 1, 2, 3
STATUS_AS_STATE_CHANGE, STATUS_OTHER = 1, 2
AS_INACTIVE, AS_ACTIVE, AS_PENDING = 2, 3, 4
OTHER_INSUFFICIENT_ASP, OTHER_ALTERNATE_ASP, OTHER_ASP_FAILURE = 1, 2, 3

# DUPU user cause (3.4.5).
CAUSE_UNKNOWN, CAUSE_UNEQUIPPED, CAUSE_INACCESSIBLE = 0, 1, 2

_HEADER = struct.Struct("!BBBBI")
_TLV = struct.Struct("!HH")
_U32 = struct.Struct("!I")
_PD = struct.Struct("!HHIIBBBB")   # tag, length, OPC, DPC, SI, NI, MP, SLS


class M3UAError(Exception):
    """
    A message that cannot be accepted, with the ERR code to answer.

    @ivar code: the RFC 4666 error code (C{E_*}).
    @ivar diagnostic: the offending bytes, for the Diagnostic Info.
    """

    def __init__(self, code: int, reason: str, diagnostic: bytes = b""):
        self.code = code
        self.diagnostic = diagnostic
        super().__init__(reason)


@dataclass(frozen=True)
class Message:
    """
    A decoded M3UA message.

    @ivar kind: C{(class, type)}, one of the module constants (C{DATA}...).
    @ivar params: the parameters in wire order, C{(tag, value)} each.
    """
    kind: tuple[int, int]
    params: tuple[tuple[int, bytes], ...] = ()

    @property
    def name(self) -> str:
        """The message's spec name (C{"DATA"}, C{"ASPUP_ACK"}...)."""
        return NAMES.get(self.kind, "%d/%d" % self.kind)

    def get(self, tag: int) -> bytes | None:
        """@return: the first value of C{tag}, or None."""
        for t, v in self.params:
            if t == tag:
                return v
        return None

    def get_all(self, tag: int) -> list[bytes]:
        """@return: every value of C{tag}, in order."""
        return [v for t, v in self.params if t == tag]

    def u32(self, tag: int) -> int | None:
        """@return: a 32-bit parameter's value, or None when absent."""
        v = self.get(tag)
        if v is None:
            return None
        if len(v) != 4:
            raise M3UAError(E_PARAMETER_FIELD_ERROR, f"tag {tag:#x} length")
        return _U32.unpack(v)[0]

    def u32_list(self, tag: int) -> tuple[int, ...]:
        """@return: the 32-bit values of a list parameter (e.g. RCs)."""
        v = self.get(tag)
        if v is None:
            return ()
        if not v or len(v) % 4:
            raise M3UAError(E_PARAMETER_FIELD_ERROR, f"tag {tag:#x} length")
        return struct.unpack(f"!{len(v) // 4}I", v)

    def routing_contexts(self) -> tuple[int, ...]:
        """@return: the Routing Context values (may be empty)."""
        return self.u32_list(TAG_ROUTING_CONTEXT)

    def network_appearance(self) -> int | None:
        """@return: the Network Appearance, or None."""
        return self.u32(TAG_NETWORK_APPEARANCE)

    def affected_pcs(self) -> tuple[tuple[int, int], ...]:
        """@return: the Affected Point Codes as C{(mask, pc)} pairs."""
        return tuple((x >> 24, x & 0xFFFFFF)
                     for x in self.u32_list(TAG_AFFECTED_PC))

    def info_string(self) -> str | None:
        """@return: the INFO String, or None."""
        v = self.get(TAG_INFO_STRING)
        return None if v is None else v.decode("utf-8", "replace")

    def protocol_data(self) -> ProtocolData:
        """
        @return: the DATA message's Protocol Data.
        @raise M3UAError: absent or too short.
        """
        v = self.get(TAG_PROTOCOL_DATA)
        if v is None:
            raise M3UAError(E_MISSING_PARAMETER, "DATA without Protocol Data")
        if len(v) < 12:
            raise M3UAError(E_PARAMETER_FIELD_ERROR, "Protocol Data too short")
        opc, dpc, si, ni, mp, sls = struct.unpack_from("!IIBBBB", v)
        return ProtocolData(opc, dpc, si, ni, mp, sls, v[12:])

    def user_cause(self) -> tuple[int, int]:
        """@return: DUPU's C{(cause, user)}."""
        v = self.get(TAG_USER_CAUSE)
        if v is None or len(v) != 4:
            raise M3UAError(E_MISSING_PARAMETER, "DUPU without User/Cause")
        return struct.unpack("!HH", v)

    def status(self) -> tuple[int, int]:
        """@return: NTFY's C{(status type, status information)}."""
        v = self.get(TAG_STATUS)
        if v is None or len(v) != 4:
            raise M3UAError(E_MISSING_PARAMETER, "NTFY without Status")
        return struct.unpack("!HH", v)

    def nested(self, tag: int) -> list[dict[int, bytes]]:
        """
        @return: each C{tag} parameter (Routing Key, Registration Result)
            decoded into its own sub-parameters, C{tag -> value}.
        """
        return [dict(_parse_params(v, 0, len(v))) for v in self.get_all(tag)]


def _parse_params(buf: bytes, offset: int,
                  end: int) -> list[tuple[int, bytes]]:
    params = []
    while offset < end:
        if end - offset < 4:
            raise M3UAError(E_PARAMETER_FIELD_ERROR, "truncated parameter",
                            buf[offset:end])
        tag, length = _TLV.unpack_from(buf, offset)
        if length < 4 or offset + length > end:
            raise M3UAError(E_PARAMETER_FIELD_ERROR,
                            f"parameter {tag:#x} length {length}",
                            buf[offset:offset + 40])
        params.append((tag, bytes(buf[offset + 4:offset + length])))
        offset += (length + 3) & ~3
    return params


def decode(buf: bytes) -> Message:
    """
    Decode one whole M3UA message.

    @raise M3UAError: with the error code to answer in an ERR.
    """
    if len(buf) < 8:
        raise M3UAError(E_PROTOCOL_ERROR, "shorter than a header", buf)
    version, _, mclass, mtype, length = _HEADER.unpack_from(buf)
    if version != VERSION:
        raise M3UAError(E_INVALID_VERSION, f"version {version}", buf[:8])
    if length != len(buf):
        raise M3UAError(E_PROTOCOL_ERROR,
                        f"length {length} but {len(buf)} bytes", buf[:8])
    types = _TYPES_OF_CLASS.get(mclass)
    if types is None:
        raise M3UAError(E_UNSUPPORTED_CLASS, f"class {mclass}", buf[:8])
    if mtype not in types:
        raise M3UAError(E_UNSUPPORTED_TYPE, f"type {mclass}/{mtype}", buf[:8])
    return Message((mclass, mtype), tuple(_parse_params(buf, 8, length)))


def frame_length(buf: bytes) -> int | None:
    """
    The length of the message that starts C{buf} (M3UA over TCP: frames
    carry their own length), or None if the header is not all there.

    @raise M3UAError: the header cannot start a message (the stream is
        lost: the caller should answer ERR and close).
    """
    if len(buf) < 8:
        return None
    version, _, _, _, length = _HEADER.unpack_from(buf)
    if version != VERSION:
        raise M3UAError(E_INVALID_VERSION, f"version {version}", buf[:8])
    if length < 8 or length > MAX_LENGTH or length % 4:
        raise M3UAError(E_PROTOCOL_ERROR, f"message length {length}", buf[:8])
    return length


def param(tag: int, value: bytes) -> bytes:
    """@return: one parameter, padded to 4 bytes."""
    pad = -len(value) % 4
    return _TLV.pack(tag, 4 + len(value)) + value + b"\0" * pad


def u32(tag: int, value: int) -> bytes:
    """@return: a 32-bit parameter."""
    return _TLV.pack(tag, 8) + _U32.pack(value)


def u32_list(tag: int, values) -> bytes:
    """@return: a list of 32-bit values as one parameter (empty: b"")."""
    values = tuple(values)
    if not values:
        return b""
    return _TLV.pack(tag, 4 + 4 * len(values)) + struct.pack(
        f"!{len(values)}I", *values)


def message(kind: tuple[int, int], *params: bytes) -> bytes:
    """@return: a whole message of C{kind} with the encoded C{params}."""
    body = b"".join(params)
    return _HEADER.pack(VERSION, 0, kind[0], kind[1], 8 + len(body)) + body


def encode(msg: Message) -> bytes:
    """@return: the bytes of a L{Message} (parameters as they are)."""
    return message(msg.kind, *(param(t, v) for t, v in msg.params))


def _optional(tag: int, value: int | None) -> bytes:
    return b"" if value is None else u32(tag, value)


def _info(info: str | None) -> bytes:
    return b"" if info is None else param(TAG_INFO_STRING, info.encode())


def data(pd: ProtocolData, rc: int | None = None, na: int | None = None,
         correlation: int | None = None) -> bytes:
    """@return: a DATA message (3.3.1) carrying C{pd}."""
    length = 16 + len(pd.data)
    body = (_optional(TAG_NETWORK_APPEARANCE, na)
            + _optional(TAG_ROUTING_CONTEXT, rc)
            + _PD.pack(TAG_PROTOCOL_DATA, length, pd.opc, pd.dpc, pd.si,
                       pd.ni, pd.mp, pd.sls)
            + pd.data + b"\0" * (-length % 4)
            + _optional(TAG_CORRELATION_ID, correlation))
    return _HEADER.pack(VERSION, 0, TRANSFER, 1, 8 + len(body)) + body


def aspsm(kind: tuple[int, int], asp_id: int | None = None,
          info: str | None = None) -> bytes:
    """@return: ASPUP, ASPUP_ACK, ASPDN or ASPDN_ACK."""
    return message(kind, _optional(TAG_ASP_ID, asp_id), _info(info))


def beat(kind: tuple[int, int], payload: bytes | None) -> bytes:
    """@return: BEAT or BEAT_ACK (the ACK echoes the BEAT's data)."""
    return message(kind, b"" if payload is None
                   else param(TAG_HEARTBEAT_DATA, payload))


def asptm(kind: tuple[int, int], rcs=(), traffic_mode: int | None = None,
          info: str | None = None) -> bytes:
    """@return: ASPAC, ASPAC_ACK, ASPIA or ASPIA_ACK."""
    return message(kind, _optional(TAG_TRAFFIC_MODE, traffic_mode),
                   u32_list(TAG_ROUTING_CONTEXT, rcs), _info(info))


def ssnm(kind: tuple[int, int], pcs, rcs=(), na: int | None = None,
         info: str | None = None) -> bytes:
    """
    @param pcs: affected point codes (ints, or C{(mask, pc)} pairs).
    @return: DUNA, DAVA, DAUD or DRST.
    """
    words = [p if isinstance(p, int) else (p[0] << 24 | p[1]) for p in pcs]
    return message(kind, _optional(TAG_NETWORK_APPEARANCE, na),
                   u32_list(TAG_ROUTING_CONTEXT, rcs),
                   u32_list(TAG_AFFECTED_PC, words), _info(info))


def scon(pcs, concerned: int | None = None, level: int | None = None,
         rcs=(), na: int | None = None) -> bytes:
    """@return: an SCON (3.4.4) for the affected C{pcs}."""
    return message(SCON, _optional(TAG_NETWORK_APPEARANCE, na),
                   u32_list(TAG_ROUTING_CONTEXT, rcs),
                   u32_list(TAG_AFFECTED_PC, pcs),
                   _optional(TAG_CONCERNED_DPC, concerned),
                   _optional(TAG_CONGESTION, level))


def dupu(pc: int, cause: int, user: int, rcs=(),
         na: int | None = None) -> bytes:
    """@return: a DUPU (3.4.5): user part C{user} at C{pc} unavailable."""
    return message(DUPU, _optional(TAG_NETWORK_APPEARANCE, na),
                   u32_list(TAG_ROUTING_CONTEXT, rcs),
                   u32_list(TAG_AFFECTED_PC, (pc,)),
                   param(TAG_USER_CAUSE, struct.pack("!HH", cause, user)))


def ntfy(status_type: int, status_info: int, asp_id: int | None = None,
         rcs=(), info: str | None = None) -> bytes:
    """@return: a NTFY (3.8.2)."""
    return message(NTFY, param(TAG_STATUS, struct.pack(
        "!HH", status_type, status_info)), _optional(TAG_ASP_ID, asp_id),
        u32_list(TAG_ROUTING_CONTEXT, rcs), _info(info))


def err(code: int, diagnostic: bytes = b"", rcs=(),
        na: int | None = None, pcs=()) -> bytes:
    """@return: an ERR (3.8.1) with C{code} and what caused it."""
    return message(ERR, u32(TAG_ERROR_CODE, code),
                   u32_list(TAG_ROUTING_CONTEXT, rcs),
                   _optional(TAG_NETWORK_APPEARANCE, na),
                   u32_list(TAG_AFFECTED_PC, pcs),
                   param(TAG_DIAGNOSTIC_INFO, diagnostic[:64])
                   if diagnostic else b"")


@dataclass(frozen=True)
class RoutingKey:
    """
    A routing key to register (3.6.1).

    @ivar local_id: our Local-RK-Identifier, matched in the response.
    @ivar dpcs: the destination point codes it covers (usually ours).
    @ivar rc: a routing context proposed, or None for the SG's choice.
    @ivar traffic_mode: C{TM_*} or None.
    @ivar sis: service indicators, empty for all.
    @ivar na: network appearance, or None.
    """
    local_id: int
    dpcs: tuple[int, ...]
    rc: int | None = None
    traffic_mode: int | None = None
    sis: tuple[int, ...] = ()
    na: int | None = None


def reg_req(keys) -> bytes:
    """@return: a REG REQ with one Routing Key parameter per key."""
    out = []
    for k in keys:
        sis = bytes(k.sis)
        out.append(param(TAG_ROUTING_KEY, b"".join((
            u32(TAG_LOCAL_RK_ID, k.local_id),
            _optional(TAG_ROUTING_CONTEXT, k.rc),
            _optional(TAG_TRAFFIC_MODE, k.traffic_mode),
            u32_list(TAG_DPC, k.dpcs),
            _optional(TAG_NETWORK_APPEARANCE, k.na),
            param(TAG_SI, sis) if sis else b""))))
    return message(REG_REQ, *out)


def reg_rsp(results) -> bytes:
    """
    @param results: C{(local_id, status, rc)} triples.
    @return: a REG RSP (3.6.2).
    """
    return message(REG_RSP, *(param(TAG_REG_RESULT, u32(
        TAG_LOCAL_RK_ID, lid) + u32(TAG_REG_STATUS, status) + u32(
        TAG_ROUTING_CONTEXT, rc)) for lid, status, rc in results))


def dereg_req(rcs) -> bytes:
    """@return: a DEREG REQ for routing contexts C{rcs}."""
    return message(DEREG_REQ, u32_list(TAG_ROUTING_CONTEXT, rcs))


def dereg_rsp(results) -> bytes:
    """
    @param results: C{(rc, status)} pairs.
    @return: a DEREG RSP (3.6.4).
    """
    return message(DEREG_RSP, *(param(TAG_DEREG_RESULT, u32(
        TAG_ROUTING_CONTEXT, rc) + u32(TAG_DEREG_STATUS, status))
        for rc, status in results))


def sub_u32(sub: dict[int, bytes], tag: int) -> int | None:
    """@return: a 32-bit value of a nested parameter, or None."""
    v = sub.get(tag)
    if v is None:
        return None
    if len(v) < 4:
        raise M3UAError(E_PARAMETER_FIELD_ERROR, f"tag {tag:#x} length")
    return _U32.unpack_from(v)[0]
