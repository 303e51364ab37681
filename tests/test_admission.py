"""The node's admission (L{appliance.admission}): storage backlog and
reactor lag refuse new work; refusals are counted, exposed and logged at
warning at most once a second."""
from twisted.internet.task import Clock
from twisted.logger import Logger

from appliance.admission import Admission, Refusals
from appliance.metrics import Metrics


def events_of(refusals):
    events = []
    refusals.log = Logger(observer=events.append)
    return events


def test_storage_backlog_refuses():
    """Past min_pending writes waiting, new work is refused ("storage")
    while they exceed what the storage committed in the last max_delay
    seconds; a faster commit rate admits more, up to max_pending; the
    rate is that of the last second."""
    pending = [0]
    clock = Clock()
    a = Admission(clock, lambda: pending[0], max_delay=0.2, min_pending=10,
                  max_pending=300)
    assert a.overloaded() is None
    pending[0] = 10
    assert a.overloaded() is None
    pending[0] = 11
    assert a.overloaded() == "storage"
    for _ in range(5):
        a.committed(200)            # 1000 writes/s: 200 may wait
        clock.advance(0.1)
    assert a.pending_limit() == 200
    pending[0] = 200
    assert a.overloaded() is None
    pending[0] = 201
    assert a.overloaded() == "storage"
    a.committed(5000)
    assert a.pending_limit() == 300
    clock.advance(1.5)
    assert a.pending_limit() == 10


def test_burst_within_peers_windows_admitted_by_default():
    """With the node's defaults, a quiet node's burst as large as 40 binds
    with windows of 50 (2,000 writes waiting) is admitted; a backlog of a
    full second's commits beyond that is refused."""
    pending = [2000]
    clock = Clock()
    a = Admission(clock, lambda: pending[0])
    assert a.overloaded() is None
    for _ in range(10):
        a.committed(500)            # 5,000 writes/s
        clock.advance(0.1)
    pending[0] = 5000
    assert a.overloaded() is None
    pending[0] = 5001
    assert a.overloaded() == "storage"


def test_reactor_lag_refuses_until_on_time():
    """A lag sample that ran later than max_lag while the process was busy
    refuses new work ("lag"); the same lag with the process idle (the box
    starved by others) does not; the next sample on time admits again;
    stopping leaves no timer."""
    clock = Clock()
    cpu = [0.0]
    a = Admission(clock, lambda: 0, max_lag=0.25, interval=0.05,
                  cpu=lambda: cpu[0])
    a.startService()
    clock.advance(0.05)
    assert a.lag == 0 and a.overloaded() is None
    cpu[0] += 0.5
    clock.advance(0.6)                  # the reactor was busy 0.55 s
    assert a.lag > 0.25 and a.overloaded() == "lag"
    clock.advance(0.05)
    assert a.lag == 0 and a.overloaded() is None
    cpu[0] += 0.05
    clock.advance(0.6)                  # late, but others had the CPU
    assert a.lag > 0.25 and a.overloaded() is None
    a.stopService()
    assert clock.getDelayedCalls() == []


def test_refusals_logged_once_a_second_and_exposed():
    """Refusals within a second give one warning with their counts by
    reason; they are in /metrics as appliance_refused_total; stop reports
    what is left and leaves no timer."""
    clock = Clock()
    metrics = Metrics()
    r = Refusals(clock, metrics)
    events = events_of(r)
    for _ in range(500):
        r.refused("smpp", "storage")
    r.refused("smpp", "window", 3)
    r.refused("http", "lag")
    assert events == []
    clock.advance(1)
    warned = sorted((e["listener"], e["total"], e["reasons"])
                    for e in events)
    assert warned == [("http", 1, "lag 1"),
                      ("smpp", 503, "storage 500, window 3")]
    assert all(e["log_level"].name == "warn" for e in events)
    text = metrics.text().decode()
    assert ('appliance_refused_total{listener="smpp",reason="storage"} '
            '500.0') in text
    r.refused("smpp", "lag")
    r.stop()
    assert len(events) == 3 and clock.getDelayedCalls() == []
    assert r.count("smpp") == 504 and r.count() == 505
