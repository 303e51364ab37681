"""Tests for L{appliance.billing.rules}: matching and order (pure)."""
import pytest

from appliance.billing.rules import (
    BUILT_IN, Point, Rule, RuleBook, check_charge, point_of)
from appliance.messaging.vocabulary import Submission

TATA = Point("carrier", "TATA", "10.1.2.3", "4412345", "9647500000001")
APP = Point("app", "1111", "192.0.2.7", "1111", "9647500000001")
VENDOR = Point("connection", "env4", "198.51.100.1", "22201", None)


def test_each_condition_must_hold():
    """A rule matches only when its origin kind, origin name, source
    network and sender pattern all hold; unset conditions match
    anything."""
    rule = Rule.build("r", "carrier", "TATA", "10.0.0.0/8", "44%", "carrier")
    assert rule.matches(TATA)
    assert not rule.matches(Point("carrier", "Other", "10.1.2.3", "4412345"))
    assert not rule.matches(Point("carrier", "TATA", "11.1.2.3", "4412345"))
    assert not rule.matches(Point("carrier", "TATA", "10.1.2.3", "9641"))
    assert not rule.matches(Point("app", "TATA", "10.1.2.3", "4412345"))
    assert Rule.build("any", charge="nobody").matches(APP)


def test_source_unknown_or_other_family_does_not_match():
    """A rule with a network never matches a message whose source is
    unknown, not an address, or of the other IP version."""
    rule = Rule.build("r", source="10.0.0.0/8", charge="nobody")
    for source in (None, "", "not-an-ip", "::ffff:10.0.0.1x", "2001:db8::1"):
        assert not rule.matches(Point("carrier", "TATA", source, "1"))
    six = Rule.build("r6", source="2001:db8::/32", charge="nobody")
    assert six.matches(Point("app", "a", "2001:db8::1", "1"))


def test_sender_pattern_only_matches_numbers():
    """A sender pattern matches numeric senders by the service-policy
    syntax (%: any digits, _: one digit) and never an alphanumeric
    sender."""
    rule = Rule.build("r", sender="44_2%", charge="nobody")
    assert rule.matches(Point("carrier", "T", None, "4412345"))
    assert not rule.matches(Point("carrier", "T", None, "4413345"))
    assert not rule.matches(Point("carrier", "T", None, "Viber"))


def test_first_applicable_rule_decides_in_order():
    """Rules are tried in order and the first one that matches decides;
    reordering the same rules changes the decision."""
    free = Rule.build("lan-free", source="10.0.0.0/8", charge="nobody")
    pays = Rule.build("carriers-pay", "carrier", charge="carrier")
    assert RuleBook.of([free, pays]).decide(TATA).name == "lan-free"
    assert RuleBook.of([pays, free]).decide(TATA).name == "carriers-pay"


def test_rule_that_cannot_charge_is_passed_over():
    """A rule that matches but names a payer the message does not have
    (charge carrier for an app's message, charge recipient for a message
    to no local account) is passed over for the next one."""
    book = RuleBook.of([Rule.build("all-carrier", charge="carrier"),
                        Rule.build("all-recipient", charge="recipient"),
                        Rule.build("rest", charge="nobody")])
    assert book.decide(TATA).name == "all-carrier"
    assert book.decide(APP).name == "all-recipient"
    assert book.decide(VENDOR).name == "rest"


def test_built_in_attribution_when_nothing_decides():
    """With no configured rule, the origin pays (the attribution before
    rules existed); the node's own messages are free."""
    book = RuleBook()
    assert (book.decide(TATA).name, book.decide(TATA).charge) == \
        ("built-in carrier", "carrier")
    assert book.decide(APP).charge == "sender"
    assert book.decide(VENDOR).charge == "connection"
    assert book.decide(Point("tenant", "shop")).charge == "sender"
    assert book.decide(Point("node", "balance-low")).charge == "nobody"
    assert [r.origin_kind for r in BUILT_IN] == [
        "carrier", "connection", "app", "tenant", "map"]


def test_impossible_rules_are_refused():
    """Building a rule with an unknown origin or charge, a bad network or
    pattern, or a charge its origin can never have raises ValueError."""
    for kwargs in ({"origin_kind": "pigeon"}, {"charge": "everyone"},
                   {"source": "10.0.0.300/8"}, {"sender": "44x"},
                   {"origin_kind": "app", "charge": "carrier"},
                   {"origin_kind": "carrier", "charge": "sender"}):
        with pytest.raises(ValueError):
            Rule.build("bad", **dict({"charge": "nobody"}, **kwargs))
    check_charge("app", "recipient")
    check_charge(None, "carrier")


def test_point_of_submission():
    """A submission's point uses the rules' origin words (an account is
    an app, the HTTP API a tenant) and its source address."""
    p = point_of(Submission("account", "1111", "1111", "9647", "x",
                            source="192.0.2.1"), "9647")
    assert p == Point("app", "1111", "192.0.2.1", "1111", "9647")
    assert point_of(Submission("http", "shop", "S", "1", "x"),
                    None).origin_kind == "tenant"


def test_describe():
    """A rule describes itself in one line for tables and test route."""
    rule = Rule.build("r", "carrier", "TATA", "10.0.0.0/8", "44%",
                      "carrier", "CHEAP")
    assert rule.describe() == ("origin carrier TATA, source 10.0.0.0/8, "
                               "sender 44%: charge carrier with tariff "
                               "CHEAP")
    assert Rule.build("x", charge="nobody").describe() == \
        "anything: charge nobody"


def test_bad_sender_pattern_is_a_value_error():
    """A sender pattern the numbering model refuses is a C{ValueError}
    naming the problem (the shell shows it); nothing else is turned into
    one."""
    import pytest
    from appliance.model.errors import ModelError
    with pytest.raises(ValueError, match="pattern") as e:
        Rule.build("r", sender="", charge="nobody")
    assert not isinstance(e.value, ModelError)
    with pytest.raises(ValueError):
        Rule.build("r", sender="44a%", charge="nobody")
