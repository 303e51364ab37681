"""
Shared set-up of the atheris harnesses: the repository on the path, and
the run used by the tests (a bounded number of inputs from the corpus).

    python fuzz/tcap_map.py [libFuzzer flags] [fuzz/corpus/tcap_map]
    python fuzz/tcap_map.py -runs=1000000 fuzz/corpus/tcap_map
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def corpus(name: str) -> str:
    """The seed corpus directory of harness C{name}."""
    return os.path.join(ROOT, "fuzz", "corpus", name)


def main(test_one_input, name: str) -> None:
    """Run atheris with the command line (the corpus by default)."""
    import atheris
    argv = list(sys.argv)
    if not any(not a.startswith("-") for a in argv[1:]):
        argv.append(corpus(name))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
