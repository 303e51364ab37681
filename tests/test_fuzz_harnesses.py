"""
A short atheris run of the SMPP, UDH/text, SIP, shell line and HTTP
parameter harnesses (fuzz/*.py) from their committed corpora: the
decoders raise only their own errors.
Long runs: C{make fuzz FUZZ_TIME=...}.
"""
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smpp_pdu", "smpp_text", "sip_message",
                                  "shell_line", "http_params"])
def test_short_fuzz_run(name, tmp_path):
    """2,000 mutated inputs from the seed corpus: no uncaught exception."""
    out = tmp_path / "new"
    out.mkdir()
    r = subprocess.run([sys.executable, str(ROOT / "fuzz" / f"{name}.py"),
                        "-runs=2000", "-seed=1", "-max_total_time=90",
                        str(out), str(ROOT / "fuzz" / "corpus" / name)],
                       capture_output=True, text=True, timeout=180,
                       cwd=str(ROOT))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "Done 2000 runs" in r.stderr
