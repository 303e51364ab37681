"""
Coverage-guided fuzzing (atheris) of the M3UA and SCCP decoders and of
one association fed the decoded stream.

Each input is a TCP byte stream: it goes through the stream framer into
an L{Association} (active, as an SG would see it), and each frame is
also decoded on its own, with the SCCP message of a DATA decoded too.
Only C{M3UAError} and C{SCCPError} may come out of the decoders; the
framer and the association must never raise, nor catch and log an
exception (a logged traceback is a crash here too).  Run::

    python fuzz/m3ua_sccp.py -max_total_time=60 /tmp/new fuzz/corpus/m3ua_sccp
"""
from __future__ import annotations

import sys

import atheris

from twisted.logger import globalLogBeginner              # not instrumented

with atheris.instrument_imports():
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from appliance.sigtran import asp, m3ua, sccp
    from appliance.sigtran.mtp import M3UALayer
    from appliance.sigtran.scrc import SCCPRouter
    from appliance.sigtran.transport import M3UAStreamProtocol


_failures: list[dict] = []


def _observe(event: dict) -> None:
    """Keep the events that carry a traceback: some part caught an
    exception and logged it, which on these inputs is a bug."""
    if "log_failure" in event:
        _failures.append(event)


def _association():
    clock = Clock()
    layer = M3UALayer(185)
    router = SCCPRouter(layer, clock)
    layer.register_user(3, router)
    a = asp.Association(asp.PeerSettings("fuzz", role="sg", routing_context=1),
                        layer, clock, 185, asp.Timers(beat=0))
    layer.associations["fuzz"] = a
    proto = M3UAStreamProtocol(a)
    transport = StringTransport()
    proto.makeConnection(transport)
    proto.dataReceived(m3ua.aspsm(m3ua.ASPUP))
    proto.dataReceived(m3ua.asptm(m3ua.ASPAC, rcs=(1,)))
    assert a.state == asp.ACTIVE
    return proto, transport, layer


def one_input(data: bytes) -> None:
    """Decode C{data} every way the node does; only protocol errors."""
    try:
        msg = m3ua.decode(data)
        if msg.kind == m3ua.DATA:
            sccp.decode(msg.protocol_data().data)
    except (m3ua.M3UAError, sccp.SCCPError):
        pass
    try:
        sccp.decode(data)
    except sccp.SCCPError:
        pass
    proto, transport, layer = _association()
    proto.dataReceived(data)
    transport.clear()
    # The layer catches a user part's exception (and logs it): here that
    # is a bug, so make it a crash.
    if layer.counters["rx user failed"]:
        raise RuntimeError("the SCCP user part raised on this input")
    if _failures:
        failure = _failures[0]["log_failure"]
        _failures.clear()
        raise RuntimeError("an exception was caught and logged on this "
                           "input:\n" + failure.getTraceback())


def main() -> None:
    # Log events go to _observe only (not to a buffer of 64k events).
    globalLogBeginner.beginLoggingTo([_observe], discardBuffer=True,
                                     redirectStandardIO=False)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
