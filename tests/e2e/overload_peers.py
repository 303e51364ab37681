"""
Peers that misbehave, and load that does not wait, for the overload
bench (C{bench/bench_overload.py}) and the isolation e2e tests:

  - L{open_loop_smpp}: one SMPP bind that sends submit_sm at a fixed rate
    whatever comes back (open loop), recording every response's status
    and latency in time bins;
  - L{closed_loop_smpp}: one bind keeping C{window} submit_sm outstanding
    (the capacity probe, and the "other carrier" whose rate is compared);
  - L{open_loop_http}: pipelined C{/sendsms/send} requests at a fixed
    rate over several keep-alive connections;
  - L{SIPApp}: a UDP app that registers with digest and answers MESSAGE
    at once, after a delay (slow), or never (dead);
  - L{DelayedSMSC}: an SMSC answering submit_sm after a delay (slow);
  - L{half_open_smpp} / L{half_open_http}: clients that send and then
    stop reading, or connect and send nothing.

Built on raw sockets (no smpplib), so one process can offer thousands of
PDUs per second; nothing here sleeps except to pace the load.
"""
from __future__ import annotations

import hashlib
import heapq
import re
import secrets
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")
BIND_TRANSCEIVER, SUBMIT_SM, ENQUIRE_LINK, UNBIND = 0x9, 0x4, 0x15, 0x6
DELIVER_SM, GENERIC_NACK = 0x5, 0x80000000
RESP = 0x80000000
ESME_ROK, ESME_RMSGQFUL, ESME_RTHROTTLED = 0x0, 0x14, 0x58
#: Seconds per time bin of the recorders.
BIN = 0.25


def pdu(command_id: int, sequence: int, body: bytes = b"",
        status: int = 0) -> bytes:
    """One PDU."""
    return HEADER.pack(16 + len(body), command_id, status, sequence) + body


def bind_body(system_id: str, password: str) -> bytes:
    """The body of a bind_transceiver."""
    return (system_id.encode() + b"\0" + password.encode() + b"\0" + b"\0"
            + bytes([0x34, 0, 0]) + b"\0")


def submit_body(destination: str, text: bytes, source: str = "AsiaCell",
                receipt: int = 0) -> bytes:
    """The body of a submit_sm: alphanumeric source, international
    destination, GSM 7 text."""
    return (b"\0" + bytes([5, 0]) + source.encode() + b"\0"
            + bytes([1, 1]) + destination.encode() + b"\0"
            + bytes([0, 0, 0]) + b"\0\0" + bytes([receipt, 0, 0, 0,
                                                  len(text)]) + text)


def split(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole PDUs from a stream buffer, and the rest."""
    frames = []
    while len(buffer) >= 16:
        length = HEADER.unpack_from(buffer)[0]
        if len(buffer) < length:
            break
        frames.append(buffer[:length])
        buffer = buffer[length:]
    return frames, buffer


def bind(port: int, system_id: str, password: str,
         timeout: float = 10.0) -> socket.socket:
    """
    Connect and bind as transceiver, again while the node answers
    ESME_RBINDFAIL (it checks one bind per source address at a time).

    @return: the bound socket.
    """
    for attempt in range(50):
        try:
            return _bind(port, system_id, password, timeout)
        except BindFailed:
            # This polls the condition (the bind succeeds), backing off
            # while the node is busy with this address's earlier bind.
            time.sleep(0.1 + 0.1 * attempt)
    return _bind(port, system_id, password, timeout)


class BindFailed(ConnectionError):
    """ESME_RBINDFAIL: try again."""


def _bind(port: int, system_id: str, password: str,
          timeout: float) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(pdu(BIND_TRANSCEIVER, 1, bind_body(system_id, password)))
    buffer = b""
    while True:
        data = s.recv(4096)
        if not data:
            raise ConnectionError("closed during bind")
        frames, buffer = split(buffer + data)
        for f in frames:
            _, cid, status, _ = HEADER.unpack_from(f)
            if cid == BIND_TRANSCEIVER | RESP:
                if status == 0xD:
                    s.close()
                    raise BindFailed("ESME_RBINDFAIL")
                if status:
                    raise ConnectionError(f"bind refused: {status:#x}")
                s.setblocking(False)
                return s


@dataclass
class Bins:
    """Counters per L{BIN} of seconds since the start."""
    start: float
    sent: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)

    def bin(self, now: float) -> int:
        return int((now - self.start) / BIN)

    def add_sent(self, now: float, n: int = 1) -> None:
        b = self.bin(now)
        self.sent[b] = self.sent.get(b, 0) + n

    def answer(self, now: float, status: int, latency: float) -> None:
        b = self.bin(now)
        key = (b, status)
        self.status[key] = self.status.get(key, 0) + 1
        if status in (ESME_ROK, 200, 202):
            self.latency.setdefault(b, []).append(latency)

    def as_tuple(self) -> tuple:
        return self.start, self.sent, self.status, self.latency


def _answer_requests(sock: socket.socket, frame: bytes, out: list) -> None:
    """Answer the node's requests (deliver_sm, enquire_link)."""
    _, cid, _, seq = HEADER.unpack_from(frame)
    if cid == DELIVER_SM:
        out.append(pdu(DELIVER_SM | RESP, seq, b"\0"))
    elif cid == ENQUIRE_LINK:
        out.append(pdu(ENQUIRE_LINK | RESP, seq))


def open_loop_smpp(port: int, system_id: str, password: str,
                   phases: list[tuple[float, float]], destination: str,
                   start_at: float, queue) -> None:
    """
    Send submit_sm at each phase's rate for its duration, reading what
    comes back, then wait up to 10 s for the last answers.

    @param phases: C{(seconds, submits per second)} in order.
    @param start_at: C{time.time()} at which to start (aligns processes).
    @param queue: gets L{Bins.as_tuple} at the end.
    """
    s = bind(port, system_id, password)
    while time.time() < start_at:     # pacing: every load process
        time.sleep(0.001)             # starts at the same instant
    t0 = time.monotonic()
    bins = Bins(t0)
    sent_at: dict[int, float] = {}
    seq = 1
    buffer, unsent = b"", b""
    due_total = 0.0
    edges = []
    t = 0.0
    for seconds, rate in phases:
        edges.append((t, t + seconds, rate))
        t += seconds
    end = t0 + t
    body = submit_body(destination, b"overload bench message")
    sent_n = 0

    def due(now):
        elapsed = now - t0
        total = 0.0
        for a, b, rate in edges:
            if elapsed <= a:
                break
            total += (min(elapsed, b) - a) * rate
        return total
    while True:
        now = time.monotonic()
        if now < end:
            due_total = due(now)
            chunk = []
            while sent_n < due_total and len(chunk) < 500:
                seq += 1
                chunk.append(pdu(SUBMIT_SM, seq, body))
                sent_at[seq] = now
                sent_n += 1
            if chunk:
                bins.add_sent(now, len(chunk))
                unsent += b"".join(chunk)
        elif not sent_at or now > end + 10:
            break
        if unsent:
            try:
                n = s.send(unsent)
                unsent = unsent[n:]
            except BlockingIOError:
                pass
        r, _, _ = select.select([s], [], [], 0.001)
        if r:
            data = s.recv(1 << 16)
            if not data:
                break
            frames, buffer = split(buffer + data)
            now = time.monotonic()
            replies: list = []
            for f in frames:
                _, cid, status, rseq = HEADER.unpack_from(f)
                if cid in (SUBMIT_SM | RESP, GENERIC_NACK):
                    at = sent_at.pop(rseq, None)
                    if at is not None:
                        bins.answer(now, status, now - at)
                else:
                    _answer_requests(s, f, replies)
            unsent += b"".join(replies)
    s.close()
    queue.put(bins.as_tuple())


def closed_loop_smpp(port: int, system_id: str, password: str,
                     seconds: float, window: int, destination: str,
                     start_at: float, queue) -> None:
    """
    Keep C{window} submit_sm outstanding for C{seconds}.

    @param queue: gets C{(accepted, refused, latencies)}.
    """
    s = bind(port, system_id, password)
    while time.time() < start_at:     # pacing: every load process
        time.sleep(0.001)             # starts at the same instant
    body = submit_body(destination, b"the other carrier's message")
    sent_at: dict[int, float] = {}
    seq, accepted, refused, latencies = 1, 0, 0, []
    buffer = b""
    t0 = time.monotonic()
    end = t0 + seconds
    s.setblocking(True)
    while True:
        now = time.monotonic()
        if now < end:
            out = []
            while len(sent_at) < window:
                seq += 1
                sent_at[seq] = now
                out.append(pdu(SUBMIT_SM, seq, body))
            if out:
                s.sendall(b"".join(out))
        elif not sent_at or now > end + 15:
            break
        r, _, _ = select.select([s], [], [], 0.05)
        if not r:
            continue
        data = s.recv(1 << 16)
        if not data:
            break
        frames, buffer = split(buffer + data)
        now = time.monotonic()
        replies: list = []
        for f in frames:
            _, cid, status, rseq = HEADER.unpack_from(f)
            if cid in (SUBMIT_SM | RESP, GENERIC_NACK):
                at = sent_at.pop(rseq, None)
                if at is None:
                    continue
                if status == ESME_ROK and now <= end:
                    accepted += 1
                    latencies.append(now - at)
                elif status != ESME_ROK:
                    refused += 1
            else:
                _answer_requests(s, f, replies)
        if replies:
            s.sendall(b"".join(replies))
    s.close()
    queue.put((accepted, refused, latencies))


# -- HTTP -----------------------------------------------------------------

_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")
_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)")


_CHUNKED = re.compile(rb"(?im)^transfer-encoding:\s*chunked")


def http_responses(buffer: bytes) -> tuple[list[int], bytes]:
    """
    Whole responses at the start of a keep-alive stream (by
    Content-Length, or chunked).

    @return: their statuses and the rest of the buffer.
    """
    statuses = []
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            break
        head = buffer[:head_end]
        if _CHUNKED.search(head):
            end = buffer.find(b"\r\n0\r\n\r\n", head_end)
            if end < 0:
                end = buffer.find(b"0\r\n\r\n", head_end + 4)
                if end != head_end + 4:
                    break
                end = head_end + 4 + 5
            else:
                end += 7
        else:
            m = _LENGTH.search(head)
            end = head_end + 4 + (int(m.group(1)) if m else 0)
            if len(buffer) < end:
                break
        m = _STATUS.match(head)
        statuses.append(int(m.group(1)) if m else 0)
        buffer = buffer[end:]
    return statuses, buffer


def http_request(token: str, n: int, prefix: str = "3519") -> bytes:
    """One keep-alive GET /sendsms/send with a bearer token."""
    return (f"GET /sendsms/send?from=123456789&to={prefix}{n % 10**8:08d}"
            f"&body=overload+{n} HTTP/1.1\r\nHost: node\r\n"
            f"Authorization: Bearer {token}\r\n\r\n").encode()


def open_loop_http(port: int, token: str, phases: list[tuple[float, float]],
                   connections: int, start_at: float, queue) -> None:
    """
    Requests at each phase's rate whatever comes back, as many clients
    would send them: each on a keep-alive connection with no request
    outstanding (of C{connections}); a request due when every
    connection is busy is not sent and counted under status 0.

    @param queue: gets L{Bins.as_tuple} at the end.
    """
    socks = []
    for _ in range(connections):
        c = socket.create_connection(("127.0.0.1", port), 10)
        c.setblocking(False)
        socks.append(c)
    free = list(socks)
    sent_at: dict = {}
    bufs = {c: b"" for c in socks}
    while time.time() < start_at:     # pacing: every load process
        time.sleep(0.001)             # starts at the same instant
    t0 = time.monotonic()
    bins = Bins(t0)
    edges, t = [], 0.0
    for seconds, rate in phases:
        edges.append((t, t + seconds, rate))
        t += seconds
    end = t0 + t
    due_n = 0

    def due(now):
        elapsed, total = now - t0, 0.0
        for a, b, rate in edges:
            if elapsed <= a:
                break
            total += (min(elapsed, b) - a) * rate
        return total
    while True:
        now = time.monotonic()
        if now < end:
            target = due(now)
            k = 0
            while due_n < target and k < 200:
                due_n += 1
                k += 1
                if not free:
                    bins.answer(now, 0, 0.0)
                    continue
                c = free.pop()
                try:
                    c.send(http_request(token, due_n))
                except OSError:
                    continue
                sent_at[c] = now
            if k:
                bins.add_sent(now, k)
        elif not sent_at or now > end + 10:
            break
        busy = list(sent_at)
        if not busy:
            time.sleep(0.001)     # pacing: nothing outstanding, the next
            continue              # request is not due yet
        r, _, _ = select.select(busy, [], [], 0.001)
        now = time.monotonic()
        for c in r:
            try:
                data = c.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                sent_at.pop(c, None)
                continue
            statuses, bufs[c] = http_responses(bufs[c] + data)
            for status in statuses:
                bins.answer(now, status, now - sent_at.pop(c, now))
                free.append(c)
    for c in socks:
        c.close()
    queue.put(bins.as_tuple())


# -- SIP app ---------------------------------------------------------------

def _header(message: str, name: str) -> str:
    m = re.search(rf"(?im)^{name}:\s*(.*?)\r?$", message)
    return m.group(1) if m else ""


class SIPApp(threading.Thread):
    """
    A UDP app of one account: registers with digest, then answers each
    MESSAGE with 200 after C{delay} seconds (0: at once), or never
    (C{dead}: the socket is closed once registered).

    @ivar received: distinct MESSAGE Call-IDs received.
    @ivar answered: 200s sent.
    """

    def __init__(self, node_port: int, user: str, password: str,
                 domain: str, delay: float = 0.0, dead: bool = False):
        super().__init__(daemon=True)
        self.node = ("127.0.0.1", node_port)
        self.user, self.password, self.domain = user, password, domain
        self.delay, self.dead = delay, dead
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: set[str] = set()
        self.answered = 0
        self.times: list[float] = []
        self._later: list[tuple[float, int, bytes, tuple]] = []
        self._halt = False
        self.registered = threading.Event()

    def _register(self, auth: str = "", cseq: int = 1) -> str:
        uri = f"sip:{self.node[0]}:{self.node[1]}"
        msg = (f"REGISTER {uri} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch="
               f"z9hG4bK{secrets.token_hex(8)};rport\r\n"
               f"Max-Forwards: 70\r\n"
               f"From: <sip:{self.user}@{self.domain}>;tag={self.user}\r\n"
               f"To: <sip:{self.user}@{self.domain}>\r\n"
               f"Call-ID: reg-{self.user}-{self.port}\r\n"
               f"CSeq: {cseq} REGISTER\r\n"
               f"Contact: <sip:{self.user}@127.0.0.1:{self.port}>\r\n"
               f"Expires: 3600\r\n{auth}Content-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), self.node)
        self.sock.settimeout(5)
        while True:
            data, _ = self.sock.recvfrom(65536)
            text = data.decode("utf-8", "replace")
            if text.startswith("SIP/2.0") and "REGISTER" in _header(
                    text, "CSeq") and not text.startswith("SIP/2.0 100"):
                return text

    def register(self) -> None:
        """REGISTER, answer the challenge, expect 200."""
        first = self._register()
        challenge = _header(first, "WWW-Authenticate")
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        realm, nonce = params["realm"], params["nonce"]
        uri = f"sip:{self.node[0]}:{self.node[1]}"
        md5 = lambda t: hashlib.md5(t.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"{self.user}:{realm}:{self.password}")
        ha2 = md5(f"REGISTER:{uri}")
        cnonce, nc = secrets.token_hex(4), "00000001"
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        auth = (f'Authorization: Digest username="{self.user}", '
                f'realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, '
                f'nc={nc}, cnonce="{cnonce}"\r\n')
        second = self._register(auth, 2)
        if not second.startswith("SIP/2.0 200"):
            raise RuntimeError(f"REGISTER of {self.user}: "
                               f"{second.splitlines()[0]}")
        self.registered.set()

    def run(self) -> None:
        self.register()
        if self.dead:
            self.sock.close()
            return
        self.sock.settimeout(0.01)
        n = 0
        while not self._halt:
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                _, _, data, addr = heapq.heappop(self._later)
                self.sock.sendto(data, addr)
                self.answered += 1
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            if not text.startswith("MESSAGE "):
                continue
            call_id = _header(text, "Call-ID")
            if call_id not in self.received:
                self.received.add(call_id)
                self.times.append(now)
            head = "\r\n".join(
                f"{h}: {_header(text, h)}" for h in ("Via", "From", "To",
                                                      "Call-ID", "CSeq"))
            reply = (f"SIP/2.0 200 OK\r\n{head}\r\nContent-Length: 0"
                     f"\r\n\r\n").encode()
            n += 1
            if self.delay:
                heapq.heappush(self._later, (now + self.delay, n, reply,
                                             addr))
            else:
                self.sock.sendto(reply, addr)
                self.answered += 1

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._halt = True
        self.join(2)
        try:
            self.sock.close()
        except OSError:
            pass


# -- SMSC ------------------------------------------------------------------

class DelayedSMSC:
    """
    An SMSC that accepts binds and answers each submit_sm OK after
    C{delay} seconds (0: at once).

    @ivar received: submit_sm received, with their arrival times.
    """

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._halt = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def received(self) -> int:
        return len(self.times)

    def _accept(self) -> None:
        while not self._halt:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,),
                             daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        buffer, later, counter = b"", [], 0
        sock.settimeout(0.01)
        while not self._halt:
            now = time.monotonic()
            out = []
            while later and later[0][0] <= now:
                out.append(heapq.heappop(later)[2])
            try:
                data = sock.recv(1 << 16)
                if not data:
                    return
            except socket.timeout:
                data = b""
            except OSError:
                return
            frames, buffer = split(buffer + data)
            for f in frames:
                _, cid, _, seq = HEADER.unpack_from(f)
                if cid in (0x1, 0x2, 0x9):
                    out.append(pdu(cid | RESP, seq, b"smsc\0"))
                elif cid == SUBMIT_SM:
                    counter += 1
                    with self.lock:
                        self.times.append(now)
                    resp = pdu(SUBMIT_SM | RESP, seq, b"m%d\0" % counter)
                    if self.delay:
                        heapq.heappush(later, (now + self.delay, counter,
                                               resp))
                    else:
                        out.append(resp)
                elif cid in (ENQUIRE_LINK, UNBIND):
                    out.append(pdu(cid | RESP, seq))
            if out:
                try:
                    sock.sendall(b"".join(out))
                except OSError:
                    return

    def stop(self) -> None:
        self._halt = True
        try:
            self.listener.close()
        except OSError:
            pass


# -- half-open peers -------------------------------------------------------

def half_open_smpp(port: int, system_id: str, password: str,
                   submits: int, destination: str) -> socket.socket:
    """
    Bind, then send C{submits} submit_sm without ever reading (the
    node's answers pile up), from a thread; @return: the socket (close
    it to end the peer).
    """
    s = bind(port, system_id, password)
    s.setblocking(True)
    body = submit_body(destination, b"never read")

    def send():
        try:
            for i in range(0, submits, 100):
                s.sendall(b"".join(pdu(SUBMIT_SM, 10 + i + k, body)
                                   for k in range(100)))
        except OSError:
            pass
    threading.Thread(target=send, daemon=True).start()
    return s


def half_open_http(port: int, token: str, requests: int,
                   idle: int = 50) -> list[socket.socket]:
    """
    One connection that pipelines C{requests} sends and never reads,
    plus C{idle} connections that send nothing.

    @return: the sockets (close them to end the peer).
    """
    socks = [socket.create_connection(("127.0.0.1", port), 5)
             for _ in range(idle + 1)]
    s = socks[0]

    def send():
        try:
            for i in range(0, requests, 50):
                s.sendall(b"".join(http_request(token, i + k)
                                   for k in range(50)))
        except OSError:
            pass
    threading.Thread(target=send, daemon=True).start()
    return socks


def closed_loop_http(port: int, token: str, seconds: float,
                     connections: int, start_at: float, queue) -> None:
    """
    One request outstanding per connection for C{seconds} (capacity).

    @param queue: gets C{(answered 2xx, other answers, latencies)}.
    """
    socks = [socket.create_connection(("127.0.0.1", port), 10)
             for _ in range(connections)]
    while time.time() < start_at:     # pacing: every load process
        time.sleep(0.001)             # starts at the same instant
    t0 = time.monotonic()
    end = t0 + seconds
    buf = {c: b"" for c in socks}
    sent = {}
    n, ok, other, latencies = 0, 0, 0, []
    for c in socks:
        c.sendall(http_request(token, n))
        sent[c] = t0
        n += 1
    while sent:
        r, _, _ = select.select(list(sent), [], [], 0.1)
        now = time.monotonic()
        if now > end + 10:
            break
        for c in r:
            data = c.recv(1 << 16)
            if not data:
                sent.pop(c)
                continue
            statuses, buf[c] = http_responses(buf[c] + data)
            if not statuses:
                continue
            status = statuses[0]
            if now <= end:
                if 200 <= status < 300:
                    ok += 1
                    latencies.append(now - sent[c])
                else:
                    other += 1
                c.sendall(http_request(token, n))
                n += 1
                sent[c] = now
            else:
                sent.pop(c)
    for c in socks:
        c.close()
    queue.put((ok, other, latencies))
