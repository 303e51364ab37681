# -*- test-case-name: tests.http.test_service -*-
"""
The HTTP listeners' twisted.web site: keep-alive channels with the
C{[http]} header and body limits, one leaf resource rendered without
traversal, and a C{Date} header made once a second.  The main process
serves its API resource through it; with C{[http] workers} each worker
process serves its forwarding resource (L{appliance.http.worker}).
"""
from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger
from twisted.python import failure
from twisted.web import http, server

__all__ = ["APISite", "LimitedChannel", "LimitedRequest"]


class LimitedRequest(server.Request):
    """A request whose body may not pass the channel's C{max_body}."""

    _received = 0
    _refused = False

    def gotLength(self, length):
        limit = self.channel.max_body
        if length is not None and length > limit:
            self._refuse()
        super().gotLength(length if length is None or length <= limit
                          else 0)

    def handleContentChunk(self, data):
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.channel.max_body:
            self._refuse()
            return
        super().handleContentChunk(data)

    def _refuse(self):
        if self._refused:
            return
        self._refused = True
        body = json.dumps({"code": "too_large", "reason":
                           "the request body is too large"}).encode()
        self.channel.log.info("HTTP request body over {limit} bytes from "
                              "{peer}: refused", limit=self.channel.max_body,
                              peer=self.channel.transport.getPeer())
        self.channel.transport.write(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: "
            b"application/json\r\nConnection: close\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)
        # Drop the rest of the body and close our side only: closing with
        # unread data sends a reset, which can make the client lose the
        # 413 before it reads it.  The client's close (or the idle
        # timeout) ends the connection.
        channel = self.channel
        channel.dataReceived = lambda data: None
        half_close = getattr(channel.transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
        else:
            channel.transport.loseConnection()

    def requestReceived(self, command, path, version):
        if self._refused:
            return
        super().requestReceived(command, path, version)

    def process(self):
        """
        Render the site's one leaf resource (it dispatches by path): no
        traversal, no session, a C{Date} header made once a second.
        """
        self.site = self.channel.site
        self.setHeader(b"Date", self.site.date())
        self.prepath, self.postpath, self.sitepath = [], [], []
        try:
            self.render(self.site.resource)
        except Exception:
            # Broad, as twisted.web's Request.process: a resource's bug is
            # a 500, logged with its traceback by processingFailed; the
            # listener keeps serving.
            self.processingFailed(failure.Failure())


class LimitedChannel(http.HTTPChannel):
    """An HTTP/1.1 channel with the section's header limits."""

    log = Logger()
    max_body = 65536


class APISite(server.Site):
    """The site: our channel and request classes, no access log."""

    def __init__(self, resource, section: Any, clock: Any):
        super().__init__(resource, timeout=section.idle_timeout)
        self.requestFactory = LimitedRequest
        self.section = section
        self._clock = clock
        self._date = (None, b"")

    def date(self) -> bytes:
        """The C{Date} header's value, made once a second."""
        second = int(self._clock.seconds())
        if self._date[0] != second:
            self._date = (second, http.datetimeToString(second))
        return self._date[1]

    def buildProtocol(self, addr):
        channel = LimitedChannel()
        channel.factory = self
        channel.requestFactory = self.requestFactory
        channel.site = self
        channel.timeOut = self.timeOut
        channel.callLater = self._clock.callLater
        channel.maxHeaders = self.section.max_headers
        channel.totalHeadersSize = self.section.max_header_bytes
        channel.max_body = self.section.max_request_bytes
        return channel

    def log(self, request):
        """Requests are counted, not logged one by one."""
