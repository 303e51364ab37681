"""
Tests for L{appliance.sms.text} (codecs) and L{appliance.sms.segment}
(alphabet choice and splitting for SIP to SMS).
"""
import pytest
from hypothesis import given, settings, strategies as st

from appliance.smpp import segment, text
from appliance.sms.segment import (
    SMSEncoding, TextTooLong, encode_for_sms, gsm7_part_septets, split_septets,
    split_utf16, ucs2_part_units)
from appliance.sms.text import (
    Alphabet, TextCodingError, UnencodableCharacter, UnsupportedCoding,
    alphabet_for, decode_short_message, encode_short_message, gsm7_decode,
    gsm7_ambiguous, gsm7_encode, gsm7_fill_bits, gsm7_fits, gsm7_length, gsm7_pack, gsm7_unpack,
    latin1_encode, repair_surrogates, ucs2_decode, ucs2_encode, ucs2_length)
from appliance.sms.udh import UDHI, ConcatenationError, parse_udh, concatenation_from_udh

# GSM 03.38 default alphabet as Unicode code points, septet order, written
# out independently of the module's string literal (0x1B is the escape).
SPEC_BASIC = [
    0x40, 0xA3, 0x24, 0xA5, 0xE8, 0xE9, 0xF9, 0xEC, 0xF2, 0xC7, 0x0A, 0xD8, 0xF8, 0x0D, 0xC5, 0xE5,
    0x394, 0x5F, 0x3A6, 0x393, 0x39B, 0x3A9, 0x3A0, 0x3A8, 0x3A3, 0x398, 0x39E, None, 0xC6, 0xE6,
    0xDF, 0xC9,
    0x20, 0x21, 0x22, 0x23, 0xA4, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x2D, 0x2E, 0x2F,
    *range(0x30, 0x40),
    0xA1, *range(0x41, 0x5B), 0xC4, 0xD6, 0xD1, 0xDC, 0xA7,
    0xBF, *range(0x61, 0x7B), 0xE4, 0xF6, 0xF1, 0xFC, 0xE0,
]
SPEC_EXTENSION = {0x0A: 0x0C, 0x14: 0x5E, 0x28: 0x7B, 0x29: 0x7D, 0x2F: 0x5C,
                  0x3C: 0x5B, 0x3D: 0x7E, 0x3E: 0x5D, 0x40: 0x7C, 0x65: 0x20AC}
BASIC_CHARS = "".join(chr(c) for c in SPEC_BASIC if c is not None)
EXTENSION_CHARS = "".join(chr(c) for c in SPEC_EXTENSION.values())
GSM_CHARS = BASIC_CHARS + EXTENSION_CHARS

gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=500)
# Any Unicode scalar value (surrogate code points excluded), astral included.
unicode_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


def test_basic_table_matches_spec():
    """Every septet of the default alphabet encodes and decodes to the character of TS 23.038."""
    assert len(SPEC_BASIC) == 128
    for septet, code in enumerate(SPEC_BASIC):
        if code is None:
            continue
        assert gsm7_encode(chr(code)) == bytes([septet])
        assert gsm7_decode(bytes([septet])) == chr(code)


def test_extension_table_matches_spec():
    """Each extension character encodes as escape + code and decodes back."""
    for code, point in SPEC_EXTENSION.items():
        assert gsm7_encode(chr(point)) == bytes([0x1B, code])
        assert gsm7_decode(bytes([0x1B, code])) == chr(point)
    assert set(text.GSM7_EXTENSION) == set(SPEC_EXTENSION)


@pytest.mark.parametrize("fill", range(7))
def test_every_character_round_trips_packed(fill):
    """All default and extension characters survive encode, pack, unpack and decode at every fill."""
    septets = gsm7_encode(GSM_CHARS)
    assert len(septets) == 127 + 2 * 10
    packed = gsm7_pack(septets, fill)
    assert len(packed) == (fill + 7 * len(septets) + 7) // 8
    assert gsm7_unpack(packed, len(septets), fill) == septets
    assert gsm7_decode(gsm7_unpack(packed, len(septets), fill)) == GSM_CHARS


def test_pack_known_vector():
    """'hellohello' packs to the octets of the TS 23.038 example."""
    assert gsm7_pack(gsm7_encode("hellohello")) == bytes.fromhex("E8329BFD4697D9EC37")


def test_pack_fill_bits_shift_first_septet():
    """With fill bits, the first septet starts after that many zero bits."""
    assert gsm7_pack(b"\x7f", 1) == b"\xfe"
    assert gsm7_pack(b"\x01", 6) == b"\x40\x00"
    assert gsm7_pack(b"") == b"" and gsm7_pack(b"", 3) == b""


def test_unpack_without_count_drops_padding_only():
    """Without a count, a zero or CR septet in the seven spare bits is padding; elsewhere it is text."""
    seven = gsm7_encode("abcdefg")
    assert gsm7_unpack(gsm7_pack(seven)) == seven
    padded = gsm7_pack(seven, cr_pad=True)
    assert len(padded) == 7 and padded[-1] >> 1 == 0x0D
    assert gsm7_unpack(padded) == seven
    assert gsm7_unpack(padded, 8) == seven + b"\r"
    nine = gsm7_encode("abcdefgh@")
    assert not gsm7_ambiguous(9)
    assert gsm7_unpack(gsm7_pack(nine)) == nine
    assert gsm7_unpack(b"") == b""


def test_unpack_ambiguous_final_at_is_lost():
    """A final '@' in the padding position cannot be told from padding (documented loss)."""
    assert gsm7_ambiguous(8) and gsm7_ambiguous(9, 1) and gsm7_ambiguous(153, 1)
    assert not gsm7_ambiguous(1, 1) and not gsm7_ambiguous(152, 1)
    assert gsm7_unpack(gsm7_pack(gsm7_encode("abcdefg@"))) == gsm7_encode("abcdefg")
    assert gsm7_unpack(gsm7_pack(b"\x00", 1), None, 1) == b"\x00"


def test_cr_pad_only_when_seven_spare_bits():
    """CR padding is added only when the last octet would have seven spare bits."""
    assert gsm7_pack(b"a" * 8, cr_pad=True) == gsm7_pack(b"a" * 8)
    assert gsm7_pack(b"", 1, cr_pad=True) == b""
    plain, padded = gsm7_pack(b"a" * 8, 1), gsm7_pack(b"a" * 8, 1, cr_pad=True)
    assert len(plain) == len(padded) == 8
    assert plain[-1] >> 1 == 0 and padded[-1] >> 1 == 0x0D
    assert gsm7_unpack(padded, None, 1) == b"a" * 8


def test_pack_unpack_errors():
    """Bad septets, fill bits and counts are refused with TextCodingError."""
    with pytest.raises(TextCodingError):
        gsm7_pack(b"\x80")
    with pytest.raises(TextCodingError):
        gsm7_pack(b"a", 7)
    with pytest.raises(TextCodingError):
        gsm7_unpack(b"\x00", 2)
    with pytest.raises(TextCodingError):
        gsm7_unpack(b"\x00", -1)


def test_fill_bits_after_udh():
    """Fill bits align the text after 6- and 7-octet headers (1 and 0 bits)."""
    assert gsm7_fill_bits(6) == 1
    assert gsm7_fill_bits(7) == 0
    assert gsm7_fill_bits(0) == 0
    assert [gsm7_fill_bits(n) for n in range(1, 8)] == [6, 5, 4, 3, 2, 1, 0]


@settings(max_examples=200)
@given(gsm_text, st.integers(0, 6))
def test_gsm_round_trip_property(s, fill):
    """Random GSM-alphabet text round-trips through encode/pack/unpack/decode."""
    septets = gsm7_encode(s)
    assert len(septets) == gsm7_length(s)
    assert gsm7_decode(gsm7_unpack(gsm7_pack(septets, fill), len(septets), fill)) == s
    assert gsm7_fits(s)


@settings(max_examples=200)
@given(unicode_text)
def test_ucs2_round_trip_property(s):
    """Random Unicode, astral characters included, round-trips through UTF-16BE."""
    payload = ucs2_encode(s)
    assert len(payload) == 2 * ucs2_length(s)
    assert ucs2_decode(payload) == s
    assert decode_short_message(8, payload) == s


def test_unencodable_character_error():
    """A character outside GSM 03.38 raises UnencodableCharacter naming it and its position."""
    with pytest.raises(UnencodableCharacter) as e:
        gsm7_encode("ab\u00e7d")
    assert e.value.position == 2 and e.value.char == "\u00e7"
    assert "U+00E7" in str(e.value)
    assert not gsm7_fits("caf\u00e7")
    with pytest.raises(UnencodableCharacter):
        gsm7_length("\U0001F600")
    with pytest.raises(UnencodableCharacter):
        gsm7_encode("\x1b")


def test_length_counts_extension_twice():
    """gsm7_length counts extension characters as two septets."""
    assert gsm7_length("a\u20ac{") == 5
    assert gsm7_length("") == 0


def test_decode_escape_rules():
    """An unknown extension code shows the basic character; escape-escape and a dangling escape show a space."""
    assert gsm7_decode(b"\x1b\x41") == "A"
    assert gsm7_decode(b"\x1b\x1bx") == " x"
    assert gsm7_decode(b"ab\x1b") == "ab "
    with pytest.raises(TextCodingError):
        gsm7_decode(b"a\x80")
    with pytest.raises(TextCodingError):
        gsm7_decode(b"\x1b\xff")


def test_latin1_and_ucs2_errors():
    """Latin-1 refuses characters above U+00FF; UCS-2 refuses odd lengths and lone surrogates in text."""
    assert latin1_encode("caf\u00e9") == b"caf\xe9"
    with pytest.raises(UnencodableCharacter):
        latin1_encode("\u20ac")
    with pytest.raises(TextCodingError):
        ucs2_decode(b"\x00a\x00")
    with pytest.raises(UnencodableCharacter):
        ucs2_encode("\ud83d")


def test_ucs2_surrogate_pair_and_partial():
    """An emoji is a surrogate pair; a half pair is kept in partial mode and replaced otherwise."""
    payload = ucs2_encode("\U0001F600")
    assert payload == b"\xd8\x3d\xde\x00"
    assert ucs2_decode(payload[:2]) == "\ufffd"
    first = ucs2_decode(payload[:2], partial=True)
    second = ucs2_decode(payload[2:], partial=True)
    assert repair_surrogates(first + second) == "\U0001F600"
    assert repair_surrogates("a\udc00b") == "a\ufffdb"


@pytest.mark.parametrize("dc, alphabet", [
    (0, Alphabet.GSM7), (1, Alphabet.ASCII), (3, Alphabet.LATIN1), (8, Alphabet.UCS2),
    (6, Alphabet.CYRILLIC), (7, Alphabet.HEBREW), (0x0A, Alphabet.ISO2022JP),
    (0xF0, Alphabet.GSM7), (0xF1, Alphabet.GSM7), (0xF3, Alphabet.GSM7),
    (0xC0, Alphabet.GSM7), (0xD3, Alphabet.GSM7), (0xE8, Alphabet.UCS2),
])
def test_alphabet_for_supported(dc, alphabet):
    """Each supported data_coding maps to its alphabet."""
    assert alphabet_for(dc) is alphabet


@pytest.mark.parametrize("dc", [2, 4, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF, 5, 9, 0x0D, 0x0E, 0x10, 0xBF,
                                -1, 256])
def test_alphabet_for_refused(dc):
    """Binary, reserved and unknown data_coding values raise UnsupportedCoding."""
    with pytest.raises(UnsupportedCoding) as e:
        alphabet_for(dc)
    with pytest.raises(UnsupportedCoding):
        decode_short_message(dc, b"abc")
    assert e.value.reason


def test_binary_reason_is_clear():
    """Binary codings say so in the error, so the server can log a clear reason."""
    with pytest.raises(UnsupportedCoding, match="8-bit binary"):
        decode_short_message(4, b"\x00\x01")
    with pytest.raises(UnsupportedCoding, match="8-bit binary"):
        decode_short_message(0xF6, b"\x00\x01")


def test_decode_short_message_codings():
    """decode_short_message decodes GSM (unpacked and packed), IA5, Latin-1, UCS-2 and class forms."""
    hello = "Hello \u20ac{1}"
    assert decode_short_message(0, gsm7_encode(hello)) == hello
    assert decode_short_message(0xF1, gsm7_encode(hello)) == hello
    assert decode_short_message(0, gsm7_pack(gsm7_encode(hello)), packed=True) == hello
    udh = bytes.fromhex("050003070201")
    body = gsm7_pack(gsm7_encode(hello), gsm7_fill_bits(len(udh)))
    assert decode_short_message(0, body, packed=True, udh_length=len(udh)) == hello
    assert decode_short_message(1, b"plain ascii") == "plain ascii"
    assert decode_short_message(3, b"caf\xe9") == "caf\u00e9"
    assert decode_short_message(6, "\u041f\u0440\u0438".encode("iso8859_5")) == "\u041f\u0440\u0438"
    assert decode_short_message(8, "\u0645\u0631\u062d\u0628\u0627".encode("utf-16-be")) == \
        "\u0645\u0631\u062d\u0628\u0627"


def test_decode_short_message_invalid_payload():
    """Octets invalid for the alphabet raise TextCodingError, not a crash."""
    with pytest.raises(TextCodingError, match="position 1"):
        decode_short_message(1, b"a\xff")
    with pytest.raises(TextCodingError):
        decode_short_message(0, b"\xc3\xa9")
    with pytest.raises(TextCodingError):
        decode_short_message(8, b"\x00")


def test_encode_short_message_is_inverse():
    """encode_short_message produces what decode_short_message reads back."""
    for dc, s in [(0, "id:1 stat:DELIVRD"), (1, "ascii"), (3, "caf\u00e9"),
                  (8, "\U0001F600 hi")]:
        assert decode_short_message(dc, encode_short_message(dc, s)) == s
    with pytest.raises(UnencodableCharacter):
        encode_short_message(1, "\u00e9")
    with pytest.raises(UnsupportedCoding):
        encode_short_message(2, "x")


# -- segmentation (appliance.sms.segment) ---------------------------------

def _reassemble(enc: SMSEncoding) -> str:
    """Decode and join the segments of an encoding, checking each header."""
    if enc.parts == 1:
        return decode_short_message(enc.data_coding, enc.segments[0])
    texts = []
    for sequence, seg in enumerate(enc.segments, 1):
        elements, body = parse_udh(seg)
        concat = concatenation_from_udh(elements)
        assert (concat.total, concat.sequence) == (enc.parts, sequence)
        texts.append(decode_short_message(enc.data_coding, body, partial=True))
    return repair_surrogates("".join(texts))


def test_part_sizes():
    """Parts hold 153/67 units with the 8-bit reference and 152/66 with the 16-bit one."""
    assert gsm7_part_septets() == 153 and ucs2_part_units() == 67
    assert gsm7_part_septets(True) == 152 and ucs2_part_units(True) == 66


@pytest.mark.parametrize("n, parts", [(0, 1), (1, 1), (153, 1), (154, 1), (160, 1), (161, 2),
                                      (306, 2), (307, 3), (459, 3), (460, 4)])
def test_gsm_boundaries(n, parts):
    """GSM text of n septets takes the expected number of parts, full parts holding 153 septets."""
    enc = encode_for_sms("a" * n, reference=7)
    assert enc.data_coding == 0 and enc.parts == parts == len(enc.segments)
    if parts == 1:
        assert enc.segments == [b"a" * n] and enc.esm_class_flags == 0
    else:
        assert enc.esm_class_flags == UDHI
        assert all(len(s) == 6 + 153 for s in enc.segments[:-1])
        assert enc.segments[0][:6] == bytes([5, 0, 3, 7, parts, 1])
    assert _reassemble(enc) == "a" * n


@pytest.mark.parametrize("n, parts", [(67, 1), (70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_boundaries(n, parts):
    """UCS-2 text of n units takes the expected number of parts, full parts holding 67 units."""
    s = "\u0628" * n
    enc = encode_for_sms(s, reference=200)
    assert enc.data_coding == 8 and enc.parts == parts
    if parts > 1:
        assert all(len(seg) == 6 + 134 for seg in enc.segments[:-1])
    else:
        assert len(enc.segments[0]) == 2 * n
    assert _reassemble(enc) == s


def test_gsm_extension_at_boundary():
    """An extension character straddling the 153rd septet moves whole to the next part."""
    s = "a" * 152 + "\u20ac" + "b" * 10
    enc = encode_for_sms(s)
    assert enc.parts == 2
    assert enc.segments[0][6:] == b"a" * 152
    assert enc.segments[1][6:8] == b"\x1b\x65"
    assert _reassemble(enc) == s


def test_gsm_extension_fits_single_limit():
    """80 euro signs are exactly 160 septets and fit one message; 81 do not."""
    assert encode_for_sms("\u20ac" * 80).parts == 1
    assert encode_for_sms("\u20ac" * 81).parts == 2


def test_surrogate_pair_at_boundary():
    """A surrogate pair straddling the 67th unit moves whole to the next part."""
    s = "x\u0628" * 33 + "\U0001F600" + "y" * 10
    assert ucs2_length(s) == 78
    enc = encode_for_sms(s)
    assert enc.parts == 2
    assert len(enc.segments[0]) == 6 + 132
    assert enc.segments[1][6:10] == "\U0001F600".encode("utf-16-be")
    assert _reassemble(enc) == s


def test_emoji_single_message_limit():
    """35 emoji are 70 UTF-16 units and fit one message; 36 need two parts."""
    assert encode_for_sms("\U0001F600" * 35).parts == 1
    assert encode_for_sms("\U0001F600" * 36).parts == 2


def test_wide_reference_and_packed():
    """A 16-bit reference uses IEI 0x08 and 152-septet parts; packed parts fill 140 octets."""
    s = "z" * 400
    enc = encode_for_sms(s, reference=0x1234, wide_reference=True, packed=True)
    assert enc.parts == 3
    first = enc.segments[0]
    assert first[:7] == bytes([6, 8, 4, 0x12, 0x34, 3, 1])
    assert len(first) == 140
    texts = []
    for seg in enc.segments:
        elements, body = parse_udh(seg)
        assert concatenation_from_udh(elements).wide
        texts.append(decode_short_message(0, body, packed=True, udh_length=len(seg) - len(body)))
    assert "".join(texts) == s
    narrow = encode_for_sms(s, reference=9, packed=True)
    assert all(len(seg) == 140 for seg in narrow.segments[:-1])
    assert encode_for_sms("hellohello", packed=True).segments == [bytes.fromhex("E8329BFD4697D9EC37")]


def test_encode_for_sms_choice():
    """GSM 03.38 is chosen when every character fits, else UCS-2; empty text is one empty GSM part."""
    assert encode_for_sms("Your code is 1234").data_coding == 0
    assert encode_for_sms("Your code is 1234 \u00e7").data_coding == 8
    assert encode_for_sms("") == (0, [b""], 1)


def test_encode_for_sms_errors():
    """Out-of-range references, too many parts and bad max_parts are refused."""
    with pytest.raises(ConcatenationError):
        encode_for_sms("a", reference=256)
    with pytest.raises(ConcatenationError):
        encode_for_sms("a" * 200, reference=-1)
    assert encode_for_sms("a", reference=0xFFFF, wide_reference=True).parts == 1
    with pytest.raises(TextTooLong):
        encode_for_sms("a" * 500, max_parts=3)
    with pytest.raises(TextTooLong):
        encode_for_sms("a" * (153 * 255 + 1))
    with pytest.raises(ValueError):
        encode_for_sms("a", max_parts=0)


def test_split_helpers():
    """The splitters never cut an escape pair or a surrogate pair, and keep all content."""
    assert split_septets(b"ab\x1bec", 3) == [b"ab", b"\x1bec"]
    assert split_septets(b"", 3) == [b""]
    payload = "a\U0001F600".encode("utf-16-be")
    assert split_utf16(payload, 2) == [payload[:2], payload[2:]]


@settings(max_examples=150)
@given(unicode_text, st.integers(0, 255))
def test_encode_for_sms_round_trip_property(s, ref):
    """Any text, split for SMS and put back together, is the original text, within the part limits."""
    enc = encode_for_sms(s, reference=ref)
    assert _reassemble(enc) == s
    for seg in enc.segments:
        if enc.parts == 1:
            assert len(seg) <= (160 if enc.data_coding == 0 else 140)
        elif enc.data_coding == 0:
            assert len(seg) <= 6 + 153
        else:
            assert len(seg) <= 6 + 134


def test_packed_part_never_ends_with_padding_lookalike():
    """A packed part whose 153rd septet would be '@' ends one septet earlier, so the '@' survives."""
    s = "a" * 152 + "@" + "b" * 20
    enc = encode_for_sms(s, packed=True)
    _, body = parse_udh(enc.segments[0])
    assert gsm7_unpack(body, None, 1) == b"a" * 152
    unpacked = encode_for_sms(s)
    assert unpacked.segments[0][6:] == b"a" * 152 + b"\x00"


@settings(max_examples=150)
@given(gsm_text, st.integers(0, 255), st.booleans())
def test_encode_for_sms_gsm_property(s, ref, wide):
    """GSM-alphabet text is always sent as GSM 03.38 and reassembles exactly (packed: unless it ends in '@'/CR)."""
    for packed in (False, True) if not s.endswith(("@", "\r")) else (False,):
        enc = encode_for_sms(s, reference=ref, packed=packed, wide_reference=wide)
        assert enc.data_coding == 0
        texts = []
        for seg in enc.segments:
            if enc.parts == 1:
                body, udh_len = seg, 0
            else:
                _, body = parse_udh(seg)
                udh_len = len(seg) - len(body)
                assert not packed or len(seg) <= 140
            texts.append(decode_short_message(0, body, packed=packed, udh_length=udh_len))
        assert "".join(texts) == s


def test_module_exports_exist():
    """Every name in __all__ of the text and segment modules is defined."""
    for module in (text, segment):
        for name in module.__all__:
            assert hasattr(module, name), name
