"""
A throwaway PostgreSQL cluster for one test: C{initdb} and C{pg_ctl} of
Debian's C{postgresql} (under /usr/lib/postgresql/*/bin) in a temporary
folder, on a loopback port and a Unix socket in that folder; no system
service.  As root (CI) the server runs as C{nobody}: initdb refuses root.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

#: The database user, and its password (characters a URI must encode).
USER = "appliance"
PASSWORD = "p@ss:w/rd%"


def pg_bin(name: str) -> str | None:
    """@return: the path of PostgreSQL's C{name} binary, or C{None}."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """
    One running cluster.

    @ivar port: its loopback TCP port.
    @ivar socket_dir: the folder of its Unix socket.
    """

    def __init__(self, fsync: bool = False) -> None:
        """@param fsync: whether the server fsyncs its commits (off for
            tests; on for benches, as an operator runs it)."""
        self.fsync = fsync
        self.base = Path(tempfile.mkdtemp(prefix="pgcluster-"))
        self.data = self.base / "data"
        self.socket_dir = self.base
        self.port = free_port()
        self._user = "nobody" if os.geteuid() == 0 else None
        if self._user:
            shutil.chown(self.base, self._user)

    def _run(self, *argv: str) -> None:
        subprocess.run(argv, check=True, user=self._user, cwd=self.base,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=120)

    def start(self) -> "Cluster":
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._user:
            shutil.chown(pwfile, self._user)
        # Password (scram) over TCP, so the URI's encoded password counts;
        # trust on the socket, which only this folder's owner reaches.
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", USER,
                  "--pwfile", str(pwfile), "--auth-host=scram-sha-256",
                  "--auth-local=trust", "-E", "UTF8", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                   f"-c unix_socket_directories={self.socket_dir} "
                   f"-c fsync={'on' if self.fsync else 'off'}")
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.base / "server.log"), "-w", "-t", "60",
                  "start")
        return self

    def create_database(self, name: str) -> None:
        self._run(pg_bin("createdb"), "-h", str(self.socket_dir),
                  "-p", str(self.port), "-U", USER, name)

    def uri(self, dbname: str) -> str:
        """The postgresql:// URI of C{dbname} over TCP with the password."""
        return (f"postgresql://{USER}:{quote(PASSWORD, safe='')}"
                f"@127.0.0.1:{self.port}/{dbname}")

    def socket_uri(self, dbname: str) -> str:
        """The same database over the Unix socket."""
        return (f"postgresql://{USER}@{quote(str(self.socket_dir), safe='')}"
                f":{self.port}/{dbname}")

    def stop(self) -> None:
        try:
            self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast",
                      "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
