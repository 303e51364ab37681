"""
MAP transactions per second: SRI-SM then MT-ForwardSM (each its own TCAP
dialogue) from the node's SIGTRAN stack to an HLR/MSC peer, through
osmo-stp (M3UA/TCP, both ASPs) and directly (the peer an ASP of the
node's own M3UA listener), with the CPU each process spent per pair and
the node's CPU per pair split by layer (M3UA, SCCP, TCAP, MAP, TPDU).

Two peers: the pycrate simulator (tests/peers/sigsim: independent
codecs, but pycrate costs a few ms per message, so it is the
bottleneck), and a fast peer on the node's own codecs (bench/map_stack.py
peer) to show what the node itself sustains.  The node runs in this
process (no database writes: the MAP delivery agent's send(), as the
missed-call service will call it).

    .venv/bin/python bench/bench_map.py [PAIRS] [WINDOW]
"""
from __future__ import annotations

import cProfile
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from twisted.internet import defer, task  # noqa: E402

import map_stack  # noqa: E402
from tests.e2e.osmo_stp import OsmoSTP, ensure_fetched  # noqa: E402
from tests.e2e.sigsim_tools import Sim  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
LAYERS = {
    "M3UA": ("sigtran/m3ua.py", "sigtran/asp.py", "sigtran/mtp.py", "sigtran/transport.py"),
    "SCCP": ("sigtran/sccp.py", "sigtran/scrc.py"),
    "TCAP": ("sigtran/tcap.py", "sigtran/tcapcodec.py", "sigtran/ber.py"),
    "MAP": ("sigtran/map.py", "sigtran/mapcodec.py", "sigtran/smsc.py"),
    "TPDU": ("sigtran/tpdu.py", "smpp/text.py", "smpp/segment.py", "smpp/udh.py"),
}


def cpu_of(pid: int | None) -> float:
    """User + system CPU seconds of a process (or of this one)."""
    if pid is None:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@defer.inlineCallbacks
def wait(reactor, condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        yield task.deferLater(reactor, 0.05, lambda: None)


def start_peer(kind: str, port: int, work: Path):
    """@return: (pid, stop) of the sigsim or fast peer connecting to C{port}."""
    if kind == "sigsim":
        sim = Sim(work / "sim", port, capture=None, hlr={"subscribers": {
            "447900123456": {"state": "reachable", "imsi": "234150000000001",
                             "msc": map_stack.MSC_GT}}})
        return sim.process.pid, sim.stop, lambda: sim.ctl(cmd="status")["state"] == "active"
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "map_stack.py"), "peer",
                             "--connect", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    seen = []

    def ready():
        if not seen:
            import select
            if select.select([proc.stdout], [], [], 0)[0]:
                seen.append(proc.stdout.readline())
        return bool(seen and "active" in seen[0])

    def stop():
        proc.terminate()
        proc.wait(10)
    return proc.pid, stop, ready


@defer.inlineCallbacks
def run(reactor, via: str, peer: str, count: int, window: int, work: Path,
        profile: cProfile.Profile | None = None):
    stp = None
    if via == "stp":
        (work / "stp").mkdir(parents=True, exist_ok=True)
        stp = OsmoSTP(ensure_fetched(), work / "stp").start()
        service, smsc, agent = map_stack.node(reactor, "asp", stp.port)
        yield wait(reactor, lambda: map_stack.active(service), what="node active")
        target = stp.port
    else:
        service, smsc, agent = map_stack.node(reactor, "sg", None)
        yield service.ready
        target = service._ports[0].getHost().port
    pid, stop, ready = start_peer(peer, target, work / f"{via}-{peer}")
    try:
        yield wait(reactor, ready, 30, what="peer active")
        yield wait(reactor, lambda: map_stack.active(service), what="node active")
        yield map_stack.pairs(agent, min(50, count), min(window, 10))     # warm up
        before = (time.perf_counter(), cpu_of(None), cpu_of(pid),
                  cpu_of(stp.process.pid) if stp else 0.0)
        if profile is not None:
            profile.enable()
        ok = yield map_stack.pairs(agent, count, window)
        if profile is not None:
            profile.disable()
        after = (time.perf_counter(), cpu_of(None), cpu_of(pid),
                 cpu_of(stp.process.pid) if stp else 0.0)
    finally:
        stop()
        yield smsc.stopService()
        yield service.stopService()
        if stp is not None:
            stp.stop()
    wall = after[0] - before[0]
    return {"via": via, "peer": peer, "pairs": count, "ok": ok, "wall": wall,
            "rate": ok / wall, "node_ms": 1e3 * (after[1] - before[1]) / count,
            "peer_ms": 1e3 * (after[2] - before[2]) / count,
            "stp_ms": 1e3 * (after[3] - before[3]) / count}


def layer_split(profile: cProfile.Profile, count: int) -> dict[str, float]:
    """The node's profiled CPU per pair by layer (share of the total)."""
    stats = pstats.Stats(profile)
    totals = dict.fromkeys(list(LAYERS) + ["Twisted and the rest"], 0.0)
    for (path, _, _), (_, _, tottime, _, _) in stats.stats.items():
        layer = next((name for name, files in LAYERS.items()
                      if any(path.endswith(f) for f in files)), "Twisted and the rest")
        totals[layer] += tottime
    whole = sum(totals.values()) or 1.0
    return {k: v / whole for k, v in totals.items()}


def per_call(fn, n=2000) -> float:
    """Microseconds per call of C{fn}."""
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def codecs() -> None:
    """The node's hand-written codecs against pycrate, same messages."""
    from pycrate_mobile.ISUP import parse_ISUP
    from pycrate_mobile.TS23040_SMS import SMS_DELIVER
    from appliance.sigtran import isupcodec as I, mapcodec as M, tcapcodec as T
    from appliance.sigtran.tpdu import decode_deliver, deliver_tpdus
    from tests.peers.sigsim import codec as C
    begin = T.TCMessage(T.TC_BEGIN, otid=b"\x00\x00\x00\x01", dialogue=T.AARQ(M.ac_name(20, 3)),
                        components=[T.Invoke(1, 45, M.encode_sri_sm(M.SRIForSM("447900123456", "447700900000")))])
    data = T.encode(begin)
    tpdu = deliver_tpdus("447700900002", "Missed call from 447700900002")[0]
    mt = T.encode(T.TCMessage(T.TC_BEGIN, otid=b"\x01", dialogue=T.AARQ(M.ac_name(25, 3)), components=[
        T.Invoke(1, 44, M.encode_forward_sm(M.ForwardSM(("imsi", "234150000000001"), ("sc", "447700900000"), tpdu)))]))
    iam = C.iam(5, "447900999000", "447700900002", 0, "447900123456", "447900123456", 6)
    C.tcap_decode(data)
    value = C.TC.get_val()

    def ours_sri():
        m = T.decode(data)
        M.decode_sri_sm(m.components[0].param)

    def ours_mt():
        m = T.decode(mt)
        decode_deliver(M.decode_forward_sm(m.components[0].param).ui)

    def pyc_mt():
        C.TC.from_ber(mt)
        C.TC.get_val()

    def pyc_tpdu():
        d = SMS_DELIVER()
        d.from_bytes(tpdu)
        d["TP_UD"]["UD"].decode()
    rows = [("TCAP+MAP SRI-SM Begin encode", per_call(lambda: T.encode(begin)), per_call(lambda: C.tcap_encode(value), 300)),
            ("TCAP+MAP SRI-SM Begin decode", per_call(ours_sri), per_call(lambda: C.tcap_decode(data), 300)),
            ("TCAP+MAP+TPDU MT-ForwardSM decode", per_call(ours_mt), per_call(pyc_mt, 300)),
            ("TPDU SMS-DELIVER decode", per_call(lambda: decode_deliver(tpdu)), per_call(pyc_tpdu, 300)),
            ("ISUP IAM decode", per_call(lambda: I.decode(iam)), per_call(lambda: parse_ISUP(iam), 100))]
    print("codec per message, node vs pycrate (us):")
    for name, ours, theirs in rows:
        print(f"  {name:36} node {ours:7.1f}   pycrate {theirs:8.1f}   x{theirs / ours:5.1f}")


@defer.inlineCallbacks
def main(reactor, count: int, window: int):
    codecs()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for via in ("stp", "direct"):
            for peer, n in (("fast", count), ("sigsim", max(200, count // 5))):
                row = yield run(reactor, via, peer, n, window, work / f"{via}{peer}")
                rows.append(row)
                print(f"{via:6} {peer:6} {row['ok']}/{n} pairs in {row['wall']:.2f} s: "
                      f"{row['rate']:.0f} pairs/s; CPU per pair: node {row['node_ms']:.2f} ms, "
                      f"peer {row['peer_ms']:.2f} ms, osmo-stp {row['stp_ms']:.2f} ms", flush=True)
        profile = cProfile.Profile()
        row = yield run(reactor, "direct", "fast", count // 2, window, work / "prof", profile)
        split = layer_split(profile, count // 2)
        node_ms = next(r["node_ms"] for r in rows if (r["via"], r["peer"]) == ("direct", "fast"))
        print("node CPU per pair by layer (profiled shares x unprofiled "
              f"{node_ms:.2f} ms; 2 dialogues = 4 M3UA/SCCP/TCAP messages):")
        for layer, share in split.items():
            print(f"  {layer:22} {share * 100:5.1f} %  {share * node_ms * 1000:7.0f} us")


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    window = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    task.react(main, (count, window))
