"""
M3UA + SCCP: the hand-written codec against pycrate (the test oracle),
per message, and DATA round trips per second through the running node,
through osmo-stp and directly, in one run.

    .venv/bin/python bench/bench_m3ua.py [ROUND_TRIPS] [WINDOW]

Codec: a DATA carrying a UDT with GT addresses and a 73-byte TCAP-sized
payload (the SRI-SM leg), encoded and decoded down to the SCCP user data;
and an ASPAC.  Round trips: an ASP (raw socket, frames built once) sends
UDTs with return on error to an SSN the node does not have; the node
answers each with a UDTS (decode M3UA + SCCP, route, encode, send).  The
ASP keeps WINDOW outstanding.  "via osmo-stp": the node and the ASP are
both ASPs of osmo-stp 2.1 over TCP; "direct": the ASP connects to the
node's listener (our role sg).
"""
from __future__ import annotations

import socket
import sys
import tempfile
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycrate_mobile.M3UA import M3UA_DATA, parse_M3UA  # noqa: E402
from pycrate_mobile.SCCP import SCCPUnitData, parse_SCCP  # noqa: E402

from appliance.sigtran import m3ua, sccp  # noqa: E402
from appliance.sigtran.interfaces import ProtocolData, SCCPAddress  # noqa: E402
from tests.e2e.harness import start_node, wait_for  # noqa: E402
from tests.e2e.osmo_stp import OsmoSTP, ensure_fetched  # noqa: E402
from tests.e2e.pycrate_asp import gt_address  # noqa: E402

TCAP = bytes(range(73))
HLR = SCCPAddress(gt="447900123456", ssn=6)
SMSC = SCCPAddress(gt="44770090000", ssn=8)


def per_call(fn, n: int) -> float:
    """@return: µs per call, best of 3."""
    return min(timeit.repeat(fn, number=n, repeat=3)) / n * 1e6


def codec() -> list[tuple[str, float, float]]:
    ours_data = lambda: m3ua.data(ProtocolData(
        185, 186, 3, 2, 0, 5, sccp.encode(sccp.Unitdata(
            sccp.UDT, HLR, SMSC, TCAP, 0, True))), rc=1)
    raw = ours_data()

    def theirs_data():
        u = SCCPUnitData()
        u.set_val({"ProtocolClass": {"Handling": 8, "Class": 0},
                   "CalledPartyAddr": {"Value": gt_address(HLR.gt, 6)},
                   "CallingPartyAddr": {"Value": gt_address(SMSC.gt, 8)},
                   "Data": {"Value": TCAP}})
        m = M3UA_DATA()
        m.set_val({"ParamsDATA": [
            {"Tag": 6, "Val": [1]},
            {"Tag": 0x210, "Val": {"OPC": 185, "DPC": 186, "SI": 3, "NI": 2,
                                   "MP": 0, "SLS": 5, "Data": u.to_bytes()}}]})
        return m.to_bytes()
    assert theirs_data() == raw

    def ours_decode():
        return sccp.decode(m3ua.decode(raw).protocol_data().data).data

    def theirs_decode():
        msg, _ = parse_M3UA(raw)
        pd = [p for p in msg["ParamsDATA"].get_val() if p[0] == 0x210][0]
        u, _ = parse_SCCP(pd[2][6])
        return u["Data"]["Value"].get_val()
    assert ours_decode() == theirs_decode() == TCAP
    aspac = m3ua.asptm(m3ua.ASPAC, rcs=(1,), traffic_mode=1)
    rows = [("DATA+UDT encode", per_call(ours_data, 20000),
             per_call(theirs_data, 200)),
            ("DATA+UDT decode", per_call(ours_decode, 20000),
             per_call(theirs_decode, 200)),
            ("ASPAC decode", per_call(lambda: m3ua.decode(aspac), 20000),
             per_call(lambda: parse_M3UA(aspac), 500))]
    return rows


def recv_frames(sock: socket.socket, buf: bytearray) -> list[bytes]:
    buf += sock.recv(1 << 20)
    out = []
    while len(buf) >= 8:
        n = int.from_bytes(buf[4:8], "big")
        if len(buf) < n:
            break
        out.append(bytes(buf[:n]))
        del buf[:n]
    return out


def bring_up(sock: socket.socket, pc: int, register: bool) -> int:
    buf = bytearray()
    sock.sendall(m3ua.aspsm(m3ua.ASPUP))
    rc = 1

    def wait(kind):
        while True:
            for f in recv_frames(sock, buf):
                if (f[2], f[3]) == kind:
                    return m3ua.decode(f)
    wait(m3ua.ASPUP_ACK)
    if register:
        sock.sendall(m3ua.reg_req([m3ua.RoutingKey(1, (pc,))]))
        [res] = wait(m3ua.REG_RSP).nested(m3ua.TAG_REG_RESULT)
        rc = m3ua.sub_u32(res, m3ua.TAG_ROUTING_CONTEXT)
    sock.sendall(m3ua.asptm(m3ua.ASPAC, rcs=(rc,)))
    wait(m3ua.ASPAC_ACK)
    return rc


def round_trips(port: int, total: int, window: int, register: bool) -> float:
    """@return: UDT->UDTS round trips per second."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rc = bring_up(sock, 186, register)
    udt = sccp.encode(sccp.Unitdata(sccp.UDT, SCCPAddress(gt=SMSC.gt, ssn=9),
                                    HLR, TCAP, 0, True))
    frame = m3ua.data(ProtocolData(186, 185, 3, 0, 0, 0, udt), rc=rc)
    buf = bytearray()
    sent = got = 0
    start = time.perf_counter()
    while got < total:
        if sent - got < window and sent < total:
            n = min(window - (sent - got), total - sent)
            sock.sendall(frame * n)
            sent += n
        for f in recv_frames(sock, buf):
            if (f[2], f[3]) == m3ua.DATA:
                got += 1
    elapsed = time.perf_counter() - start
    sock.close()
    return total / elapsed


PROVISION = """configure terminal
ss7
 point-code 0.23.1
 global-title 44770090000
 m3ua-peer {name}
  address 127.0.0.1
  {extra}
 exit
exit
end
"""


def node(tmp: Path, name: str, extra: str):
    script = tmp / f"{name}.cli"
    script.write_text(PROVISION.format(name=name, extra=extra))
    return start_node(tmp, name=name, node={"provision": str(script),
                                             "log_level": "info"},
                      m3ua={"enabled": True, "beat_interval": 0,
                            "listen": "tcp:port=0:interface=127.0.0.1"})


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    window = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    print("codec, µs per message (best of 3)")
    print(f"{'operation':<18} {'ours':>8} {'pycrate':>9} {'ratio':>7}")
    for name, ours, theirs in codec():
        print(f"{name:<18} {ours:8.2f} {theirs:9.1f} {theirs / ours:6.0f}x")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        direct = node(tmp, "direct", "role sg")
        rate_direct = round_trips(direct.port("m3ua"), total, window, False)
        direct.stop()
        (tmp / "stp").mkdir()
        stp = OsmoSTP(ensure_fetched(), tmp / "stp").start()
        try:
            via = node(tmp, "via", f"port {stp.port}\n  role asp")
            wait_for(lambda: "ASP-ACTIVE" in via.log(), 20,
                     what="node ASP-ACTIVE at the STP")
            rate_stp = round_trips(stp.port, total, window, True)
            via.stop()
        finally:
            stp.stop()
    print(f"\nUDT->UDTS round trips, {total} messages, window {window}")
    print(f"direct (node as SG)        {rate_direct:9.0f} /s")
    print(f"via osmo-stp (node as ASP) {rate_stp:9.0f} /s")
    print(f"STP's share: direct is {rate_direct / rate_stp:.2f}x via the STP")


if __name__ == "__main__":
    main()
