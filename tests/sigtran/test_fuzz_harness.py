"""The atheris harness of the M3UA/SCCP decoders runs clean for a short
budget from its committed corpus (the long runs are C{make fuzz})."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_harness_runs_clean(tmp_path):
    """3,000 coverage-guided inputs through the decoders and an active
    association: no exception other than the protocols' own errors."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / "m3ua_sccp.py"), "-runs=3000",
         "-seed=1", str(tmp_path), str(ROOT / "fuzz" / "corpus" / "m3ua_sccp")],
        capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "DONE" in r.stderr and "cov:" in r.stderr
