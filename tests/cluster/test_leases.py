"""Tests for L{appliance.cluster.leases}: the lease rules, pure."""
from appliance.cluster import leases


def test_epoch_of_and_range():
    """A message id's epoch is its upper 32 bits; an epoch's range holds
    exactly its ids."""
    assert leases.epoch_of((7 << 32) | 5) == 7
    lo, hi = leases.epoch_range(7)
    assert leases.epoch_of(lo) == leases.epoch_of(hi) == 7
    assert leases.epoch_of(lo - 1) == 6 and leases.epoch_of(hi + 1) == 8


def test_slot_of_handed_first():
    """A handed message belongs to the slot it was handed to, any other
    to its epoch's."""
    id = (3 << 32) | 1
    assert leases.slot_of(id, None) == 3
    assert leases.slot_of(id, {}) == 3
    assert leases.slot_of(id, {id: 9}) == 9
    assert leases.slot_of(id + 1, {id: 9}) == 3


def test_may_act_only_holder_inside_margin():
    """Only the holder acts, and only while more than the margin is left
    of its lease."""
    assert leases.may_act("a", 110.0, "a", 100.0, 1.0)
    assert not leases.may_act("a", 110.0, "b", 100.0, 1.0)
    assert not leases.may_act("a", 110.0, "a", 109.0, 1.0)
    assert not leases.may_act("a", 110.0, "a", 120.0, 1.0)


def test_takeable_only_lapsed_by_first_alive():
    """The first node alive by name takes the lapsed slots of others,
    never its own or a live one; another node takes nothing."""
    slots = {1: ("a", 90.0), 2: ("b", 120.0), 3: ("c", 99.0), 4: ("b", 80.0)}
    assert leases.takeable(slots, ["b", "c"], "b", 100.0) == [1, 3]
    assert leases.takeable(slots, ["b", "c"], "c", 100.0) == []
    # Before the lease runs out, nothing.
    assert leases.takeable(slots, ["b"], "b", 85.0) == []


def test_takeable_me_counts_alive():
    """A node that does not see its own record alive yet still counts."""
    assert leases.takeable({1: ("z", 0.0)}, [], "m", 1.0) == [1]


def test_hand_to():
    """A message goes to the first alive holder of its app's registration
    unless that is this node; registered nowhere or only on dead nodes:
    kept here."""
    assert leases.hand_to(("b",), ["a", "b"], "a") == "b"
    assert leases.hand_to(("a", "b"), ["a", "b"], "a") is None
    assert leases.hand_to(("b", "a"), ["a", "b"], "a") == "b"
    assert leases.hand_to(("c", "b"), ["a", "b"], "a") == "b"
    assert leases.hand_to(("c",), ["a", "b"], "a") is None
    assert leases.hand_to((), ["a", "b"], "a") is None
