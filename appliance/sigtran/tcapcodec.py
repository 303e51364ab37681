# -*- test-case-name: tests.sigtran.test_tcapcodec -*-
"""
TCAP messages (ITU-T Q.773) and their dialogue portion (Q.773 annex,
the dialogue-as-id 0.0.17.773.1.1.1), encoded and decoded by hand.

A message is a L{TCMessage} holding transaction ids, an optional dialogue
PDU (L{AARQ}, L{AARE}, L{ABRT}) and a list of components (L{Invoke},
L{ReturnResult}, L{ReturnError}, L{Reject}).  Operation parameters stay
encoded (one whole BER element): the MAP codec reads and writes them.
pycrate's C{TCAP_MAP} module is the oracle of the tests.

L{decode} raises only L{TCAPError}, whose C{cause} is the P-abort cause
(or the reject problem) a receiver answers with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from appliance.sigtran.ber import (
    BERError, TAG_EXTERNAL, TAG_INTEGER, TAG_NULL, TAG_OID, TAG_SEQUENCE,
    children, decode_int, decode_oid, encode_int, encode_oid, tlv)

# Message types (Q.773 table 10).
TC_UNI = 0x61
TC_BEGIN = 0x62
TC_END = 0x64
TC_CONTINUE = 0x65
TC_ABORT = 0x67
KINDS = {TC_UNI: "unidirectional", TC_BEGIN: "begin", TC_END: "end",
         TC_CONTINUE: "continue", TC_ABORT: "abort"}
_OTID, _DTID, _PABORT, _DIALOGUE, _COMPONENTS = 0x48, 0x49, 0x4A, 0x6B, 0x6C
# Components.
C_INVOKE, C_RESULT_LAST, C_ERROR, C_REJECT, C_RESULT = \
    0xA1, 0xA2, 0xA3, 0xA4, 0xA7
# P-abort causes.
P_UNRECOGNIZED_MESSAGE = 0
P_UNRECOGNIZED_TID = 1
P_BADLY_FORMATTED = 2
P_INCORRECT_PORTION = 3
P_RESOURCE_LIMITATION = 4
# Reject problem tags and codes.
R_GENERAL, R_INVOKE, R_RESULT, R_ERROR = 0x80, 0x81, 0x82, 0x83
R_UNRECOGNIZED_COMPONENT = 0
R_MISTYPED_COMPONENT = 1
R_BADLY_STRUCTURED = 2
R_DUPLICATE_INVOKE = 0
R_UNRECOGNIZED_OPERATION = 1
R_MISTYPED_PARAMETER = 2
R_RESOURCE_LIMITATION = 3
R_UNRECOGNIZED_INVOKE_ID = 0
R_RESULT_UNEXPECTED = 1
# Dialogue PDUs.
DIALOGUE_AS_ID = (0, 0, 17, 773, 1, 1, 1)
_AS_ID = tlv(TAG_OID, encode_oid(DIALOGUE_AS_ID))
_VERSION1 = tlv(0x80, b"\x07\x80")
AARE_ACCEPTED, AARE_REJECTED = 0, 1
SOURCE_USER, SOURCE_PROVIDER = 1, 2
DIAG_NULL, DIAG_NO_REASON, DIAG_AC_NOT_SUPPORTED = 0, 1, 2
ABRT_USER, ABRT_PROVIDER = 0, 1


class TCAPError(Exception):
    """
    A TCAP message that cannot be read.

    @ivar cause: the P-abort cause to answer with.
    @ivar tid: the originating transaction id, when it could be read.
    @ivar component: the transaction portion was fine, a component was not
        (answer with a Reject rather than an Abort).
    """

    def __init__(self, reason: str, cause: int = P_BADLY_FORMATTED,
                 tid: bytes | None = None, component: bool = False):
        super().__init__(reason)
        self.cause = cause
        self.tid = tid
        self.component = component


@dataclass(slots=True)
class AARQ:
    """A dialogue request: the application context proposed."""
    ac: tuple[int, ...]
    user_info: bytes | None = None


@dataclass(slots=True)
class AARE:
    """
    A dialogue response.

    @ivar result: L{AARE_ACCEPTED} or L{AARE_REJECTED}.
    @ivar source: L{SOURCE_USER} or L{SOURCE_PROVIDER}.
    @ivar diagnostic: e.g. L{DIAG_AC_NOT_SUPPORTED}.
    """
    ac: tuple[int, ...]
    result: int = AARE_ACCEPTED
    source: int = SOURCE_USER
    diagnostic: int = DIAG_NULL
    user_info: bytes | None = None


@dataclass(slots=True)
class ABRT:
    """A dialogue abort from the user (C{ABRT_USER}) or the provider."""
    source: int = ABRT_USER
    user_info: bytes | None = None


@dataclass(slots=True)
class Invoke:
    """An operation invoked; C{param} is one encoded BER element."""
    invoke_id: int
    opcode: int
    param: bytes | None = None
    linked_id: int | None = None


@dataclass(slots=True)
class ReturnResult:
    """A result: C{last} is False for ReturnResultNotLast."""
    invoke_id: int
    opcode: int | None = None
    param: bytes | None = None
    last: bool = True


@dataclass(slots=True)
class ReturnError:
    """An error answered to an invoke; C{code} is the local error code."""
    invoke_id: int
    code: int
    param: bytes | None = None


@dataclass(slots=True)
class Reject:
    """A component rejected; C{problem} is one of the C{R_*} tags."""
    invoke_id: int | None
    problem: int
    code: int


@dataclass(slots=True)
class TCMessage:
    """
    One TCAP message.

    @ivar kind: C{TC_BEGIN}, C{TC_CONTINUE}, C{TC_END}, C{TC_ABORT} or
        C{TC_UNI}.
    @ivar p_abort: the P-abort cause of a provider abort.
    """
    kind: int
    otid: bytes | None = None
    dtid: bytes | None = None
    dialogue: AARQ | AARE | ABRT | None = None
    components: list = field(default_factory=list)
    p_abort: int | None = None


# -- encoding -------------------------------------------------------------

def _ac(ac: tuple[int, ...]) -> bytes:
    return tlv(0xA1, tlv(TAG_OID, encode_oid(ac)))


def encode_dialogue(pdu: AARQ | AARE | ABRT) -> bytes:
    """@return: the dialogue portion element (tag 0x6B) carrying C{pdu}."""
    user = tlv(0xBE, pdu.user_info) if pdu.user_info else b""
    if isinstance(pdu, AARQ):
        body = tlv(0x60, _VERSION1 + _ac(pdu.ac) + user)
    elif isinstance(pdu, AARE):
        diag = tlv(0xA0 | pdu.source,
                   tlv(TAG_INTEGER, encode_int(pdu.diagnostic)))
        body = tlv(0x61, _VERSION1 + _ac(pdu.ac)
                   + tlv(0xA2, tlv(TAG_INTEGER, encode_int(pdu.result)))
                   + tlv(0xA3, diag) + user)
    else:
        body = tlv(0x64, tlv(0x80, bytes((pdu.source,))) + user)
    return tlv(_DIALOGUE, tlv(TAG_EXTERNAL, _AS_ID + tlv(0xA0, body)))


def encode_component(c) -> bytes:
    """@return: one encoded component."""
    iid = tlv(TAG_INTEGER, encode_int(c.invoke_id)) \
        if c.invoke_id is not None else tlv(TAG_NULL, b"")
    if isinstance(c, Invoke):
        linked = b"" if c.linked_id is None else \
            tlv(0x80, encode_int(c.linked_id))
        return tlv(C_INVOKE, iid + linked
                   + tlv(TAG_INTEGER, encode_int(c.opcode)) + (c.param or b""))
    if isinstance(c, ReturnResult):
        seq = b"" if c.opcode is None else tlv(
            TAG_SEQUENCE, tlv(TAG_INTEGER, encode_int(c.opcode))
            + (c.param or b""))
        return tlv(C_RESULT_LAST if c.last else C_RESULT, iid + seq)
    if isinstance(c, ReturnError):
        return tlv(C_ERROR, iid + tlv(TAG_INTEGER, encode_int(c.code))
                   + (c.param or b""))
    return tlv(C_REJECT, iid + tlv(c.problem, encode_int(c.code)))


def encode(m: TCMessage) -> bytes:
    """@return: the encoded message."""
    body = b""
    if m.otid is not None:
        body += tlv(_OTID, m.otid)
    if m.dtid is not None:
        body += tlv(_DTID, m.dtid)
    if m.p_abort is not None:
        body += tlv(_PABORT, bytes((m.p_abort,)))
    if m.dialogue is not None:
        body += encode_dialogue(m.dialogue)
    if m.components:
        body += tlv(_COMPONENTS,
                    b"".join(encode_component(c) for c in m.components))
    return tlv(m.kind, body)


# -- decoding -------------------------------------------------------------

def _decode_ac(buf: bytes, s: int, e: int) -> tuple[int, ...]:
    for tag, cs, ce, _ in children(buf, s, e):
        if tag == TAG_OID:
            return decode_oid(buf[cs:ce])
    raise TCAPError("application context without an OID",
                    P_INCORRECT_PORTION)


def decode_dialogue(buf: bytes, s: int, e: int) -> AARQ | AARE | ABRT:
    """Read the contents of a dialogue portion (tag 0x6B)."""
    ext = children(buf, s, e)
    if len(ext) != 1 or ext[0][0] != TAG_EXTERNAL:
        raise TCAPError("dialogue portion without EXTERNAL",
                        P_INCORRECT_PORTION)
    parts = {t: (cs, ce) for t, cs, ce, _ in children(buf, ext[0][1],
                                                         ext[0][2])}
    if TAG_OID not in parts or 0xA0 not in parts or \
            decode_oid(buf[slice(*parts[TAG_OID])]) != DIALOGUE_AS_ID:
        raise TCAPError("not a structured dialogue", P_INCORRECT_PORTION)
    pdus = children(buf, *parts[0xA0])
    if len(pdus) != 1:
        raise TCAPError("one dialogue PDU expected", P_INCORRECT_PORTION)
    ptag, ps, pe, _ = pdus[0]
    fields = {t: (cs, ce) for t, cs, ce, _ in children(buf, ps, pe)}
    user = buf[slice(*fields[0xBE])] if 0xBE in fields else None
    if ptag == 0x60 and 0xA1 in fields:
        return AARQ(_decode_ac(buf, *fields[0xA1]), user)
    if ptag == 0x61 and {0xA1, 0xA2, 0xA3} <= fields.keys():
        res = children(buf, *fields[0xA2])
        diag = children(buf, *fields[0xA3])
        if not res or not diag or diag[0][0] not in (0xA1, 0xA2):
            raise TCAPError("bad AARE", P_INCORRECT_PORTION)
        inner = children(buf, diag[0][1], diag[0][2])
        if not inner:
            raise TCAPError("bad AARE diagnostic", P_INCORRECT_PORTION)
        return AARE(_decode_ac(buf, *fields[0xA1]),
                    decode_int(buf[res[0][1]:res[0][2]]), diag[0][0] & 0x0F,
                    decode_int(buf[inner[0][1]:inner[0][2]]), user)
    if ptag == 0x64 and 0x80 in fields:
        return ABRT(decode_int(buf[slice(*fields[0x80])]), user)
    raise TCAPError(f"unknown dialogue PDU {ptag:#x}", P_INCORRECT_PORTION)


def _invoke_id(buf: bytes, tag: int, s: int, e: int) -> int | None:
    if tag == TAG_NULL:
        return None
    if tag != TAG_INTEGER:
        raise TCAPError("invoke id expected")
    return decode_int(buf[s:e])


def decode_component(buf: bytes, tag: int, s: int, e: int):
    """Read one component's contents."""
    parts = children(buf, s, e)
    if not parts:
        raise TCAPError("empty component")
    iid = _invoke_id(buf, *parts[0][:3])
    if tag == C_INVOKE:
        rest = parts[1:]
        linked = None
        if rest and rest[0][0] == 0x80:
            linked = decode_int(buf[rest[0][1]:rest[0][2]])
            rest = rest[1:]
        if not rest or rest[0][0] != TAG_INTEGER or iid is None:
            raise TCAPError("invoke without a local operation code")
        param = tlv(rest[1][0], buf[rest[1][1]:rest[1][2]]) \
            if len(rest) > 1 else None
        return Invoke(iid, decode_int(buf[rest[0][1]:rest[0][2]]), param,
                      linked)
    if tag in (C_RESULT_LAST, C_RESULT):
        opcode = param = None
        if len(parts) > 1:
            seq = children(buf, parts[1][1], parts[1][2])
            if parts[1][0] != TAG_SEQUENCE or not seq or \
                    seq[0][0] != TAG_INTEGER:
                raise TCAPError("bad result")
            opcode = decode_int(buf[seq[0][1]:seq[0][2]])
            if len(seq) > 1:
                param = tlv(seq[1][0], buf[seq[1][1]:seq[1][2]])
        return ReturnResult(iid, opcode, param, tag == C_RESULT_LAST)
    if tag == C_ERROR:
        if len(parts) < 2 or parts[1][0] != TAG_INTEGER:
            raise TCAPError("error without a local code")
        param = tlv(parts[2][0], buf[parts[2][1]:parts[2][2]]) \
            if len(parts) > 2 else None
        return ReturnError(iid, decode_int(buf[parts[1][1]:parts[1][2]]),
                           param)
    if tag == C_REJECT:
        if len(parts) < 2 or parts[1][0] not in (R_GENERAL, R_INVOKE,
                                                  R_RESULT, R_ERROR):
            raise TCAPError("reject without a problem")
        return Reject(iid, parts[1][0],
                      decode_int(buf[parts[1][1]:parts[1][2]]))
    raise TCAPError(f"unknown component {tag:#x}")


def decode(buf: bytes) -> TCMessage:
    """
    @return: the message in C{buf}.
    @raise TCAPError: anything malformed.
    """
    try:
        return _decode(buf)
    except TCAPError:
        raise
    except (BERError, IndexError, ValueError) as e:
        raise TCAPError(str(e)) from None


def _decode(buf: bytes) -> TCMessage:
    kind, s, e, nxt = _top(buf)
    m = TCMessage(kind)
    for tag, cs, ce, _ in children(buf, s, e):
        if tag in (_OTID, _DTID):
            if not 1 <= ce - cs <= 4:
                raise TCAPError("bad transaction id", P_INCORRECT_PORTION)
            if tag == _OTID:
                m.otid = buf[cs:ce]
            else:
                m.dtid = buf[cs:ce]
        elif tag == _PABORT and kind == TC_ABORT:
            m.p_abort = decode_int(buf[cs:ce])
        elif tag == _DIALOGUE:
            m.dialogue = decode_dialogue(buf, cs, ce)
        elif tag == _COMPONENTS:
            try:
                m.components = [decode_component(buf, t, a, b)
                                for t, a, b, _ in children(buf, cs, ce)]
            except (TCAPError, BERError) as err:
                raise TCAPError(f"component: {err}", P_BADLY_FORMATTED,
                               m.otid, component=True) from None
        else:
            raise TCAPError(f"unexpected element {tag:#x}",
                            P_INCORRECT_PORTION, m.otid)
    need = {TC_BEGIN: (True, False), TC_CONTINUE: (True, True),
            TC_END: (False, True), TC_ABORT: (False, True),
            TC_UNI: (False, False)}[kind]
    if (m.otid is not None) != need[0] or (m.dtid is not None) != need[1]:
        raise TCAPError("transaction ids do not fit the message type",
                        P_INCORRECT_PORTION, m.otid)
    return m


def _top(buf: bytes) -> tuple[int, int, int, int]:
    from appliance.sigtran.ber import decode as header
    kind, s, e, nxt = header(buf, 0)
    if kind not in KINDS:
        raise TCAPError(f"unknown message type {kind:#x}",
                        P_UNRECOGNIZED_MESSAGE)
    return kind, s, e, nxt
