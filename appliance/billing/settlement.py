# -*- test-case-name: tests.billing.test_settlement -*-
"""
Settlement: count, units and amount per prefix and in total for a payer
and period, the volume fee, and the CSV export for the invoice (pure).

Whole UTC months settle from the record store's running totals; partial
months are summed from their records.  Both give the same figures, which
a property test checks.  Only billable records count: with the rule
C{accepted} every accepted message, with C{delivered} only delivered ones;
a prepaid payer is never billed for a message whose reservation was
returned (failed or expired).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Any, Iterable, Iterator, Sequence

from appliance.billing.rating import (
    format_time, month_start, months_between, next_month)

#: Every message state.
ALL_STATES = frozenset(("accepted", "delivering", "delivered", "failed",
                        "expired"))
#: States whose prepaid reservation is returned.
RETURNED = frozenset(("failed", "expired"))

CSV_COLUMNS = ("id", "time", "direction", "payer", "rule", "origin",
               "destination", "parts", "units", "tariff", "prefix", "price",
               "amount", "currency", "state")


def billable_states(rule: str, prepaid: bool = False) -> frozenset[str]:
    """
    @param rule: C{accepted} or C{delivered}.
    @param prepaid: whether the payer is prepaid.
    @return: the states of the records a settlement counts.
    @raise ValueError: for another rule.
    """
    if rule == "delivered":
        return frozenset(("delivered",))
    if rule != "accepted":
        raise ValueError(f"unknown billable rule {rule!r}")
    return ALL_STATES - RETURNED if prepaid else ALL_STATES


def volume_fee(tiers: Sequence[tuple[int, Decimal]], count: int
               ) -> Decimal:
    """
    The monthly fee for a volume: the fee of the smallest tier whose
    C{up_to} is at least C{count}; above the last tier, the last fee.

    @param tiers: C{(up_to, fee)}, any order.
    @param count: billable messages in the month.
    @return: the fee (0 without tiers).
    """
    ordered = sorted(tiers)
    for up_to, fee in ordered:
        if count <= up_to:
            return fee
    return ordered[-1][1] if ordered else Decimal(0)


@dataclass(frozen=True)
class Line:
    """
    One prefix of a settlement.

    @ivar prefix: the prefix matched (C{""}: zero tariff or unrated).
    @ivar currency: ISO 4217 code.
    @ivar count: messages.
    @ivar units: billing units.
    @ivar amount: exact sum.
    """
    prefix: str
    currency: str
    count: int
    units: int
    amount: Decimal


@dataclass(frozen=True)
class Settlement:
    """
    A payer's bill for a period.

    @ivar payer: C{kind:name}.
    @ivar start: epoch seconds, included.
    @ivar end: epoch seconds, excluded.
    @ivar lines: per prefix and currency, sorted.
    @ivar months: C{(month, billable count, volume fee)} per month.
    """
    payer: str
    start: float
    end: float
    lines: tuple[Line, ...]
    months: tuple[tuple[str, int, Decimal], ...] = ()

    @property
    def count(self) -> int:
        """All billable messages."""
        return sum(line.count for line in self.lines)

    @property
    def units(self) -> int:
        """All billable units."""
        return sum(line.units for line in self.lines)

    def amounts(self) -> dict[str, Decimal]:
        """@return: the total per currency."""
        out: dict[str, Decimal] = {}
        for line in self.lines:
            out[line.currency] = out.get(line.currency, Decimal(0)) \
                + line.amount
        return out

    @property
    def amount(self) -> Decimal:
        """The total over all currencies (meaningful with one currency)."""
        return sum((line.amount for line in self.lines), Decimal(0))

    @property
    def volume_fee(self) -> Decimal:
        """The volume fees of all months."""
        return sum((fee for _, _, fee in self.months), Decimal(0))


def _add(groups: dict, prefix: str, currency: str, count: int, units: int,
         amount: Decimal) -> None:
    old = groups.get((prefix, currency), (0, 0, Decimal(0)))
    groups[(prefix, currency)] = (old[0] + count, old[1] + units,
                                  old[2] + amount)


def sum_records(records: Iterable[Any], billable: frozenset[str],
                groups: dict | None = None) -> dict:
    """
    @param records: L{appliance.billing.records.Record}s.
    @param billable: the states that count.
    @param groups: C{(prefix, currency)} to C{(count, units, amount)} to
        add to (a new dict if C{None}).
    @return: the groups.
    """
    groups = {} if groups is None else groups
    for r in records:
        if r.state in billable:
            _add(groups, r.prefix, r.currency, 1, r.units, r.amount)
    return groups


def sum_totals(totals: Iterable[tuple[tuple[str, str, str],
                                      tuple[int, int, Decimal]]],
               billable: frozenset[str], groups: dict | None = None) -> dict:
    """
    Like L{sum_records}, from running totals C{((prefix, currency,
    state), (count, units, amount))}.
    """
    groups = {} if groups is None else groups
    for (prefix, currency, state), (count, units, amount) in totals:
        if state in billable:
            _add(groups, prefix, currency, count, units, amount)
    return groups


def settle(store: Any, payer: str, start: float, end: float,
           billable: frozenset[str],
           tiers: Sequence[tuple[int, Decimal]] = ()) -> Settlement:
    """
    Settle a payer's records accepted in C{[start, end)}.

    @param store: an L{appliance.billing.interfaces.IRecordStore}.
    @param payer: C{kind:name}.
    @param billable: see L{billable_states}.
    @param tiers: volume-fee tiers; each month touched is charged the
        fee for its billable volume within the period.
    @return: the settlement.
    """
    groups: dict = {}
    months = []
    for month in months_between(start, end):
        whole = start <= month_start(month) and \
            month_start(next_month(month)) <= end
        part: dict = {}
        if whole:
            sum_totals(store.totals(payer, month), billable, part)
        else:
            low = max(start, month_start(month))
            high = min(end, month_start(next_month(month)))
            sum_records(store.records(payer, low, high), billable, part)
        count = 0
        for (prefix, currency), (c, u, a) in part.items():
            _add(groups, prefix, currency, c, u, a)
            count += c
        if tiers:
            months.append((month, count, volume_fee(tiers, count)))
    lines = tuple(Line(p, cur, c, u, a) for (p, cur), (c, u, a)
                  in sorted(groups.items()) if c)
    return Settlement(payer, start, end, lines, tuple(months))


def export_csv(records: Iterable[Any], billable: frozenset[str]) -> str:
    """
    The billable records as CSV (header first, LF line ends), for an invoice:
    its amounts add up to the settlement's total.

    @param records: records in time order.
    @param billable: the states that count.
    @return: the CSV text.
    """
    return "".join(csv_chunks(records, billable))


def csv_chunks(records: Iterable[Any], billable: frozenset[str],
               size: int = 1000) -> Iterator[str]:
    """
    L{export_csv} in bounded slices, for output streamed as it is read.

    @param records: records in time order (read lazily).
    @param billable: the states that count.
    @param size: records read per chunk.
    @return: the header, then the CSV text of each slice of C{size} records.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    records = iter(records)
    for piece in iter(lambda: list(islice(records, size)), []):
        for r in piece:
            if r.state in billable:
                writer.writerow((r.id, format_time(r.time), r.direction, r.payer,
                                 r.rule, r.origin, r.destination, r.parts, r.units,
                                 r.tariff or "", r.prefix, r.price, r.amount,
                                 r.currency, r.state))
        yield out.getvalue()
        out.seek(0)
        out.truncate()
    if out.tell():
        yield out.getvalue()
