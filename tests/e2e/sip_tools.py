"""
Real SIP peers for the end-to-end tests and the bench: SIPp (Debian
C{sip-tester}), stunnel4, baresip and tshark, each run as a subprocess
with bounded time, plus a node started with SIP accounts provisioned.

Nothing here sleeps for a fixed time: waits poll a condition against a
deadline (L{tests.e2e.harness.wait_for}).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tests.e2e.harness import ROOT, Node, start_node, wait_for

#: The committed SIPp scenarios.
SCENARIOS = ROOT / "tests" / "sipp"
#: The SIP domain the e2e nodes serve.
DOMAIN = "e2e.test"
#: The product every provisioned account gets (messaging enabled).
PRODUCT = "SMS"

SIPP = shutil.which("sipp")
STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
BARESIP = shutil.which("baresip")
TSHARK = shutil.which("tshark")
OPENSSL = shutil.which("openssl")

#: SIPp transport flags: one socket over UDP or TCP.
TRANSPORTS = {"udp": "u1", "tcp": "t1"}


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """
    A port free on 127.0.0.1 for both UDP and TCP right now.

    @param kind: the socket type tried first.
    @return: the port number.
    """
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM \
            else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


# -- the node -----------------------------------------------------------------

def provision_script(accounts: dict[str, str]) -> str:
    """
    A shell script creating one customer with the given SIP accounts.

    @param accounts: username (also its DID) to password.
    @return: the script text, for C{[node] provision}.
    """
    lines = ["configure terminal", f' product "{PRODUCT}"',
             "  messaging enable", " exit", ' customer "E2E"']
    for user, password in accounts.items():
        lines += [f"  account {user}", f"   password {password}",
                  f'   product "{PRODUCT}"', f"   did {user}", "  exit"]
    lines += [" exit", "end", ""]
    return "\n".join(lines)


def start_sip_node(tmp_path: Path, accounts: dict[str, str],
                   name: str = "node", tls: tuple[Path, Path] | None = None,
                   log_level: str = "debug", **sip: object) -> Node:
    """
    Start a node with SIP on UDP and TCP (and TLS when C{tls} is given)
    on loopback, domain and realm L{DOMAIN}, accounts provisioned.

    @param accounts: username to password.
    @param tls: (key, certificate) paths for an C{ssl:} listener.
    @param log_level: the node's log level.
    @param sip: more C{[sip]} settings (they override the defaults here).
    @return: the ready node.
    """
    base = tmp_path / name
    base.mkdir(parents=True, exist_ok=True)
    script = base / "provision.cli"
    script.write_text(provision_script(accounts))
    listen = ["udp:port=0:interface=127.0.0.1",
              "tcp:port=0:interface=127.0.0.1"]
    if tls is not None:
        key, cert = tls
        listen.append(f"ssl:port=0:interface=127.0.0.1:privateKey={key}"
                      f":certKey={cert}")
    section: dict[str, object] = {
        "enabled": True, "listen": listen, "domain": DOMAIN,
        "realm": DOMAIN, "min_expires": 60, "max_expires": 3600,
        "retry_schedule": [1, 2], "validity": 120,
        "auth_failures": 100000}
    section.update(sip)
    return start_node(tmp_path, name=name, sip=section,
                      node={"provision": str(script),
                            "log_level": log_level})


# -- SIPp ---------------------------------------------------------------------

def write_users(path: Path, rows: Iterable[Sequence[str]]) -> Path:
    """
    Write a SIPp injection file for the scenarios in L{SCENARIOS}.

    Each row is C{(user, password, *more)}: field0 is the user, field1
    the whole C{[authentication ...]} keyword (SIPp 3.6.1 expands it from
    a field, but garbles it written nested in the scenario), then C{more}.

    @return: C{path}.
    """
    out = ["SEQUENTIAL"]
    for user, password, *more in rows:
        cred = f"[authentication username={user} password={password}]"
        out.append(";".join([user, cred, *more]))
    path.write_text("\n".join(out) + "\n")
    return path


@dataclass
class SIPpResult:
    """
    What a SIPp run did.

    @ivar returncode: SIPp's exit status (0: every call succeeded).
    @ivar output: its final statistics screen.
    @ivar successful: cumulative successful calls.
    @ivar failed: cumulative failed calls.
    @ivar messages: the C{-message_file} path.
    @ivar errors: the C{-error_file} path.
    """
    returncode: int
    output: str
    successful: int
    failed: int
    messages: Path
    errors: Path

    def explain(self) -> str:
        """The output and errors, for an assertion message."""
        errors = self.errors.read_text(errors="replace") \
            if self.errors.exists() else ""
        return f"rc={self.returncode}\n{self.output[-3000:]}\n{errors[-3000:]}"


def _count(output: str, label: str) -> int:
    found = re.findall(rf"{label}\s*\|\s*\d+\s*\|\s*(\d+)", output)
    return int(found[-1]) if found else 0


class SIPp:
    """
    One SIPp process running a scenario from L{SCENARIOS}.

    @ivar process: the C{subprocess.Popen}.
    @ivar local_port: SIPp's local port (its contact).
    """

    def __init__(self, workdir: Path, scenario: str, port: int,
                 transport: str = "udp", users: Path | None = None,
                 calls: int = 1, rate: float | None = None,
                 limit: int | None = None, ooc: str | None = None,
                 expected: int | None = None, expires: int = 300,
                 timeout: float = 30.0, trace: bool = True,
                 remote: str = "127.0.0.1", extra: Sequence[str] = (),
                 local_port: int | None = None):
        """
        Start SIPp (C{-nostdin}, bounded by C{-timeout}).

        @param workdir: where its logs go (a new directory per run).
        @param scenario: file name in L{SCENARIOS}.
        @param port: the node's port.
        @param transport: C{udp} or C{tcp}.
        @param users: the injection file (L{write_users}).
        @param calls: C{-m}: stop after this many calls.
        @param rate: C{-r} calls per second (SIPp's default is 10).
        @param limit: C{-l}: at most this many calls at once.
        @param ooc: out-of-call scenario file name (C{-oocsf}).
        @param expected: C{-set expected N} (L{SCENARIOS}/register_receive.xml).
        @param expires: the Expires of REGISTER scenarios.
        @param timeout: global SIPp timeout in seconds.
        @param trace: log every message (C{-trace_msg}).
        @param remote: the node's address.
        @param extra: more SIPp arguments.
        @param local_port: SIPp's port (default: a free one).
        """
        if SIPP is None:
            raise RuntimeError("sipp (Debian sip-tester) is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.scenario = scenario
        self.messages = workdir / "messages.log"
        self.errors = workdir / "errors.log"
        self.screen = workdir / "screen.log"
        self.local_port = local_port or free_port(
            socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
        args = [SIPP, "-sf", str(SCENARIOS / scenario), f"{remote}:{port}",
                "-i", "127.0.0.1", "-p", str(self.local_port),
                "-t", TRANSPORTS[transport], "-m", str(calls),
                "-key", "domain", DOMAIN, "-key", "expires", str(expires),
                "-nostdin", "-timeout", f"{int(timeout)}s", "-timeout_error",
                "-trace_err", "-error_file", str(self.errors),
                "-max_recv_loops", "10000", "-max_sched_loops", "10000"]
        if trace:
            args += ["-trace_msg", "-message_file", str(self.messages)]
        if users is not None:
            args += ["-inf", str(users)]
        if rate is not None:
            args += ["-r", str(rate), "-rp", "1000"]
        if limit is not None:
            args += ["-l", str(limit)]
        if ooc is not None:
            args += ["-oocsf", str(SCENARIOS / ooc)]
        if expected is not None:
            args += ["-set", "expected", str(expected)]
        args += list(extra)
        self.args = args
        self._out = open(self.screen, "wb")
        self.process = subprocess.Popen(
            args, cwd=str(workdir), stdin=subprocess.DEVNULL,
            stdout=self._out, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.timeout = timeout

    def wait(self, timeout: float | None = None) -> SIPpResult:
        """
        Wait for SIPp to exit (killing it after C{timeout}).

        @return: the result.
        """
        try:
            rc = self.process.wait(timeout or self.timeout + 15)
        except subprocess.TimeoutExpired:
            self.stop()
            rc = self.process.wait(10)
        self._out.close()
        output = self.screen.read_text(errors="replace")
        return SIPpResult(rc, output, _count(output, "Successful call"),
                          _count(output, "Failed call"), self.messages,
                          self.errors)

    def stop(self) -> None:
        """Kill SIPp if it still runs."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)

    def sent_and_received(self) -> list["LoggedMessage"]:
        """What SIPp logged so far (needs C{trace})."""
        return parse_message_log(self.messages)


def run_sipp(workdir: Path, scenario: str, port: int, **kw) -> SIPpResult:
    """Run SIPp to the end; see L{SIPp} for the arguments."""
    return SIPp(workdir, scenario, port, **kw).wait()


@dataclass(frozen=True)
class LoggedMessage:
    """
    One message from a SIPp C{-message_file}.

    @ivar direction: C{sent} or C{received}.
    @ivar data: the message bytes, exactly as on the wire.
    """
    direction: str
    data: bytes

    @property
    def first_line(self) -> str:
        """The request or status line."""
        return self.data.split(b"\r\n", 1)[0].decode("utf-8", "replace")

    @property
    def body(self) -> bytes:
        """The body bytes (after the blank line)."""
        return self.data.partition(b"\r\n\r\n")[2]

    def header(self, name: str) -> str | None:
        """The first header C{name} (case-insensitive), or C{None}."""
        head = self.data.partition(b"\r\n\r\n")[0].decode("utf-8", "replace")
        for line in head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


_LOG_ENTRY = re.compile(
    rb"^-{40,} [^\n]*\n(?:UDP|TCP|TLS|SCTP) message (sent|received) "
    rb"(?:\((\d+) bytes\)|\[(\d+)\] bytes) ?:\n\n", re.M)


def split_stream(data: bytes) -> list[bytes]:
    """
    Split bytes holding one or more SIP messages by Content-Length
    (in bytes; compact form C{l} too).

    @return: the messages; a truncated tail is returned as it is.
    """
    out = []
    while data.strip(b"\r\n"):
        data = data.lstrip(b"\r\n")
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            out.append(data)
            break
        m = re.search(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head,
                      re.I | re.M)
        length = int(m.group(1)) if m else 0
        out.append(head + sep + rest[:length])
        data = rest[length:]
    return out


def parse_message_log(path: Path) -> list[LoggedMessage]:
    """
    Parse SIPp's C{-trace_msg} file: each entry gives its exact byte
    count, so the bodies come out byte-exact.

    @return: the messages in log order (a TCP read holding several
        messages is split).
    """
    if not path.exists():
        return []
    raw = path.read_bytes()
    out = []
    for m in _LOG_ENTRY.finditer(raw):
        size = int(m.group(2) or m.group(3))
        chunk = raw[m.end():m.end() + size]
        out.extend(LoggedMessage(m.group(1).decode(), part)
                   for part in split_stream(chunk))
    return out


def received_requests(messages: Iterable[LoggedMessage],
                      method: str) -> list[LoggedMessage]:
    """The requests of C{method} that SIPp received."""
    return [m for m in messages if m.direction == "received"
            and m.first_line.startswith(method + " ")]


# -- certificates, stunnel ----------------------------------------------------

def make_certificate(directory: Path, name: str = "node") -> tuple[Path, Path]:
    """
    A self-signed certificate for 127.0.0.1 (openssl, EC P-256, one day).

    @return: (key path, certificate path).
    """
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        [OPENSSL or "openssl", "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30)
    return key, cert


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Stunnel:
    """
    stunnel4 in client mode: plain TCP in on C{port}, TLS out to the node.

    @ivar port: where SIPp connects (plain TCP).
    """

    def __init__(self, workdir: Path, tls_port: int, ca: Path):
        """
        Start it and wait until it accepts connections.

        @param tls_port: the node's C{sip_tls} port.
        @param ca: the node's certificate (verified, with its IP).
        """
        if STUNNEL is None:
            raise RuntimeError("stunnel4 is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(socket.SOCK_STREAM)
        conf = workdir / "stunnel.conf"
        conf.write_text(
            "foreground = yes\npid =\ndebug = 5\n"
            f"output = {workdir / 'stunnel.log'}\n"
            "[sip]\nclient = yes\n"
            f"accept = 127.0.0.1:{self.port}\n"
            f"connect = 127.0.0.1:{tls_port}\n"
            f"CAfile = {ca}\nverifyPeer = yes\n"
            "checkIP = 127.0.0.1\n")
        self.log = workdir / "stunnel.log"
        self.process = subprocess.Popen(
            [STUNNEL, str(conf)], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        wait_for(lambda: self.process.poll() is not None
                 or _listening(self.port), what="stunnel listening")
        if self.process.poll() is not None:
            raise RuntimeError("stunnel exited:\n" + self.log_text())

    def log_text(self) -> str:
        """What stunnel logged."""
        return self.log.read_text(errors="replace") if self.log.exists() \
            else ""

    def stop(self) -> None:
        """Stop it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# -- tshark -------------------------------------------------------------------

class Capture:
    """
    tshark capturing loopback traffic to and from some ports into a pcap.

    @ivar path: the pcap file.
    """

    def __init__(self, path: Path, udp: Sequence[int] = (),
                 tcp: Sequence[int] = ()):
        """Start capturing and wait until tshark says it is capturing."""
        if TSHARK is None:
            raise RuntimeError("tshark is not installed")
        self.path, self.udp, self.tcp = path, list(udp), list(tcp)
        ports = " or ".join(f"port {p}" for p in [*udp, *tcp])
        self.stderr = path.with_suffix(".stderr")
        self._err = open(self.stderr, "wb")
        self.process = subprocess.Popen(
            [TSHARK, "-i", "lo", "-f", ports, "-w", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self._err, start_new_session=True)
        wait_for(lambda: self.process.poll() is not None
                 or b"Capturing on" in self.stderr.read_bytes(),
                 timeout=30, what="tshark capturing")
        if self.process.poll() is not None:
            raise RuntimeError("tshark exited: "
                               + self.stderr.read_text(errors="replace"))

    def stop(self) -> None:
        """Stop (SIGINT lets dumpcap flush what it has) and wait."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._err.close()

    def _decode_args(self) -> list[str]:
        args = []
        for p in self.udp:
            args += ["-d", f"udp.port=={p},sip"]
        for p in self.tcp:
            args += ["-d", f"tcp.port=={p},sip"]
        return args

    def verbose(self) -> str:
        """C{tshark -r -V} of the capture, the ports decoded as SIP."""
        return subprocess.run(
            [TSHARK, "-r", str(self.path), "-V", *self._decode_args()],
            capture_output=True, text=True, errors="replace",
            timeout=120).stdout

    def sip_methods(self) -> dict[str, int]:
        """SIP request methods and status codes seen, with counts."""
        out = subprocess.run(
            [TSHARK, "-r", str(self.path), *self._decode_args(), "-Y", "sip",
             "-T", "fields", "-e", "sip.Method", "-e", "sip.Status-Code"],
            capture_output=True, text=True, errors="replace",
            timeout=120).stdout
        counts: dict[str, int] = {}
        for line in out.splitlines():
            for value in line.split("\t"):
                for v in value.split(","):
                    if v:
                        counts[v] = counts.get(v, 0) + 1
        return counts


# -- baresip ------------------------------------------------------------------

def netstring(payload: bytes) -> bytes:
    """Frame bytes as a netstring (baresip's ctrl_tcp)."""
    return str(len(payload)).encode() + b":" + payload + b","


class Baresip:
    """
    Debian's baresip as a real softphone with one account over TLS,
    driven through its C{ctrl_tcp} module (JSON in netstrings).

    @ivar events: events and responses received so far (dicts).
    """

    def __init__(self, workdir: Path, user: str, password: str,
                 tls_port: int, ca: Path, contact: str | None = None,
                 run_for: int = 60):
        """
        Write a configuration and start baresip (quits after C{run_for}).

        @param contact: the SIP URI made the current contact (C{message}
            sends to it).
        """
        if BARESIP is None:
            raise RuntimeError("baresip is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        # baresip listens for TLS on sip_listen's port + 1.  It needs a
        # wildcard sip_listen here: with 127.0.0.1 it finds no transport
        # ("Register: Function not implemented").
        sip_port = free_port(socket.SOCK_STREAM)
        while True:
            self.ctrl_port = free_port(socket.SOCK_STREAM)
            if self.ctrl_port not in (sip_port, sip_port + 1):
                break
        (workdir / "config").write_text(
            "module_path /usr/lib/baresip/modules\n"
            f"sip_listen 0.0.0.0:{sip_port}\n"
            f"sip_cafile {ca}\n"
            "audio_player aubridge,nil\naudio_source aubridge,nil\n"
            "audio_alert aubridge,nil\n"
            "module g711.so\nmodule aubridge.so\n"
            "module_app account.so\nmodule_app contact.so\n"
            "module_app menu.so\nmodule_app ctrl_tcp.so\n"
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}\n")
        (workdir / "accounts").write_text(
            f"<sip:{user}@{DOMAIN};transport=tls>;auth_pass={password};"
            f"outbound=\"sip:127.0.0.1:{tls_port};transport=tls\";"
            "regint=600;answermode=manual;mwi=no;pubint=0\n")
        (workdir / "contacts").write_text(
            f"\"Peer\" <{contact}>\n" if contact else "")
        if contact:
            (workdir / "current_contact").write_text(contact)
        self.log = workdir / "baresip.log"
        self._out = open(self.log, "wb")
        self.process = subprocess.Popen(
            [BARESIP, "-f", str(workdir), "-t", str(run_for)],
            stdin=subprocess.DEVNULL, stdout=self._out,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.events: list[dict] = []
        self._buffer = b""
        self._sock: socket.socket | None = None
        wait_for(self._connect, timeout=20, what="baresip ctrl_tcp")

    def _connect(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("baresip exited:\n" + self.output())
        try:
            self._sock = socket.create_connection(
                ("127.0.0.1", self.ctrl_port), timeout=1)
        except OSError:
            return False
        self._sock.setblocking(False)
        return True

    def output(self) -> str:
        """Everything baresip printed."""
        self._out.flush()
        return self.log.read_text(errors="replace")

    def poll(self) -> list[dict]:
        """Read whatever ctrl_tcp sent; return all events so far."""
        assert self._sock is not None
        try:
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                self._buffer += chunk
        except BlockingIOError:
            pass
        while b":" in self._buffer:
            size, _, rest = self._buffer.partition(b":")
            if not size.isdigit() or len(rest) < int(size) + 1:
                break
            n = int(size)
            self.events.append(json.loads(rest[:n].decode("utf-8",
                                                          "replace")))
            self._buffer = rest[n + 1:]
        return self.events

    def command(self, command: str, params: str = "",
                token: str = "t") -> None:
        """Send one command (C{message}, C{reginfo}...)."""
        assert self._sock is not None
        body = json.dumps({"command": command, "params": params,
                           "token": token}).encode("utf-8")
        self._sock.setblocking(True)
        self._sock.sendall(netstring(body))
        self._sock.setblocking(False)

    def wait_event(self, predicate, timeout: float = 20.0,
                   what: str = "baresip event") -> dict:
        """Wait for an event or response matching C{predicate}."""
        def found():
            if self.process.poll() is not None:
                raise RuntimeError("baresip exited:\n" + self.output())
            for event in self.poll():
                if predicate(event):
                    return (event,)
            return None
        try:
            return wait_for(found, timeout=timeout, what=what)[0]
        except TimeoutError:
            raise TimeoutError(f"{what}; events {self.events}\n"
                               + self.output()) from None

    def wait_output(self, pattern: str, timeout: float = 20.0) -> str:
        """
        Wait until baresip prints a line matching the regular expression
        C{pattern}; return that line.
        """
        def found():
            if self.process.poll() is not None:
                raise RuntimeError("baresip exited:\n" + self.output())
            m = re.search(pattern, self.output())
            return (m.group(0),) if m else None
        try:
            return wait_for(found, timeout=timeout, what=pattern)[0]
        except TimeoutError:
            raise TimeoutError(f"baresip never printed {pattern!r}:\n"
                               + self.output()) from None

    def stop(self) -> None:
        """Quit baresip."""
        if self._sock is not None:
            self._sock.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._out.close()


def rss_kib(pid: int) -> int:
    """The resident set size of a process, from C{/proc/PID/status}."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
