"""
The missed-call decisions as pure functions: cases, subcases, CLIR,
blacklist and the folding of repeated calls.
"""
from appliance.notify import decide as D


def trig(case, restricted=False, a="491700", b="491800", at=100.0):
    return D.Trigger("isup", case, a, b, "4930100", restricted, at, case)


def test_cases_map_from_sip_and_isup():
    """SIP user-busy is busy, no-answer no reply, unavailable and any other
    reason unreachable; ISUP 1 busy, 2 no reply, anything else unreachable."""
    assert D.sip_case("user-busy") == "busy"
    assert D.sip_case("no-answer") == "no-reply"
    assert D.sip_case("unavailable") == "unreachable"
    assert D.sip_case("unconditional") == "unreachable"
    assert D.isup_case(1) == "busy"
    assert D.isup_case(2) == "no-reply"
    assert D.isup_case(3) == D.isup_case(None) == "unreachable"


def test_plan_per_case():
    """Busy sends Who Called at once, no reply nothing, unreachable probes."""
    assert D.plan(trig("busy")) == D.NOW
    assert D.plan(trig("no-reply")) == D.NOTHING
    assert D.plan(trig("unreachable")) == D.PROBE


def test_clir_sends_nothing_in_every_case():
    """A restricted presentation leads to nothing, whatever the case."""
    for case in D.CASES:
        assert D.plan(trig(case, restricted=True)) == D.NOTHING


def test_blacklist():
    """A blacklisted B gets no busy SMS; unreachable still probes unless
    both parties opted out."""
    assert D.plan(trig("busy"), {"491800"}) == D.NOTHING
    assert D.plan(trig("unreachable"), {"491800"}) == D.PROBE
    assert D.plan(trig("unreachable"), {"491800", "491700"}) == D.NOTHING


def test_after_probe_subcases():
    """Subcase 1 (MSC absent) and 2 (HLR absent) remember; subcase 3
    (delivered) sends both; unknown subscribers and timeouts drop."""
    assert D.after_probe("ok", "absentSubscriberSM") == D.REMEMBER
    assert D.after_probe("absent", None) == D.REMEMBER
    assert D.after_probe("ok", "ok") == D.BOTH
    assert D.after_probe("ok", "sm-DeliveryFailure",
                         "memoryCapacityExceeded") == D.REMEMBER
    assert D.after_probe("unknown", None) == D.DROP
    assert D.after_probe("timeout", None) == D.DROP
    assert D.after_probe("ok", "timeout") == D.DROP


def test_fold_counts_and_keeps_last_time():
    """Five calls fold into one entry: first and last time, count 5."""
    entry = None
    for n in range(5):
        entry = D.fold(entry, trig("unreachable", at=100.0 + n))
    assert (entry.first, entry.last, entry.count) == (100.0, 104.0, 5)
    assert D.expired(entry, 104.0 + 11, 10)
    assert not D.expired(entry, 104.0 + 9, 10)
    assert not D.expired(entry, 1e12, 0)
