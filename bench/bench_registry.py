"""
SIP registrations, before and after, in one run (prints figures; not a
test): the node of a base revision and the node of this tree, one after
the other, each on a fresh FileStorage with N accounts, driven by SIPp with
the Kamailio anchor's C{reg_auth.xml} (REGISTER, 401, REGISTER with
digest, 200), C{LIMIT} calls in flight.  For each:

 - REGISTER with digest per second, failures, and the node's CPU time
   (utime + stime from C{/proc/PID/stat}) per REGISTER: first
   registrations, then refreshes of the same N (a second SIPp pass);
 - memory per registration: the node's RSS before SIPp, right after it
   (the last 32 s of server transactions, RFC 3261 timer J, are still
   held), once those have ended (C{SETTLE} seconds later: the allocator
   keeps what they used), and after a restart that loads the
   registrations from the database (the registrations alone).

The base revision runs from a copy of its tree (C{git archive}) put first
on C{PYTHONPATH}, with this tree's virtualenv.

    .venv/bin/python bench/bench_registry.py [N] [BASE_REVISION]
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import transaction  # noqa: E402
import ZODB  # noqa: E402
from ZODB.FileStorage import FileStorage  # noqa: E402

SCENARIO = Path("/work/shared/anchors/kamailio/scenarios/reg_auth.xml")
TWISTD = Path(sys.executable).parent / "twistd"
DOMAIN = "127.0.0.1"
LIMIT = 200
SETTLE = 40
FIRST_USER = 100000000
CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kib(pid: int) -> int:
    """Resident set size of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def config(work: Path) -> Path:
    """A node with SIP on 127.0.0.1, UDP, log level warning."""
    script = work / "provision.cli"
    script.write_text('configure terminal\n product "SMS"\n  messaging enable\n exit\n'
                      ' customer "Bench"\n exit\nend\n')
    path = work / "appliance.conf"
    path.write_text(f'''[node]
name = "bench-registry"
data_dir = "{work / 'data'}"
log_level = "warning"
provision = "{script}"

[sip]
enabled = true
listen = ["udp:port=0:interface=127.0.0.1"]
domain = "{DOMAIN}"
realm = "{DOMAIN}"
min_expires = 60
max_expires = 7200
auth_failures = 100000

[shell]
enabled = false
''')
    return path


def start(conf: Path, work: Path, env: dict) -> tuple[subprocess.Popen, int]:
    """Start twistd; wait for its ports; return it and its SIP UDP port."""
    ports = work / "data" / "ports.json"
    if ports.exists():
        ports.unlink()
    proc = subprocess.Popen([str(TWISTD), "--nodaemon", "--pidfile=", "appliance",
                             "--config", str(conf)], cwd=str(work), env=env,
                            stdout=open(work / "node.log", "a"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not ports.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((work / "node.log").read_text()[-3000:])
        time.sleep(0.2)
    return proc, json.loads(ports.read_text())["sip_udp"][0]


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after a minute."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def provision(work: Path, n: int) -> None:
    """N accounts (password pw<name>, DID = name) straight into the database."""
    db = ZODB.DB(FileStorage(str(work / "data" / "Data.fs")))
    try:
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        root = conn.root()["appliance"]
        for i in range(n):
            name = str(FIRST_USER + i)
            root.add_account("Bench", name).set_password(f"pw{name}", DOMAIN)
            root.set_account_product(name, "SMS")
            root.add_did(name, name)
            if i % 20000 == 19999:
                tm.commit()
        tm.commit()
        conn.close()
    finally:
        db.close()


def sipp(work: Path, port: int, n: int) -> tuple[int, int, float]:
    """reg_auth.xml for N users; return (successful, failed, seconds)."""
    users = work / "users.csv"
    users.write_text("SEQUENTIAL\n" + "".join(
        f"{FIRST_USER + i};pw{FIRST_USER + i}\n" for i in range(n)))
    started = time.perf_counter()
    p = subprocess.run(["sipp", "-sf", str(SCENARIO), f"127.0.0.1:{port}", "-i", "127.0.0.1",
                        "-t", "u1", "-inf", str(users), "-au", "[field0]", "-ap", "[field1]",
                        "-key", "contact_port", "5070", "-key", "contact_params",
                        ";transport=udp", "-m", str(n), "-r", "100000", "-rp", "1000",
                        "-l", str(LIMIT), "-nostdin", "-timeout", "900s",
                        "-trace_stat", "-stf", str(work / "stat.csv")],
                       cwd=str(work), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=1000)
    elapsed = time.perf_counter() - started
    rows = (work / "stat.csv").read_text().splitlines()
    head, last = rows[0].split(";"), rows[-1].split(";")
    stat = dict(zip(head, last))
    ok, failed = int(stat["SuccessfulCall(C)"]), int(stat["FailedCall(C)"])
    del p
    return ok, failed, elapsed


def measure(label: str, n: int, env: dict) -> dict:
    """One node: provision, register N, measure."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-registry-{label}-"))
    try:
        conf = config(work)
        first, _ = start(conf, work, env)
        stop(first)
        t = time.perf_counter()
        provision(work, n)
        print(f"[{label}] {n} accounts provisioned in {time.perf_counter() - t:.0f} s",
              flush=True)
        node, port = start(conf, work, env)
        try:
            time.sleep(3)
            rss0, cpu0 = rss_kib(node.pid), cpu_seconds(node.pid)
            ok, failed, elapsed = sipp(work, port, n)
            rss1, cpu1 = rss_kib(node.pid), cpu_seconds(node.pid)
            time.sleep(SETTLE)
            rss2 = rss_kib(node.pid)
            # Refreshes: the same users again (their accounts were read
            # once already; their bindings exist).
            cpu2 = cpu_seconds(node.pid)
            ok2, failed2, elapsed2 = sipp(work, port, n)
            cpu3 = cpu_seconds(node.pid)
        finally:
            stop(node)
        # The registrations alone: restarted, the node loads them from the
        # database (and has no transactions); the first start had none.
        node, port = start(conf, work, env)
        try:
            time.sleep(3)
            rss3 = rss_kib(node.pid)
        finally:
            stop(node)
        result = dict(ok=ok, failed=failed, elapsed=elapsed, rate=ok / elapsed,
                      cpu_us=(cpu1 - cpu0) / max(ok, 1) * 1e6,
                      refresh_rate=ok2 / elapsed2, refresh_failed=failed2,
                      refresh_cpu_us=(cpu3 - cpu2) / max(ok2, 1) * 1e6,
                      rss0=rss0, rss1=rss1, rss2=rss2, rss3=rss3,
                      per_reg_loaded=(rss3 - rss0) * 1024 / max(ok, 1),
                      per_reg_now=(rss1 - rss0) * 1024 / max(ok, 1),
                      per_reg_settled=(rss2 - rss0) * 1024 / max(ok, 1),
                      load=os.getloadavg()[0])
        print(f"[{label}] {ok} ok, {failed} failed in {elapsed:.1f} s = {result['rate']:,.0f}"
              f" REGISTER/s; CPU {result['cpu_us']:,.0f} µs per REGISTER; RSS"
              f" {rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MiB (settled {rss2 / 1024:.0f}):"
              f" {result['per_reg_now']:,.0f} B per registration at once,"
              f" {result['per_reg_settled']:,.0f} B settled; restarted with them loaded:"
              f" {rss3 / 1024:.0f} MiB = {result['per_reg_loaded']:,.0f} B per registration;"
              f" load {result['load']:.1f}; refreshes: {ok2} ok, {failed2} failed ="
              f" {result['refresh_rate']:,.0f} REGISTER/s, CPU {result['refresh_cpu_us']:,.0f} µs"
              f" per REGISTER", flush=True)
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(n: int = 100_000, base: str = "fee0375") -> None:
    """Measure the base revision, then this tree; print both and the ratios."""
    if shutil.which("sipp") is None:
        sys.exit("needs sipp (Debian sip-tester)")
    tree = Path(tempfile.mkdtemp(prefix="bench-registry-base-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", base],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        before = measure(f"before {base}", n,
                         dict(os.environ, PYTHONPATH=str(tree)))
        after = measure("after", n, dict(os.environ))
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    print(f"after/before, refreshes: REGISTER/s x{after['refresh_rate'] / before['refresh_rate']:.2f},"
          f" CPU per REGISTER x{after['refresh_cpu_us'] / before['refresh_cpu_us']:.2f}")
    print(f"after/before: REGISTER/s x{after['rate'] / before['rate']:.2f}, CPU per REGISTER"
          f" x{after['cpu_us'] / before['cpu_us']:.2f}, memory per registration (settled)"
          f" x{after['per_reg_settled'] / before['per_reg_settled']:.2f}, loaded after a"
          f" restart x{after['per_reg_loaded'] / max(before['per_reg_loaded'], 1):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
         *(sys.argv[2:3]))
