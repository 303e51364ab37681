"""
SIP side with SIPp against the real node, in one run (prints figures; not
a test):

 1. REGISTER with digest per second: SIPp (register.xml) registers N
    accounts from an injection file (-inf), each a 401 challenge and an
    authenticated REGISTER, at most C{LIMIT} at once;
 2. memory per registration: the node's RSS (C{/proc/PID/status}) before
    and after those N contacts are registered; then the same N again
    (refreshes: every account known by then);
 3. local MESSAGE app to app per second with durable accept: SIPp
    (message_uac.xml) sends M MESSAGEs from M accounts to one account
    that SIPp (register_receive.xml) has registered; each is challenged
    (407) and answered 202 once committed; the receiver's 200s give the
    delivery rate.

The node runs as in the e2e tests (C{twistd -n appliance}, FileStorage,
UDP on loopback, log level warning).  Accounts are written straight into
the database between a first and a second start (provisioning 100,000
accounts through the shell would take one transaction per command).

    .venv/bin/python bench/bench_sip.py [N_REGISTER] [N_MESSAGE] [SENDERS]

C{BENCH_SIP_WORKERS=2}: the node with C{[sip] workers = 2} (the CPU
figures then add up the node's process and its workers').

SENDERS (default N_MESSAGE: each MESSAGE from another account) spreads the
MESSAGEs over that many accounts, SIPp cycling through them, so each sends
N_MESSAGE / SENDERS: what an account costs at its first message (its
snapshots filled) is then a small share, as in traffic where apps send
more than once.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import transaction  # noqa: E402
import ZODB  # noqa: E402
from ZODB.FileStorage import FileStorage  # noqa: E402

from tests.e2e.harness import kill_all, wait_for  # noqa: E402
from tests.e2e.sip_tools import (  # noqa: E402
    DOMAIN, PRODUCT, SIPP, SIPp, rss_kib, start_sip_node, write_users)

#: Calls SIPp keeps in flight (closed loop: the rate is what the node
#: sustains at this concurrency).
LIMIT = 200
PASSWORD = "bench-pw"
RECIPIENT = "999000000"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User plus system CPU time so far of a process and its children
    (C{[sip] workers}), and of the process alone (C{/proc/PID/stat})."""
    total = own = 0
    for one in [pid] + children(pid):
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12])
        total += ticks
        if one == pid:
            own = ticks
    tick = os.sysconf("SC_CLK_TCK")
    return total / tick, own / tick


def children(pid: int) -> list[int]:
    """The running children of a process."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def per_call(cpu: tuple[float, float], calls: int) -> str:
    """CPU per call (with the workers', and the node process's alone)."""
    if not calls:
        return "-"
    total, own = cpu
    text = f"{total / calls * 1e6:,.0f} µs CPU per call"
    if own != total:
        text += f" ({own / calls * 1e6:,.0f} µs in the node process)"
    return text


def users(n: int) -> list[str]:
    """The bench accounts (usernames are also their DIDs)."""
    return [str(100000000 + i) for i in range(n)]


def add_accounts(data_dir: Path, names: list[str]) -> float:
    """Write accounts into the stopped node's database; return seconds."""
    start = time.perf_counter()
    db = ZODB.DB(FileStorage(str(data_dir / "Data.fs")))
    try:
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        root = conn.root()["appliance"]
        for i, name in enumerate(names):
            root.add_account("E2E", name).set_password(PASSWORD, DOMAIN)
            root.set_account_product(name, PRODUCT)
            root.add_did(name, name)
            if i % 10000 == 9999:
                tm.commit()
        tm.commit()
        conn.close()
    finally:
        db.close()
    return time.perf_counter() - start


def main(n_register: int = 100_000, n_message: int = 20_000,
         senders: int | None = None) -> None:
    """Run the three measurements and print them."""
    if SIPP is None:
        sys.exit("needs sipp (Debian sip-tester)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    # Overload at the door off: this bench measures what the node handles
    # (SIPp keeps 200 calls in flight whatever the node's rate).
    # BENCH_SIP_BASELINE=1: a node from before those settings existed.
    settings = dict(log_level="warning", max_expires=7200, min_expires=60)
    if not os.environ.get("BENCH_SIP_BASELINE"):
        settings.update(overload_queue_ms=0, overload_lag_ms=0)
    workers = int(os.environ.get("BENCH_SIP_WORKERS", "0"))
    if workers:
        settings.update(workers=workers)   # [sip] workers: their CPU is counted too
    try:
        node = start_sip_node(tmp, {}, name="node", **settings)
        node.stop()
        names = users(max(n_register, n_message))
        took = add_accounts(node.data_dir, names + [RECIPIENT])
        print(f"provisioned {len(names) + 1} accounts in {took:.1f} s")
        node = start_sip_node(tmp, {}, name="node", **settings)
        udp = node.port("sip_udp")
        pid = node.process.pid
        before = rss_kib(pid)

        csv = write_users(tmp / "register.csv",
                          [(u, PASSWORD) for u in names[:n_register]])

        def register_all(directory: str) -> tuple:
            """SIPp registers the N accounts once: (result, s, CPU)."""
            start = time.perf_counter()
            cpu = cpu_seconds(pid)
            result = SIPp(tmp / directory, "register.xml", udp, transport="udp",
                          users=csv, calls=n_register, rate=100000, limit=LIMIT,
                          expires=7200, timeout=900, trace=False).wait()
            return (result, time.perf_counter() - start,
                    tuple(a - b for a, b in zip(cpu_seconds(pid), cpu)))
        reg, elapsed, cpu = register_all("register")
        after = rss_kib(pid)
        print(f"REGISTER with digest: {reg.successful} ok, {reg.failed} "
              f"failed in {elapsed:.1f} s = "
              f"{reg.successful / elapsed:,.0f} registrations/s "
              f"({2 * reg.successful / elapsed:,.0f} transactions/s), "
              f"{LIMIT} in flight; {per_call(cpu, reg.successful)}, "
              f"load average {os.getloadavg()[0]:.1f}")
        if reg.successful:
            print(f"memory: RSS {before / 1024:.1f} MiB before, "
                  f"{after / 1024:.1f} MiB with {reg.successful} contacts = "
                  f"{(after - before) * 1024 / reg.successful:,.0f} bytes "
                  "per registration")
            # The same accounts again, as apps refresh their registrations:
            # every account known by now (snapshots, and with [sip] workers
            # the HA1s the node taught them).
            again, elapsed, cpu = register_all("reregister")
            print(f"REGISTER again (refresh): {again.successful} ok, {again.failed} "
                  f"failed in {elapsed:.1f} s = "
                  f"{again.successful / elapsed:,.0f} registrations/s; "
                  f"{per_call(cpu, again.successful)}, "
                  f"load average {os.getloadavg()[0]:.1f}")

        uas = SIPp(tmp / "receiver", "register_receive.xml", udp,
                   transport="udp", users=write_users(
                       tmp / "receiver.csv", [(RECIPIENT, PASSWORD)]),
                   ooc="receive_ooc.xml", expected=n_message, timeout=900)
        wait_for(lambda: uas.process.poll() is not None or _registered(uas),
                 timeout=30, what="receiver registered")
        csv = write_users(tmp / "message.csv",
                          [(u, PASSWORD, RECIPIENT)
                           for u in names[:senders or n_message]])
        start = time.perf_counter()
        cpu = cpu_seconds(pid)
        msg = SIPp(tmp / "message", "message_uac.xml", udp, transport="udp",
                   users=csv, calls=n_message, rate=100000, limit=LIMIT,
                   timeout=900, trace=False).wait()
        accepted = time.perf_counter() - start
        got = uas.wait()
        delivered = time.perf_counter() - start
        cpu = tuple(a - b for a, b in zip(cpu_seconds(pid), cpu))
        print(f"MESSAGE app to app from {senders or n_message} accounts: "
              f"{msg.successful} accepted (202), "
              f"{msg.failed} failed in {accepted:.1f} s = "
              f"{msg.successful / accepted:,.0f} accepted/s; receiver done "
              f"(rc {got.returncode}) after {delivered:.1f} s = "
              f"{msg.successful / delivered:,.0f} delivered/s; "
              f"{per_call(cpu, msg.successful)} (accept and delivery), "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"node RSS at the end: {rss_kib(pid) / 1024:.1f} MiB")
        node.stop()
    finally:
        kill_all()


def _registered(uas: SIPp) -> bool:
    """Whether the receiver's REGISTER was answered 200."""
    return any(m.direction == "received" and m.first_line.startswith(
        "SIP/2.0 200") and "REGISTER" in (m.header("CSeq") or "")
        for m in uas.sent_and_received())


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
