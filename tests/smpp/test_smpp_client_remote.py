"""Tests for L{appliance.smpp.remote}: what the SMPP client sends and how it
reads receipts (pure)."""
import struct

import pytest
from smpp.pdu import operations, pdu_types as T

from appliance.messaging.vocabulary import normalize_remote_id, remote_id_forms
from appliance.smpp import pdus
from appliance.smpp import receipts as R
from appliance.smpp.remote import (
    HOPS_TAG, Address, References, address_type, classify, hops_tlv,
    is_receipt, parse_receipt, read_hops, status_name, submit_frames)
from appliance.sms.segment import TextTooLong


def test_address_types():
    """E.164 digits go as international/ISDN (1/1), with a leading + dropped;
    a text sender goes as alphanumeric (5/0), cut to 11 characters."""
    assert address_type("+447700900001") == Address(1, 1, b"447700900001")
    assert address_type("2222") == Address(1, 1, b"2222")
    assert address_type("ACME") == Address(5, 0, b"ACME")
    assert address_type("A very long sender") == Address(5, 0,
                                                         b"A very long")
    with pytest.raises(ValueError):
        address_type("  ")


def test_references_per_destination():
    """Each destination has its own counter, wrapping after 255; the least
    recently used destination is forgotten beyond the limit."""
    refs = References(limit=2)
    assert [refs.next("a") for _ in range(3)] == [0, 1, 2]
    assert refs.next("b") == 0
    for _ in range(253):
        refs.next("a")
    assert refs.next("a") == 0          # 256th value wraps
    refs.next("c")                      # forgets "b"
    assert refs.next("b") == 0


def test_ucs2_asked_for_is_sent_as_ucs2():
    """A message stored with encoding ucs2 (an HTTP coding=ucs2) goes with
    data_coding 8 even when its text fits GSM 03.38; without it the same
    text goes as GSM (data_coding 0)."""
    out = submit_frames("1111", "2222", "hello", 7, hops=1,
                        encoding="ucs2")
    p = pdus.decode(out.frame(0, 1)).params
    assert p["data_coding"].schemeData == T.DataCodingDefault.UCS2
    assert p["short_message"] == "hello".encode("utf-16-be")
    out = submit_frames("1111", "2222", "hello", 7, hops=1,
                        encoding="gsm7")
    p = pdus.decode(out.frame(0, 1)).params
    assert p["data_coding"].schemeData == \
        T.DataCodingDefault.SMSC_DEFAULT_ALPHABET


def test_single_gsm_message():
    """Text that fits GSM 03.38 goes as one submit_sm with data_coding 0,
    TON/NPI set, registered_delivery 1, and the hop TLV."""
    out = submit_frames("1111", "2222", "hello @ world", 7, hops=1)
    frame = out.frame(0, 42)
    pdu = pdus.decode(frame)
    p = pdu.params
    assert pdu.seqNum == 42 and out.parts == 1
    assert p["source_addr"] == b"1111" and p["destination_addr"] == b"2222"
    assert p["source_addr_ton"] == T.AddrTon.INTERNATIONAL
    assert p["dest_addr_npi"] == T.AddrNpi.ISDN
    assert p["data_coding"].schemeData == \
        T.DataCodingDefault.SMSC_DEFAULT_ALPHABET
    assert p["registered_delivery"].receipt == \
        T.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED
    assert not p["esm_class"].gsmFeatures
    assert read_hops(frame) == 1
    assert frame.endswith(struct.pack(">HHB", HOPS_TAG, 1, 1))
    assert struct.unpack(">I", frame[:4])[0] == len(frame)


def test_long_ucs2_message_parts():
    """A 400-character text outside GSM 03.38 goes as UCS-2 in parts of 67
    characters, each with UDHI and the same reference."""
    text = "\u0645" * 400
    out = submit_frames("ACME", "2222", text, 9, hops=2)
    assert out.parts == 6
    refs = set()
    for i in range(out.parts):
        p = pdus.decode(out.frame(i, i + 1)).params
        assert p["data_coding"].schemeData == T.DataCodingDefault.UCS2
        assert T.EsmClassGsmFeatures.UDHI_INDICATOR_SET in \
            p["esm_class"].gsmFeatures
        sm = p["short_message"]
        assert sm[:3] == b"\x05\x00\x03"
        refs.add(sm[3])
        assert (sm[4], sm[5]) == (6, i + 1)
        assert p["source_addr_ton"] == T.AddrTon.ALPHANUMERIC
    assert refs == {9}


def test_long_gsm_message_parts():
    """A 400-character GSM text takes three parts of 153 septets."""
    out = submit_frames("1111", "2222", "x" * 400, 0, hops=1)
    assert out.parts == 3
    assert [len(s) - 6 for s in out.encoding.segments] == [153, 153, 94]


def test_unsendable_text():
    """Text needing more than 255 parts, or a bad registered_delivery, is
    refused with a ValueError (the pool fails the message)."""
    with pytest.raises(TextTooLong):
        submit_frames("1111", "2222", "\u0645" * (67 * 256), 0, 1)
    with pytest.raises(ValueError):
        submit_frames("1111", "2222", "hi", 0, 1, registered_delivery=5)


def test_read_hops_absent_and_truncated():
    """A submit_sm without the TLV, or one cut short, has no hop count."""
    plain = pdus.encode(operations.SubmitSM(
        1, source_addr=b"1", destination_addr=b"2", short_message=b"hi"))
    assert read_hops(plain) is None
    framed = submit_frames("1", "2", "hi", 0, 3).frame(0, 1)
    assert read_hops(framed) == 3
    assert read_hops(framed[:20]) is None
    assert hops_tlv(999)[-1] == 255


def test_classify_statuses():
    """THROTTLED and MSGQFUL are transient, an invalid destination is
    permanent, 0 is ok; names come from the SMPP table."""
    assert classify(0) == "ok"
    assert classify(0x58) == "transient"
    assert classify(0x14) == "transient"
    assert classify(0x0B) == "permanent"
    assert status_name(0x58) == "ESME_RTHROTTLED"
    assert status_name(0x0B) == "ESME_RINVDSTADR"
    assert status_name(0x4444) == "0x00004444"


def test_receipt_from_our_server():
    """The SMPP server's own receipt deliver_sm is read: id from the TLV,
    stat mapped to our state."""
    for state, expected in (("delivered", "delivered"),
                            ("failed", "failed"), ("expired", "expired"),
                            ("rejected", "failed")):
        frame = R.deliver_sm(3, R.Receipt("1a2b", state, 0, 0, "hello",
                                          "1111", "2222"))
        pdu = pdus.decode(frame)
        esm = pdus.submit_fields(pdu).esm_class
        assert is_receipt(esm)
        info = parse_receipt(pdu.params)
        assert (info.message_id, info.state) == ("1a2b", expected)


def test_receipt_text_only():
    """Without the TLV the id: and stat: of the text are used; ENROUTE is
    not final; the err: field is kept."""
    text = (b"id:000123 sub:001 dlvrd:000 submit date:2401010000 done "
            b"date:2401010000 stat:UNDELIV err:034 text:x")
    info = parse_receipt({"short_message": text})
    assert info.message_id == "000123" and info.state == "failed"
    assert info.error == "034"
    enroute = parse_receipt({"short_message": b"id:5 stat:ENROUTE"})
    assert enroute.state is None
    assert parse_receipt({"short_message": b"no id here"}) is None


def test_receipt_message_state_fallback():
    """A receipt with the TLVs and no stat: in its text uses
    message_state."""
    info = parse_receipt({"short_message": b"",
                          "receipted_message_id": b"77",
                          "message_state": T.MessageState.EXPIRED})
    assert (info.message_id, info.state) == ("77", "expired")


def test_is_receipt():
    """Only the receipt types of esm_class count as receipts."""
    assert is_receipt(0x04) and is_receipt(0x20)
    assert not is_receipt(0x00) and not is_receipt(0x40)


def test_id_normalization_forms():
    """A receipt id written in decimal finds a message recorded under the
    hex id (and back), with leading zeros and case ignored (the lead's
    functions)."""
    recorded = normalize_remote_id("00FF")
    assert recorded in remote_id_forms("255")
    assert normalize_remote_id("255") in remote_id_forms("0000ff")
    assert normalize_remote_id("000123") == "123"
