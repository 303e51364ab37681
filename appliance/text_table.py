"""
Aligned text tables for an 80-column terminal.

Neutral and pure: the shell's commands and the services' C{show} texts
(HTTP, SS7) both format with it.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]],
          width: int = 79) -> str:
    """
    An aligned text table for an 80-column terminal.

    Columns are as wide as their widest cell; when the table would be
    wider than C{width}, the last column is cut with C{~}.

    @param headers: column titles.
    @param rows: cell values (converted with C{str}; C{None} shows C{-}).
    @param width: the widest line allowed.
    @return: the table, or C{headers} and C{(none)} when there are no rows.
    """
    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    fixed = sum(widths[:-1]) + 2 * (len(widths) - 1)
    widths[-1] = max(min(widths[-1], width - fixed), len(headers[-1]))

    def line(values: Sequence[str]) -> str:
        out = []
        for i, v in enumerate(values):
            w = widths[i]
            if len(v) > w:
                v = v[:max(w - 1, 0)] + "~"
            out.append(v.ljust(w) if i < len(values) - 1 else v)
        return "  ".join(out).rstrip()

    text = [line(headers), line(["-" * w for w in widths])]
    text += [line(row) for row in cells]
    if not cells:
        text.append("(none)")
    return "\n".join(text)
