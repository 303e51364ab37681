"""
The node's SIGTRAN stack (M3UA, SCCP, TCAP, MAP) built without the rest
of the node, for the MAP bench: on an in-memory database provisioned
through the shell, with the real reactor.  Also runnable as a fast HLR +
MSC peer built on the node's own codecs (the bench's second peer beside
the pycrate simulator, to show what the node does when its peer is not
the bottleneck):

    python bench/map_stack.py peer --connect PORT     (an ASP: prints "active")
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from twisted.internet import defer  # noqa: E402

from appliance.application import memory_storage  # noqa: E402
from appliance.config import Listener  # noqa: E402
from appliance.shell.script import run_script  # noqa: E402
from appliance.sigtran import mapcodec as M  # noqa: E402
from appliance.sigtran.service import SigtranService  # noqa: E402
from appliance.sigtran.smsc import MAPDeliveryAgent, SMSCService  # noqa: E402
from appliance.sigtran.tcap import RESULT, Reply, TCAPLayer  # noqa: E402

NODE_GT, HLR_GT, MSC_GT = "447700900000", "19995550001", "19995550002"
SS7 = """configure terminal
ss7
 point-code {pc}
 global-title {gt}
 hlr global-title {hlr}
 m3ua-peer {name}
  address 127.0.0.1
{port} role {role}
 exit
 sccp-route far
  global-title-prefix {prefix}
  point-code {far}
 exit
exit
end
"""
LISTEN = Listener("tcp", "tcp:port=0:interface=127.0.0.1", 0, "127.0.0.1")


def stack(reactor: Any, *, pc: str, gt: str, far: str, prefix: str,
          role: str, port: int | None) -> SigtranService:
    """
    A started SIGTRAN service: an ASP connecting to C{port} (role asp),
    or a listener the peer connects to (role sg; C{service.listen_port}).
    """
    storage = memory_storage(reactor)
    script = SS7.format(pc=pc, gt=gt, hlr=HLR_GT, name="peer", role=role,
                        port=f"  port {port}\n" if port else "",
                        prefix=prefix, far=far)
    result = run_script(storage, script, user="bench")
    assert result.ok, result.text
    service = SigtranService(storage, reactor,
                             listen=(LISTEN,) if role == "sg" else ())
    service.startService()
    return service


def node(reactor: Any, role: str, port: int | None):
    """@return: (SigtranService, SMSCService, MAPDeliveryAgent) of the node."""
    service = stack(reactor, pc="0.23.1", gt=NODE_GT, far="0.23.2",
                    prefix="1999555", role=role, port=port)
    smsc = SMSCService(service, None, reactor, timeout=30.0)
    smsc.startService()
    return service, smsc, MAPDeliveryAgent(smsc.client, None, reactor)


def active(service: SigtranService) -> bool:
    """Whether an association of C{service} is ASP-ACTIVE."""
    return any(a.state == "ASP-ACTIVE" for a in service.associations.values())


def peer(reactor: Any, port: int) -> SigtranService:
    """The fast HLR (SSN 6) and MSC (SSN 8) on the node's codecs."""
    service = stack(reactor, pc="0.23.2", gt=HLR_GT, far="0.23.1",
                    prefix="4477", role="asp", port=port)
    info = M.encode_routing_info(M.RoutingInfo("234150000000001", MSC_GT))
    hlr = TCAPLayer(service.sccp, reactor, 6)
    msc = TCAPLayer(service.sccp, reactor, 8)
    hlr.serve(M.AC_GATEWAY, {2, 3}, {
        M.OP_SRI_SM: lambda op: Reply(RESULT, info),
        M.OP_REPORT_SM_DELIVERY_STATUS: lambda op: Reply(RESULT)})
    msc.serve(M.AC_MT_RELAY, {2, 3}, {
        M.OP_MT_FORWARD_SM: lambda op: Reply(RESULT),
        M.OP_FORWARD_SM: lambda op: Reply(RESULT)})
    service.sccp.register_ssn(6, hlr)
    service.sccp.register_ssn(8, msc)
    return service


def main(argv: list[str]) -> None:
    from twisted.internet import reactor, task
    port = int(argv[argv.index("--connect") + 1])
    service = peer(reactor, port)

    def check():
        if active(service):
            print("active", flush=True)
            loop.stop()
    loop = task.LoopingCall(check)
    loop.start(0.05)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])


@defer.inlineCallbacks
def pairs(agent: MAPDeliveryAgent, count: int, window: int,
          msisdn: str = "447900123456"):
    """
    Run C{count} SRI-SM + MT-ForwardSM pairs, C{window} at a time.

    @return: a Deferred of the number that succeeded.
    """
    ok = 0
    remaining = count

    @defer.inlineCallbacks
    def worker():
        nonlocal ok, remaining
        while remaining > 0:
            remaining -= 1
            outcome = yield agent.send(msisdn, "447700900002",
                                       "Missed call from 447700900002")
            ok += outcome.ok
    yield defer.gatherResults([worker() for _ in range(window)])
    return ok
