# -*- test-case-name: tests.sigtran.test_isup -*-
"""
ISUP messages (ITU-T Q.763), encoded and decoded by hand: the generic
format (CIC, message type, mandatory fixed part, pointers to the
mandatory variable parameters and to the optional part) driven by one
table of message layouts, and the parameters a call notification
service reads: numbers with their presentation, redirection
information, cause indicators, range and status.

L{decode} raises only L{ISUPError}; C{unknown_type} tells a message type
this table does not know (answer: CFN) from a malformed one.
pycrate's C{pycrate_mobile.ISUP} is the oracle of the tests.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# Message types (Q.763 table 4).
IAM, SAM, INR, INF, COT, ACM, CON, FOT, ANM = 0x01, 0x02, 0x03, 0x04, \
    0x05, 0x06, 0x07, 0x08, 0x09
REL, SUS, RES, RLC, CCR, RSC, BLO, UBL, BLA, UBA = 0x0C, 0x0D, 0x0E, 0x10, \
    0x11, 0x12, 0x13, 0x14, 0x15, 0x16
GRS, CGB, CGU, CGBA, CGUA, GRA, CPG, UCIC, CFN = 0x17, 0x18, 0x19, 0x1A, \
    0x1B, 0x29, 0x2C, 0x2E, 0x2F
NAMES = {IAM: "IAM", SAM: "SAM", INR: "INR", INF: "INF", COT: "COT",
         ACM: "ACM", CON: "CON", FOT: "FOT", ANM: "ANM", REL: "REL",
         SUS: "SUS", RES: "RES", RLC: "RLC", CCR: "CCR", RSC: "RSC",
         BLO: "BLO", UBL: "UBL", BLA: "BLA", UBA: "UBA", GRS: "GRS",
         CGB: "CGB", CGU: "CGU", CGBA: "CGBA", CGUA: "CGUA", GRA: "GRA",
         CPG: "CPG", UCIC: "UCIC", CFN: "CFN"}
#: Message type: (mandatory fixed lengths, mandatory variable count,
#: optional part).
LAYOUTS: dict[int, tuple[tuple[int, ...], int, bool]] = {
    IAM: ((1, 2, 1, 1), 1, True), SAM: ((), 1, True),
    INR: ((2,), 0, True), INF: ((2,), 0, True), COT: ((1,), 0, False),
    ACM: ((2,), 0, True), CON: ((2,), 0, True), FOT: ((), 0, True),
    ANM: ((), 0, True), REL: ((), 1, True), SUS: ((1,), 0, True),
    RES: ((1,), 0, True), RLC: ((), 0, True), CCR: ((), 0, False),
    RSC: ((), 0, False), BLO: ((), 0, False), UBL: ((), 0, False),
    BLA: ((), 0, False), UBA: ((), 0, False), GRS: ((), 1, False),
    CGB: ((1,), 1, False), CGU: ((1,), 1, False), CGBA: ((1,), 1, False),
    CGUA: ((1,), 1, False), GRA: ((), 1, False), CPG: ((1,), 0, True),
    UCIC: ((), 0, False), CFN: ((), 1, True),
    0x24: ((), 0, False), 0x2A: ((), 1, False), 0x30: ((), 0, False),
    0x33: ((), 0, True), 0x34: ((), 0, True), 0x35: ((), 0, True),
}
# Optional parameter codes (Q.763 table 5).
P_CALLING = 0x0A
P_REDIRECTING = 0x0B
P_REDIRECTION_NUMBER = 0x0C
P_REDIRECTION_INFO = 0x13
P_ORIGINAL_CALLED = 0x28
# Presentation (address presentation restricted indicator).
PRESENTATION_ALLOWED, PRESENTATION_RESTRICTED, ADDRESS_NOT_AVAILABLE = 0, 1, 2
# Cause values (Q.850) used here.
CAUSE_NORMAL = 16
CAUSE_BUSY = 17
CAUSE_NO_ANSWER = 19
CAUSE_UNALLOCATED = 1
CAUSE_CONGESTION = 34
CAUSE_TEMPORARY_FAILURE = 41
CAUSE_MESSAGE_TYPE_NONEXISTENT = 97
CAUSE_RECOVERY_ON_TIMER = 102
# Redirecting reasons.
REASON_UNKNOWN, REASON_BUSY, REASON_NO_REPLY, REASON_UNCONDITIONAL = 0, 1, 2, 3
REASON_NOT_REACHABLE = 6


class ISUPError(ValueError):
    """
    An ISUP message that cannot be read.

    @ivar cic: the circuit, when it could be read.
    @ivar unknown_type: the message type is not one we know.
    """

    def __init__(self, reason: str, cic: int | None = None,
                 unknown_type: int | None = None):
        super().__init__(reason)
        self.cic = cic
        self.unknown_type = unknown_type


@dataclass(slots=True)
class ISUPMessage:
    """
    One ISUP message in its generic form.

    @ivar fixed: the mandatory fixed parameters, in order.
    @ivar variable: the mandatory variable parameters, in order.
    @ivar optional: optional parameters by code (first of each).
    """
    cic: int
    type: int
    fixed: list[bytes] = field(default_factory=list)
    variable: list[bytes] = field(default_factory=list)
    optional: dict[int, bytes] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The message's acronym."""
        return NAMES.get(self.type, f"type {self.type:#04x}")


def encode(m: ISUPMessage) -> bytes:
    """@return: the message's octets."""
    fixed_lengths, nvar, has_opt = LAYOUTS[m.type]
    out = bytearray(((m.cic & 0xFF), (m.cic >> 8) & 0x0F, m.type))
    for length, value in zip(fixed_lengths, m.fixed):
        if len(value) != length:
            raise ValueError(f"{m.name}: fixed parameter of {length} octets")
        out += value
    npointers = nvar + (1 if has_opt else 0)
    body = bytearray()
    pointers = []
    for n, value in enumerate(m.variable[:nvar]):
        pointers.append(npointers - n + len(body))
        body += bytes((len(value),)) + value
    if has_opt:
        if m.optional:
            pointers.append(1 + len(body))
            for code, value in m.optional.items():
                body += bytes((code, len(value))) + value
            body += b"\x00"
        else:
            pointers.append(0)
    out += bytes(pointers) + body
    return bytes(out)


def decode(data: bytes) -> ISUPMessage:
    """
    @return: the message in C{data}.
    @raise ISUPError: truncated, inconsistent, or an unknown type.
    """
    if len(data) < 3:
        raise ISUPError("shorter than a header")
    cic = data[0] | (data[1] & 0x0F) << 8
    mtype = data[2]
    layout = LAYOUTS.get(mtype)
    if layout is None:
        raise ISUPError(f"unknown message type {mtype:#04x}", cic, mtype)
    fixed_lengths, nvar, has_opt = layout
    m = ISUPMessage(cic, mtype)
    pos = 3
    for length in fixed_lengths:
        if pos + length > len(data):
            raise ISUPError(f"{m.name}: truncated fixed part", cic)
        m.fixed.append(data[pos:pos + length])
        pos += length
    for n in range(nvar + (1 if has_opt else 0)):
        if pos + n >= len(data):
            raise ISUPError(f"{m.name}: missing pointer", cic)
        target = pos + n + data[pos + n]
        if n == nvar:                       # the optional part
            if data[pos + n]:
                _optional(data, target, m)
            continue
        if data[pos + n] == 0 or target >= len(data) or \
                target + 1 + data[target] > len(data):
            raise ISUPError(f"{m.name}: bad pointer", cic)
        m.variable.append(data[target + 1:target + 1 + data[target]])
    return m


def _optional(data: bytes, pos: int, m: ISUPMessage) -> None:
    while True:
        if pos >= len(data):
            raise ISUPError(f"{m.name}: optional part not terminated", m.cic)
        code = data[pos]
        if code == 0:
            return
        if pos + 1 >= len(data) or pos + 2 + data[pos + 1] > len(data):
            raise ISUPError(f"{m.name}: truncated optional parameter",
                            m.cic)
        m.optional.setdefault(code, data[pos + 2:pos + 2 + data[pos + 1]])
        pos += 2 + data[pos + 1]


# -- parameters ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Number:
    """
    A called/calling/redirecting/original called/redirection number.

    @ivar nai: nature of address (3 national, 4 international...).
    @ivar presentation: for calling/original called/redirecting numbers:
        L{PRESENTATION_ALLOWED}, L{PRESENTATION_RESTRICTED} or
        L{ADDRESS_NOT_AVAILABLE}; None where the format has none.
    """
    digits: str
    nai: int = 4
    presentation: int | None = None
    npi: int = 1
    screening: int = 3


def _bcd(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "0"
    return bytes(int(digits[i + 1], 16) << 4 | int(digits[i], 16)
                 for i in range(0, len(digits), 2))


def encode_number(n: Number, kind: str) -> bytes:
    """
    @param kind: C{called} (and redirection number: INN bit),
        C{calling} (presentation and screening), or C{original}
        (original called / redirecting number: presentation).
    """
    odd = len(n.digits) % 2
    first = odd << 7 | (n.nai & 0x7F)
    if kind == "called":
        second = n.npi << 4
    elif kind == "calling":
        second = n.npi << 4 | (n.presentation or 0) << 2 | n.screening
    else:
        second = n.npi << 4 | (n.presentation or 0) << 2
    return bytes((first, second)) + _bcd(n.digits)


_DIGITS = "0123456789abcdef"


def decode_number(value: bytes, kind: str) -> Number:
    """@raise ISUPError: shorter than its two header octets."""
    if len(value) < 2:
        raise ISUPError("number parameter too short")
    odd = value[0] >> 7
    digits = "".join(_DIGITS[o & 0x0F] + _DIGITS[o >> 4] for o in value[2:])
    if odd and digits:
        digits = digits[:-1]
    presentation = (value[1] >> 2) & 0x03 if kind != "called" else None
    return Number(digits, value[0] & 0x7F, presentation,
                  (value[1] >> 4) & 0x07, value[1] & 0x03)


@dataclass(frozen=True, slots=True)
class Redirection:
    """Redirection information (Q.763 3.45)."""
    indicator: int = 0
    original_reason: int = 0
    counter: int = 1
    reason: int = 0


def encode_redirection(r: Redirection) -> bytes:
    """@return: the two octets of redirection information."""
    return bytes((r.original_reason << 4 | r.indicator,
                  r.reason << 4 | r.counter))


def decode_redirection(value: bytes) -> Redirection:
    """@raise ISUPError: not two octets."""
    if len(value) < 1:
        raise ISUPError("redirection information too short")
    second = value[1] if len(value) > 1 else 0
    return Redirection(value[0] & 0x07, value[0] >> 4, second & 0x07,
                       second >> 4)


def encode_cause(value: int, location: int = 0) -> bytes:
    """@return: cause indicators, ITU coding, location C{location}."""
    return bytes((0x80 | location, 0x80 | value))


def decode_cause(value: bytes) -> int:
    """@return: the cause value; @raise ISUPError: too short."""
    if len(value) < 2:
        raise ISUPError("cause indicators too short")
    return value[1] & 0x7F


def range_status(count: int, status: bytes | None = None) -> bytes:
    """
    @param count: circuits in the range (2..32 for groups).
    @param status: the status bits (None: GRS, no status field).
    """
    return bytes((count - 1,)) + (status if status is not None else b"")
