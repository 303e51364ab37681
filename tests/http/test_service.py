"""Tests for the HTTP service's site (L{appliance.http.service}): requests
fed to its channel over a StringTransport, no sockets."""
import json

import pytest
from twisted.internet import defer
from twisted.internet.testing import StringTransport

from appliance.config import parse
from appliance.http.service import HTTPService
from appliance.metrics import Metrics
from appliance.model.passwords import verify_secret
from appliance.node import PortMap
from appliance.shell.script import open_session
from appliance.shell.session import execute
from tests.http.helpers import Core


class Node:
    services: dict


@pytest.fixture
def service(storage, clock, tmp_path):
    core = Core(storage, clock)
    section = parse("[http]\nenabled = true\nmax_request_bytes = 2048\n"
                    "max_headers = 20\n", base=tmp_path).service("http")
    svc = HTTPService(section, clock, storage, core.core,
                      PortMap(tmp_path / "ports.json"),
                      charger=core.billing.charger, metrics=Metrics(),
                      verify=lambda h, p: defer.succeed(verify_secret(h, p)))
    svc.node = core
    yield svc
    core.stop()


def exchange(service, data: bytes) -> bytes:
    from appliance.http.service import APISite
    site = APISite(service.resource, service.section, service.reactor)
    channel = site.buildProtocol(None)
    transport = StringTransport(peerAddress=None)
    from twisted.internet.address import IPv4Address
    transport.getPeer = lambda: IPv4Address("TCP", "127.0.0.1", 40000)
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
