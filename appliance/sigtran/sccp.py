# -*- test-case-name: tests.sigtran.test_sccp -*-
"""
SCCP connectionless messages (ITU Q.713): UDT, UDTS, XUDT and XUDTS,
with called/calling party addresses (point code, SSN, global title
indicator 4: E.164 digits in BCD), written with C{struct}.  Pure: no
Twisted, no state; segmentation of long data into XUDT segments and the
segment header are here, reassembly state is the router's.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from appliance.sigtran.interfaces import SCCPAddress

UDT, UDTS, XUDT, XUDTS = 0x09, 0x0A, 0x11, 0x12
NAMES = {UDT: "UDT", UDTS: "UDTS", XUDT: "XUDT", XUDTS: "XUDTS"}

#: Protocol class byte: class in the low nibble, 0x80 "return on error".
RETURN_ON_ERROR = 0x80
#: Optional parameter names (Q.713 3.18).
OPT_END, OPT_SEGMENTATION = 0x00, 0x10
#: Hop counter we start XUDTs with (Q.714 suggests 15 at most).
HOP_COUNTER = 15
#: Largest SCCP message MTP carries (272-octet SIF minus the label).
MAX_MESSAGE = 268
#: Longest user data one conversation may carry in XUDT segments.
MAX_SEGMENTED = 3952


class SCCPError(Exception):
    """A malformed SCCP message (Q.714: discard it, count it)."""


@dataclass(frozen=True)
class Segmentation:
    """
    The segmentation parameter of an XUDT (Q.713 3.17).

    @ivar first: this is the first segment.
    @ivar in_sequence: class 1 was asked for.
    @ivar remaining: segments still to come after this one (0-15).
    @ivar reference: the local reference tying the segments together.
    """
    first: bool
    in_sequence: bool
    remaining: int
    reference: int


@dataclass(frozen=True)
class Unitdata:
    """
    One decoded UDT/UDTS/XUDT/XUDTS.

    @ivar kind: C{UDT}, C{UDTS}, C{XUDT} or C{XUDTS}.
    @ivar called: the called party address.
    @ivar calling: the calling party address.
    @ivar data: the user data (of this segment).
    @ivar protocol_class: 0 or 1 (for UDT/XUDT).
    @ivar return_on_error: the 0x80 bit of the protocol class.
    @ivar cause: the return cause (UDTS/XUDTS), else None.
    @ivar hop_counter: the XUDT hop counter, else None.
    @ivar segmentation: the segmentation parameter, or None.
    """
    kind: int
    called: SCCPAddress
    calling: SCCPAddress
    data: bytes
    protocol_class: int = 0
    return_on_error: bool = False
    cause: int | None = None
    hop_counter: int | None = None
    segmentation: Segmentation | None = None


def encode_digits(digits: str) -> bytes:
    """
    @param digits: decimal digits, or the hex nibbles a received address
        carried (b-e are codes such as * and #, kept to answer it).
    @return: BCD digits, low nibble first, 0 filler for odd lengths.
    """
    try:
        nibbles = [int(c, 16) for c in digits]
    except ValueError:
        raise ValueError(f"global title {digits!r}: digits only") from None
    nibbles += [0] if len(digits) % 2 else []
    return bytes(nibbles[i] | nibbles[i + 1] << 4
                 for i in range(0, len(nibbles), 2))


_BCD = "0123456789abcdef"


def decode_digits(raw: bytes, odd: bool) -> str:
    """@return: the BCD digits (dropping the filler when C{odd})."""
    out = []
    for b in raw:
        out.append(_BCD[b & 0xF])
        out.append(_BCD[b >> 4])
    if odd and out:
        out.pop()
    return "".join(out)


def encode_address(a: SCCPAddress) -> bytes:
    """@return: a party address (Q.713 3.4), without its length byte."""
    gt = b""
    gti = 0
    if a.gt is not None:
        gti = 4
        odd = len(a.gt) % 2
        gt = bytes((a.tt, (a.np << 4) | (1 if odd else 2), a.nai & 0x7F)) \
            + encode_digits(a.gt)
    indicator = ((0 if a.route_on_gt and a.gt is not None else 0x40)
                 | gti << 2 | (0x02 if a.ssn is not None else 0)
                 | (0x01 if a.pc is not None else 0))
    out = bytes((indicator,))
    if a.pc is not None:
        out += struct.pack("<H", a.pc & 0x3FFF)
    if a.ssn is not None:
        out += bytes((a.ssn,))
    return out + gt


def decode_address(raw: bytes) -> SCCPAddress:
    """
    @return: the party address.
    @raise SCCPError: truncated or of a GT type we do not read.
    """
    if not raw:
        raise SCCPError("empty address")
    ind = raw[0]
    pos = 1
    pc = ssn = None
    if ind & 0x01:
        if len(raw) < pos + 2:
            raise SCCPError("truncated point code")
        pc = struct.unpack_from("<H", raw, pos)[0] & 0x3FFF
        pos += 2
    if ind & 0x02:
        if len(raw) < pos + 1:
            raise SCCPError("truncated SSN")
        ssn = raw[pos]
        pos += 1
    gti = (ind >> 2) & 0x0F
    route_on_gt = not ind & 0x40
    if gti == 0:
        return SCCPAddress(None, ssn, pc, route_on_gt)
    if gti == 4:
        if len(raw) < pos + 3:
            raise SCCPError("truncated global title")
        tt, npes, nai = raw[pos], raw[pos + 1], raw[pos + 2] & 0x7F
        es = npes & 0x0F
        if es not in (1, 2):
            raise SCCPError(f"global title encoding scheme {es}")
        digits = decode_digits(raw[pos + 3:], es == 1)
        return SCCPAddress(digits, ssn, pc, route_on_gt, tt, npes >> 4, nai)
    if gti == 1:
        if len(raw) < pos + 1:
            raise SCCPError("truncated global title")
        nai = raw[pos] & 0x7F
        digits = decode_digits(raw[pos + 1:], bool(raw[pos] & 0x80))
        return SCCPAddress(digits, ssn, pc, route_on_gt, 0, 1, nai)
    raise SCCPError(f"global title indicator {gti} not supported")


def _variable(parts: list[bytes]) -> tuple[bytes, bytes]:
    """@return: the pointers and the length-prefixed variable parts."""
    n = len(parts)
    pointers, body, offset = [], b"", n
    for i, p in enumerate(parts):
        if len(p) > 255:
            raise ValueError("variable part longer than 255 bytes")
        pointers.append(offset - i)
        body += bytes((len(p),)) + p
        offset += 1 + len(p)
    return bytes(pointers), body


def encode(u: Unitdata) -> bytes:
    """@return: the bytes of a UDT, UDTS, XUDT or XUDTS."""
    called, calling = encode_address(u.called), encode_address(u.calling)
    if u.kind in (UDT, XUDT):
        first = u.protocol_class | (RETURN_ON_ERROR if u.return_on_error
                                    else 0)
    else:
        first = u.cause or 0
    if u.kind in (UDT, UDTS):
        pointers, body = _variable([called, calling, u.data])
        return bytes((u.kind, first)) + pointers + body
    optional = b""
    if u.segmentation is not None:
        s = u.segmentation
        optional = bytes((OPT_SEGMENTATION, 4,
                          (0x80 if s.first else 0) | (0x40 if s.in_sequence
                                                      else 0) | s.remaining)) \
            + s.reference.to_bytes(3, "big") + bytes((OPT_END,))
    pointers, body = _variable([called, calling, u.data])
    # Four pointers: the optional part's pointer counts from its own byte.
    opt_pointer = (1 + len(body)) if optional else 0
    hops = HOP_COUNTER if u.hop_counter is None else u.hop_counter
    return (bytes((u.kind, first, hops)) + bytes(p + 1 for p in pointers)
            + bytes((opt_pointer,)) + body + optional)


def _part(buf: bytes, pointer_at: int) -> bytes:
    if pointer_at >= len(buf):
        raise SCCPError("truncated pointers")
    start = pointer_at + buf[pointer_at]
    if buf[pointer_at] == 0 or start >= len(buf):
        raise SCCPError("pointer out of the message")
    end = start + 1 + buf[start]
    if end > len(buf):
        raise SCCPError("variable part beyond the message")
    return buf[start + 1:end]


def decode(buf: bytes) -> Unitdata:
    """
    Decode a connectionless message.

    @raise SCCPError: malformed, or not UDT/UDTS/XUDT/XUDTS.
    """
    if len(buf) < 5:
        raise SCCPError("too short")
    kind = buf[0]
    if kind in (UDT, UDTS):
        called = decode_address(_part(buf, 2))
        calling = decode_address(_part(buf, 3))
        data = _part(buf, 4)
        if kind == UDT:
            return Unitdata(kind, called, calling, data, buf[1] & 0x0F,
                            bool(buf[1] & RETURN_ON_ERROR))
        return Unitdata(kind, called, calling, data, cause=buf[1])
    if kind not in (XUDT, XUDTS):
        raise SCCPError(f"message type {kind:#x} not handled")
    if len(buf) < 7:
        raise SCCPError("too short")
    called = decode_address(_part(buf, 3))
    calling = decode_address(_part(buf, 4))
    data = _part(buf, 5)
    seg = None
    if buf[6]:
        pos = 6 + buf[6]
        while pos < len(buf) and buf[pos] != OPT_END:
            if pos + 2 > len(buf) or pos + 2 + buf[pos + 1] > len(buf):
                raise SCCPError("truncated optional part")
            name, length = buf[pos], buf[pos + 1]
            value = buf[pos + 2:pos + 2 + length]
            if name == OPT_SEGMENTATION:
                if length != 4:
                    raise SCCPError("segmentation length")
                seg = Segmentation(bool(value[0] & 0x80),
                                   bool(value[0] & 0x40), value[0] & 0x0F,
                                   int.from_bytes(value[1:4], "big"))
            pos += 2 + length
    if kind == XUDT:
        return Unitdata(kind, called, calling, data, buf[1] & 0x0F,
                        bool(buf[1] & RETURN_ON_ERROR), None, buf[2], seg)
    return Unitdata(kind, called, calling, data, cause=buf[1],
                    hop_counter=buf[2], segmentation=seg)


def segment(called: SCCPAddress, calling: SCCPAddress, data: bytes,
            protocol_class: int, return_on_error: bool,
            reference: int) -> list[bytes]:
    """
    The message(s) that carry C{data}: one UDT when it fits in
    L{MAX_MESSAGE}, else XUDT segments (Q.714 4.1.1.2) each within it.

    @raise ValueError: longer than L{MAX_SEGMENTED}.
    """
    udt = Unitdata(UDT, called, calling, data, protocol_class,
                   return_on_error)
    if len(data) <= 255:
        raw = encode(udt)
        if len(raw) <= MAX_MESSAGE:
            return [raw]
    if len(data) > MAX_SEGMENTED:
        raise ValueError(f"{len(data)} bytes of user data: more than "
                         f"{MAX_SEGMENTED}")
    empty = encode(Unitdata(XUDT, called, calling, b"", protocol_class,
                            return_on_error, segmentation=Segmentation(
                                True, False, 0, 0)))
    room = min(255, MAX_MESSAGE - len(empty))
    if room < 1:
        raise ValueError("addresses leave no room for data")
    count = -(-len(data) // room)
    if count > 16:
        raise ValueError("more than 16 segments")
    size = -(-len(data) // count)
    out = []
    for i in range(count):
        chunk = data[i * size:(i + 1) * size]
        out.append(encode(Unitdata(
            XUDT, called, calling, chunk, protocol_class, return_on_error,
            segmentation=Segmentation(i == 0, protocol_class == 1,
                                      count - 1 - i, reference))))
    return out
