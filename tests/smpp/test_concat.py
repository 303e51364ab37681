"""
Tests for L{appliance.smpp.concat}: reassembly of concatenated messages.
"""
import pytest
from hypothesis import given, settings, strategies as st

from appliance.smpp import concat as concat_module
from appliance.smpp.concat import (
    DELIVER_PARTIAL, FAIL, GroupKey, Incomplete, ReassemblyFull, Reassembler)
from appliance.sms.segment import encode_for_sms
from appliance.sms.text import decode_short_message
from appliance.sms.udh import ConcatenationError, concatenation_from_udh, split_user_data

KEY = ("Carrier1", "AsiaCell", "111222333", 42)


class FakeClock:
    """A settable clock for the Reassembler."""

    def __init__(self, now=1000.0):
        """Start at C{now} seconds."""
        self.now = now

    def __call__(self):
        """Return the current time."""
        return self.now


def make(timeout=60.0, **kw):
    """A Reassembler on a fresh L{FakeClock} at 1000.0, and that clock."""
    clock = FakeClock()
    return clock, Reassembler(clock, timeout, **kw)


def test_in_order_parts_complete():
    """Three parts in order give the whole text on the third and nothing before."""
    _, r = make()
    assert r.add(*KEY, 1, 3, "Hel") is None
    assert r.add(*KEY, 2, 3, "lo ") is None
    assert len(r) == 1
    assert r.add(*KEY, 3, 3, "world") == "Hello world"
    assert len(r) == 0


def test_out_of_order_parts_join_in_sequence():
    """Parts arriving out of order are joined in sequence order."""
    _, r = make()
    assert r.add(*KEY, 3, 3, "C") is None
    assert r.add(*KEY, 1, 3, "A") is None
    assert r.add(*KEY, 2, 3, "B") == "ABC"


def test_duplicate_part_ignored():
    """A part received twice is counted once; the first copy is kept."""
    _, r = make()
    r.add(*KEY, 1, 2, "first")
    assert r.add(*KEY, 1, 2, "again") is None
    assert r.duplicates == 1
    assert r.add(*KEY, 2, 2, "!") == "first!"


def test_retransmission_after_completion_ignored():
    """A part resent after its message completed is ignored, not the start of a ghost message."""
    clock, r = make()
    r.add(*KEY, 1, 2, "a")
    assert r.add(*KEY, 2, 2, "b") == "ab"
    clock.now += 5
    assert r.add(*KEY, 2, 2, "b") is None
    assert len(r) == 0 and r.duplicates == 1
    assert r.expired(clock.now + 1000) == []


def test_reference_reuse_with_new_text_starts_new_message():
    """After completion, a part with the same key but new text starts a new message."""
    _, r = make()
    r.add(*KEY, 1, 2, "a")
    r.add(*KEY, 2, 2, "b")
    assert r.add(*KEY, 1, 2, "x") is None
    assert r.add(*KEY, 2, 2, "y") == "xy"


def test_keys_do_not_mix():
    """Parts with the same reference but another origin, sender, recipient or total stay apart."""
    _, r = make()
    r.add("Carrier1", "A", "1", 5, 1, 2, "c1-")
    r.add("Carrier2", "A", "1", 5, 1, 2, "c2-")
    r.add("Carrier1", "B", "1", 5, 1, 2, "b-")
    r.add("Carrier1", "A", "2", 5, 1, 2, "r2-")
    r.add("Carrier1", "A", "1", 5, 1, 3, "t3-")
    assert len(r) == 5
    assert r.add("Carrier2", "A", "1", 5, 2, 2, "end") == "c2-end"


def test_single_part_returned_at_once():
    """A part that says total 1 is the whole message and holds no state."""
    _, r = make()
    assert r.add(*KEY, 1, 1, "short") == "short"
    assert len(r) == 0


@pytest.mark.parametrize("seq, total", [(0, 2), (3, 2), (1, 0), (1, 256), (1, "2")])
def test_bad_sequence_or_total(seq, total):
    """Sequence 0, sequence beyond total and totals outside 1..255 are refused."""
    _, r = make()
    with pytest.raises(ConcatenationError):
        r.add(*KEY, seq, total, "x")


def test_bad_text_type():
    """Bytes instead of text are refused with TypeError."""
    _, r = make()
    with pytest.raises(TypeError):
        r.add(*KEY, 1, 2, b"x")


def test_timeout_delivers_partial_with_markers():
    """After the timeout an incomplete message is handed back with a marker for each missing part."""
    clock, r = make(timeout=60)
    r.add(*KEY, 1, 3, "Hello ")
    clock.now += 30
    r.add(*KEY, 3, 3, " bye")
    assert r.expired(clock.now) == []
    assert r.next_deadline() == 1060.0
    clock.now = 1060.0
    [inc] = r.expired()
    assert inc == Incomplete(GroupKey(*KEY, 3), 1000.0, ((1, "Hello "), (3, " bye")), (2,),
                             "Hello [part 2 of 3 missing] bye")
    assert len(r) == 0 and r.next_deadline() is None


def test_timeout_fail_policy_has_no_text():
    """Under the fail policy an expired message carries no text, only what is missing."""
    clock, r = make(timeout=10, policy=FAIL)
    r.add(*KEY, 2, 2, "tail")
    [inc] = r.expired(clock.now + 10)
    assert inc.text is None and inc.missing == (1,) and inc.parts == ((2, "tail"),)


def test_expired_oldest_first_and_only_old_ones():
    """expired returns only groups at least the timeout old, oldest first."""
    clock, r = make(timeout=10)
    r.add("o", "s", "r", 1, 1, 2, "x")
    clock.now += 4
    r.add("o", "s", "r", 2, 1, 2, "y")
    clock.now += 4
    r.add("o", "s", "r", 3, 1, 2, "z")
    expired = r.expired(1014.0)
    assert [i.key.reference for i in expired] == [1, 2]
    assert len(r) == 1


def test_late_part_delivered_alone_under_deliver_partial():
    """A part arriving after its group expired is returned alone with a late marker."""
    clock, r = make(timeout=10)
    r.add(*KEY, 1, 2, "first")
    clock.now += 10
    r.expired()
    clock.now += 1
    assert r.add(*KEY, 2, 2, "second") == "[part 2 of 2, late] second"
    assert r.late_parts == 1
    assert r.add(*KEY, 1, 2, "first") is None  # retransmission of a part delivered partially
    assert len(r) == 0


def test_late_part_dropped_under_fail():
    """Under the fail policy a late part is dropped and counted."""
    clock, r = make(timeout=10, policy=FAIL)
    r.add(*KEY, 1, 2, "first")
    r.expired(clock.now + 10)
    clock.now += 11
    assert r.add(*KEY, 2, 2, "second") is None
    assert r.late_parts == 1 and len(r) == 0


def test_memory_of_finished_groups_ends():
    """A timeout after completion, the same part opens a new message again."""
    clock, r = make(timeout=10)
    r.add(*KEY, 1, 2, "a")
    r.add(*KEY, 2, 2, "b")
    clock.now += 10
    r.expired()
    assert r.add(*KEY, 2, 2, "b") is None
    assert len(r) == 1 and r.duplicates == 0


def test_max_groups():
    """A new message beyond max_groups raises ReassemblyFull; parts of held messages still go in."""
    _, r = make(max_groups=2)
    r.add("o", "s", "r", 1, 1, 2, "a")
    r.add("o", "s", "r", 2, 1, 2, "b")
    with pytest.raises(ReassemblyFull):
        r.add("o", "s", "r", 3, 1, 2, "c")
    assert r.add("o", "s", "r", 1, 2, 2, "!") == "a!"


@pytest.mark.parametrize("kw", [{"policy": "drop"}, {"timeout": 0}, {"max_groups": 0},
                                {"missing_marker": "{nope}"}])
def test_bad_parameters(kw):
    """Bad policy, timeout, limit or marker are refused at construction."""
    args = {"timeout": 10, **kw}
    with pytest.raises((ValueError, KeyError)):
        Reassembler(FakeClock(), args.pop("timeout"), **args)


def test_custom_marker():
    """The missing-part marker is a parameter."""
    clock, r = make(timeout=1, missing_marker="<{sequence}/{total}?>")
    r.add(*KEY, 1, 2, "a")
    assert r.expired(clock.now + 1)[0].text == "a<2/2?>"


def test_export_import_round_trip():
    """Exported state is plain tuples; a new Reassembler importing it continues where the old left off."""
    clock, r = make(timeout=60)
    r.add(*KEY, 1, 3, "A")
    r.add(*KEY, 3, 3, "C")
    r.add("o", "s", "r", 9, 1, 2, "x")
    r.add("o", "s", "r", 9, 2, 2, "y")
    state = r.export_state()

    def plain(v):
        """Whether v is built only of tuples, str, int, float and None."""
        return (isinstance(v, (str, int, float, type(None)))
                or (type(v) is tuple and all(plain(i) for i in v)))
    assert plain(state)
    clock2 = FakeClock(clock.now + 1)
    r2 = Reassembler(clock2, 60)
    r2.import_state(state)
    assert len(r2) == 1
    assert r2.add("o", "s", "r", 9, 2, 2, "y") is None and r2.duplicates == 1
    assert r2.add(*KEY, 2, 3, "B") == "ABC"
    assert r2.export_state()[0] == ()


def test_import_keeps_expiry():
    """An imported group expires by its original first-part time."""
    clock, r = make(timeout=60)
    r.add(*KEY, 1, 2, "A")
    r2 = Reassembler(FakeClock(), 60)
    r2.import_state(r.export_state())
    assert r2.expired(1059.0) == []
    assert r2.expired(1060.0)[0].missing == (2,)


@pytest.mark.parametrize("state", [
    None, (), ((("o", "s", "r", 1, 2, 0.0, ((3, "x"),)),), ()),
    ((("o", "s", "r", 1, 2, 0.0, ((1, b"x"),)),), ()),
    ((), (("o", "s", "r", 1, 2, 0.0, ("a",)),)), ((("short",),), ()),
])
def test_import_refuses_bad_state(state):
    """A state not in export_state's shape raises ValueError and leaves the old state alone."""
    _, r = make()
    r.add(*KEY, 1, 2, "keep")
    with pytest.raises(ValueError):
        r.import_state(state)
    assert len(r) == 1


def _parts_of(text, reference):
    """Split text for SMS and decode each part as the SMPP server would."""
    enc = encode_for_sms(text, reference=reference)
    out = []
    if enc.parts == 1:
        return enc, out
    for seg in enc.segments:
        elements, body, udh_len = split_user_data(seg, enc.esm_class_flags)
        c = concatenation_from_udh(elements)
        out.append((c.reference, c.sequence, c.total,
                    decode_short_message(enc.data_coding, body, udh_length=udh_len, partial=True)))
    return enc, out


def test_arabic_three_parts_byte_exact():
    """A 3-part Arabic UCS-2 message, split then reassembled in any order, is byte-exact."""
    arabic = ("\u0645\u0631\u062d\u0628\u0627 \u0628\u0643\u0645 \u0641\u064a "
              "\u0639\u0631\u0648\u0636 \u0622\u0633\u064a\u0627 \u0633\u064a\u0644 ")
    text = (arabic * 8)[:190] + " \U0001F381"
    enc, parts = _parts_of(text, 77)
    assert enc.data_coding == 8 and enc.parts == 3
    _, r = make()
    results = [r.add("Carrier1", "AsiaCell", "111222333", ref, seq, total, t)
               for ref, seq, total, t in (parts[2], parts[0], parts[1])]
    assert results[:2] == [None, None]
    assert results[2].encode("utf-8") == text.encode("utf-8")


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=600),
       st.integers(0, 255), st.randoms())
def test_split_reassemble_property(text, reference, rnd):
    """Any text split for SMS and fed back in shuffled order, with duplicates, reassembles exactly."""
    enc, parts = _parts_of(text, reference)
    if enc.parts == 1:
        return
    feed = parts + parts[:1]
    rnd.shuffle(feed)
    _, r = make()
    results = [r.add("o", "s", "r", ref, seq, total, t) for ref, seq, total, t in feed]
    assert [x for x in results if x is not None] == [text]


def test_exports_exist():
    """Every name in __all__ is defined, and the policy names are as documented."""
    for name in concat_module.__all__:
        assert hasattr(concat_module, name), name
    assert (DELIVER_PARTIAL, FAIL) == ("deliver_partial", "fail")
