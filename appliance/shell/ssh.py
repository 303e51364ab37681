"""
The SSH server of the configuration shell, on Twisted Conch.

  - L{load_host_key}: the Ed25519 host key, generated on first start (0600);
  - L{OperatorKeyChecker} and L{OperatorPasswordChecker}: public keys and
    passwords of L{Operator} objects in the database, plus the bootstrap
    C{admin_keys} file whose keys log in as operator C{admin}, role admin;
  - L{ShellRealm} gives an L{OperatorAvatar} (a C{ConchUser});
  - L{ShellSession} is our C{ISession} adapter: exec (exit 0 or 1), a shell
    with a pty (L{CLITerminal}) and a shell without one (L{ScriptReader});
  - L{ShellSSHFactory} ties them together and logs failed logins with the
    source address.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.avatar import ConchUser
from twisted.conch.error import IgnoreAuthentication, ValidPublicKey
from twisted.conch.insults import insults
from twisted.conch.interfaces import IConchUser, ISession
from twisted.conch.ssh import keys, session as sshsession
from twisted.conch.ssh.connection import SSHConnection
from twisted.conch.ssh._kex import getDHGeneratorAndPrime
from twisted.conch.ssh.factory import SSHFactory
from twisted.conch.ssh.transport import DISCONNECT_BY_APPLICATION, SSHServerTransport
from twisted.conch.ssh.userauth import SSHUserAuthServer
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import ISSHPrivateKey, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, threads
from twisted.logger import Logger, LogLevel
from twisted.python import components
from zope.interface import implementer

from appliance.model.passwords import verify_secret
from appliance.shell.output import Stream, StreamWriter
from appliance.shell.script import open_session
from appliance.shell.session import AuditLog, Session, execute
from appliance.shell.terminal import CLITerminal, ScriptReader, exit_failure


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")

log = Logger()

#: The operator bootstrap keys log in as.
BOOTSTRAP_OPERATOR = "admin"


def load_host_key(path: Path) -> keys.Key:
    """
    Read the Ed25519 host key, or generate and save it (mode 0600) if the
    file does not exist yet.

    @param path: the private key file (OpenSSH format).
    @return: the private key.
    @raise keys.BadKeyError: if the file exists but is not a key.
    """
    path = Path(path)
    if path.exists():
        return keys.Key.fromFile(str(path))
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.toString("openssh"))
    log.info("generated SSH host key {path}", path=str(path))
    return key


def read_authorized_keys(path: Path | None) -> list[keys.Key]:
    """
    Parse an OpenSSH authorized_keys file, skipping blank lines, comments
    and lines that are not public keys (logged).

    @param path: the file, or C{None}.
    @return: the keys; none if the file is absent.
    """
    if path is None:
        return []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(keys.Key.fromString(line.encode("utf-8")))
        except Exception:
            # Broad: on a malformed line conch raises BadKeyError,
            # ValueError, struct.error, IndexError, cryptography's
            # UnsupportedAlgorithm and even AssertionError; one bad line
            # must not lose the others' keys.
            log.failure("{path}:{n}: not a public key, ignored",
                        path=str(path), n=number, level=LogLevel.warn)
    return found


@dataclass(frozen=True)
class OperatorIdentity:
    """
    Who logged in: the avatar id the checkers give the realm.

    @ivar name: the operator name.
    @ivar role: C{admin} or C{view}.
    """
    name: str
    role: str


def _operator(storage: Any, name: str) -> Any:
    sync = getattr(storage, "sync", None)
    if sync is not None:
        sync()
    return storage.root().operators.get(name)


@implementer(ICredentialsChecker)
class OperatorKeyChecker:
    """
    Public key login: the key must be one of the operator's C{ssh_keys},
    or, for the user C{admin}, a key of the bootstrap file (role admin).
    """

    credentialInterfaces = (ISSHPrivateKey,)

    def __init__(self, storage: Any, admin_keys: Path | None) -> None:
        """
        @param storage: the storage holding the operators.
        @param admin_keys: the bootstrap authorized_keys file, or C{None}.
        """
        self.storage = storage
        self.admin_keys = admin_keys

    def _identity(self, name: str, blob: bytes) -> OperatorIdentity | None:
        if name == BOOTSTRAP_OPERATOR and any(
                k.blob() == blob for k in read_authorized_keys(self.admin_keys)):
            return OperatorIdentity(name, "admin")
        operator = _operator(self.storage, name)
        if operator is None:
            return None
        if any(k.blob() == blob for k in operator.public_keys()):
            return OperatorIdentity(name, operator.role)
        return None

    def requestAvatarId(self, credentials) -> defer.Deferred:
        """
        @param credentials: an C{ISSHPrivateKey}.
        @return: a Deferred firing with an L{OperatorIdentity}; failing with
            C{ValidPublicKey} for a good key without signature (the client
            then signs), or C{UnauthorizedLogin}.
        """
        name = credentials.username.decode("utf-8", "replace")
        identity = self._identity(name, credentials.blob)
        if identity is None:
            return defer.fail(UnauthorizedLogin("key not authorized"))
        if not credentials.signature:
            return defer.fail(ValidPublicKey())
        try:
            key = keys.Key.fromString(credentials.blob)
            good = key.verify(credentials.signature, credentials.sigData)
        except (keys.BadKeyError, ValueError, TypeError):
            good = False
        if not good:
            return defer.fail(UnauthorizedLogin("bad signature"))
        return defer.succeed(identity)


@implementer(ICredentialsChecker)
class OperatorPasswordChecker:
    """
    Password login against L{Operator.check_password}. There is no default
    password: an operator without one cannot log in this way.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, storage: Any, reactor: Any = None) -> None:
        """
        @param storage: the storage holding the operators.
        @param reactor: whose thread pool checks the password (scrypt,
            some 40 ms: never on the reactor thread in the node); C{None}
            checks it on the calling thread (unit tests).
        """
        self.storage = storage
        self.reactor = reactor

    def requestAvatarId(self, credentials) -> defer.Deferred:
        """
        @param credentials: an C{IUsernamePassword}.
        @return: a Deferred firing with an L{OperatorIdentity} or failing
            with C{UnauthorizedLogin}.
        """
        name = credentials.username.decode("utf-8", "replace")
        operator = _operator(self.storage, name)
        password = credentials.password.decode("utf-8", "replace")
        if operator is None or operator.password_hash is None:
            return defer.fail(UnauthorizedLogin("bad password"))
        role, stored = operator.role, operator.password_hash
        if self.reactor is None:
            d = defer.maybeDeferred(verify_secret, stored, password)
        else:
            d = threads.deferToThreadPool(self.reactor,
                                          self.reactor.getThreadPool(),
                                          verify_secret, stored, password)

        def checked(ok: bool) -> OperatorIdentity:
            if not ok:
                raise UnauthorizedLogin("bad password")
            return OperatorIdentity(name, role)
        return d.addCallback(checked)


class ShellChannel(sshsession.SSHSession):
    """
    The session channel, telling the output being streamed (if any) when
    the client's window is spent and when it opens again.

    @ivar producer: the L{StreamWriter} writing now, or C{None}.
    """

    producer: StreamWriter | None = None

    def stopWriting(self) -> None:
        """The remote window is spent: pause the output."""
        if self.producer is not None:
            self.producer.pause_for("window")

    def startWriting(self) -> None:
        """The client made room: resume the output."""
        if self.producer is not None:
            self.producer.resume_for("window")


def stream_to(proto: Any, stream: Stream, done: Callable[[str], None], clock: Any,
              encode: Callable[[str], bytes] = lambda s: s.encode("utf-8"),
              write: Callable[[bytes], None] | None = None) -> StreamWriter:
    """
    Start writing a streamed output to the SSH channel behind C{proto},
    with flow control: the writer pauses while the channel's remote window
    is spent (L{ShellChannel}) and while the TCP transport's buffer is full
    (registered there as a streaming producer, unless another channel's
    output already is).

    @param proto: the channel's process protocol (C{proto.session} is the
        channel).
    @param stream: the output.
    @param done: called once with the writer's final status.
    @param clock: the reactor (C{None}: write synchronously; tests).
    @param encode: text to bytes.
    @param write: where bytes go (default C{proto.write}).
    @return: the started writer.
    """
    channel = getattr(proto, "session", None)
    tcp = None
    try:
        tcp = channel.conn.transport.transport  # type: ignore[union-attr]
    except AttributeError:      # not on a real connection (tests)
        tcp = None
    if tcp is not None and getattr(tcp, "producer", None) is not None:
        tcp = None

    def finished(status: str) -> None:
        if isinstance(channel, ShellChannel) and channel.producer is writer:
            channel.producer = None
        if tcp is not None and getattr(tcp, "producer", None) is writer:
            tcp.unregisterProducer()
        done(status)

    writer = StreamWriter(stream, write or proto.write, finished, clock, encode)
    if isinstance(channel, ShellChannel):
        channel.producer = writer
        if not channel.areWriting:
            writer.pause_for("window")
    if tcp is not None:
        tcp.registerProducer(writer, True)
    writer.start()
    return writer


class OperatorAvatar(ConchUser):
    """
    A logged-in operator.

    @ivar identity: who, with which role.
    @ivar shell: what sessions need (storage, live state, audit, names).
    """

    def __init__(self, identity: OperatorIdentity, shell: "ShellContext"):
        """
        @param identity: the checked identity.
        @param shell: the shell's shared context.
        """
        super().__init__()
        self.identity = identity
        self.shell = shell
        self.channelLookup[b"session"] = ShellChannel

    def logout(self) -> None:
        """Called by the portal when the connection ends."""
        log.info("operator {name} logged out", name=self.identity.name)


@dataclass
class ShellContext:
    """
    What every session of the SSH server shares.

    @ivar storage: the storage.
    @ivar live: the L{appliance.shell.live.LiveState} (or C{None}).
    @ivar audit: the audit log.
    @ivar hostname: the prompt's node name.
    @ivar realm: the SIP digest realm for account passwords.
    @ivar clock: schedules streamed output (the shell service gives the
        node's reactor; C{None} writes it synchronously).
    """
    storage: Any
    live: Any = None
    audit: AuditLog | None = None
    hostname: str = "appliance"
    realm: str = "appliance"
    clock: Any = None

    def session(self, identity: OperatorIdentity, source: str) -> Session:
        """
        @param identity: the operator.
        @param source: the client address.
        @return: a new session at the top mode.
        """
        return open_session(self.storage, identity.name, identity.role,
                            source=source, live=self.live, audit=self.audit,
                            hostname=self.hostname, realm=self.realm)


@implementer(IRealm)
class ShellRealm:
    """Gives an L{OperatorAvatar} for a checked L{OperatorIdentity}."""

    def __init__(self, shell: ShellContext) -> None:
        """
        @param shell: the shared context handed to avatars.
        """
        self.shell = shell

    def requestAvatar(self, avatarId, mind, *interfaces):
        """
        @return: C{(IConchUser, avatar, logout)}.
        @raise NotImplementedError: if C{IConchUser} is not asked for.
        """
        if IConchUser not in interfaces:
            raise NotImplementedError("only IConchUser")
        avatar = OperatorAvatar(avatarId, self.shell)
        log.info("operator {name} logged in (role {role})",
                 name=avatarId.name, role=avatarId.role)
        return IConchUser, avatar, avatar.logout


def _peer(proto: Any) -> str:
    try:
        peer = proto.getPeer()
        # SSHSessionProcessProtocol.getPeer gives the SSH transport's peer.
        address = getattr(peer, "address", peer)
        return str(getattr(address, "host", address))
    except AttributeError:      # a transport that cannot name its peer
        return ""


@implementer(ISession)
class ShellSession:
    """
    Our C{ISession} adapter for L{OperatorAvatar}: exec, shell with a pty,
    shell without one (a script on standard input).
    """

    def __init__(self, avatar: OperatorAvatar) -> None:
        """
        @param avatar: the logged-in operator.
        """
        self.avatar = avatar
        self.pty = False
        self.window: Any = None
        self.script: ScriptReader | None = None
        self.terminal: insults.ServerProtocol | None = None
        self.writer: StreamWriter | None = None
        self._closed = False

    def _session(self, proto: Any) -> Session:
        return self.avatar.shell.session(self.avatar.identity, _peer(proto))

    def getPty(self, term, windowSize, modes) -> None:
        """Remember that the client has a terminal."""
        self.pty = True
        self.window = windowSize

    def windowChanged(self, newWindowSize) -> None:
        """Follow the client's terminal size."""
        self.window = newWindowSize
        if self.terminal is not None and newWindowSize:
            rows, cols = newWindowSize[0], newWindowSize[1]
            self.terminal.terminalProtocol.width = cols
            self.terminal.terminalProtocol.height = rows

    def execCommand(self, proto, command: bytes) -> None:
        """
        Run one command: its output, then exit status 0, or the C{% }
        error and exit status 1.
        """
        session = self._session(proto)
        result = execute(session, command.decode("utf-8", "replace"))
        encode = _crlf if self.pty else _utf8
        if result.stream is not None:
            def done(status: str) -> None:
                self.writer = None
                if status != "stopped":
                    proto.processEnded(exit_failure(0 if status == "ok" else 1))
            self.writer = stream_to(proto, result.stream, done,
                                    self.avatar.shell.clock, encode)
            return
        text = result.text + "\n" if result.text else ""
        proto.write(encode(text))
        proto.processEnded(exit_failure(0 if result.ok else 1))

    def openShell(self, proto) -> None:
        """
        With a pty: the interactive line editor. Without: run standard
        input as a script.
        """
        session = self._session(proto)

        def end(code: int) -> None:
            proto.processEnded(exit_failure(code))

        def stream(output: Stream, done: Callable[[str], None],
                   encode: Callable[[str], bytes], write: Any = None) -> StreamWriter:
            def finished(status: str) -> None:
                self.writer = None
                if not self._closed:
                    done(status)
            self.writer = stream_to(proto, output, finished, self.avatar.shell.clock,
                                    encode, write)
            return self.writer

        if self.pty:
            self.terminal = insults.ServerProtocol(CLITerminal, session, end, stream)
            self.terminal.makeConnection(proto)
            proto.makeConnection(sshsession.wrapProtocol(self.terminal))
        else:
            self.script = ScriptReader(session, end, stream)
            self.script.makeConnection(proto)
            proto.makeConnection(sshsession.wrapProtocol(self.script))

    def eofReceived(self) -> None:
        """End of the client's input: a script ends here."""
        if self.script is not None:
            self.script.eof()

    def closed(self) -> None:
        """The channel closed: stop any output being streamed."""
        self._closed = True
        if self.writer is not None:
            self.writer.stopProducing()


components.registerAdapter(ShellSession, OperatorAvatar, ISession)


class LoggingUserAuthServer(SSHUserAuthServer):
    """C{ssh-userauth} that logs every failed login with its source."""

    def _ebBadAuth(self, reason):
        if self.method != b"none" and not reason.check(IgnoreAuthentication):
            try:
                peer = self.transport.transport.getPeer()
                source = f"{peer.host}:{peer.port}"
            except AttributeError:      # no transport, or not an IP peer
                source = "?"
            log.warn("failed login for {user} from {source} ({method})",
                     user=self.user.decode("utf-8", "replace"), source=source,
                     method=self.method.decode("ascii", "replace"))
        return super()._ebBadAuth(reason)


class ShellServerTransport(SSHServerTransport):
    """
    The SSH transport, logging a client's disconnect by its kind: a normal
    one (C{exit}, the end of C{ssh node cmd}) at info, others as warnings
    (Conch logs every disconnect message as an error).
    """

    def receiveError(self, reasonCode: int, description: bytes) -> None:
        """
        @param reasonCode: the C{DISCONNECT_*} code.
        @param description: the client's text.
        """
        text = description.decode("utf-8", "replace") \
            if isinstance(description, bytes) else str(description)
        if reasonCode == DISCONNECT_BY_APPLICATION:
            log.info("SSH client disconnected: {reason}", reason=text)
        else:
            log.warn("SSH client disconnected with code {code}: {reason}",
                     code=reasonCode, reason=text)


class ShellSSHFactory(SSHFactory):
    """
    The SSH server factory: host key, portal with operator checkers.

    The Diffie-Hellman group exchange offers the RFC 3526 2048-bit group
    (there is no moduli file to read).
    """

    protocol = ShellServerTransport
    services = {b"ssh-userauth": LoggingUserAuthServer,
                b"ssh-connection": SSHConnection}
    primes = {2048: [getDHGeneratorAndPrime(b"diffie-hellman-group14-sha1")]}

    def __init__(self, host_key: keys.Key, portal: Portal) -> None:
        """
        @param host_key: the private host key.
        @param portal: the portal with the realm and checkers.
        """
        self.portal = portal
        self.privateKeys = {b"ssh-ed25519": host_key}
        self.publicKeys = {b"ssh-ed25519": host_key.public()}


def make_factory(shell: ShellContext, host_key: keys.Key,
                 admin_keys: Path | None) -> ShellSSHFactory:
    """
    @param shell: the sessions' shared context.
    @param host_key: the private host key.
    @param admin_keys: the bootstrap authorized_keys file, or C{None}.
    @return: the SSH factory.
    """
    portal = Portal(ShellRealm(shell), [
        OperatorKeyChecker(shell.storage, admin_keys),
        OperatorPasswordChecker(
            shell.storage, shell.clock if hasattr(shell.clock, "getThreadPool")
            else None)])
    return ShellSSHFactory(host_key, portal)
