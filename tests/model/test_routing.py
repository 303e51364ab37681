"""Tests for the route table snapshot and the tariff snapshot."""
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from appliance.model.root import ApplianceRoot
from appliance.model.routing import Route, RouteTable, route_table
from appliance.model.tariffs import Tariff


def _root():
    root = ApplianceRoot()
    root.add_connection("vendorA")
    root.add_connection("vendorB")
    vip = root.add_policy("vip senders")
    vip.recipient_pattern = "964%"
    vip.sender_pattern = "44%"
    vip.transport = "smpp"
    root.set_policy_connections("vip senders", ["vendorB"])
    local = root.add_policy("local")
    local.recipient_pattern = "964111______"
    local.origin = "carrier"
    intl = root.add_policy("intl")
    intl.transport = "smpp"
    root.set_policy_connections("intl", ["vendorA", "vendorB"])
    return root


def test_first_match_in_order():
    """decide() returns the first matching policy in the configured order."""
    table = route_table(_root())
    assert table.decide("4477", "964111222333", "carrier") == Route(
        "vip senders", "smpp", ("vendorB",))
    assert table.decide("AsiaCell", "964111222333", "carrier") == Route("local", "sip", ())
    assert table.decide("AsiaCell", "964111222333", "app").policy == "intl"
    assert table.decide("AsiaCell", "964111222333", "account").policy == "intl"
    assert table.decide("1", "15550000", "http") == Route(
        "intl", "smpp", ("vendorA", "vendorB"))


def test_no_match():
    """With no matching policy decide() returns None."""
    root = _root()
    root.remove_policy("intl")
    table = route_table(root)
    assert table.decide("1", "15550000", "carrier") is None
    assert RouteTable([]).decide("1", "2", "carrier") is None


def test_table_is_a_snapshot():
    """Later changes to the root do not change an existing table; a new one sees them."""
    root = _root()
    table = route_table(root)
    root.move_policy("intl", 1)
    assert table.decide("4477", "964111222333", "carrier").policy == "vip senders"
    assert route_table(root).decide("4477", "964111222333", "carrier").policy == "intl"
    assert len(table) == 3


prefixes = st.dictionaries(
    # a leading 00 is an international prefix that normalization strips
    st.text(alphabet="0123456789", min_size=1, max_size=6).filter(
        lambda p: not p.startswith("00")),
    st.decimals(min_value=0, max_value=10, places=4, allow_nan=False),
    max_size=40,
)
numbers = st.text(alphabet="0123456789", min_size=0, max_size=15)


@settings(max_examples=200)
@given(prices=prefixes, number=numbers)
def test_lookup_btree_snapshot_and_bruteforce_agree(prices, number):
    """BTree lookup, snapshot lookup and a brute-force longest prefix all agree."""
    tariff = Tariff("t")
    for prefix, price in prices.items():
        tariff.set_price(prefix, price)
    candidates = [p for p in prices if number.startswith(p)]
    expected = None
    if candidates:
        best = max(candidates, key=len)
        expected = (best, prices[best])
    assert tariff.lookup(number) == expected
    assert tariff.snapshot().lookup(number) == expected


def test_snapshot_prices_are_decimals():
    """Snapshot lookups return the same Decimal values."""
    tariff = Tariff("t")
    tariff.set_price("964", "0.010")
    assert tariff.snapshot().lookup("9641") == ("964", Decimal("0.010"))
