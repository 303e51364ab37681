"""
Argument types of the shell grammar (pure): how a word becomes a typed
value (E.164 number, pattern, IP network, Decimal, host, currency...), and
which object names complete it.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable


class ArgumentError(ValueError):
    """
    A token that is not a valid value of an argument type.
    """


# Argument types ----------------------------------------------------------

@dataclass(frozen=True)
class ArgumentType:
    """
    A kind of argument value.

    @ivar name: the placeholder shown in help (C{NAME}, C{NUMBER}).
    @ivar description: what it is, for error messages.
    @ivar convert: text to value; raises L{ArgumentError}.
    @ivar complete: the kind of object whose names complete it (a key
        passed to the completion callback), or C{None}.
    @ivar render: value back to text.
    """
    name: str
    description: str
    convert: Callable[[str], Any]
    complete: str | None = None
    render: Callable[[Any], str] = str


def _name(text: str) -> str:
    if not text or not text.strip():
        raise ArgumentError("empty name")
    if len(text) > 64:
        raise ArgumentError("longer than 64 characters")
    if any(ord(c) < 32 for c in text):
        raise ArgumentError("control characters")
    return text


def _number(text: str) -> str:
    digits = text[1:] if text.startswith("+") else text
    if not digits.isdigit() or not digits.isascii() or not 1 <= len(digits) <= 15:
        raise ArgumentError("expected 1 to 15 digits (E.164)")
    return digits


def _pattern(text: str) -> str:
    if not re.fullmatch(r"[0-9%_]+", text):
        raise ArgumentError("digits with % (any suffix) or _ (one digit)")
    return text


def _prefix(text: str) -> str:
    digits = text[1:] if text.startswith("+") else text
    if not digits.isdigit() or not digits.isascii() or len(digits) > 15:
        raise ArgumentError("expected up to 15 digits")
    return digits


def _network(text: str):
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as e:
        raise ArgumentError(str(e)) from None


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ArgumentError("not a number") from None
    if not value.is_finite() or value < 0:
        raise ArgumentError("must be a finite number >= 0")
    return value


_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def _host(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    if not _HOST.match(text):
        raise ArgumentError("expected a host name or IP address")
    return text


def _currency(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{3}", text):
        raise ArgumentError("expected a 3-letter ISO 4217 code")
    return text.upper()


def _hex(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{8,128}", text):
        raise ArgumentError("expected a hexadecimal digest")
    return text.lower()


def _word(text: str) -> str:
    if not text or any(c.isspace() or ord(c) < 32 for c in text):
        raise ArgumentError("expected one word")
    return text


ARGUMENT_TYPES: dict[str, ArgumentType] = {}


def register_type(argtype: ArgumentType) -> ArgumentType:
    """
    Make an argument type usable in spec strings under its name.

    @param argtype: the type.
    @return: the same type.
    """
    ARGUMENT_TYPES[argtype.name] = argtype
    return argtype


for _t in [
    ArgumentType("NAME", "name", _name),
    ArgumentType("WORD", "word", _word),
    ArgumentType("PASSWORD", "password", _word),
    ArgumentType("NUMBER", "E.164 number", _number),
    ArgumentType("PREFIX", "number prefix", _prefix),
    ArgumentType("PATTERN", "number pattern", _pattern),
    ArgumentType("NETWORK", "IP network", _network),
    ArgumentType("DECIMAL", "decimal number", _decimal),
    ArgumentType("HOST", "host", _host),
    ArgumentType("CURRENCY", "currency", _currency),
    ArgumentType("HEX", "hex digest", _hex),
]:
    register_type(_t)

for _kind, _desc in [("PRODUCT", "products"), ("CUSTOMER", "customers"),
                     ("ACCOUNT", "accounts"), ("DID", "dids"),
                     ("CARRIER", "carriers"), ("TARIFF", "tariffs"),
                     ("CONNECTION", "connections"),
                     ("POLICY", "policies"), ("OPERATOR", "operators")]:
    register_type(ArgumentType(
        _kind, _kind.lower() + " name",
        _number if _kind == "DID" else _word if _kind == "ACCOUNT" else _name,
        complete=_desc))
