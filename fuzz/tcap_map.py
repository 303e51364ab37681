"""
Fuzz the TCAP and MAP decoders and the TCAP layer that answers what
arrives: the decoders raise only L{TCAPError} / L{MAPError}; the layer
never raises (it answers with an Abort or a Reject, or drops), and
nothing catches and logs an exception on the way (the TCAP layer turns
a MAP handler's exception into a Reject and a logged traceback: here
that is a crash).

    python fuzz/tcap_map.py -max_total_time=60 /tmp/new fuzz/corpus/tcap_map
"""
from __future__ import annotations

import sys

import atheris

from twisted.internet import defer                       # not instrumented
from twisted.internet.task import Clock
from twisted.logger import globalLogBeginner

from appliance.sigtran.interfaces import SCCPAddress
from tests.sigtran.fakes import FakeSCCP

with atheris.instrument_imports():
    from appliance.sigtran import ber  # noqa: F401
    from appliance.sigtran import mapcodec as M
    from appliance.sigtran import tcapcodec as T
    from appliance.sigtran.map import MAPOutcome, MAPServer
    from appliance.sigtran.tcap import TCAPLayer

DECODERS = (M.decode_sri_sm, M.decode_routing_info, M.decode_forward_sm,
            M.decode_report, M.decode_alert)
sccp = FakeSCCP("447700900000")
layer = TCAPLayer(sccp, Clock(), 8, limit=1000)
MAPServer(layer, lambda mo: defer.succeed(MAPOutcome("ok")))
FROM = SCCPAddress(gt="19995550002", ssn=8)

_failures: list[dict] = []


def _observe(event: dict) -> None:
    """Keep the events that carry a traceback: some part caught an
    exception and logged it, which on these inputs is a bug."""
    if "log_failure" in event:
        _failures.append(event)


def test_one_input(data: bytes) -> None:
    try:
        m = T.decode(data)
    except T.TCAPError:
        m = None
    if m is not None:
        for c in m.components:
            param = getattr(c, "param", None)
            if param is not None:
                for decoder in DECODERS:
                    try:
                        decoder(param)
                    except M.MAPError:
                        pass
                M.decode_error_param(getattr(c, "code", 0) or 0, param)
    layer.unitdata(sccp.local_address(8), FROM, data)
    sccp.sent.clear()
    if _failures:
        failure = _failures[0]["log_failure"]
        _failures.clear()
        raise RuntimeError("an exception was caught and logged on this "
                           "input:\n" + failure.getTraceback())
    if len(layer.dialogues) > 900:
        layer.stop()


if __name__ == "__main__":
    # Log events go to _observe only (not to a buffer of 64k events).
    globalLogBeginner.beginLoggingTo([_observe], discardBuffer=True,
                                     redirectStandardIO=False)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
