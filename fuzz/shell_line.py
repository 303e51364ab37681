"""
Fuzz the shell's line parser (L{appliance.shell.grammar}) on the real
command tree: tokenizing, parsing in every mode, C{?} help and TAB
completion raise only L{GrammarError} or L{ArgumentError}; a line that
parses writes back (L{Command.format}) to a line that parses to the same
command and values, as C{show running-config} relies on.

    python fuzz/shell_line.py -max_total_time=60 /tmp/new fuzz/corpus/shell_line
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from appliance.shell import grammar as G
    from appliance.shell import types as T
    from appliance.shell.commands import TREE

OURS = (G.GrammarError, T.ArgumentError)
MODES = sorted({c.mode for c in TREE.commands if c.mode is not G.ANY},
               key=lambda m: m.name)
NAMES = {"carriers": ["TATA", "Carrier1"], "accounts": ["111222333"]}


def _names(kind: str) -> list[str]:
    return NAMES.get(kind, [])


def test_one_input(data: bytes) -> None:
    # byte 0: the mode, byte 1: the role (bit 0) and what to ask (bits
    # 1-2: parse, help, completion), then the line (UTF-8)
    if len(data) < 2:
        return
    mode = MODES[data[0] % len(MODES)]
    admin = bool(data[1] & 1)
    ask = (data[1] >> 1) % 3
    line = data[2:].decode("utf-8", "replace")
    # parse, help and complete each tokenize the line first, so whatever
    # tokenize raises reaches this function on every path (a call of its
    # own here doubled the cost of long lines and checked nothing more).
    if ask == 1:
        try:
            TREE.help(mode, line, admin=admin, names=_names)
        except OURS:
            pass
        return
    if ask == 2:
        TREE.complete(mode, line, admin=admin, names=_names)
        return
    try:
        match = TREE.parse(mode, line, admin=admin)
    except OURS:
        match = None
    if match is not None:
        written = match.command.format(match.values)
        again = TREE.parse(mode, written, admin=admin)
        assert again.command is match.command, (line, written)
        assert again.values == match.values, (line, written, again.values)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
