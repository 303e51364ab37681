"""
Tests for overload at the door (L{appliance.sip.overload}): new requests
beyond the per-second budget, while the reactor lags or while the storage's
batch is too deep get a stateless 503 with Retry-After; retransmissions of
requests already taken pass; refusals and kernel drops are counted, logged
at warning at most once a second and exposed in /metrics.
"""
from __future__ import annotations

from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel

from appliance.metrics import Metrics
from appliance.sip.overload import LoadShedder, udp_drops
from appliance.sip.service import SIPService

try:
    from tests.sip.sipbench import DOMAIN, Bench
except ImportError:  # rootdir-relative import mode
    from sipbench import DOMAIN, Bench  # type: ignore[no-redef]


def options(bench: Bench, branch: str) -> bytes:
    return bench.request("OPTIONS", f"sip:{DOMAIN}",
                         via=f"SIP/2.0/UDP 198.51.100.7:40000;branch=z9hG4bK{branch};rport")


def warnings(events: list[dict]) -> list[dict]:
    return [e for e in events if e["log_level"] is LogLevel.warn]


def test_budget_exceeded_gets_503_with_retry_after(tmp_path: Path) -> None:
    """Beyond max_requests_per_second, a new request gets 503 with
    Retry-After and no transaction; the next second it is served again."""
    bench = Bench(tmp_path, max_requests_per_second=2, retry_after=7)
    try:
        assert [bench.udp(options(bench, str(i)), settle=False)[-1].status
                for i in range(3)] == [200, 200, 503]
        refused = bench.udp(options(bench, "x"), settle=False)[-1]
        assert refused.status == 503 and refused.headers.get("retry-after") == "7"
        assert refused.to_address().tag and refused.call_id == "call-1"
        assert len(bench.service.layer.transactions()) == 2   # none for the 503s
        bench.reactor.advance(1)
        assert bench.udp(options(bench, "y"), settle=False)[-1].status == 200
        assert bench.service.shedder.refused["budget"] == 2
        assert bench.service.statistics()["dropped_503_budget"] == 2
    finally:
        bench.stop()


def test_retransmission_of_a_taken_request_is_not_refused(tmp_path: Path) -> None:
    """A retransmission of a request already taken gets its answer again,
    even when new requests are refused."""
    bench = Bench(tmp_path, max_requests_per_second=1)
    try:
        first = options(bench, "same")
        assert bench.udp(first, settle=False)[-1].status == 200
        assert bench.udp(options(bench, "other"), settle=False)[-1].status == 503
        assert bench.udp(first, settle=False)[-1].status == 200
    finally:
        bench.stop()


def test_lag_and_backlog_refuse_new_requests(tmp_path: Path) -> None:
    """A lagging reactor or too deep a storage backlog gets new requests a
    503; once it passes they are served again."""
    bench = Bench(tmp_path, overload_lag_ms=200, overload_backlog=10)
    shedder = bench.service.shedder
    try:
        shedder.lag = 0.3
        assert bench.udp(options(bench, "a"), settle=False)[-1].status == 503
        shedder.lag = 0.0
        assert bench.udp(options(bench, "b"), settle=False)[-1].status == 200
        shedder._backlog = lambda: 11
        assert bench.udp(options(bench, "c"), settle=False)[-1].status == 503
        shedder._backlog = lambda: 10
        assert bench.udp(options(bench, "d"), settle=False)[-1].status == 200
        assert (shedder.refused["lag"], shedder.refused["backlog"]) == (1, 1)
    finally:
        bench.stop()


def test_reactor_lag_is_measured_and_smoothed() -> None:
    """The probe measures how late it runs; one stall is capped, lasting
    lateness raises the smoothed lag past the threshold, and it decays."""
    clock = Clock()
    shedder = LoadShedder(clock, max_lag=0.5)
    shedder.start()
    clock.advance(0.1)
    assert shedder.lag == 0.0
    clock.advance(30)                      # one stall: capped at 2 x 0.5 s
    assert 0 < shedder.lag < 0.5 and shedder.admit() is None
    for _ in range(3):
        clock.advance(1.1)                 # lasting lateness
    assert shedder.lag > 0.5 and shedder.admit() == "lag"
    for _ in range(40):
        clock.advance(0.1)
    assert shedder.lag < 0.01 and shedder.admit() is None
    shedder.stop()
    assert clock.getDelayedCalls() == []


def test_refusals_logged_at_most_once_a_second() -> None:
    """A flood of refusals gives one warning per second with the counts,
    and the rest is logged when the flood ends."""
    clock = Clock()
    events: list[dict] = []
    shedder = LoadShedder(clock, max_rate=1)
    shedder.log = Logger(observer=events.append)
    shedder.start()
    clock.advance(1)
    results = [shedder.admit() for _ in range(100)]
    assert results[0] is None and set(results[1:]) == {"budget"}
    assert len(warnings(events)) == 1               # the first refusal, at once
    clock.advance(0.5)
    assert len(warnings(events)) == 1
    clock.advance(0.6)
    assert len(warnings(events)) == 2               # the 98 others
    assert "98 for budget" in warnings(events)[1]["log_format"].format(**warnings(events)[1])
    clock.advance(5)
    assert len(warnings(events)) == 2               # nothing new: silent
    shedder.stop()


def test_kernel_drops_counted_and_warned() -> None:
    """Datagrams the kernel dropped on our sockets are counted and logged at
    warning (once a second at most)."""
    clock = Clock()
    events: list[dict] = []
    drops = [3]
    shedder = LoadShedder(clock, drops=lambda: drops[0])
    shedder.log = Logger(observer=events.append)
    shedder.start()
    clock.advance(1.0)
    assert shedder.kernel_drops == 0 and warnings(events) == []
    drops[0] = 45
    clock.advance(1.1)
    assert shedder.kernel_drops == 42 and len(warnings(events)) == 1
    assert shedder.counters()["udp_kernel"] == 42
    shedder.stop()


def test_udp_drops_reads_proc_net_udp(tmp_path: Path) -> None:
    """The drop counter of our sockets is read from /proc/net/udp by inode."""
    table = tmp_path / "udp"
    table.write_text(
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
        "   uid  timeout inode ref pointer drops\n"
        " 1: 0100007F:13C4 00000000:0000 07 00000000:00000000 00:00000000 00000000"
        "     0        0 1111 2 0000000000000000 17\n"
        " 2: 0100007F:13C5 00000000:0000 07 00000000:00000000 00:00000000 00000000"
        "     0        0 2222 2 0000000000000000 5\n")
    assert udp_drops({1111}, (str(table),)) == 17
    assert udp_drops({1111, 2222}, (str(table), str(tmp_path / "none"))) == 22
    assert udp_drops({9}, (str(table),)) == 0


def test_drops_exposed_in_metrics(tmp_path: Path) -> None:
    """The 503s by reason and the kernel drops are in the node's /metrics."""
    bench = Bench(tmp_path, max_requests_per_second=1)
    try:
        metrics = Metrics()
        service = SIPService(bench.section, bench.node, core=bench.core, secret=b"k" * 32,
                             metrics=metrics)
        service.shedder.refused["budget"] = 3
        service.shedder.kernel_drops = 4
        text = metrics.text().decode()
        assert 'appliance_sip_drops{kind="503_budget"} 3.0' in text
        assert 'appliance_sip_drops{kind="udp_kernel"} 4.0' in text
    finally:
        bench.stop()



def test_socket_inode_of_no_socket():
    """A port without a file descriptor (a fake) or a closed one has no
    inode: None, not an error."""
    from appliance.sip.overload import socket_inode

    class Closed:
        def fileno(self):
            return -1
    assert socket_inode(object()) is None
    assert socket_inode(Closed()) is None
