"""
SIP messages: parse bytes, build and serialize requests and responses, pure.

The body is C{bytes} and Content-Length counts bytes, so UTF-8 bodies (the
norm for SMS) survive byte-exact. L{parse} raises L{SIPParseError} whose
C{partial} keeps what could be read, so that L{make_error_response} can
still answer C{400 Bad Request} with a Warning.

L{parse} reads the start line and the headers every transaction needs
once (the top Via, From and To with their tags, Call-ID, CSeq,
Content-Length), keeps what it parsed on the message, and leaves every
other header as text, parsed on demand by the accessors (L{Message.vias},
L{Message.contacts}...), whose errors are L{HeaderError}s.  Well-formed
messages take a fast path (one scan for control characters, one split into
lines); anything unusual (folded lines, bare LF, bytes that are not UTF-8,
a missing or repeated header) goes through the line-by-line reader, which
says precisely what is wrong.  Responses copy the request's Via, From, To,
Call-ID and CSeq lines as they came (a To tag is appended, not re-rendered).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable
from appliance.sip.headermap import Headers
from appliance.sip.headers import Address, CSeq, HeaderError, Via, canonical_name, name_key
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
#: Header names as written that are tokens, to their key and spelling.
_GOOD_NAMES: dict[str, tuple[str, str]] = {}
#: The header lines a response copies from its request.
_ECHOED = frozenset(("via", "from", "to", "call-id", "cseq"))


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
    #: Parsed header values by key, each with the text it was parsed from
    #: (so a header changed since is parsed again).
    _parsed: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
        for key, name, value in self.headers._items:
            if key == "content-length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            lines.append(name + ": " + value)
        if not length_written:
            lines.append("Content-Length: " + str(len(self.body)))
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def _cached(self, key: str, value: str, parse: Callable[[str], Any]) -> Any:
        """The parsed C{value} of header C{key}, parsed once."""
        found = self._parsed.get(key)
        if found is not None and found[0] == value:
            return found[1]
        parsed = parse(value)
        self._parsed[key] = (value, parsed)
        return parsed

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
        return self._cached("via", value, Via.parse)

    def set_top_via(self, via: Via) -> None:
        """
        Replace the topmost Via, keeping the others.

        @param via: the new top Via.
        @raise HeaderError: if there is no Via or one does not split.
        """
        text = str(via)
        items = self.headers._items
        for i, item in enumerate(items):
            if item[0] == "via":
                if "," not in item[2] and '"' not in item[2]:
                    # One Via on the first Via line (the usual case):
                    # replace that line alone, without splitting the others.
                    items[i] = ("via", item[1], text)
                    self._parsed["via"] = (text, via)
                    return
                break
        values = self.headers.get_all("via")
        if not values:
            raise HeaderError("no Via")
        self.headers.set_all("via", [text, *values[1:]])
        self._parsed["via"] = (text, via)

    def _address(self, name: str) -> Address:
        value = self.headers.get(name)
        if value is None:
            raise HeaderError(f"no {canonical_name(name)}")
        return self._cached(name, value, Address.parse)

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
        return self._cached("cseq", value, CSeq.parse)

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
    if not isinstance(data, (bytes, bytearray)):
        raise SIPParseError("not bytes", PartialMessage())
    data = bytes(data)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    head_end = data.find(b"\r\n\r\n", start)
    if head_end < 0 or head_end - start > max_header_bytes:
        return _parse_full(data, stream, max_header_bytes)
    try:
        text = data[start:head_end].decode("utf-8")
    except UnicodeDecodeError:
        return _parse_full(data, stream, max_header_bytes)
    lines = text.split("\r\n")
    if not "".join(lines).isprintable():
        # a control character, a lone CR or LF, a tab: read line by line
        return _parse_full(data, stream, max_header_bytes)
    partial = PartialMessage()
    message = _start_line(lines[0], partial, checked=True)
    items = []
    counts = {"from": 0, "to": 0, "call-id": 0, "cseq": 0}
    found: dict[str, str] = {}
    lengths: list[str] = []
    for i in range(1, len(lines)):
        line = lines[i]
        name, colon, value = line.partition(":")
        if not colon:
            return _parse_full(data, stream, max_header_bytes)
        known = _GOOD_NAMES.get(name)
        if known is None:
            if line[:1] in (" ", "\t"):
                return _parse_full(data, stream, max_header_bytes)  # folded
            spelled = name.rstrip(" \t")
            if not _TOKEN_RE.match(spelled):
                return _parse_full(data, stream, max_header_bytes)
            known = name_key(spelled)
            if len(_GOOD_NAMES) < 4096:      # bounded: names come from the network
                _GOOD_NAMES[name] = known
        key = known[0]
        value = value.strip()
        items.append((key, known[1], value))
        if key in counts:
            counts[key] += 1
            found[key] = value
        elif key == "via":
            if "via" not in found:
                found["via"] = value
        elif key == "content-length":
            lengths.append(value)
    if (0 in counts.values() or "via" not in found or not found["call-id"]
            or max(counts.values()) > 1 or not found["via"]):
        return _parse_full(data, stream, max_header_bytes)
    parsed = message._parsed
    try:
        via = found["via"]
        if "," in via or '"' in via:
            return _parse_full(data, stream, max_header_bytes)
        parsed["via"] = (via, Via.parse(via))
        for key in ("from", "to", "cseq"):
            value = found[key]
            parsed[key] = (value, (CSeq.parse if key == "cseq" else Address.parse)(value))
    except (HeaderError, URIError):
        return _parse_full(data, stream, max_header_bytes)
    if isinstance(message, Request) and parsed["cseq"][1].method != message.method:
        return _parse_full(data, stream, max_header_bytes)
    length = None
    if lengths:
        length = lengths[0]
        for value in lengths:
            if not value.isascii() or not value.isdigit() or len(value) > 9 or \
                    int(value) != int(length):
                return _parse_full(data, stream, max_header_bytes)
        length = int(length)
    headers = Headers()
    headers._items = items
    message.headers = headers
    rest = data[head_end + 4:]
    if length is None:
        message.body = b"" if stream else rest
    elif len(rest) < length or (stream and len(rest) > length):
        return _parse_full(data, stream, max_header_bytes)
    else:
        message.body = rest[:length] if len(rest) > length else rest
    return message


def _parse_full(data: bytes, stream: bool, max_header_bytes: int) -> Request | Response:
    """
    Parse line by line, reading on past bad lines so that an error says
    what is wrong and L{SIPParseError.partial} holds what could be read.
    """
    partial = PartialMessage()
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


def _start_line(line: str, partial: PartialMessage, checked: bool = False) -> Request | Response:
    parts = line.split(" ", 2)
    if len(parts) != 3 or (not checked and _BAD_CHARS_RE.search(line)):
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
        vias = headers.get_all("via")
        if vias:
            Via.parse(vias[0])  # the others are parsed when asked for
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
    return _response_from(request.headers, status, reason, to_tag, request)


def _response_from(headers: Headers, status: int, reason: str | None,
                   to_tag: str | None, request: Request | None = None) -> Response:
    """
    The response with the request's Via, From, To, Call-ID and CSeq lines
    copied as they are (and Timestamp for a 100); a To tag is appended.
    """
    items = []
    for item in headers._items:
        key = item[0]
        if key in _ECHOED:
            if key == "to" and to_tag and status != 100:
                item = _tagged(item, to_tag, request)
            items.append(item)
        elif key == "timestamp" and status == 100:
            items.append(item)
    out = Headers()
    out._items = items
    return Response(headers=out, status=status, reason=reason or REASONS.get(status, "Unknown"))


def _tagged(item: tuple[str, str, str], tag: str, request: Request | None) -> tuple[str, str, str]:
    """A To line with C{tag} added unless it has one."""
    key, name, value = item
    if request is not None:
        address = request._cached("to", value, Address.parse)
    else:
        address = Address.parse(value)
    current = address.param("tag")
    if current:
        return item
    if current is None:
        return key, name, value + ";tag=" + tag
    return key, name, str(address.with_param("tag", tag))  # an empty tag= replaced


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
