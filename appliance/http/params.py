# -*- test-case-name: tests.http.test_params -*-
"""
Pure request handling of the HTTP API: read the parameters of a send
request (query string, form or JSON), validate them, and say what is wrong
with stable error codes.  No Twisted, no ZODB.
"""
from __future__ import annotations

import json
import math
from typing import Any, Mapping, NamedTuple
from urllib.parse import quote, urlsplit

from appliance.sms.segment import GSM7_SINGLE_SEPTETS, encode_for_sms
from appliance.sms.text import UnencodableCharacter, gsm7_length, ucs2_length

#: The most recipients one request may name.
MAX_RECIPIENTS = 100
#: Error code to HTTP status (the stable codes of the API).
STATUSES = {
    "invalid_parameter": 400,
    "unauthorized": 401,
    "no_funds": 402,
    "sender_not_allowed": 403,
    "address_not_allowed": 403,
    "destination_not_allowed": 403,
    "forbidden": 403,
    "not_found": 404,
    "no_route": 404,
    "method_not_allowed": 405,
    "too_large": 413,
    "too_many_parts": 413,
    "unsupported_media_type": 415,
    "throttled": 429,
    "overloaded": 503,
    "queue_full": 503,
    "internal": 503,
}
CODINGS = ("auto", "gsm7", "ucs2")
DLR_LEVELS = ("final", "all")


class APIError(Exception):
    """
    A request the API refuses, with its stable code.

    @ivar code: a key of L{STATUSES}.
    @ivar reason: a sentence the tenant's user can be shown.
    @ivar param: the parameter at fault, if any.
    @ivar retry_after: seconds for C{Retry-After}, if any.
    """

    def __init__(self, code: str, reason: str, param: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason
        self.param, self.retry_after = param, retry_after

    @property
    def status(self) -> int:
        """The HTTP status of the code."""
        return STATUSES[self.code]

    def body(self) -> dict[str, Any]:
        """The JSON error object."""
        out: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.param is not None:
            out["parameter"] = self.param
        return out


def invalid(param: str, reason: str) -> APIError:
    """@return: a 400 naming C{param}."""
    return APIError("invalid_parameter", f"{param}: {reason}", param)


class SendRequest(NamedTuple):
    """
    A validated send request (a named tuple: made once per request, four
    times cheaper than a frozen dataclass of eleven fields).

    @ivar recipients: as given (each normalized on its own later).
    @ivar encoding: C{gsm7} or C{ucs2}.
    @ivar parts: SMS parts of the text.
    @ivar validity: seconds, or C{None} for the node's default.
    @ivar dlr_level: C{final} or C{all}.
    """
    sender: str
    recipients: tuple[str, ...]
    body: str
    encoding: str
    parts: int
    validity: int | None = None
    dlr_url: str | None = None
    dlr_level: str = "final"
    client_ref: str | None = None
    username: str | None = None
    password: str | None = None


def decode_args(args: Mapping[bytes, list[bytes]]) -> dict[str, list[str]]:
    """
    Twisted's C{request.args} as text.

    @raise APIError: for a name or value that is not UTF-8.
    """
    out: dict[str, list[str]] = {}
    try:
        for key, values in args.items():
            name = key.decode("utf-8")
            texts = [v.decode("utf-8") for v in values]
            if name in out:         # two raw names decoding alike
                out[name].extend(texts)
            else:
                out[name] = texts
    except UnicodeDecodeError:
        raise APIError("invalid_parameter",
                       "parameters must be UTF-8") from None
    return out


def json_args(body: bytes) -> dict[str, list[str]]:
    """
    A JSON object body as parameters: strings and numbers as one value,
    a list of them as repeated values.

    @raise APIError: not a JSON object of such values.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise APIError("invalid_parameter", "the body is not valid JSON") \
            from None
    if not isinstance(data, dict):
        raise APIError("invalid_parameter", "the body is not a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        items = value if isinstance(value, list) else [value]
        texts = []
        for item in items:
            if isinstance(item, bool) or item is None or \
                    isinstance(item, (dict, list)):
                raise invalid(key, "expected a string or a number")
            if isinstance(item, float) and not math.isfinite(item):
                raise invalid(key, "expected a finite number")
            texts.append(str(item))
        out[key] = texts
    return out


def one(params: Mapping[str, list[str]], name: str,
        required: bool = False) -> str | None:
    """
    The single value of a parameter.

    @raise APIError: missing when C{required}, or given more than once.
    """
    values = params.get(name)
    if not values:
        if required:
            raise invalid(name, "missing")
        return None
    if len(values) > 1:
        raise invalid(name, "given more than once")
    return values[0]


def split_recipients(values: list[str] | None,
                     separators: str = ",") -> tuple[str, ...]:
    """
    Recipients from one or more C{to} values, each possibly a list.

    @raise APIError: none, or more than L{MAX_RECIPIENTS}.
    """
    out: list[str] = []
    for value in values or ():
        text = value
        for sep in separators[1:]:
            text = text.replace(sep, separators[0])
        out.extend(p.strip() for p in text.split(separators[0])
                   if p.strip())
    if not out:
        raise invalid("to", "missing")
    if len(out) > MAX_RECIPIENTS:
        raise invalid("to", f"at most {MAX_RECIPIENTS} recipients")
    return tuple(dict.fromkeys(out))


def check_sender(text: str) -> str:
    """
    A sender: digits (read by the node's numbering plan when sent) or an
    alphanumeric name of 1 to 11 characters.

    @raise APIError: for anything else.
    """
    value = text.strip()
    if not value:
        raise invalid("from", "empty")
    digits = value[1:] if value.startswith("+") else value
    if digits.isascii() and digits.isdigit():
        if len(digits) > 17:
            raise invalid("from", "at most 15 digits")
        return value
    if len(value) > 11 or not value.isprintable() or not value.isascii():
        raise invalid("from", "a name is 1 to 11 printable ASCII characters")
    return value


def encode_body(body: str, coding: str, max_parts: int) -> tuple[str, int]:
    """
    Choose the alphabet and count the parts.

    @return: (C{gsm7} or C{ucs2}, parts).
    @raise APIError: a body that cannot be sent in C{coding}, or longer
        than C{max_parts} parts (C{too_many_parts}).
    """
    if coding not in CODINGS:
        raise invalid("coding", "one of auto, gsm7, ucs2")
    if not body:
        raise invalid("body", "empty")
    if coding != "ucs2":
        try:
            septets: int | None = gsm7_length(body)
        except UnencodableCharacter:
            septets = None
        if septets is None and coding == "gsm7":
            raise invalid("body", "has characters outside the GSM 7-bit "
                          "alphabet (use coding ucs2 or auto)")
        if septets is not None and septets <= GSM7_SINGLE_SEPTETS:
            return "gsm7", 1        # the common case, without encoding it
    try:
        if coding == "ucs2":
            units = ucs2_length(body)
            parts = 1 if units <= 70 else math.ceil(units / 67)
            encoding = "ucs2"
        else:
            encoded = encode_for_sms(body, 0)
            parts = encoded.parts
            encoding = "gsm7" if encoded.data_coding == 0 else "ucs2"
    except ValueError as e:
        raise APIError("too_many_parts", f"body: {e}", "body") from None
    if parts > max_parts:
        raise APIError("too_many_parts", f"the body needs {parts} SMS parts; "
                       f"at most {max_parts} are allowed", "body")
    return encoding, parts


def check_url(name: str, url: str) -> str:
    """@raise APIError: unless C{url} is an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # a bracket without an IPv6 address: "http://h]/"
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host \
            or len(url) > 2048:
        raise invalid(name, "an absolute http:// or https:// URL")
    return url


def check_validity(text: str | None, maximum: int) -> int | None:
    """@raise APIError: unless whole seconds between 60 and C{maximum}."""
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() \
            or not 60 <= int(text) <= maximum:
        raise invalid("validity", f"whole seconds, 60 to {maximum}")
    return int(text)


def parse_send(params: Mapping[str, list[str]], max_parts: int,
               max_validity: int) -> SendRequest:
    """
    Validate the parameters of C{/sendsms/send}.

    @raise APIError: naming the first parameter at fault.
    """
    known = {"from", "to", "body", "coding", "validity", "dlr-url",
             "dlr-level", "client-ref", "username", "password"}
    for name in params:
        if name not in known:
            raise invalid(name, "unknown parameter")
    sender = check_sender(one(params, "from", required=True))
    recipients = split_recipients(params.get("to"))
    body = one(params, "body", required=True)
    encoding, parts = encode_body(body, one(params, "coding") or "auto",
                                  max_parts)
    validity = check_validity(one(params, "validity"), max_validity)
    dlr_url = one(params, "dlr-url")
    if dlr_url is not None:
        check_url("dlr-url", dlr_url)
    level = one(params, "dlr-level") or "final"
    if level not in DLR_LEVELS:
        raise invalid("dlr-level", "final or all")
    ref = one(params, "client-ref")
    if ref is not None and (len(ref) > 64 or not ref.isprintable()):
        raise invalid("client-ref", "at most 64 printable characters")
    return SendRequest(sender, recipients, body, encoding, parts, validity,
                       dlr_url, level, ref, one(params, "username"),
                       one(params, "password"))


# -- Kannel ------------------------------------------------------------------

#: Kannel's dlr-mask bits: delivered, failed, buffered, SMSC accepted,
#: SMSC rejected.
KANNEL_DELIVERED, KANNEL_FAILED, KANNEL_BUFFERED = 1, 2, 4
KANNEL_SMSC_ACK, KANNEL_SMSC_NACK = 8, 16


def kannel_type(state: str) -> int:
    """The Kannel DLR type of one of our states."""
    return {"delivered": KANNEL_DELIVERED, "failed": KANNEL_FAILED,
            "expired": KANNEL_FAILED, "delivering": KANNEL_SMSC_ACK,
            "accepted": KANNEL_BUFFERED}.get(state, KANNEL_FAILED)


def kannel_dlr_url(template: str, dlr_type: int, receiver: str, sender: str,
                   when: float, text: str = "") -> str:
    """
    Kannel's escapes in a dlr-url: C{%d} the DLR type, C{%p} the receiver,
    C{%P} the sender, C{%T} the Unix time, C{%A} the report text, C{%%}.
    Unknown escapes are kept as written.
    """
    values = {"d": str(dlr_type), "p": quote(receiver, safe=""),
              "P": quote(sender, safe=""), "T": str(int(when)),
              "A": quote(text, safe=""), "%": "%"}
    out, i = [], 0
    while i < len(template):
        ch = template[i]
        if ch == "%" and i + 1 < len(template) and template[i + 1] in values:
            out.append(values[template[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# -- Jasmin ------------------------------------------------------------------

#: Jasmin's message_status of our final states.
JASMIN_STATUS = {"delivered": "DELIVRD", "failed": "UNDELIV",
                 "expired": "EXPIRED", "delivering": "ESME_ROK",
                 "accepted": "ESME_ROK"}
