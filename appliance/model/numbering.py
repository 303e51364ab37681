# -*- test-case-name: tests.model.test_numbering -*-
"""
The numbering plan: how numbers as carriers and apps write them become
the one E.164 form that DIDs, tariffs, service policies and billing
records use, and how an E.164 number is written back for a vendor.

The pure part is L{Plan} (an immutable snapshot), L{normalize} (a number
with its SMPP type of number and numbering plan indicator, read by a
plan) and L{outbound_address} (an E.164 number in the form a
connection's plan asks for).  The persistent part is L{NumberingPlan}
(the node's plan, C{root["appliance"].numbering}) and L{PlanOverrides}
(the per-carrier and per-connection overrides, mixed into
L{appliance.model.carriers.Carrier} and C{Connection}); L{plan_for} takes
the snapshot a protocol normalizes with.

How each type of number (SMPP 3.4 section 5.2.5) is read:

  - C{1} international: the digits (a C{+} or the international prefix
    written in front anyway is dropped).
  - C{2} national: the trunk (national) prefix is dropped if present and
    the country code put in front.
  - C{4} subscriber: as national, with the plan's area code (national
    destination code) between the country code and the digits when the
    plan has one.
  - C{5} alphanumeric: kept as a name (C{AsiaCell}), never a number.
  - C{6} abbreviated: a short code, kept as a name too (L{Alphanumeric}
    with C{short}): it never becomes E.164, so it never matches a DID, a
    tariff prefix or a policy pattern by accident.  Protocols resolve a
    name recipient to the account of that username (and then its DID).
  - C{0} unknown, C{3} network specific and any other value: by the
    form: C{+...} and the international prefix (C{00...}) are
    international, the trunk prefix (C{0...}) national, anything not
    digits a name, and bare digits as the plan's C{unknown_digits} says
    (C{international}, the default: digits already E.164 without C{+};
    C{national}; or C{subscriber}).

The numbering plan indicator is not needed to read a number: a digit
string with NPI 0, 1 (ISDN/E.164) or another value is read by its TON.
A plan without a country code cannot make national numbers
international: they are kept as their digits (the behaviour of a node
that was never given a plan).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from appliance.model.base import Configurable, Setting, choice
from appliance.model.errors import ModelError
from appliance.model.numbers import MAX_E164_DIGITS

#: SMPP 3.4 section 5.2.5, type of number.
TON_UNKNOWN = 0
TON_INTERNATIONAL = 1
TON_NATIONAL = 2
TON_NETWORK_SPECIFIC = 3
TON_SUBSCRIBER = 4
TON_ALPHANUMERIC = 5
TON_ABBREVIATED = 6
#: SMPP 3.4 section 5.2.6, numbering plan indicator.
NPI_UNKNOWN = 0
NPI_ISDN = 1

#: How bare digits of unknown type are read.
UNKNOWN_DIGITS = ("international", "national", "subscriber")
#: The forms a connection sends numbers in.
NUMBER_FORMATS = ("international", "national")
#: The longest short code kept (an SMPP address is at most 20 octets).
MAX_SHORT_CODE = 20

_SEPARATORS = str.maketrans("", "", " -.()\t")


class NumberError(ModelError):
    """A number that no plan can read (empty, too long, not digits where
    digits are needed); C{str()} says why."""


@dataclass(frozen=True)
class E164:
    """
    A number in E.164 form.

    @ivar digits: country code and national significant number, no C{+}.
    """
    digits: str

    def __str__(self) -> str:
        return self.digits


@dataclass(frozen=True)
class Alphanumeric:
    """
    An address that is not a number: a sender name (C{AsiaCell}), an
    account username, or a short code.

    @ivar text: the name as received.
    @ivar short: whether it is an abbreviated number (a short code).
    """
    text: str
    short: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Plan:
    """
    An immutable numbering plan (the node's, or one with a carrier's or
    connection's overrides applied).

    @ivar country_code: 1 to 3 digits, or C{None}.
    @ivar national_prefix: the trunk prefix (C{0}), or C{None}.
    @ivar international_prefix: C{00} by default, or C{None}.
    @ivar area_code: the national destination code subscriber numbers
        get, or C{None}.
    @ivar unknown_digits: how bare digits of unknown type are read (see
        L{UNKNOWN_DIGITS}).
    @ivar number_format: the form numbers are sent in over a connection
        (see L{NUMBER_FORMATS}).
    """
    country_code: str | None = None
    national_prefix: str | None = None
    international_prefix: str | None = "00"
    area_code: str | None = None
    unknown_digits: str = "international"
    number_format: str = "international"

    def overlaid(self, overrides: dict[str, Any]) -> "Plan":
        """
        @param overrides: field name to value; C{None} values inherit.
        @return: this plan with the overrides applied.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **given) if given else self


#: The plan of a node that was never given one: numbers are read as
#: L{appliance.model.numbers.normalize_e164} always read them.
DEFAULT_PLAN = Plan()
#: The fields of a plan, in the order the shell writes them.
PLAN_FIELDS = tuple(f.name for f in fields(Plan))


def _digits(text: str, what: str) -> str:
    if not text:
        raise NumberError(f"{what} is empty")
    if not (text.isascii() and text.isdigit()):
        raise NumberError(f"{what} {text!r} is not all digits")
    return text


def _e164(digits: str, original: str) -> E164:
    if not digits:
        raise NumberError(f"{original!r} is not a number")
    if not (digits.isascii() and digits.isdigit()):
        raise NumberError(f"{original!r} is not a number: only digits "
                          "are allowed")
    if len(digits) > MAX_E164_DIGITS:
        raise NumberError(f"{original!r} is not a number: at most "
                          f"{MAX_E164_DIGITS} digits")
    return E164(digits)


def _national(digits: str, plan: Plan, original: str,
              area: str | None = None) -> E164:
    if plan.national_prefix and digits.startswith(plan.national_prefix) \
            and len(digits) > len(plan.national_prefix):
        digits = digits[len(plan.national_prefix):]
    if plan.country_code is None:
        return _e164(digits, original)
    return _e164(plan.country_code + (area or "") + digits, original)


def _international(digits: str, plan: Plan, original: str) -> E164:
    prefix = plan.international_prefix
    if prefix and digits.startswith(prefix) and len(digits) > len(prefix):
        digits = digits[len(prefix):]
    return _e164(digits, original)


def normalize(number: str, ton: int = TON_UNKNOWN, npi: int = NPI_ISDN,
              plan: Plan = DEFAULT_PLAN) -> E164 | Alphanumeric:
    """
    Read a number as it was received (see the module docstring for the
    rules by type of number).

    @param number: the address as received (SMPP source_addr or
        destination_addr, a SIP user part, a tel: number).
    @param ton: its SMPP type of number (C{TON_UNKNOWN} for SIP).
    @param npi: its SMPP numbering plan indicator (not needed to read
        it; kept for the callers' symmetry and the logs).
    @param plan: the plan of the origin.
    @return: an L{E164} number or an L{Alphanumeric} name.
    @raise NumberError: for an empty address, a number over 15 digits, or
        an international/national/subscriber/abbreviated address that is
        not digits.
    """
    if not isinstance(number, str):
        raise NumberError("a number must be given as text")
    text = number.strip()
    if not text:
        raise NumberError("an address cannot be empty")
    if ton == TON_ALPHANUMERIC:
        return Alphanumeric(text)
    compact = text.translate(_SEPARATORS)
    plus = compact.startswith("+")
    digits = compact[1:] if plus else compact
    if ton == TON_ABBREVIATED:
        _digits(digits, "short code")
        if len(digits) > MAX_SHORT_CODE:
            raise NumberError(f"short code {text!r} is too long")
        return Alphanumeric(digits, short=True)
    if ton == TON_INTERNATIONAL or plus:
        return _international(_digits(digits, "international number"),
                              plan, text)
    if ton == TON_NATIONAL:
        return _national(_digits(digits, "national number"), plan, text)
    if ton == TON_SUBSCRIBER:
        return _national(_digits(digits, "subscriber number"), plan, text,
                         plan.area_code)
    # Unknown (and network specific): by the form.
    if not (digits.isascii() and digits.isdigit()):
        return Alphanumeric(text)
    intl, trunk = plan.international_prefix, plan.national_prefix
    if intl and digits.startswith(intl) and len(digits) > len(intl):
        return _e164(digits[len(intl):], text)
    if trunk and plan.country_code and digits.startswith(trunk):
        return _national(digits, plan, text)
    if plan.unknown_digits == "national":
        return _national(digits, plan, text)
    if plan.unknown_digits == "subscriber":
        return _national(digits, plan, text, plan.area_code)
    return _e164(digits, text)


def outbound_address(address: str, plan: Plan) -> tuple[int, int, str]:
    """
    Write an address as a connection's plan asks.

    @param address: a stored sender or recipient: E.164 digits (a
        leading C{+} is dropped) or a name.
    @param plan: the connection's plan.
    @return: C{(ton, npi, text)}: C{(1, 1, "9647501234567")} in the
        international form; C{(2, 1, "07501234567")} in the national form
        (the trunk prefix, then the national significant number) for a
        number of the plan's country; C{(5, 0, name)} for a name.  A
        number of another country is always international.
    """
    text = (address or "").strip()
    digits = text[1:] if text.startswith("+") else text
    if not (digits and digits.isascii() and digits.isdigit()):
        return TON_ALPHANUMERIC, NPI_UNKNOWN, text
    cc = plan.country_code
    if plan.number_format == "national" and cc and digits.startswith(cc) \
            and len(digits) > len(cc):
        return (TON_NATIONAL, NPI_ISDN,
                (plan.national_prefix or "") + digits[len(cc):])
    return TON_INTERNATIONAL, NPI_ISDN, digits


# -- persistent settings -------------------------------------------------

def _digit_setting(label: str, low: int, high: int):
    def validate(value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.isascii() \
                or not value.isdigit():
            raise ModelError(f"{label} must be digits")
        if not low <= len(value) <= high:
            raise ModelError(f"{label} is {low} to {high} digits")
        return value
    return validate


validate_country_code = _digit_setting("a country code", 1, 3)
validate_prefix = _digit_setting("a prefix", 1, 6)
validate_area_code = _digit_setting("an area code", 1, 6)


class NumberingPlan(Configurable):
    """
    The node's numbering plan (C{root["appliance"].numbering}); every
    setting resets with C{del plan.<name>}.
    """

    country_code = Setting(None, validate_country_code,
                           doc="Country code (E.164), e.g. 964.")
    national_prefix = Setting(None, validate_prefix,
                              doc="Trunk prefix of national numbers, e.g. 0.")
    international_prefix = Setting("00", validate_prefix,
                                   doc="Prefix of international numbers.")
    area_code = Setting(None, validate_area_code,
                        doc="National destination code of subscriber numbers.")
    unknown_digits = Setting("international",
                             choice("unknown-digits", UNKNOWN_DIGITS),
                             doc="How bare digits of unknown type are read.")
    number_format = Setting("international",
                            choice("number-format", NUMBER_FORMATS),
                            doc="The form connections send numbers in.")

    def __init__(self) -> None:
        super().__init__("numbering-plan")

    def snapshot(self) -> Plan:
        """@return: the immutable L{Plan}."""
        return Plan(**{name: getattr(self, name) for name in PLAN_FIELDS})


#: Override setting names (on carriers and connections) by plan field.
OVERRIDES = {name: f"plan_{name}" for name in PLAN_FIELDS}


class PlanOverrides:
    """
    Per-carrier or per-connection overrides of the node's plan, mixed
    into a L{Configurable}: every one is C{None} (inherit) by default and
    resets with C{del obj.plan_<field>}.
    """

    plan_country_code = Setting(None, validate_country_code,
                                doc="Country code override.")
    plan_national_prefix = Setting(None, validate_prefix,
                                   doc="Trunk prefix override.")
    plan_international_prefix = Setting(None, validate_prefix,
                                        doc="International prefix override.")
    plan_area_code = Setting(None, validate_area_code,
                             doc="Area code override.")
    plan_unknown_digits = Setting(
        None, choice("unknown-digits", UNKNOWN_DIGITS, optional=True),
        doc="Override of how bare digits of unknown type are read.")
    plan_number_format = Setting(
        None, choice("number-format", NUMBER_FORMATS, optional=True),
        doc="Override of the form numbers are sent in.")

    def plan_overrides(self) -> dict[str, Any]:
        """@return: plan field to override value (C{None}: inherited)."""
        return {name: getattr(self, attr) for name, attr in OVERRIDES.items()}


def node_plan(root: Any) -> Plan:
    """
    @param root: the C{ApplianceRoot}.
    @return: the node's plan (L{DEFAULT_PLAN} on a root without one).
    """
    plan = getattr(root, "numbering", None)
    return plan.snapshot() if plan is not None else DEFAULT_PLAN


def plan_for(root: Any, origin_kind: str, origin: str | None) -> Plan:
    """
    The plan a protocol reads an origin's numbers with.

    @param root: the C{ApplianceRoot}.
    @param origin_kind: C{carrier}, C{connection}, C{account}, ...
    @param origin: the carrier's or connection's name.
    @return: the node's plan with that carrier's or connection's
        overrides; the node's plan for other origins.
    """
    plan = node_plan(root)
    container = {"carrier": "carriers",
                 "connection": "connections"}.get(origin_kind)
    if container is None or origin is None:
        return plan
    obj = getattr(root, container).get(origin)
    if obj is None or not hasattr(obj, "plan_overrides"):
        return plan
    return plan.overlaid(obj.plan_overrides())


def resolve_name(root: Any, name: Alphanumeric) -> str | None:
    """
    Where a name recipient (an alphanumeric or abbreviated address) goes:
    the account with that username, addressed by its first DID when it
    has one (so rating and records see E.164), else by its username.

    @param root: the C{ApplianceRoot}.
    @param name: the recipient.
    @return: the recipient to submit, or C{None} when no account has that
        username.
    """
    account = root.accounts.get(name.text)
    if account is None:
        return None
    return account.dids[0] if account.dids else account.username
