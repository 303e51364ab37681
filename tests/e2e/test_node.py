"""
End-to-end tests of the node process: C{twistd -n appliance} with a
temporary configuration, started and stopped as systemd would.
"""
import json
import signal
import subprocess
import sys

import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from appliance.application import GENERATIONS
from tests.e2e.harness import TWISTD, start_node, wait_for, write_config

pytestmark = pytest.mark.e2e


def open_data(node):
    """Open the node's database after it stopped."""
    return ZODB.DB(FileStorage(str(node.data_dir / "Data.fs")))


def test_start_ports_and_sigterm(tmp_path):
    """With no service enabled (the shell turned off) the node starts,
    writes ports.json as {}, and on SIGTERM stops gracefully: clean exit,
    database closed, data on disk at the newest generation."""
    node = start_node(tmp_path, shell={"enabled": False})
    assert node.ports == {}
    rc = node.stop()
    assert rc in (0, -signal.SIGTERM), node.log()
    log = node.log()
    assert "node node ready" in log
    assert "database closed" in log
    assert "node node stopped" in log
    assert "Traceback" not in log
    assert not (node.data_dir / "ports.json").exists()
    db = open_data(node)
    with db.transaction() as conn:
        assert conn.root()["appliance.generations"]["messaging"] >= 1
        assert conn.root()["appliance"] is not None
    db.close()


def test_data_survives_restart(tmp_path):
    """What is in the database before a start is still there after a
    start, a SIGTERM and another start."""
    node = start_node(tmp_path)
    node.stop()
    db = open_data(node)
    with db.transaction() as conn:
        conn.root()["appliance"].add_carrier("TATA")
    db.close()
    again = start_node(tmp_path)
    assert again.stop() in (0, -signal.SIGTERM)
    db = open_data(again)
    with db.transaction() as conn:
        assert "TATA" in conn.root()["appliance"].carriers
    db.close()


def test_config_error_exits_before_binding(tmp_path):
    """A bad key stops start-up with a message naming it and a non-zero
    exit, and nothing is written to the data directory."""
    data = tmp_path / "data"
    conf = write_config(tmp_path / "bad.conf", {
        "node": {"data_dir": str(data), "log_levle": "info"},
        "shell": {"enabled": True, "listen": "tcp:port=70000"},
    })
    proc = subprocess.run(
        [str(TWISTD), "--nodaemon", "--pidfile=", "appliance",
         "--config", str(conf)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "[node] log_levle: unknown key" in out
    assert "[shell] listen:" in out and "port out of range" in out
    assert not data.exists()


def test_locked_database_exits_nonzero(tmp_path):
    """A second node on the same FileStorage cannot start: it says why and
    exits non-zero, and the first keeps running."""
    first = start_node(tmp_path, name="one")
    second = start_node(tmp_path, name="two", wait=False,
                        node={"data_dir": str(first.data_dir)})
    rc = second.process.wait(30)
    assert rc == 1, second.log()
    assert "start-up failed" in second.log()
    assert first.process.poll() is None
    assert first.stop() in (0, -signal.SIGTERM)


def test_newer_database_refused(tmp_path):
    """A database written by newer code is refused at start-up: one error
    line that names the domain and says the database was not changed (no
    traceback), exit status 78 (which appliance.service does not restart),
    and the database file byte for byte as it was."""
    node = start_node(tmp_path)
    node.stop()
    db = open_data(node)
    with db.transaction() as conn:
        conn.root()["appliance.generations"]["model"] = 999
    db.close()
    data = node.data_dir / "Data.fs"
    before = data.read_bytes()
    again = start_node(tmp_path, wait=False)
    assert again.process.wait(30) == 78, again.log()
    refusals = [line for line in again.log().splitlines()
                if "refusing to start" in line]
    assert len(refusals) == 1, again.log()
    steps = len(dict(GENERATIONS)["model"])
    assert " error [appliance.node.NodeService] refusing to start: database " \
        f"generation 999 of domain 'model' is newer than this code ({steps}): " \
        "upgrade the software. The database was not changed." in refusals[0]
    assert "Traceback" not in again.log()
    assert data.read_bytes() == before


def test_plugin_listed():
    """twistd lists the appliance plugin from the virtualenv, without
    PYTHONPATH."""
    out = subprocess.run([str(TWISTD), "--help"], capture_output=True,
                         text=True, cwd="/", timeout=60,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert "appliance" in out


def test_shell_on_by_default(tmp_path):
    """A configuration without a [shell] section runs the SSH shell (as
    docs/CONFIGURATION.md says): an OpenSSH client gets its host key."""
    node = start_node(tmp_path)
    try:
        port = node.port("shell")
        out = subprocess.run(["ssh-keyscan", "-p", str(port), "-t", "ed25519",
                              "127.0.0.1"], capture_output=True, text=True,
                             timeout=30)
        assert "ssh-ed25519" in out.stdout, out.stderr
    finally:
        node.stop()
