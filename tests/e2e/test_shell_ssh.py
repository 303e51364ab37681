"""
End-to-end tests of the SSH configuration shell: the real node
(C{twistd -n appliance}) driven by the real OpenSSH client and by tmux.
"""
import os
import shutil
import subprocess
import uuid

import pytest

from tests.e2e.harness import start_node, wait_for

pytestmark = pytest.mark.e2e


def keygen(path):
    """Generate an Ed25519 key pair; return the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                    path.name, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture
def keys(tmp_path):
    """Keys: admin (bootstrap file), alice (view), stranger (unknown)."""
    d = tmp_path / "keys"
    d.mkdir()
    out = {name: (d / name, keygen(d / name))
           for name in ("admin", "alice", "stranger")}
    (d / "admin_keys").write_text(out["admin"][1] + "\n")
    out["admin_keys"] = d / "admin_keys"
    return out


def shell_node(tmp_path, keys, name="node"):
    return start_node(tmp_path, name=name, shell={
        "enabled": True, "admin_keys": str(keys["admin_keys"])})


def ssh_args(tmp_path, node, user, key=None, batch=True):
    args = ["ssh", "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR",
            "-p", str(node.port("shell"))]
    if batch:
        args += ["-o", "BatchMode=yes"]
    if key is not None:
        args += ["-o", "IdentitiesOnly=yes", "-i", str(key)]
    return args + [f"{user}@127.0.0.1"]


def ssh(tmp_path, node, user, key, command=None, stdin=None):
    """Run the OpenSSH client; return (exit status, stdout, stderr)."""
    args = ssh_args(tmp_path, node, user, key) + ([command] if command else [])
    p = subprocess.run(args, input=stdin, capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def node(tmp_path, keys):
    n = shell_node(tmp_path, keys)
    yield n
    n.stop()


def test_exec_exit_codes(tmp_path, keys, node):
    """'ssh node cmd' prints the output with exit 0, or '% ...' and exit 1."""
    rc, out, _ = ssh(tmp_path, node, "admin", keys["admin"][0], "show version")
    assert rc == 0 and out.startswith("appliance ")
    assert "operator admin (role admin)" in out
    rc, out, _ = ssh(tmp_path, node, "admin", keys["admin"][0], "frobnicate")
    assert rc == 1 and out == "% unknown command: frobnicate\n"


def test_script_stops_at_line_7(tmp_path, keys, node):
    """A script on stdin stops at its error on line 7; nothing after it
    is applied and ssh exits 1."""
    script = ("configure terminal\n carrier A\n  max-binds 2\n exit\n"
              " carrier B\n exit\n carrier C\n  password 123456789\n"
              " exit\n carrier D\n exit\nend\n")
    script = script.replace(" carrier C\n  password 123456789\n",
                            " carrier C password\n")
    rc, out, _ = ssh(tmp_path, node, "admin", keys["admin"][0], stdin=script)
    assert rc == 1
    assert out.strip().splitlines()[-1].startswith("% line 7: ")
    rc, out, _ = ssh(tmp_path, node, "admin", keys["admin"][0],
                     "show carriers")
    assert rc == 0
    names = [line.split()[0] for line in out.splitlines()[2:]]
    assert names == ["A", "B"]


def test_running_config_round_trip_and_restart(tmp_path, keys, node):
    """running-config replayed on stdin into a second, empty node gives the
    same running-config; changes survive a restart without any save."""
    admin = keys["admin"][0]
    setup = f'''configure terminal
 product "Call & Chat"
  messaging enable
 exit
 customer "John Doe"
  account 111222333
   password s3cret-pass
   product "Call & Chat"
   did 111222333
  exit
 exit
 tariff TATA-IN
  currency USD
  prefix 964 0.01
 exit
 carrier TATA
  system-id tata
  password tatapass
  allow-ip 127.0.0.0/8
  tariff TATA-IN
 exit
 operator alice
  role view
  ssh-key {keys["alice"][1]}
 exit
end
'''
    rc, out, _ = ssh(tmp_path, node, "admin", admin, stdin=setup)
    assert rc == 0, out
    rc, first, _ = ssh(tmp_path, node, "admin", admin, "show running-config")
    assert rc == 0 and " carrier TATA\n" in first
    other = shell_node(tmp_path, keys, name="other")
    try:
        rc, out, _ = ssh(tmp_path, other, "admin", admin, stdin=first)
        assert rc == 0, out
        rc, second, _ = ssh(tmp_path, other, "admin", admin,
                            "show running-config")
        assert second == first
    finally:
        other.stop()
    assert node.stop() in (0, -15)
    again = start_node(tmp_path, name="node", shell={
        "enabled": True, "admin_keys": str(keys["admin_keys"])})
    try:
        rc, third, _ = ssh(tmp_path, again, "admin", admin,
                           "show running-config")
        assert third == first
    finally:
        again.stop()


def test_view_role_and_wrong_key(tmp_path, keys, node):
    """Role view may show but not configure; an unknown key is refused."""
    rc, out, _ = ssh(tmp_path, node, "admin", keys["admin"][0],
                     stdin=f"configure terminal\noperator alice\nssh-key "
                           f"{keys['alice'][1]}\nend\n")
    assert rc == 0, out
    rc, out, _ = ssh(tmp_path, node, "alice", keys["alice"][0],
                     "show carriers")
    assert rc == 0 and out.startswith("Carrier")
    rc, out, _ = ssh(tmp_path, node, "alice", keys["alice"][0],
                     "configure terminal")
    assert rc == 1 and out.startswith("% permission denied")
    rc, out, err = ssh(tmp_path, node, "alice", keys["stranger"][0],
                       "show version")
    assert rc == 255 and "Permission denied" in err
    rc, out, err = ssh(tmp_path, node, "admin", keys["stranger"][0],
                       "show version")
    assert rc == 255
    wait_for(lambda: "failed login for admin from 127.0.0.1" in node.log(),
             what="failed login logged")


def test_password_auth(tmp_path, keys, node):
    """An operator with a password logs in with it; a wrong one is refused."""
    rc, out, _ = ssh(tmp_path, node, "admin", keys["admin"][0],
                     stdin="configure terminal\noperator bob\nrole admin\n"
                           "password hunter2-pw\nend\n")
    assert rc == 0, out

    def login(password):
        askpass = tmp_path / f"askpass-{uuid.uuid4().hex}"
        askpass.write_text(f"#!/bin/sh\necho '{password}'\n")
        askpass.chmod(0o700)
        env = {**os.environ, "SSH_ASKPASS": str(askpass),
               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        args = ssh_args(tmp_path, node, "bob", batch=False) + [
            "-o", "PubkeyAuthentication=no",
            "-o", "PreferredAuthentications=password",
            "-o", "NumberOfPasswordPrompts=1", "show version"]
        return subprocess.run(args, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=30,
                              start_new_session=True)
    good = login("hunter2-pw")
    assert good.returncode == 0, good.stderr
    assert "operator bob (role admin)" in good.stdout
    bad = login("wrong")
    assert bad.returncode == 255


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_interactive_tmux(tmp_path, keys, node):
    """With a pty: prompt, '?' help, TAB completion, Up-arrow history."""
    name = f"shell-{uuid.uuid4().hex[:8]}"
    args = ssh_args(tmp_path, node, "admin", keys["admin"][0])
    cmd = " ".join(args[:1] + ["-tt"] + args[1:])
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100",
                    "-y", "40", cmd], check=True)

    def pane():
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", name],
                              capture_output=True, text=True).stdout

    def keys_(*k):
        subprocess.run(["tmux", "send-keys", "-t", name, *k], check=True)

    def until(condition, what):
        try:
            wait_for(condition, what=what)
        except TimeoutError:
            raise AssertionError(f"{what}:\n{pane()}") from None

    try:
        until(lambda: "node#" in pane(), what="prompt")
        keys_("show ?")
        until(lambda: "running-config" in pane(), what="help")
        assert "node# show " in pane().splitlines()[-1] or \
            "node# show" in pane()
        keys_(*["BSpace"] * 10)
        keys_("conf", "Tab")
        # capture-pane drops the trailing space TAB added; typing "t"
        # next gives "configure t" only if it was there.
        until(lambda: pane().rstrip().endswith("node# configure"),
                 what="TAB")
        keys_("t", "Enter")
        until(lambda: "node(config)#" in pane(), what="config mode")
        keys_("carrier TATA", "Enter")
        until(lambda: "(config-carrier)#" in pane(), what="carrier mode")
        keys_("max-binds 7", "Enter")
        subprocess.run(["tmux", "send-keys", "-t", name, "-l", "end"],
                       check=True)  # -l: not the End key
        keys_("Enter")
        until(lambda: pane().rstrip().endswith("node#"),
                 what="back at top")
        keys_("Up")
        until(lambda: pane().rstrip().endswith("node# end"),
                 what="history recall")
        keys_("Up")
        until(lambda: pane().rstrip().endswith("node# max-binds 7"),
                 what="older history")
        keys_(*["BSpace"] * 20)
        keys_("exit", "Enter")
        until(lambda: "max-binds" in ssh(tmp_path, node, "admin",
                                            keys["admin"][0],
                                            "show running-config")[1],
                 what="change applied")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name],
                       capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_interactive_line_editing_keys(tmp_path, keys, node):
    """
    Over OpenSSH with a pty (tmux): Ctrl-A/Ctrl-E move to the start and
    end, Ctrl-W deletes a word, Ctrl-U the line before the cursor, Ctrl-K
    the rest of it, Ctrl-C abandons a line (new prompt, nothing run), and
    Ctrl-D on an empty line ends the session.
    """
    name = f"keys-{uuid.uuid4().hex[:8]}"
    args = ssh_args(tmp_path, node, "admin", keys["admin"][0])
    cmd = " ".join(args[:1] + ["-tt"] + args[1:])
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "100",
                    "-y", "40", cmd], check=True)

    def pane():
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", name],
                              capture_output=True, text=True).stdout

    def last():
        return pane().rstrip().splitlines()[-1] if pane().strip() else ""

    def type_(text):
        subprocess.run(["tmux", "send-keys", "-t", name, "-l", text], check=True)

    def key(*k):
        subprocess.run(["tmux", "send-keys", "-t", name, *k], check=True)

    def until(condition, what):
        try:
            wait_for(condition, what=what)
        except TimeoutError:
            raise AssertionError(f"{what}:\n{pane()}") from None

    try:
        until(lambda: last() == "node#", what="prompt")
        type_("ersion")
        key("C-a")
        type_("show v")
        until(lambda: last() == "node# show version", what="Ctrl-A")
        key("C-a")
        key("C-e")
        type_(" extra words")
        key("C-w")
        key("C-w")
        until(lambda: last() == "node# show version", what="Ctrl-E, Ctrl-W")
        key("Enter")
        until(lambda: "Twisted" in pane() and last() == "node#", what="show version ran")
        type_("configure terminal")
        key("C-u")
        until(lambda: last() == "node#", what="Ctrl-U")
        type_("show versionXYZ")
        key("Left", "Left", "Left", "C-k")
        until(lambda: last() == "node# show version", what="Ctrl-K")
        key("C-u")
        type_("configure terminal")
        key("C-c")
        until(lambda: "node# configure terminal^C" in pane() and last() == "node#",
              what="Ctrl-C")
        type_("show carriers")
        key("Enter")
        until(lambda: "Carrier" in pane() and last() == "node#", what="still at the top")
        assert "(config)" not in pane()
        key("C-d")
        until(lambda: subprocess.run(["tmux", "has-session", "-t", name],
                                     capture_output=True).returncode != 0,
              what="Ctrl-D ends the session")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name],
                       capture_output=True)


def test_logs_carry_no_noise(tmp_path, keys):
    """
    Normal use logs no error and no warning: exec commands and scripts
    ending with a normal SSH disconnect, and an outbound SMPP connection
    configured line by line (each line a change the connection pool
    reconciles before the next line sets the missing fields).
    """
    node = start_node(tmp_path, shell={"enabled": True,
                                       "admin_keys": str(keys["admin_keys"])},
                      smpp={"enabled": True,
                            "listen": "tcp:port=0:interface=127.0.0.1"})
    try:
        admin = keys["admin"][0]
        assert ssh(tmp_path, node, "admin", admin, "show version")[0] == 0
        script = ("configure terminal\n connection peer\n  host 127.0.0.1\n"
                  "  port 9\n  system-id peer\n  password peerpass\n"
                  "  shutdown\n end\n")
        rc, out, _ = ssh(tmp_path, node, "admin", admin, stdin=script)
        assert rc == 0, out
        assert "connection peer" in ssh(tmp_path, node, "admin", admin,
                                        "show running-config")[1]
        wait_for(lambda: node.log().count("SSH client disconnected") >= 3,
                 what="three disconnects logged")
    finally:
        node.stop()
    noisy = [line for line in node.log().splitlines()
             if line.split(" ")[1:2] in (["error"], ["warning"], ["critical"])]
    assert noisy == [], "\n".join(noisy)
