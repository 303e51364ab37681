"""
Overload at the door, end to end: a node over its per-second budget, or
whose UDP datagrams waited too long in the kernel's receive queue, answers
new requests 503 with Retry-After (never silence), serves the others,
logs the refusals at warning, and counts every drop.
"""
from __future__ import annotations

import socket
import time

import pytest

from tests.e2e.harness import wait_for
from tests.e2e.sip_tools import DOMAIN, start_sip_node

pytestmark = pytest.mark.e2e


def flood(port: int, count: int) -> dict[str, bytes]:
    """Send C{count} OPTIONS at once (distinct branches) and collect the
    final answer to each, by branch, for a few seconds."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    here = sock.getsockname()[1]
    for n in range(count):
        sock.sendto((
            f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bKflood{n};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:1111@{DOMAIN}>;tag=f{n}\r\n"
            f"To: <sip:{DOMAIN}>\r\nCall-ID: flood-{n}@127.0.0.1\r\n"
            "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(),
            ("127.0.0.1", port))
    answers: dict[str, bytes] = {}
    deadline = time.monotonic() + 20
    sock.settimeout(0.5)
    while len(answers) < count and time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65536)
        except socket.timeout:
            continue
        branch = data.split(b"branch=z9hG4bKflood", 1)[1].split(b";", 1)[0]
        answers[branch.decode()] = data
    sock.close()
    return answers


def test_budget_503_with_retry_after_and_warning(tmp_path):
    """With max_requests_per_second = 50, a burst of 400 OPTIONS gets an
    answer each: 200 for the ones within the budget, 503 with Retry-After
    for the others; the node logs the refusals at warning, and its
    statistics count them."""
    node = start_sip_node(tmp_path, {"1111": "pw"}, log_level="warning",
                          max_requests_per_second=50, retry_after=3)
    try:
        answers = flood(node.port("sip_udp"), 400)
        assert len(answers) == 400, f"{400 - len(answers)} requests got no answer"
        ok = [a for a in answers.values() if a.startswith(b"SIP/2.0 200")]
        refused = [a for a in answers.values() if a.startswith(b"SIP/2.0 503")]
        assert len(ok) + len(refused) == 400
        assert 50 <= len(ok) < 400 and refused
        assert all(b"\r\nRetry-After: 3\r\n" in a for a in refused)
        log = node.log()
        assert "SIP overload: new requests answered 503" in log, log[-3000:]
        assert node.process.poll() is None
    finally:
        node.stop()


def test_datagrams_that_waited_in_the_kernel_get_503(tmp_path):
    """With overload_queue_ms = 1, requests of a burst that waited in the
    kernel's receive queue (timestamped by the kernel) get 503 rather than
    a late answer, and the node says why."""
    node = start_sip_node(tmp_path, {"1111": "pw"}, log_level="warning",
                          overload_queue_ms=1)
    try:
        answers = flood(node.port("sip_udp"), 500)
        assert len(answers) == 500, f"{500 - len(answers)} requests got no answer"
        refused = [a for a in answers.values() if a.startswith(b"SIP/2.0 503")]
        assert refused, "no request was refused"
        assert all(b"\r\nRetry-After: 5\r\n" in a for a in refused)
        assert "for queue" in node.log()
    finally:
        node.stop()


def test_kernel_drops_logged_at_warning(tmp_path):
    """Datagrams the kernel drops on a full receive buffer are counted
    (SO_RXQ_OVFL) and logged at warning, not lost in silence."""
    node = start_sip_node(tmp_path, {"1111": "pw"}, log_level="warning",
                          udp_receive_buffer=65536)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        here = sock.getsockname()[1]
        port = node.port("sip_udp")
        for n in range(20000):
            sock.sendto((
                f"OPTIONS sip:{DOMAIN} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bKdrop{n}\r\n"
                f"From: <sip:1111@{DOMAIN}>;tag=d{n}\r\nTo: <sip:{DOMAIN}>\r\n"
                f"Call-ID: drop-{n}@127.0.0.1\r\nCSeq: 1 OPTIONS\r\n"
                "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", port))
        sock.close()
        wait_for(lambda: "the kernel dropped" in node.log(), timeout=20,
                 what="a warning about the kernel's drops")
    finally:
        node.stop()
