"""
Fixtures for the SIP service tests (the helpers are in C{sipbench}).
"""
from __future__ import annotations

from pathlib import Path

import pytest

try:
    from tests.sip.sipbench import Bench
except ImportError:  # rootdir-relative import mode
    from sipbench import Bench  # type: ignore[no-redef]


@pytest.fixture
def bench(tmp_path: Path):
    """A started SIP service; stopped after the test, leaving no timers."""
    b = Bench(tmp_path)
    yield b
    b.stop()
    b.settle(1)
    b.storage.flush()
    assert [c for c in b.reactor.getDelayedCalls() if c.active()] == []
