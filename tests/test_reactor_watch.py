"""
The reactor watch in C{tests/conftest.py}: when the reactor greenlet that
pytest-twisted runs every test in ends under a test, that test's report
says who stopped the reactor, from where, and with which signal.

Each case runs a small test file in a child pytest (with a copy of our
conftest), since stopping this session's reactor would end this run.
"""
import shutil
import subprocess
import sys
from pathlib import Path

CASES = '''
import os
import signal

from twisted.internet import defer, reactor


def later():
    d = defer.Deferred()
    reactor.callLater(30, d.callback, None)
    return d


def test_stopper():
    """Stops the reactor from a delayed call and waits on the reactor."""
    reactor.callLater(0, reactor.stop)
    return later()


def test_terminated():
    """The process gets a SIGTERM while the test waits on the reactor."""
    os.kill(os.getpid(), signal.SIGTERM)
    return later()
'''


def run_child(tmp_path: Path, name: str) -> str:
    """Run C{test_cases.py::name} in a child pytest; its output."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_cases.py").write_text(CASES)
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:randomly", f"test_cases.py::{name}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert child.returncode == 1, child.stdout + child.stderr
    return child.stdout


def test_a_stop_from_a_test_is_named_in_its_report(tmp_path):
    """A test that calls C{reactor.stop()} fails with the watch's
    diagnosis: the greenlet is dead, the stop came from that test, and the
    stack shows the call."""
    out = run_child(tmp_path, "test_stopper")
    assert "illegal switch in blockon" in out
    assert "reactor greenlet dead: True" in out
    assert "reactor.stop() called during test_cases.py::test_stopper" in out
    assert "exit signal recorded by the reactor: None" in out


def test_a_sigterm_is_named_in_the_report(tmp_path):
    """A SIGTERM to the test process (Twisted's handler stops the reactor)
    shows as exit signal 15 in the failing test's report."""
    out = run_child(tmp_path, "test_terminated")
    assert "reactor greenlet dead: True" in out
    assert "exit signal recorded by the reactor: 15" in out
