"""
End to end: C{[http] workers = 2} (issue 16 item 5).  The node's HTTP
listeners are served by two worker processes it starts itself; curl sends
through them exactly as to a node without workers, hostile input gets 400
from them, a worker killed with SIGKILL is replaced while the other keeps
serving, and a node killed with SIGKILL takes its workers with it (the
port is free again).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess

import pytest

from tests.e2e.harness import alive, children, wait_for
from tests.e2e.http_tools import PASSWORD, TOKEN, api, body_json, curl, start_http_node

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")]

BASIC = ("-u", f"acme:{PASSWORD}")
PT, UK = "351912345678", "447700900123"


def port_free(port: int) -> bool:
    """Whether a listener could bind C{port} on loopback now."""
    s = socket.socket()
    # As every listener binds: connections the node closed first may
    # linger in TIME_WAIT; a listening socket still open fails the bind.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen()
        return True
    except OSError:
        return False
    finally:
        s.close()


def test_workers_serve_replace_and_follow_the_node(tmp_path, carriers):
    c1, c2 = carriers
    node = start_http_node(tmp_path, c1.port, c2.port, workers=2)
    try:
        wait_for(lambda: c1.binds and c2.binds, what="both carriers bound")
        workers = children(node.process.pid)
        assert len(workers) == 2, workers
        # Sent through the workers: the carrier is picked by prefix, the
        # tenant's credentials checked by the node, the answer the node's.
        status, _, text = curl(*BASIC, api(node, f"/sendsms/send?from=123456789&to={PT}"
                                                 "&body=via+worker"))
        assert status == 200, text
        assert body_json(text)["recipients"][0]["status"] == "accepted"
        status, _, text = curl("-H", f"Authorization: Bearer {TOKEN}", "-H",
                               "Content-Type: application/json", "--data",
                               f'{{"from": "ACME", "to": ["{UK}"], "body": "json"}}',
                               api(node, "/sendsms/send"))
        assert status == 200, text
        wait_for(lambda: len(c1.received) == 1 and len(c2.received) == 1,
                 what="one message at each carrier")
        assert c1.received[0].text == b"via worker" and c2.received[0].text == b"json"
        # Errors keep their codes and bodies; Kannel's endpoint its text.
        status, _, text = curl("-u", "acme:wrong", api(node, f"/sendsms/send?from=1&to={PT}"
                                                             "&body=x"))
        assert status == 401 and body_json(text)["code"] == "unauthorized", text
        status, _, text = curl(api(node, f"/cgi-bin/sendsms?username=acme&password="
                                         f"{PASSWORD}&from=123456789&to={PT}&text=k"))
        assert (status, text) == (202, "0: Accepted for delivery"), text
        status, _, text = curl(api(node, "/healthz"))
        assert status == 200 and body_json(text)["status"] == "ok", text
        # Hostile input is the workers' to answer: 400 for what is not
        # HTTP, the connection closed on an oversized header (twisted.web
        # answers 400 and closes; with the rest unread the kernel may reset
        # the connection before the client reads it), and no worker dies.
        for junk, answered in ((b"NOT HTTP AT ALL\r\n\r\n", True),
                               (b"\x00\xff" * 500 + b"\r\n\r\n", True),
                               (b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", False)):
            with socket.create_connection(("127.0.0.1", node.port("http")), timeout=10) as c:
                try:
                    c.sendall(junk)
                    answer = c.recv(4096)
                except ConnectionResetError:
                    answer = b""
            assert answer.startswith(b"HTTP/1.1 400") or (not answered and answer == b""), \
                (junk[:30], answer[:200])
        assert sorted(children(node.process.pid)) == sorted(workers)
        # One worker killed: the other serves at once, a new one is started.
        os.kill(workers[0], signal.SIGKILL)
        for i in range(6):
            status, _, text = curl(*BASIC, api(node, f"/sendsms/send?from=123456789&to={PT}"
                                                     f"&body=after+{i}"))
            assert status == 200, text
        wait_for(lambda: len(children(node.process.pid)) == 2 and workers[0] not in
                 children(node.process.pid), what="a new worker")
        wait_for(lambda: len(c1.received) == 8, what="every message at carrier1")
        assert "http worker 1" in node.log() or "http worker 2" in node.log()
        workers = children(node.process.pid)
    finally:
        port = node.port("http")
        node.kill()
    # The node killed: its workers exit (their input closes) and the port is free.
    wait_for(lambda: not any(alive(p) for p in workers), what="the workers gone")
    wait_for(lambda: port_free(port), timeout=10, what="the HTTP port free")


def test_tls_through_workers_and_a_clean_stop(tmp_path, carriers):
    """A TLS listener is served by the workers with the node's certificate
    (curl verifies it, two requests on one connection); SIGTERM stops the
    workers first, then the node, and none is left."""
    from tests.e2e.sip_tools import make_certificate
    key, cert = make_certificate(tmp_path / "tls")
    c1, c2 = carriers
    node = start_http_node(tmp_path, c1.port, c2.port, workers=2, listen=[
        "tcp:port=0:interface=127.0.0.1",
        f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}"])
    wait_for(lambda: c1.binds, what="carrier1 bound")
    workers = children(node.process.pid)
    assert len(workers) == 2
    url = (f"https://127.0.0.1:{node.port('http_tls')}/sendsms/send?from=123456789&to={PT}"
           "&body=tls")
    run = subprocess.run(["curl", "-sS", "-v", "--cacert", str(cert), *BASIC, url, url],
                         capture_output=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(b'"status": "accepted"') == 2, run.stdout
    assert b"Re-using existing connection" in run.stderr or \
        b"Reusing existing" in run.stderr, run.stderr[-2000:]
    wait_for(lambda: len(c1.received) == 2, what="both TLS sends")
    node.stop()
    assert not any(alive(p) for p in workers)
    log = node.log()
    assert "http worker 1 (pid" in log and "http worker 2 (pid" in log, log[-3000:]
    assert log.count(") stopped") >= 2, log[-3000:]
