"""
Helpers for the SIP service tests: a memory reactor with UDP, an
in-memory database with accounts, a fake messaging core, and a harness
that sends requests as an app would and reads the answers.
"""
from __future__ import annotations

from appliance.application import GENERATIONS, memory_storage
import hashlib
import secrets
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface import implementer

from appliance.config import Listener, SIPSection
from appliance.messaging.vocabulary import NoRoute
from appliance.messaging.interfaces import IMessagingCore
from appliance.node import NodeContext, PortMap
from appliance.sip.digest import parse_authorization
from appliance.sip.message import Response, parse
from appliance.sip.service import SIPService
from appliance.store.database import Storage, open_database

DOMAIN = "sip.example.net"
REALM = "sip.example.net"
APP = ("198.51.100.7", 40000)


class FakeUDPTransport:
    """The transport of a UDP port: records datagrams written."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", self.host, self.port)

    def stopListening(self) -> None:
        pass


class UDPReactor(MemoryReactorClock):
    """A memory reactor that also 'binds' UDP ports (to fake transports)."""

    def __init__(self) -> None:
        super().__init__()
        self.udp: list[tuple[Any, FakeUDPTransport]] = []

    def listenUDP(self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192):
        transport = FakeUDPTransport(interface or "0.0.0.0", port or 5060)
        protocol.makeConnection(transport)
        self.udp.append((protocol, transport))
        return transport


@implementer(IMessagingCore)
class FakeCore:
    """
    A messaging core that records submissions; C{submit} returns a
    Deferred the test fires; unknown recipients raise L{NoRoute}.
    """

    def __init__(self, known: tuple[str, ...] = ("2222", "9647502222222", "1111")) -> None:
        self.known = known
        self.submitted: list[tuple[Any, defer.Deferred]] = []
        self.online: list[str] = []
        self.agents: dict[str, Any] = {}

    def submit(self, submission, authorization=None):
        if submission.recipient not in self.known:
            raise NoRoute(f"no route for {submission.recipient}")
        d: defer.Deferred = defer.Deferred()
        self.submitted.append((submission, d))
        return d

    def account_online(self, username):
        self.online.append(username)
        return defer.succeed(None)

    def route(self, submission):
        if submission.recipient not in self.known:
            raise NoRoute(f"no route for {submission.recipient}")
        return ("sip", submission.recipient, "local")

    def authorize(self, submission):
        return self.route(submission)

    def receipt_received(self, connection, remote_id, state, error=""):
        return defer.succeed(False)

    def route_table(self):
        return None

    def statistics(self):
        return {"submitted": len(self.submitted)}

    def set_agent(self, transport, agent):
        self.agents[transport] = agent

    def set_charger(self, charger):
        pass

    def add_state_writer(self, writer):
        pass

    def add_outcome_listener(self, listener):
        pass


def populate(storage: Storage) -> None:
    """Accounts 1111 (password secret, DID 9647501111111), 2222, and disabled 3333."""
    with storage.transaction(user="test") as root:
        root.add_customer("Acme")
        for name in ("1111", "2222", "3333"):
            account = root.add_account("Acme", name)
            account.set_password("secret", REALM)
        root.add_did("1111", "9647501111111")
        root.add_did("2222", "9647502222222")
        root.accounts["3333"].enabled = False


def section(**kw: Any) -> SIPSection:
    """A [sip] section with UDP and TCP listeners and test-friendly settings."""
    listen = (Listener("udp", "udp:port=5060", 5060, ""),
              Listener("tcp", "tcp:port=5060", 5060, ""))
    values = dict(name="sip", enabled=True, listen=listen, domain=DOMAIN, realm=REALM,
                  auth_failures=3, overload_lag_ms=0)  # the memory clock jumps
    values.update(kw)
    return SIPSection(**values)


def digest_response(challenge: str, method: str, uri: str, user: str, password: str,
                    nc: int = 1, algorithm: str | None = None, realm: str | None = None) -> str:
    """Answer a WWW-/Proxy-Authenticate challenge value (qop=auth)."""
    p = parse_authorization(challenge)
    alg = algorithm or p.get("algorithm", "MD5")
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[alg]

    def H(s: str) -> str:
        return h(s.encode()).hexdigest()
    realm = realm or p["realm"]
    cnonce = secrets.token_hex(4)
    ncs = f"{nc:08x}"
    ha1 = H(f"{user}:{realm}:{password}")
    resp = H(f"{ha1}:{p['nonce']}:{ncs}:{cnonce}:auth:{H(f'{method}:{uri}')}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{p["nonce"]}", uri="{uri}", '
            f'response="{resp}", algorithm={alg}, qop=auth, nc={ncs}, cnonce="{cnonce}"')


class Bench:
    """
    The SIP service on a memory reactor, an in-memory database and a fake
    core; C{udp(...)} sends a request from an app over UDP and returns
    the responses it got.
    """

    def __init__(self, tmp_path: Path, database: Path | None = None, fill: bool = True,
                 **kw: Any) -> None:
        self.reactor = UDPReactor()
        if database is None:
            self.storage = memory_storage(reactor=self.reactor)
        else:
            self.storage = Storage(lambda: open_database(str(database), database.parent),
                                   self.reactor, generations=GENERATIONS)
            self.storage.open()
        if fill:
            populate(self.storage)
        self.core = FakeCore()
        self.node = NodeContext(reactor=self.reactor, config=None, storage=self.storage,
                                ports=PortMap(tmp_path / "ports.json"))
        self.section = section(**kw)
        self.service = SIPService(self.section, self.node, core=self.core,
                                  local_host=lambda d: "192.0.2.10", secret=b"k" * 32)
        self.core.set_agent("sip", self.service.agent)     # as the wiring does
        self.service.startService()
        self.cseq = 0

    @property
    def udp_transport(self) -> FakeUDPTransport:
        return self.reactor.udp[0][1]

    @property
    def udp_protocol(self) -> Any:
        return self.reactor.udp[0][0]

    def settle(self, seconds: float = 0.01) -> None:
        """Let batched commits (and anything else due) run."""
        self.reactor.advance(seconds)

    def request(self, method: str, uri: str, headers: list[str] | None = None,
                body: bytes = b"", via: str | None = None, to: str | None = None,
                from_: str = f"<sip:1111@{DOMAIN}>;tag=a1", call_id: str = "call-1",
                cseq: int | None = None, transport: str = "UDP") -> bytes:
        """Build raw request bytes."""
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        via = via or f"SIP/2.0/{transport} {APP[0]}:{APP[1]};branch=z9hG4bK{secrets.token_hex(6)};rport"
        lines = [f"{method} {uri} SIP/2.0", f"Via: {via}", "Max-Forwards: 70",
                 f"From: {from_}", f"To: {to or f'<sip:1111@{DOMAIN}>'}",
                 f"Call-ID: {call_id}", f"CSeq: {cseq} {method}", *(headers or []),
                 f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def udp(self, data: bytes, source: tuple[str, int] = APP, settle: bool = True) -> list[Response]:
        """Send a datagram from C{source}; return the responses sent back."""
        before = len(self.udp_transport.written)
        self.udp_protocol.datagramReceived(data, source)
        if settle:
            self.settle()
        return [parse(d) for d, _ in self.udp_transport.written[before:]]

    def register(self, user: str = "1111", password: str = "secret",
                 contact: str = "<sip:1111@198.51.100.7:40000>", expires: int | None = 600,
                 source: tuple[str, int] = APP, extra: list[str] | None = None,
                 call_id: str = "reg-1", via: str | None = None) -> Response:
        """
        REGISTER with digest (challenge, then credentials); the final response.

        @param via: the top Via (default: the app's address with rport).
        """
        headers = [f"Contact: {contact}"] + ([f"Expires: {expires}"] if expires is not None else [])
        headers += extra or []
        to = f"<sip:{user}@{DOMAIN}>"
        branch = iter(range(2))

        def top_via() -> str | None:
            return via and f"{via};branch=z9hG4bKr{call_id}{next(branch)}"
        first = self.udp(self.request("REGISTER", f"sip:{DOMAIN}", headers, to=to,
                                      from_=f"<sip:{user}@{DOMAIN}>;tag=r", call_id=call_id,
                                      via=top_via()),
                         source)[-1]
        if first.status != 401:
            return first
        auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                               f"sip:{DOMAIN}", user, password)
        return self.udp(self.request("REGISTER", f"sip:{DOMAIN}",
                                     headers + [f"Authorization: {auth}"], to=to,
                                     from_=f"<sip:{user}@{DOMAIN}>;tag=r", call_id=call_id,
                                     via=top_via()),
                        source)[-1]

    def stop(self) -> None:
        self.service.stopService()


class FakeStream(StringTransport):
    """A TCP transport with addresses."""

    def __init__(self, peer: tuple[str, int], local: tuple[str, int] = ("192.0.2.10", 5060)):
        super().__init__(hostAddress=IPv4Address("TCP", *local),
                         peerAddress=IPv4Address("TCP", *peer))
