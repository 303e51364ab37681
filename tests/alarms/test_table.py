"""The alarm table: raise, change, clear, bounded history."""
import pytest

from appliance.alarms.table import AlarmTable


def test_raise_then_clear():
    """A raised alarm is active until cleared; both changes are in the
    history, and raising it again unchanged is no change."""
    t = AlarmTable()
    e = t.raise_alarm("smpp-connection-down", "smsc1", "major", "down", 10)
    assert e.severity == "major" and e.since == 10
    assert t.raise_alarm("smpp-connection-down", "smsc1", "major", "down",
                         11) is None
    assert [a.resource for a in t.active()] == ["smsc1"]
    c = t.clear("smpp-connection-down", "smsc1", "up again", 20)
    assert c.severity == "cleared" and c.since == 10 and c.at == 20
    assert t.active() == []
    assert t.clear("smpp-connection-down", "smsc1", "again", 21) is None
    assert [h.severity for h in t.history] == ["major", "cleared"]


def test_unknown_alarm_refused():
    """An alarm the node does not declare, or severity cleared, is refused."""
    t = AlarmTable()
    with pytest.raises(ValueError):
        t.raise_alarm("nonsense", "x", "major", "", 0)
    with pytest.raises(ValueError):
        t.raise_alarm("queue-high", "node", "cleared", "", 0)


def test_history_bounded_and_active_sorted():
    """History keeps the last N changes; active alarms sort most severe
    first."""
    t = AlarmTable(limit=3)
    t.raise_alarm("commit-latency", "node", "warning", "slow", 1)
    t.raise_alarm("m3ua-no-asp-active", "node", "critical", "none", 2)
    t.raise_alarm("queue-high", "node", "major", "deep", 3)
    t.clear("queue-high", "node", "ok", 4)
    assert len(t.history) == 3
    assert [e.severity for e in t.active()] == ["critical", "warning"]


def test_update_clears_only_owned():
    """update() raises what holds and clears only the alarms it evaluated."""
    t = AlarmTable()
    t.raise_alarm("queue-high", "node", "major", "deep", 1)
    t.raise_alarm("smpp-connection-down", "a", "major", "down", 1)
    events = t.update(["smpp-connection-down"],
                      {("smpp-connection-down", "b"): ("major", "down")}, 2)
    assert [(e.resource, e.severity) for e in events] == [
        ("b", "major"), ("a", "cleared")]
    assert {e.alarm for e in t.active()} == {"queue-high",
                                             "smpp-connection-down"}
