"""
SIP messages: parse bytes, build and serialize requests and responses, pure.

The body is C{bytes} and Content-Length counts bytes, so UTF-8 bodies (the
norm for SMS) survive byte-exact. L{parse} raises L{SIPParseError} whose
C{partial} keeps what could be read, so that L{make_error_response} can
still answer C{400 Bad Request} with a Warning.

Header values are parsed on demand by the accessors (L{Message.vias},
L{Message.from_address}...), except that L{parse} validates the headers
every transaction needs (Via, From, To, Call-ID, CSeq).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from appliance.sip.headermap import Headers
from appliance.sip.headers import Address, CSeq, HeaderError, Via, canonical_name, header_key
from appliance.sip.uri import URI, URIError

__all__ = [
    "Headers", "Message", "PartialMessage", "REASONS", "Request", "Response",
    "SIPParseError", "MAX_HEADER_BYTES", "find_header_end", "make_error_response",
    "make_response", "parse",
]

MAX_HEADER_BYTES = 64 * 1024
SIP_VERSION = "SIP/2.0"

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 300: "Multiple Choices",
    301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required",
    408: "Request Timeout", 410: "Gone", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    423: "Interval Too Brief", 429: "Too Many Requests", 439: "First Hop Lacks Outbound Support",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    502: "Bad Gateway", 503: "Service Unavailable", 504: "Server Time-out",
    505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_RE = re.compile(r"\r?\n")
_BAD_CHARS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE_RE = re.compile("[\udc80-\udcff]")
_REQUIRED = ("via", "from", "to", "call-id", "cseq")


def find_header_end(data: bytes, start: int = 0) -> tuple[int, int] | None:
    """
    Find the empty line that ends the header section.

    @param data: the buffer.
    @param start: where the message starts.
    @return: C{(end of headers, start of body)} or C{None} if not there yet.
    """
    m = _HEADER_END_RE.search(data, start)
    return (m.start(), m.end()) if m else None


@dataclass
class Message:
    """
    What requests and responses share: headers, body, accessors.

    @ivar headers: the header lines.
    @ivar body: the body, bytes.
    """

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """
        Serialize with canonical header names and a Content-Length counted
        in bytes (replacing any Content-Length held in the headers).

        @return: the wire form.
        """
        lines = [self._start_line()]
        length_written = False
        for name, value in self.headers:
            if header_key(name) == "content-length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            lines.append(f"{name}: {value}")
        if not length_written:
            lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body

    def vias(self) -> list[Via]:
        """
        @return: all Via values, top first.
        @raise HeaderError: if one is malformed.
        """
        return [Via.parse(v) for v in self.headers.get_all("via")]

    def top_via(self) -> Via:
        """
        @return: the topmost Via.
        @raise HeaderError: if there is none or it is malformed.
        """
        value = self.headers.get("via")
        if value is None:
            raise HeaderError("no Via")
        return Via.parse(value)

    def set_top_via(self, via: Via) -> None:
        """
        Replace the topmost Via, keeping the others.

        @param via: the new top Via.
        @raise HeaderError: if there is no Via or one does not split.
        """
        values = self.headers.get_all("via")
        if not values:
            raise HeaderError("no Via")
        self.headers.set_all("via", [str(via), *values[1:]])

    def _address(self, name: str) -> Address:
        value = self.headers.get(name)
        if value is None:
            raise HeaderError(f"no {canonical_name(name)}")
        return Address.parse(value)

    def from_address(self) -> Address:
        """
        @return: the From address.
        @raise HeaderError: if absent or malformed.
        """
        return self._address("from")

    def to_address(self) -> Address:
        """
        @return: the To address.
        @raise HeaderError: if absent or malformed.
        """
        return self._address("to")

    def contacts(self) -> list[Address]:
        """
        @return: the Contact addresses in order (empty if none).
        @raise HeaderError: if one is malformed or is the C{*} wildcard.
        """
        values = self.headers.get_all("contact")
        if "*" in values:
            raise HeaderError("Contact is the '*' wildcard")
        return [Address.parse(v) for v in values]

    def is_contact_wildcard(self) -> bool:
        """
        @return: whether Contact is C{*} (RFC 3261 10.2.2, remove all bindings).
        """
        return self.headers.get_all("contact") == ["*"]

    @property
    def call_id(self) -> str | None:
        """The Call-ID, or C{None}."""
        return self.headers.get("call-id")

    def cseq(self) -> CSeq:
        """
        @return: the CSeq.
        @raise HeaderError: if absent or malformed.
        """
        value = self.headers.get("cseq")
        if value is None:
            raise HeaderError("no CSeq")
        return CSeq.parse(value)

    def int_header(self, name: str) -> int | None:
        """
        Read a header holding a non-negative integer (Expires, Max-Forwards...).

        @param name: the header name.
        @return: the value or C{None} when absent.
        @raise HeaderError: when present but not an integer.
        """
        value = self.headers.get(name)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 10:
            raise HeaderError(f"bad {canonical_name(name)} value {value!r}")
        return int(value)


@dataclass
class Request(Message):
    """
    A SIP request.

    @ivar method: the method, e.g. C{"MESSAGE"}.
    @ivar uri: the Request-URI.
    """

    method: str = "OPTIONS"
    uri: URI = field(default_factory=lambda: URI("sip", host="invalid"))

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"


@dataclass
class Response(Message):
    """
    A SIP response.

    @ivar status: the status code (100-699).
    @ivar reason: the reason phrase.
    """

    status: int = 200
    reason: str = "OK"

    def _start_line(self) -> str:
        return f"{SIP_VERSION} {self.status} {self.reason}"


@dataclass
class PartialMessage:
    """
    What was understood of a message that failed to parse.

    @ivar method: the request method, if the start line was a request.
    @ivar status: the status code, if it was a response.
    @ivar headers: the header lines read so far.
    """

    method: str | None = None
    status: int | None = None
    headers: Headers = field(default_factory=Headers)

    def answerable(self) -> bool:
        """
        @return: whether a 400 can be built: a request other than ACK whose
            Via, From, To, Call-ID and CSeq are present, UTF-8, and parse.
        """
        if self.method is None or self.method == "ACK":
            return False
        try:
            for key in _REQUIRED:
                if any(_SURROGATE_RE.search(v) for v in self.headers.get_all(key)):
                    return False  # we would echo bytes that are not UTF-8
            vias = self.headers.get_all("via")
            if not vias:
                return False
            for value in vias:
                Via.parse(value)
            if any(len(self.headers.get_all(k)) != 1 for k in ("from", "to", "call-id", "cseq")):
                return False
            for name in ("from", "to"):
                Address.parse(self.headers.get(name) or "")
            CSeq.parse(self.headers.get("cseq") or "")
        except (HeaderError, URIError):
            return False
        return bool(self.headers.get("call-id"))


class SIPParseError(Exception):
    """
    A message that could not be parsed.

    @ivar reason: what is wrong, short, suitable for a Warning header.
    @ivar partial: a L{PartialMessage} with what was read.
    """

    def __init__(self, reason: str, partial: PartialMessage | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial if partial is not None else PartialMessage()


def parse(data: bytes, stream: bool = False, max_header_bytes: int = MAX_HEADER_BYTES) -> Request | Response:
    """
    Parse one SIP message.

    @param data: the datagram, or one framed message from a stream.
    @param stream: C{True} when framed from TCP/TLS (the body must then be
        exactly Content-Length bytes); on UDP a longer body is truncated to
        Content-Length (RFC 3261 18.3) and a missing Content-Length means
        the rest of the datagram.
    @param max_header_bytes: refuse a header section larger than this.
    @return: the L{Request} or L{Response}.
    @raise SIPParseError: for anything malformed.
    """
    partial = PartialMessage()
    if not isinstance(data, (bytes, bytearray)):
        raise SIPParseError("not bytes", partial)
    data = bytes(data)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    found = find_header_end(data, start)
    if found is None:
        if len(data) - start > max_header_bytes:
            raise SIPParseError("headers too large", partial)
        raise SIPParseError("no end of headers", partial)
    head_end, body_start = found
    if head_end - start > max_header_bytes:
        raise SIPParseError("headers too large", partial)
    text = data[start:head_end].decode("utf-8", "surrogateescape")
    lines = _LINE_RE.split(text)
    message = _start_line(lines[0], partial)
    error = _read_headers(lines[1:], partial)
    if error is None and _SURROGATE_RE.search(text):
        error = "headers are not UTF-8"
    if error is None:
        error = _check_required(message, partial)
    if error is not None:
        raise SIPParseError(error, partial)
    message.headers = partial.headers
    message.body = _body(data[body_start:], partial, stream)
    return message


def _start_line(line: str, partial: PartialMessage) -> Request | Response:
    parts = line.split(" ", 2)
    if len(parts) != 3 or _BAD_CHARS_RE.search(line):
        raise SIPParseError("bad start line", partial)
    if parts[0].upper() == SIP_VERSION:
        code, reason = parts[1], parts[2]
        if len(code) != 3 or not code.isascii() or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SIPParseError("bad status code", partial)
        partial.status = int(code)
        return Response(status=int(code), reason=reason.strip())
    method, uri_text, version = parts
    if not _TOKEN_RE.match(method):
        raise SIPParseError("bad method", partial)
    partial.method = method
    if version.upper() != SIP_VERSION:
        raise SIPParseError("unsupported SIP version", partial)
    try:
        uri = URI.parse(uri_text)
    except URIError as e:
        raise SIPParseError(f"bad Request-URI: {e}", partial) from None
    return Request(method=method, uri=uri)


def _read_headers(lines: list[str], partial: PartialMessage) -> str | None:
    """
    Read header lines into C{partial.headers}, going on past bad lines so
    that as much as possible is known. Return the first error or C{None}.
    """
    error = None
    unfolded: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    for line in unfolded:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not _TOKEN_RE.match(name):
            error = error or "bad header line"
            continue
        if _BAD_CHARS_RE.search(value):
            error = error or f"control character in {name}"
            continue
        partial.headers.add(name, value)
    return error


def _check_required(message: Request | Response, partial: PartialMessage) -> str | None:
    headers = partial.headers
    for key in _REQUIRED:
        if key not in headers:
            return f"missing {canonical_name(key)}"
    try:
        for value in headers.get_all("via"):
            Via.parse(value)
        for key in ("from", "to"):
            if len(headers.get_all(key)) != 1:
                return f"more than one {canonical_name(key)}"
            Address.parse(headers.get(key) or "")
        cseqs = headers.get_all("cseq")
        if len(cseqs) != 1 or len(headers.get_all("call-id")) != 1:
            return "more than one CSeq or Call-ID"
        cseq = CSeq.parse(cseqs[0])
        if not headers.get("call-id"):
            return "empty Call-ID"
        lengths = set(headers.get_all("content-length"))
        for value in lengths:
            if not value.isascii() or not value.isdigit() or len(value) > 9:
                return "bad Content-Length"
        if len({int(v) for v in lengths}) > 1:
            return "conflicting Content-Length"
    except (HeaderError, URIError) as e:
        return str(e)
    if isinstance(message, Request) and cseq.method != message.method:
        return "CSeq method does not match the request method"
    return None


def _body(rest: bytes, partial: PartialMessage, stream: bool) -> bytes:
    value = partial.headers.get("content-length")
    if value is None:
        return b"" if stream else rest
    length = int(value)
    if len(rest) < length:
        raise SIPParseError("body shorter than Content-Length", partial)
    if stream and len(rest) > length:
        raise SIPParseError("body longer than Content-Length", partial)
    return rest[:length]


def make_response(request: Request, status: int, reason: str | None = None,
                  to_tag: str | None = None) -> Response:
    """
    Build a response to a request (RFC 3261 8.2.6): Via (all, in order),
    From, To, Call-ID, CSeq and Timestamp are copied.

    @param request: the request answered.
    @param status: the status code (100-699).
    @param reason: the reason phrase; the usual one when C{None}.
    @param to_tag: a tag to add to To when it has none (not for 100).
    @return: the response, with an empty body.
    @raise ValueError: for a status outside 100-699.
    """
    if not 100 <= status <= 699:
        raise ValueError(f"bad status code {status}")
    return _response_from(request.headers, status, reason, to_tag)


def _response_from(headers: Headers, status: int, reason: str | None,
                   to_tag: str | None) -> Response:
    out = Headers()
    for name, value in headers:
        key = header_key(name)
        if key == "to" and to_tag and status != 100:
            address = Address.parse(value)
            if address.tag is None:
                value = str(address.with_param("tag", to_tag))
        if key in ("via", "from", "to", "call-id", "cseq") or (key == "timestamp" and status == 100):
            out.add(name, value)
    return Response(headers=out, status=status, reason=reason or REASONS.get(status, "Unknown"))


def make_error_response(error: SIPParseError, agent: str, status: int = 400) -> Response | None:
    """
    Build the answer to a malformed request, with a Warning (code 399).

    @param error: the parse error.
    @param agent: the warn-agent, our host name or address.
    @param status: the status to answer with.
    @return: the response, or C{None} when not enough was parsed to answer
        (or the message was an ACK or a response).
    """
    if not error.partial.answerable():
        return None
    response = _response_from(error.partial.headers, status, None, None)
    text = error.reason.replace("\\", "\\\\").replace('"', '\\"')
    text = _SURROGATE_RE.sub("?", _BAD_CHARS_RE.sub(" ", text))
    response.headers.add("Warning", f'399 {agent} "{text}"')
    return response
