"""
A throwaway ZEO server for one test: C{runzeo} of the ZEO package in the
project's virtualenv, on a loopback port, its FileStorage in a temporary
folder.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.e2e.harness import wait_for

#: The venv's runzeo (the ZEO package's server script).
RUNZEO = Path(sys.executable).parent / "runzeo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ZEOServer:
    """
    One running ZEO server.

    @ivar port: its loopback TCP port.
    """

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="zeo-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> "ZEOServer":
        self._log = open(self.base / "zeo.log", "wb")
        self.process = subprocess.Popen(
            [str(RUNZEO), "-a", f"127.0.0.1:{self.port}",
             "-f", str(self.base / "Data.fs")],
            stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)

        def listening():
            if self.process.poll() is not None:
                raise RuntimeError("runzeo exited: " +
                                   (self.base / "zeo.log").read_text())
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_for(listening, 30, what="the ZEO server")
        return self

    @property
    def uri(self) -> str:
        """The node's C{[storage] uri} for this server."""
        return f"zeo://127.0.0.1:{self.port}"

    def stop(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.terminate()
                self.process.wait(15)
        finally:
            self._log.close()
            shutil.rmtree(self.base, ignore_errors=True)
