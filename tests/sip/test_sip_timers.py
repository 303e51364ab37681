"""
Tests for L{appliance.sip.timers.TimerWheel}: many timers on one delayed
call of the clock.
"""
from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel

from appliance.sip.timers import TimerWheel
from appliance.sip.transaction import TimerSettings, TransactionLayer


def test_timers_fire_at_their_deadline_in_order() -> None:
    """Timers of several delays fire at their exact deadlines, earliest
    first, never early."""
    clock = Clock()
    wheel = TimerWheel(clock)
    fired: list[str] = []
    wheel.call_later(32, fired.append, "J")
    wheel.call_later(0.5, fired.append, "E1")
    clock.advance(0.25)
    wheel.call_later(0.5, fired.append, "E2")
    wheel.call_later(5, fired.append, "K")
    clock.advance(0.25 - 1e-9)
    assert fired == []
    clock.advance(1e-9)
    assert fired == ["E1"]
    clock.advance(0.25)
    assert fired == ["E1", "E2"]
    clock.advance(40)
    assert fired == ["E1", "E2", "K", "J"]
    assert clock.getDelayedCalls() == [] and wheel.pending == 0


def test_one_delayed_call_for_many_timers() -> None:
    """A thousand timers hold one delayed call of the clock, not a thousand."""
    clock = Clock()
    wheel = TimerWheel(clock)
    fired = []
    for i in range(1000):
        wheel.call_later(32 if i % 2 else 5, fired.append, i)
        clock.advance(0.001)
    assert len(clock.getDelayedCalls()) == 1 and wheel.pending == 1000
    clock.advance(60)
    assert sorted(fired) == list(range(1000))
    assert clock.getDelayedCalls() == []


def test_cancel_and_leave_the_clock_empty() -> None:
    """A cancelled timer does not fire; once none is pending the wheel's
    delayed call is cancelled too."""
    clock = Clock()
    wheel = TimerWheel(clock)
    fired = []
    a = wheel.call_later(1, fired.append, "a")
    b = wheel.call_later(2, fired.append, "b")
    a.cancel()
    assert not a.active() and b.active()
    clock.advance(1.5)
    assert fired == []
    b.cancel()
    b.cancel()  # twice is harmless
    assert clock.getDelayedCalls() == [] and wheel.pending == 0
    c = wheel.call_later(1, fired.append, "c")
    clock.advance(1)
    assert fired == ["c"] and not c.active()
    assert clock.getDelayedCalls() == []


def test_timer_scheduling_and_cancelling_from_a_timer() -> None:
    """A timer may schedule and cancel others while the wheel runs."""
    clock = Clock()
    wheel = TimerWheel(clock)
    fired = []
    later = wheel.call_later(3, fired.append, "later")

    def first() -> None:
        fired.append("first")
        later.cancel()
        wheel.call_later(0, fired.append, "now")
        wheel.call_later(1, fired.append, "next")
    wheel.call_later(1, first)
    clock.advance(1)
    assert fired == ["first", "now"]
    clock.advance(5)
    assert fired == ["first", "now", "next"]
    assert clock.getDelayedCalls() == []


def test_failing_timer_is_logged_and_others_fire() -> None:
    """An exception from one timer is logged; the next one still fires."""
    clock = Clock()
    wheel = TimerWheel(clock)
    events: list[dict] = []
    wheel.log = Logger(observer=events.append)
    fired = []
    wheel.call_later(1, lambda: 1 / 0)
    wheel.call_later(1, fired.append, "ok")
    clock.advance(1)
    assert fired == ["ok"]
    assert any(e["log_level"] is LogLevel.critical and "log_failure" in e for e in events)


def test_stop_cancels_everything() -> None:
    """stop() cancels every pending timer and the delayed call."""
    clock = Clock()
    wheel = TimerWheel(clock)
    timers = [wheel.call_later(d, lambda: None) for d in (1, 2, 3)]
    wheel.stop()
    assert clock.getDelayedCalls() == [] and not any(t.active() for t in timers)


def test_layer_transactions_share_one_delayed_call() -> None:
    """Client transactions of a layer run their timers E and F on the
    layer's wheel: one delayed call for all of them."""
    try:
        from tests.sip.test_sip_transaction import FakeTransport, RecordingUser, request
    except ImportError:  # rootdir-relative import mode
        from test_sip_transaction import FakeTransport, RecordingUser, request  # type: ignore
    clock = Clock()
    layer = TransactionLayer(RecordingUser(), clock, TimerSettings())
    transport = FakeTransport(reliable=False)
    for i in range(50):
        layer.send_request(request("MESSAGE", branch=f"z9hG4bKw{i}"), transport,
                           ("192.0.2.1", 5060))
    assert len(layer.transactions()) == 50 and len(clock.getDelayedCalls()) == 1
    clock.advance(0.5)
    assert len(transport.sent) == 100      # each sent once, then retransmitted by E
    layer.stop()
    assert clock.getDelayedCalls() == []
