"""Tests for L{appliance.messaging.states}: the pure next-state rule."""
import pytest

from appliance.messaging.states import next_state, retry_delay
from appliance.messaging.vocabulary import MessageView

SCHEDULE = (30, 120)


def view(attempts=0, validity=1000.0):
    return MessageView(1, "s", "r", "acct", "t", "gsm7", 1, 0.0, attempts,
                       validity)


@pytest.mark.parametrize("kind", ["delivered", "failed", "expired"])
def test_final_kinds(kind):
    """A final kind is that final state, with nothing scheduled."""
    n = next_state(kind, "why", view(), 10, SCHEDULE)
    assert (n.state, n.next_attempt, n.reason, n.final) == \
        (kind, None, "why", True)


def test_retry_follows_schedule_and_validity():
    """A retry waits by the schedule (last value repeating), never past
    the validity."""
    assert next_state("retry", "", view(0), 10, SCHEDULE).next_attempt == 40
    assert next_state("retry", "", view(1), 10, SCHEDULE).next_attempt == 130
    assert next_state("retry", "", view(5), 10, SCHEDULE).next_attempt == 130
    late = next_state("retry", "", view(1, validity=50), 10, SCHEDULE)
    assert (late.state, late.next_attempt, late.retry) == \
        ("delivering", 50, True)
    assert retry_delay(SCHEDULE, 0) == 30


def test_retry_at_once_after_register():
    """The account registered again during the attempt: try again now."""
    n = next_state("retry", "", view(), 20, SCHEDULE, started=10,
                   online_since=15)
    assert n.next_attempt == 20
    n = next_state("retry", "", view(), 20, SCHEDULE, started=10,
                   online_since=5)
    assert n.next_attempt == 50


def test_offline_forwarded_and_expiry():
    """Offline waits (accepted) and forwarded waits (delivering) until the
    validity; retry or offline after it is expired."""
    off = next_state("offline", "", view(), 10, SCHEDULE)
    assert (off.state, off.next_attempt, off.final) == \
        ("accepted", 1000, False)
    fwd = next_state("forwarded", "ok", view(), 10, SCHEDULE)
    assert (fwd.state, fwd.next_attempt) == ("delivering", 1000)
    gone = next_state("offline", "", view(), 1000, SCHEDULE)
    assert (gone.state, gone.reason, gone.kind) == \
        ("expired", "validity period ended", "expired")
    assert next_state("retry", "timeout", view(), 1001,
                      SCHEDULE).reason == "timeout"


def test_unknown_kind():
    """An unknown kind is a ValueError."""
    with pytest.raises(ValueError):
        next_state("bounced", "", view(), 10, SCHEDULE)
