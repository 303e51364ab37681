"""
Fuzz the TS 23.040 decoders: they raise only L{TPDUError}.
"""
from __future__ import annotations

import _common  # noqa: F401
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
    _common.main(test_one_input, "tpdu")
