"""
Fuzzing the running node's SIP listeners: at least 100,000 broken
messages (mutations of valid REGISTER, MESSAGE and OPTIONS) over UDP, and
some over TCP.  The node answers or drops each, keeps serving valid
traffic (OPTIONS, and a REGISTER with digest by SIPp) and stays alive.
"""
from __future__ import annotations

import random
import socket
import time

import pytest

from tests.e2e.sip_tools import DOMAIN, SIPP, run_sipp, start_sip_node, \
    write_users

pytestmark = pytest.mark.e2e

#: Datagrams sent over UDP.
UDP_COUNT = 100_000
#: TCP connections, each carrying a few mutated messages.
TCP_CONNECTIONS = 200

BODY = "مرحبا 👋 fuzz".encode("utf-8")


def seeds(port: int) -> list[bytes]:
    """Valid requests the mutations start from."""
    via = "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{n};rport\r\n"
    common = (via + "Max-Forwards: 70\r\nFrom: <sip:1111@" + DOMAIN
              + ">;tag=f{n}\r\nCall-ID: fuzz-{n}@127.0.0.1\r\n")
    register = ("REGISTER sip:127.0.0.1:" + str(port) + " SIP/2.0\r\n"
                + common + "To: <sip:1111@" + DOMAIN + ">\r\n"
                "CSeq: 1 REGISTER\r\nContact: <sip:1111@127.0.0.1:5999>\r\n"
                "Expires: 300\r\nAuthorization: Digest username=\"1111\","
                "realm=\"" + DOMAIN + "\",nonce=\"abc\",uri=\"sip:x\","
                "response=\"0123456789abcdef0123456789abcdef\",qop=auth,"
                "nc=00000001,cnonce=\"c\"\r\nContent-Length: 0\r\n\r\n")
    message = ("MESSAGE sip:2222@" + DOMAIN + " SIP/2.0\r\n" + common
               + "To: <sip:2222@" + DOMAIN + ">\r\nCSeq: 1 MESSAGE\r\n"
               "Content-Type: text/plain;charset=UTF-8\r\n"
               f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    options = ("OPTIONS sip:127.0.0.1:" + str(port) + " SIP/2.0\r\n" + common
               + "To: <sip:127.0.0.1>\r\nCSeq: 1 OPTIONS\r\n"
               "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n")
    return [register.encode(), message, options.encode()]


_TOKENS = [b"\r\n", b"\r\n\r\n", b":", b";", b"<", b">", b"@", b"\"", b" ",
           b"\x00", b"\xff\xfe", b"%", b"SIP/2.0", b"Content-Length: 99999",
           b"Content-Length: -1", b"l: 3", b"Via: ", b"CSeq: x MESSAGE",
           b"v: SIP/2.0/UDP", "é€👋".encode(), b"\t", b",", b"="]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to four random damages: flips, cuts, insertions, duplicated or
    dropped lines, huge fields."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op == 1:
            del out[pos:pos + rng.randint(1, 40)]
        elif op == 2:
            out[pos:pos] = rng.choice(_TOKENS)
        elif op == 3:
            out[pos:pos] = bytes(rng.randrange(256)
                                 for _ in range(rng.randint(1, 16)))
        elif op == 4:
            lines = bytes(out).split(b"\r\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            out = bytearray(b"\r\n".join(lines))
        elif op == 5:
            lines = bytes(out).split(b"\r\n")
            del lines[rng.randrange(len(lines))]
            out = bytearray(b"\r\n".join(lines))
        elif op == 6:
            out[pos:pos] = rng.choice(_TOKENS[:12]) * rng.randint(50, 400)
        else:
            out = out[:pos]
    return bytes(out[:60000])


def options_ok(sock: socket.socket, port: int, n: int,
               timeout: float = 20.0) -> int | None:
    """
    Send a valid OPTIONS (retransmitted) and wait for its 200.

    @return: how many other answers arrived meanwhile, or C{None} if the
        200 did not come in time.
    """
    request = seeds(port)[2].replace(b"{n}", f"ok{n}".encode())
    deadline = time.monotonic() + timeout
    others = 0
    while time.monotonic() < deadline:
        sock.sendto(request, ("127.0.0.1", port))
        sock.settimeout(0.5)
        try:
            while True:
                data, _ = sock.recvfrom(65536)
                if data.startswith(b"SIP/2.0 200") \
                        and f"ok{n}".encode() in data:
                    return others
                others += 1
        except socket.timeout:
            continue
    return None


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the node's UDP socket (its receive
    buffer was full), from C{/proc/net/udp}."""
    total = 0
    for line in open("/proc/net/udp").read().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            total += int(fields[-1])
    return total


def drain(sock: socket.socket) -> int:
    """Read every pending answer; return how many."""
    sock.setblocking(False)
    count = 0
    try:
        while True:
            sock.recvfrom(65536)
            count += 1
    except (BlockingIOError, InterruptedError):
        pass
    return count


@pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")
def test_fuzz_udp_and_tcp(tmp_path):
    """100,000 mutated datagrams and 200 TCP connections of mutated
    messages: the node answers or drops each, a valid OPTIONS is answered
    200 throughout and after, a SIPp REGISTER with digest still succeeds,
    and the process is alive with no traceback logged."""
    node = start_sip_node(tmp_path, {"1111": "pw-1111", "2222": "pw-2222"},
                          log_level="error")
    udp, tcp = node.port("sip_udp"), node.port("sip_tcp")
    rng = random.Random(5)
    base = seeds(udp)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    answers = sent = 0
    try:
        for n in range(UDP_COUNT):
            seed = base[n % 3].replace(b"{n}", str(n).encode())
            sock.sendto(mutate(rng, seed), ("127.0.0.1", udp))
            sent += 1
            if n % 50 == 49:
                # Keep pace: the node reads in order, so once this OPTIONS
                # is answered every datagram before it has been handled.
                others = options_ok(sock, udp, n)
                assert others is not None, f"no 200 to OPTIONS after {n}"
                answers += others
                assert node.process.poll() is None, node.log()
        tcp_closed = 0
        for c in range(TCP_CONNECTIONS):
            with socket.create_connection(("127.0.0.1", tcp),
                                          timeout=5) as conn:
                for k in range(5):
                    seed = base[k % 3].replace(b"{n}", f"t{c}-{k}".encode())
                    try:
                        conn.sendall(mutate(rng, seed))
                    except OSError:
                        tcp_closed += 1
                        break
        others = options_ok(sock, udp, -1)
        assert others is not None, "no 200 to OPTIONS after the fuzz"
        answers += others + drain(sock)
    finally:
        sock.close()
    assert sent == UDP_COUNT
    assert answers > 0
    # Every datagram reached the node: none was lost in the kernel.
    assert udp_drops(udp) == 0
    print(f"{sent} datagrams, {answers} answers, {tcp_closed} TCP refusals")
    reg = run_sipp(tmp_path / "reg", "register.xml", udp, transport="udp",
                   users=write_users(tmp_path / "u.csv",
                                     [("1111", "pw-1111")]), timeout=20)
    assert reg.returncode == 0 and reg.successful == 1, reg.explain()
    reg = run_sipp(tmp_path / "reg-tcp", "register.xml", tcp,
                   transport="tcp", users=write_users(
                       tmp_path / "u2.csv", [("2222", "pw-2222")]),
                   timeout=20)
    assert reg.returncode == 0 and reg.successful == 1, reg.explain()
    assert node.process.poll() is None, node.log()
    log = node.log()
    node.stop()
    assert "Traceback" not in log and "Unhandled" not in log, log[-5000:]
