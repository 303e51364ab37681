# -*- test-case-name: tests.sigtran.test_tcapcodec -*-
"""
The subset of ASN.1 BER (X.690) that TCAP and MAP need, by hand.

Tags are kept as the integer of their identifier octets (C{0x62} for a
TCAP Begin, C{0x9F46} for a two-octet context tag), so a decoder compares
integers instead of building tag objects.  Decoding accepts definite and
indefinite lengths; encoding always writes definite lengths (DER-like),
which is what pycrate, the test oracle, writes too.

Nothing here imports Twisted.
"""
from __future__ import annotations

__all__ = ["BERError", "tlv", "decode", "children", "child_map",
           "encode_int", "decode_int", "encode_oid", "decode_oid",
           "TAG_BOOLEAN", "TAG_INTEGER", "TAG_OCTETS", "TAG_NULL",
           "TAG_OID", "TAG_ENUMERATED", "TAG_SEQUENCE"]

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BITS = 0x03
TAG_OCTETS = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_EXTERNAL = 0x28
TAG_ENUMERATED = 0x0A
TAG_SEQUENCE = 0x30

#: Nesting deeper than this is refused (hostile input).
MAX_DEPTH = 32


class BERError(ValueError):
    """The octets are not the BER this decoder expects."""


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, value: bytes) -> bytes:
    """
    @param tag: the identifier octets as an integer.
    @param value: the contents octets.
    @return: the encoded element with a definite length.
    """
    head = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    n = len(value)
    if n < 0x80:
        return head + bytes((n,)) + value
    return head + _length(n) + value


def decode(buf: bytes, pos: int = 0, end: int | None = None,
           depth: int = 0) -> tuple[int, int, int, int]:
    """
    Read one element header.

    @param buf: the octets.
    @param pos: where the element starts.
    @param end: where the enclosing contents end (default: C{len(buf)}).
    @return: C{(tag, start, stop, next)}: the contents are
        C{buf[start:stop]} and the next element starts at C{next}.
    @raise BERError: truncated or malformed element.
    """
    if end is None:
        end = len(buf)
    if pos >= end:
        raise BERError("element expected")
    first = buf[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        for _ in range(4):
            if pos >= end:
                raise BERError("truncated tag")
            octet = buf[pos]
            tag = (tag << 8) | octet
            pos += 1
            if not octet & 0x80:
                break
        else:
            raise BERError("tag too long")
    if pos >= end:
        raise BERError("truncated length")
    n = buf[pos]
    pos += 1
    if n < 0x80:
        stop = pos + n
    elif n == 0x80:
        if not first & 0x20:
            raise BERError("indefinite length on a primitive element")
        if depth >= MAX_DEPTH:
            raise BERError("nesting too deep")
        inner = pos
        while True:
            if inner + 2 > end:
                raise BERError("missing end-of-contents")
            if buf[inner] == 0 and buf[inner + 1] == 0:
                return tag, pos, inner, inner + 2
            inner = decode(buf, inner, end, depth + 1)[3]
    else:
        k = n & 0x7F
        if k > 4 or pos + k > end:
            raise BERError("bad length")
        stop = pos + int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if stop > end:
        raise BERError("element longer than its container")
    return tag, pos, stop, stop


def children(buf: bytes, start: int = 0, stop: int | None = None,
             ) -> list[tuple[int, int, int, int]]:
    """
    @return: the elements between C{start} and C{stop} as
        C{(tag, start, stop, head)}: contents from C{start} to C{stop},
        the whole element from C{head} to C{stop}.
    @raise BERError: a malformed element.
    """
    if stop is None:
        stop = len(buf)
    out = []
    pos = start
    while pos < stop:
        head = pos
        tag, s, e, pos = decode(buf, pos, stop)
        out.append((tag, s, e, head))
    return out


def child_map(buf: bytes, start: int, stop: int) -> dict[int, bytes]:
    """
    @return: the elements between C{start} and C{stop} by tag (the first
        of each tag), as their contents.
    """
    out: dict[int, bytes] = {}
    for tag, s, e, _ in children(buf, start, stop):
        out.setdefault(tag, buf[s:e])
    return out


def encode_int(value: int) -> bytes:
    """@return: the minimal two's complement contents of an INTEGER."""
    return value.to_bytes(max(1, (value + (value < 0)).bit_length() // 8 + 1),
                          "big", signed=True)


def decode_int(value: bytes) -> int:
    """@raise BERError: empty or over-long INTEGER contents."""
    if not 0 < len(value) <= 8:
        raise BERError("bad INTEGER")
    return int.from_bytes(value, "big", signed=True)


def encode_oid(arcs: tuple[int, ...]) -> bytes:
    """@return: the contents of an OBJECT IDENTIFIER."""
    out = bytearray()
    for n, arc in enumerate((arcs[0] * 40 + arcs[1],) + tuple(arcs[2:])):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def decode_oid(value: bytes) -> tuple[int, ...]:
    """@raise BERError: malformed OBJECT IDENTIFIER contents."""
    if not value or value[-1] & 0x80 or len(value) > 32:
        raise BERError("bad OBJECT IDENTIFIER")
    arcs = []
    arc = 0
    for octet in value:
        arc = (arc << 7) | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(arc)
            arc = 0
    first = arcs[0]
    head = (0, first) if first < 40 else (1, first - 40) if first < 80 \
        else (2, first - 80)
    return head + tuple(arcs[1:])
