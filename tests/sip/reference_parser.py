"""
The SIP parser as it was before the fast parse (issue 16 item 3), kept as
the oracle of the tests: L{reference_parse} reads every header line,
validates every Via, From, To and CSeq, and uses the character-by-character
splitters below.  The fast parser must accept everything this one accepts
and agree on what it read.
"""
from __future__ import annotations

import re

from appliance.sip.headers import Address, CSeq, HeaderError, Via, canonical_name, header_key
from appliance.sip.message import Headers, PartialMessage, Request, Response, SIPParseError
from appliance.sip.uri import URI, URIError

__all__ = ["reference_parse", "reference_split_list", "reference_split_outside_quotes"]

MAX_HEADER_BYTES = 64 * 1024
SIP_VERSION = "SIP/2.0"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_LINE_RE = re.compile(r"\r?\n")
_BAD_CHARS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE_RE = re.compile("[\udc80-\udcff]")
_REQUIRED = ("via", "from", "to", "call-id", "cseq")


def reference_split_list(value: str) -> list[str]:
    """The old comma splitter, one character at a time."""
    out: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    angle = 0
    for ch in value:
        if escaped:
            escaped = False
        elif quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle += 1
        elif ch == ">":
            angle = max(0, angle - 1)
        elif ch == "," and not angle:
            out.append("".join(buf).strip())
            buf = []
            continue
        buf.append(ch)
    if quoted or angle:
        raise HeaderError(f"unterminated quote or angle bracket in {value!r}")
    out.append("".join(buf).strip())
    return [v for v in out if v]


def reference_split_outside_quotes(text: str, sep: str) -> list[str]:
    """The old parameter splitter, one character at a time."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if quoted:
        raise URIError("unterminated quoted string")
    parts.append("".join(buf))
    return parts


def reference_parse(data: bytes, stream: bool = False) -> Request | Response:
    """The old L{appliance.sip.message.parse}."""
    partial = PartialMessage()
    if not isinstance(data, (bytes, bytearray)):
        raise SIPParseError("not bytes", partial)
    data = bytes(data)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    m = _HEADER_END_RE.search(data, start)
    if m is None:
        if len(data) - start > MAX_HEADER_BYTES:
            raise SIPParseError("headers too large", partial)
        raise SIPParseError("no end of headers", partial)
    head_end, body_start = m.start(), m.end()
    if head_end - start > MAX_HEADER_BYTES:
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


def _values(headers: Headers, key: str) -> list[str]:
    out: list[str] = []
    for name, value in headers:
        if header_key(name) == key:
            out.extend(reference_split_list(value) if key == "via" else [value])
    return out


def _check_required(message: Request | Response, partial: PartialMessage) -> str | None:
    headers = partial.headers
    for key in _REQUIRED:
        if key not in headers:
            return f"missing {canonical_name(key)}"
    try:
        for value in _values(headers, "via"):
            Via.parse(value)
        for key in ("from", "to"):
            values = _values(headers, key)
            if len(values) != 1:
                return f"more than one {canonical_name(key)}"
            Address.parse(values[0])
        cseqs = _values(headers, "cseq")
        if len(cseqs) != 1 or len(_values(headers, "call-id")) != 1:
            return "more than one CSeq or Call-ID"
        cseq = CSeq.parse(cseqs[0])
        if not _values(headers, "call-id")[0]:
            return "empty Call-ID"
        lengths = set(_values(headers, "content-length"))
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
    value = None
    for name, v in partial.headers:
        if header_key(name) == "content-length":
            value = v
            break
    if value is None:
        return b"" if stream else rest
    length = int(value)
    if len(rest) < length:
        raise SIPParseError("body shorter than Content-Length", partial)
    if stream and len(rest) > length:
        raise SIPParseError("body longer than Content-Length", partial)
    return rest[:length]
