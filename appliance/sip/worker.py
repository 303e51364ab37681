# -*- test-case-name: tests.sip.test_worker -*-
"""
A SIP UDP worker process (C{[sip] workers = N}): it reads the node's SIP
UDP sockets, answers the first request of every digest exchange (a
REGISTER without Authorization gets C{401}, a MESSAGE without
Proxy-Authorization C{407}) itself, statelessly, and forwards every
other datagram as it came to the node, which handles it as if it had
read it (L{appliance.sip.service}).  Credentials of an account the node
told it the HA1s of are verified here (the response, the nonce's
signature and age); the node is left the nonce-count and the request.

The challenge is the one the node would send: the same realm,
algorithms and nonce secret (the nonces verify in the node), the same
checks before it (the request parses, its transaction key reads, its
Request-URI is ours, its source is not blocked for failed
authentications), and a To tag computed from the request (RFC 3261
8.2.7: a stateless UAS gives a retransmission the same tag).  Whatever
the worker is unsure of goes to the node: a request with any
credentials, another method, a domain it was not told of, a datagram
that does not parse.

Started by the node, never by hand: C{python -m appliance.sip.worker
SPEC}, SPEC being JSON with C{fds} (the UDP sockets, fds 3, 4, ...),
C{families}, C{realm}, C{algorithms}, C{nonce_lifetime} and
C{max_packet}.

Frames from the node: C{("secret", bytes)} (the nonce secret: never on
the command line, which C{ps} shows), C{("domains", [host, ...])},
C{("block", host, until)} (a source whose requests all go to the node
until then, wall-clock seconds), C{("ha1", username, MD5 HA1, SHA-256
HA1)} (an account the node verified a request of: the worker verifies
its later requests itself) and C{("forget",)} (the configuration
changed: drop every HA1).  To the node: C{("hello", pid)} once every
socket is adopted, C{("dgram", socket index, datagram, host, port,
kernel arrival time or None)}, C{("vouched", ..., (username, algorithm,
HA1, nonce, nc, Call-ID, method))} (the same, for a datagram whose
credentials the worker found right: the node checks the nonce-count
and that the HA1 is still the account's, not the response), and once
a second, when it moved,
C{("counts", {method: challenges answered since the last report})}.  SIGTERM or standard
input closed: exit at once (a UDP worker holds no state).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import select
import socket
import sys
import time
from typing import Any, Iterable

from twisted.internet import protocol

from appliance.sip.application import DomainCheck
from appliance.sip.digest import NonceFactory, Outcome, Verifier, realm_credential
from appliance.sip.headers import HeaderError
from appliance.sip.message import Request, SIPParseError, make_response, parse
from appliance.sip.protocol import stamp_via
from appliance.sip.transaction import TransactionLayer, response_destination
from appliance.workers import FrameBuffer, FrameError, frame, log_to_stderr, run_worker

__all__ = ["Challenger", "WorkerLink", "WorkerUDP", "main"]

Address = tuple[str, int]

#: The usernames a datagram's credentials name (a look before parsing:
#: a request of an account the node has not taught goes on unparsed).
_USERNAMES = re.compile(rb'username\s*=\s*"([^"\\]*)"', re.IGNORECASE)

#: Methods a worker challenges: method to (credential header, proxy).
_CHALLENGED = {b"REGISTER ": ("REGISTER", "authorization", False),
               b"MESSAGE ": ("MESSAGE", "proxy-authorization", True)}


class _WallClock:
    """What L{NonceFactory} reads: the time, in wall-clock seconds."""

    @staticmethod
    def seconds() -> float:
        return time.time()


def to_tag(secret: bytes, request: Request) -> str:
    """
    The To tag a stateless challenge carries: the same for every copy of
    a request (RFC 3261 8.2.7), unguessable without the secret.

    @param secret: the node's nonce secret.
    @param request: the request answered.
    @return: 12 hex digits (as the node's random tags).
    """
    via = request.top_via()
    seed = "\0".join((via.branch or "", request.call_id or "",
                      request.from_address().tag or "", str(request.cseq().number)))
    return hashlib.blake2b(seed.encode("utf-8", "surrogateescape"),
                           key=hashlib.blake2b(secret, digest_size=32).digest(),
                           digest_size=6).hexdigest()


class Challenger:
    """
    Which datagrams a worker answers itself, and the answer.

    @ivar domains: the Request-URI hosts the node calls its own.
    @ivar blocked: source host to the wall-clock time until which the
        node refuses it (its requests go to the node).
    @ivar counts: challenges answered, by method.
    """

    def __init__(self, realm: str, algorithms: Iterable[str], nonce_lifetime: float,
                 secret: bytes, domains: Iterable[str] = (), clock: Any = _WallClock) -> None:
        """
        @param realm: the digest realm.
        @param algorithms: offered in this order.
        @param nonce_lifetime: seconds a nonce is valid.
        @param secret: the node's nonce secret.
        @param domains: the hosts that are ours.
        @param clock: the time (C{seconds()}).
        """
        self.verifier = Verifier(realm, NonceFactory(secret, clock, nonce_lifetime),
                                 None, tuple(algorithms))
        self._secret = secret
        self._clock = clock
        self.domains = DomainCheck("", domains)
        self.blocked: dict[str, float] = {}
        self.counts: dict[str, int] = {"REGISTER": 0, "MESSAGE": 0}
        self.ha1s: dict[str, tuple[str | None, str | None]] = {}
        self.vouched = 0

    #: Accounts whose HA1s a worker keeps; past it the oldest quarter goes.
    MAX_ACCOUNTS = 100_000

    def learn(self, username: str, ha1_md5: str | None, ha1_sha256: str | None) -> None:
        """
        Keep an account's HA1s (the node sends them once it verified a
        request of the account this worker could not): later requests
        of it are verified here.
        """
        ha1s = self.ha1s
        ha1s.pop(username, None)
        if len(ha1s) >= self.MAX_ACCOUNTS:
            for name in list(itertools.islice(ha1s, max(1, len(ha1s) // 4))):
                del ha1s[name]
        ha1s[username] = (ha1_md5, ha1_sha256)

    def forget(self) -> None:
        """Drop every HA1 (the node's configuration changed)."""
        self.ha1s = {}

    def _ha1(self, username: str, algorithm: str) -> str | None:
        entry = self.ha1s.get(username)
        if entry is None:
            return None
        return entry[0] if algorithm == "MD5" else entry[1]

    def vouch(self, data: bytes, source: Address) -> tuple | None:
        """
        Verify a request's credentials with the HA1s the node sent.

        Only a right answer is decided here; whatever else (an account
        not known here, a wrong or stale response, a malformed
        credential, a blocked source) goes to the node as it came, which
        decides, counts and logs it.  The node still checks the
        nonce-count (a replay may reach any worker) and that the HA1 is
        still its own (a change of password on its way here).

        @param data: one datagram with credentials.
        @param source: where it came from.
        @return: C{(username, algorithm, ha1, nonce, nc, Call-ID,
            method)} for a right response, else C{None}.
        """
        kind = _CHALLENGED.get(data[:9]) or _CHALLENGED.get(data[:8])
        if kind is None:
            return None
        method, header, _ = kind
        ha1s = self.ha1s
        for name in _USERNAMES.findall(data):
            if name.decode("utf-8", "replace") in ha1s:
                break
        else:
            return None         # no account taught here: the node verifies
        try:
            checked = self._request(data, source, method)
            if checked is None:
                return None
            request = checked[0]
            params = realm_credential(request.headers.get_all(header), self.verifier.realm)
            if not isinstance(params, dict):
                return None     # none for our realm, or unparsable: the node's
            username = params.get("username")
            if username not in ha1s or "nc" not in params:
                return None
            verdict = self.verifier.verify(params, method, self._ha1)
            if verdict.outcome is not Outcome.OK:
                return None
            algorithm = verdict.algorithm
            ha1 = self._ha1(username, algorithm)
            nc = int(params["nc"], 16)
            call_id = request.call_id
        except (SIPParseError, HeaderError, ValueError):
            return None
        self.vouched += 1
        return (username, algorithm, ha1, params["nonce"], nc, call_id, method)

    def block(self, host: str, until: float) -> None:
        """@param until: wall-clock seconds; the node's requests from
        C{host} all go to the node until then."""
        self.blocked[host] = max(until, self.blocked.get(host, 0.0))

    def _is_blocked(self, host: str) -> bool:
        until = self.blocked.get(host)
        if until is None:
            return False
        if until > self._clock.seconds():
            return True
        del self.blocked[host]
        return False

    def _request(self, data: bytes, source: Address,
                 method: str) -> tuple[Request, Address] | None:
        """
        The request and where its answer goes, if this worker may handle
        it: it parses as a C{method} request, passes the node's
        transaction-key check, is for one of our hosts, and its answer's
        host is not blocked; else C{None} (the node decides).

        @raise SIPParseError, HeaderError, ValueError: it does not parse.
        """
        request = parse(data)
        if not isinstance(request, Request) or request.method != method:
            return None
        stamp_via(request, source)
        TransactionLayer.server_key(request)  # the node drops what this refuses
        uri = request.uri
        if uri.scheme != "tel" and uri.host not in self.domains:
            return None
        destination = response_destination(request.top_via(), source)
        if self.blocked and self._is_blocked(destination[0]):
            return None
        return request, destination

    def answer(self, data: bytes, source: Address) -> tuple[bytes, Address] | None:
        """
        @param data: one datagram.
        @param source: where it came from.
        @return: the challenge and where it goes, or C{None}: forward
            the datagram to the node.
        """
        kind = _CHALLENGED.get(data[:9]) or _CHALLENGED.get(data[:8])
        if kind is None:
            return None
        method, header, proxy = kind
        if b"authorization" in data.lower():
            return None  # credentials (or the word in a body): the node's
        try:
            checked = self._request(data, source, method)
            if checked is None:
                return None
            request, destination = checked
            if request.headers.get_all(header):
                return None
            response = make_response(request, 407 if proxy else 401,
                                     to_tag=to_tag(self._secret, request))
        except (SIPParseError, HeaderError, ValueError):
            return None  # the node answers or drops it, and logs it
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        for value in self.verifier.challenge_values():
            response.headers.add(name, value)
        self.counts[method] += 1
        return response.to_bytes(), destination


class WorkerLink(protocol.Protocol):
    """
    The worker's end of its standard input and output.

    @ivar challenger: the L{Challenger}, once the node sent the secret.
    """

    def __init__(self, spec: dict, on_lost: Any = None) -> None:
        self.spec = spec
        self.frames = FrameBuffer()
        self.challenger: Challenger | None = None
        self._domains: list[str] = []
        self._blocks: list[tuple[str, float]] = []
        self.on_lost = on_lost
        self._sent_counts: dict[str, int] = {}

    def forward(self, index: int, data: bytes, addr: Address, arrived: float | None) -> None:
        """Send one datagram to the node."""
        self.transport.write(frame(("dgram", index, data, addr[0], addr[1], arrived)))

    def forward_vouched(self, index: int, data: bytes, addr: Address, arrived: float | None,
                        vouched: tuple) -> None:
        """Send one datagram whose credentials this worker verified."""
        self.transport.write(frame(("vouched", index, data, addr[0], addr[1], arrived,
                                    vouched)))

    def dataReceived(self, data: bytes) -> None:
        try:
            for value in self.frames.feed(data):
                self._command(value)
        except (FrameError, TypeError, ValueError) as e:
            print(f"error bad frame from the node ({e}): exiting", file=sys.stderr,
                  flush=True)
            self.transport.loseConnection()

    def _command(self, value: tuple) -> None:
        kind = value[0]
        if kind == "secret":
            spec = self.spec
            self.challenger = Challenger(spec["realm"], spec["algorithms"],
                                         spec["nonce_lifetime"], bytes(value[1]),
                                         self._domains)
            for host, until in self._blocks:
                self.challenger.block(host, until)
        elif kind == "domains":
            self._domains = [str(h) for h in value[1]]
            if self.challenger is not None:
                for host in self._domains:
                    self.challenger.domains.add(host)
        elif kind == "ha1":
            if self.challenger is not None:
                self.challenger.learn(str(value[1]), value[2], value[3])
        elif kind == "forget":
            if self.challenger is not None:
                self.challenger.forget()
        elif kind == "block":
            host, until = str(value[1]), float(value[2])
            if self.challenger is not None:
                self.challenger.block(host, until)
            else:
                self._blocks.append((host, until))

    def report(self) -> None:
        """Send the challenges answered since the last report, if any
        (the node adds them up: a worker started again begins at 0)."""
        challenger = self.challenger
        if challenger is None:
            return
        counts = challenger.counts
        delta = {m: n - self._sent_counts.get(m, 0) for m, n in counts.items()}
        if not any(delta.values()):
            return
        self._sent_counts = dict(counts)
        self.transport.write(frame(("counts", delta)))

    def connectionLost(self, reason: Any = None) -> None:
        if self.on_lost is not None:
            self.on_lost()


class WorkerUDP(protocol.DatagramProtocol):
    """
    One adopted SIP UDP socket: answer challenges, forward the rest.

    @ivar arrived: set by L{appliance.sip.udp.TimestampedPort} while a
        datagram is handled: when the kernel queued it.
    """

    arrived: float | None = None

    def __init__(self, index: int, link: WorkerLink) -> None:
        self.index = index
        self.link = link

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        if not data.strip(b"\r\n\x00"):
            return  # keep-alive padding: the node drops it too
        challenger = self.link.challenger
        source = (addr[0], addr[1])
        answer = None if challenger is None else _guarded(
            challenger.answer, data, source, "challenge")
        if answer is not None:
            self.transport.write(*answer)
            return
        vouched = None if challenger is None or not challenger.ha1s else _guarded(
            challenger.vouch, data, source, "verification")
        if vouched is not None:
            self.link.forward_vouched(self.index, data, addr, self.arrived, vouched)
        else:
            self.link.forward(self.index, data, addr, self.arrived)


def _guarded(step: Any, data: bytes, source: Address, what: str) -> Any:
    """C{step(data, source)}, or C{None} (the node handles the datagram)
    should it raise."""
    try:
        return step(data, source)
    except Exception as e:
        # Broad: a bug in the fast path must not lose the datagram: the
        # node gets it and answers it.
        print(f"error: {what} of a datagram from {source} failed: {e!r}",
              file=sys.stderr, flush=True)
        return None


def _adopt(reactor: Any, fd: int, family: str, proto: Any, max_packet: int) -> Any:
    """Adopt a bound UDP socket as a L{TimestampedPort} (kernel arrival
    times when the node turned them on)."""
    from appliance.sip.udp import SO_TIMESTAMPNS, TimestampedPort
    fam = socket.AF_INET6 if family == "inet6" else socket.AF_INET
    port = TimestampedPort._fromListeningDescriptor(reactor, fd, fam, proto, max_packet)
    try:
        skt = port._preexistingSocket
        port.timestamps = bool(skt.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS))
    except (AttributeError, OSError):
        port.timestamps = False
    port.startListening()
    exclusive(reactor, port.fileno())
    return port


def exclusive(reactor: Any, fd: int) -> bool:
    """
    Wake only one of the workers for each datagram: the workers' epoll
    sets all wait on the same socket, and without C{EPOLLEXCLUSIVE}
    (Linux 4.5) every datagram wakes each of them, all but one to find
    nothing to read.  The socket only ever waits for reading (a UDP port
    writes with C{sendto} at once), so the reactor's bookkeeping holds.

    @return: whether the flag is set.
    """
    poller = getattr(reactor, "_poller", None)
    flag = getattr(select, "EPOLLEXCLUSIVE", None)
    if poller is None or flag is None:
        return False
    try:
        poller.unregister(fd)
        poller.register(fd, select.EPOLLIN | flag)
        return True
    except OSError:
        try:
            poller.register(fd, select.EPOLLIN)
        except OSError:
            pass  # still registered: the reactor reads it as before
        return False


def main(argv: list[str]) -> None:
    """Run one worker (see the module's description)."""
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import reactor, stdio, task
    from twisted.logger import LogLevel

    log_to_stderr(LogLevel.info)
    spec = json.loads(argv[1])

    def lost() -> None:
        if reactor.running:
            reactor.stop()

    link = WorkerLink(spec, on_lost=lost)
    stdio.StandardIO(link)
    for index, (fd, family) in enumerate(zip(spec["fds"], spec["families"])):
        _adopt(reactor, fd, family, WorkerUDP(index, link), spec.get("max_packet", 8192))
        os.close(fd)  # the port made its own copy
    task.LoopingCall(link.report).start(1.0, now=False)
    run_worker(reactor, link, lost)


if __name__ == "__main__":
    main(sys.argv)
