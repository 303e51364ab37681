"""
SIP header names and parsed header values (RFC 3261 sections 7.3, 20), pure.

Header names are matched case-insensitively and compact forms are expanded
(L{header_key}); L{canonical_name} gives the spelling we write. Values that
carry structure are parsed by L{Address} (From, To, Contact, Route...),
L{Via} and L{CSeq}; each raises L{HeaderError} (a C{ValueError}) on bad
input.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from appliance.sip.uri import URI, URIError, Params, format_params, parse_hostport, parse_params

__all__ = [
    "Address", "CSeq", "HeaderError", "Via", "canonical_name", "header_key",
    "is_list_header", "name_key", "split_list",
]

#: Values parsed, by their text (L{Address}, L{CSeq} and L{Via} are
#: immutable, and the same To, CSeq and Contact values come again and
#: again).  Bounded in entries and in the length of the texts kept.
_CACHE_SIZE = 4096
_CACHE_TEXT = 200


def _cached(cache: dict, text: str, parse):  # type: ignore[no-untyped-def]
    value = cache.get(text)
    if value is None:
        value = parse(text)
        if len(text) <= _CACHE_TEXT:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            cache[text] = value
    return value


_ADDRESSES: dict = {}
_CSEQS: dict = {}

COMPACT = {
    "a": "accept-contact", "b": "referred-by", "c": "content-type",
    "d": "request-disposition", "e": "content-encoding", "f": "from",
    "i": "call-id", "j": "reject-contact", "k": "supported",
    "l": "content-length", "m": "contact", "n": "identity-info",
    "o": "event", "r": "refer-to", "s": "subject", "t": "to",
    "u": "allow-events", "v": "via", "x": "session-expires", "y": "identity",
}

_CANONICAL = {n.lower(): n for n in (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info",
    "Allow", "Allow-Events", "Authentication-Info", "Authorization", "Call-ID",
    "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Diversion", "Error-Info", "Event", "Expires", "From", "Identity",
    "Identity-Info", "In-Reply-To", "Max-Forwards", "MIME-Version", "Min-Expires",
    "Min-SE", "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path",
    "Priority", "Privacy", "Proxy-Authenticate", "Proxy-Authorization",
    "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
    "Reject-Contact", "Reply-To", "Request-Disposition", "Require", "Retry-After",
    "Route", "RSeq", "Server", "Service-Route", "Session-Expires", "Subject",
    "Subscription-State", "Supported", "Timestamp", "To", "Unsupported",
    "User-Agent", "Via", "Warning", "WWW-Authenticate",
)}

_LIST_HEADERS = frozenset((
    "accept", "accept-contact", "accept-encoding", "accept-language", "alert-info",
    "allow", "allow-events", "call-info", "contact", "content-encoding",
    "content-language", "diversion", "error-info", "in-reply-to",
    "p-asserted-identity", "path", "proxy-require", "reason", "record-route",
    "reject-contact", "require", "route", "service-route", "supported",
    "unsupported", "via", "warning",
))

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(f"^{_TOKEN}$")
_VIA_RE = re.compile(
    rf"^\s*({_TOKEN})\s*/\s*({_TOKEN})\s*/\s*({_TOKEN})\s+([^;\s]+(?:\s*:\s*\d+)?)\s*(?:;(.*))?$",
    re.S | re.A,
)
#: The common Via, which the general pattern below reads the same way:
#: C{SIP/2.0/UDP host[:port]} and parameters without spaces or quotes.
_VIA_FAST_RE = re.compile(
    r"SIP/2\.0/([A-Za-z]+) ([A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?)(?::([0-9]{1,5}))?"
    r"((?:;[A-Za-z0-9\-.!%*_+`'~\[\]/:&$]+(?:=[^;\" \t<>,]+)?)*)\Z")
_CSEQ_RE = re.compile(rf"^\s*(\d{{1,10}})\s+({_TOKEN})\s*$", re.A)


class HeaderError(ValueError):
    """
    A header value that cannot be parsed.
    """


#: Header names seen, to their keys: names repeat on every message.
_KEYS: dict[str, str] = {}


def header_key(name: str) -> str:
    """
    The lookup key of a header name: lower case, compact form expanded.

    @param name: the name as written (C{"i"}, C{"CALL-ID"}...).
    @return: the key (C{"call-id"}).
    """
    key = _KEYS.get(name)
    if key is None:
        key = name.strip().lower()
        key = COMPACT.get(key, key)
        if len(_KEYS) < 4096:       # bounded: names come from the network
            _KEYS[name] = key
    return key


def canonical_name(name: str) -> str:
    """
    The spelling we write for a header name.

    @param name: any spelling or compact form.
    @return: the canonical form for known headers, else C{name} unchanged.
    """
    return _CANONICAL.get(header_key(name), name.strip())


#: Header names seen, to their key and canonical spelling.
_NAMES: dict[str, tuple[str, str]] = {}


def name_key(name: str) -> tuple[str, str]:
    """
    L{header_key} and L{canonical_name} in one lookup (names repeat on
    every message).

    @param name: the name as written.
    @return: C{(key, canonical spelling)}.
    """
    found = _NAMES.get(name)
    if found is None:
        key = header_key(name)
        found = (key, _CANONICAL.get(key, name.strip()))
        if len(_NAMES) < 4096:      # bounded: names come from the network
            _NAMES[name] = found
    return found


def is_list_header(name: str) -> bool:
    """
    @param name: a header name (any spelling).
    @return: whether the header allows a comma-separated list of values.
    """
    return header_key(name) in _LIST_HEADERS


def split_list(value: str) -> list[str]:
    """
    Split a header value on commas outside quotes and angle brackets.

    @param value: the header value.
    @return: the stripped, non-empty elements.
    @raise HeaderError: for an unterminated quote or angle bracket.
    """
    if '"' not in value and "<" not in value:
        # Nothing quoted or bracketed (most Via and Supported values): a
        # plain split, in C.  A stray ">" changes nothing in the slow path.
        if "," not in value:
            value = value.strip()
            return [value] if value else []
        return [v for v in (p.strip() for p in value.split(",")) if v]
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


def _lookup(params: Params, name: str) -> str | None:
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return "" if v is None else v
    return None


def _set_param(params: Params, name: str, value: str | None) -> Params:
    lname = name.lower()
    out = []
    done = False
    for n, v in params:
        if n.lower() == lname:
            if not done:
                out.append((name, value))
                done = True
        else:
            out.append((n, v))
    if not done:
        out.append((name, value))
    return tuple(out)


def _params(text: str) -> Params:
    try:
        return parse_params(text, "header parameter")
    except URIError as e:
        raise HeaderError(str(e)) from None


def _unquote(text: str) -> str:
    """
    Remove the quotes and backslash escapes of a quoted string.
    """
    out: list[str] = []
    escaped = False
    for ch in text[1:-1]:
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _closing_quote(text: str) -> int:
    """
    Index of the quote closing the quoted string that starts at 0, or -1.
    """
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


class _Parameters:
    """
    Header parameters (C{;name=value}) of a frozen dataclass with a
    C{params} tuple: read one, or copy with one set.
    """

    params: tuple

    def param(self, name: str) -> str | None:
        """
        @param name: a parameter name (case-insensitive).
        @return: its value, C{""} for a flag, C{None} when absent.
        """
        return _lookup(self.params, name)

    def with_param(self, name: str, value: str | None):
        """
        @param name: the parameter to set or replace.
        @param value: its value, C{None} for a flag.
        @return: a copy with the parameter set.
        """
        return replace(self, params=_set_param(self.params, name, value))


@dataclass(frozen=True)
class Address(_Parameters):
    """
    A name-addr or addr-spec with header parameters (From, To, Contact...).

    @ivar display_name: the display name, unquoted and unescaped ("" if none).
    @ivar uri: the address.
    @ivar params: the header parameters (C{tag}, C{expires}...), in order.
    """

    display_name: str
    uri: URI
    params: Params = field(default=())

    @classmethod
    def parse(cls, text: str) -> Address:
        """
        Parse one address value.

        @param text: e.g. C{'"Bob \\"B\\"" <sip:bob@example.com>;tag=1'}.
        @return: the address.
        @raise HeaderError: if it cannot be parsed.
        """
        if cls is Address and isinstance(text, str):
            return _cached(_ADDRESSES, text, cls._parse)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> Address:
        text = text.strip()
        display = ""
        if text.startswith('"'):
            end = _closing_quote(text)
            if end < 0:
                raise HeaderError("unterminated display name")
            display = _unquote(text[: end + 1])
            rest = text[end + 1 :].lstrip()
            if not rest.startswith("<"):
                raise HeaderError("quoted display name without <URI>")
        elif "<" in text:
            idx = text.index("<")
            display = " ".join(text[:idx].split())
            rest = text[idx:]
        else:
            uri_text, semi, ptext = text.partition(";")
            try:
                uri = URI.parse(uri_text)
            except URIError as e:
                raise HeaderError(str(e)) from None
            return cls("", uri, _params(ptext) if semi else ())
        end = rest.find(">")
        if end < 0:
            raise HeaderError("unterminated <URI>")
        try:
            uri = URI.parse(rest[1:end])
        except URIError as e:
            raise HeaderError(str(e)) from None
        tail = rest[end + 1 :].strip()
        if tail and not tail.startswith(";"):
            raise HeaderError(f"junk after address: {tail!r}")
        return cls(display, uri, _params(tail[1:]) if tail else ())

    @property
    def tag(self) -> str | None:
        """The C{tag} parameter, or C{None}."""
        return self.param("tag") or None

    @property
    def expires(self) -> int | None:
        """
        The C{expires} parameter as an integer, or C{None}.

        @raise HeaderError: when present but not a non-negative integer.
        """
        value = self.param("expires")
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 10:
            raise HeaderError(f"bad expires parameter {value!r}")
        return int(value)

    @property
    def instance(self) -> str | None:
        """The C{+sip.instance} parameter without its quotes, or C{None}."""
        value = self.param("+sip.instance")
        if value and value.startswith('"'):
            return _unquote(value)
        return value or None

    @property
    def reg_id(self) -> int | None:
        """
        The C{reg-id} parameter (RFC 5626), or C{None}.

        @raise HeaderError: when present but not an integer.
        """
        value = self.param("reg-id")
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 10:
            raise HeaderError(f"bad reg-id parameter {value!r}")
        return int(value)

    def __str__(self) -> str:
        name = _quote(self.display_name) + " " if self.display_name else ""
        return f"{name}<{self.uri}>{format_params(self.params)}"


@dataclass(frozen=True)
class Via(_Parameters):
    """
    One Via value.

    @ivar protocol: C{"SIP/2.0"}.
    @ivar transport: C{"UDP"}, C{"TCP"}, C{"TLS"}... (upper case).
    @ivar host: the sent-by host (IPv6 keeps its brackets).
    @ivar port: the sent-by port, or C{None}.
    @ivar params: C{branch}, C{received}, C{rport}... in order.
    """

    protocol: str
    transport: str
    host: str
    port: int | None = None
    params: Params = field(default=())

    @classmethod
    def parse(cls, text: str) -> Via:
        """
        Parse one Via value.

        @param text: e.g. C{"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport"}.
        @return: the Via.
        @raise HeaderError: if it cannot be parsed.
        """
        m = _VIA_FAST_RE.match(text)
        if m is not None:
            transport, host, port, ptext = m.groups()
            if port is None or int(port) <= 65535:
                params: Params = ()
                if ptext:
                    params = tuple([(n, v if eq else None) for n, eq, v in
                                    [p.partition("=") for p in ptext[1:].split(";")]])
                via = cls("SIP/2.0", transport.upper(), host,
                          int(port) if port is not None else None, params)
                via.rport  # validates
                return via
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> Via:
        """Any Via: spaces, IPv6 references, quoted parameters..."""
        m = _VIA_RE.match(text)
        if not m:
            raise HeaderError(f"bad Via {text!r}")
        name, version, transport, sent_by, ptext = m.groups()
        try:
            host, port = parse_hostport("".join(sent_by.split()))
        except URIError as e:
            raise HeaderError(str(e)) from None
        params = _params(ptext) if ptext is not None else ()
        via = cls(f"{name.upper()}/{version}", transport.upper(), host, port, params)
        via.rport  # validates
        return via

    def stamped(self, received: str, rport: int | None) -> Via:
        """
        A copy with C{received} set, and C{rport} filled in when given
        (RFC 3261 18.2.1, RFC 3581); each replaces the first parameter of
        its name, or is appended.

        @param received: the source host of the request.
        @param rport: its source port, or C{None} to leave C{rport} alone.
        @return: the new Via.
        """
        params = []
        has_received = has_rport = False
        for name, value in self.params:
            lname = name.lower()
            if lname == "received":
                if not has_received:
                    params.append(("received", received))
                    has_received = True
            elif lname == "rport" and rport is not None:
                if not has_rport:
                    params.append(("rport", str(rport)))
                    has_rport = True
            else:
                params.append((name, value))
        if not has_received:
            params.append(("received", received))
        if rport is not None and not has_rport:
            params.append(("rport", str(rport)))
        return Via(self.protocol, self.transport, self.host, self.port, tuple(params))

    @property
    def branch(self) -> str | None:
        """The branch parameter, or C{None}."""
        return self.param("branch") or None

    @property
    def received(self) -> str | None:
        """The received parameter, or C{None}."""
        return self.param("received") or None

    @property
    def has_rport(self) -> bool:
        """Whether an C{rport} parameter (flag or value) is present."""
        return self.param("rport") is not None

    @property
    def rport(self) -> int | None:
        """
        The rport value, or C{None} when absent or a bare flag.

        @raise HeaderError: for a value that is not a port number.
        """
        value = self.param("rport")
        if not value:
            return None
        if not value.isascii() or not value.isdigit() or len(value) > 5 or int(value) > 65535:
            raise HeaderError(f"bad rport {value!r}")
        return int(value)

    @property
    def sent_by(self) -> tuple[str, int]:
        """
        The sent-by host (lower case, no brackets) and port (default 5060,
        5061 for TLS), as used in transaction keys.
        """
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        default = 5061 if self.transport == "TLS" else 5060
        return host.lower(), self.port if self.port is not None else default

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"


@dataclass(frozen=True)
class CSeq:
    """
    A CSeq value.

    @ivar number: the sequence number (below 2**31).
    @ivar method: the method (case-sensitive, as RFC 3261 says).
    """

    number: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """
        @param text: e.g. C{"314159 REGISTER"}.
        @return: the CSeq.
        @raise HeaderError: if it cannot be parsed or the number is too big.
        """
        if cls is CSeq and isinstance(text, str):
            return _cached(_CSEQS, text, cls._parse)
        return cls._parse(text)

    @classmethod
    def _parse(cls, text: str) -> CSeq:
        m = _CSEQ_RE.match(text)
        if not m:
            raise HeaderError(f"bad CSeq {text!r}")
        number = int(m.group(1))
        if number >= 2**31:
            raise HeaderError(f"CSeq number too large: {number}")
        return cls(number, m.group(2))

    def __str__(self) -> str:
        return f"{self.number} {self.method}"
