"""Tests for the HTTP service's site (L{appliance.http.service}): requests
fed to its channel over a StringTransport, no sockets."""
import json

import pytest
from twisted.internet.testing import StringTransport

from appliance.shell.script import open_session
from appliance.shell.session import execute


class Node:
    services: dict


def exchange(service, data: bytes, resource=None,
             peer: tuple[str, int] = ("127.0.0.1", 40000)) -> bytes:
    """Feed C{data} from C{peer} to a channel of the site serving
    C{resource} (default: the service's API), commit, and return what was
    written back."""
    from appliance.http.service import APISite
    site = APISite(resource or service.resource, service.section, service.reactor)
    channel = site.buildProtocol(None)
    transport = StringTransport(peerAddress=None)
    from twisted.internet.address import IPv4Address
    transport.getPeer = lambda: IPv4Address("TCP", *peer)
    channel.makeConnection(transport)
    channel.dataReceived(data)
    service.node.commit()
    return transport.value()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_send_over_keep_alive(service):
    """Two requests on one connection are both answered (keep-alive),
    each after its commit."""
    req = (b"GET /sendsms/send?from=123456789&to=351912345678&body=x&"
           b"username=acme&password=s3cret-pw HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = exchange(service, req + req)
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    body = answer.split(b"\r\n\r\n", 1)[1]
    assert b'"status": "accepted"' in body


def test_body_too_large_and_too_many_headers(service):
    """A body over max_request_bytes gets 413 and the connection closes;
    more headers than max_headers get 400."""
    answer = exchange(service, b"POST /sendsms/send HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 5000\r\n\r\n" + b"a" * 5000)
    assert status_of(answer) == 413
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == \
        "too_large"
    answer = exchange(service, b"GET /healthz HTTP/1.1\r\n"
                      + b"X: y\r\n" * 30 + b"\r\n")
    assert status_of(answer) == 400


def test_operations_endpoints_and_show_http(service, storage):
    """/healthz and /metrics answer loopback without credentials; show
    http lists the answers by endpoint and status."""
    answer = exchange(service, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) in (200, 503)
    answer = exchange(service, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 200 and b"appliance_http_requests" in answer
    exchange(service, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    session = open_session(storage, "admin", "admin")
    session.live.add_source("http", service)
    result = execute(session, "show http")
    assert result.ok
    assert "/metrics" in result.text and "404" in result.text
    assert "Callbacks pending: 0" in result.text


def test_answer_has_its_length_and_no_server_header(service):
    """A send answer is written with Content-Length (not chunked) and a
    Date header, without twisted.web's Server header."""
    req = (b"GET /sendsms/send?from=123456789&to=351912345678&body=x&"
           b"username=acme&password=s3cret-pw HTTP/1.1\r\nHost: x\r\n\r\n")
    head, body = exchange(service, req).split(b"\r\n\r\n", 1)
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert int(headers[b"Content-Length"]) == len(body)
    assert b"Transfer-Encoding" not in headers and b"Server" not in headers
    assert headers[b"Date"].endswith(b" GMT")
    assert json.loads(body)["recipients"][0]["status"] == "accepted"


def test_tenants_read_from_a_snapshot_rebuilt_on_commit(service, storage):
    """Requests read tenants from an immutable snapshot, built once and
    reused; a configuration commit (here shutdown) replaces it, so the
    next request sees the change."""
    service.startService()
    try:
        book = service.tenants()
        assert service.tenants() is book
        assert book.tenants["acme"].enabled
        with pytest.raises(Exception):
            book.tenants["acme"].enabled = False        # frozen
        req = (b"GET /sendsms/send?from=123456789&to=351912345678&body=x&"
               b"username=acme&password=s3cret-pw HTTP/1.1\r\nHost: x\r\n"
               b"\r\n")
        assert status_of(exchange(service, req)) == 200
        assert service.tenants() is book
        session = open_session(storage, "admin", "admin")
        for line in ("configure terminal", "tenant acme", "shutdown", "end"):
            assert execute(session, line).ok
        assert service.tenants() is not book
        assert not service.tenants().tenants["acme"].enabled
        assert status_of(exchange(service, req)) == 403
    finally:
        service.stopService()



def test_health_reports_a_storage_failure_and_logs_it(service, monkeypatch):
    """A storage that raises makes /healthz's health failing with the
    reason, and the failure is logged with its traceback at warning."""
    from twisted.logger import LogLevel, capturedLogs

    def broken():
        raise OSError("disk gone")
    monkeypatch.setattr(service.storage, "messages", broken)
    with capturedLogs() as events:
        health = service.health()
    assert health["status"] == "failing"
    assert "storage: disk gone" in health["problems"]
    failures = [e for e in events if "log_failure" in e]
    assert [e["log_level"] for e in failures] == [LogLevel.warn]
    assert failures[0]["log_failure"].check(OSError)
