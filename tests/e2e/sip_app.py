"""
A small SIP user agent over UDP for load and crash tests: an app that
REGISTERs with digest, answers every MESSAGE with 200 and records it
(with its C{Message-ID}), and sends MESSAGEs of its own (digest on a
407/401 challenge, the nonce then reused with a growing nonce-count).

It is written from RFC 3261 directly (its own tiny parser), so it does
not share the node's SIP code.  One socket and one reader thread per
app; requests it sends are retransmitted over UDP (timer A, doubling
from 0.5 s) until a final answer or their deadline.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["SIPApp", "Delivery", "parse"]


@dataclass
class Parsed:
    """One SIP message: start line, headers (lower-case names), body."""
    start: str
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of C{name} (case-insensitive), or C{None}."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def status(self) -> int | None:
        """A response's status code; C{None} for a request."""
        if self.start.startswith("SIP/2.0 "):
            return int(self.start.split()[1])
        return None

    @property
    def method(self) -> str | None:
        """A request's method."""
        return None if self.status is not None else self.start.split()[0]


_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id",
            "l": "content-length", "c": "content-type", "m": "contact"}


def parse(data: bytes) -> Parsed:
    """Parse one datagram (headers folded lines not supported: none sent)."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers.setdefault(_COMPACT.get(name, name), []).append(value.strip())
    return Parsed(lines[0], headers, body)


@dataclass
class Delivery:
    """
    A MESSAGE the app received (its first copy of that transaction).

    @ivar at: C{time.monotonic()} of its arrival.
    @ivar message_id: its C{Message-ID} header (C{None} if absent).
    """
    at: float
    message_id: str | None
    body: bytes
    call_id: str
    sender: str


@dataclass
class _Pending:
    event: threading.Event = field(default_factory=threading.Event)
    response: Parsed | None = None


def _params(challenge: str) -> dict[str, str]:
    scheme, _, rest = challenge.partition(" ")
    return {k.lower(): v.strip('"') for k, v in
            re.findall(r'([A-Za-z-]+)="?([^",]*)"?', rest)}


class SIPApp:
    """
    One app of one account.

    @ivar deliveries: every MESSAGE received, first copy of each
        transaction only (retransmissions are answered, not recorded).
    @ivar node: C{(host, port)} of the node's SIP UDP listener; change it
        after a restart.
    """

    def __init__(self, user: str, password: str, domain: str,
                 node: tuple[str, int], answer: int = 200):
        """
        @param answer: the status MESSAGEs are answered with.
        """
        self.user, self.password, self.domain = user, password, domain
        self.node = node
        self.answer = answer
        #: While set, MESSAGEs are dropped unanswered (an app gone dark).
        self.mute = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.deliveries: list[Delivery] = []
        self.on_delivery: Callable[[Delivery], None] | None = None
        self._seen: dict[tuple[str, str], bytes] = {}
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._lock = threading.Lock()
        self._cseq = 0
        self._auth: dict[str, str] | None = None
        self._nc = 0
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"sip-app-{user}")
        self._reader.start()

    # -- receiving ---------------------------------------------------------

    def _read(self) -> None:
        while not self._closed:
            try:
                data, addr = self.sock.recvfrom(65536)
            except OSError:
                return
            try:
                message = parse(data)
            except Exception:
                continue
            if message.status is not None:
                self._response(message)
            else:
                self._request(message, data, addr)

    def _response(self, message: Parsed) -> None:
        key = (message.header("call-id") or "", message.header("cseq") or "")
        if message.status < 200:
            return
        with self._lock:
            pending = self._pending.get(key)
        if pending is not None and pending.response is None:
            pending.response = message
            pending.event.set()

    def _request(self, message: Parsed, data: bytes, addr) -> None:
        method = message.method
        key = (message.header("call-id") or "", message.header("cseq") or "")
        with self._lock:
            known = self._seen.get(key)
        if known is not None:          # a retransmission: same answer
            self._send(known, addr)
            return
        if self.mute and method == "MESSAGE":
            return
        status = self.answer if method == "MESSAGE" else (
            200 if method == "OPTIONS" else 405)
        reply = self._reply(message, status)
        with self._lock:
            self._seen[key] = reply
            if len(self._seen) > 20000:
                for old in list(self._seen)[:10000]:
                    del self._seen[old]
        if method == "MESSAGE":
            delivery = Delivery(time.monotonic(), message.header("message-id"),
                                message.body, key[0],
                                message.header("from") or "")
            self.deliveries.append(delivery)
            if self.on_delivery is not None:
                self.on_delivery(delivery)
        self._send(reply, addr)

    def _reply(self, request: Parsed, status: int) -> bytes:
        reason = {200: "OK", 405: "Method Not Allowed"}.get(status, "Busy")
        lines = [f"SIP/2.0 {status} {reason}"]
        for name in ("via", "from", "to", "call-id", "cseq"):
            for value in request.headers.get(name, []):
                if name == "to" and "tag=" not in value:
                    value += f";tag={secrets.token_hex(4)}"
                lines.append(f"{name.title()}: {value}")
        lines += ["Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()

    def _send(self, data: bytes, addr) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:
            pass

    # -- sending -----------------------------------------------------------

    def _authorization(self, method: str, uri: str) -> str | None:
        if self._auth is None:
            return None
        a = self._auth
        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = secrets.token_hex(4)
        ha1 = hashlib.md5(f"{self.user}:{a['realm']}:{self.password}"
                          .encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
        if "auth" in a.get("qop", "").split(","):
            response = hashlib.md5(f"{ha1}:{a['nonce']}:{nc}:{cnonce}:auth:"
                                   f"{ha2}".encode()).hexdigest()
            extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"'
        else:
            response = hashlib.md5(f"{ha1}:{a['nonce']}:{ha2}"
                                   .encode()).hexdigest()
            extra = ""
        opaque = f', opaque="{a["opaque"]}"' if "opaque" in a else ""
        return (f'Digest username="{self.user}", realm="{a["realm"]}", '
                f'nonce="{a["nonce"]}", uri="{uri}", response="{response}", '
                f'algorithm=MD5{extra}{opaque}')

    def _once(self, method: str, uri: str, extra: list[str], body: bytes,
              deadline: float, auth_header: str) -> Parsed | None:
        with self._lock:
            self._cseq += 1
            cseq = f"{self._cseq} {method}"
        call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};rport;"
                 f"branch=z9hG4bK{secrets.token_hex(8)}",
                 "Max-Forwards: 70",
                 f"From: <sip:{self.user}@{self.domain}>;tag="
                 f"{secrets.token_hex(4)}",
                 f"To: <{uri if method != 'REGISTER' else f'sip:{self.user}@{self.domain}'}>",
                 f"Call-ID: {call_id}", f"CSeq: {cseq}", *extra]
        authorization = self._authorization(method, uri)
        if authorization:
            lines.append(f"{auth_header}: {authorization}")
        lines += [f"Content-Length: {len(body)}", "", ""]
        data = "\r\n".join(lines).encode() + body
        pending = _Pending()
        key = (call_id, cseq)
        with self._lock:
            self._pending[key] = pending
        try:
            interval = 0.5
            while not self._closed:
                self._send(data, self.node)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if pending.event.wait(min(interval, left)):
                    return pending.response
                interval = min(interval * 2, 4.0)
            return None
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def request(self, method: str, uri: str, extra: list[str] = (),
                body: bytes = b"", timeout: float = 8.0) -> Parsed | None:
        """
        Send a request and wait for its final answer, answering one digest
        challenge (401 or 407).

        @return: the final response, or C{None} if none came in time.
        """
        deadline = time.monotonic() + timeout
        header = "Proxy-Authorization" if method == "MESSAGE" \
            else "Authorization"
        for _ in range(2):
            response = self._once(method, uri, list(extra), body, deadline,
                                  header)
            if response is None or response.status not in (401, 407):
                return response
            challenge = next((c for c in response.headers.get(
                "proxy-authenticate", []) + response.headers.get(
                "www-authenticate", []) if "MD5" in c.upper()
                and "SHA" not in c.upper()), None)
            if challenge is None:
                return response
            self._auth = _params(challenge)
            self._nc = 0
        return response

    def register(self, expires: int = 3600, timeout: float = 8.0) -> int | None:
        """REGISTER our socket as the contact; @return: the final status."""
        response = self.request(
            "REGISTER", f"sip:{self.domain}",
            [f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>",
             f"Expires: {expires}"], timeout=timeout)
        return None if response is None else response.status

    def send(self, to: str, text: str, timeout: float = 8.0) -> int | None:
        """Send a MESSAGE to C{to}; @return: the final status or C{None}."""
        response = self.request(
            "MESSAGE", f"sip:{to}@{self.domain}",
            ["Content-Type: text/plain;charset=UTF-8"],
            text.encode("utf-8"), timeout=timeout)
        return None if response is None else response.status

    def close(self) -> None:
        """Stop reading and close the socket."""
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass
