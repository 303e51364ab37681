# -*- test-case-name: tests.billing.test_records -*-
"""
The billing record store: one record per message and paying direction.

Records are kept per payer and UTC month (a L{PayerMonth}), so a busy
month is many small buckets rather than one hot object: adding a record
touches the payer-month's record BTree bucket, one running-total entry
and a C{BTrees.Length}.  Records are immutable tuples stored inline in the
BTree buckets (no persistent object each), keyed by C{(time in ms, message
id)}, so a time range is a key range.  Each is kept packed (L{pack}: one
bytes value, its fields pickled once when it is written), because every
batched commit that adds or changes a record pickles its whole bucket
again: stored as a L{Record}, each of the bucket's up to 30 records cost
the database's pickler some 19 objects on every such commit.  Records
stored before they were packed are read as they are (L{unpack}).  The running totals, per
C{(prefix, currency, state)}, are updated in the same transaction as the
record, so a whole month settles from a few entries instead of a scan, and
a record's state change moves its figures from one state to the other.
"""
from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Any, Iterator, NamedTuple

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from zope.interface import implementer

from appliance.billing.interfaces import IRecordStore
from appliance.billing.rating import month_of, months_between

#: Directions a record may have.
DIRECTIONS = ("terminating", "originating", "receiving")


class Record(NamedTuple):
    """
    One billing record (immutable; a state change replaces it).

    @ivar id: the message id.
    @ivar time: acceptance time, epoch seconds.
    @ivar direction: C{terminating} (a carrier or vendor brings it into
        the network), C{originating} (an account or tenant sends it) or
        C{receiving} (a local account pays to receive it).
    @ivar payer: C{kind:name}, e.g. C{carrier:TATA}, C{account:1111}.
    @ivar rule: the authorization rule that attributed it to the payer.
    @ivar origin: the sender address.
    @ivar destination: the recipient number.
    @ivar parts: SMS parts.
    @ivar units: billing units.
    @ivar tariff: the tariff's name, or C{None} when unrated.
    @ivar prefix: the prefix matched (C{""} for a zero tariff or unrated).
    @ivar price: price per unit.
    @ivar amount: C{price * units}.
    @ivar currency: ISO 4217 code.
    @ivar prepaid: whether the amount was reserved from a balance.
    @ivar state: the message's state (final once it is final).
    """
    id: int
    time: float
    direction: str
    payer: str
    rule: str
    origin: str
    destination: str
    parts: int
    units: int
    tariff: str | None
    prefix: str
    price: Decimal
    amount: Decimal
    currency: str
    prepaid: bool
    state: str

    @property
    def key(self) -> tuple[int, int]:
        """The record's key in its payer-month: C{(ms, id)}."""
        return record_key(self.time, self.id)


def record_key(time: float, id: int) -> tuple[int, int]:
    """
    @param time: acceptance time, epoch seconds.
    @param id: message id.
    @return: the key of its record within a payer-month.
    """
    return (int(round(time * 1000)), id)


_ZERO = (0, 0, Decimal(0))


def _inline_totals(state: tuple | None) -> dict:
    """The items of a small OOBTree's state (its one bucket inline).

    @raise ValueError: a tree of several buckets."""
    if state is None:
        return {}
    # ((bucket state,),) with the bucket's state (items,): one bucket,
    # inline; a tree of several has its children and first bucket.
    if len(state) != 1 or len(state[0]) != 1 or \
            not isinstance(state[0][0], tuple) or len(state[0][0]) != 1:
        raise ValueError("not a single-bucket tree")
    items = state[0][0][0]
    return dict(zip(items[::2], items[1::2]))


class RecordTree(OOBTree):
    """C{(time in ms, message id)} to a packed record: appended to at every
    accept, so its last bucket splits every 15 inserts and rewrites its
    parent; small internal nodes (32 children, not 250) keep that parent's
    pickle small.  Record stores made before keep an C{OOBTree}."""
    max_internal_size = 32


class Totals(OOBTree):
    """
    A payer-month's running totals, C{(prefix, currency, state)} to
    C{(count, units, amount)}, whose concurrent changes add up: several
    nodes on one database each add their records to the same payer's
    totals, and a plain OOBTree cannot merge two changes of one key's
    value (every such pair of commits conflicted, and the later one was
    re-run).  The resolution adds each side's change to the other's,
    for a tree of one bucket (a payer-month has a few keys); larger ones
    resolve as any OOBTree.
    """

    def _p_resolveConflict(self, old, committed, new):
        """@return: C{committed} plus what C{new} changed from C{old}."""
        try:
            before, theirs, ours = (_inline_totals(s)
                                    for s in (old, committed, new))
        except ValueError:
            return super()._p_resolveConflict(old, committed, new)
        merged = dict(theirs)
        for key in set(before) | set(ours):
            b, o = before.get(key, _ZERO), ours.get(key, _ZERO)
            if b == o:
                continue
            t = merged.get(key, _ZERO)
            total = tuple(t[i] + o[i] - b[i] for i in range(3))
            if total == (0, 0, 0):
                merged.pop(key, None)
            else:
                merged[key] = total
        if not merged:
            return None
        return (((tuple(x for key in sorted(merged)
                        for x in (key, merged[key])),),),)


#: Where L{pack} keeps some fields in its tuple: L{Record}'s own order
#: (C{price} and C{amount} as text).
UNITS, PREFIX, PRICE, AMOUNT, CURRENCY, PREPAID, STATE = (
    Record._fields.index(name) for name in (
        "units", "prefix", "price", "amount", "currency", "prepaid", "state"))


def fields_of(value: Any) -> tuple:
    """
    @param value: a bucket's value: L{pack}'s bytes, or a L{Record} stored
        before records were packed.
    @return: the record's fields as L{pack} keeps them (the amounts as
        text).
    """
    if isinstance(value, Record):
        return value[:PRICE] + (str(value.price), str(value.amount)) + \
            value[CURRENCY:]
    return pickle.loads(value)


def _dump(fields: tuple) -> bytes:
    return pickle.dumps(fields, 4)


def _record(fields: tuple) -> Record:
    return Record(*fields[:PRICE], Decimal(fields[PRICE]),
                  Decimal(fields[AMOUNT]), *fields[CURRENCY:])


def pack(record: Record) -> bytes:
    """
    @return: the record as its bucket keeps it: its fields (the amounts
        as text) pickled into one bytes value.
    """
    return _dump(fields_of(record))


def unpack(value: Any) -> Record:
    """
    @param value: a bucket's value: L{pack}'s bytes, or a L{Record} stored
        before records were packed.
    @return: the L{Record}.
    """
    if isinstance(value, Record):
        return value
    return _record(pickle.loads(value))


class PayerMonth(Persistent):
    """
    One payer's records of one UTC month, and their running totals.

    @ivar records: C{(ms, id)} to L{Record}.
    @ivar totals: C{(prefix, currency, state)} to C{(count, units,
        amount)}.
    @ivar count: the number of records (a conflict-free counter).
    """

    records: OOBTree | None = None
    totals: OOBTree | None = None
    count: Length | None = None

    def __init__(self) -> None:
        self.records = RecordTree()
        self.totals = Totals()
        self.count = Length()

    def _add_total(self, record: Record, sign: int) -> None:
        self._move(record.prefix, record.currency, record.state, sign,
                   record.units, record.amount)

    def _move(self, prefix: str, currency: str, state: str, sign: int,
              units: int, amount: Decimal) -> None:
        """Count (C{sign} 1) or uncount (-1) a record in the totals."""
        key = (prefix, currency, state)
        totals = self.totals
        count, units_now, amount_now = totals.get(key, _ZERO)
        count += sign
        units_now += sign * units
        amount_now += sign * amount
        if count == 0 and units_now == 0 and amount_now == 0:
            totals.pop(key, None)
        else:
            totals[key] = (count, units_now, amount_now)


@implementer(IRecordStore)
class RecordStore(Persistent):
    """
    All billing records: C{(payer, month)} to L{PayerMonth}.

    @ivar months: C{(payer, "YYYY-MM")} to L{PayerMonth}.
    """

    months: OOBTree | None = None

    def __init__(self) -> None:
        self.months = OOBTree()

    def _bucket(self, payer: str, month: str, create: bool
                ) -> PayerMonth | None:
        bucket = self.months.get((payer, month))
        if bucket is None and create:
            bucket = self.months[(payer, month)] = PayerMonth()
        return bucket

    def add(self, record: Record) -> None:
        """
        Store a new record and count it in its month's totals.

        @param record: the record.
        @raise ValueError: a record for the same message and payer at the
            same time exists already, or the direction is unknown.
        """
        if record.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {record.direction!r}")
        bucket = self._bucket(record.payer, month_of(record.time), True)
        if record.key in bucket.records:
            raise ValueError(f"message {record.id} already has a record")
        bucket.records[record.key] = pack(record)
        bucket._add_total(record, 1)
        bucket.count.change(1)

    def get(self, payer: str, time: float, id: int) -> Record | None:
        """
        @return: the record of message C{id} accepted at C{time}, or None.
        """
        bucket = self._bucket(payer, month_of(time), False)
        if bucket is None:
            return None
        value = bucket.records.get(record_key(time, id))
        return None if value is None else unpack(value)

    def set_state(self, payer: str, time: float, id: int, state: str
                  ) -> Record | None:
        """
        Change a record's state, moving its figures in the totals.

        @return: the new record, or C{None} if there is no such record.
        """
        fields = self.restate(payer, time, id, state)
        if fields is None:
            return None
        return _record(fields[:STATE] + (state,))

    def restate(self, payer: str, time: float, id: int, state: str
                ) -> tuple | None:
        """
        L{set_state} for the hot path: the same change, on the record's
        packed fields, without building a L{Record} (nor
        C{Record._replace}) for the old and the new state.

        @return: the record's fields before the change (as L{pack} keeps
            them, see L{fields_of}; L{STATE}, L{PREPAID}, L{AMOUNT} name
            positions), or C{None} if there is no such record.
        """
        bucket = self.months.get((payer, month_of(time)))
        if bucket is None:
            return None
        key = record_key(time, id)
        records = bucket.records
        value = records.get(key)
        if value is None:
            return None
        fields = fields_of(value)
        old = fields[STATE]
        if old == state:
            return fields
        prefix, units, currency = fields[PREFIX], fields[UNITS], \
            fields[CURRENCY]
        amount = Decimal(fields[AMOUNT])
        bucket._move(prefix, currency, old, -1, units, amount)
        bucket._move(prefix, currency, state, 1, units, amount)
        records[key] = _dump(fields[:STATE] + (state,))
        return fields

    def records(self, payer: str, start: float, end: float
                ) -> Iterator[Record]:
        """
        @param payer: C{kind:name}.
        @param start: epoch seconds, included.
        @param end: epoch seconds, excluded.
        @return: the payer's records accepted in C{[start, end)}, in time
            order.
        """
        low, high = (int(round(start * 1000)), 0), (int(round(end * 1000)), 0)
        for month in months_between(start, end):
            bucket = self._bucket(payer, month, False)
            if bucket is None:
                continue
            for value in bucket.records.values(min=low, max=high,
                                               excludemax=True):
                yield unpack(value)

    def totals(self, payer: str, month: str
               ) -> list[tuple[tuple[str, str, str], tuple[int, int, Decimal]]]:
        """
        @return: the running totals of a payer-month:
            C{((prefix, currency, state), (count, units, amount))} pairs.
        """
        bucket = self._bucket(payer, month, False)
        return [] if bucket is None else list(bucket.totals.items())

    def count(self, payer: str, month: str) -> int:
        """@return: how many records a payer-month holds."""
        bucket = self._bucket(payer, month, False)
        return 0 if bucket is None else bucket.count()

    def payers(self) -> list[str]:
        """@return: every payer with records, sorted."""
        return sorted({payer for payer, _ in self.months.keys()})
