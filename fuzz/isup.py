"""
Fuzz the ISUP decoder and the circuit layer: the decoder raises only
L{ISUPError}; the layer answers (CFN, UCIC, RSC...) and never raises.

    python fuzz/isup.py -max_total_time=60 /tmp/new fuzz/corpus/isup
"""
from __future__ import annotations

import sys

import atheris

from twisted.internet.task import Clock                 # not instrumented

from appliance.sigtran.interfaces import ProtocolData
from tests.sigtran.fakes import FakeSS7

with atheris.instrument_imports():
    from appliance.sigtran import isupcodec as I
    from appliance.sigtran.isup import ISUPLayer

ss7 = FakeSS7()
clock = Clock()
layer = ISUPLayer(ss7.mtp, clock, ss7.settings, release_delay=1)


def test_one_input(data: bytes) -> None:
    try:
        m = I.decode(data)
        for kind, code in (("calling", I.P_CALLING), ("original", I.P_ORIGINAL_CALLED)):
            if code in m.optional:
                I.decode_number(m.optional[code], kind)
        if I.P_REDIRECTION_INFO in m.optional:
            I.decode_redirection(m.optional[I.P_REDIRECTION_INFO])
    except I.ISUPError:
        pass
    layer.mtp_transfer(ProtocolData(200, 100, 5, 2, 0, 0, data))
    clock.advance(2)
    ss7.mtp.sent.clear()


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
