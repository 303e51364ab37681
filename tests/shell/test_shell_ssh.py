"""Unit tests of the SSH pieces: keys, checkers, session adapter, terminal."""
import os

from twisted.conch.error import ValidPublicKey
from twisted.conch.insults import insults
from twisted.conch.ssh import keys
from twisted.cred.credentials import SSHPrivateKey, UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock, StringTransport
from cryptography.hazmat.primitives.asymmetric import ed25519

from appliance.shell.script import open_session
from appliance.shell.service import make_service
from appliance.shell.ssh import (
    OperatorAvatar, OperatorIdentity, OperatorKeyChecker,
    OperatorPasswordChecker, ShellContext, ShellSession, load_host_key)
from appliance.shell.terminal import CLITerminal, ScriptReader


def new_key():
    return keys.Key(ed25519.Ed25519PrivateKey.generate())


def signed(user, key, data=b"session-data"):
    blob = key.public().blob()
    return SSHPrivateKey(user, b"ssh-ed25519", blob, data, key.sign(data))


def test_host_key_generated_once(tmp_path):
    """The host key is generated with mode 0600 and then reused."""
    path = tmp_path / "sub" / "ssh_host_ed25519_key"
    first = load_host_key(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert first.type() == "Ed25519"
    assert load_host_key(path).public().blob() == first.public().blob()


def test_key_checker_bootstrap_and_operators(tmp_path, storage, admin):
    """Bootstrap keys log in as admin; operator keys with the role stored."""
    boot, alice, other = new_key(), new_key(), new_key()
    (tmp_path / "admin_keys").write_text(
        "# comment\nnot a key\n" + boot.public().toString("openssh").decode()
        + "\n")
    execute_lines(admin, "configure terminal", "operator alice",
                  "ssh-key " + alice.public().toString("openssh").decode())
    checker = OperatorKeyChecker(storage, tmp_path / "admin_keys")
    got = checker.requestAvatarId(signed(b"admin", boot))
    assert got.result == OperatorIdentity("admin", "admin")
    got = checker.requestAvatarId(signed(b"alice", alice))
    assert got.result == OperatorIdentity("alice", "view")
    for user, key in [(b"alice", other), (b"admin", alice), (b"bob", boot)]:
        d = checker.requestAvatarId(signed(user, key))
        assert d.result.check(UnauthorizedLogin)
        d.addErrback(lambda f: None)
    probe = SSHPrivateKey(b"alice", b"ssh-ed25519", alice.public().blob(),
                          None, None)
    d = checker.requestAvatarId(probe)
    assert d.result.check(ValidPublicKey)
    d.addErrback(lambda f: None)
    forged = SSHPrivateKey(b"alice", b"ssh-ed25519", alice.public().blob(),
                           b"x", other.sign(b"x"))
    d = checker.requestAvatarId(forged)
    assert d.result.check(UnauthorizedLogin)
    d.addErrback(lambda f: None)


def test_password_checker(storage, admin):
    """Passwords are checked against the operator; none set means refused."""
    execute_lines(admin, "configure terminal", "operator bob", "role admin",
                  "password pw-123", "exit", "operator carol")
    checker = OperatorPasswordChecker(storage)
    ok = checker.requestAvatarId(UsernamePassword(b"bob", b"pw-123"))
    assert ok.result == OperatorIdentity("bob", "admin")
    for user, pw in [(b"bob", b"nope"), (b"carol", b""), (b"nobody", b"x")]:
        d = checker.requestAvatarId(UsernamePassword(user, pw))
        assert d.result.check(UnauthorizedLogin)
        d.addErrback(lambda f: None)


def execute_lines(session, *lines):
    from appliance.shell.session import execute
    for line in lines:
        result = execute(session, line)
        assert result.ok, (line, result.text)


class FakeProcessProtocol:
    """Stands for Conch's SSHSessionProcessProtocol."""

    def __init__(self):
        self.data = b""
        self.ended = None
        self.transport = None

    def write(self, data):
        self.data += data

    def processEnded(self, reason):
        self.ended = reason

    def makeConnection(self, transport):
        self.transport = transport

    def getPeer(self):
        class Peer:
            host = "192.0.2.1"
        return Peer()


def avatar(storage, role="admin"):
    return OperatorAvatar(OperatorIdentity("admin", role),
                          ShellContext(storage))


def test_exec_exit_status(storage):
    """exec answers with the output and exit 0, or '% ...' and exit 1."""
    proto = FakeProcessProtocol()
    ShellSession(avatar(storage)).execCommand(proto, b"show version")
    assert proto.data.startswith(b"appliance ")
    assert proto.ended.check(ProcessDone)
    proto = FakeProcessProtocol()
    ShellSession(avatar(storage, "view")).execCommand(proto, b"conf t")
    assert proto.data.startswith(b"% permission denied")
    assert proto.ended.check(ProcessTerminated)
    assert proto.ended.value.exitCode == 1


def test_shell_without_pty_runs_script(storage):
    """Without a pty, stdin is a script stopping at the first error."""
    proto = FakeProcessProtocol()
    sess = ShellSession(avatar(storage))
    sess.openShell(proto)
    proto.transport.write(b"configure terminal\ncarrier A\nexit\n")
    proto.transport.write(b"carrier B\nmax-binds 0\ncarrier C\n")
    assert proto.data == b"% line 5: invalid <1-100> '0': out of range <1-100>\n"
    assert proto.ended.value.exitCode == 1
    assert sorted(storage.root().carriers.keys()) == ["A", "B"]


def test_script_reader_eof_exit_zero(storage):
    """A script without errors ends with exit 0 at EOF, last line included."""
    ended = []
    reader = ScriptReader(open_session(storage, "admin", "admin"), ended.append)
    reader.makeConnection(StringTransport())
    reader.dataReceived(b"configure terminal\r\ncarrier A")
    assert ended == []
    reader.eof()
    assert ended == [0]
    assert "A" in storage.root().carriers


def terminal(storage, role="admin"):
    ended = []
    session = open_session(storage, "admin", role)
    sp = insults.ServerProtocol(CLITerminal, session, ended.append)
    transport = StringTransport()
    sp.makeConnection(transport)
    return sp, transport, ended


def test_terminal_prompt_help_tab_history(storage):
    """The pty shell: prompt, '?' not inserted, TAB completes, Up recalls."""
    sp, transport, ended = terminal(storage)
    cli = sp.terminalProtocol
    assert b"appliance# " in transport.value()
    sp.dataReceived(b"show ?")
    assert b"running-config" in transport.value()
    assert b"".join(cli.lineBuffer) == b"show "
    sp.dataReceived(b"ver\t")
    assert b"".join(cli.lineBuffer) == b"show version "
    sp.dataReceived(b"\r")
    assert b"Twisted" in transport.value()
    sp.dataReceived(b"conf\t")
    assert b"".join(cli.lineBuffer) == b"configure "
    sp.dataReceived(b"t\r")
    assert transport.value().endswith(b"appliance(config)# ")
    sp.dataReceived(b"\x1b[A")  # Up arrow
    assert b"".join(cli.lineBuffer) == b"configure t"
    sp.dataReceived(b"\x7f" * 20 + b"end\rexit\r")
    assert ended == [0]


def test_terminal_tab_object_names_quoted(storage, admin):
    """TAB completes object names, quoting names with spaces."""
    execute_lines(admin, "configure terminal", 'product "Call & Chat"')
    sp, transport, ended = terminal(storage)
    sp.dataReceived(b"configure terminal\rproduct Ca\t")
    assert b"".join(sp.terminalProtocol.lineBuffer) == b'product "Call & Chat" '


def test_service_listens_and_stops(tmp_path, storage):
    """The service listens on its endpoints, records ports, stops them."""
    from types import SimpleNamespace
    reactor = MemoryReactorClock()
    recorded = []
    node = SimpleNamespace(
        reactor=reactor, storage=storage, config=None,
        ports=SimpleNamespace(record=lambda k, p: recorded.append((k, p))))
    section = SimpleNamespace(
        listen=("tcp:port=2022:interface=127.0.0.1",), admin_keys=None,
        host_key=tmp_path / "hk", audit_log=tmp_path / "audit.log",
        manhole=True, manhole_listen=("tcp:port=2023:interface=127.0.0.1",))
    svc = make_service(section, node)
    svc.startService()
    assert svc.ready.called
    assert [p[0] for p in reactor.tcpServers] == [2022, 2023]
    assert [k for k, _ in recorded] == ["shell", "manhole"]
    assert (tmp_path / "hk").exists()
    d = svc.stopService()
    assert d.called and not svc.ports


def screen_line(transport, row=None) -> str:
    """
    The screen as a VT100 would show it after the server's output (Conch's
    terminal emulator), as the text of the cursor's row (or C{row}).
    """
    from twisted.conch.insults import helper
    buffer = helper.TerminalBuffer()
    client = insults.ClientProtocol(lambda: buffer)
    client.makeConnection(StringTransport())
    client.dataReceived(transport.value())
    y = buffer.reportCursorPosition()[1] if row is None else row
    return bytes(buffer).split(b"\n")[y].decode("utf-8", "replace").rstrip()


def buffer_of(sp) -> bytes:
    return b"".join(sp.terminalProtocol.lineBuffer)


def test_terminal_ctrl_a_e_move_to_start_and_end(storage):
    """Ctrl-A moves to the start of the line, Ctrl-E to its end."""
    sp, transport, ended = terminal(storage)
    sp.dataReceived(b"ow version\x01sh\x05 x")
    assert buffer_of(sp) == b"show version x"
    assert screen_line(transport) == "appliance# show version x"


def test_terminal_ctrl_u_w_k_kill(storage):
    """
    Ctrl-U deletes back to the start of the line, Ctrl-W the word before
    the cursor, Ctrl-K to the end of the line; the screen shows the line
    that is left.
    """
    sp, transport, ended = terminal(storage)
    sp.dataReceived(b"show running-config  \x17")
    assert buffer_of(sp) == b"show "
    assert screen_line(transport) == "appliance# show"
    sp.dataReceived(b"version\x1b[D\x1b[D\x15")
    assert buffer_of(sp) == b"on"
    assert sp.terminalProtocol.lineBufferIndex == 0
    assert screen_line(transport) == "appliance# on"
    sp.dataReceived(b"\x05\x1b[D\x0b")
    assert buffer_of(sp) == b"o"
    assert screen_line(transport) == "appliance# o"
    sp.dataReceived(b"\x01\x0b\x17\x15")
    assert buffer_of(sp) == b""
    assert ended == []


def test_terminal_ctrl_c_abandons_the_line(storage):
    """
    Ctrl-C abandons the line without running it and shows a new prompt
    on the next line.
    """
    sp, transport, ended = terminal(storage)
    sp.dataReceived(b"configure terminal\x03")
    assert buffer_of(sp) == b""
    assert transport.value().endswith(b"^C\r\nappliance# ")
    sp.dataReceived(b"show version\r")
    assert b"appliance(config)#" not in transport.value()
    assert ended == []


def test_terminal_ctrl_d_leaves_only_at_an_empty_line(storage):
    """
    Ctrl-D on a line with text deletes the character under the cursor;
    on an empty line it ends the session with status 0.
    """
    sp, transport, ended = terminal(storage)
    sp.dataReceived(b"shxow\x1b[D\x1b[D\x1b[D\x04")
    assert buffer_of(sp) == b"show"
    assert ended == []
    sp.dataReceived(b"\x05\x15\x04")
    assert ended == [0]


def test_normal_disconnect_is_not_an_error():
    """
    A client's normal disconnect (DISCONNECT_BY_APPLICATION, sent by
    OpenSSH at the end of every session) is logged at info; another
    reason is a warning; neither is an error.
    """
    from twisted.conch.ssh.transport import (
        DISCONNECT_BY_APPLICATION, DISCONNECT_PROTOCOL_ERROR)
    from twisted.logger import LogLevel, capturedLogs
    from appliance.shell.ssh import ShellSSHFactory
    transport = ShellSSHFactory.protocol()
    with capturedLogs() as events:
        transport.receiveError(DISCONNECT_BY_APPLICATION, b"disconnected by user")
        transport.receiveError(DISCONNECT_PROTOCOL_ERROR, b"bad packet")
    assert [e["log_level"] for e in events] == [LogLevel.info, LogLevel.warn]


def test_bad_authorized_keys_lines_logged_others_read(tmp_path):
    """Lines of the admin keys file that are not public keys (junk, a
    truncated key, a bad base64 body) are each logged as a warning with
    the reason's traceback, and the good key on the next line is still
    read."""
    from twisted.conch.ssh import keys
    from twisted.logger import LogLevel, capturedLogs
    from appliance.shell.ssh import read_authorized_keys
    good = keys.Key(ed25519.Ed25519PrivateKey.generate()).public()
    path = tmp_path / "admin_keys"
    path.write_text("# comment\ngarbage\nssh-ed25519 AAAA\n"
                    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ\n"
                    + good.toString("OPENSSH").decode() + " ok@host\n")
    with capturedLogs() as events:
        found = read_authorized_keys(path)
    assert [k.blob() for k in found] == [good.blob()]
    warned = [e for e in events if e["log_level"] == LogLevel.warn]
    assert [e["n"] for e in warned] == [2, 3, 4]
    assert all("log_failure" in e for e in warned)


class ThreadPoolReactor:
    """A reactor whose thread pool keeps the jobs until L{run} (so a test
    sees what waits for the pool) and whose callFromThread calls at once."""

    def __init__(self):
        self.jobs = []

    def getThreadPool(self):
        return self

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        self.jobs.append((on_result, f, args, kwargs))

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)

    def run(self):
        jobs, self.jobs = self.jobs, []
        for on_result, f, args, kwargs in jobs:
            on_result(True, f(*args, **kwargs))


def test_password_checked_in_the_thread_pool(storage, admin):
    """In the node the password (scrypt) is checked in the reactor's
    thread pool, never on the reactor thread: the login is answered only
    once the pool's job has run; the SSH factory hands the shell's
    reactor to the checker."""
    from twisted.cred.credentials import IUsernamePassword
    from appliance.shell.ssh import make_factory
    execute_lines(admin, "configure terminal", "operator bob", "role admin",
                  "password pw-123", "exit")
    reactor = ThreadPoolReactor()
    checker = OperatorPasswordChecker(storage, reactor)
    d = checker.requestAvatarId(UsernamePassword(b"bob", b"pw-123"))
    assert not d.called and len(reactor.jobs) == 1
    reactor.run()
    assert d.result == OperatorIdentity("bob", "admin")
    bad = checker.requestAvatarId(UsernamePassword(b"bob", b"nope"))
    assert not bad.called
    reactor.run()
    assert bad.result.check(UnauthorizedLogin)
    bad.addErrback(lambda f: None)
    factory = make_factory(ShellContext(storage, clock=reactor), new_key(),
                           None)
    assert factory.portal.checkers[IUsernamePassword].reactor is reactor
