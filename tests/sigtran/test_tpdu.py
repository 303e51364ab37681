"""
Tests for L{appliance.sigtran.tpdu}: SMS-DELIVER and SMS-SUBMIT against
pycrate's TS 23.040 codec.
"""
import pytest
from pycrate_mobile.TS23040_SMS import SMS_DELIVER, SMS_SUBMIT

from appliance.sigtran import tpdu as P


def _pycrate_deliver(data):
    d = SMS_DELIVER()
    d.from_bytes(data)
    assert d.to_bytes() == data
    return d


@pytest.mark.parametrize("text, parts, dcs", [
    ("Missed call from 447700900002", 1, 0),
    ("Héllo €uro ✓ 你好", 1, 8),
    ("x" * 161, 2, 0),
    ("你" * 71, 2, 8),
])
def test_deliver_reads_back_in_pycrate(text, parts, dcs):
    """SMS-DELIVER parts (GSM 7 packed or UCS-2, concatenated when long) read back as the text in pycrate."""
    tpdus = P.deliver_tpdus("447700900002", text, scts=1.7e9, reference=9)
    assert len(tpdus) == parts
    got = ""
    for n, data in enumerate(tpdus, 1):
        d = _pycrate_deliver(data)
        assert d["TP_OA"]["Num"].decode() == "447700900002"
        assert d["TP_DCS"].to_bytes() == bytes((dcs,))
        assert d["TP_UDHI"].get_val() == (parts > 1)
        assert d["TP_MMS"].get_val() == (n == parts)   # 1: no more messages
        got += d["TP_UD"]["UD"].decode()
        ours = P.decode_deliver(data)
        assert ours.concat == ((9, parts, n) if parts > 1 else None)
    assert got == text


def test_invisible_type0_has_pid_0x40():
    """The invisible message is TP-PID 0x40 (short message type 0)."""
    data = P.deliver_tpdus("447700900002", "", invisible=True)[0]
    d = _pycrate_deliver(data)
    assert d["TP_PID"].to_bytes() == b"\x40"
    assert P.decode_deliver(data).pid == P.PID_TYPE0


def test_alphanumeric_sender():
    """An alphanumeric sender is TOA 0xD0 with packed GSM 7-bit, as pycrate reads it."""
    data = P.deliver_tpdus("Bank", "code 1234", scts=0)[0]
    assert data[2] == P.TOA_ALPHANUMERIC
    assert P.decode_deliver(data).sender == "Bank"


@pytest.mark.parametrize("text", ["hi there", "Привет", "a" * 160])
def test_submit_from_pycrate(text):
    """An SMS-SUBMIT built by pycrate decodes to its recipient, reference and text."""
    s = SMS_SUBMIT()
    charset = 2 if any(ord(c) > 0x7F for c in text) else 0
    s.set_val({"TP_MR": 7, "TP_DA": {"Num": "447900123456"},
               "TP_DCS": {"Group": 0, "Charset": charset}, "TP_UD": {"UD": text}})
    ours = P.decode_submit(s.to_bytes())
    assert (ours.mr, ours.recipient, ours.text) == (7, "447900123456", text)


def test_submit_with_validity_and_concatenation():
    """A concatenated SMS-SUBMIT with a relative validity period gives its part numbers."""
    s = SMS_SUBMIT()
    s.set_val({"TP_UDHI": 1, "TP_VPF": 2, "TP_MR": 1, "TP_DA": {"Num": "447900123456"},
               "TP_VP": 0xA7, "TP_UD": {"UDH": {"UDH": [{"T": 0, "V": {"MsgRef": 5, "MsgParts": 2, "MsgNum": 1}}]},
                                         "UD": "part one"}})
    ours = P.decode_submit(s.to_bytes())
    assert ours.concat == (5, 2, 1) and ours.text == "part one"


def test_encode_submit_is_pycrates():
    """Our SMS-SUBMIT (for tools) is the octets pycrate writes."""
    s = SMS_SUBMIT()
    s.set_val({"TP_MR": 7, "TP_DA": {"Num": "447900123456"}, "TP_UD": {"UD": "hi there"}})
    assert P.encode_submit("447900123456", "hi there", 7) == s.to_bytes()


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x07\x0c\x91", b"\x00\x0c\x91\x44",
                                  bytes.fromhex("01070c914497002143650000ff41"),
                                  bytes.fromhex("41070c91449700214365000005ff")])
def test_malformed_raise_tpdu_error(data):
    """Truncated or inconsistent TPDUs raise only L{TPDUError}."""
    with pytest.raises(P.TPDUError):
        P.decode_submit(data)
    with pytest.raises(P.TPDUError):
        P.decode_deliver(data)
