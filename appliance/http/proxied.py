# -*- test-case-name: tests.http.test_workers -*-
"""
The main process's side of C{[http] workers}: each request a worker
forwards (L{appliance.http.worker}) becomes a L{ProxiedRequest}, the few
parts of a twisted.web request the API resource reads and writes, and is
rendered by the same L{appliance.http.resources.APIResource} as a
request of the node's own listeners: the same authentication, limits,
counters, storage and answers.  Its answer goes back to the worker as
one frame.
"""
from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server

__all__ = ["ProxiedRequest", "Dispatcher"]

_INTERNAL = (b'{"code": "internal", "reason": "internal error"}')


class ProxiedRequest:
    """
    A request a worker parsed, as the API resource sees it.

    @ivar code: the answer's status (200 until set).
    @ivar finished: set once answered.
    """

    __slots__ = ("_worker", "_rid", "method", "path", "args", "_headers", "_body",
                 "_host", "_port", "_secure", "code", "_out", "_written", "finished",
                 "started")

    def __init__(self, worker: Any, rid: int, method: bytes, path: bytes, args: dict,
                 headers: dict, body: bytes, host: str, port: int, secure: bool) -> None:
        self._worker, self._rid = worker, rid
        self.method, self.path, self.args = method, path, args
        self._headers, self._body = headers, body
        self._host, self._port, self._secure = host, port, secure
        self.code = 200
        self._out: dict[bytes, bytes] = {}
        self._written: list[bytes] = []
        self.finished = False
        self.started = 0.0

    @property
    def content(self) -> BytesIO:
        """The request body (read by the API for JSON bodies only)."""
        return BytesIO(self._body)

    def getHeader(self, name: bytes) -> bytes | None:
        """@return: the header's last value, or C{None}."""
        return self._headers.get(name.lower())

    def getClientAddress(self) -> Any:
        """@return: the client's address as the worker accepted it."""
        kind = IPv6Address if ":" in self._host else IPv4Address
        return kind("TCP", self._host, self._port)

    def isSecure(self) -> bool:
        """@return: whether the client came over TLS."""
        return self._secure

    def setResponseCode(self, code: int) -> None:
        self.code = code

    def setHeader(self, name: bytes, value: bytes) -> None:
        self._out[name] = value

    def write(self, data: bytes) -> None:
        self._written.append(data)

    def finish(self) -> None:
        """Send the answer to the worker (once)."""
        if self.finished:
            return
        self.finished = True
        # The worker sets Content-Length from the body it is given.
        self._out.pop(b"Content-Length", None)
        self._worker.send(("res", self._rid, self.code, list(self._out.items()),
                           b"".join(self._written)))


class Dispatcher:
    """
    Renders the requests workers forward with the node's API resource.

    @ivar received: requests forwarded by workers, since start.
    """

    log = Logger()

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.received = 0

    def __call__(self, worker: Any, value: tuple) -> None:
        """A frame from a worker: C{("req", id, ...)}."""
        if value[0] != "req" or len(value) != 10:
            self.log.warn("HTTP worker {n} sent an unknown frame {kind!r}: ignored",
                          n=getattr(worker, "number", "?"), kind=value[:1])
            return
        self.received += 1
        request = ProxiedRequest(worker, *value[1:])
        try:
            body = self.resource.render(request)
        except Exception:
            # Broad, as twisted.web's Request.process: a resource's bug is a
            # 500, logged with its traceback; the node keeps serving.
            self.log.failure("HTTP request failed", Failure())
            request.setResponseCode(500)
            request._out = {b"Content-Type": b"application/json"}
            request._written = [_INTERNAL]
            request.finish()
            return
        if body is server.NOT_DONE_YET:
            return
        request.write(body)
        request.finish()
