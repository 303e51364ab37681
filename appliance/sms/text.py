# -*- test-case-name: tests.sms.test_text -*-
"""
Pure SMS text codecs: GSM 03.38, IA5, Latin-1, UCS-2.

Shared by SMPP, the SIGTRAN TPDUs and the HTTP API. Nothing here imports
Twisted or ZODB; the SMPP server and client call these functions on the
payload of C{submit_sm}, C{data_sm} and C{deliver_sm}.

GSM 7-bit text appears in two forms:

  - B{unpacked}: one septet per octet. This is what C{data_coding} 0 means
    on our SMPP interfaces (the "SMSC default alphabet" is GSM 03.38 here),
    because that is what most ESMEs send; the SMSC packs it for the radio
    side. L{gsm7_encode} and L{gsm7_decode} work on this form.
  - B{packed}: eight septets in seven octets, least significant bit first,
    as in 3GPP TS 23.038 section 6.1.2.1.1, with fill bits after a user data
    header so that the first septet starts on a septet boundary
    (L{gsm7_pack}, L{gsm7_unpack}, L{gsm7_fill_bits}).

UCS-2 (C{data_coding} 8) is read and written as UTF-16 big-endian, so that
characters outside the Basic Multilingual Plane (emoji) travel as surrogate
pairs, as handsets do.
"""
from __future__ import annotations

import enum
from typing import Iterable

__all__ = [
    "Alphabet", "TextCodingError", "UnencodableCharacter", "UnsupportedCoding",
    "SMSC_DEFAULT_ALPHABET", "IA5_ASCII", "OCTET_UNSPECIFIED", "LATIN_1",
    "OCTET_UNSPECIFIED_COMMON", "CYRILLIC", "ISO_8859_8", "UCS2", "ISO_2022_JP",
    "GSM7_ESCAPE", "GSM7_BASIC", "GSM7_EXTENSION",
    "alphabet_for", "gsm7_encode", "gsm7_decode", "gsm7_pack", "gsm7_unpack",
    "gsm7_fill_bits", "gsm7_ambiguous", "gsm7_fits", "gsm7_length", "latin1_encode",
    "ucs2_encode", "ucs2_decode", "ucs2_length", "repair_surrogates",
    "decode_short_message", "encode_short_message",
]

# SMPP 3.4 section 5.2.19 data_coding values (names as in the spec).
SMSC_DEFAULT_ALPHABET = 0x00
IA5_ASCII = 0x01
OCTET_UNSPECIFIED = 0x02
LATIN_1 = 0x03
OCTET_UNSPECIFIED_COMMON = 0x04
CYRILLIC = 0x06
ISO_8859_8 = 0x07
UCS2 = 0x08
ISO_2022_JP = 0x0A

#: The escape septet that introduces a character of the extension table.
GSM7_ESCAPE = 0x1B
_CR = 0x0D

#: The GSM 03.38 default alphabet, indexed by septet. Position 0x1B is the
#: escape to the extension table and never stands for a character itself.
GSM7_BASIC = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./"
    "0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmno"
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)

#: The default extension table: septet following the escape -> character.
GSM7_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "\u20ac",
}

if len(GSM7_BASIC) != 128:  # pragma: no cover - guards the table literal
    raise AssertionError("GSM 03.38 default table must have 128 entries")

_ENCODE: dict[str, bytes] = {
    ch: bytes((septet,))
    for septet, ch in enumerate(GSM7_BASIC) if septet != GSM7_ESCAPE
}
_ENCODE.update(
    {ch: bytes((GSM7_ESCAPE, code)) for code, ch in GSM7_EXTENSION.items()})


class TextCodingError(ValueError):
    """
    Text could not be encoded or a payload could not be decoded.
    """


class UnencodableCharacter(TextCodingError):
    """
    A character has no representation in the requested alphabet.

    @ivar char: the offending character.
    @ivar position: its index in the text.
    @ivar alphabet: the alphabet that lacks it.
    """

    def __init__(self, char: str, position: int, alphabet: "Alphabet") -> None:
        """
        @param char: the offending character.
        @param position: its index in the text.
        @param alphabet: the alphabet that lacks it.
        """
        self.char = char
        self.position = position
        self.alphabet = alphabet
        super().__init__(
            f"character {char!r} (U+{ord(char):04X}) at position {position}"
            f" is not in the {alphabet.value} alphabet")


class UnsupportedCoding(TextCodingError):
    """
    A C{data_coding} value this node refuses to turn into text: binary
    (8-bit data), reserved, or an alphabet we do not carry. The SMPP server
    answers such a PDU with an error status instead of forwarding garbage.

    @ivar data_coding: the refused value.
    @ivar reason: a short explanation for logs and the status text.
    """

    def __init__(self, data_coding: int, reason: str) -> None:
        """
        @param data_coding: the refused value.
        @param reason: why it is refused.
        """
        self.data_coding = data_coding
        self.reason = reason
        super().__init__(f"data_coding 0x{data_coding:02X} refused: {reason}")


class Alphabet(enum.Enum):
    """
    The text alphabets a C{data_coding} value can select.
    """

    GSM7 = "GSM 03.38 7-bit"
    ASCII = "IA5/ASCII"
    LATIN1 = "ISO-8859-1"
    UCS2 = "UCS-2/UTF-16BE"
    CYRILLIC = "ISO-8859-5"
    HEBREW = "ISO-8859-8"
    ISO2022JP = "ISO-2022-JP"


_SIMPLE_CODINGS = {
    SMSC_DEFAULT_ALPHABET: Alphabet.GSM7,
    IA5_ASCII: Alphabet.ASCII,
    LATIN_1: Alphabet.LATIN1,
    CYRILLIC: Alphabet.CYRILLIC,
    ISO_8859_8: Alphabet.HEBREW,
    UCS2: Alphabet.UCS2,
    ISO_2022_JP: Alphabet.ISO2022JP,
}

_PYTHON_CODECS = {
    Alphabet.ASCII: "ascii",
    Alphabet.LATIN1: "latin-1",
    Alphabet.CYRILLIC: "iso8859_5",
    Alphabet.HEBREW: "iso8859_8",
    Alphabet.ISO2022JP: "iso2022_jp",
}


def alphabet_for(data_coding: int) -> Alphabet:
    """
    Map an SMPP C{data_coding} value to the alphabet of its text.

      - 0x00 GSM 03.38 (unpacked unless the caller says packed), 0x01 IA5,
        0x03 Latin-1, 0x06 Cyrillic, 0x07 Hebrew, 0x08 UCS-2,
        0x0A ISO-2022-JP.
      - 0xC0-0xDF (message waiting groups, discard/store): GSM 03.38;
        0xE0-0xEF (message waiting, store, UCS-2): UCS-2.
      - 0xF0-0xF3 (message class 0-3, default alphabet): GSM 03.38.
    Everything else is refused: 0x02, 0x04 and 0xF4-0xF7 are 8-bit binary
    data, 0xF8-0xFF set a reserved bit, and 0x05, 0x09, 0x0D, 0x0E and the
    reserved range are alphabets we do not carry.

    @param data_coding: the C{data_coding} octet.
    @return: the alphabet.
    @raise UnsupportedCoding: for binary, reserved or unknown values.
    """
    if not isinstance(data_coding, int) or not 0 <= data_coding <= 0xFF:
        raise UnsupportedCoding(0, f"not an octet: {data_coding!r}")
    if data_coding in _SIMPLE_CODINGS:
        return _SIMPLE_CODINGS[data_coding]
    if data_coding in (OCTET_UNSPECIFIED, OCTET_UNSPECIFIED_COMMON):
        raise UnsupportedCoding(data_coding, "8-bit binary data")
    if 0xC0 <= data_coding <= 0xDF:
        return Alphabet.GSM7
    if 0xE0 <= data_coding <= 0xEF:
        return Alphabet.UCS2
    if 0xF0 <= data_coding <= 0xFF:
        if data_coding & 0x08:
            raise UnsupportedCoding(data_coding, "reserved bit set")
        if data_coding & 0x04:
            raise UnsupportedCoding(data_coding, "8-bit binary data (message class)")
        return Alphabet.GSM7
    raise UnsupportedCoding(data_coding, "alphabet not supported")


def gsm7_encode(text: str) -> bytes:
    """
    Encode text as unpacked GSM 03.38 septets, one per octet; a character of
    the extension table becomes the escape septet followed by its code.

    @param text: the text.
    @return: the septets.
    @raise UnencodableCharacter: for the first character outside the default
        alphabet and its extension table.
    """
    out = bytearray()
    for position, ch in enumerate(text):
        try:
            out += _ENCODE[ch]
        except KeyError:
            raise UnencodableCharacter(ch, position, Alphabet.GSM7) from None
    return bytes(out)


def gsm7_decode(septets: bytes) -> str:
    """
    Decode unpacked GSM 03.38 septets.

    As TS 23.038 asks of a receiver, an escape followed by a code the
    extension table does not define shows the default-alphabet character of
    that code; an escape followed by another escape, or left dangling at the
    end, shows as a space.

    @param septets: one septet per octet.
    @return: the text.
    @raise TextCodingError: if an octet is above 0x7F.
    """
    out = []
    i = 0
    n = len(septets)
    while i < n:
        s = septets[i]
        if s > 0x7F:
            raise TextCodingError(
                f"octet 0x{s:02X} at position {i} is not a GSM 7-bit septet")
        if s != GSM7_ESCAPE:
            out.append(GSM7_BASIC[s])
            i += 1
            continue
        if i + 1 >= n:
            out.append(" ")
            break
        code = septets[i + 1]
        if code > 0x7F:
            raise TextCodingError(
                f"octet 0x{code:02X} at position {i + 1} is not a GSM 7-bit septet")
        if code in GSM7_EXTENSION:
            out.append(GSM7_EXTENSION[code])
        elif code == GSM7_ESCAPE:
            out.append(" ")
        else:
            out.append(GSM7_BASIC[code])
        i += 2
    return "".join(out)


def _check_fill(fill_bits: int) -> None:
    if not isinstance(fill_bits, int) or not 0 <= fill_bits <= 6:
        raise TextCodingError(f"fill_bits must be 0..6, not {fill_bits!r}")


def gsm7_pack(septets: Iterable[int], fill_bits: int = 0, *, cr_pad: bool = False) -> bytes:
    """
    Pack septets into octets as in TS 23.038 section 6.1.2.1.1: the first
    septet goes into the least significant bits of the first octet, after
    C{fill_bits} zero bits.

    @param septets: values 0..0x7F (for example the result of L{gsm7_encode}).
    @param fill_bits: zero bits before the first septet (0..6), as needed
        after a user data header; see L{gsm7_fill_bits}.
    @param cr_pad: when the last octet would end with seven spare bits,
        fill them with a CR septet instead of zeros (TS 23.038 section
        6.1.2.3.1), so a receiver that does not know the septet count sees
        no stray C{@}.
    @return: the packed octets, C{ceil((fill_bits + 7 * n) / 8)} of them.
    @raise TextCodingError: for a value above 0x7F or bad C{fill_bits}.
    """
    _check_fill(fill_bits)
    acc = 0
    shift = fill_bits
    for position, s in enumerate(septets):
        if not 0 <= s <= 0x7F:
            raise TextCodingError(
                f"value 0x{s:02X} at position {position} is not a septet")
        acc |= s << shift
        shift += 7
    if cr_pad and shift > fill_bits and shift % 8 == 1:
        acc |= _CR << shift
        shift += 7
    return acc.to_bytes((shift + 7) // 8, "little") if shift > fill_bits else b""


def gsm7_unpack(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """
    Unpack packed GSM 7-bit octets into septets, one per octet.

    Without C{count} every whole septet is returned, except that a final
    septet lying in what would be the seven spare bits of the octet before
    is dropped if it is zero or CR: that is padding (TS 23.038 section
    6.1.2.3.1). The packed form cannot tell such padding from a real final
    C{@} or CR in that position, so those are lost; L{gsm7_ambiguous} says
    which lengths are affected.

    @param data: the packed octets.
    @param count: how many septets to take, or C{None} for all.
    @param fill_bits: zero bits before the first septet (0..6).
    @return: the septets.
    @raise TextCodingError: if C{count} septets do not fit in C{data}.
    """
    _check_fill(fill_bits)
    available = (len(data) * 8 - fill_bits) // 7 if data else 0
    if count is None:
        count = available
        drop_padding = gsm7_ambiguous(count, fill_bits)
    else:
        if not isinstance(count, int) or count < 0:
            raise TextCodingError(f"septet count must be >= 0, not {count!r}")
        if count > available:
            raise TextCodingError(
                f"{count} septets do not fit in {len(data)} octets"
                f" with {fill_bits} fill bits")
        drop_padding = False
    acc = int.from_bytes(data, "little") >> fill_bits
    out = bytes((acc >> (7 * i)) & 0x7F for i in range(count))
    if drop_padding and out[-1] in (0, _CR):
        out = out[:-1]
    return out


def gsm7_ambiguous(count: int, fill_bits: int = 0) -> bool:
    """
    Whether packed text of C{count} septets ends in a position that padding
    could also fill: C{count - 1} septets leave exactly seven spare bits,
    so the last septet, if C{@} (zero) or CR, is taken for padding by
    L{gsm7_unpack} without a count.

    @param count: septets of text.
    @param fill_bits: fill bits before the first septet.
    @return: C{True} if a final C{@} or CR would be read as padding.
    """
    return count >= 2 and ((count - 1) * 7 + fill_bits) % 8 == 1


def gsm7_fill_bits(udh_length: int) -> int:
    """
    The fill bits between a user data header and packed GSM 7-bit text.

    @param udh_length: octets of the header including its length octet
        (C{UDHL + 1}), or 0 without a header.
    @return: 0..6.
    """
    return (7 - (udh_length * 8) % 7) % 7


def gsm7_fits(text: str) -> bool:
    """
    @param text: the text.
    @return: whether every character is in the GSM 03.38 default alphabet or
        its extension table.
    """
    return all(ch in _ENCODE for ch in text)


def gsm7_length(text: str) -> int:
    """
    @param text: the text.
    @return: its length in septets; extension characters count two.
    @raise UnencodableCharacter: for a character outside GSM 03.38.
    """
    total = 0
    for position, ch in enumerate(text):
        code = _ENCODE.get(ch)
        if code is None:
            raise UnencodableCharacter(ch, position, Alphabet.GSM7)
        total += len(code)
    return total


def latin1_encode(text: str) -> bytes:
    """
    @param text: the text.
    @return: its ISO-8859-1 octets (C{data_coding} 3).
    @raise UnencodableCharacter: for a character above U+00FF.
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as e:
        raise UnencodableCharacter(text[e.start], e.start, Alphabet.LATIN1) from None


def ucs2_encode(text: str) -> bytes:
    """
    @param text: the text.
    @return: UTF-16BE octets; astral characters become surrogate pairs.
    @raise UnencodableCharacter: for a lone surrogate code point in C{text}.
    """
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as e:
        raise UnencodableCharacter(text[e.start], e.start, Alphabet.UCS2) from None


def ucs2_length(text: str) -> int:
    """
    @param text: the text.
    @return: its length in UTF-16 code units (an astral character counts 2).
    """
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def repair_surrogates(text: str) -> str:
    """
    Join surrogate code points that form a pair into one character and
    replace any surrogate left alone with U+FFFD, so that the text can be
    encoded as UTF-8.

    @param text: text that may hold surrogate code points (for example
        parts of a UCS-2 message split inside a pair, joined back).
    @return: the repaired text.
    """
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


def ucs2_decode(payload: bytes, *, partial: bool = False) -> str:
    """
    Decode UTF-16BE octets.

    @param payload: the octets; their number must be even.
    @param partial: C{True} for one part of a concatenated message: a
        surrogate at either edge is kept as a lone code point so that
        L{repair_surrogates} can join it with its other half once the parts
        are put together. Otherwise a lone surrogate becomes U+FFFD.
    @return: the text.
    @raise TextCodingError: for an odd number of octets.
    """
    if len(payload) % 2:
        raise TextCodingError(
            f"UCS-2 payload has an odd number of octets ({len(payload)})")
    text = payload.decode("utf-16-be", "surrogatepass")
    return text if partial else repair_surrogates(text)


def decode_short_message(data_coding: int, payload: bytes, *, packed: bool = False,
                         udh_length: int = 0, partial: bool = False) -> str:
    """
    Turn the text part of a C{short_message} or C{message_payload} into text.

    C{data_coding} 0 (and its message class and message waiting forms) is
    GSM 03.38, by default B{unpacked}, one septet per octet, which is what
    most ESMEs send; pass C{packed=True} for a peer configured to send
    packed septets.

    @param data_coding: the PDU's C{data_coding}.
    @param payload: the octets after any user data header.
    @param packed: whether GSM 7-bit text is packed.
    @param udh_length: octets of the user data header that preceded
        C{payload} (C{UDHL + 1}); only used for packed GSM 7-bit text to skip
        the fill bits.
    @param partial: the payload is one part of a concatenated message (see
        L{ucs2_decode}).
    @return: the text.
    @raise UnsupportedCoding: for binary, reserved or unknown codings.
    @raise TextCodingError: for a payload that is not valid in its alphabet.
    """
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        if packed:
            payload = gsm7_unpack(payload, None, gsm7_fill_bits(udh_length))
        return gsm7_decode(payload)
    if alphabet is Alphabet.UCS2:
        return ucs2_decode(payload, partial=partial)
    codec = _PYTHON_CODECS[alphabet]
    try:
        return payload.decode(codec)
    except UnicodeDecodeError as e:
        raise TextCodingError(
            f"payload is not valid {alphabet.value}: octet 0x{payload[e.start]:02X}"
            f" at position {e.start}") from None


def encode_short_message(data_coding: int, text: str) -> bytes:
    """
    The inverse of L{decode_short_message} for one unsegmented payload
    (GSM 7-bit unpacked), for example for the text of a delivery receipt.

    @param data_coding: the C{data_coding} to encode for.
    @param text: the text.
    @return: the payload.
    @raise UnsupportedCoding: for binary, reserved or unknown codings.
    @raise UnencodableCharacter: for a character the alphabet lacks.
    """
    alphabet = alphabet_for(data_coding)
    if alphabet is Alphabet.GSM7:
        return gsm7_encode(text)
    if alphabet is Alphabet.UCS2:
        return ucs2_encode(text)
    try:
        return text.encode(_PYTHON_CODECS[alphabet])
    except UnicodeEncodeError as e:
        raise UnencodableCharacter(text[e.start], e.start, alphabet) from None
