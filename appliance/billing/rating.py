# -*- test-case-name: tests.billing.test_rating -*-
"""
Rating: what one message costs under a tariff at a given time (pure).

A L{RatingTariff} is an immutable snapshot of a tariff: for each
destination prefix, its price versions in effective-from order (the
undated price of the configuration, if any, is in force since forever).
L{rate} picks the longest prefix of the destination that has a price in
force at the message's time, and multiplies by the billing units (one per
message, or one per SMS part).  A C{zero} tariff rates everything at 0
explicitly; any other tariff refuses a destination it has no price for,
so nothing is rated at zero by accident.

Nothing here imports Twisted or ZODB; money is C{Decimal}, never float.
"""
from __future__ import annotations

import bisect
import calendar
import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable, Mapping

#: Billing units a tariff may count.
UNITS = ("message", "part")
#: The effective-from time of an undated price: in force since forever.
ALWAYS = -(1 << 62)


class NoPrice(Exception):
    """
    The tariff has no price in force for the destination; C{str()} is a
    sentence the sender's user can read.
    """


def parse_date(text: str) -> int:
    """
    Read a date as the shell and the node config write it.

    @param text: C{YYYY-MM-DD}, taken as midnight UTC.
    @return: seconds since the epoch.
    @raise ValueError: if it is not such a date.
    """
    try:
        day = datetime.date.fromisoformat(text.strip())
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if len(text.strip()) != 10:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    return calendar.timegm(day.timetuple())


def format_date(seconds: float) -> str:
    """
    @param seconds: seconds since the epoch.
    @return: the UTC date, C{YYYY-MM-DD}.
    """
    # isoformat, not strftime("%Y"), which writes year 27 as "27"
    return datetime.datetime.fromtimestamp(
        seconds, datetime.timezone.utc).date().isoformat()


def format_time(seconds: float) -> str:
    """
    @param seconds: seconds since the epoch.
    @return: the UTC time in ISO 8601 with milliseconds and C{Z}.
    """
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.date().isoformat() + moment.strftime("T%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


#: The month L{month_of} answered last: C{(start, end, "YYYY-MM")}.
_LAST_MONTH: tuple[float, float, str] = (0.0, 0.0, "")


def month_of(seconds: float) -> str:
    """
    @param seconds: seconds since the epoch.
    @return: its UTC calendar month, C{YYYY-MM} (the record bucket).
    """
    global _LAST_MONTH
    start, end, label = _LAST_MONTH
    if start <= seconds < end:
        # Each message asks two or three times, nearly always this month.
        return label
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    label = f"{moment.year:04d}-{moment.month:02d}"
    first = month_start(label)
    _LAST_MONTH = (first, month_start(next_month(label)), label)
    return label


def month_start(month: str) -> int:
    """
    @param month: C{YYYY-MM}.
    @return: the epoch seconds of its first instant (UTC).
    """
    year, mon = int(month[:4]), int(month[5:7])
    return calendar.timegm((year, mon, 1, 0, 0, 0))


def next_month(month: str) -> str:
    """
    @param month: C{YYYY-MM}.
    @return: the month after it.
    """
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def months_between(start: float, end: float) -> list[str]:
    """
    @param start: epoch seconds, included.
    @param end: epoch seconds, excluded.
    @return: the UTC months the interval touches, in order.
    """
    if end <= start:
        return []
    months, month = [], month_of(start)
    while month_start(month) < end:
        months.append(month)
        month = next_month(month)
    return months


@dataclass(frozen=True)
class Rate:
    """
    What one message costs.

    @ivar tariff: the tariff's name.
    @ivar prefix: the prefix matched (C{""} for a zero tariff).
    @ivar price: the price per unit in force at the message's time.
    @ivar units: billing units (1, or the number of parts).
    @ivar amount: C{price * units}, exact.
    @ivar currency: ISO 4217 code.
    """
    tariff: str
    prefix: str
    price: Decimal
    units: int
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class RatingTariff:
    """
    An immutable tariff for rating.

    @ivar name: the tariff's name.
    @ivar currency: ISO 4217 code.
    @ivar unit: C{message} or C{part}.
    @ivar zero: whether every destination is explicitly free.
    @ivar versions: prefix to a tuple of C{(effective_from, price)} in
        ascending time order.
    """
    name: str
    currency: str = "USD"
    unit: str = "message"
    zero: bool = False
    versions: Mapping[str, tuple[tuple[int, Decimal], ...]] = \
        field(default_factory=dict)
    _longest: int = field(default=0, compare=False)
    _starts: Mapping[str, tuple[int, ...]] = field(default_factory=dict,
                                                   compare=False)

    @classmethod
    def build(cls, name: str, currency: str = "USD",
              unit: str = "message", zero: bool = False,
              prices: Mapping[str, Decimal] | None = None,
              dated: Iterable[tuple[str, int, Decimal]] = ()
              ) -> "RatingTariff":
        """
        @param name: the tariff's name.
        @param currency: ISO 4217 code.
        @param unit: C{message} or C{part}.
        @param zero: everything free.
        @param prices: undated prices by prefix (in force since forever).
        @param dated: C{(prefix, effective_from, price)} versions.
        @raise ValueError: for an unknown unit, a float or negative price.
        """
        if unit not in UNITS:
            raise ValueError(f"a billing unit is one of: {', '.join(UNITS)}")
        table: dict[str, dict[int, Decimal]] = {}
        for prefix, price in (prices or {}).items():
            table.setdefault(prefix, {})[ALWAYS] = _check_price(price)
        for prefix, start, price in dated:
            table.setdefault(prefix, {})[int(start)] = _check_price(price)
        versions = {p: tuple(sorted(v.items())) for p, v in table.items()}
        starts = {p: tuple(s for s, _ in v) for p, v in versions.items()}
        return cls(name, currency, unit, zero, versions,
                   max(map(len, versions), default=0), starts)

    def price_at(self, number: str, at: float) -> tuple[str, Decimal] | None:
        """
        Longest-prefix lookup at a time.

        @param number: E.164 digits.
        @param at: epoch seconds.
        @return: C{(prefix, price)} of the longest prefix of C{number}
            with a price in force at C{at}, or C{None}.
        """
        for n in range(min(len(number), self._longest), 0, -1):
            prefix = number[:n]
            starts = self._starts.get(prefix)
            if starts is None:
                continue
            i = bisect.bisect_right(starts, at) - 1
            if i >= 0:
                return prefix, self.versions[prefix][i][1]
        return None


def _check_price(price: Decimal) -> Decimal:
    if not isinstance(price, Decimal) or not price.is_finite() or price < 0:
        raise ValueError(f"a price is a finite Decimal >= 0, not {price!r}")
    return price


def units_of(tariff: RatingTariff, parts: int) -> int:
    """
    @param tariff: the tariff.
    @param parts: SMS parts of the message (at least 1).
    @return: its billing units under the tariff.
    """
    return max(parts, 1) if tariff.unit == "part" else 1


def rate(tariff: RatingTariff, number: str, parts: int, at: float) -> Rate:
    """
    Rate one message.

    @param tariff: the payer's tariff.
    @param number: the destination, E.164 digits.
    @param parts: its SMS parts.
    @param at: its acceptance time (epoch seconds): the price in force
        then applies.
    @return: the rate.
    @raise NoPrice: the tariff is not C{zero} and has no price in force
        for the destination.
    """
    units = units_of(tariff, parts)
    if tariff.zero:
        return Rate(tariff.name, "", Decimal(0), units, Decimal(0),
                    tariff.currency)
    found = tariff.price_at(number, at)
    if found is None:
        raise NoPrice(f"No tariff for destination +{number}")
    prefix, price = found
    return Rate(tariff.name, prefix, price, units, price * units,
                tariff.currency)
