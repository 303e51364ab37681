"""
Fuzz the SMPP decode paths of the node (framing, header, PDU and TLV
decoding, submit_multi, the fields of a submit_sm, data_sm or deliver_sm,
the struct readers of the common submit_sm and submit_sm_resp and the
raw hop-count TLV reader), as the server session and the outbound
connection run them: they raise only L{FramingError} and L{PDUError},
and a struct reader, when it takes a PDU, gives exactly what the
library's decode gives.

    python fuzz/smpp_pdu.py -max_total_time=60 /tmp/new fuzz/corpus/smpp_pdu
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from appliance.smpp import pdus as P
    from appliance.smpp.remote import read_hops

# submit_sm, data_sm (SUBMITS of the session) and deliver_sm (an outbound
# connection's incoming traffic): their fields are read by submit_fields.
WITH_FIELDS = (P.SUBMIT_SM, 0x00000103, 0x00000005)


def _submit_sm_resp(frame: bytes) -> None:
    """The outbound connection's read of a submit_sm_resp's message_id:
    the struct reader, when it takes one, agrees with the library."""
    fast = P.fast_submit_sm_resp_id(frame)
    try:
        raw = P.decode(frame).params.get("message_id") or b""
    except P.PDUError:
        assert fast is None, (frame.hex(), fast)
        return
    if fast is not None:
        full = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        assert fast == full, (frame.hex(), fast, full)


def test_one_input(data: bytes) -> None:
    try:
        frames, _ = P.split_frames(data)
    except P.FramingError:
        return
    for frame in frames:
        h = P.header(frame)
        fields = None
        try:
            if h.command_id == P.SUBMIT_MULTI:
                P.decode_submit_multi(frame)
            else:
                pdu = P.decode(frame)
                if h.command_id in WITH_FIELDS:
                    fields = P.submit_fields(pdu)
        except P.PDUError as e:
            fields = ("error", e.status)
        fast = P.fast_submit_sm(frame)
        if fast is not None:
            assert fast == fields, (frame.hex(), fast, fields)
        if h.status == 0 and h.command_id == P.SUBMIT_SM | P.RESPONSE_BIT:
            _submit_sm_resp(frame)
        hops = read_hops(frame)
        assert hops is None or 0 <= hops <= 255, hops


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
