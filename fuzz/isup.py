"""
Fuzz the ISUP decoder and the circuit layer: the decoder raises only
L{ISUPError}; the layer answers (CFN, UCIC, RSC...) and never raises,
nor catches and logs an exception (a logged traceback is a crash here).

    python fuzz/isup.py -max_total_time=60 /tmp/new fuzz/corpus/isup
"""
from __future__ import annotations

import sys

import atheris

from twisted.internet.task import Clock
from twisted.logger import globalLogBeginner                 # not instrumented

from appliance.sigtran.interfaces import ProtocolData
from tests.sigtran.fakes import FakeSS7

with atheris.instrument_imports():
    from appliance.sigtran import isupcodec as I
    from appliance.sigtran.isup import ISUPLayer

ss7 = FakeSS7()
clock = Clock()
layer = ISUPLayer(ss7.mtp, clock, ss7.settings, release_delay=1)

_failures: list[dict] = []


def _observe(event: dict) -> None:
    """Keep the events that carry a traceback: some part caught an
    exception and logged it, which on these inputs is a bug."""
    if "log_failure" in event:
        _failures.append(event)


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
    if _failures:
        failure = _failures[0]["log_failure"]
        _failures.clear()
        raise RuntimeError("an exception was caught and logged on this "
                           "input:\n" + failure.getTraceback())
    ss7.mtp.sent.clear()


if __name__ == "__main__":
    # Log events go to _observe only (not to a buffer of 64k events).
    globalLogBeginner.beginLoggingTo([_observe], discardBuffer=True,
                                     redirectStandardIO=False)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
