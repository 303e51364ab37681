"""The alarm service on a Clock: conditions read each interval raise and
clear alarms, each change is a trap to every manager, settings apply at
once, nothing is left scheduled after stop."""
import io

from pyasn1.codec.ber import decoder
from pysnmp.proto.api import v2c
from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher

from appliance.alarms import snmp
from appliance.alarms.model import KEY
from appliance.alarms.service import AlarmService, Readers
from appliance.application import memory_storage
from appliance.logs import observer
from appliance.shell.script import run_script


class Wire:
    """A UDP transport that keeps what is written."""

    def __init__(self):
        self.sent = []

    def write(self, data, addr):
        self.sent.append((data, addr))


def configure(storage, *lines):
    r = run_script(storage, "configure terminal\n" + "\n".join(lines)
                   + "\nend\n", user="t", source="t")
    assert r.ok, r.text


def make(readers, **kw):
    clock = Clock()
    storage = memory_storage(reactor=clock)
    service = AlarmService(storage, clock, readers, **kw)
    service.sender.transport = Wire()
    return clock, storage, service


def test_association_down_raises_and_return_clears():
    """The association going down raises m3ua-association-down (major)
    and m3ua-no-asp-active (critical) at the next check, one v2c trap
    each to the manager; its return clears both with alarmCleared traps;
    show alarms' tables hold them."""
    state = {"stp": "ASP-ACTIVE"}
    clock, storage, service = make(Readers(
        associations=lambda: list(state.items())), interval=5)
    configure(storage, "snmp-manager noc", " address 127.0.0.1",
              " port 10162", " community secret", " exit")
    service.startService()
    clock.advance(5)
    assert service.table.active() == []
    state["stp"] = "ASP-DOWN"
    clock.advance(4)
    assert service.table.active() == []
    clock.advance(1)
    assert [(a.alarm, a.severity) for a in service.table.active()] == [
        ("m3ua-no-asp-active", "critical"),
        ("m3ua-association-down", "major")]
    wire = service.sender.transport.sent
    assert len(wire) == 2 and {a for _, a in wire} == {("127.0.0.1", 10162)}
    msg, _ = decoder.decode(wire[0][0], asn1Spec=v2c.Message())
    assert bytes(v2c.apiMessage.get_community(msg)) == b"secret"
    vbs = dict((tuple(o), v) for o, v in v2c.apiTrapPDU.get_varbinds(
        v2c.apiMessage.get_pdu(msg)))
    assert tuple(vbs[snmp.SNMP_TRAP_OID]) == snmp.ALARM_RAISED
    state["stp"] = "ASP-ACTIVE"
    clock.advance(5)
    assert service.table.active() == []
    assert len(wire) == 4
    msg, _ = decoder.decode(wire[3][0], asn1Spec=v2c.Message())
    vbs = dict((tuple(o), v) for o, v in v2c.apiTrapPDU.get_varbinds(
        v2c.apiMessage.get_pdu(msg)))
    assert tuple(vbs[snmp.SNMP_TRAP_OID]) == snmp.ALARM_CLEARED
    headers, rows = service.shell_table("history")
    assert sorted(r[1] for r in rows) == ["cleared", "cleared",
                                          "critical", "major"]
    assert service.statistics()["traps_sent"] == 4
    service.stopService()
    assert clock.getDelayedCalls() == []


def test_thresholds_from_the_shell():
    """A threshold set in the shell applies at the next check, and its
    removal goes back to the default."""
    waiting = [50]
    clock, storage, service = make(Readers(waiting=lambda: waiting[0]))
    service.startService()
    clock.advance(5)
    assert service.table.active() == []
    configure(storage, "alarm threshold queue 40")
    clock.advance(5)
    assert [a.alarm for a in service.table.active()] == ["queue-high"]
    configure(storage, "no alarm threshold queue")
    clock.advance(5)
    assert service.table.active() == []
    service.stopService()


def test_commit_latency_from_the_batch_observer():
    """A slow batched commit (the storage's batch_observer) raises
    commit-latency at the next check; a quiet interval clears it."""
    clock, storage, service = make(Readers())
    service.startService()
    service.observe_commit(10, 0.9)
    clock.advance(5)
    assert [a.alarm for a in service.table.active()] == ["commit-latency"]
    clock.advance(5)
    assert service.table.active() == []
    service.stopService()


def test_failing_reader_is_logged_not_fatal():
    """A reader that raises is treated as absent; the check goes on."""
    def broken():
        raise RuntimeError("boom")
    clock, storage, service = make(Readers(associations=broken,
                                           connections=lambda: [("c", 0)]))
    service.startService()
    clock.advance(5)
    assert [a.alarm for a in service.table.active()] == [
        "smpp-connection-down"]
    service.stopService()


def test_v3_manager_gets_v3_traps():
    """A manager with a user gets v3 traps from our engine id, with the
    keys the shell localized."""
    clock, storage, service = make(Readers(connections=lambda: [("c", 0)]))
    configure(storage, "snmp-manager noc3", " address 127.0.0.1",
              " user noc", " auth sha authpass1", " priv aes privpass1",
              " exit")
    service.startService()
    clock.advance(5)
    data, _ = service.sender.transport.sent[0]
    from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
    msg, _ = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert bytes(msg["msgGlobalData"]["msgFlags"]) == b"\x03"
    engine = storage.domain(KEY).engine_id
    assert bytes.fromhex(engine) in data
    service.stopService()


def test_logging_level_applies_at_once():
    """logging level sip debug shows SIP's debug lines right away, other
    components stay at the start level; no logging level goes back."""
    out = io.StringIO()
    log_filter = observer("info", out, environ={})
    clock, storage, service = make(Readers(), log_filter=log_filter)
    pub = LogPublisher(log_filter)
    sip = Logger(namespace="appliance.sip.transaction", observer=pub)
    smpp = Logger(namespace="appliance.smpp.server", observer=pub)
    service.startService()
    sip.debug("sip one")
    configure(storage, "logging level sip debug")
    sip.debug("sip two")
    smpp.debug("smpp two")
    configure(storage, "logging level all error", "logging level smpp info")
    smpp.info("smpp three")
    sip.info("sip three")
    configure(storage, "no logging level sip", "no logging level all",
              "no logging level smpp")
    sip.debug("sip four")
    sip.info("sip five")
    text = out.getvalue()
    assert "sip two" in text and "sip five" in text and "smpp three" in text
    for line in ("sip one", "smpp two", "sip four"):
        assert line not in text
    # sip at debug still outranks all at error
    assert "sip three" in text
    service.stopService()


def test_check_interval_from_the_shell():
    """alarm check-interval changes the period of the running checks."""
    clock = Clock()
    storage = memory_storage(reactor=clock)
    service = AlarmService(storage, clock, Readers(
        connections=lambda: [("c", 0)]))
    service.sender.transport = Wire()
    service.startService()
    configure(storage, "alarm check-interval 1")
    clock.advance(1)
    assert [a.alarm for a in service.table.active()] == [
        "smpp-connection-down"]
    service.stopService()
    assert clock.getDelayedCalls() == []


class FailingWire(Wire):
    """A UDP transport that cannot write to one address."""

    def __init__(self, bad):
        super().__init__()
        self.bad = bad

    def write(self, data, addr):
        if addr[0] == self.bad:
            raise OSError("network unreachable")
        super().write(data, addr)


def test_trap_failure_counted_and_others_served():
    """A trap that cannot be written to one manager is logged with its
    traceback and counted (C{traps_failed}); the other manager still gets
    its trap."""
    from twisted.logger import LogLevel, capturedLogs
    state = {"stp": "ASP-ACTIVE"}
    clock, storage, service = make(Readers(
        associations=lambda: list(state.items())), interval=5)
    service.sender.transport = FailingWire("127.0.0.2")
    configure(storage, "snmp-manager bad", " address 127.0.0.2", " exit",
              "snmp-manager good", " address 127.0.0.1", " exit")
    service.startService()
    clock.advance(5)
    state["stp"] = "ASP-DOWN"
    with capturedLogs() as events:
        clock.advance(5)
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 2
    assert all(e["log_level"] == LogLevel.critical for e in failures)
    assert failures[0]["log_failure"].check(OSError)
    assert {a for _, a in service.sender.transport.sent} == {
        ("127.0.0.1", 162)}
    stats = service.statistics()
    assert (stats["traps_sent"], stats["traps_failed"]) == (2, 2)
    service.stopService()
