# -*- test-case-name: tests.sms.test_text -*-
"""
Choosing an alphabet for outgoing SMS text (SIP to SMS) and splitting long
text into concatenated parts.

The rules:

  - GSM 03.38 (C{data_coding} 0) when every character is in the default
    alphabet or its extension table, otherwise UCS-2 (C{data_coding} 8).
  - One message holds 160 septets (extension characters take two), or 70
    UTF-16 units (140 octets; an astral character takes two units).
  - Longer text is split into parts that each carry a user data header with
    the concatenation reference, total and sequence. With the usual 8-bit
    reference (6-octet header) a part holds 153 septets or 67 UTF-16 units;
    with a 16-bit reference (7-octet header) 152 septets or 66 units.
  - A part never ends between an escape and its extension code, nor between
    the two halves of a surrogate pair; such a part is one unit shorter.

GSM 7-bit parts are unpacked (one septet per octet) unless C{packed=True}.
Packed text carries no septet count in SMPP, so packed parts are padded
with CR as TS 23.038 section 6.1.2.3.1 describes, and a part other than the
last never ends with C{@} or CR where a receiver would take it for padding.
Only a final C{@} or CR of the whole text can still be lost that way (for
one text length in eight); unpacked parts have no such limit.
The caller owns the reference counter (one per destination) and passes the
number in. Pure: no Twisted, no ZODB.
"""
from __future__ import annotations

from typing import NamedTuple

from appliance.sms.text import (
    GSM7_ESCAPE, SMSC_DEFAULT_ALPHABET, UCS2, TextCodingError, gsm7_ambiguous,
    gsm7_encode, gsm7_fill_bits, gsm7_fits, gsm7_pack, ucs2_encode)
from appliance.sms.udh import UDHI, ConcatenationError, concatenation_udh

__all__ = [
    "GSM7_SINGLE_SEPTETS", "UCS2_SINGLE_OCTETS", "TextTooLong", "SMSEncoding",
    "gsm7_part_septets", "ucs2_part_units", "split_septets", "split_utf16",
    "encode_for_sms",
]

#: Septets in one unconcatenated GSM 7-bit message.
GSM7_SINGLE_SEPTETS = 160
#: Octets of user data in one message (70 UCS-2 units).
UCS2_SINGLE_OCTETS = 140
_USER_DATA_BITS = UCS2_SINGLE_OCTETS * 8
_CONCAT_UDH_OCTETS = {False: 6, True: 7}
_PAD_SEPTETS = (0x00, 0x0D)  # '@' and CR: what padding looks like


class TextTooLong(TextCodingError):
    """
    The text needs more parts than allowed (at most 255 with a UDH).
    """


class SMSEncoding(NamedTuple):
    """
    Outgoing text ready for C{submit_sm}/C{deliver_sm}.

    @ivar data_coding: 0 (GSM 03.38) or 8 (UCS-2).
    @ivar segments: one C{short_message} per part; when there are several,
        each starts with its user data header.
    @ivar parts: the number of parts.
    """

    data_coding: int
    segments: list[bytes]
    parts: int

    @property
    def esm_class_flags(self) -> int:
        """
        @return: the bits to set in C{esm_class}: L{UDHI} for a concatenated
            message, else 0.
        """
        return UDHI if self.parts > 1 else 0


def gsm7_part_septets(wide_reference: bool = False) -> int:
    """
    @param wide_reference: whether parts use the 16-bit reference header.
    @return: septets of text in one part of a concatenated message (153 or 152).
    """
    udh_bits = _CONCAT_UDH_OCTETS[wide_reference] * 8
    return (_USER_DATA_BITS - udh_bits) // 7


def ucs2_part_units(wide_reference: bool = False) -> int:
    """
    @param wide_reference: whether parts use the 16-bit reference header.
    @return: UTF-16 units of text in one part of a concatenated message (67 or 66).
    """
    return (UCS2_SINGLE_OCTETS - _CONCAT_UDH_OCTETS[wide_reference]) // 2


def split_septets(septets: bytes, size: int, fill_bits: int | None = None) -> list[bytes]:
    """
    Cut unpacked GSM septets into chunks of at most C{size}, never between
    an escape and the code it introduces.

    @param septets: as returned by L{appliance.sms.text.gsm7_encode}.
    @param size: the largest chunk (at least 2).
    @param fill_bits: for chunks that will be packed after a header with
        this many fill bits: a chunk other than the last is also never
        ended by C{@} or CR in a position a receiver would take for padding
        (see L{appliance.sms.text.gsm7_ambiguous}).
    @return: the chunks, at least one (empty for empty input).
    """
    chunks = []
    start = 0
    while len(septets) - start > size:
        end = start + size
        # Every escape in gsm7_encode output starts a pair: its code is
        # never itself the escape value.
        if septets[end - 1] == GSM7_ESCAPE:
            end -= 1
        # An extension code is never 0x00 or 0x0D, so this backs off a basic
        # character and cannot leave an escape at the end.
        if (fill_bits is not None and septets[end - 1] in _PAD_SEPTETS
                and gsm7_ambiguous(end - start, fill_bits)):
            end -= 1
        chunks.append(septets[start:end])
        start = end
    chunks.append(septets[start:])
    return chunks


def split_utf16(payload: bytes, units: int) -> list[bytes]:
    """
    Cut UTF-16BE octets into chunks of at most C{units} code units, never
    between the halves of a surrogate pair.

    @param payload: UTF-16BE octets (even length).
    @param units: the largest chunk in code units (at least 2).
    @return: the chunks, at least one (empty for empty input).
    """
    chunks = []
    start = 0
    size = units * 2
    while len(payload) - start > size:
        end = start + size
        if 0xD8 <= payload[end - 2] <= 0xDB:  # high surrogate last: keep the pair
            end -= 2
        chunks.append(payload[start:end])
        start = end
    chunks.append(payload[start:])
    return chunks


def encode_for_sms(text: str, reference: int = 0, *, wide_reference: bool = False,
                   packed: bool = False, max_parts: int = 255,
                   ucs2: bool = False) -> SMSEncoding:
    """
    Encode text for SMS: pick the alphabet, split into parts, add headers.

    @param text: the text (for example the body of a SIP MESSAGE).
    @param reference: the concatenation reference for this message, from
        the caller's counter for the destination (0..255, or 0..65535 with
        C{wide_reference}); unused when the text fits one message.
    @param wide_reference: use the 16-bit reference element (IEI 0x08).
    @param packed: pack GSM 7-bit parts (with the fill bits a header needs)
        instead of one septet per octet.
    @param max_parts: refuse text needing more parts (at most 255).
    @param ucs2: send it in UCS-2 (data_coding 8) even if it fits GSM
        7-bit (the sender asked for that alphabet).
    @return: the data coding, the segments and their number.
    @raise TextTooLong: if more than C{max_parts} parts are needed.
    @raise appliance.sms.udh.ConcatenationError: for a reference out of range.
    @raise appliance.sms.text.UnencodableCharacter: for a lone surrogate in C{text}.
    """
    if not 1 <= max_parts <= 255:
        raise ValueError(f"max_parts must be 1..255, not {max_parts}")
    limit = 0xFFFF if wide_reference else 0xFF
    if not isinstance(reference, int) or not 0 <= reference <= limit:
        raise ConcatenationError(f"reference {reference!r} out of range 0..{limit}")
    if not ucs2 and gsm7_fits(text):
        data_coding = SMSC_DEFAULT_ALPHABET
        septets = gsm7_encode(text)
        if len(septets) <= GSM7_SINGLE_SEPTETS:
            bodies = [septets]
        else:
            fill = gsm7_fill_bits(_CONCAT_UDH_OCTETS[wide_reference]) if packed else None
            bodies = split_septets(septets, gsm7_part_septets(wide_reference), fill)
    else:
        data_coding = UCS2
        payload = ucs2_encode(text)
        if len(payload) <= UCS2_SINGLE_OCTETS:
            bodies = [payload]
        else:
            bodies = split_utf16(payload, ucs2_part_units(wide_reference))
    total = len(bodies)
    if total > max_parts:
        raise TextTooLong(f"text needs {total} parts, more than {max_parts}")
    if total == 1:
        body = bodies[0]
        if packed and data_coding == SMSC_DEFAULT_ALPHABET:
            body = gsm7_pack(body, cr_pad=True)
        return SMSEncoding(data_coding, [body], 1)
    segments = []
    for sequence, body in enumerate(bodies, 1):
        udh = concatenation_udh(reference, total, sequence, wide=wide_reference)
        if packed and data_coding == SMSC_DEFAULT_ALPHABET:
            body = gsm7_pack(body, gsm7_fill_bits(len(udh)), cr_pad=True)
        segments.append(udh + body)
    return SMSEncoding(data_coding, segments, total)
