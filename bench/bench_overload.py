#!/usr/bin/env python3
"""
Overload and bad peers, against the running node (issue 17 item 2,
issue 16 item 4), in one run:

 1. Capacity of each listener, closed loop: SMPP (4 binds x window 25,
    every message forwarded over an outbound connection to a fast SMSC)
    and HTTP (/sendsms/send on 16 keep-alive connections, same SMSC).
    The open-loop HTTP load has 256 keep-alive connections and sends each
    request on one with nothing outstanding (a request due while all are
    busy is counted as "no free connection").
 2. Open loop at 0.5x, 2x, 5x, then 0.5x again of that capacity (submits
    sent at a fixed rate whatever comes back): per phase, the answers by
    status (OK, ESME_RTHROTTLED, ESME_RMSGQFUL / 429, 503), the p50/p99
    of admitted traffic, the node's peak RSS, and after the drop how long
    until the node answers everything offered with OK again (recovery).
 3. Bad peers: the others (carrier1 to an SMSC, carrier3 to a SIP app,
    each one bind keeping 20 submit_sm outstanding) run for a few
    seconds while carrier2 sends 50 submit_sm/s to the fast SMSC (the
    baseline), then beside each bad peer in turn: three half-open SMPP
    binds (100 submits each, then silent and never reading), a half-open
    HTTP client (pipelines, never reads, plus idle connections), a
    flooding bind (20,000 submits, never reads), and carrier2's 50/s
    going to a slow SMSC (answers submit_sm after 3 s), a slow app
    (answers MESSAGE after 5 s) or a dead app (registered, then gone);
    printed as the others' rate beside the bad peer over their rate
    measured just before without it (carrier2's 50/s to the fast SMSC).

    .venv/bin/python bench/bench_overload.py [--seconds 4] [--only smpp,http,peers]
        [--overload max_delay=0.25,max_lag=0.1]

The node runs as in the e2e tests (twistd -n appliance, FileStorage,
loopback, log level warning); the load runs in processes of this script.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.http.model import token_hash  # noqa: E402
from tests.e2e import overload_peers as P  # noqa: E402
from tests.e2e.harness import kill_all, start_node  # noqa: E402
from tests.e2e.sip_tools import rss_kib  # noqa: E402

TOKEN = "overload-token-0123456789abcdefghijklmnopq"
DOMAIN = "bench.test"
APPS = {"appgood": "964700000001", "appslow": "964700000002",
        "appdead": "964700000003"}
APP_PASSWORD = "app-pass-1"
#: Destinations: to the fast SMSC (policy 351%), to the slow one (44%).
FAST, SLOW = "351900000001", "44700000001"


def provision(fast_port: int, slow_port: int) -> str:
    """The demo, two outbound connections and their policies, a tenant,
    and the SIP apps' accounts."""
    lines = [(ROOT / "shell" / "demo.cli").read_text(), "configure terminal",
             " connection fast", "  host 127.0.0.1", f"  port {fast_port}",
             "  system-id node", "  password pw", "  window 50", " exit",
             " connection slow", "  host 127.0.0.1", f"  port {slow_port}",
             "  system-id node", "  password pw", " exit",
             " service-policy tofast", "  recipient-pattern 351%",
             "  transport smpp connection fast", " exit",
             " service-policy toslow", "  recipient-pattern 44%",
             "  transport smpp connection slow", " exit",
             " carrier Flood", "  system-id flood", "  password floodpw",
             "  allow-ip 127.0.0.0/8", " exit",
             " tenant acme", f"  token-hash {token_hash(TOKEN)}",
             "  allow-sender 123456789", " exit",
             ' product "SMS"', "  messaging enable", " exit",
             ' customer "Bench"']
    for user, did in APPS.items():
        lines += [f"  account {user}", f"   password {APP_PASSWORD}",
                  '   product "SMS"', f"   did {did}", "  exit"]
    lines += [" exit", "end", ""]
    return "\n".join(lines)


def start(tmp: Path, fast: P.DelayedSMSC, slow: P.DelayedSMSC,
          overload: dict | None = None):
    script = tmp / "provision.cli"
    script.write_text(provision(fast.port, slow.port))
    listen = "tcp:port=0:interface=127.0.0.1"
    return start_node(
        tmp, node={"provision": str(script), "log_level": "warning"},
        smpp={"enabled": True, "listen": listen},
        http={"enabled": True, "listen": listen},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "retry_schedule": [5, 10],
             "validity": 600},
        **({"overload": overload} if overload else {}))


def overload_section(text: str) -> dict:
    """C{max_delay=0.25,max_lag=0.1} as the node file's [overload] table."""
    table = {}
    for item in filter(None, text.split(",")):
        key, value = item.split("=", 1)
        table[key.strip()] = float(value) if "." in value else int(value)
    return table


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class RSSWatch(threading.Thread):
    """Samples the node's RSS every 0.25 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self._halt = pid, [], False

    def run(self):
        while not self._halt:
            try:
                self.samples.append((time.monotonic(), rss_kib(self.pid)))
            except Exception:
                return
            time.sleep(0.25)

    def stop(self):
        self._halt = True
        self.join(1)


def run_procs(target, args_list) -> list:
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=target, args=(*a, q))
             for a in args_list]
    for p in procs:
        p.start()
    out = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(10)
    return out


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


# -- capacity ---------------------------------------------------------------

def smpp_capacity(port: int, seconds: float) -> float:
    at = time.time() + 0.5
    out = run_procs(P.closed_loop_smpp, [
        (port, "carrier1", "car1pass", seconds, 25, FAST, at)
        for _ in range(4)])
    accepted = sum(o[0] for o in out)
    lat = [x for o in out for x in o[2]]
    rate = accepted / seconds
    print(f"SMPP capacity: {rate:.0f} submit_sm_resp OK/s (4 binds x 25), "
          f"p50 {pct(lat, .5):.1f} ms p99 {pct(lat, .99):.1f} ms, "
          f"refused {sum(o[1] for o in out)}", flush=True)
    return rate


def http_capacity(port: int, seconds: float) -> float:
    at = time.time() + 0.5
    out = run_procs(P.closed_loop_http, [(port, TOKEN, seconds, 8, at)
                                         for _ in range(2)])
    ok = sum(o[0] for o in out)
    lat = [x for o in out for x in o[2]]
    rate = ok / seconds
    print(f"HTTP capacity: {rate:.0f} 2xx/s (16 connections), p50 "
          f"{pct(lat, .5):.1f} ms p99 {pct(lat, .99):.1f} ms, other "
          f"answers {sum(o[1] for o in out)}", flush=True)
    return rate


# -- open loop --------------------------------------------------------------

PHASES = (("0.5x", 0.5), ("2x", 2.0), ("5x", 5.0), ("0.5x after", 0.5))


def summarize(label: str, results: list, phases, rss: RSSWatch,
              ok_codes, refusal_names) -> list[str]:
    """Per phase: offered/s, answers by kind per second, admitted
    latency, peak RSS; then the recovery time."""
    start = min(r[0] for r in results)
    merged_sent, merged_status, merged_lat = {}, {}, {}
    for t0, sent, status, lat in results:
        shift = int(round((t0 - start) / P.BIN))
        for b, n in sent.items():
            merged_sent[b + shift] = merged_sent.get(b + shift, 0) + n
        for (b, s), n in status.items():
            key = (b + shift, s)
            merged_status[key] = merged_status.get(key, 0) + n
        for b, xs in lat.items():
            merged_lat.setdefault(b + shift, []).extend(xs)
    rows = []
    edge = 0.0
    per_bin = {}
    for (b, s), n in merged_status.items():
        per_bin.setdefault(b, {}).setdefault(s, 0)
        per_bin[b][s] += n
    for name, seconds, rate in phases:
        lo, hi = int(edge / P.BIN), int((edge + seconds) / P.BIN)
        bins = range(lo, hi)
        offered = sum(merged_sent.get(b, 0) for b in bins) / seconds
        kinds = {}
        for b in bins:
            for s, n in per_bin.get(b, {}).items():
                kinds[s] = kinds.get(s, 0) + n
        ok = sum(n for s, n in kinds.items() if s in ok_codes) / seconds
        lat = [x for b in bins for x in merged_lat.get(b, ())]
        peak = max((k for t, k in rss.samples
                    if start + edge <= t < start + edge + seconds),
                   default=0)
        refused = ", ".join(
            f"{refusal_names.get(s, hex(s) if s > 999 else s)} "
            f"{n / seconds:.0f}/s"
            for s, n in sorted(kinds.items()) if s not in ok_codes)
        rows.append(f"| {label} {name} | {offered:.0f} | {ok:.0f} | "
                    f"{refused or '-'} | {pct(lat, .5):.0f} / "
                    f"{pct(lat, .99):.0f} | {peak / 1024:.0f} |")
        edge += seconds
    # Recovery: from the drop, the first bin after which every bin has
    # every answer OK and OK >= 90 % of what was offered.
    drop = sum(s for _, s, _ in phases[:-1])
    first = int(drop / P.BIN)
    last = int((drop + phases[-1][1]) / P.BIN)
    recovered = None
    for b in range(first, last):
        good = True
        for c in range(b, last):
            kinds = per_bin.get(c, {})
            ok = sum(n for s, n in kinds.items() if s in ok_codes)
            bad = sum(n for s, n in kinds.items() if s not in ok_codes)
            if bad or ok < 0.9 * merged_sent.get(c, 0):
                good = False
                break
        if good:
            recovered = (b - first) * P.BIN
            break
    rows.append(f"| {label} recovery after the drop | "
                f"{'not within ' + str(phases[-1][1]) + ' s' if recovered is None else f'{recovered:.2f} s'} | | | | |")
    return rows


def smpp_overload(node, capacity: float, seconds: float) -> list[str]:
    phases = [(n, seconds, capacity * k) for n, k in PHASES]
    rss = RSSWatch(node.process.pid)
    rss.start()
    at = time.time() + 1.0
    binds = [("carrier1", "car1pass"), ("carrier1", "car1pass"),
             ("carrier2", "car2pass"), ("carrier2", "car2pass")]
    out = run_procs(P.open_loop_smpp, [
        (node.port("smpp"), sid, pw, [(s, r / 4) for _, s, r in phases],
         FAST, at) for sid, pw in binds])
    rss.stop()
    return summarize("SMPP", out, phases, rss, (P.ESME_ROK,),
                     {P.ESME_RTHROTTLED: "RTHROTTLED",
                      P.ESME_RMSGQFUL: "RMSGQFUL"})


def http_overload(node, capacity: float, seconds: float) -> list[str]:
    phases = [(n, seconds, capacity * k) for n, k in PHASES]
    rss = RSSWatch(node.process.pid)
    rss.start()
    at = time.time() + 1.0
    out = run_procs(P.open_loop_http, [
        (node.port("http"), TOKEN, [(s, r / 2) for _, s, r in phases], 128,
         at) for _ in range(2)])
    rss.stop()
    return summarize("HTTP", out, phases, rss, (200, 202),
                     {0: "no free connection"})


# -- bad peers --------------------------------------------------------------

def settle(counters, limit: float = 60.0) -> None:
    """Wait until every counter has stood still for a second (what the
    previous step left queued is through)."""
    deadline = time.monotonic() + limit
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = tuple(c() for c in counters)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return
        time.sleep(0.1)


def others(node, seconds: float, good_app: P.SIPApp) -> tuple[float, float]:
    """carrier1 -> fast SMSC and carrier3 -> the good app, closed loop;
    @return: their accepted/s and the app's received/s."""
    before = len(good_app.received)
    at = time.time() + 0.3
    out = run_procs(P.closed_loop_smpp, [
        (node.port("smpp"), "carrier1", "car1pass", seconds, 20, FAST, at),
        (node.port("smpp"), "carrier3", "car3pass", seconds, 20,
         APPS["appgood"], at)])
    deadline = time.monotonic() + 10
    want = before + out[1][0]
    while len(good_app.received) < want and time.monotonic() < deadline:
        time.sleep(0.05)
    return out[0][0] / seconds, (len(good_app.received) - before) / (
        seconds + max(0.0, 0))


FEED = 50.0


def feed(port: int, destination: str, seconds: float) -> threading.Thread:
    """carrier2 sends C{FEED} submit_sm/s to C{destination} for
    C{seconds}, open loop (the bad peer's traffic; the same rate to the
    fast SMSC in the baseline), from a process; @return: its waiter."""
    q = multiprocessing.Queue()
    p = multiprocessing.Process(target=P.open_loop_smpp, args=(
        port, "carrier2", "car2pass", [(seconds, FEED)], destination,
        time.time(), q), daemon=True)
    p.start()

    def wait():
        try:
            q.get(timeout=seconds + 30)
        except Exception:
            pass
        p.join(5)
    t = threading.Thread(target=wait, daemon=True)
    t.start()
    return t


def with_apps(node):
    """Register the three apps on C{node}; @return: them by name."""
    sip_port = node.port("sip_udp")
    apps = {}
    for user, delay, dead in (("appgood", 0, False), ("appslow", 5.0, False),
                              ("appdead", 0, True)):
        app = P.SIPApp(sip_port, user, APP_PASSWORD, DOMAIN, delay=delay,
                       dead=dead)
        app.start()
        app.registered.wait(10)
        apps[user] = app
    return apps


def peers(seconds: float, fast: P.DelayedSMSC,
          slow: P.DelayedSMSC, overload: dict | None = None) -> list[str]:
    """The others' rates beside each bad peer, each case on a node of its
    own (nothing one case leaves behind weighs on the next): first the
    baseline (carrier2 feeding the fast SMSC at the same rate), then the
    case, on the same node, after a warm-up run that is not counted."""
    rows = []
    span = seconds + 1.5

    def measure(node, good, destination, begin=None, end=None):
        settle((lambda: fast.received, lambda: len(good.received)))
        handle = begin(node) if begin else None
        waiter = feed(node.port("smpp"), destination, span)
        time.sleep(0.5)
        try:
            return others(node, seconds, good)
        finally:
            if end:
                end(handle)
            waiter.join(span + 30)

    def run(name, destination=FAST, begin=None, end=None):
        with tempfile.TemporaryDirectory() as tmp:
            node = start(Path(tmp), fast, slow, overload)
            apps = with_apps(node)
            try:
                time.sleep(1.0)             # outbound binds up
                good = apps["appgood"]
                measure(node, good, FAST)   # warm-up, not counted
                base = measure(node, good, FAST)
                rate = measure(node, good, destination, begin, end)
                rss = rss_kib(node.process.pid) / 1024
            finally:
                for app in apps.values():
                    app.stop()
                node.stop()
        rows.append(f"| {name} | {base[0]:.0f} / {rate[0]:.0f} | "
                    f"{rate[0] / max(base[0], 1e-9):.2f} | {base[1]:.0f} / "
                    f"{rate[1]:.0f} | {rate[1] / max(base[1], 1e-9):.2f} | "
                    f"{rss:.0f} |")
        print(rows[-1], flush=True)

    def half_open(node):
        return [P.half_open_smpp(node.port("smpp"), "carrier2", "car2pass",
                                 100, FAST) for _ in range(3)]

    def close(socks):
        for s in socks:
            s.close()
    run(f"none (carrier2 {FEED:.0f}/s to the fast SMSC both times)")
    run("3 half-open SMPP binds (100 submits each, then silent, never "
        "read)", begin=half_open, end=close)
    run("half-open HTTP (2,000 pipelined, never read; 50 idle)",
        begin=lambda node: P.half_open_http(node.port("http"), TOKEN, 2000,
                                            50), end=close)
    run("flooding bind (20,000 submits, never reads)",
        begin=lambda node: [P.half_open_smpp(node.port("smpp"), "flood",
                                             "floodpw", 20000, FAST)],
        end=close)
    run(f"slow SMSC (answers after 3 s; carrier2 {FEED:.0f}/s to it)", SLOW)
    run(f"slow app (answers after 5 s; carrier2 {FEED:.0f}/s to it)",
        APPS["appslow"])
    run(f"dead app (carrier2 {FEED:.0f}/s to it)", APPS["appdead"])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--only", default="smpp,http,peers")
    ap.add_argument("--overload", default="", metavar="KEY=VALUE,...",
                    help="the node's [overload] settings, e.g. "
                    "max_delay=0.25,max_lag=0.1")
    args = ap.parse_args()
    only = set(args.only.split(","))
    fast, slow = P.DelayedSMSC(0), P.DelayedSMSC(3.0)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} CPUs, load average {load_average()}", flush=True)
    peer_rows = []
    if "peers" in only:
        peer_rows = ["", "| bad peer | carrier1 to SMSC /s, without / "
                     "with | ratio | carrier3 to app /s, without / with | "
                     "ratio | RSS MiB |", "|---|---|---|---|---|---|"]
        try:
            peer_rows += peers(args.seconds, fast, slow,
                               overload_section(args.overload))
        finally:
            kill_all()
        print(f"load average {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        node = start(Path(tmp), fast, slow, overload_section(args.overload))
        try:
            time.sleep(1.5)             # outbound binds up
            table = ["| phase | offered/s | OK/s | refused | OK p50 / p99 "
                     "ms | peak RSS MiB |", "|---|---|---|---|---|---|"]
            if "smpp" in only:
                cap = smpp_capacity(node.port("smpp"), args.seconds)
                table += smpp_overload(node, cap, args.seconds)
                print("\n".join(table), flush=True)
                settle((lambda: fast.received,))
            if "http" in only:
                cap = http_capacity(node.port("http"), args.seconds)
                table += http_overload(node, cap, args.seconds)
                print("\n".join(table[-5:]), flush=True)
            table += peer_rows
            print()
            print("\n".join(table))
            print(f"load average {load_average()}")
            warnings = [line for line in node.log().splitlines()
                        if "[warn]" in line.lower() or "overload" in
                        line.lower()]
            print(f"node log: {len(warnings)} warning lines; last 5:")
            for line in warnings[-5:]:
                print("  ", line[:200])
        finally:
            node.stop()
            kill_all()
            fast.stop()
            slow.stop()


if __name__ == "__main__":
    main()
