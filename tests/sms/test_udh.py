"""
Tests for L{appliance.sms.udh}: user data headers and SAR TLVs.
"""
import pytest

from appliance.smpp import udh as udh_module
from appliance.sms.udh import (
    UDHI, Concatenation, ConcatenationError, InformationElement, MalformedUDH,
    build_udh, concatenation_from_sar, concatenation_from_udh, concatenation_udh,
    parse_udh, split_user_data)


def test_parse_8bit_concatenation():
    """An 8-bit concatenation header gives reference, total and sequence, and the body after it."""
    elements, body = parse_udh(bytes.fromhex("05 00 03 42 03 02") + b"hello")
    assert elements == (InformationElement(0x00, b"\x42\x03\x02"),)
    assert body == b"hello"
    assert concatenation_from_udh(elements) == Concatenation(0x42, 3, 2, False)


def test_parse_16bit_concatenation():
    """A 16-bit concatenation header gives the two-octet reference."""
    elements, body = parse_udh(bytes.fromhex("06 08 04 12 34 02 01") + b"\x00a")
    assert body == b"\x00a"
    assert concatenation_from_udh(elements) == Concatenation(0x1234, 2, 1, True)


def test_unknown_elements_are_kept():
    """Unknown elements are kept in order next to the concatenation element."""
    raw = bytes([10, 0x24, 1, 0x01, 0x00, 3, 7, 2, 2, 0x70, 0]) + b"body"
    elements, body = parse_udh(raw)
    assert [e.iei for e in elements] == [0x24, 0x00, 0x70]
    assert elements[2].data == b""
    assert body == b"body"
    assert concatenation_from_udh(elements) == Concatenation(7, 2, 2)
    assert build_udh(elements) == raw[:11]


def test_no_concatenation_element():
    """A header without concatenation yields None."""
    elements, _ = parse_udh(bytes([3, 0x24, 1, 0x01]))
    assert concatenation_from_udh(elements) is None


def test_last_concatenation_element_counts():
    """With two concatenation elements, the last one is used."""
    raw = build_udh([InformationElement(0, b"\x01\x02\x01"),
                     InformationElement(8, b"\x00\x05\x03\x03")])
    elements, _ = parse_udh(raw)
    assert concatenation_from_udh(elements) == Concatenation(5, 3, 3, True)


@pytest.mark.parametrize("raw", [
    b"",                                  # UDHI set, nothing at all
    bytes([5, 0, 3, 1, 2]),               # UDHL beyond the data
    bytes([1, 0]),                        # element header truncated
    bytes([3, 0, 3, 1]),                  # element data beyond the header
])
def test_malformed_headers(raw):
    """Headers whose lengths run beyond the data raise MalformedUDH."""
    with pytest.raises(MalformedUDH):
        parse_udh(raw)


@pytest.mark.parametrize("raw, message", [
    (bytes([5, 0, 3, 1, 0, 1]), "total"),          # total 0
    (bytes([5, 0, 3, 1, 2, 0]), "part number 0"),  # sequence 0
    (bytes([5, 0, 3, 1, 2, 3]), "part number 3"),  # sequence > total
    (bytes([6, 8, 4, 0, 1, 2, 3]), "part number 3"),
])
def test_invalid_concatenation_values(raw, message):
    """Total 0, sequence 0 and sequence beyond total raise ConcatenationError."""
    elements, _ = parse_udh(raw)
    with pytest.raises(ConcatenationError, match=message):
        concatenation_from_udh(elements)


@pytest.mark.parametrize("element", [
    InformationElement(0, b"\x01\x02"), InformationElement(8, b"\x01\x02\x01")])
def test_wrong_size_concatenation_element(element):
    """A concatenation element of the wrong size is malformed."""
    with pytest.raises(MalformedUDH):
        concatenation_from_udh([element])


def test_split_user_data_by_esm_class():
    """Without UDHI the whole message is the body; with it the header is parsed and its size given."""
    msg = bytes.fromhex("050003010201") + b"xy"
    assert split_user_data(msg, 0x00) == ((), msg, 0)
    elements, body, length = split_user_data(msg, UDHI | 0x03)
    assert body == b"xy" and length == 6 and len(elements) == 1
    with pytest.raises(MalformedUDH):
        split_user_data(b"", UDHI)


def test_sar_triple():
    """SAR TLVs give the triple with a 16-bit reference; all absent is None; partial or bad is refused."""
    assert concatenation_from_sar(None, None, None) is None
    assert concatenation_from_sar(0xABCD, 3, 1) == Concatenation(0xABCD, 3, 1, True)
    with pytest.raises(ConcatenationError, match="together"):
        concatenation_from_sar(1, None, 1)
    with pytest.raises(ConcatenationError):
        concatenation_from_sar(1, 0, 1)
    with pytest.raises(ConcatenationError):
        concatenation_from_sar(1, 2, 3)
    with pytest.raises(ConcatenationError):
        concatenation_from_sar(0x10000, 2, 1)


def test_build_concatenation_headers():
    """concatenation_udh builds the 6- and 7-octet headers that parse back to the same triple."""
    assert concatenation_udh(7, 3, 1) == bytes([5, 0, 3, 7, 3, 1])
    assert concatenation_udh(0x0102, 3, 2, wide=True) == bytes([6, 8, 4, 1, 2, 3, 2])
    for wide in (False, True):
        elements, body = parse_udh(concatenation_udh(200, 255, 255, wide=wide) + b"!")
        assert concatenation_from_udh(elements) == Concatenation(200, 255, 255, wide)
        assert body == b"!"
    with pytest.raises(ConcatenationError):
        concatenation_udh(256, 2, 1)
    with pytest.raises(ConcatenationError):
        concatenation_udh(1, 2, 0)


def test_build_udh_refuses_oversize():
    """An element or header that cannot be encoded raises MalformedUDH."""
    with pytest.raises(MalformedUDH):
        build_udh([InformationElement(0x70, b"x" * 256)])
    with pytest.raises(MalformedUDH):
        build_udh([InformationElement(0x70, b"x" * 200), InformationElement(0x70, b"x" * 60)])
    with pytest.raises(MalformedUDH):
        build_udh([InformationElement(0x100, b"")])


def test_exports_exist():
    """Every name in __all__ is defined."""
    for name in udh_module.__all__:
        assert hasattr(udh_module, name), name
