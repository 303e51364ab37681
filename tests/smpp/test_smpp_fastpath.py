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


# -- the egress submit_sm writer (appliance.smpp.remote.Outgoing.frame) ------

def library_frame(out, part: int, seq: int) -> bytes:
    """What Outgoing.frame encodes with smpp.pdu3 (the oracle)."""
    saved = pdus.FAST_PDUS
    pdus.FAST_PDUS = False
    try:
        return out.frame(part, seq)
    finally:
        pdus.FAST_PDUS = saved


def egress_agrees(out) -> None:
    """Every part of C{out}: the struct writer gives the library's octets
    (or declines, and then frame() is the library's by construction)."""
    for part in range(out.parts):
        seq = 1 + part * 7919
        fast = out._fast_frame(part, seq)
        assert fast is not None
        assert fast == library_frame(out, part, seq), (out, part)
        assert out.frame(part, seq) == fast


@pytest.mark.parametrize("text,encoding", [
    ("hello", None), ("hello", "ucs2"), ("", None), ("x" * 160, None),
    ("x" * 161, None), ("ü€[]{}~^\\|" * 40, None), ("Привет " * 30, None),
    ("日本語" * 70, "ucs2"), ("Benchmark message number 0000001", "gsm7")])
@pytest.mark.parametrize("rd", [0, 1, 2])
@pytest.mark.parametrize("sender,recipient", [
    ("33611111111", "33622222222"), ("+447700900001", "2222"),
    ("ACME", "964111222333"), ("A very long sender", "1" * 20)])
def test_egress_frames_octets(text, encoding, rd, sender, recipient):
    """submit_frames' parts (GSM and UCS-2, single and concatenated, every
    registered_delivery, digits and names) encode octet for octet as the
    library encodes them."""
    from appliance.smpp.remote import submit_frames
    egress_agrees(submit_frames(sender, recipient, text, 42, 3, rd,
                                encoding))


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=400), hops=st.integers(-3, 300),
       ref=st.integers(0, 255), rd=st.sampled_from((0, 1, 2)),
       sender=st.from_regex(r"\+?[0-9]{1,20}|[A-Za-z][A-Za-z0-9 ]{0,15}",
                            fullmatch=True),
       recipient=st.from_regex(r"[0-9]{1,15}", fullmatch=True),
       ucs2=st.booleans())
def test_generated_egress_frames_agree(text, hops, ref, rd, sender,
                                       recipient, ucs2):
    """Generated messages (any text the SMS codec takes, any hop count,
    reference and addresses): the struct writer and the library agree."""
    from appliance.smpp.remote import submit_frames
    try:
        out = submit_frames(sender, recipient, text, ref, hops, rd,
                            "ucs2" if ucs2 else None)
    except ValueError:
        return
    egress_agrees(out)


def test_egress_declines_other_shapes():
    """An address the library must judge (longer than 20 octets) or a
    national plan's TON it does not know goes to the library."""
    from appliance.smpp.remote import Address, submit_frames
    out = submit_frames("1111", "2222", "hi", 0, 1, 1)
    assert out._replace(destination=Address(1, 1, b"1" * 21)) \
        ._fast_frame(0, 1) is None
    assert out._replace(source=Address(3, 1, b"1111"))._fast_frame(0, 1) \
        is None


def library_resp_id(frame: bytes):
    """What the client read before: the library's message_id, or the
    decode error."""
    try:
        raw = pdus.decode(frame).params.get("message_id") or b""
    except pdus.PDUError as e:
        return ("error", e.status)
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)


def resp(seq: int, body: bytes) -> bytes:
    return struct.pack(">IIII", 16 + len(body), 0x80000004, 0, seq) + body


@settings(max_examples=3000, deadline=None)
@given(body=st.binary(max_size=80))
def test_submit_sm_resp_reader_agrees(body):
    """Any submit_sm_resp body: where the fast reader answers, it reads
    the library's message_id."""
    frame = resp(9, body)
    fast = pdus.fast_submit_sm_resp_id(frame)
    if fast is not None:
        assert fast == library_resp_id(frame), body


@pytest.mark.parametrize("message_id", [b"", b"1", b"0A1B2C3D", b"x" * 64,
                                        b"\xe9t\xe9"])
def test_submit_sm_resp_reader_takes_ids(message_id):
    """The ids SMSCs send (hex, decimal, up to 64 octets, latin-1) are
    read by the fast reader, as the library reads them; a 65-octet id,
    which the library refuses, is left to the library."""
    frame = resp(3, message_id + b"\0")
    assert pdus.fast_submit_sm_resp_id(frame) == library_resp_id(frame)
    too_long = resp(3, b"y" * 65 + b"\0")
    assert pdus.fast_submit_sm_resp_id(too_long) is None
    assert library_resp_id(too_long)[0] == "error"
