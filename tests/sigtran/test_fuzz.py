"""
A short atheris run of each SIGTRAN upper-layer harness (fuzz/*.py): the
decoders raise only their own error and the layers never raise.  Long
runs: C{python fuzz/NAME.py -runs=1000000}.
"""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tcap_map", "isup", "tpdu"])
def test_short_fuzz_run(name, tmp_path):
    """3,000 mutated inputs from the seed corpus: no crash, no uncaught exception."""
    out = tmp_path / "new"
    out.mkdir()
    r = subprocess.run([sys.executable, str(ROOT / "fuzz" / f"{name}.py"), "-runs=3000",
                        "-max_total_time=60", str(out), str(ROOT / "fuzz" / "corpus" / name)],
                       capture_output=True, text=True, timeout=180, cwd=str(ROOT))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "Done 3000 runs" in r.stderr
