"""Tests for L{appliance.billing.records} and
L{appliance.billing.settlement}, including the property that records and
running totals settle alike."""
from decimal import Decimal

import pytest
import transaction
import ZODB
from hypothesis import example, given, settings
from hypothesis import strategies as st
from zope.interface.verify import verifyObject

from appliance.billing.interfaces import IRecordStore
from appliance.billing.rating import parse_date
from appliance.billing.records import (Record, RecordStore, pack,
                                       record_key, unpack)
from appliance.billing.settlement import (
    ALL_STATES, billable_states, export_csv, settle, sum_records,
    volume_fee)

NOV_1 = parse_date("2026-11-01")
DEC_1 = parse_date("2026-12-01")
JAN_1 = parse_date("2027-01-01")


def record(id, time, prefix="964", price="0.01", units=1, state="accepted",
           payer="carrier:TATA"):
    price = Decimal(price)
    return Record(id, time, "terminating", payer, "carrier", "44",
                  prefix + "1", units, units, "T", prefix, price,
                  price * units, "USD", False, state)


def test_interface():
    """The store provides IRecordStore."""
    verifyObject(IRecordStore, RecordStore())


def test_add_get_state_and_totals():
    """A state change replaces the record and moves its totals."""
    store = RecordStore()
    store.add(record(1, NOV_1 + 1))
    store.set_state("carrier:TATA", NOV_1 + 1, 1, "delivered")
    assert store.get("carrier:TATA", NOV_1 + 1, 1).state == "delivered"
    assert store.totals("carrier:TATA", "2026-11") == [
        (("964", "USD", "delivered"), (1, 1, Decimal("0.01")))]
    assert store.count("carrier:TATA", "2026-11") == 1
    assert store.set_state("carrier:TATA", NOV_1 + 2, 1, "failed") is None
    with pytest.raises(ValueError):
        store.add(record(1, NOV_1 + 1))
    assert store.payers() == ["carrier:TATA"]


@given(st.integers(1, 2 ** 63), st.floats(0, 4e9), st.text(max_size=20),
       st.none() | st.text(max_size=8),
       st.decimals(min_value=0, max_value=10 ** 6, places=6), st.booleans())
def test_packed_records_read_back_equal(id, time, origin, tariff, price,
                                        prepaid):
    """A packed record reads back equal, amounts exact to the last digit
    and of type Decimal."""
    r = Record(id, time, "originating", "tenant:acme", "origin-pays",
               origin, "351912345678", 2, 2, tariff, "351", price,
               price * 2, "EUR", prepaid, "accepted")
    back = unpack(pack(r))
    assert back == r and type(back.amount) is Decimal
    assert str(back.price) == str(price)


def test_buckets_keep_packed_records_and_read_old_ones():
    """Buckets keep a record as one bytes value; a record stored before
    records were packed (a Record in the bucket) is still read, changed
    and counted like a packed one."""
    store = RecordStore()
    store.add(record(1, NOV_1 + 1))
    month = store.months[("carrier:TATA", "2026-11")]
    assert isinstance(month.records[(int((NOV_1 + 1) * 1000), 1)], bytes)
    old = record(2, NOV_1 + 2)
    store.add(old)
    month.records[old.key] = old            # as an older node wrote it
    assert store.get("carrier:TATA", NOV_1 + 2, 2) == old
    assert [r.id for r in store.records("carrier:TATA", NOV_1,
                                        DEC_1)] == [1, 2]
    assert store.set_state("carrier:TATA", NOV_1 + 2, 2,
                           "delivered").state == "delivered"
    assert isinstance(month.records[old.key], bytes)
    assert sorted(store.totals("carrier:TATA", "2026-11")) == [
        (("964", "USD", "accepted"), (1, 1, Decimal("0.01"))),
        (("964", "USD", "delivered"), (1, 1, Decimal("0.01")))]


def test_range_and_partial_month():
    """A range is half-open and may cut months; partial months settle
    from their records."""
    store = RecordStore()
    for i, t in enumerate((NOV_1, NOV_1 + 10, DEC_1 - 1, DEC_1, DEC_1 + 9)):
        store.add(record(i + 1, t))
    assert [r.id for r in store.records("carrier:TATA", NOV_1 + 10,
                                        DEC_1 + 9)] == [2, 3, 4]
    result = settle(store, "carrier:TATA", NOV_1 + 10, DEC_1 + 9,
                    billable_states("accepted"))
    assert (result.count, result.amount) == (3, Decimal("0.03"))


def test_volume_fee_tiers():
    """The smallest tier covering the volume applies; above the last, the
    last fee; no tiers, no fee."""
    tiers = [(1_000_000, Decimal("300")), (100_000, Decimal("50"))]
    assert volume_fee(tiers, 0) == Decimal("50")
    assert volume_fee(tiers, 100_000) == Decimal("50")
    assert volume_fee(tiers, 100_001) == Decimal("300")
    assert volume_fee(tiers, 5_000_000) == Decimal("300")
    assert volume_fee([], 10) == Decimal(0)


def test_settlement_months_and_fee():
    """Each month touched gets the fee of its volume."""
    store = RecordStore()
    store.add(record(1, NOV_1 + 5))
    store.add(record(2, DEC_1 + 5))
    store.add(record(3, DEC_1 + 6))
    result = settle(store, "carrier:TATA", NOV_1, JAN_1,
                    billable_states("accepted"),
                    [(1, Decimal("5")), (10, Decimal("7"))])
    assert result.months == (("2026-11", 1, Decimal("5")),
                             ("2026-12", 2, Decimal("7")))
    assert result.volume_fee == Decimal("12")


def test_billable_states():
    """Delivered counts only delivered; prepaid never counts returned
    reservations."""
    assert billable_states("delivered") == {"delivered"}
    assert billable_states("accepted") == ALL_STATES
    assert "failed" not in billable_states("accepted", prepaid=True)
    with pytest.raises(ValueError):
        billable_states("sometimes")


def test_csv():
    """The CSV has a header and one line per billable record, and its
    amounts add up to the settlement."""
    records = [record(1, NOV_1), record(2, NOV_1 + 1, state="failed"),
               record(3, NOV_1 + 2, price="0.015", units=3,
                      state="delivered")]
    text = export_csv(records, billable_states("delivered"))
    lines = text.splitlines()
    assert lines[0].startswith("id,time,direction,payer")
    assert lines[1] == ("3,2026-11-01T00:00:02.000Z,terminating,"
                        "carrier:TATA,carrier,44,9641,3,3,T,964,0.015,0.045,"
                        "USD,delivered")
    assert len(lines) == 2


STATES = sorted(ALL_STATES)
traffic = st.lists(st.tuples(
    st.integers(NOV_1 - 86400 * 40, JAN_1 + 86400 * 20),
    st.sampled_from(["964", "9647", "44", ""]),
    st.decimals(min_value=0, max_value=1, places=4),
    st.integers(1, 5), st.sampled_from(STATES),
    st.sampled_from(STATES)), max_size=60)


@settings(max_examples=60, deadline=None)
@example([(NOV_1 + 5, "964", Decimal("0.01"), 2, "accepted", "delivered"),
          (DEC_1 - 1, "44", Decimal("0.5"), 1, "accepted", "failed")],
         "accepted", True, NOV_1, 30 * 86400)
@given(traffic, st.sampled_from(["accepted", "delivered"]),
       st.booleans(), st.integers(NOV_1 - 86400 * 10, DEC_1),
       st.integers(0, 86400 * 60))
def test_sum_of_records_equals_settlement(items, rule, prepaid, start,
                                          length):
    """For random traffic with state changes, stored in a real ZODB, the
    sum of the billable records in a period equals the settlement total
    (which uses running totals for whole months)."""
    db = ZODB.DB(None)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        with tm:
            conn.root()["r"] = RecordStore()
        written = []
        with tm:
            store = conn.root()["r"]
            for i, (t, prefix, price, units, s1, s2) in enumerate(items):
                r = record(i + 1, t, prefix, str(price), units, s1)
                store.add(r)
                store.set_state(r.payer, t, r.id, s2)
                written.append(r._replace(state=s2))
        store = conn.root()["r"]
        billable = billable_states(rule, prepaid)
        end = start + length
        expected = sum_records([r for r in written
                                if start <= int(round(r.time * 1000)) / 1000
                                < end], billable)
        result = settle(store, "carrier:TATA", start, end, billable)
        assert result.amount == sum((a for _, _, a in expected.values()),
                                    Decimal(0))
        assert result.count == sum(c for c, _, _ in expected.values())
        assert result.units == sum(u for _, u, _ in expected.values())
    finally:
        tm.abort()
        conn.close()
        db.close()


def _set_state_on_records(store, time, id, state):
    """A state change made on whole records (unpack, replace, both totals,
    pack), independent of C{restate}, which C{set_state} itself uses."""
    month = store.months[("carrier:TATA", "2026-11")]
    key = record_key(time, id)
    old = unpack(month.records[key])
    if old.state == state:
        return old
    new = old._replace(state=state)
    month._add_total(old, -1)
    month._add_total(new, 1)
    month.records[key] = pack(new)
    return new


@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(
    ["accepted", "delivering", "delivered", "failed", "expired"])),
    max_size=20))
def test_restate_is_set_state(changes):
    """C{restate} (the charger's state change on packed fields) leaves the
    store as a change made on whole records does, byte for byte, totals
    and all, for new and for older unpacked records, and returns the
    fields before the change."""
    stores = RecordStore(), RecordStore()
    for store in stores:
        for i in range(3):
            store.add(record(i, NOV_1 + i, units=i + 1, price="0.05"))
        month = store.months[("carrier:TATA", "2026-11")]
        old = record(2, NOV_1 + 2, units=3, price="0.05")
        month.records[old.key] = old            # as an older node wrote it
    for i, state in changes:
        before = stores[1].get("carrier:TATA", NOV_1 + i, i)
        new = _set_state_on_records(stores[0], NOV_1 + i, i, state)
        fields = stores[1].restate("carrier:TATA", NOV_1 + i, i, state)
        assert new.state == state
        assert stores[1].get("carrier:TATA", NOV_1 + i, i) == new
        assert Record(*fields[:11], Decimal(fields[11]), Decimal(fields[12]),
                      *fields[13:]) == before
    a, b = (s.months[("carrier:TATA", "2026-11")] for s in stores)
    assert dict(a.records) == dict(b.records)
    assert dict(a.totals) == dict(b.totals)
    assert stores[1].restate("carrier:TATA", NOV_1 + 5, 9, "failed") is None
    assert stores[1].restate("tenant:x", NOV_1, 0, "failed") is None
