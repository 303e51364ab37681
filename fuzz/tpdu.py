"""
Fuzz the TS 23.040 decoders: they raise only L{TPDUError}.

    python fuzz/tpdu.py -max_total_time=60 /tmp/new fuzz/corpus/tpdu
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from appliance.sigtran import tpdu as P


def test_one_input(data: bytes) -> None:
    for decoder in (P.decode_submit, P.decode_deliver):
        try:
            decoder(data)
        except P.TPDUError:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
