"""
Shared pieces of the persistent model: validated, resettable settings.

A L{Setting} is a data descriptor on a persistent class. Reading it gives
the stored value or the class default; assigning validates (raising
L{ModelError}) and stores; C{del obj.name} (or C{obj.reset("name")})
returns it to the default by removing the stored value, so a changed
default in a later release applies to every object that never set it.
The shell's C{no ...} forms map to C{del}.

Values live in instance attributes named C{_<name>}, whose class-level
default is the setting's default (STYLE rule 15: no migration for new
settings).
"""
from __future__ import annotations

import ipaddress
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Iterator

from persistent import Persistent

from appliance.model.errors import ModelError

#: The longest object name.
MAX_NAME_LENGTH = 64

Validator = Callable[[Any], Any]


class Setting:
    """
    A validated, resettable attribute of a L{Configurable} object.

    @ivar default: the value when nothing was set.
    @ivar validate: called with the new value; returns the value to store
        or raises L{ModelError}.
    @ivar readonly: if true, only the owning root may change it (through
        L{Configurable._assign}); assignment and C{del} raise
        L{ModelError} naming the root method to use.
    """

    def __init__(self, default: Any, validate: Validator, *,
                 readonly: str | None = None, doc: str = "") -> None:
        """
        @param default: the default value (immutable).
        @param validate: the validator.
        @param readonly: if given, the hint shown when someone assigns
            directly, e.g. C{"use ApplianceRoot.set_carrier_tariff"}.
        @param doc: what the setting means.
        """
        self.default = default
        self.validate = validate
        self.readonly = readonly
        self.__doc__ = doc
        self.name = ""
        self.slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot = "_" + name
        setattr(owner, self.slot, self.default)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj, self.slot)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.readonly:
            raise ModelError(f"{self.name} cannot be set directly: {self.readonly}")
        setattr(obj, self.slot, self.validate(value))

    def __delete__(self, obj: Any) -> None:
        if self.readonly:
            raise ModelError(f"{self.name} cannot be reset directly: {self.readonly}")
        _unset(obj, self.slot)


def _unset(obj: Any, slot: str) -> None:
    try:
        delattr(obj, slot)
    except AttributeError:
        pass  # never set: already the default


class Configurable(Persistent):
    """
    Base of the named persistent model objects.

    @ivar name: the object's name (its key in the root's container).
    """

    name: str = ""

    def __init__(self, name: str) -> None:
        """
        @param name: see L{validate_name}.
        @raise ModelError: for an invalid name.
        """
        self.name = validate_name(name)

    @classmethod
    def settings(cls) -> list[str]:
        """
        @return: the names of this class's settings, in declaration order.
        """
        seen: list[str] = []
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                if isinstance(value, Setting) and key not in seen:
                    seen.append(key)
        return seen

    def reset(self, name: str) -> None:
        """
        Return a setting to its default (same as C{del obj.<name>}).

        @param name: the setting's name.
        @raise ModelError: if there is no such setting, or it is managed
            by the root.
        """
        if name not in self.settings():
            raise ModelError(f"{type(self).__name__.lower()} has no setting {name!r}")
        delattr(self, name)

    def changed_settings(self) -> Iterator[tuple[str, Any]]:
        """
        The settings whose value differs from the default, for C{show
        running-config}.

        @return: C{(name, value)} pairs in declaration order.
        """
        klass = type(self)
        for name in self.settings():
            value = getattr(self, name)
            if value != getattr(klass, name).default:
                yield name, value

    def _assign(self, name: str, value: Any) -> None:
        """
        Store an already validated value of a root-managed setting.

        @param name: the setting's name.
        @param value: the value; the class default resets it.
        """
        descriptor = getattr(type(self), name)
        if value == descriptor.default:
            _unset(self, descriptor.slot)
        else:
            setattr(self, descriptor.slot, value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


# -- validators ---------------------------------------------------------

def validate_name(name: Any) -> str:
    """
    Check an object name: non-empty, printable, at most 64 characters;
    spaces and C{&} are fine (C{Call & Chat}, C{John Doe}).

    @param name: the name; surrounding blanks are removed.
    @return: the stripped name.
    @raise ModelError: if it is not acceptable.
    """
    if not isinstance(name, str):
        raise ModelError("a name must be given as text")
    n = name.strip()
    if not n:
        raise ModelError("a name cannot be empty")
    if len(n) > MAX_NAME_LENGTH:
        raise ModelError(f"a name is at most {MAX_NAME_LENGTH} characters")
    if not n.isprintable():
        raise ModelError("a name may only hold printable characters")
    return n


def int_range(label: str, low: int, high: int) -> Validator:
    """
    @param label: what the number is, for the error sentence.
    @param low: the smallest value allowed.
    @param high: the largest value allowed.
    @return: a validator for integers (or decimal digit strings) in
        C{[low, high]}.
    """
    def validate(value: Any) -> int:
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ModelError(f"{label} must be a whole number")
        if not low <= value <= high:
            raise ModelError(f"{label} must be between {low} and {high}")
        return value
    return validate


def boolean(label: str) -> Validator:
    """
    @param label: what the flag is, for the error sentence.
    @return: a validator accepting C{True} and C{False} only.
    """
    def validate(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ModelError(f"{label} must be true or false")
        return value
    return validate


def choice(label: str, choices: tuple[str, ...], optional: bool = False) -> Validator:
    """
    @param label: what the value is, for the error sentence.
    @param choices: the allowed words.
    @param optional: whether C{None} is allowed too.
    @return: a validator accepting one of C{choices} (case-insensitive,
        returned lower-case).
    """
    def validate(value: Any) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ModelError(f"{label} must be one of: {', '.join(choices)}")
    return validate


def ascii_text(label: str, max_length: int, optional: bool = True) -> Validator:
    """
    @param label: what the text is, for the error sentence.
    @param max_length: the longest text allowed.
    @param optional: whether C{None} is allowed (meaning "not set").
    @return: a validator for printable ASCII text of 1 to C{max_length}
        characters, taken as given (no truncation, no stripping).
    """
    def validate(value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise ModelError(f"{label} must be non-empty text")
        if len(value) > max_length:
            raise ModelError(f"{label} is at most {max_length} characters")
        if not (value.isascii() and value.isprintable()):
            raise ModelError(f"{label} may only hold printable ASCII characters")
        return value
    return validate


def money(label: str) -> Callable[[Any], Decimal]:
    """
    @param label: what the amount is, for the error sentence.
    @return: a validator turning a C{Decimal}, an C{int} or a decimal
        string into a finite C{Decimal}. Floats are refused: they cannot
        hold prices such as 0.1 exactly.
    """
    def validate(value: Any) -> Decimal:
        if isinstance(value, bool) or isinstance(value, float):
            raise ModelError(f"{label} must be given as a decimal number, not a float")
        try:
            amount = Decimal(value.strip() if isinstance(value, str) else value)
        except (InvalidOperation, TypeError, ValueError):
            raise ModelError(f"{label} must be a decimal number") from None
        if not amount.is_finite():
            raise ModelError(f"{label} must be a finite number")
        return amount
    return validate


def network(text: Any) -> str:
    """
    Normalize an IPv4 or IPv6 network or address to CIDR text.

    @param text: e.g. C{10.1.2.3/24} (host bits are dropped) or C{2001:db8::1}.
    @return: e.g. C{10.1.2.0/24}, C{2001:db8::1/128}.
    @raise ModelError: if it is not a network.
    """
    if not isinstance(text, str):
        raise ModelError("a network must be given as text")
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ModelError(f"{text!r} is not an IP address or network") from None
