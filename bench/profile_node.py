#!/usr/bin/env python3
"""
Profile the node under one of the benches with py-spy (issue 16 item 1):
runs the bench, attaches `py-spy record --format raw` to the Nth twistd
process the bench starts (after DELAY s) for DURATION s, and writes a
small text summary under bench/profiles/: the top functions by self and
by total time, and the top collapsed stacks.

    python bench/profile_node.py NAME [--nth 1] [--delay 3] [--duration 20]
        -- COMMAND...

py-spy needs ptrace rights on the node (root, or ptrace_scope 0).
"""
from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYSPY = Path(sys.executable).parent / "py-spy"


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            out.append(k)
            todo.append(k)
    return out


def is_twistd(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith(b"twistd") for part in cmd[:2]) and \
        b"appliance" in cmd


def frame_name(frame: str) -> str:
    """'func (path/file.py:12)' -> 'func (file.py)' without the line."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    parts = path.split("/")
    if "appliance" in parts:
        path = "/".join(parts[parts.index("appliance"):])
    elif "site-packages" in parts:
        path = "/".join(parts[parts.index("site-packages") + 1:])
    else:
        path = parts[-1]
    return f"{name} ({path})"


#: Frames of what runs once, not per message (L{summarise} C{steady}).
STARTUP = ("makeService ", "NodeService.startService ", "_find_and_load ",
           "verify_secret ", "hash_secret ")
#: The innermost frames of a thread pool worker waiting for work.
IDLE_WORKER = ["Queue.get (queue.py)", "Condition.wait (threading.py)"]


def summarise(raw: Path, title: str, top: int = 30,
              steady: bool = False, rate: int = 100) -> str:
    self_t: collections.Counter = collections.Counter()
    total_t: collections.Counter = collections.Counter()
    stacks: collections.Counter = collections.Counter()
    samples = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")]
        if frames[-2:] == IDLE_WORKER:
            # A thread pool's worker waiting for work (py-spy does not
            # always see it as idle): not CPU spent.
            idle += n
            continue
        if steady and any(f.startswith(STARTUP) for f in frames):
            # Start-up and binds (imports, generations, provisioning,
            # the four binds' password checks): not per message.
            idle += n
            continue
        # the first frame is the thread name under --threads; skip none
        samples += n
        self_t[frames[-1]] += n
        for f in set(frames):
            total_t[f] += n
        stacks[";".join(frames[-8:])] += n
    pct = lambda n: f"{100 * n / samples:5.1f}%"  # noqa: E731
    lines = [f"# {title}", f"# {samples} samples (py-spy, {rate} Hz, "
             f"active threads only; {idle} of idle pool workers waiting "
             "for work" + (", start-up and binds" if steady else "")
             + " left out)", "", "## top by self time"]
    lines += [f"{pct(n)}  {f}" for f, n in self_t.most_common(top)]
    lines += ["", "## top by total time (inclusive)"]
    lines += [f"{pct(n)}  {f}" for f, n in total_t.most_common(top)]
    ours = [(f, n) for f, n in total_t.most_common() if "(appliance/" in f]
    lines += ["", "## the node's own functions by total time (inclusive)"]
    lines += [f"{pct(n)}  {f}" for f, n in ours[:top]]
    lines += ["", f"## top {top} collapsed stacks (innermost 8 frames)"]
    lines += [f"{pct(n)}  {s}" for s, n in stacks.most_common(top)]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--nth", type=int, default=1)
    ap.add_argument("--delay", type=float, default=3)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--title", default="")
    ap.add_argument("--gil", action="store_true",
                    help="sample only the thread holding the GIL (where "
                    "the Python CPU goes; waits in fsync or epoll drop out)")
    ap.add_argument("--raw", help="summarise this py-spy raw file instead "
                    "of running a bench")
    ap.add_argument("--rate", type=int, default=200,
                    help="the raw file's sampling rate (--raw; bench_peers "
                    "records at 200 Hz)")
    ap.add_argument("--steady", action="store_true",
                    help="leave out start-up and binds (see STARTUP)")
    argv = sys.argv[1:]
    if "--raw" in argv:
        a = ap.parse_args(argv)
        text = summarise(Path(a.raw), a.title or a.name, steady=a.steady,
                         rate=a.rate)
        (ROOT / "bench" / "profiles" / f"{a.name}.txt").write_text(text)
        print(text[:3000])
        return
    if "--" not in argv:
        ap.error("the bench's command line goes after --")
    cut = argv.index("--")
    a = ap.parse_args(argv[:cut])
    cmd = argv[cut + 1:]
    out = ROOT / "bench" / "profiles"
    out.mkdir(exist_ok=True)
    raw = Path(f"/tmp/profile-{a.name}-{os.getpid()}.raw")
    bench = subprocess.Popen(cmd, cwd=str(ROOT))
    seen: list[int] = []
    spy = None
    try:
        deadline = time.monotonic() + 600
        while len(seen) < a.nth and time.monotonic() < deadline:
            if bench.poll() is not None:
                raise SystemExit("the bench ended before its node started")
            for p in descendants(bench.pid):
                if p not in seen and is_twistd(p):
                    seen.append(p)
            time.sleep(0.05)
        time.sleep(a.delay)
        spy = subprocess.run(
            [str(PYSPY), "record", "--pid", str(seen[a.nth - 1]), "--format",
             "raw", "--rate", "100", "--duration", str(a.duration),
             "--nonblocking", "-o", str(raw)] + (["--gil"] if a.gil else []),
            timeout=a.duration + 60,
            stdout=subprocess.DEVNULL)
        bench.wait(900)
    finally:
        if bench.poll() is None:
            bench.terminate()
            bench.wait(30)
    text = summarise(raw, a.title or a.name, steady=a.steady)
    (out / f"{a.name}.txt").write_text(text)
    print(text[:3000])


if __name__ == "__main__":
    main()
