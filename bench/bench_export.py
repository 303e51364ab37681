"""
C{billing export carrier ... csv} of N records (issue 11, Bench): time and
peak memory.

The records are generated directly in a FileStorage (one carrier, one
month, N records; cached under C{var/bench-export/N/} for the next run).
Then, each in a fresh process so its peak RSS is its own:

 - C{before}: the export as it was built before streaming: the whole CSV
   as one string from the node's own connection (as the shell command
   did, then written at once);
 - C{after}: the command through L{appliance.shell.session.execute}, its
   L{appliance.shell.output.Stream} copied by a
   L{appliance.shell.output.StreamWriter} to a sink;
 - C{ssh}: the real node (C{twistd -n appliance} on that FileStorage)
   and OpenSSH, C{ssh node 'billing export ...' > file}: wall time and
   the node's peak RSS (VmHWM) against its RSS before the export.

    .venv/bin/python bench/bench_export.py N [before] [after] [ssh]

Prints one line per mode: records, CSV bytes, seconds, records/s, peak
RSS in MiB.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: 2026-11-01 00:00 UTC.
NOV_1 = 1793491200
COMMAND = "billing export carrier TATA from 2026-11-01 to 2026-12-01 csv"
SETUP = "configure terminal\n carrier TATA\n  system-id tata\n end\n"


def storage_for(path: Path):
    """The node's Storage on a FileStorage, generations applied."""
    from appliance.application import GENERATIONS
    from appliance.store.database import Storage, open_database
    storage = Storage(lambda: open_database(str(path), path.parent),
                      generations=GENERATIONS)
    storage.open()
    return storage


def generate(n: int) -> Path:
    """N records of carrier TATA in November 2026, in a FileStorage."""
    from appliance.billing.model import billing_of
    from appliance.billing.records import Record
    from appliance.shell.script import run_script
    directory = ROOT / "var" / "bench-export" / str(n)
    path = directory / "Data.fs"
    done = directory / "complete"
    if done.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("Data.fs*"):
        old.unlink()
    started = time.monotonic()
    storage = storage_for(path)
    assert run_script(storage, SETUP).ok
    step = 2_592_000 / n  # spread over the 30 days of November
    price, amount = Decimal("0.0100"), Decimal("0.0100")
    per_commit = 50_000
    for first in range(0, n, per_commit):
        with storage.transaction(user="bench") as root:
            records = billing_of(root).records
            for i in range(first, min(n, first + per_commit)):
                records.add(Record(
                    i + 1, NOV_1 + i * step, "terminating", "carrier:TATA",
                    "default", "AsiaCell", f"9647{i % 100_000_000:08d}", 1, 1,
                    "TATA-IN", "964", price, amount, "USD", False, "delivered"))
        storage._conn.cacheMinimize()
    storage.close()
    done.write_text(f"{time.monotonic() - started:.1f} s\n")
    return path


def peak_mib() -> float:
    """This process's peak RSS."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_before(path: Path) -> dict:
    """The pre-streaming export: one string, written at once."""
    from appliance.billing.model import billing_of
    from appliance.billing.settlement import billable_states, export_csv
    storage = storage_for(path)
    started = time.monotonic()
    root = storage.root()
    records = billing_of(root).records.records(
        "carrier:TATA", NOV_1, NOV_1 + 30 * 86400)
    text = export_csv(records, billable_states("accepted", False)).rstrip("\n")
    data = (text + "\n").encode("utf-8")
    with open(os.devnull, "wb") as sink:
        sink.write(data)
    seconds = time.monotonic() - started
    return {"bytes": len(data), "seconds": seconds, "peak_mib": peak_mib()}


def run_after(path: Path) -> dict:
    """The streamed export, through execute() and a StreamWriter."""
    from appliance.shell.output import StreamWriter
    from appliance.shell.script import open_session
    from appliance.shell.session import execute
    storage = storage_for(path)
    session = open_session(storage, "admin", "admin")
    started = time.monotonic()
    result = execute(session, COMMAND)
    assert result.ok and result.stream is not None, result.text
    size, status = [0], []
    with open(os.devnull, "wb") as sink:
        def write(data: bytes) -> None:
            size[0] += len(data)
            sink.write(data)
        StreamWriter(result.stream, write, status.append).start()
    assert status == ["ok"], status
    seconds = time.monotonic() - started
    return {"bytes": size[0], "seconds": seconds, "peak_mib": peak_mib()}


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def run_ssh(path: Path, tmp: Path) -> dict:
    """The real node and OpenSSH."""
    from tests.e2e.harness import start_node
    keys = tmp / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = keys / "admin"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
    (keys / "admin_keys").write_text(key.with_suffix(".pub").read_text())
    node = start_node(tmp, name="export", shell={
        "enabled": True, "admin_keys": str(keys / "admin_keys")},
        storage={"uri": f"file://{path}"}, node={"log_level": "warning"})
    try:
        pid = node.process.pid
        before = kib(pid, "VmRSS")
        out = tmp / "export.csv"
        args = ["ssh", "-o", f"UserKnownHostsFile={tmp / 'known_hosts'}",
                "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
                "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(key),
                "-p", str(node.port("shell")), "admin@127.0.0.1", COMMAND]
        started = time.monotonic()
        with open(out, "wb") as f:
            rc = subprocess.run(args, stdout=f, timeout=3600).returncode
        seconds = time.monotonic() - started
        assert rc == 0, rc
        peak = kib(pid, "VmHWM")
        size = out.stat().st_size
        out.unlink()
        return {"bytes": size, "seconds": seconds, "peak_mib": peak / 1024,
                "rss_before_mib": before / 1024}
    finally:
        node.stop()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    modes = sys.argv[2:] or ["before", "after", "ssh"]
    if modes[0] == "_child":
        path = Path(sys.argv[4])
        figures = {"before": run_before, "after": run_after}[sys.argv[3]](path)
        print(json.dumps(figures))
        return
    started = time.monotonic()
    path = generate(n)
    print(f"{n} records in {path} ({path.stat().st_size / 2 ** 20:.0f} MiB; "
          f"generated in {(path.parent / 'complete').read_text().strip()}, "
          f"this run {time.monotonic() - started:.1f} s)")
    for mode in modes:
        if mode == "ssh":
            import tempfile
            with tempfile.TemporaryDirectory() as tmp:
                figures = run_ssh(path, Path(tmp))
        else:
            out = subprocess.run([sys.executable, __file__, str(n), "_child", mode, str(path)],
                                 capture_output=True, text=True, timeout=7200)
            if out.returncode != 0:
                print(f"{mode}: failed\n{out.stderr[-2000:]}")
                continue
            figures = json.loads(out.stdout.strip().splitlines()[-1])
        extra = f", node RSS before {figures['rss_before_mib']:.0f} MiB" \
            if "rss_before_mib" in figures else ""
        print(f"{mode:7s} {n} records, {figures['bytes'] / 2 ** 20:.0f} MiB of CSV in "
              f"{figures['seconds']:.1f} s ({n / figures['seconds']:,.0f} records/s), "
              f"peak RSS {figures['peak_mib']:.0f} MiB{extra}")


if __name__ == "__main__":
    main()
