"""
Tests for C{[http] workers} without processes: a request fed to a
worker's site (L{appliance.http.worker}) travels as frames to the main
process's L{appliance.http.proxied.Dispatcher} and back, and its answer
is the one the node's own listener gives (status, headers, body), for
every endpoint and error.
"""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import server

from appliance.http.proxied import Dispatcher
from appliance.http.site import APISite
from appliance.http.worker import ForwardResource, NodeLink
from appliance.workers import FrameBuffer, frame
from tests.http.test_service import exchange

CREDS = b"username=acme&password=s3cret-pw"


class Loop:
    """The pipe between one worker's link and the main's dispatcher."""

    number = 1

    def __init__(self, dispatcher):
        self.dispatcher = dispatcher
        self.link = NodeLink()
        self.to_main = FrameBuffer()
        self.link.makeConnection(self)
        self.frames = 0

    # the worker's stdout, as the link writes it
    def write(self, data):
        for value in self.to_main.feed(data):
            self.frames += 1
            self.dispatcher(self, value)

    # the main's answers, as the dispatcher sends them
    def send(self, value):
        self.link.dataReceived(frame(value))

    def loseConnection(self):
        pass


def via_worker(service, data: bytes) -> bytes:
    loop = Loop(Dispatcher(service.resource))
    return exchange(service, data, ForwardResource(loop.link))


def normal(answer: bytes) -> tuple:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = sorted(line for line in lines[1:] if not line.startswith(b"Date:"))
    body = re.sub(rb'"id": "[0-9a-f]+"', b'"id": "-"', body)
    body = re.sub(rb'Success "[0-9a-f]+"', b'Success "-"', body)
    return lines[0], headers, body


REQUESTS = [
    b"GET /sendsms/send?from=123456789&to=351912345678&body=x&" + CREDS,
    b"GET /sendsms/send?from=123456789&to=351912345678,447700900123&body=two&" + CREDS,
    b"GET /sendsms/send?from=123456789&to=&body=x&" + CREDS,          # 400
    b"GET /sendsms/send?from=123456789&to=351912345678&body=x&username=acme&password=no",
    b"GET /sendsms/send?from=999&to=351912345678&body=x&" + CREDS,    # sender
    b"GET /sendsms/send?from=123456789&to=4930123456&body=x&" + CREDS,  # no route
    b"GET /cgi-bin/sendsms?from=123456789&to=351912345678&text=k&" + CREDS,
    b"GET /send?from=123456789&to=351912345678&content=j&" + CREDS,
    b"GET /balance?" + CREDS,
    b"GET /sendsms/status?id=zz&" + CREDS,
    b"GET /healthz?",
    b"GET /openapi.json?",
    b"GET /nowhere?",
    b"DELETE /sendsms/send?",
]


@pytest.mark.parametrize("line", REQUESTS, ids=lambda r: r.split(b"?")[0].decode())
def test_same_answer_as_the_nodes_own_listener(service, line):
    request = line + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    direct = normal(exchange(service, request))
    worked = normal(via_worker(service, request))
    assert worked == direct
    assert direct[0].startswith(b"HTTP/1.1 ")


def test_json_post_and_form_bodies(service):
    """A JSON body and a form body reach the API whole."""
    body = json.dumps({"from": "123456789", "to": ["351912345678"], "body": "j"}).encode()
    answer = via_worker(service, b"POST /sendsms/send?" + CREDS + b" HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                        % len(body) + body)
    assert b"200 OK" in answer and b'"status": "accepted"' in answer
    form = b"from=123456789&to=447700900123&body=f&" + CREDS
    answer = via_worker(service, b"POST /sendsms/send HTTP/1.1\r\nHost: x\r\nContent-Type: "
                        b"application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n"
                        % len(form) + form)
    assert b"200 OK" in answer and b'"to": "447700900123"' in answer


def test_keep_alive_and_the_workers_own_limits(service):
    """Two requests on one connection are both answered in order; a body
    over the limit is refused by the worker itself (413, nothing
    forwarded)."""
    req = b"GET /sendsms/send?from=123456789&to=351912345678&body=x&" + CREDS + \
        b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert via_worker(service, req + req).count(b"HTTP/1.1 200 OK") == 2
    loop = Loop(Dispatcher(service.resource))
    answer = exchange(service, b"POST /sendsms/send HTTP/1.1\r\nHost: x\r\nContent-Length:"
                      b" 5000\r\n\r\n" + b"a" * 5000, ForwardResource(loop.link))
    assert b" 413 " in answer and loop.frames == 0


def test_the_source_address_is_the_clients(service):
    """The node sees the address the worker accepted (allow-ip, the
    per-source authentication limit and the message's source use it)."""
    seen = []
    resource = SimpleNamespace(render=lambda request: seen.append(
        (request.getClientAddress(), request.isSecure(), request.getHeader(b"X-Probe")))
        or b"{}")
    loop = Loop(Dispatcher(resource))
    answer = exchange(service, b"GET /x HTTP/1.1\r\nHost: x\r\nx-probe: 1\r\n\r\n",
                      ForwardResource(loop.link), peer=("192.0.2.7", 5555))
    assert seen == [(IPv4Address("TCP", "192.0.2.7", 5555), False, b"1")]
    assert b"200 OK" in answer


def test_a_resource_bug_is_a_500_and_the_next_request_is_served(service):
    calls = []

    def render(request):
        calls.append(request.path)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return b"{}"
    loop = Loop(Dispatcher(SimpleNamespace(render=render)))
    answer = exchange(service, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost:"
                      b" x\r\n\r\n", ForwardResource(loop.link))
    assert b" 500 " in answer and b'"code": "internal"' in answer
    assert answer.count(b"HTTP/1.1 200 OK") == 1


def test_an_answer_for_a_closed_connection_is_dropped(service):
    """The client went away before the node answered: the answer is
    dropped and the link forgets the request."""
    held = []
    loop = Loop(Dispatcher(SimpleNamespace(
        render=lambda r: held.append(r) or server.NOT_DONE_YET)))
    site = APISite(ForwardResource(loop.link), service.section, service.reactor)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    assert len(loop.link.pending) == 1
    channel.connectionLost(Failure(ConnectionDone()))
    assert loop.link.pending == {}
    held[0].write(b"late")
    held[0].finish()
    assert b"late" not in transport.value()


def test_show_http_and_health_name_the_workers(service):
    """show http has a Workers line; /healthz fails while fewer workers
    run than configured."""
    from dataclasses import replace
    service.section = replace(service.section, workers=2)
    service.workers = SimpleNamespace(running=lambda: 1, count=2, pids=lambda: [4242],
                                      restarts=3)
    assert "Workers: 1 of 2 running (pids 4242; restarted 3)" in service.shell_text()
    health = service.health()
    assert health["status"] == "failing"
    assert "1 of 2 HTTP workers running" in health["problems"]
