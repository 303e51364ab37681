"""
Split a TCP/TLS byte stream into SIP messages, pure.

A message ends after its header section plus Content-Length bytes (bytes,
not characters). A CRLFCRLF between messages is an RFC 5626 keep-alive
ping: the framer returns L{KEEPALIVE} and the protocol answers with one
CRLF. A lone CRLF (a pong, or padding before a message) is skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.sip.message import MAX_HEADER_BYTES, find_header_end

__all__ = ["FramingError", "KEEPALIVE", "KeepAlive", "StreamFramer"]

_LENGTH_RE = re.compile(rb"^(?:content-length|l)[ \t]*:([^\r\n]*)", re.I | re.M)
_MAX_BODY = 1024 * 1024


class KeepAlive:
    """
    The marker for a CRLFCRLF keep-alive ping; use the L{KEEPALIVE} instance.
    """

    def __repr__(self) -> str:
        return "KEEPALIVE"


KEEPALIVE = KeepAlive()


@dataclass(frozen=True)
class FramingError:
    """
    The stream cannot be framed any more; the connection should be closed.

    @ivar reason: what went wrong.
    """

    reason: str


class StreamFramer:
    """
    Buffer a stream and cut it into messages.

    After a L{FramingError} the framer is dead: further input is ignored.

    @ivar max_header_bytes: the largest header section accepted.
    @ivar max_body_bytes: the largest Content-Length accepted.
    """

    def __init__(self, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_body_bytes: int = _MAX_BODY) -> None:
        """
        @param max_header_bytes: refuse a peer that sends more than this
            without completing a header section.
        @param max_body_bytes: refuse a Content-Length above this.
        """
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buffer = bytearray()
        self._failed = False

    @property
    def buffered(self) -> int:
        """The number of bytes waiting for the rest of a message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | KeepAlive | FramingError]:
        """
        Add bytes from the stream.

        @param data: the bytes received.
        @return: complete messages (bytes, headers and body), L{KEEPALIVE}
            markers and at most one L{FramingError} (last), in stream order.
        """
        if self._failed:
            return []
        self._buffer += data
        out: list[bytes | KeepAlive | FramingError] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)
            if isinstance(item, FramingError):
                self._failed = True
                self._buffer.clear()
                return out

    def _next(self) -> bytes | KeepAlive | FramingError | None:
        buf = self._buffer
        while buf[:1] in (b"\r", b"\n"):
            if buf[:1] == b"\n":
                del buf[:1]
            elif len(buf) < 4:
                return None
            elif buf[:4] == b"\r\n\r\n":
                del buf[:4]
                return KEEPALIVE
            elif buf[:2] == b"\r\n":
                del buf[:2]
            else:
                return FramingError("stray CR")
        found = find_header_end(buf)
        if found is None:
            if len(buf) > self.max_header_bytes:
                return FramingError("header section too large")
            return None
        head_end, body_start = found
        if head_end > self.max_header_bytes:
            return FramingError("header section too large")
        lengths = {m.group(1).strip() for m in _LENGTH_RE.finditer(bytes(buf[:head_end]))}
        if len(lengths) > 1:
            return FramingError("conflicting Content-Length")
        length = 0
        if lengths:
            (value,) = lengths
            if not value.isdigit() or len(value) > 9:
                return FramingError("bad Content-Length")
            length = int(value)
        if length > self.max_body_bytes:
            return FramingError("body too large")
        end = body_start + length
        if len(buf) < end:
            return None
        message = bytes(buf[:end])
        del buf[:end]
        return message
