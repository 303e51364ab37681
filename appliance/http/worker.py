# -*- test-case-name: tests.http.test_workers -*-
"""
An HTTP worker process (C{[http] workers = N}): it accepts on the node's
HTTP listening sockets, parses each request with the same twisted.web
site and limits as the main process (keep-alive, header and body limits,
TLS with the node's policy), and forwards it as one frame to the node,
which authenticates, authorizes, charges, stores and answers it
(L{appliance.http.proxied}); the worker writes the answer.

Started by the node, never by hand: C{python -m appliance.http.worker
SPEC}, SPEC being JSON with the section's limits (C{section}), the node's
TLS policy (C{tls}), and per listening socket (fds 3, 4, ...) its address
family and, for C{ssl:}, the listener description (C{listeners}).

Frames to the node: C{("req", id, method, path, args, headers, body,
host, port, secure)}; from it: C{("res", id, code, headers, body)}.
C{("hello", pid)} once every socket is adopted.  SIGTERM: stop accepting,
finish the requests held (up to 10 s), exit.  Standard input closed (the
node is gone): exit at once.
"""
from __future__ import annotations

import itertools
import json
import os
import socket
import sys
from types import SimpleNamespace
from typing import Any

from twisted.internet import protocol
from twisted.web import server
from twisted.web.resource import Resource

from appliance.workers import FrameBuffer, FrameError, frame, log_to_stderr, run_worker

__all__ = ["ForwardResource", "NodeLink", "main"]


class NodeLink(protocol.Protocol):
    """
    The worker's end of its standard input and output: frames to and from
    the node.

    @ivar pending: requests forwarded and not yet answered, by id.
    @ivar on_lost: called when the node closes our standard input.
    """

    def __init__(self, on_lost: Any = None) -> None:
        self.frames = FrameBuffer()
        self.pending: dict[int, Any] = {}
        self.on_lost = on_lost
        self._ids = itertools.count(1)
        self.drained: Any = None

    def forward(self, request: Any) -> None:
        """Send C{request} to the node; it is answered by L{dataReceived}."""
        rid = next(self._ids)
        address = request.getClientAddress()
        if request.method == b"POST":
            request.content.seek(0)
            body = request.content.read()
        else:
            body = b""
        headers = {name.lower(): values[-1]
                   for name, values in request.requestHeaders.getAllRawHeaders()}
        self.pending[rid] = request
        request.notifyFinish().addBoth(self._gone, rid)
        self.transport.write(frame((
            "req", rid, request.method, request.path, request.args, headers, body,
            getattr(address, "host", ""), getattr(address, "port", 0),
            request.isSecure())))

    def _gone(self, _: Any, rid: int) -> None:
        self.pending.pop(rid, None)
        if not self.pending and self.drained is not None:
            drained, self.drained = self.drained, None
            drained()

    def dataReceived(self, data: bytes) -> None:
        try:
            for value in self.frames.feed(data):
                if value[0] == "res":
                    self._answer(*value[1:])
        except FrameError as e:
            print(f"error bad frame from the node ({e}): exiting", file=sys.stderr,
                  flush=True)
            self.transport.loseConnection()

    def _answer(self, rid: int, code: int, headers: Any, body: bytes) -> None:
        request = self.pending.get(rid)
        if request is None or request.finished or request._disconnected:
            return
        request.setResponseCode(code)
        for name, value in headers:
            request.setHeader(name, value)
        request.setHeader(b"Content-Length", b"%d" % len(body))
        request.write(body)
        request.finish()

    def connectionLost(self, reason: Any = None) -> None:
        if self.on_lost is not None:
            self.on_lost()


class ForwardResource(Resource):
    """The worker's one leaf: every request goes to the node."""

    isLeaf = True

    def __init__(self, link: NodeLink) -> None:
        super().__init__()
        self.link = link

    def render(self, request: Any) -> Any:
        self.link.forward(request)
        return server.NOT_DONE_YET


def _family(name: str) -> socket.AddressFamily:
    return socket.AF_INET6 if name == "inet6" else socket.AF_INET


def main(argv: list[str]) -> None:
    """Run one worker (see the module's description)."""
    from twisted.internet import epollreactor
    epollreactor.install()
    from twisted.internet import reactor, stdio
    from twisted.logger import LogLevel

    log_to_stderr(LogLevel.info)

    spec = json.loads(argv[1])
    section = SimpleNamespace(**spec["section"])
    stopping: list[bool] = []

    def lost() -> None:
        if reactor.running:
            reactor.stop()

    link = NodeLink(on_lost=lost)
    from appliance.http.site import APISite
    site = APISite(ForwardResource(link), section, reactor)
    site.noisy = False
    ports = []
    for fd, listener in zip(spec["fds"], spec["listeners"]):
        factory: Any = site
        if listener.get("tls"):
            from twisted.protocols.tls import TLSMemoryBIOFactory

            from appliance.listen import tls_options
            from appliance.tls import TLSPolicy
            options = tls_options(listener["tls"], TLSPolicy(**spec["tls"]))
            factory = TLSMemoryBIOFactory(options, False, site)
        ports.append(reactor.adoptStreamPort(fd, _family(listener["family"]), factory))
        os.close(fd)  # adoptStreamPort made its own copy
    stdio.StandardIO(link)

    def terminate(*_: Any) -> None:
        if stopping:
            return
        stopping.append(True)
        for port in ports:
            port.stopListening()
        if not link.pending:
            reactor.callLater(0, lost)
            return
        link.drained = lost
        reactor.callLater(10.0, lost)

    run_worker(reactor, link, terminate)


if __name__ == "__main__":
    main(sys.argv)
