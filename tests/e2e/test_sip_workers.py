"""
End to end: C{[sip] workers = 2} (issue 16 item 5).  Two worker processes
read the node's SIP UDP socket; SIPp registers (401, then 200 with the
digest), a wrong password still gets its 403, and apps exchange a
MESSAGE (407, 202, delivered byte-exact) exactly as with a node alone.
The challenges come from the workers: with the node's own process
stopped (SIGSTOP), a REGISTER without credentials is still answered 401,
and its nonce is accepted by the node once it runs again; a later
nonce-count of it is accepted and the same count again refused (the
workers verify responses of accounts the node taught them, the node
keeps the counts).  A worker
killed with SIGKILL is replaced; a node killed with SIGKILL takes its
workers with it.
"""
from __future__ import annotations

import os
import signal
import socket

import pytest

from tests.e2e.harness import alive, children, wait_for
from tests.e2e.sip_tools import DOMAIN, SIPP, start_sip_node
from tests.e2e.test_sip_sipp import (
    ACCOUNTS, check_message_byte_exact, check_register)
from tests.sip.sipbench import digest_response

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)")]


def register(sock: socket.socket, port: int, branch: str, auth: str | None = None,
             cseq: int | None = None) -> str:
    """Send a REGISTER for 1111 and return the first answer's text."""
    host, local = sock.getsockname()
    lines = [f"REGISTER sip:{DOMAIN} SIP/2.0",
             f"Via: SIP/2.0/UDP {host}:{local};branch=z9hG4bK{branch};rport",
             "Max-Forwards: 70", f"From: <sip:1111@{DOMAIN}>;tag=w1",
             f"To: <sip:1111@{DOMAIN}>", "Call-ID: workers-e2e",
             f"CSeq: {cseq or (1 if auth is None else 2)} REGISTER", f"Contact: <sip:1111@{host}:{local}>", "Expires: 60"]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    sock.sendto(("\r\n".join(lines + ["Content-Length: 0"]) + "\r\n\r\n").encode(),
                ("127.0.0.1", port))
    data, _ = sock.recvfrom(65535)
    return data.decode()


def header(text: str, name: str) -> str:
    for line in text.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    raise AssertionError(f"no {name} in {text!r}")


def test_workers_challenge_forward_and_follow_the_node(tmp_path):
    node = start_sip_node(tmp_path, ACCOUNTS, log_level="info", workers=2)
    try:
        workers = wait_for(lambda: len(children(node.process.pid)) == 2
                           and children(node.process.pid), what="two SIP workers")
        check_register(tmp_path, node, "udp")
        check_message_byte_exact(tmp_path, node, "udp")
        port = node.port("sip_udp")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        try:
            os.kill(node.process.pid, signal.SIGSTOP)
            try:
                challenge = register(sock, port, "stopped1")
            finally:
                os.kill(node.process.pid, signal.SIGCONT)
            assert challenge.startswith("SIP/2.0 401 "), challenge
            auth = digest_response(header(challenge, "www-authenticate"), "REGISTER",
                                   f"sip:{DOMAIN}", "1111", ACCOUNTS["1111"])
            final = register(sock, port, "stopped2", auth)
            assert final.startswith("SIP/2.0 200 "), final
            # The next count on the same nonce (a worker that knows 1111 by
            # now verifies it), then that count again: a replay, refused.
            auth = digest_response(header(challenge, "www-authenticate"), "REGISTER",
                                   f"sip:{DOMAIN}", "1111", ACCOUNTS["1111"], nc=2)
            again = register(sock, port, "again3", auth, cseq=3)
            assert again.startswith("SIP/2.0 200 "), again
            replay = register(sock, port, "replay4", auth, cseq=4)
            assert replay.startswith("SIP/2.0 401 "), replay
        finally:
            sock.close()
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: not alive(workers[0]) and len(children(node.process.pid)) == 2,
                 what="the killed worker replaced")
        check_register(tmp_path / "again", node, "udp")
        assert "sip worker" in node.log() and "exited" in node.log()
        now = children(node.process.pid)
        node.kill()
        wait_for(lambda: not any(alive(pid) for pid in now), what="workers gone with the node")
    finally:
        if node.process.poll() is None:
            node.stop()
    assert "Traceback" not in node.log(), node.log()
