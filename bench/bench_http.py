#!/usr/bin/env python3
"""
Accepted /sendsms/send per second on the node's HTTP API, with keep-alive
and several connections (Debian's wrk with a Lua script varying the
recipient), durable accept (each answer after its fsync'd batch commit)
and billing (a prepaid tenant with a tariff, debited in the accept
commit); then the same load against Jasmin's HTTP API (/send) in the same
run, using the anchor harness in ../shared/anchors/jasmin (jasmind,
RabbitMQ, Redis, its SMSC sink).

Both forward every message over SMPP to the anchor's sink.py.  Prints
one line per system and a markdown table: requests/s answered 2xx,
p50/p99 latency as wrk measured it, and what the sink received.

    python bench/bench_http.py [--duration 10] [--connections 32]
                               [--threads 2] [--no-jasmin]

With C{--in-process N} it measures instead, without sockets or other
processes, the CPU time of N /sendsms/send requests fed to the site's
channels (32 keep-alive channels, one request each per batched commit)
of this tree's code: the HTTP layer alone (a core that accepts at once)
and with the real core, billing and an in-memory database.  Run it from
two checkouts (PYTHONPATH) for a before/after pair in one sitting.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers_net import free_port, sink_stats, wait_port
from profile_node import descendants

ROOT = Path(__file__).resolve().parents[1]
ANCHOR = ROOT.parent.parent / "shared" / "anchors" / "jasmin"
if not ANCHOR.exists():
    ANCHOR = Path("/work/shared/anchors/jasmin")
TWISTD = Path(sys.executable).parent / "twistd"
TOKEN = "bench-token-0123456789abcdefghijklmnopqrstu"

LUA = r'''
counter = 0
request = function()
  counter = counter + 1
  local path = string.format(
    "%s?from=123456789&to=3519%08d&%s=bench+message+%d%s",
    prefix, counter %% 100000000, field, counter, suffix)
  return wrk.format("GET", path, headers)
end

threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  codes = {}
end
function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("codes")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d: %d\n", status, n))
  end
end
'''





def sink_reset(ctl: int) -> None:
    with socket.create_connection(("127.0.0.1", ctl), 5) as s:
        s.sendall(b"RESET\n")
        s.recv(100)


def start_sink(python: str, port: int, ctl: int, log: Path):
    p = subprocess.Popen([python, str(ANCHOR / "sink.py"), "--port",
                          str(port), "--ctl-port", str(ctl)],
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    wait_port(port)
    wait_port(ctl)
    return p


def cpu_seconds(pids: list[int], system: bool = False) -> float:
    """User plus system CPU time of processes (and their waited-for
    children), from /proc; with C{system}, the system time only."""
    total = 0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
        except OSError:
            continue
        f = fields.split()
        total += int(f[12]) + int(f[14]) if system else \
            int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return total / tick


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" \
        else value


def run_wrk(base: str, prefix: str, suffix: str, headers: dict,
            duration: int, connections: int, threads: int,
            work: Path, field: str = "body", pids: list[int] = ()) -> dict:
    script = work / "send.lua"
    lua = (f"prefix = {json.dumps(prefix)}\nsuffix = {json.dumps(suffix)}\n"
           f"field = {json.dumps(field)}\n"
           f"headers = {{{', '.join(f'[{json.dumps(k)}] = {json.dumps(v)}' for k, v in headers.items())}}}\n"
           + LUA.replace("%%", "%"))
    script.write_text(lua)
    cpu0 = cpu_seconds(list(pids))
    sys0 = cpu_seconds(list(pids), system=True)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d",
         f"{duration}s", "--latency", "-s", str(script), base],
        capture_output=True, text=True, timeout=duration + 60).stdout
    cpu = cpu_seconds(list(pids)) - cpu0
    system = cpu_seconds(list(pids), system=True) - sys0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    seconds = float(re.search(r"requests in ([\d.]+)s", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    bad = int(bad.group(1)) if bad else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write "
                       r"(\d+), timeout (\d+)", out)
    dist = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    statuses = {int(k): int(v) for k, v in
                re.findall(r"^status (\d+): (\d+)$", out, re.M)}
    return {"requests": total, "seconds": seconds, "non_2xx": bad,
            "accepted": total - bad,
            "accepted_per_s": (total - bad) / seconds,
            "p50_ms": _ms(dist["50"]), "p99_ms": _ms(dist["99"]),
            "socket_errors": errors.group(0) if errors else "none",
            "statuses": statuses,
            "cpu_s": cpu, "system_s": system,
            "accepted_per_cpu_s": (total - bad) / cpu if cpu else 0.0,
            "raw": out}


def batch_stats(base: str) -> tuple[float, float, float]:
    """@return: the node's batched commits so far, the writes they
    carried and their seconds, from C{/metrics}."""
    import urllib.request
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read()
    values = {}
    for line in text.decode().splitlines():
        for name in ("appliance_commit_batch_size_count",
                     "appliance_commit_batch_size_sum",
                     "appliance_commit_seconds_sum"):
            if line.startswith(name + " "):
                values[name] = float(line.split()[1])
    return (values.get("appliance_commit_batch_size_count", 0.0),
            values.get("appliance_commit_batch_size_sum", 0.0),
            values.get("appliance_commit_seconds_sum", 0.0))


def node_config(work: Path, sink_port: int, workers: int = 0) -> Path:
    data = work / "data"
    script = work / "provision.cli"
    script.write_text("\n".join([
        "configure terminal",
        " tariff T", "  currency USD", "  prefix 351 0.001", " exit",
        " tenant bench", f"  token-hash {token_hash(TOKEN)}",
        "  password benchpw", "  tariff T", "  prepaid",
        "  balance add 100000000", " exit",
        " connection sink", "  host 127.0.0.1", f"  port {sink_port}",
        "  system-id node", "  password pw", "  window 100", " exit",
        " service-policy pt", "  recipient-pattern 351%",
        "  transport smpp connection sink", " exit", "end", ""]))
    config = work / "appliance.conf"
    config.write_text(f'''[node]
name = "bench"
data_dir = "{data}"
log_level = "warning"
provision = "{script}"

[http]
enabled = true
listen = "tcp:port=0:interface=127.0.0.1"
workers = {workers}
''')
    return config



def token_hash(token: str) -> str:
    import hashlib
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def bench_node(args, work: Path, workers: int = 0) -> dict:
    sink_port, ctl = free_port(), free_port()
    sink = start_sink(sys.executable, sink_port, ctl, work / "sink.log")
    config = node_config(work, sink_port, workers)
    log = open(work / "node.log", "w")
    node = subprocess.Popen([str(TWISTD), "--nodaemon", "--pidfile=",
                             "appliance", "--config", str(config)],
                            stdout=log, stderr=subprocess.STDOUT,
                            cwd=str(work))
    try:
        ports_file = work / "data" / "ports.json"
        deadline = time.monotonic() + 60
        while not ports_file.exists():
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((work / "node.log").read_text())
            time.sleep(0.1)
        port = json.loads(ports_file.read_text())["http"][0]
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while sink_stats(ctl).get("binds", 0) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the node did not bind to the sink")
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        run_wrk(base, "/sendsms/send", "", auth, 2, args.connections,
                args.threads, work)                           # warm-up
        time.sleep(1)
        sink_reset(ctl)
        before = batch_stats(base)
        result = run_wrk(base, "/sendsms/send", "", auth, args.duration,
                         args.connections, args.threads, work,
                         pids=[node.pid, *descendants(node.pid)])
        after = batch_stats(base)
        commits = after[0] - before[0]
        result["commits"] = commits
        result["writes_per_commit"] = (after[1] - before[1]) / commits \
            if commits else 0.0
        result["commit_ms"] = (after[2] - before[2]) / commits * 1000 \
            if commits else 0.0
        time.sleep(2)
        result["sink"] = sink_stats(ctl)
        check = subprocess.run(
            ["curl", "-s", "-H", f"Authorization: Bearer {TOKEN}",
             f"{base}/sendsms/send?from=123456789&to=351911111111"
             "&body=check"], capture_output=True, text=True).stdout
        result["check"] = check
        return result
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(30)
        except subprocess.TimeoutExpired:
            node.kill()
        sink.terminate()
        sink.wait(10)


def bench_jasmin(args, work: Path) -> dict:
    venv = Path(os.environ.get("VENV", "/opt/anchors/jasmin-venv"))
    if not (venv / "bin" / "jasmind.py").exists():
        raise RuntimeError(f"Jasmin is not installed in {venv} "
                           f"(run {ANCHOR}/install.sh)")
    run = work / "jasmin"
    env = dict(os.environ, RUN=str(run), HERE=str(ANCHOR), VENV=str(venv))
    sh = (f'source "{ANCHOR}/services.sh"; set -e; start_epmd; '
          'start_rabbitmq; start_redis; prepare_jasmin_root; start_jasmind; '
          'start_sink 2776 2777; '
          f'"$PY" "{ANCHOR}/jcli.py" setup --throughput 0 --sink-port 2776 '
          '> "$RUN/jcli.out"')
    try:
        subprocess.run(["bash", "-c", sh], env=env, check=True,
                       timeout=600)
        base = "http://127.0.0.1:1401"
        suffix = "&username=bench&password=benchpw"
        run_wrk(base, "/send", suffix, {}, 2, args.connections,
                args.threads, work, "content")
        time.sleep(1)
        sink_reset(2777)
        pids = []
        for name in ("jasmind", "rabbitmq-beam", "redis"):
            f = run / "pids" / f"{name}.pid"
            if f.exists():
                pids.append(int(f.read_text().strip()))
        result = run_wrk(base, "/send", suffix, {}, args.duration,
                         args.connections, args.threads, work, "content",
                         pids=pids)
        time.sleep(2)
        result["sink"] = sink_stats(2777)
        return result
    finally:
        subprocess.run(["bash", "-c", f'source "{ANCHOR}/services.sh"; '
                        'stop_all'], env=env, timeout=300)


def in_process(requests: int, fake_core: bool, basic: bool = False,
               profile: str | None = None) -> float:
    """
    @param profile: write a cProfile summary of the measured requests
        there (the top functions by own time and by total time).
    @return: CPU seconds per request of the site (and the core unless
        C{fake_core}) over 32 channels on StringTransports.
    """
    import itertools
    import pathlib
    sys.path.insert(0, str(Path.cwd()))
    from twisted.internet import defer
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import MemoryReactorClock, StringTransport
    from appliance.application import memory_storage
    from appliance.config import parse
    from appliance.http.service import APISite, HTTPService
    from appliance.metrics import Metrics
    from appliance.model.passwords import verify_secret
    from appliance.node import PortMap
    from tests.http.helpers import Core

    clock = MemoryReactorClock()
    clock.advance(1_800_000_000)
    storage = memory_storage(reactor=clock)
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    script = node_config(work, 9).parent / "provision.cli"
    core = Core(storage, clock, script=script.read_text())
    section = parse("[http]\nenabled = true\n", base=work).service("http")
    service = HTTPService(section, clock, storage, core.core,
                          PortMap(work / "ports.json"),
                          charger=core.billing.charger, metrics=Metrics(),
                          verify=lambda h, p: defer.succeed(
                              verify_secret(h, p)))
    if fake_core:
        ids = itertools.count(1)

        from appliance.messaging.vocabulary import Authorization

        class Accepting:
            def authorize(self, submission):
                return Authorization(None, None, clock.seconds())

            def submit(self, submission, authorization=None):
                return defer.succeed(next(ids))
        service.sender.core = Accepting()
    site = APISite(service.resource, service.section, service.reactor)
    channels = []
    for _ in range(32):
        channel = site.buildProtocol(None)
        transport = StringTransport()
        transport.getPeer = lambda: IPv4Address("TCP", "127.0.0.1", 40000)
        channel.makeConnection(transport)
        channels.append((channel, transport))
    auth = (b"Authorization: Basic YmVuY2g6YmVuY2hwdw==\r\n" if basic else
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n")

    def run(count: int, start: int) -> None:
        for i in range(start, start + count, len(channels)):
            for j, (channel, _) in enumerate(channels):
                channel.dataReceived(
                    b"GET /sendsms/send?from=123456789&to=3519%08d&body="
                    b"bench+message+%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    % (i + j, i + j) + auth + b"\r\n")
            storage.flush()
            clock.advance(0)
            storage.flush()
    run(320, 0)
    for _, transport in channels:
        transport.clear()
    if profile:
        import cProfile
        import io
        import pstats
        profiler = cProfile.Profile()
        profiler.enable()
    started = time.process_time()
    run(requests, 1000)
    used = time.process_time() - started
    if profile:
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)
        text = re.sub(r"/\S*/(site-packages|appliance|lib/python3\.\d+)/",
                      r"\1/", out.getvalue())
        Path(profile).write_text(text)
    answered = sum(t.value().count(b"HTTP/1.1 200 OK") for _, t in channels)
    assert answered >= requests, f"only {answered} answered 200"
    shutil.rmtree(work, ignore_errors=True)
    return used / requests


def report_node(label: str, ours: dict) -> None:
    """Print one node run's figures."""
    print(f"{label}: {ours['accepted_per_s']:.0f} accepted/s, p50 "
          f"{ours['p50_ms']:.2f} ms, p99 {ours['p99_ms']:.2f} ms, "
          f"{ours['non_2xx']} non-2xx {ours['statuses']}, sink got "
          f"{ours['sink'].get('count')}; {ours['socket_errors']}")
    print(f"  CPU {ours['cpu_s']:.2f} s of which system "
          f"{ours['system_s']:.2f} s; {ours['commits']:.0f} batched "
          f"commits, {ours['writes_per_commit']:.1f} writes and "
          f"{ours['commit_ms']:.2f} ms each")
    print("  check:", ours["check"].strip())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-jasmin", action="store_true")
    ap.add_argument("--workers", default="0", metavar="N[,M...]",
                    help="[http] workers of the node, one run per count "
                    "(0: the main process alone)")
    ap.add_argument("--in-process", type=int, default=0, metavar="N",
                    help="measure N requests in process instead")
    ap.add_argument("--cprofile", metavar="FILE",
                    help="with --in-process: profile the HTTP layer's "
                    "Bearer requests into FILE")
    ap.add_argument("--with-core", action="store_true",
                    help="with --cprofile: profile the requests through "
                    "the real core, billing and an in-memory database")
    args = ap.parse_args()
    if args.in_process and args.cprofile:
        cost = in_process(args.in_process, not args.with_core,
                          profile=args.cprofile)
        what = "with core and billing" if args.with_core else "HTTP layer"
        print(f"{what}, Bearer, under cProfile: {cost * 1e6:.0f} us "
              f"CPU per request; summary in {args.cprofile}")
        return
    if args.in_process:
        for label, fake, basic in (("HTTP layer, Bearer", True, False),
                                   ("HTTP layer, Basic", True, True),
                                   ("with core and billing, Bearer", False,
                                    False)):
            cost = in_process(args.in_process, fake, basic)
            print(f"{label}: {cost * 1e6:.0f} us CPU per request")
        print(f"load average: "
              f"{Path('/proc/loadavg').read_text().split()[:3]}")
        return
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (Debian package wrk)")
    rows = []
    print(f"load average at the start: "
          f"{Path('/proc/loadavg').read_text().split()[:3]}")
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        work = Path(tmp)
        for workers in [int(n) for n in args.workers.split(",")]:
            label = f"node, {workers} workers" if workers else "node"
            (work / label).mkdir()
            ours = bench_node(args, work / label, workers)
            report_node(label, ours)
            rows.append((f"{label} /sendsms/send", ours))
        if not args.no_jasmin:
            (work / "jasmin").mkdir()
            try:
                theirs = bench_jasmin(args, work)
                print(f"jasmin: {theirs['accepted_per_s']:.0f} accepted/s,"
                      f" p50 {theirs['p50_ms']:.2f} ms, p99 "
                      f"{theirs['p99_ms']:.2f} ms, {theirs['non_2xx']} "
                      f"non-2xx {theirs['statuses']}, sink got "
                      f"{theirs['sink'].get('count')}")
                rows.append(("Jasmin 0.11.1 /send", theirs))
            except Exception as e:
                print(f"jasmin: not measured: {e}")
    print()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
          "(keep-alive), one message per request")
    print()
    print("| system | accepted/s | p50 ms | p99 ms | non-2xx | sink received"
          " in the window | CPU s used | CPU us per accepted | accepted per "
          "CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        per = r["cpu_s"] / r["accepted"] * 1e6 if r["accepted"] else 0
        print(f"| {name} | {r['accepted_per_s']:.0f} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['non_2xx']} | "
              f"{r['sink'].get('count')} | {r['cpu_s']:.1f} | {per:.0f} | "
              f"{r['accepted_per_cpu_s']:.0f} |")
    peer = [r for name, r in rows if name.startswith("Jasmin")]
    for name, a in rows:
        if peer and not name.startswith("Jasmin"):
            b = peer[0]
            print(f"\nratio {name} / Jasmin: accepted/s "
                  f"{a['accepted_per_s'] / max(b['accepted_per_s'], 1e-9):.2f}x,"
                  f" accepted per CPU second "
                  f"{a['accepted_per_cpu_s'] / max(b['accepted_per_cpu_s'], 1e-9):.2f}x")
    print(f"\nload average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
