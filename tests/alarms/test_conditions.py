"""The alarm conditions over one check's readings and the thresholds."""
from appliance.alarms.conditions import Conditions, Readings
from appliance.alarms.model import THRESHOLDS

DEFAULT = {n: d for n, (d, _) in THRESHOLDS.items()}.__getitem__


def test_m3ua():
    """An association not ASP-ACTIVE is major; none active is critical."""
    c = Conditions()
    out = c.evaluate(Readings(associations=(("stp1", "ASP-ACTIVE"),
                                            ("stp2", "ASP-DOWN"))), DEFAULT)
    assert out == {("m3ua-association-down", "stp2"):
                   ("major", "M3UA association stp2 is ASP-DOWN")}
    out = c.evaluate(Readings(associations=(("stp1", "ASP-INACTIVE"),)),
                     DEFAULT)
    assert out[("m3ua-no-asp-active", "node")][0] == "critical"
    assert c.evaluate(Readings(associations=()), DEFAULT) == {}


def test_smpp_connection():
    """A connection with no bound bind is down."""
    out = Conditions().evaluate(Readings(connections=(("a", 0), ("b", 2))),
                                DEFAULT)
    assert list(out) == [("smpp-connection-down", "a")]


def test_hlr_timeouts_per_interval():
    """HLR timeouts count per interval: the first check only remembers
    the counter; an increase above the threshold raises, a quiet interval
    does not."""
    c = Conditions()
    limit = {"hlr-timeouts": 3, "queue": 10, "commit-latency": 100}.get
    assert c.evaluate(Readings(timeouts=100), limit) == {}
    assert c.evaluate(Readings(timeouts=103), limit) == {}
    out = c.evaluate(Readings(timeouts=107), limit)
    assert out[("hlr-timeouts", "node")][0] == "minor"
    assert c.evaluate(Readings(timeouts=107), limit) == {}


def test_queue_and_commit_latency():
    """The queue and the slowest commit raise above their thresholds."""
    limit = {"hlr-timeouts": 3, "queue": 10, "commit-latency": 100}.get
    out = Conditions().evaluate(Readings(waiting=11, commit_ms=100.5), limit)
    assert out[("queue-high", "node")][0] == "major"
    assert out[("commit-latency", "node")][0] == "warning"
    assert Conditions().evaluate(Readings(waiting=10, commit_ms=100),
                                 limit) == {}
