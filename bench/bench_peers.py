#!/usr/bin/env python3
"""
The peers and the node side by side, in one run, with the peers' own load
tools (issue 16 item 6): the Jasmin anchor (../shared/anchors/jasmin:
jasmind, RabbitMQ, Redis, sink.py, load.py) and the Kamailio anchor
(../shared/anchors/kamailio: bench.py, SIPp scenarios reg_auth.xml and
msg_uac_auth.xml / msg_uas.xml), then the node with the same tools and
scenarios, one after the other, and the node's submit_sm_resp latency
paced at half its ingress rate (bench_smpp_latency.py).  Writes the table
(peer figure, node figure, ratio) with the date, machine and load average
to stdout, and with C{--write} appends it to bench/RESULTS.md.

    python bench/bench_peers.py [--quick] [--write] [--only smpp|sip]

C{--quick}: N=3000 submit_sm, SIP ladder 200,500 with 5 s steps and 500
users (a couple of minutes in all); the full run: N=20000, ladder
500..10000 with 10 s steps and 5000 users.  The Kamailio harness waits
for a quiet machine before each step (up to an hour); on this shared box
that wait is bounded here to C{QUIET_WAIT} seconds and the load average
is recorded instead.  A peer that is not installed is reported as such
and the node's side runs alone.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers_net import free_port, sink_stats, wait_port

ROOT = Path(__file__).resolve().parents[1]
ANCHORS = ROOT.parent.parent / "shared" / "anchors"
if not ANCHORS.exists():
    ANCHORS = Path("/work/shared/anchors")
JASMIN = ANCHORS / "jasmin"
KAMAILIO = ANCHORS / "kamailio"
TWISTD = Path(sys.executable).parent / "twistd"
VENV = Path(os.environ.get("VENV", "/opt/anchors/jasmin-venv"))
QUIET_WAIT = int(os.environ.get("QUIET_WAIT", "5"))
FIRST_USER = 100000000
#: Registrations per second the node is preloaded with before the SIP
#: ladder (each is the account's first read from the database).
PRELOAD_RATE = int(os.environ.get("PRELOAD_RATE", "500"))
SIP_DOMAIN = "127.0.0.1"





def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Loads:
    """Samples the 1-minute load average while a run goes on."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def sample(self) -> None:
        self.samples.append(float(loadavg().split()[0]))

    def text(self) -> str:
        if not self.samples:
            return "-"
        return f"{min(self.samples):.1f}-{max(self.samples):.1f}"


def run_load(python: str, port: int, user: str, password: str, n: int,
             ctl: int, cpu: str, label: str, out: Path,
             timeout: int) -> dict:
    """One load.py run; its JSON line."""
    json_file = out / f"{label}.jsonl"
    subprocess.run(
        [python, str(JASMIN / "load.py"), "--port", str(port), "--user",
         user, "--password", password, "-n", str(n), "--binds", "4",
         "--window", "50", "--sink-ctl", str(ctl), "--cpu", cpu,
         "--timeout", str(timeout), "--label", label, "--json",
         str(json_file)], check=True, timeout=timeout + 90,
        stdout=subprocess.DEVNULL)
    return json.loads(json_file.read_text().splitlines()[-1])


# -- SMPP: Jasmin ---------------------------------------------------------------

def jasmin_smpp(n: int, work: Path, loads: Loads) -> dict:
    if not (VENV / "bin" / "jasmind.py").exists():
        raise RuntimeError(f"Jasmin is not installed in {VENV} "
                           f"(run {JASMIN}/install.sh)")
    run = work / "jasmin"
    env = dict(os.environ, RUN=str(run), HERE=str(JASMIN), VENV=str(VENV))
    sh = (f'source "{JASMIN}/services.sh"; set -e; start_epmd; '
          'start_rabbitmq; start_redis; prepare_jasmin_root; start_jasmind; '
          'start_sink 2776 2777; '
          f'"$PY" "{JASMIN}/jcli.py" setup --throughput 0 --connectors 1 '
          '--sink-port 2776 > "$RUN/jcli.out"')
    try:
        subprocess.run(["bash", "-c", sh], env=env, check=True, timeout=600,
                       stdout=subprocess.DEVNULL)
        pids = {name: (run / "pids" / f"{name}.pid").read_text().strip()
                for name in ("jasmind", "rabbitmq-beam", "redis", "sink")}
        cpu = ",".join(f"{k.split('-')[0]}={v}" for k, v in pids.items())
        py = str(VENV / "bin" / "python")
        run_load(py, 2775, "bench", "benchpw", 1000, 2777, cpu,
                 "jasmin-warmup", work, 300)
        loads.sample()
        result = run_load(py, 2775, "bench", "benchpw", n, 2777, cpu,
                          "jasmin", work, 600)
        loads.sample()
        return result
    finally:
        subprocess.run(["bash", "-c", f'source "{JASMIN}/services.sh"; '
                        'stop_all'], env=env, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- SMPP: the node -----------------------------------------------------------

def node_half_rate(rate: float, seconds: int) -> dict | None:
    """submit_sm_resp latency with the node's SMPP ingress paced at
    C{rate} (bench_smpp_latency.py: 4 binds, open loop, forwarding to
    sink.py), or C{None} if it printed no result."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_smpp_latency.py"),
         str(round(rate)), str(seconds), "50"],
        capture_output=True, text=True, timeout=seconds + 300).stdout
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


def node_smpp_config(work: Path, sink_port: int) -> Path:
    script = work / "provision.cli"
    script.write_text("\n".join([
        "configure terminal",
        " carrier Bench", "  system-id bench", "  password benchpw",
        "  allow-ip 127.0.0.0/8", " exit",
        " connection sink", "  host 127.0.0.1", f"  port {sink_port}",
        "  system-id node", "  password pw", "  window 100", " exit",
        " service-policy all", "  recipient-pattern %",
        "  transport smpp connection sink", " exit", "end", ""]))
    config = work / "appliance.conf"
    config.write_text(f'''[node]
name = "bench"
data_dir = "{work / 'data'}"
log_level = "warning"
provision = "{script}"

[smpp]
enabled = true
listen = "tcp:port=0:interface=127.0.0.1"

[shell]
enabled = false
''')
    return config


def start_twistd(config: Path, work: Path, profile: Path | None = None
                 ) -> subprocess.Popen:
    cmd = [str(TWISTD), "--nodaemon", "--pidfile=", "appliance",
           "--config", str(config)]
    if profile is not None:
        cmd = [str(Path(sys.executable).parent / "py-spy"), "record",
               "--format", "raw", "--rate", "200", "-o", str(profile),
               "--"] + cmd
    return subprocess.Popen(cmd, stdout=open(work / "node.log", "a"),
                            stderr=subprocess.STDOUT, cwd=str(work))


def accepted(res: dict | None) -> tuple[float | None, int]:
    """@return: submit_sm_resp with status 0 per second of the ingress
    phase, and how many were refused (any other status)."""
    if not res or not res.get("ingress_s"):
        return None, 0
    statuses = res.get("resp_status", {})
    ok = statuses.get("0x0", 0)
    return ok / res["ingress_s"], sum(statuses.values()) - ok


def wait_ports(node: subprocess.Popen, work: Path) -> dict:
    ports_file = work / "data" / "ports.json"
    deadline = time.monotonic() + 90
    while not ports_file.exists():
        if node.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((work / "node.log").read_text()[-3000:])
        time.sleep(0.1)
    return json.loads(ports_file.read_text())


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT if "py-spy" in proc.args[0]
                         else signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def node_pid(proc: subprocess.Popen) -> int:
    """The twistd process (under py-spy it is the child)."""
    if "py-spy" not in proc.args[0]:
        return proc.pid
    for _ in range(100):
        kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        text = kids.read_text().split() if kids.exists() else []
        if text:
            return int(text[0])
        time.sleep(0.1)
    raise RuntimeError("no twistd under py-spy")


def node_smpp(n: int, work: Path, loads: Loads,
              profile: Path | None = None) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    sink_port, ctl = free_port(), free_port()
    sink = subprocess.Popen(
        [sys.executable, str(JASMIN / "sink.py"), "--port", str(sink_port),
         "--ctl-port", str(ctl)], stdout=open(work / "sink.log", "w"),
        stderr=subprocess.STDOUT)
    node = None
    try:
        wait_port(sink_port)
        wait_port(ctl)
        node = start_twistd(node_smpp_config(work, sink_port), work,
                            profile)
        port = wait_ports(node, work)["smpp"][0]
        deadline = time.monotonic() + 30
        while sink_stats(ctl).get("binds", 0) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the node did not bind to the sink")
            time.sleep(0.1)
        cpu = f"node={node_pid(node)},sink={sink.pid}"
        run_load(sys.executable, port, "bench", "benchpw", 1000, ctl, cpu,
                 "node-warmup", work, 300)
        loads.sample()
        result = run_load(sys.executable, port, "bench", "benchpw", n, ctl,
                          cpu, "node", work, 600)
        loads.sample()
        return result
    finally:
        if node is not None:
            stop(node)
        sink.terminate()
        sink.wait(10)


# -- SIP: Kamailio and the node through the anchor's bench.py ----------------

RUNNER = r'''
import os, sys
sys.path.insert(0, os.environ["KAM_DIR"])
sys.argv = ["bench.py"] + sys.argv[1:]
import bench
bench.QUIET_MAX_WAIT = int(os.environ["QUIET_WAIT"])
bench.QUIET_AT_START = 0
bench.FOREIGN_RETRIES = 1
bench.main()
'''


def sip_harness(work: Path) -> Path:
    """A copy of the Kamailio anchor (its results/ land in C{work})."""
    kam = work / "kamailio"
    if not kam.exists():
        shutil.copytree(KAMAILIO, kam, ignore=shutil.ignore_patterns(
            "results"))
        (kam / "results").mkdir()
        (kam / "runner.py").write_text(RUNNER)
    return kam


def run_sip(kam: Path, env: dict, ladder: str, duration: int) -> dict:
    env = dict(os.environ, KAM_DIR=str(kam), QUIET_WAIT=str(QUIET_WAIT),
               LADDER_BREAK="failed", **env)
    subprocess.run([sys.executable, str(kam / "runner.py"), "provision"],
                   env=env, check=True, timeout=600,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = open(kam.parent / f"sip-{env.get('BENCH_TARGET')}.log", "w")
    subprocess.run([sys.executable, str(kam / "runner.py"), "run",
                    "--transport", "udp", "--children", "8", "--reps", "1",
                    "--duration", str(duration), "--ladder", ladder],
                   env=env, timeout=3600, stdout=log, stderr=log)
    found = sorted((kam / "results").glob("*.json"),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError("bench.py wrote no result")
    return json.loads(found[-1].read_text())


def sip_best(res: dict, kind: str) -> tuple[float, float | None]:
    """Highest step with 0 failed calls reaching 95 % of its rate (and
    the CPU per call there); calls of 500 ms or more are shown beside."""
    best, cpu_per_call = 0.0, None
    for s in res.get("steps", []):
        if s["kind"] != kind or s["failed"] or not s["successful"]:
            continue
        if s["successful"] < s["calls"] or \
                (s["achieved_rate"] or 0) < 0.95 * s["target_rate"]:
            continue                     # all calls done, at the rate asked
        if s["target_rate"] > best:
            best = s["target_rate"]
            rate = s["achieved_rate"] or s["target_rate"]
            pct = s["cpu_pct"]["kamailio_total"]
            cpu_per_call = pct / 100 / rate * 1e6 if rate else None
    return best, cpu_per_call


def kamailio_sip(work: Path, users: int, ladder: str, duration: int,
                 loads: Loads) -> dict:
    if shutil.which("kamailio") is None or shutil.which("sipp") is None:
        raise RuntimeError("kamailio or sipp is not installed")
    kam = sip_harness(work)
    env = {"BENCH_TARGET": "kamailio", "BENCH_NUSERS": str(users),
           "BENCH_WORK": "/tmp/kamailio-bench"}   # its kamailio.cfg names this path
    loads.sample()
    res = run_sip(kam, env, ladder, duration)
    loads.sample()
    return res


def node_sip(work: Path, users: int, ladder: str, duration: int,
             loads: Loads, workers: int = 0) -> dict:
    """The node on 127.0.0.1:5060 with the harness's users as accounts
    (and C{[sip] workers = workers})."""
    import transaction
    import ZODB
    from ZODB.FileStorage import FileStorage
    node_dir = work / f"node-sip-{workers}"
    node_dir.mkdir(parents=True, exist_ok=True)
    script = node_dir / "provision.cli"
    script.write_text('configure terminal\n product "SMS"\n'
                      '  messaging enable\n exit\n customer "Bench"\n'
                      ' exit\nend\n')
    config = node_dir / "appliance.conf"
    config.write_text(f'''[node]
name = "bench-sip"
data_dir = "{node_dir / 'data'}"
log_level = "warning"
provision = "{script}"

[sip]
enabled = true
listen = ["udp:port=5060:interface=127.0.0.1"]
domain = "{SIP_DOMAIN}"
realm = "{SIP_DOMAIN}"
min_expires = 60
max_expires = 7200
auth_failures = 100000
workers = {workers}

[shell]
enabled = false
''')
    first = start_twistd(config, node_dir)
    try:
        wait_ports(first, node_dir)
    finally:
        stop(first)
    db = ZODB.DB(FileStorage(str(node_dir / "data" / "Data.fs")))
    try:
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        root = conn.root()["appliance"]
        for i in range(users):
            name = str(FIRST_USER + i)
            root.add_account("Bench", name).set_password(f"pw{name}",
                                                         SIP_DOMAIN)
            root.set_account_product(name, "SMS")
            root.add_did(name, name)
        tm.commit()
        conn.close()
    finally:
        db.close()
    kam = sip_harness(work)
    env = {"BENCH_TARGET": "product", "BENCH_NUSERS": str(users),
           "BENCH_WORK": str(work / f"node-work-{workers}"),
           "BENCH_PRODUCT_CMD": f"{TWISTD} --nodaemon --pidfile= appliance "
                                f"--config {config}",
           "BENCH_PRODUCT_CWD": str(node_dir),
           "BENCH_PRODUCT_PORTS": "data/ports.json",
           "PRELOAD_PORT": "5070", "PRELOAD_RATE": str(PRELOAD_RATE)}
    loads.sample()
    res = run_sip(kam, env, ladder, duration)
    loads.sample()
    return res


# -- the table ----------------------------------------------------------------

def ratio(ours, theirs) -> str:
    if not ours or not theirs:
        return "-"
    return f"{ours / theirs:.2f}"


def fmt(value, unit="") -> str:
    if value is None:
        return "not measured"
    return f"{value:,.0f}{unit}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--write", action="store_true",
                    help="append the table to bench/RESULTS.md")
    ap.add_argument("--only", choices=("smpp", "sip"))
    ap.add_argument("--keep", help="work in this directory and keep it")
    ap.add_argument("--ladder", help="the SIP ladder, calls/s separated by commas")
    ap.add_argument("--sip-workers", default="0",
                    help="[sip] workers of the node's runs, separated by commas "
                         "(one SIP run of the node each, after Kamailio's)")
    args = ap.parse_args()
    n = 3000 if args.quick else 20000
    users = 500 if args.quick else 5000
    ladder = args.ladder or ("200,500" if args.quick else
                             "500,1000,2000,3000,5000,8000,10000")
    duration = 5 if args.quick else 10
    loads = Loads()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    notes: list[str] = []
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.only in (None, "smpp"):
            try:
                jas = jasmin_smpp(n, work, loads)
            except Exception as e:
                jas = None
                notes.append(f"Jasmin not measured in this run: {e}")
            ours = node_smpp(n, work / "node-smpp", loads)
            print("jasmin:", json.dumps(jas), "\nnode:", json.dumps(ours),
                  flush=True)
            j_in, j_ref = accepted(jas)
            o_in, o_ref = accepted(ours)
            j_e2e = jas and jas.get("e2e_rate")
            rows.append((
                f"SMPP ingress, submit_sm_resp/s with status 0 (refusals "
                f"beside), load.py N={n}, 4 binds x window 50, forwarding "
                "at full speed (p99 resp)",
                f"Jasmin 0.11.1: {fmt(j_in)} (not durable; {j_ref} refused; "
                f"p99 {jas['resp_latency_ms']['p99'] if jas else '-'} ms)",
                f"{fmt(o_in)} (durable; {o_ref} refused; p99 "
                f"{ours['resp_latency_ms']['p99']} ms)",
                ratio(o_in, j_in)))
            rows.append((
                "SMPP to SMPP end to end, load.py -> peer -> sink.py, msg/s",
                f"Jasmin: {fmt(j_e2e)}", fmt(ours.get("e2e_rate")),
                ratio(ours.get("e2e_rate"), j_e2e)))
            cpu_in = ours.get("cpu_pct_ingress", {}).get("node")
            if cpu_in and o_in:
                jcpu = jas and jas.get("cpu_pct_ingress", {}).get("jasmind")
                j_us = (jcpu / 100 / j_in * 1e6) if jcpu and j_in else None
                n_us = cpu_in / 100 / o_in * 1e6
                rows.append(("CPU per submit_sm accepted (ingress phase)",
                             f"jasmind: {fmt(j_us, ' µs')}",
                             fmt(n_us, " µs"), ratio(n_us, j_us)))
            if o_in:
                half = node_half_rate(o_in / 2, 10 if args.quick else 20)
                rows.append((
                    f"submit_sm_resp latency at half the node's ingress rate "
                    f"({o_in / 2:,.0f}/s paced, open loop, 4 binds, "
                    "bench_smpp_latency.py)",
                    "goal: p99 at most 20 ms",
                    "not measured" if half is None else
                    f"p50 {half['p50_ms']} ms, p99 {half['p99_ms']} ms "
                    f"({half['answered']} answered, node at "
                    f"{half.get('node_cpu_pct')} % of a core)",
                    "-"))
        if args.only in (None, "sip"):
            try:
                kam = kamailio_sip(work, users, ladder, duration, loads)
            except Exception as e:
                kam = None
                notes.append(f"Kamailio not measured in this run: {e}")
            nodes = []
            for workers in (int(w) for w in args.sip_workers.split(",")):
                try:
                    nodes.append((workers, node_sip(work, users, ladder, duration, loads,
                                                    workers)))
                except Exception as e:
                    nodes.append((workers, None))
                    notes.append(f"the node's SIP side (workers={workers}) not "
                                 f"measured: {e}")
            for kind, what in (("reg", "SIP REGISTER with digest, highest "
                                "step with 0 failed calls, reg_auth.xml"),
                               ("msg", "SIP MESSAGE with digest relayed to a"
                                " registered UAS (msg_uac_auth / msg_uas)")):
                kb, kc = sip_best(kam, kind) if kam else (None, None)
                for workers, node in nodes:
                    nb, nc = sip_best(node, kind) if node else (None, None)
                    label = f" [sip] workers = {workers}" if len(nodes) > 1 else ""
                    rows.append((f"{what}, calls/s (ladder {ladder}, "
                                 f"{duration} s steps, {users} users){label}",
                                 f"Kamailio 5.6, 8 children: {fmt(kb)}",
                                 fmt(nb), ratio(nb, kb)))
                    rows.append((f"CPU per call at that step ({kind}){label}",
                                 f"Kamailio: {fmt(kc, ' µs')}",
                                 fmt(nc, " µs"), ratio(nc, kc)))
    lines = [f"## Peers side by side (`make bench-peers"
             f"{' QUICK=1' if args.quick else ''}`), {started}", "",
             f"Machine: {platform.node()}, {os.cpu_count()} cores, "
             f"{platform.platform()}; **shared machine**: load average "
             f"(1 min) {loads.text()} during the run (other engineers' "
             "tests and benches), so absolute figures are low and noisy; "
             "the ratios are between runs a few minutes apart in the same "
             "sitting.", "",
             "| measure | peer | node | ratio node/peer |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    if notes:
        lines += [""] + [f"* {x}" for x in notes]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(ROOT / "bench" / "RESULTS.md", "a") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
