"""
The missed-call service: triggers per second end to end, and the memory
one pending notification costs.

  1. SIP busy: SIPp sends N INVITEs with Diversion user-busy to the
     running node (C{twistd -n appliance}); each is answered 486, ACKed,
     and its Who Called SMS goes through the core and a service policy
     over SMPP to an SMSC of the test.  Timed from SIPp's start until
     the SMSC has N submit_sm.  Baseline in the same run: the same
     INVITEs with C{Privacy: id} (486, no SMS: the SIP side alone).
  2. ISUP unreachable with the HLR round trip: the simulator (switch,
     HLR, MSC; pycrate) sends N IAMs through osmo-stp, 31 circuits in
     flight; each is ACM + REL + RLC, SRI-SM, the invisible MT-ForwardSM
     refused absent, the pending entry written, reportSM-DeliveryStatus.
     Timed until the HLR has N reports.  Baseline: N IAMs with reason no
     reply (ISUP alone, no MAP).
  3. Memory: 1,000,000 pending (B, A) entries in C{root["notify"]} on a
     FileStorage: bytes per entry on disk (after pack) and in the
     process (every bucket loaded), against a plain dict of the same
     keys and tuples.

    .venv/bin/python bench/bench_notify.py [SIP_CALLS] [IAMS] [PENDING]
"""
from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import start_node, wait_for  # noqa: E402
from tests.e2e.sip_tools import DOMAIN, provision_script, run_sipp  # noqa: E402

SERVICE = "447900999000"
A = "447900100001"


def rss_kib() -> int:
    """Resident set size now, KiB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sip_busy(work: Path, calls: int) -> dict:
    from tests.e2e.smsc import SMSC
    smsc = SMSC("operator")
    base = work / "sipnode"
    base.mkdir(parents=True)
    script = base / "provision.cli"
    script.write_text(provision_script({}) + f"""configure terminal
connection operator
 host 127.0.0.1
 port {smsc.port}
 system-id node
 password pw
exit
service-policy mobiles
 recipient-pattern 4479%
 transport smpp connection operator
exit
notification
 service-number {SERVICE}
exit
end
""")
    node = start_node(work, name="sipnode", sip={
        "enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
        "domain": DOMAIN, "realm": DOMAIN},
        node={"provision": str(script), "log_level": "warning"})
    out = {}
    try:
        wait_for(lambda: smsc.binds, 20, what="SMSC bound")
        for label, privacy in (("clir (SIP only)", "id"),
                               ("busy (SIP + SMS)", "none")):
            before = len(smsc.received)
            start = time.monotonic()
            result = run_sipp(work / label.split()[0], "invite_div.xml",
                              node.port("sip_udp"), calls=calls,
                              rate=calls, limit=200, timeout=120,
                              trace=False,
                              extra=["-key", "svc", SERVICE,
                                     "-key", "caller", A,
                                     "-key", "called", "447900100002",
                                     "-key", "reason", "user-busy",
                                     "-key", "privacy", privacy])
            if privacy == "none":
                wait_for(lambda: len(smsc.received) - before >= calls, 120,
                         interval=0.05, what="every SMS at the SMSC")
            elapsed = time.monotonic() - start
            out[label] = (result.successful, result.failed,
                          calls / elapsed)
    finally:
        node.stop()
        smsc.stop()
    return out


def isup_unreachable(work: Path, iams: int) -> dict:
    from tests.e2e.osmo_stp import OsmoSTP, ensure_fetched
    from tests.e2e.sigsim_tools import MSC_GT, Sim, node_active, node_for_sim
    (work / "stp").mkdir()
    stp = OsmoSTP(ensure_fetched(), work / "stp").start()
    bs = [f"4479002{n:05d}" for n in range(iams)]
    subscribers = {b: {"state": "reachable", "imsi": "23415" + b[-10:],
                       "msc": MSC_GT} for b in bs}
    refuse = {"23415" + b[-10:]: "absent" for b in bs}
    node = node_for_sim(work, stp.port, {}, name="isupnode",
                        log_level="info", extra=f"""configure terminal
notification
 service-number {SERVICE}
 isup channel-seized-timer 0
 delivery map
exit
end
""")
    out = {}
    sim = None
    try:
        wait_for(lambda: node_active(node), 30, what="node active")
        sim = Sim(work / "sim", stp.port, hlr={"subscribers": subscribers},
                  msc={"refuse": refuse})
        assert sim.ctl(cmd="wait-active", timeout=20) == {"active": True}
        for label, reason in (("no reply (ISUP only)", 2),
                              ("unreachable (ISUP + HLR + MSC)", 6)):
            sim.ctl(cmd="clear")
            start = time.monotonic()
            pending = {}
            queue = list(bs)
            cics = list(range(1, 32))
            sock = sim.sock
            done = 0

            def send(cic, b):
                sock.sendall(json.dumps({
                    "cmd": "iam", "cic": cic, "called": SERVICE,
                    "calling": A, "presentation": 0, "original": b,
                    "redirecting": b, "reason": reason}).encode() + b"\n")
                pending[cic] = b
            sock.settimeout(60)
            while cics and queue:
                send(cics.pop(), queue.pop())
            while pending:
                answer = json.loads(sim.file.readline())
                cic = answer["cic"]
                pending.pop(cic, None)
                done += 1
                if queue:
                    send(cic, queue.pop())
            if reason == 6:
                wait_for(lambda: len(sim.ctl(cmd="records")["reports"])
                         >= iams, 300, interval=0.2, what="every report")
            elapsed = time.monotonic() - start
            out[label] = (done, iams / elapsed)
    finally:
        if sim is not None:
            sim.stop()
        node.stop()
        stp.stop()
    return out


def memory(work: Path, count: int) -> dict:
    import random
    import transaction
    import ZODB
    from ZODB.FileStorage import FileStorage
    from appliance.notify.decide import Pending
    from appliance.notify.generations import evolve1
    from appliance.notify.model import KEY
    rng = random.Random(3)
    keys = [(f"4479{rng.randrange(10**8):08d}", f"4477{rng.randrange(10**8):08d}")
            for _ in range(count)]
    path = work / "pending.fs"
    db = ZODB.DB(FileStorage(str(path)), cache_size=10_000_000)
    conn = db.open()
    root = conn.root()
    evolve1(root)
    transaction.commit()
    notify = root[KEY]
    base = rss_kib()
    start = time.monotonic()
    now = 1.8e9
    for i in range(0, count, 20_000):
        for b, a in keys[i:i + 20_000]:
            notify.remember(b, a, Pending(now, now, 1, "unreachable", "isup"))
        transaction.commit()
    elapsed = time.monotonic() - start
    # Load every bucket into the cache, as a long-running node would.
    assert sum(1 for _ in notify.pending.items()) == count
    in_zodb = (rss_kib() - base) * 1024 / count
    probe = time.monotonic()
    for b, _ in keys[:10_000]:
        notify.waiting_for(b)
    lookup = (time.monotonic() - probe) / 10_000 * 1e6
    conn.close()
    db.pack()
    db.close()
    disk = path.stat().st_size / count
    base = rss_kib()
    plain = {b + "\x00" + a: (now, now, 1, "unreachable", "isup")
             for b, a in keys}
    in_dict = (rss_kib() - base) * 1024 / count
    del plain
    return {"entries": count, "write s": elapsed,
            "disk B/entry": disk, "RAM B/entry (OOBTree, loaded)": in_zodb,
            "RAM B/entry (dict baseline)": in_dict,
            "lookup by B (us)": lookup}


def main() -> None:
    sip_calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    iams = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, (ok, failed, rate) in sip_busy(work, sip_calls).items():
            print(f"SIP {label}: {ok} ok, {failed} failed, {rate:.0f} triggers/s")
        for label, (done, rate) in isup_unreachable(work, iams).items():
            print(f"ISUP {label}: {done} calls, {rate:.1f} triggers/s")
        for k, v in memory(work, count).items():
            print(f"pending {k}: {v:.1f}" if isinstance(v, float) else
                  f"pending {k}: {v}")
    print(f"load average at end: {os.getloadavg()}")
    print(f"max RSS of the bench process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} KiB")


if __name__ == "__main__":
    main()
