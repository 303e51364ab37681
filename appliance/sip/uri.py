"""
SIP and tel URIs (RFC 3261 section 19.1, RFC 3966), pure.

L{URI.parse} accepts C{sip:}, C{sips:} and C{tel:} URIs and raises
L{URIError} (a C{ValueError}) on anything else; C{str()} writes one back.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

__all__ = ["URI", "URIError", "parse_params", "format_params", "parse_hostport"]

_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?$")
_IPV6_RE = re.compile(r"^\[[0-9A-Fa-f:.]+\]$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~\[\]/:&$]+$")
_TEL_RE = re.compile(r"^[+]?[0-9A-Fa-f*#().\-]+$")
_BAD_VALUE_RE = re.compile(r'[ \t"<>,]')
_USER_BAD_RE = re.compile(r'[ \t\r\n<>"@]')

#: Parsed URIs by their text: the same Request-URIs, From and To URIs
#: come again and again, and a L{URI} is immutable.  Bounded: texts come
#: from the network.
_CACHE: dict[str, "URI"] = {}
_CACHE_SIZE = 4096
_CACHE_TEXT = 200

Params = tuple[tuple[str, "str | None"], ...]


class URIError(ValueError):
    """
    A URI that cannot be parsed.
    """


def parse_params(text: str, what: str = "parameter") -> Params:
    """
    Parse C{;name=value;flag} parameters (without the leading C{;}).

    Names keep their spelling; values may be quoted strings.

    @param text: the text after the first C{;}.
    @param what: the noun used in error messages.
    @return: a tuple of C{(name, value-or-None)} pairs in order.
    @raise URIError: for an empty or malformed parameter.
    """
    out: list[tuple[str, str | None]] = []
    for part in _split_outside_quotes(text, ";"):
        part = part.strip()
        if not part:
            raise URIError(f"empty {what}")
        name, eq, value = part.partition("=")
        name = name.strip()
        if not name or not _TOKEN_RE.match(name):
            raise URIError(f"bad {what} name {name!r}")
        if eq:
            value = value.strip()
            if value.startswith('"'):
                if len(value) < 2 or not value.endswith('"'):
                    raise URIError(f"unterminated quoted {what} {name!r}")
            elif not value or _BAD_VALUE_RE.search(value):
                raise URIError(f"bad {what} value for {name!r}")
            out.append((name, value))
        else:
            out.append((name, None))
    return tuple(out)


def format_params(params: Params) -> str:
    """
    Write parameters back as C{;name=value} text.

    @param params: pairs as returned by L{parse_params}.
    @return: the text, empty for no parameters.
    """
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    """
    Split C{text} on C{sep} outside double-quoted strings.
    """
    if '"' not in text:
        return text.split(sep)  # nothing quoted: the common case, in C
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


def _param_lookup(params: Params, name: str) -> str | None:
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return "" if v is None else v
    return None


@dataclass(frozen=True)
class URI:
    """
    A parsed C{sip:}, C{sips:} or C{tel:} URI.

    @ivar scheme: C{"sip"}, C{"sips"} or C{"tel"} (lower case).
    @ivar user: the user part (for C{tel:}, the number), or C{None}.
    @ivar password: the password after C{user:}, or C{None}.
    @ivar host: the host; an IPv6 address keeps its brackets; empty for tel.
    @ivar port: the port, or C{None} when absent.
    @ivar params: URI parameters in order, C{(name, value-or-None)}.
    @ivar headers: URI headers (after C{?}) in order, C{(name, value)}.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default=())
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> URI:
        """
        Parse a URI.

        @param text: the URI text, without angle brackets.
        @return: the URI.
        @raise URIError: if it is not a valid sip, sips or tel URI.
        """
        if not isinstance(text, str):
            raise URIError("URI must be text")
        uri = _CACHE.get(text)
        if uri is not None:
            return uri
        uri = cls._parse(text.strip())
        if len(text) <= _CACHE_TEXT and cls is URI:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.clear()
            _CACHE[text] = uri
        return uri

    @classmethod
    def _parse(cls, text: str) -> URI:
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not rest:
            raise URIError(f"not a URI: {text!r}")
        if scheme == "tel":
            return cls._parse_tel(rest)
        if scheme not in ("sip", "sips"):
            raise URIError(f"unsupported URI scheme {scheme!r}")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.partition("@")
            if "@" in rest:
                raise URIError("more than one '@' in URI")
            user, pcolon, pw = userinfo.partition(":")
            if pcolon:
                password = pw
            if not user or _USER_BAD_RE.search(userinfo):
                raise URIError(f"bad user part {userinfo!r}")
        rest, qmark, hdrs = rest.partition("?")
        hostport, semi, ptext = rest.partition(";")
        host, port = parse_hostport(hostport)
        params = parse_params(ptext, "URI parameter") if semi else ()
        headers: list[tuple[str, str]] = []
        if qmark:
            for item in hdrs.split("&"):
                hname, eq, hvalue = item.partition("=")
                if not hname or not eq or _USER_BAD_RE.search(item):
                    raise URIError(f"bad URI header {item!r}")
                headers.append((hname, hvalue))
        return cls(scheme, user, password, host, port, params, tuple(headers))

    @classmethod
    def _parse_tel(cls, rest: str) -> URI:
        number, semi, ptext = rest.partition(";")
        if not number or not _TEL_RE.match(number):
            raise URIError(f"bad telephone number {number!r}")
        params = parse_params(ptext, "tel parameter") if semi else ()
        return cls("tel", user=number, params=params)

    def param(self, name: str) -> str | None:
        """
        Look a URI parameter up, ignoring case of its name.

        @param name: the parameter name.
        @return: its value, C{""} for a flag, C{None} when absent.
        """
        return _param_lookup(self.params, name)

    def with_params(self, **changes: str | None) -> URI:
        """
        Return a copy with parameters set (C{None} value means a flag).

        @param changes: the parameters to set or replace.
        @return: the new URI.
        """
        params = [p for p in self.params if p[0].lower() not in {k.lower() for k in changes}]
        params.extend(changes.items())
        return replace(self, params=tuple(params))

    @property
    def host_port(self) -> tuple[str, int | None]:
        """
        The host without IPv6 brackets and the port (C{None} if absent).
        """
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return host, self.port

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(out)


def parse_hostport(text: str) -> tuple[str, int | None]:
    """
    Parse C{host[:port]} where host may be a bracketed IPv6 reference.

    @raise URIError: for a bad host or port.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise URIError(f"unterminated IPv6 reference {text!r}")
        host, rest = text[: end + 1], text[end + 1 :]
        if not _IPV6_RE.match(host) or ":" not in host:
            raise URIError(f"bad IPv6 reference {host!r}")
        if rest and not rest.startswith(":"):
            raise URIError(f"junk after IPv6 reference {text!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text = text.partition(":")
        if not colon:
            port_text = None
        if not _HOST_RE.match(host):
            raise URIError(f"bad host {host!r}")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
            raise URIError(f"bad port {port_text!r}")
        port = int(port_text)
        if port > 65535:
            raise URIError(f"port out of range {port}")
    return host, port
