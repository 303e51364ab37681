"""
Carriers to apps through the running node (issue 6, Bench), in one run:
several smpplib binds (one process each, C{window} submit_sm outstanding,
receipts requested) submit to DIDs whose apps are SIPp processes
registered on the node and answering each MESSAGE with 200; every bind
reads its own receipts.  Printed per mode:

 - accepted/s: messages over the time to the last submit_sm_resp (each
   sent only after the message's commit: durable accept);
 - p50/p99 from submit_sm to its submit_sm_resp;
 - delivered/s: until the apps have received every message (distinct
   bodies, read from SIPp's message log as it grows);
 - receipted/s: until every bind has its DELIVRD receipts, each matched
   to an id it was given (the end-to-end figure);

plus the MESSAGE copies beyond the first (retransmissions) and the
datagrams the kernel dropped on the node's SIP UDP socket.  Then the same
with commit batching off (C{[storage] batch_max = 1}).  The apps answer
retransmissions too (C{-deadcall_wait 0}), as a real UA does.  A bind
that has not finished within C{DEADLINE} seconds stops and reports what it
measured, named in the notes (with batch_max = 1 a node may accept fewer
than all messages by then); a mode where no submit_sm was answered says
"no samples".
Each bind is its own carrier (C{bench0}...), so its receipts come back on
it; message i of bind b goes to app C{(b * MESSAGES_PER_BIND + i) % APPS},
so each app gets the same number.

    .venv/bin/python bench/bench_carrier_to_app.py [MESSAGES_PER_BIND] \
        [BINDS] [WINDOW] [APPS]

The node runs as in the e2e tests (C{twistd -n appliance}, FileStorage,
loopback, log level warning); SIPp is Debian's sip-tester.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import smpplib.client  # noqa: E402
import smpplib.consts  # noqa: E402

from tests.e2e.harness import kill_all, start_node, wait_for  # noqa: E402
from tests.e2e.sip_tools import (  # noqa: E402
    DOMAIN, PRODUCT, SIPP, SIPp, write_users)

PASSWORD = "bench-pw"
#: Seconds a bind may take (submits, answers, receipts) before it stops
#: and reports what it measured (C{BENCH_DEADLINE} in the environment);
#: the mode's table row then says how far each bind got.
DEADLINE = float(os.environ.get("BENCH_DEADLINE", "60"))
#: SIPp counts every MESSAGE; the apps run until the bench stops them.
FOREVER = 10 ** 9
#: The unique part of each body: bind index and sequence number.
TAG = re.compile(rb"^Asia Cell promotion (\d+-\d+):", re.M)
#: message_state TLV value for DELIVERED.
DELIVERED = 2


def apps(n: int) -> list[str]:
    """The DIDs (also account names) of the bench apps."""
    return [str(964770000000 + i) for i in range(n)]


def provision(path: Path, binds: int, n_apps: int) -> Path:
    """
    The shell script: one account (and DID) per app, one carrier per bind.

    @return: C{path}.
    """
    lines = ["configure terminal", f' product "{PRODUCT}"',
             "  messaging enable", " exit", ' customer "Bench"']
    for did in apps(n_apps):
        lines += [f"  account {did}", f"   password {PASSWORD}",
                  f'   product "{PRODUCT}"', f"   did {did}", "  exit"]
    lines.append(" exit")
    for b in range(binds):
        lines += [f" carrier bench{b}", f"  system-id bench{b}",
                  "  password benchpw", "  allow-ip 127.0.0.0/8", " exit"]
    path.write_text("\n".join([*lines, "end", ""]))
    return path


def one_bind(port: int, index: int, count: int, window: int, n_apps: int,
             out: "multiprocessing.Queue") -> None:
    """
    Bind as carrier C{bench<index>}, submit C{count} messages with
    C{window} outstanding, then read receipts until each message has one
    (or the deadline passes).  Puts a result dict on C{out}.
    """
    result = {"latencies": [], "errors": 0, "receipts": 0, "matched": 0,
              "start": time.monotonic(), "accepted": 0.0, "receipted": 0.0,
              "submitted": 0, "failure": None}
    ids: set[str] = set()
    receipted: set[str] = set()
    try:
        c = smpplib.client.Client("127.0.0.1", port, timeout=5,
                                  allow_unknown_opt_params=True)
        c.connect()
        c.bind_transceiver(system_id=f"bench{index}", password="benchpw")
        sent_at: dict[int, float] = {}
        dids = apps(n_apps)

        def answered(pdu):
            now = time.monotonic()
            result["latencies"].append(now - sent_at.pop(pdu.sequence))
            ids.add(pdu.message_id.decode())
            result["accepted"] = now

        def error(pdu):
            result["errors"] += 1
            sent_at.pop(pdu.sequence, None)

        def receipt(pdu):
            result["receipts"] += 1
            mid = pdu.receipted_message_id
            mid = mid.decode() if isinstance(mid, bytes) else str(mid)
            if pdu.message_state == DELIVERED:
                receipted.add(mid)
            result["receipted"] = time.monotonic()
        c.set_message_sent_handler(answered)
        c.set_error_pdu_handler(error)
        c.set_message_received_handler(receipt)
        result["start"] = time.monotonic()
        # One deadline for the whole bind (submits, answers, receipts), so
        # that it always reports what it measured before the run gives up
        # on it: with batch_max = 1 a node may take longer than that to
        # accept everything.
        deadline = result["start"] + DEADLINE
        for i in range(count):
            while len(sent_at) >= window and time.monotonic() < deadline:
                c.read_once()
            if time.monotonic() >= deadline:
                result["failure"] = (f"bench{index}: deadline passed after "
                                     f"{i} of {count} submits")
                break
            pdu = c.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                source_addr="AsiaCell", dest_addr_ton=1, dest_addr_npi=1,
                destination_addr=dids[(index * count + i) % n_apps],
                short_message=b"Asia Cell promotion %d-%d: 50%% off" % (index, i),
                registered_delivery=1)
            sent_at[pdu.sequence] = time.monotonic()
            result["submitted"] += 1
        while sent_at and time.monotonic() < deadline:
            c.read_once()
        expected = result["submitted"] - result["errors"]
        while result["receipts"] < expected and time.monotonic() < deadline:
            c.read_once()
        c.unbind()
        c.disconnect()
    except Exception as e:  # reported in the table, not a traceback
        result["failure"] = repr(e)
    result["matched"] = len(receipted & ids)
    out.put(result)


@dataclass
class Figures:
    """One mode's results."""
    label: str
    total: int
    accepted_per_s: float
    p50_ms: float
    p99_ms: float
    delivered_per_s: float
    receipted_per_s: float
    matched: int
    errors: int
    duplicates: int
    udp_drops: int
    notes: str


class AppLog:
    """
    Reads a SIPp app's C{-message_file} as it grows and collects the
    distinct messages (by body tag) it received.

    @ivar tags: distinct C{bind-seq} tags seen.
    @ivar copies: MESSAGE bodies seen, duplicates included.
    """

    def __init__(self, path: Path):
        self.path = path
        self.tags: set[bytes] = set()
        self.copies = 0
        self._offset = 0
        self._tail = b""

    def poll(self) -> int:
        """Read what was appended; @return: distinct messages so far."""
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            self._offset += len(chunk)
            data = self._tail + chunk
            cut = data.rfind(b"\n") + 1
            data, self._tail = data[:cut], data[cut:]
            found = TAG.findall(data)
            self.copies += len(found)
            self.tags.update(found)
        return len(self.tags)


def udp_drops(port: int) -> int:
    """
    Datagrams the kernel dropped on the UDP socket bound to C{port}
    (its receive buffer was full), from C{/proc/net/udp}.
    """
    drops = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            drops += int(fields[-1])
    return drops


def start_app(workdir: Path, node, did: str) -> SIPp:
    """
    SIPp registered as the app of C{did}, answering every MESSAGE (and
    every retransmission: C{-deadcall_wait 0}) with 200 until stopped;
    returned once its REGISTER got 200.
    """
    csv = write_users(workdir.with_suffix(".csv"), [(did, PASSWORD)])
    app = SIPp(workdir, "register_receive.xml", node.port("sip_udp"),
               users=csv, ooc="receive_ooc.xml", expected=FOREVER,
               timeout=DEADLINE + 60, extra=["-deadcall_wait", "0"])

    def registered():
        if app.process.poll() is not None:
            raise RuntimeError(app.wait().explain())
        return any(m.direction == "received"
                   and m.first_line.startswith("SIP/2.0 200")
                   and "REGISTER" in (m.header("CSeq") or "")
                   for m in app.sent_and_received())
    wait_for(registered, timeout=20, what=f"app {did} registered")
    return app


def run(label: str, storage: dict, count: int, binds: int, window: int,
        n_apps: int) -> Figures:
    """Start a node and the apps, run the binds, collect the figures."""
    total = count * binds
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        script = provision(tmp_path / "provision.cli", binds, n_apps)
        node = start_node(
            tmp_path, storage=storage,
            node={"provision": str(script), "log_level": "warning"},
            sip={"enabled": True,
                 "listen": ["udp:port=0:interface=127.0.0.1"],
                 "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
                 "max_expires": 3600, "retry_schedule": [1, 2],
                 "validity": 3600},
            smpp={"enabled": True,
                  "listen": "tcp:port=0:interface=127.0.0.1",
                  "window": max(window, 10), "queue_limit": 1_000_000})
        sipps: list[SIPp] = []
        try:
            sip_port = node.port("sip_udp")
            drops_before = udp_drops(sip_port)
            sipps = [start_app(tmp_path / f"app{i}", node, did)
                     for i, did in enumerate(apps(n_apps))]
            logs = [AppLog(s.messages) for s in sipps]
            out: multiprocessing.Queue = multiprocessing.Queue()
            procs = [multiprocessing.Process(
                target=one_bind,
                args=(node.port("smpp"), b, count, window, n_apps, out))
                for b in range(binds)]
            for p in procs:
                p.start()
            results: list[dict] = []
            delivered_at = None
            deadline = time.monotonic() + DEADLINE + 30
            while len(results) < binds and time.monotonic() < deadline:
                try:
                    results.append(out.get(timeout=0.05))
                except queue.Empty:
                    pass
                if delivered_at is None and \
                        sum(log.poll() for log in logs) >= total:
                    delivered_at = time.monotonic()
            for p in procs:
                p.join(10)
                if p.is_alive():        # it never reported: not left behind
                    p.terminate()
                    p.join(5)
            sum(log.poll() for log in logs)
            drops = udp_drops(sip_port) - drops_before
            exited = [s.process.returncode for s in sipps
                      if s.process.poll() is not None]
        finally:
            for s in sipps:
                s.stop()
            node.stop()
            kill_all()
    notes = [r["failure"] for r in results if r["failure"]]
    notes += [f"app exited early ({rc})" for rc in exited]
    if len(results) < binds:
        notes.append(f"{binds - len(results)} binds never reported")
    distinct = sum(len(log.tags) for log in logs)
    if distinct < total:
        notes.append(f"only {distinct} messages reached the apps")
    lat = sorted(x for r in results for x in r["latencies"])
    n = len(lat)
    if not results:
        # No bind reported at all (each reports even on a failure or a
        # deadline, so this is a bind process that died): no samples.
        notes.append("no samples: no bind reported")
        start = accepted = receipted = 0.0
    else:
        start = min(r["start"] for r in results)
        accepted = max(r["accepted"] for r in results)
        receipted = max(r["receipted"] for r in results)
    if results and not n:
        notes.append("no samples: no submit_sm answered")
    return Figures(
        label=label, total=total,
        accepted_per_s=n / (accepted - start) if n and accepted > start
        else 0.0,
        p50_ms=lat[n // 2] * 1000 if n else 0.0,
        p99_ms=lat[min(n - 1, int(n * 0.99))] * 1000 if n else 0.0,
        delivered_per_s=total / (delivered_at - start)
        if delivered_at else 0.0,
        receipted_per_s=sum(r["matched"] for r in results)
        / (receipted - start) if receipted > start else 0.0,
        matched=sum(r["matched"] for r in results),
        errors=sum(r["errors"] for r in results),
        duplicates=sum(log.copies for log in logs) - distinct,
        udp_drops=drops, notes="; ".join(notes) or "-")


def table(rows: list[Figures], binds: int, window: int, n_apps: int) -> str:
    """The figures as a Markdown table."""
    out = [f"{binds} binds x window {window}, {n_apps} SIPp apps, "
           "receipts requested",
           "",
           "| mode | msgs | accepted/s | p50 ms | p99 ms | delivered/s "
           "| receipted/s | receipts matched | errors | duplicate MESSAGEs "
           "| node SIP UDP drops | notes |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for f in rows:
        out.append(
            f"| {f.label} | {f.total} | {f.accepted_per_s:,.0f} "
            f"| {f.p50_ms:.1f} | {f.p99_ms:.1f} | {f.delivered_per_s:,.0f} "
            f"| {f.receipted_per_s:,.0f} | {f.matched}/{f.total} "
            f"| {f.errors} | {f.duplicates} | {f.udp_drops} | {f.notes} |")
    return "\n".join(out)


def main() -> None:
    """Run both modes and print the table."""
    if SIPP is None:
        sys.exit("needs sipp (Debian sip-tester)")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
    binds = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    window = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    n_apps = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    rows = [run("batched commits", {}, count, binds, window, n_apps),
            run("batch_max = 1", {"batch_max": 1}, count, binds, window,
                n_apps)]
    print(table(rows, binds, window, n_apps))


if __name__ == "__main__":
    main()
