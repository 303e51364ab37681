"""Tests for appliance.model.numbering: numbers read by type of number
and numbering plan, written back per connection, and the persistent plan
with its carrier and connection overrides."""
import pytest

from appliance.model.errors import ModelError
from appliance.model.numbering import (
    DEFAULT_PLAN, E164, Alphanumeric, NumberError, NumberingPlan, Plan,
    node_plan, normalize, outbound_address, plan_for, resolve_name)
from appliance.model.numbers import normalize_e164

#: Iraq: country code 964, trunk prefix 0, international prefix 00.
IRAQ = Plan(country_code="964", national_prefix="0",
            international_prefix="00")
#: The same with Baghdad's area code 1 for subscriber numbers.
BAGHDAD = Plan(country_code="964", national_prefix="0",
               international_prefix="00", area_code="1")


@pytest.mark.parametrize("number, expected", [
    ("9647501234567", "9647501234567"),
    ("+9647501234567", "9647501234567"),
    ("009647501234567", "9647501234567"),
    ("964 750 123-4567", "9647501234567"),
    ("442079460018", "442079460018"),
])
def test_international(number, expected):
    """TON 1: the digits are the E.164 number; a + or the international
    prefix written in front anyway is dropped, and no country code is
    added."""
    assert normalize(number, 1, 1, IRAQ) == E164(expected)


@pytest.mark.parametrize("number", ["07501234567", "7501234567",
                                    "0750 123 4567"])
def test_national(number):
    """TON 2: the trunk prefix is stripped when present and the country
    code added, so 0-prefixed and bare national numbers give one E.164
    number."""
    assert normalize(number, 2, 1, IRAQ) == E164("9647501234567")


def test_national_without_country_code_keeps_digits():
    """TON 2 read by a plan without a country code: the digits as given
    (the trunk prefix too), as a node without a plan always did."""
    assert normalize("0111222333", 2, 1, DEFAULT_PLAN) == E164("0111222333")


def test_subscriber_gets_area_code():
    """TON 4: the country code and the plan's area code go in front of
    the subscriber number; without an area code it reads as national."""
    assert normalize("7654321", 4, 1, BAGHDAD) == E164("96417654321")
    assert normalize("7654321", 4, 1, IRAQ) == E164("9647654321")


def test_alphanumeric_kept_as_name():
    """TON 5: a name is kept as it is, even when it is all digits."""
    assert normalize("AsiaCell", 5, 0, IRAQ) == Alphanumeric("AsiaCell")
    assert normalize("12345", 5, 0, IRAQ) == Alphanumeric("12345")


def test_abbreviated_is_a_short_code():
    """TON 6: a short code stays a (short) name, never an E.164 number,
    so it cannot match a DID or tariff prefix like 964 by accident."""
    result = normalize("964", 6, 0, IRAQ)
    assert result == Alphanumeric("964", short=True)
    assert not isinstance(result, E164)


@pytest.mark.parametrize("number, expected", [
    ("+9647501234567", E164("9647501234567")),
    ("009647501234567", E164("9647501234567")),
    ("07501234567", E164("9647501234567")),
    ("9647501234567", E164("9647501234567")),
    ("Viber", Alphanumeric("Viber")),
])
def test_unknown_read_by_form(number, expected):
    """TON 0: + and the international prefix are international, the
    trunk prefix national, letters a name, bare digits international by
    default."""
    assert normalize(number, 0, 1, IRAQ) == expected


def test_unknown_bare_digits_as_the_plan_says():
    """TON 0 bare digits: with unknown-digits national they get the
    country code, with subscriber the area code too."""
    national = Plan(country_code="964", national_prefix="0",
                    unknown_digits="national")
    subscriber = Plan(country_code="964", area_code="1",
                      unknown_digits="subscriber")
    assert normalize("111222333", 0, 1, national) == E164("964111222333")
    assert normalize("7654321", 0, 1, subscriber) == E164("96417654321")
    assert normalize("111222333", 0, 1, IRAQ) == E164("111222333")


def test_unknown_trunk_prefix_needs_country_code():
    """A 0-prefixed number read by a plan without a country code keeps
    its digits (nothing to replace the prefix with)."""
    assert normalize("0111222333", 0, 1,
                     Plan(national_prefix="0")) == E164("0111222333")


@pytest.mark.parametrize("user", ["+964111222333", "00964111222333",
                                  "0111222333", "964111222333"])
def test_sip_user_parts(user):
    """SIP user parts (TON unknown) in +, 00, national 0 and bare E.164
    forms all read as one number."""
    assert normalize(user, plan=IRAQ) == E164("964111222333")


def test_other_international_prefix():
    """A plan's own international prefix (0011) is recognised; 00 then
    reads as a trunk prefix followed by digits."""
    plan = Plan(country_code="61", national_prefix="0",
                international_prefix="0011")
    assert normalize("0011442079460018", 0, 1, plan) == E164("442079460018")
    assert normalize("0412345678", 0, 1, plan) == E164("61412345678")


def test_default_plan_reads_like_normalize_e164():
    """A node without a plan reads unknown numbers exactly as
    normalize_e164 does."""
    for text in ["111222333", "+964 750 123 4567", "00964-750-123-4567",
                 "(0750) 123.4567"]:
        assert normalize(text) == E164(normalize_e164(text))


@pytest.mark.parametrize("number, ton", [
    ("", 0), ("   ", 1), ("12a4", 1), ("abc", 2), ("1" * 16, 1),
    ("0" + "1" * 13, 2), ("12x", 6), ("1" * 21, 6), ("+", 0),
])
def test_refused(number, ton):
    """Empty addresses, letters where digits are needed, and numbers that
    come out longer than 15 digits raise NumberError (a ModelError)."""
    with pytest.raises(NumberError):
        normalize(number, ton, 1, IRAQ)
    assert issubclass(NumberError, ModelError)


def test_outbound_forms():
    """A connection's plan writes numbers of its country national (TON 2,
    trunk prefix) or international (TON 1); other countries' numbers
    stay international, names go out as alphanumeric."""
    national = Plan(country_code="964", national_prefix="0",
                    number_format="national")
    assert outbound_address("964111222333", national) == (2, 1, "0111222333")
    assert outbound_address("442079460018", national) == \
        (1, 1, "442079460018")
    assert outbound_address("964111222333", IRAQ) == (1, 1, "964111222333")
    assert outbound_address("+964111222333", IRAQ) == (1, 1, "964111222333")
    assert outbound_address("AsiaCell", national) == (5, 0, "AsiaCell")


def test_round_trip_national():
    """What a national-format connection sends reads back, by a node with
    the same plan, as the number it was."""
    plan = Plan(country_code="964", national_prefix="0",
                number_format="national")
    ton, npi, text = outbound_address("9647501234567", plan)
    assert normalize(text, ton, npi, plan) == E164("9647501234567")


# -- the persistent plan ---------------------------------------------------

def test_persistent_plan_validates_and_resets(root):
    """The node's plan checks its digits, snapshots to a Plan, and a
    deleted setting is back to its default."""
    plan = root.numbering
    assert node_plan(root) == DEFAULT_PLAN
    plan.country_code = "964"
    plan.national_prefix = "0"
    assert node_plan(root) == Plan(country_code="964", national_prefix="0")
    for bad in ("", "9a", "1234"):
        with pytest.raises(ModelError):
            plan.country_code = bad
    with pytest.raises(ModelError):
        plan.unknown_digits = "sometimes"
    del plan.country_code
    assert node_plan(root).country_code is None


def test_overrides_per_carrier_and_connection(root):
    """A carrier's or connection's overrides replace the node's values
    they set and inherit the rest; other origins get the node's plan."""
    root.numbering.country_code = "964"
    root.numbering.national_prefix = "0"
    carrier = root.add_carrier("TATA")
    carrier.plan_unknown_digits = "national"
    connection = root.add_connection("env4")
    connection.plan_number_format = "national"
    connection.plan_country_code = "44"
    assert plan_for(root, "carrier", "TATA") == Plan(
        country_code="964", national_prefix="0", unknown_digits="national")
    assert plan_for(root, "connection", "env4") == Plan(
        country_code="44", national_prefix="0", number_format="national")
    assert plan_for(root, "account", "1111") == node_plan(root)
    assert plan_for(root, "carrier", "gone") == node_plan(root)
    del carrier.plan_unknown_digits
    assert plan_for(root, "carrier", "TATA") == node_plan(root)


def test_old_root_without_plan():
    """A root stored before the numbering plan existed reads as the
    default plan."""
    class Old:
        numbering = None
    assert node_plan(Old()) == DEFAULT_PLAN
    assert NumberingPlan().snapshot() == DEFAULT_PLAN


def test_resolve_name(root):
    """A name recipient goes to the account of that username, by its
    first DID when it has one; no such account: None."""
    root.add_customer("C")
    root.add_account("C", "1111")
    assert resolve_name(root, Alphanumeric("1111", short=True)) == "1111"
    root.add_did("1111", "9641111")
    assert resolve_name(root, Alphanumeric("1111", short=True)) == "9641111"
    assert resolve_name(root, Alphanumeric("nobody")) is None
