"""
The struct-based submit_sm reader and submit_sm_resp writer of
L{appliance.smpp.pdus} against C{smpp.pdu3} as the oracle: on every PDU
the tests and the fuzz corpus hold (the fuzz test's seeds and 20,000 of
their mutations, one-octet field sweeps, raw PDUs as load tools write
them), the fast reader either declines (the library then decodes) or
returns exactly what the library's decode gives.
"""
from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings, strategies as st
from smpp.pdu import operations

from appliance.smpp import pdus
from tests.e2e.test_smpp_fuzz import mutate, seeds
from tests.smpp.smpp_env import submit_sm


def oracle(frame: bytes):
    """What the generic path gives: a Submit, or the error status."""
    try:
        return pdus.submit_fields(pdus.decode(frame))
    except pdus.PDUError as e:
        return ("error", e.status)


def agrees(frame: bytes) -> bool:
    """Check one frame; @return: whether the fast reader took it."""
    fast = pdus.fast_submit_sm(frame)
    if fast is None:
        return False
    assert fast == oracle(frame), frame.hex()
    return True


def raw_submit(seq: int, fields: bytes = b"\x01\x01", src=b"12345",
               dst=b"33600000001", middle=bytes(10), text=b"Benchmark",
               tail=b"") -> bytes:
    """A submit_sm as a raw client writes it (load.py's layout)."""
    body = (b"\0" + fields + src + b"\0" + b"\x01\x01" + dst + b"\0"
            + middle[:9] + bytes((len(text),)) + text + tail)
    return struct.pack(">IIII", 16 + len(body), 4, 0, seq) + body


def test_seeds_and_mutations_agree():
    """The fuzz test's seeds and 20,000 mutations of them: wherever the
    fast reader answers, it answers what the library decodes; it takes
    the plain submit_sm seeds (so the fast path is used at all)."""
    rnd = random.Random(16)
    base = seeds()
    taken = sum(agrees(p) for p in base)
    assert taken >= 2
    for _ in range(20_000):
        agrees(mutate(rnd, rnd.choice(base)))


def test_every_value_of_every_octet():
    """Each octet of a plain submit_sm set to each of its 256 values."""
    frame = submit_sm(7, b"hello there", rd=1)
    assert agrees(frame)
    for i in range(16, len(frame)):
        for v in range(256):
            b = bytearray(frame)
            b[i] = v
            agrees(bytes(b))


def test_declines_tlvs_padding_times():
    """TLVs (sar_*), trailing padding and a schedule time go to the
    library: the fast reader declines them."""
    assert pdus.fast_submit_sm(submit_sm(
        1, b"x", sar_msg_ref_num=1, sar_total_segments=2,
        sar_segment_seqnum=1)) is None
    padded = raw_submit(2, tail=b"\0")
    assert pdus.fast_submit_sm(padded) is None
    sched = raw_submit(3, middle=b"\0\0\0" + b"1" + bytes(6))
    assert pdus.fast_submit_sm(sched) is None


def test_load_tool_pdus_taken():
    """The PDUs of the peer's load tool are read by the fast path, with
    the library's result."""
    for i in range(50):
        assert agrees(raw_submit(i, text=b"Benchmark message number %07d"
                                 % i, dst=b"336%08d" % i))


@settings(max_examples=2000, deadline=None)
@given(src=st.binary(max_size=24), dst=st.binary(max_size=24),
       fields=st.binary(min_size=2, max_size=2),
       middle=st.binary(min_size=9, max_size=9),
       text=st.binary(max_size=260), tail=st.binary(max_size=3))
def test_generated_submits_agree(src, dst, fields, middle, text, tail):
    """Generated raw submit_sm (any addresses, flags, lengths, trailing
    octets): fast reader and library agree wherever the fast one answers."""
    src, dst = src.replace(b"\0", b""), dst.replace(b"\0", b"")
    agrees(raw_submit(1, fields, src, dst, middle, text[:255], tail))


@pytest.mark.parametrize("message_id", ["", "1", "12345678901234567890",
                                        "x" * 64, "y" * 65])
def test_submit_sm_resp_octets(message_id):
    """The fast submit_sm_resp is octet for octet the library's."""
    if len(message_id) > 64:
        with pytest.raises(Exception):
            pdus.encode(operations.SubmitSMResp(5, message_id=message_id))
        return
    assert pdus.fast_submit_sm_resp(5, message_id) == pdus.encode(
        operations.SubmitSMResp(5, message_id=message_id))
