"""Tests for L{appliance.billing.rating}: prices, units, dates."""
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.billing.rating import (
    NoPrice, RatingTariff, format_date, month_of, months_between,
    parse_date, rate)

NOV_1 = parse_date("2026-11-01")
DEC_1 = parse_date("2026-12-01")


def tariff(**kw):
    kw.setdefault("prices", {"964": Decimal("0.01"), "9647": Decimal("0.02")})
    return RatingTariff.build("T", **kw)


def test_longest_prefix():
    """The longest prefix with a price wins."""
    assert rate(tariff(), "9647501234", 1, NOV_1).price == Decimal("0.02")
    assert rate(tariff(), "9641234", 1, NOV_1).prefix == "964"


def test_no_prefix_refused():
    """A destination no prefix matches is refused, not rated at zero."""
    with pytest.raises(NoPrice, match=r"\+4412"):
        rate(tariff(), "4412", 1, NOV_1)


def test_zero_tariff_rates_everything_free():
    """An explicit zero tariff rates any destination at 0."""
    r = rate(tariff(zero=True, prices={}), "4412", 2, NOV_1)
    assert (r.amount, r.units, r.prefix) == (Decimal(0), 1, "")


def test_units_per_part():
    """With unit part a 3-part message is 3 units; with message, 1."""
    assert rate(tariff(unit="part"), "964", 3, NOV_1).amount == \
        Decimal("0.03")
    assert rate(tariff(), "964", 3, NOV_1).amount == Decimal("0.01")


def test_effective_from():
    """A dated price applies from its day on; before it the undated
    price; a prefix with only a future price is not yet in force, so the
    shorter prefix rates."""
    t = tariff(dated=[("964", DEC_1, Decimal("0.03")),
                      ("96475", DEC_1, Decimal("0.04"))])
    assert rate(t, "964750", 1, DEC_1 - 1).price == Decimal("0.02")
    assert rate(t, "964750", 1, DEC_1).price == Decimal("0.04")
    assert rate(t, "9641", 1, DEC_1 + 5).price == Decimal("0.03")


def test_bad_tariffs():
    """Floats, negative prices and unknown units are refused."""
    with pytest.raises(ValueError):
        RatingTariff.build("T", prices={"1": 0.1})
    with pytest.raises(ValueError):
        RatingTariff.build("T", prices={"1": Decimal("-1")})
    with pytest.raises(ValueError):
        RatingTariff.build("T", unit="byte")


def test_dates():
    """Dates are UTC midnights; months bucket and span correctly."""
    assert format_date(NOV_1) == "2026-11-01"
    assert month_of(DEC_1 - 1) == "2026-11"
    assert months_between(NOV_1 + 5, parse_date("2027-01-02")) == \
        ["2026-11", "2026-12", "2027-01"]
    assert months_between(DEC_1, NOV_1) == []
    for bad in ("2026-13-01", "yesterday", "2026-1-1", ""):
        with pytest.raises(ValueError):
            parse_date(bad)


@given(st.lists(st.floats(0, 4.2e9), min_size=1, max_size=30))
def test_month_of_remembered_month_agrees(times):
    """L{month_of} remembers the last month it answered; in any order of
    times (across month and year ends, back and forth) it answers as the
    calendar does."""
    import datetime
    for t in times + [DEC_1 - 0.001, DEC_1, DEC_1 - 0.001, NOV_1, NOV_1 - 1]:
        moment = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
        assert month_of(t) == f"{moment.year:04d}-{moment.month:02d}"
