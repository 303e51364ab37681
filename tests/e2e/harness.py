"""
Start the real node (C{twistd -n appliance}) for end-to-end tests.

The node runs from the project's virtualenv on loopback with ephemeral
ports (C{port=0}) and a temporary data directory; the harness waits for
C{ports.json}, which the node writes once every listener is bound.  No
fixed sleeps: every wait polls a condition against a deadline.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).parent / "twistd"


def wait_for(condition: Callable[[], Any], timeout: float = 15.0,
             interval: float = 0.02, what: str = "condition") -> Any:
    """
    Poll C{condition} until it returns something true.

    @return: that value.
    @raise TimeoutError: not true within C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def toml_value(value: Any) -> str:
    """A Python value as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """Write a TOML node configuration from nested dicts."""
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


#: Every node started, so a fixture can kill what a failed test left.
RUNNING: list["Node"] = []


def kill_all() -> None:
    """Kill every node still running (test teardown)."""
    while RUNNING:
        node = RUNNING.pop()
        if node.process.poll() is None:
            node.kill()


class Node:
    """
    A running node process.

    @ivar ports: the parsed C{ports.json}.
    @ivar data_dir: its data directory.
    @ivar log_path: where its stdout and stderr go.
    """

    def __init__(self, config: Path, data_dir: Path, log_path: Path,
                 env: dict[str, str] | None = None):
        self.config = config
        self.data_dir = data_dir
        self.log_path = log_path
        self.ports: dict[str, list[int]] = {}
        # A process killed with SIGKILL leaves its ports.json behind (a clean
        # stop removes it): gone before the start, it cannot pass for this
        # process's ports in wait_ready.
        (data_dir / "ports.json").unlink(missing_ok=True)
        self._log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [str(TWISTD), "--nodaemon", "--pidfile=", "appliance",
             "--config", str(config)],
            cwd=str(config.parent), stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})})
        RUNNING.append(self)

    def log(self) -> str:
        """Everything the node printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> dict[str, list[int]]:
        """Wait for C{ports.json}; fail early if the process dies.

        The bound only limits how long a node that never comes up holds the
        test: a healthy node is seen as soon as it writes C{ports.json}.  On a
        box loaded by parallel SIP or two-node PostgreSQL runs, start-up was
        seen to take more than 20 s.
        """
        ports_file = self.data_dir / "ports.json"

        def ready():
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"node exited with {self.process.returncode}:\n"
                    + self.log())
            if ports_file.exists():
                return (json.loads(ports_file.read_text()),)
            return None
        try:
            self.ports = wait_for(ready, timeout, what="ports.json")[0]
        except TimeoutError:
            self.kill()
            raise TimeoutError("node not ready in time:\n" + self.log())
        return self.ports

    def port(self, key: str) -> int:
        """The first port of listener kind C{key}."""
        return self.ports[key][0]

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait, and return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> int:
        """SIGKILL (no graceful stop), wait, return the status."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            return self.process.wait(15)
        finally:
            self._log.close()


def start_node(tmp_path: Path, name: str = "node", wait: bool = True,
               env: dict[str, str] | None = None,
               **sections: dict[str, Any]) -> Node:
    """
    Write a configuration under C{tmp_path/name} and start the node.

    Each keyword is a config section (C{shell={"enabled": True}}); the
    defaults put data in C{tmp_path/name/data}, log at debug level, and
    listen on loopback port 0 for every enabled service.

    @param wait: wait until it is ready (C{ports.json} written).
    """
    base = tmp_path / name
    base.mkdir(parents=True, exist_ok=True)
    data_dir = base / "data"
    config: dict[str, dict[str, Any]] = {
        "node": {"name": name, "data_dir": str(data_dir),
                 "log_level": "debug"},
    }
    for section, table in sections.items():
        merged = dict(config.get(section, {}))
        merged.update(table)
        config[section] = merged
    for section in ("shell",):
        # The shell runs unless told not to ([shell] enabled defaults on).
        table = config.setdefault(section, {})
        if table.get("enabled", True) and "listen" not in table:
            table["listen"] = "tcp:port=0:interface=127.0.0.1"
    path = write_config(base / "appliance.conf", config)
    node = Node(path, data_dir, base / "node.log", env=env)
    if wait:
        node.wait_ready()
    return node


# -- worker processes ([http] workers, [sip] workers) --------------------------

def children(pid: int) -> list[int]:
    """The processes whose parent is C{pid}."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                         capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def alive(pid: int) -> bool:
    """Whether C{pid} runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
