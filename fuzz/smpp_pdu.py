"""
Fuzz the SMPP server's decode path (framing, header, PDU and TLV decoding,
submit_multi): it raises only L{FramingError} and L{PDUError}.

    python fuzz/smpp_pdu.py -max_total_time=60 /tmp/new fuzz/corpus/smpp_pdu
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from appliance.smpp import pdus as P


def test_one_input(data: bytes) -> None:
    try:
        frames, _ = P.split_frames(data)
    except P.FramingError:
        return
    for frame in frames:
        h = P.header(frame)
        try:
            if h.command_id == P.SUBMIT_MULTI:
                P.decode_submit_multi(frame)
            else:
                P.decode(frame)
        except P.PDUError:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
