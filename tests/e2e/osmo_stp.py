"""
osmo-stp (Osmocom's STP, 2.1 from Debian 13, run from its extracted
packages by C{tests/e2e/osmo-stp.sh}) as a real SS7 peer for the tests.

C{make test} fetches it once into C{.cache/osmo-stp} (Debian's package
registry only); each test writes its own configuration: M3UA over TCP on
127.0.0.1 with an ephemeral port, dynamic ASPs and dynamic routing keys
(C{xua rkm routing-key-allocation dynamic-permitted}), the VTY on
another ephemeral loopback port (its default, 4239, would clash between
tests).
"""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT, wait_for

SCRIPT = Path(__file__).with_name("osmo-stp.sh")
CACHE = Path(os.environ.get("OSMO_STP_DIR", ROOT / ".cache" / "osmo-stp"))


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_fetched() -> Path:
    """
    @return: the directory osmo-stp is extracted in (fetched if absent).
    """
    if not (CACHE / "root" / "usr" / "bin" / "osmo-stp").exists():
        r = subprocess.run([str(SCRIPT), "fetch", str(CACHE)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"osmo-stp could not be fetched: {r.stderr[-300:]}")
    return CACHE


class OsmoSTP:
    """
    One osmo-stp process.

    @ivar port: its M3UA TCP port.
    @ivar point_code: its own point code (3-8-3).
    """

    def __init__(self, directory: Path, workdir: Path,
                 point_code: str = "0.23.0"):
        self.directory = directory
        self.port = free_port()
        self.vty_port = free_port()
        self.point_code = point_code
        self.config = workdir / "osmo-stp.cfg"
        self.log_path = workdir / "osmo-stp.log"
        text = subprocess.run([str(SCRIPT), "config", str(self.port),
                               point_code], capture_output=True, text=True,
                              check=True).stdout
        text = text.replace(" bind 127.0.0.1\n",
                            f" bind 127.0.0.1 {self.vty_port}\n")
        assert f"bind 127.0.0.1 {self.vty_port}" in text
        self.config.write_text(text)
        self.process: subprocess.Popen | None = None

    def start(self) -> "OsmoSTP":
        """Start it and wait until its M3UA port accepts connections."""
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(SCRIPT), "run", str(self.directory), str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=str(self.config.parent))
        log.close()

        def listening():
            if self.process.poll() is not None:
                raise RuntimeError("osmo-stp exited:\n" + self.log())
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_for(listening, 15, what="osmo-stp listening")
        return self

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports (a restart mid-traffic)."""
        self.stop()
        self.start()

    def log(self) -> str:
        """What it printed so far."""
        return self.log_path.read_text(errors="replace") \
            if self.log_path.exists() else ""


@pytest.fixture
def osmo_stp(tmp_path):
    """A running osmo-stp for this test (stopped after it)."""
    work = tmp_path / "stp"
    work.mkdir()
    stp = OsmoSTP(ensure_fetched(), work).start()
    yield stp
    stp.stop()
