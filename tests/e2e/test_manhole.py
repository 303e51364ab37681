"""
The debug manhole: a Python REPL over SSH on its own loopback port, off by
default, for the bootstrap admin keys only, driven with the real OpenSSH
client in tmux.
"""
import shutil
import subprocess
import uuid

import pytest

from tests.e2e.harness import start_node, wait_for
from tests.e2e.test_shell_ssh import keygen

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("tmux") is None,
                                 reason="needs tmux")]


def manhole_node(tmp_path, manhole=True):
    d = tmp_path / "keys"
    d.mkdir(exist_ok=True)
    admin = keygen(d / "admin")
    keygen(d / "stranger")
    (d / "admin_keys").write_text(admin + "\n")
    return start_node(tmp_path, shell={
        "enabled": True, "admin_keys": str(d / "admin_keys"),
        "manhole": manhole,
        "manhole_listen": "tcp:port=0:interface=127.0.0.1"}), d


def ssh_args(tmp_path, port, key):
    return ["ssh", "-tt", "-o", f"UserKnownHostsFile={tmp_path / 'kh'}",
            "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(key),
            "-p", str(port), "admin@127.0.0.1"]


def test_manhole_repl_for_admin_keys(tmp_path):
    """An admin key gets a Python prompt that sees the node's live state
    (what the shell shows); the manhole has its own port in ports.json."""
    node, keys = manhole_node(tmp_path)
    session = f"mh-{uuid.uuid4().hex[:8]}"
    args = ssh_args(tmp_path, node.port("manhole"), keys / "admin")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120",
                    "-y", "30", " ".join(args)], check=True)
    try:
        def screen():
            return subprocess.run(["tmux", "capture-pane", "-t", session,
                                   "-p"], capture_output=True,
                                  text=True).stdout
        wait_for(lambda: ">>>" in screen(), 20, what="the Python prompt")
        subprocess.run(["tmux", "send-keys", "-t", session,
                        "type(live).__name__, storage.root().provisioned",
                        "Enter"], check=True)
        wait_for(lambda: "('LiveState', None)" in screen(), 20,
                 what="the answer")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])


def test_manhole_refuses_other_keys_and_exec(tmp_path):
    """A key not in the bootstrap file is refused; exec is refused too."""
    node, keys = manhole_node(tmp_path)
    port = node.port("manhole")
    def run(key):
        args = [a for a in ssh_args(tmp_path, port, key) if a != "-tt"]
        return subprocess.run(args + ["1 + 1"], capture_output=True,
                              text=True, timeout=30)
    stranger = run(keys / "stranger")
    assert stranger.returncode == 255
    assert "Permission denied" in stranger.stderr
    admin_exec = run(keys / "admin")
    assert admin_exec.returncode != 0 and "2" not in admin_exec.stdout


def test_manhole_off_by_default(tmp_path):
    """Without manhole = true no manhole port is opened."""
    node, _ = manhole_node(tmp_path, manhole=False)
    assert "manhole" not in node.ports


def test_manhole_refuses_view_role_operator(tmp_path):
    """An operator of role view (key in the database) logs in to the shell
    but the manhole refuses it, under its own name and as admin; it cannot
    reach Python at all."""
    node, keys = manhole_node(tmp_path)
    viewer = keygen(keys / "viewer")
    shell = ["ssh", "-o", f"UserKnownHostsFile={tmp_path / 'kh'}",
             "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
             "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
             "-p", str(node.port("shell"))]
    added = subprocess.run(
        shell + ["-i", str(keys / "admin"), "admin@127.0.0.1"],
        input=f"configure terminal\noperator viewer\nrole view\n"
              f"ssh-key {viewer}\nend\n",
        capture_output=True, text=True, timeout=30)
    assert added.returncode == 0, added.stdout + added.stderr
    shown = subprocess.run(
        shell + ["-i", str(keys / "viewer"), "viewer@127.0.0.1",
                 "show version"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    port = node.port("manhole")
    for user in ("viewer", "admin"):
        args = [a for a in ssh_args(tmp_path, port, keys / "viewer")
                if a != "-tt"]
        args[-1] = f"{user}@127.0.0.1"
        refused = subprocess.run(args + ["1 + 1"], capture_output=True,
                                 text=True, timeout=30)
        assert refused.returncode == 255, (user, refused.stdout)
        assert "Permission denied" in refused.stderr
