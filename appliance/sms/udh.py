# -*- test-case-name: tests.sms.test_udh -*-
"""
User data headers (3GPP TS 23.040 section 9.2.3.24) and SMPP SAR TLVs:
where a part of a concatenated message says which message it belongs to.

A C{short_message} whose C{esm_class} has the UDHI bit (0x40) starts with a
header: one length octet (UDHL), then information elements, each an
identifier (IEI), a length and data. Concatenation uses IEI 0x00 (8-bit
reference) or IEI 0x08 (16-bit reference); other elements are kept as they
are. SMPP peers may instead send the same triple as the C{sar_msg_ref_num},
C{sar_total_segments} and C{sar_segment_seqnum} TLVs.

Pure: no Twisted, no ZODB.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

__all__ = [
    "UDHI", "IEI_CONCAT_8BIT", "IEI_CONCAT_16BIT",
    "ConcatenationError", "MalformedUDH", "InformationElement", "Concatenation",
    "parse_udh", "split_user_data", "build_udh", "concatenation_udh",
    "concatenation_from_udh", "concatenation_from_sar",
]

#: The UDHI bit of C{esm_class}: C{short_message} starts with a header.
UDHI = 0x40
#: Concatenated short messages, 8-bit reference number.
IEI_CONCAT_8BIT = 0x00
#: Concatenated short messages, 16-bit reference number.
IEI_CONCAT_16BIT = 0x08


class ConcatenationError(ValueError):
    """
    A concatenation triple that cannot be right: total 0, sequence 0,
    sequence beyond the total, or a reference out of range.
    """


class MalformedUDH(ConcatenationError):
    """
    A user data header that cannot be parsed: its length runs beyond the
    data, or an element is truncated or has the wrong size.
    """


class InformationElement(NamedTuple):
    """
    One element of a user data header.

    @ivar iei: the information element identifier.
    @ivar data: its data octets.
    """

    iei: int
    data: bytes


class Concatenation(NamedTuple):
    """
    Which concatenated message a part belongs to, and where.

    @ivar reference: the sender's reference number of the whole message.
    @ivar total: how many parts the message has (1..255).
    @ivar sequence: this part's number, 1-based.
    @ivar wide: whether the reference is 16-bit (IEI 0x08, or SAR TLVs).
    """

    reference: int
    total: int
    sequence: int
    wide: bool = False


def _check_triple(reference: int, total: int, sequence: int, wide: bool) -> Concatenation:
    limit = 0xFFFF if wide else 0xFF
    if not 0 <= reference <= limit:
        raise ConcatenationError(f"reference {reference} out of range 0..{limit}")
    if not 1 <= total <= 0xFF:
        raise ConcatenationError(f"total number of parts {total} is not 1..255")
    if not 1 <= sequence <= total:
        raise ConcatenationError(f"part number {sequence} is not 1..{total}")
    return Concatenation(reference, total, sequence, wide)


def parse_udh(short_message: bytes) -> tuple[tuple[InformationElement, ...], bytes]:
    """
    Split a C{short_message} that starts with a user data header.

    @param short_message: the octets, header first.
    @return: the information elements in order (unknown ones included) and
        the octets after the header.
    @raise MalformedUDH: if the message is empty, the header length runs
        beyond the data, or an element is truncated.
    """
    if not short_message:
        raise MalformedUDH("UDHI set but short_message is empty")
    udhl = short_message[0]
    if 1 + udhl > len(short_message):
        raise MalformedUDH(
            f"UDH length {udhl} runs beyond the {len(short_message) - 1} octets that follow")
    header = short_message[1:1 + udhl]
    elements = []
    i = 0
    while i < len(header):
        if i + 2 > len(header):
            raise MalformedUDH(f"information element truncated at header octet {i}")
        iei, length = header[i], header[i + 1]
        if i + 2 + length > len(header):
            raise MalformedUDH(
                f"information element 0x{iei:02X} of length {length} runs beyond the header")
        elements.append(InformationElement(iei, bytes(header[i + 2:i + 2 + length])))
        i += 2 + length
    return tuple(elements), bytes(short_message[1 + udhl:])


def split_user_data(short_message: bytes, esm_class: int
                    ) -> tuple[tuple[InformationElement, ...], bytes, int]:
    """
    Split a C{short_message} by its C{esm_class}.

    @param short_message: the PDU's C{short_message} (or C{message_payload}).
    @param esm_class: the PDU's C{esm_class}.
    @return: the header's elements (empty without UDHI), the body, and the
        header's length in octets including UDHL (0 without UDHI), which
        L{appliance.sms.text.decode_short_message} needs for packed text.
    @raise MalformedUDH: see L{parse_udh}.
    """
    if not esm_class & UDHI:
        return (), bytes(short_message), 0
    elements, body = parse_udh(short_message)
    return elements, body, len(short_message) - len(body)


def concatenation_from_udh(elements: Sequence[InformationElement]) -> Concatenation | None:
    """
    Find the concatenation element among a header's elements. If there are
    several, the last one counts (TS 23.040 asks receivers to use the last
    occurrence of a repeated element).

    @param elements: as returned by L{parse_udh}.
    @return: the triple, or C{None} if the header has no concatenation.
    @raise MalformedUDH: for a concatenation element of the wrong size.
    @raise ConcatenationError: for total 0, sequence 0 or sequence > total.
    """
    found = None
    for element in elements:
        if element.iei == IEI_CONCAT_8BIT:
            if len(element.data) != 3:
                raise MalformedUDH(
                    f"8-bit concatenation element has {len(element.data)} octets, not 3")
            found = element
        elif element.iei == IEI_CONCAT_16BIT:
            if len(element.data) != 4:
                raise MalformedUDH(
                    f"16-bit concatenation element has {len(element.data)} octets, not 4")
            found = element
    if found is None:
        return None
    data = found.data
    if found.iei == IEI_CONCAT_8BIT:
        return _check_triple(data[0], data[1], data[2], False)
    return _check_triple(int.from_bytes(data[:2], "big"), data[2], data[3], True)


def concatenation_from_sar(msg_ref_num: int | None, total_segments: int | None,
                           segment_seqnum: int | None) -> Concatenation | None:
    """
    The concatenation triple from SMPP SAR TLVs.

    @param msg_ref_num: C{sar_msg_ref_num} (16-bit), or C{None} if absent.
    @param total_segments: C{sar_total_segments}, or C{None} if absent.
    @param segment_seqnum: C{sar_segment_seqnum}, or C{None} if absent.
    @return: the triple (C{wide} is C{True}), or C{None} if all three are absent.
    @raise ConcatenationError: if only some are present or the values are
        out of range.
    """
    values = (msg_ref_num, total_segments, segment_seqnum)
    if all(v is None for v in values):
        return None
    if any(v is None for v in values):
        raise ConcatenationError(
            "sar_msg_ref_num, sar_total_segments and sar_segment_seqnum"
            " must be present together")
    return _check_triple(msg_ref_num, total_segments, segment_seqnum, True)


def build_udh(elements: Sequence[InformationElement]) -> bytes:
    """
    Encode information elements as a user data header, UDHL first.

    @param elements: the elements.
    @return: the header octets.
    @raise MalformedUDH: if an element or the header is too long.
    """
    body = bytearray()
    for element in elements:
        if not 0 <= element.iei <= 0xFF or len(element.data) > 0xFF:
            raise MalformedUDH(f"cannot encode element {element!r}")
        body += bytes((element.iei, len(element.data))) + element.data
    if len(body) > 0xFF:
        raise MalformedUDH(f"header of {len(body)} octets is too long")
    return bytes((len(body),)) + bytes(body)


def concatenation_udh(reference: int, total: int, sequence: int, *, wide: bool = False) -> bytes:
    """
    The user data header of one part of a concatenated message.

    @param reference: the message's reference number (0..255, or 0..65535
        when C{wide}).
    @param total: the number of parts (1..255).
    @param sequence: this part's number (1..total).
    @param wide: use the 16-bit reference element (IEI 0x08) instead of the
        8-bit one (IEI 0x00).
    @return: 6 octets (8-bit reference) or 7 octets (16-bit reference).
    @raise ConcatenationError: for values out of range.
    """
    _check_triple(reference, total, sequence, wide)
    if wide:
        element = InformationElement(
            IEI_CONCAT_16BIT, reference.to_bytes(2, "big") + bytes((total, sequence)))
    else:
        element = InformationElement(IEI_CONCAT_8BIT, bytes((reference, total, sequence)))
    return build_udh([element])
