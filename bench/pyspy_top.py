"""
Sum py-spy's collapsed stacks (C{py-spy record -f raw}) by function.

    .venv/bin/python bench/pyspy_top.py FILE [FILE ...] [--top N] [--idle]

Prints, for the samples of all the files together, the functions with
the most samples anywhere on the stack ("total") and at its top ("self"),
as shares of the busy samples.  Samples whose top frame is the reactor
waiting (epoll, select) or a thread waiting on a lock are idle and left
out unless C{--idle}.  A frame is C{function (file)} without its line.
"""
from __future__ import annotations

import re
import sys
from collections import Counter

IDLE = ("poll (", "select (", "wait (", "_wait_for_tstate_lock",
        "acquire (", "sleep (", "recv_into (", "recv (")


def frames(stack: str) -> list[str]:
    """The frames of one collapsed stack, line numbers dropped."""
    return [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f]


def main(argv: list[str]) -> None:
    top = 25
    idle = "--idle" in argv
    files = [a for a in argv if not a.startswith("--")]
    if "--top" in argv:
        top = int(argv[argv.index("--top") + 1])
        files.remove(str(top))
    total: Counter = Counter()
    own: Counter = Counter()
    busy = 0
    for path in files:
        for line in open(path, errors="replace"):
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            fs = frames(stack)
            if not fs:
                continue
            if not idle and any(fs[-1].startswith(i) or i in fs[-1]
                                for i in IDLE):
                continue
            n = int(n)
            busy += n
            own[fs[-1]] += n
            for f in set(fs):
                total[f] += n
    print(f"{busy} busy samples in {len(files)} files")
    print("\n total%  function (anywhere on the stack)")
    for f, n in total.most_common(top):
        print(f"{100 * n / busy:6.1f}  {f}")
    print("\n  self%  function (top of the stack)")
    for f, n in own.most_common(top):
        print(f"{100 * n / busy:6.1f}  {f}")


if __name__ == "__main__":
    main(sys.argv[1:])
