"""
Several nodes on one database (issue 17, item 5, Bench), in one run:

 1. carrier to app, the same load three ways: one node on FileStorage
    (the baseline), one node on PostgreSQL (what the database costs), and
    two nodes on one PostgreSQL database with half the binds and half the
    apps on each, so half the messages are accepted on one node and
    delivered over the other's socket.  smpplib binds (one process each,
    C{window} submit_sm outstanding, no receipts) submit to DIDs whose
    apps are SIPp processes answering each MESSAGE with 200.  Printed per
    mode: accepted/s (to the last submit_sm_resp, each sent after its
    commit), p50/p99 submit_sm to submit_sm_resp, delivered/s (until the
    apps have every message, distinct bodies), duplicate MESSAGEs.
 2. takeover: C{N} messages accepted on node A while their app is
    registered nowhere; A killed with SIGKILL; the app registers on B.
    Printed: seconds from the kill to the first and to the last message
    at the app, with the lease and heartbeat in force, and duplicates.

    .venv/bin/python bench/bench_cluster.py [MESSAGES_PER_BIND] [BINDS] \
        [WINDOW] [APPS] [TAKEOVER_MESSAGES]

PostgreSQL is Debian's, a throwaway cluster (tests/e2e/postgres.py, fsync
on, as an operator runs it); the nodes run as in the e2e tests
(C{twistd -n appliance}, loopback, log level warning).  Each mode also
prints the commits that conflicted with the other node's (re-run; from
the nodes' logs, by the class of the object) and those that ran out of
retries.

With C{BENCH_PROFILE=DIR} in the environment, py-spy (in the venv:
C{pip install py-spy}) samples every node of every mode for the whole
mode (C{--nonblocking}, 100 Hz) and writes collapsed stacks to
C{DIR/<mode>-n<i>.txt}; C{bench/pyspy_top.py} sums them by function.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import smpplib.client  # noqa: E402
import smpplib.consts  # noqa: E402
import smpplib.exceptions  # noqa: E402

from bench_carrier_to_app import (AppLog, apps, provision,  # noqa: E402
                                  start_app)
from tests.e2e import postgres  # noqa: E402
from tests.e2e.harness import kill_all, start_node, wait_for  # noqa: E402
from tests.e2e.sip_tools import DOMAIN, SIPP  # noqa: E402

#: Seconds a mode may take before it is abandoned.
DEADLINE = 90.0
#: The lease and heartbeat of the two-node modes ([storage] defaults).
LEASE, HEARTBEAT = 10.0, 1.0


def bind(port: int, system_id: str) -> smpplib.client.Client:
    """A transceiver bound as C{system_id}; binds from one address are
    checked one at a time (a second at once is refused), so a refused
    bind is tried again."""
    for attempt in range(50):
        c = smpplib.client.Client("127.0.0.1", port, timeout=10,
                                  allow_unknown_opt_params=True)
        c.connect()
        try:
            c.bind_transceiver(system_id=system_id, password="benchpw")
            return c
        except smpplib.exceptions.PDUError:
            c.disconnect()
            time.sleep(0.1 + 0.05 * attempt)
    raise RuntimeError(f"{system_id} could not bind")


def one_bind(port: int, index: int, count: int, window: int,
             dids: list[str], out: "multiprocessing.Queue") -> None:
    """Bind as carrier C{bench<index>} on C{port}, submit C{count}
    messages to C{dids} in turn with C{window} outstanding, no receipts;
    put a result dict on C{out}."""
    result = {"latencies": [], "errors": 0, "start": 0.0, "accepted": 0.0,
              "failure": None}
    try:
        c = bind(port, f"bench{index}")
        sent_at: dict[int, float] = {}

        def answered(pdu):
            if pdu.status:      # smpplib calls this after error() too
                return
            now = time.monotonic()
            result["latencies"].append(now - sent_at.pop(pdu.sequence))
            result["accepted"] = now

        def error(pdu):
            result["errors"] += 1
            sent_at.pop(pdu.sequence, None)
        c.set_message_sent_handler(answered)
        c.set_error_pdu_handler(error)
        result["start"] = time.monotonic()
        for i in range(count):
            while len(sent_at) >= window:
                c.read_once()
            pdu = c.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="AsiaCell", dest_addr_ton=1, dest_addr_npi=1,
                destination_addr=dids[i % len(dids)],
                short_message=b"Asia Cell promotion %d-%d: 50%% off"
                % (index, i))
            sent_at[pdu.sequence] = time.monotonic()
        deadline = time.monotonic() + DEADLINE
        while sent_at and time.monotonic() < deadline:
            c.read_once()
        c.unbind()
        c.disconnect()
    except Exception as e:  # reported in the table
        result["failure"] = repr(e)
    out.put(result)


@dataclass
class Figures:
    label: str
    total: int
    accepted_per_s: float
    p50_ms: float
    p99_ms: float
    delivered_per_s: float
    errors: int
    duplicates: int
    notes: str
    resent: int = 0
    two_nodes: int = 0
    conflicts: str = "-"

    def row(self, base: "Figures") -> str:
        """A Markdown table row, with ratios against C{base}."""
        def ratio(x, y):
            return f"{x / y:.2f}" if y else "-"
        return (f"| {self.label} | {self.total} "
                f"| {self.accepted_per_s:,.0f} "
                f"| {ratio(self.accepted_per_s, base.accepted_per_s)} "
                f"| {self.p50_ms:.1f} | {self.p99_ms:.1f} "
                f"| {self.delivered_per_s:,.0f} "
                f"| {ratio(self.delivered_per_s, base.delivered_per_s)} "
                f"| {self.errors} | {self.duplicates} ({self.resent} "
                f"sent again, {self.two_nodes} by two nodes) "
                f"| {self.conflicts} | {self.notes} |")


def node_on(tmp_path: Path, name: str, uri: str | None, script: Path,
            window: int):
    storage = {"uri": uri, "lease": LEASE, "heartbeat": HEARTBEAT} \
        if uri else {}
    (tmp_path / name / "data" / "ports.json").unlink(missing_ok=True)
    return start_node(
        tmp_path, name=name, storage=storage,
        node={"provision": str(script), "log_level": "warning"},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600, "retry_schedule": [1, 2],
             "validity": 3600},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1",
              "window": max(window, 10), "queue_limit": 1_000_000})


def conflicts(log: str) -> tuple[dict[str, int], int]:
    """A node log's commits re-run after a conflict, by class, and the
    commits that ran out of retries."""
    retried: dict[str, int] = {}
    for name in re.findall(r"conflicted on (\S+) \(attempt", log):
        retried[name] = retried.get(name, 0) + 1
    return retried, len(re.findall(r"conflicted on \S+ \d+ times", log))


def profile(nodes, label: str) -> list:
    """With C{BENCH_PROFILE} set: a py-spy sampling each node."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return []
    Path(out).mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    spy = Path(sys.executable).parent / "py-spy"
    return [subprocess.Popen(
        [str(spy), "record", "--pid", str(n.process.pid), "--nonblocking",
         "-r", "100", "-f", "raw", "-o", f"{out}/{slug}-n{i}.txt"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i, n in enumerate(nodes)]


def stop_profile(spies: list) -> None:
    for p in spies:
        p.send_signal(signal.SIGINT)
    for p in spies:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


def carrier_to_app(label: str, uris: list[str | None], count: int,
                   binds: int, window: int, n_apps: int) -> Figures:
    """
    One mode: a node per URI (all on one database when several), bind b
    and app i on node C{b % nodes} and C{i % nodes}; bind b sends to
    every app in turn, so with two nodes half its messages cross.
    """
    total = count * binds
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        script = provision(tmp_path / "provision.cli", binds, n_apps)
        nodes = []
        sipps = []
        try:
            for i, uri in enumerate(uris):
                nodes.append(node_on(tmp_path, f"n{i}", uri, script,
                                     window))
            dids = apps(n_apps)
            sipps = [start_app(tmp_path / f"app{i}",
                               nodes[i % len(nodes)], did)
                     for i, did in enumerate(dids)]
            logs = [AppLog(s.messages) for s in sipps]
            # Let every node's poll see the others' registrations.
            time.sleep(1.5 if len(nodes) > 1 else 0)
            spies = profile(nodes, label)
            out: multiprocessing.Queue = multiprocessing.Queue()
            procs = [multiprocessing.Process(
                target=one_bind,
                args=(nodes[b % len(nodes)].port("smpp"), b, count, window,
                      dids, out)) for b in range(binds)]
            for p in procs:
                p.start()
            results: list[dict] = []
            delivered_at = None
            deadline = time.monotonic() + DEADLINE + 30
            while (len(results) < binds or delivered_at is None) and \
                    time.monotonic() < deadline:
                try:
                    results.append(out.get(timeout=0.05))
                except queue.Empty:
                    pass
                # Refused submits (ESME_RTHROTTLED) are never delivered:
                # done once every bind reported and its accepted arrived.
                target = total if len(results) < binds else \
                    sum(len(r["latencies"]) for r in results)
                if delivered_at is None and \
                        sum(log.poll() for log in logs) >= target:
                    delivered_at = time.monotonic()
            for p in procs:
                p.join(10)
            time.sleep(2)       # copies sent late would show now
            sum(log.poll() for log in logs)
            resent, two_nodes = copies(sipps)
            stop_profile(spies)
        finally:
            for s in sipps:
                s.stop()
            for n in nodes:
                n.stop()
            kill_all()
        counted = [conflicts(n.log()) for n in nodes]
    conflict_text = "; ".join(
        f"n{i}: {sum(r.values())} re-run ("
        + ", ".join(f"{k.rsplit('.', 1)[-1]} {v}" for k, v in
                    sorted(r.items(), key=lambda kv: -kv[1]))
        + f"), {f} failed" for i, (r, f) in enumerate(counted)) \
        if len(nodes) > 1 else "-"
    notes = [r["failure"] for r in results if r["failure"]]
    distinct = sum(len(log.tags) for log in logs)
    lat = sorted(x for r in results for x in r["latencies"])
    if distinct < len(lat):
        notes.append(f"only {distinct} of {len(lat)} accepted reached "
                     "the apps")
    start = min(r["start"] for r in results)
    accepted = max(r["accepted"] for r in results)
    n = len(lat)
    return Figures(
        label, total, n / (accepted - start) if n else 0.0,
        lat[n // 2] * 1000 if n else 0.0,
        lat[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        distinct / (delivered_at - start) if delivered_at else 0.0,
        sum(r["errors"] for r in results),
        sum(log.copies for log in logs) - distinct, "; ".join(notes) or "-",
        resent, two_nodes, conflict_text)


def copies(sipps) -> tuple[int, int]:
    """
    Of the MESSAGEs the apps got more than once (same body): how many
    were sent again under another Call-ID (a new attempt, not a UDP
    retransmission of the same request), and how many of those came from
    a second node (another Via port).
    """
    from tests.e2e.sip_tools import received_requests
    seen: dict[bytes, set] = {}
    for s in sipps:
        for r in received_requests(s.sent_and_received(), "MESSAGE"):
            via = (r.header("Via") or "").split(";")[0]
            seen.setdefault(r.body, set()).add((r.header("Call-ID"), via))
    resent = sum(len({c for c, _ in v}) - 1 for v in seen.values())
    two = sum(1 for v in seen.values() if len({p for _, p in v}) > 1)
    return resent, two


def takeover(uri: str, messages: int) -> dict:
    """Messages accepted on A for an app registered nowhere; A killed;
    the app registers on B: seconds from the kill to the first and last
    message at the app."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        script = provision(tmp_path / "provision.cli", 1, 1)
        a = node_on(tmp_path, "a", uri, script, 50)
        b = node_on(tmp_path, "b", uri, script, 50)
        app = None
        try:
            out: multiprocessing.Queue = multiprocessing.Queue()
            one_bind(a.port("smpp"), 0, messages, 50, apps(1), out)
            sent = out.get()
            time.sleep(0.5)     # the first attempts: offline, on A
            a.kill()
            killed = time.monotonic()
            app = start_app(tmp_path / "app", b, apps(1)[0])
            log = AppLog(app.messages)
            first = last = None
            deadline = killed + LEASE * 3 + 30
            while time.monotonic() < deadline:
                got = log.poll()
                if got and first is None:
                    first = time.monotonic() - killed
                if got >= messages:
                    last = time.monotonic() - killed
                    break
                time.sleep(0.02)
            time.sleep(3)
            log.poll()
        finally:
            if app is not None:
                app.stop()
            b.stop()
            kill_all()
    return {"messages": messages, "accepted": len(sent["latencies"]),
            "first": first, "last": last, "distinct": len(log.tags),
            "duplicates": log.copies - len(log.tags)}


def main() -> None:
    if SIPP is None or postgres.pg_bin("initdb") is None:
        sys.exit("needs sipp and Debian's postgresql")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    binds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    n_apps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    n_takeover = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    load_before = os.getloadavg()
    pg = postgres.Cluster(fsync=True)
    pg.start()
    try:
        for name in ("one", "two", "takeover"):
            pg.create_database(name)
        modes = [("1 node, FileStorage", [None]),
                 ("1 node, PostgreSQL", [pg.uri("one")]),
                 ("2 nodes, one PostgreSQL (half cross)",
                  [pg.uri("two"), pg.socket_uri("two")])]
        print(f"{binds} binds x window {window}, {n_apps} SIPp apps, no "
              f"receipts; load average {load_before[0]:.1f} at the start\n")
        print("| mode | msgs | accepted/s | ratio | p50 ms | p99 ms "
              "| delivered/s | ratio | refused | duplicate MESSAGEs "
              "| conflicts | notes |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|",
              flush=True)
        rows = []
        for label, uris in modes:
            rows.append(carrier_to_app(label, uris, count, binds, window,
                                       n_apps))
            print(rows[-1].row(rows[0]), flush=True)
        took = takeover(pg.uri("takeover"), n_takeover)
    finally:
        pg.stop()
    load_after = os.getloadavg()
    print(f"\nload average {load_after[0]:.1f} at the end")
    fmt = (lambda x: f"{x:.2f} s" if x is not None else "never")
    print(f"\nTakeover (lease {LEASE:g} s, heartbeat {HEARTBEAT:g} s): "
          f"{took['accepted']} of {took['messages']} accepted on A, A "
          f"killed; first at the app from B {fmt(took['first'])} after "
          f"the kill, all {fmt(took['last'])}; {took['distinct']} distinct"
          f", {took['duplicates']} duplicates")


if __name__ == "__main__":
    main()
