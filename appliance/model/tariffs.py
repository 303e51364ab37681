"""Tariffs: prices per number prefix, with longest-prefix lookup."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from appliance.model.base import Configurable, Setting, money
from appliance.model.errors import ModelError
from appliance.model.interfaces import ITariff
from appliance.model.numbers import MAX_E164_DIGITS, normalize_e164

_price = money("a price")


def validate_currency(value: Any) -> str:
    """
    @param value: an ISO 4217 code, e.g. C{usd} or C{IQD}.
    @return: the upper-case code.
    @raise ModelError: if it is not three letters.
    """
    if isinstance(value, str):
        code = value.strip().upper()
        if len(code) == 3 and code.isascii() and code.isalpha():
            return code
    raise ModelError("a currency is three letters, e.g. USD")


def _longest(get: Any, number: Any, longest: int) -> tuple[str, Decimal] | None:
    if not isinstance(number, str):
        return None
    for n in range(min(len(number), longest), 0, -1):
        prefix = number[:n]
        price = get(prefix)
        if price is not None:
            return prefix, price
    return None


class TariffSnapshot:
    """
    An immutable, dict-based copy of a tariff for hot paths (no ZODB).

    @ivar name: the tariff's name.
    @ivar currency: its currency code.
    """

    __slots__ = ("name", "currency", "_prices", "_longest")

    def __init__(self, name: str, currency: str, prices: Mapping[str, Decimal]) -> None:
        """
        @param name: the tariff's name.
        @param currency: its currency.
        @param prices: prefix to price; copied.
        """
        self.name = name
        self.currency = currency
        self._prices = dict(prices)
        self._longest = max(map(len, self._prices), default=0)

    def lookup(self, number: str) -> tuple[str, Decimal] | None:
        """
        @param number: E.164 digits.
        @return: C{(prefix, price)} of the longest prefix of C{number} that
            has a price, or C{None}.
        """
        return _longest(self._prices.get, number, self._longest)

    def __len__(self) -> int:
        return len(self._prices)


@implementer(ITariff)
class Tariff(Configurable):
    """
    A price list: price per message by destination prefix.

    C{currency} resets with C{del tariff.currency}; prices change with
    L{set_price} and L{remove_price}.

    @ivar prices: prefix (E.164 digits) to C{Decimal} price.
    """

    prices: OOBTree | None = None
    currency = Setting("USD", validate_currency, doc="ISO 4217 currency code.")

    def __init__(self, name: str) -> None:
        """
        @param name: the tariff's name.
        @raise ModelError: for an invalid name.
        """
        super().__init__(name)
        self.prices = OOBTree()

    def set_price(self, prefix: str, price: Any) -> None:
        """
        Set the price for a destination prefix.

        @param prefix: number prefix, normalized like a number (C{+44} is C{44}).
        @param price: a C{Decimal}, C{int} or decimal string, at least 0.
        @raise ModelError: for a bad prefix or price.
        """
        key = normalize_e164(prefix)
        amount = _price(price)
        if amount < 0:
            raise ModelError("a price cannot be negative")
        self.prices[key] = amount

    def remove_price(self, prefix: str) -> None:
        """
        @param prefix: a prefix that has a price.
        @raise ModelError: if it has none.
        """
        key = normalize_e164(prefix)
        if key not in self.prices:
            raise ModelError(f"tariff {self.name} has no price for {key}")
        del self.prices[key]

    def lookup(self, number: str) -> tuple[str, Decimal] | None:
        """
        Longest-prefix lookup: probes C{number[:n]} for n from the length
        down to 1 (at most 15 BTree lookups).

        @param number: E.164 digits.
        @return: C{(prefix, price)}, or C{None} if no prefix has a price.
        """
        return _longest(self.prices.get, number, MAX_E164_DIGITS)

    def snapshot(self) -> TariffSnapshot:
        """
        @return: an immutable copy with the same C{lookup}.
        """
        return TariffSnapshot(self.name, self.currency, self.prices)
