"""SMPP framing and the codecs smpp.pdu3 lacks."""
import struct

import pytest

from appliance.smpp import pdus
from tests.smpp.smpp_env import status, submit_multi


def test_split_frames_keeps_rest():
    """Whole PDUs are cut off; an incomplete one stays in the rest."""
    a = struct.pack(">IIII", 16, 0x15, 0, 1)
    frames, rest = pdus.split_frames(a + a + a[:7])
    assert frames == [a, a] and rest == a[:7]


@pytest.mark.parametrize("length", [0, 15, pdus.MAX_PDU + 1])
def test_split_frames_unreadable(length):
    """A command_length below 16 or beyond MAX_PDU is a framing error."""
    with pytest.raises(pdus.FramingError):
        pdus.split_frames(struct.pack(">I", length) + b"\0" * 12)


def test_submit_multi_decoded():
    """submit_multi's SME destinations, distribution lists and text are
    read; the list goes to unsuccess with ESME_RINVDSTADR."""
    s = pdus.decode_submit_multi(submit_multi(3, ["111", "222"], b"hey",
                                              dl=("club",)))
    assert s.recipients == ((1, 1, "111"), (1, 1, "222"))
    assert s.body == b"hey" and s.source == "AsiaCell"
    assert s.unsuccess == ((0, 0, "club", status("ESME_RINVDSTADR")),)


def test_submit_multi_bad_count():
    """number_of_dests 0 gets ESME_RINVNUMDESTS."""
    frame = submit_multi(3, [], b"x")
    with pytest.raises(pdus.PDUError) as e:
        pdus.decode_submit_multi(frame)
    assert e.value.status.name == "ESME_RINVNUMDESTS"


def test_submit_multi_bad_flag():
    """A dest_flag other than 1 or 2 gets ESME_RINVDESTFLAG."""
    frame = bytearray(submit_multi(3, ["111"], b"x"))
    frame[16 + 1 + 2 + len(b"AsiaCell\0") + 1] = 7
    with pytest.raises(pdus.PDUError) as e:
        pdus.decode_submit_multi(bytes(frame))
    assert e.value.status.name == "ESME_RINVDESTFLAG"


def test_submit_multi_truncated():
    """A truncated destination list is ESME_RINVPARLEN, not a crash."""
    frame = submit_multi(3, ["111222333"], b"x")[:30]
    frame = struct.pack(">I", len(frame)) + frame[4:]
    with pytest.raises(pdus.PDUError):
        pdus.decode_submit_multi(frame)


def test_submit_multi_resp_layout():
    """submit_multi_resp: message_id, no_unsuccess, then per SME ton, npi,
    address and a 4-octet error."""
    out = pdus.submit_multi_resp(9, "ab", [(1, 1, "999", 0x0B)])
    assert out[16:] == b"ab\0\x01\x01\x01999\0\x00\x00\x00\x0b"
    assert pdus.header(out) == pdus.Header(len(out), 0x80000021, 0, 9)


def test_decode_garbage_is_pdu_error():
    """Random octets in a known command's body give a PDUError with a
    status, never another exception."""
    import random
    rnd = random.Random(7)
    for _ in range(2000):
        body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(40)))
        for cid in (0x4, 0x9, 0x103, 0x21):
            frame = struct.pack(">IIII", 16 + len(body), cid, 0, 1) + body
            try:
                if cid == 0x21:
                    pdus.decode_submit_multi(frame)
                else:
                    pdus.submit_fields(pdus.decode(frame)) if cid != 0x9 \
                        else pdus.decode(frame)
            except pdus.PDUError as e:
                assert pdus.status_value(e.status) > 0



def test_one_octet_fields_read_every_value():
    """For every one-octet field the fast path reads, each of the 256
    values gives the library's reading or None (refused): the library
    raises only its parse errors there, so nothing else escapes."""
    from appliance.smpp.pdus import _octet
    for field in ("source_addr_ton", "source_addr_npi", "dest_addr_ton",
                  "dest_addr_npi", "esm_class", "protocol_id",
                  "priority_flag", "registered_delivery",
                  "replace_if_present_flag", "data_coding"):
        readings = [_octet(field, v) for v in range(256)]
        assert all(r is None or isinstance(r, int) for r in readings), field
        assert readings[0] is not None, field
