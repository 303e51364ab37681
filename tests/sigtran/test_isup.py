"""
Tests for L{appliance.sigtran.isupcodec} (against pycrate's ISUP) and
L{appliance.sigtran.isup}: the circuit state machine on a clock.
"""
import pytest
from pycrate_mobile.ISUP import parse_ISUP
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from appliance.sigtran import isupcodec as I
from appliance.sigtran.interfaces import IMTPUser, ProtocolData
from appliance.sigtran.isup import ISUPLayer, T1
from tests.sigtran.fakes import FakeMTP, FakeSS7


def iam(cic=17, presentation=0, reason=I.REASON_NOT_REACHABLE):
    return I.ISUPMessage(cic, I.IAM, fixed=[b"\x00", b"\x20\x01", b"\x0a", b"\x00"],
                         variable=[I.encode_number(I.Number("447900999000", 4), "called")],
                         optional={I.P_CALLING: I.encode_number(I.Number("447700900002", 4, presentation), "calling"),
                                   I.P_ORIGINAL_CALLED: I.encode_number(I.Number("447900123456", 4, 0), "original"),
                                   I.P_REDIRECTION_NUMBER: I.encode_number(I.Number("447900123456", 4), "called"),
                                   I.P_REDIRECTION_INFO: I.encode_redirection(I.Redirection(3, reason, 1, reason))})


def test_iam_is_read_by_pycrate_and_back():
    """An IAM with calling (presentation), original called, redirection number and information round-trips through pycrate."""
    data = I.encode(iam(presentation=1))
    msg, err = parse_ISUP(data)
    assert err == 0 and type(msg).__name__ == "InitialAddress" and msg.to_bytes() == data
    assert msg["CIC"].get_val() == 17
    m = I.decode(data)
    calling = I.decode_number(m.optional[I.P_CALLING], "calling")
    assert (calling.digits, calling.presentation) == ("447700900002", 1)
    assert I.decode_redirection(m.optional[I.P_REDIRECTION_INFO]) == I.Redirection(3, 6, 1, 6)
    assert I.decode_number(m.variable[0], "called").digits == "447900999000"


@pytest.mark.parametrize("m, name", [
    (I.ISUPMessage(5, I.ACM, fixed=[b"\x15\x04"]), "AddressComplete"),
    (I.ISUPMessage(5, I.REL, variable=[I.encode_cause(17)]), "Release"),
    (I.ISUPMessage(5, I.RLC), "ReleaseComplete"),
    (I.ISUPMessage(5, I.RSC), "ResetCircuit"),
    (I.ISUPMessage(5, I.GRA, variable=[I.range_status(4, b"\x00")]), "CircuitGroupResetAck"),
    (I.ISUPMessage(5, I.CGBA, fixed=[b"\x00"], variable=[I.range_status(3, b"\x05")]), "CircuitGroupBlockingAck"),
    (I.ISUPMessage(5, I.BLA), "BlockingAck"),
    (I.ISUPMessage(5, I.CFN, variable=[I.encode_cause(97)]), "Confusion"),
    (I.ISUPMessage(5, I.UCIC), "UnequippedCIC"),
])
def test_answers_are_pycrates_messages(m, name):
    """Every message the node sends parses in pycrate as that message with identical bytes."""
    data = I.encode(m)
    msg, err = parse_ISUP(data)
    assert err == 0 and type(msg).__name__ == name and msg.to_bytes() == data
    assert I.decode(data) == m


@pytest.mark.parametrize("data", [b"", b"\x01\x00", b"\x01\x00\x01\x00", bytes.fromhex("01000c05"),
                                  bytes.fromhex("01000c0109"), bytes.fromhex("01001001050200")])
def test_malformed(data):
    """Truncated messages and bad pointers raise only L{ISUPError}."""
    with pytest.raises(I.ISUPError):
        I.decode(data)


class Fixture:
    def __init__(self):
        self.clock = Clock()
        self.ss7 = FakeSS7()
        self.mtp = self.ss7.mtp
        self.isup = ISUPLayer(self.mtp, self.clock, self.ss7.settings, release_cause=34, release_delay=3)

    def rx(self, m, opc=200):
        self.isup.mtp_transfer(ProtocolData(opc, 100, 5, 2, 0, 0, I.encode(m) if isinstance(m, I.ISUPMessage) else m))

    def sent(self):
        out = [I.decode(pd.data) for pd in self.mtp.sent]
        self.mtp.sent.clear()
        return out


@pytest.fixture
def f():
    return Fixture()


def test_interface(f):
    """The layer is an MTP user."""
    verifyObject(IMTPUser, f.isup)


def test_iam_acm_then_rel_after_the_timer_then_rlc(f):
    """IAM: ACM at once, REL with the configured cause after the configured delay, RLC makes the circuit idle."""
    calls = []
    f.isup.add_iam_listener(calls.append)
    f.rx(iam())
    acm, = f.sent()
    assert acm.type == I.ACM and acm.cic == 17
    call, = calls
    assert (call.calling.digits, call.calling.presentation, call.original_called.digits) == \
        ("447700900002", 0, "447900123456")
    assert call.redirection.reason == I.REASON_NOT_REACHABLE and call.redirection_number.digits == "447900123456"
    f.clock.advance(2.9)
    assert f.sent() == []
    f.clock.advance(0.1)
    rel, = f.sent()
    assert rel.type == I.REL and I.decode_cause(rel.variable[0]) == 34
    f.rx(I.ISUPMessage(17, I.RLC))
    assert f.isup.circuits[(200, 17)].state == "idle" and not f.clock.getDelayedCalls()


def test_listener_chooses_the_cause_and_rel_is_repeated(f):
    """An IAM listener may choose the cause (busy: 17); an unanswered REL is sent again after T1."""
    f.isup.add_iam_listener(lambda call: 17)
    f.rx(iam(reason=I.REASON_BUSY))
    f.clock.advance(3)
    f.sent()
    f.clock.advance(T1)
    rel, = f.sent()
    assert rel.type == I.REL and I.decode_cause(rel.variable[0]) == 17


def test_caller_hangs_up(f):
    """A REL from the switch during the call is answered RLC and the REL timer is cancelled."""
    f.rx(iam())
    f.sent()
    f.rx(I.ISUPMessage(17, I.REL, variable=[I.encode_cause(16)]))
    assert [m.type for m in f.sent()] == [I.RLC]
    assert not f.clock.getDelayedCalls()


def test_reset_and_blocking(f):
    """RSC gets RLC; GRS gets GRA; BLO/UBL get BLA/UBA; CGB/CGU get CGBA/CGUA with the same range and status."""
    f.rx(iam(cic=3))
    f.sent()
    f.rx(I.ISUPMessage(3, I.RSC))
    assert [m.type for m in f.sent()] == [I.RLC] and not f.clock.getDelayedCalls()
    f.rx(I.ISUPMessage(1, I.GRS, variable=[I.range_status(8)]))
    gra, = f.sent()
    assert gra.type == I.GRA and gra.variable == [b"\x07\x00"]
    f.rx(I.ISUPMessage(4, I.BLO))
    assert f.isup.circuits[(200, 4)].remote_blocked
    f.rx(I.ISUPMessage(4, I.UBL))
    assert [m.type for m in f.sent()] == [I.BLA, I.UBA]
    f.rx(I.ISUPMessage(1, I.CGB, fixed=[b"\x00"], variable=[b"\x03\x05"]))
    cgba, = f.sent()
    assert (cgba.type, cgba.fixed, cgba.variable) == (I.CGBA, [b"\x00"], [b"\x03\x05"])
    assert f.isup.circuits[(200, 3)].remote_blocked and not f.isup.circuits[(200, 2)].remote_blocked
    f.rx(I.ISUPMessage(1, I.CGU, fixed=[b"\x00"], variable=[b"\x03\x05"]))
    assert f.sent()[0].type == I.CGUA and not f.isup.circuits[(200, 3)].remote_blocked


def test_unexpected_messages_are_answered(f):
    """REL on an idle circuit: RLC; ANM on an idle circuit: RSC; unknown type: CFN 97; unknown CIC: UCIC; unreadable IAM: CFN 100."""
    f.rx(I.ISUPMessage(5, I.REL, variable=[I.encode_cause(16)]))
    f.rx(I.ISUPMessage(5, I.ANM))
    f.rx(bytes.fromhex("0500ee00"))
    f.rx(iam(cic=99))
    f.rx(bytes.fromhex("06000100000a00020a01"))
    rlc, rsc, cfn, ucic, cfn2 = f.sent()
    assert (rlc.type, rsc.type, ucic.type, ucic.cic) == (I.RLC, I.RSC, I.UCIC, 99)
    assert cfn.type == I.CFN and I.decode_cause(cfn.variable[0]) == 97 and cfn.variable[0][2] == 0xEE
    assert (cfn2.type, cfn2.cic, I.decode_cause(cfn2.variable[0])) == (I.CFN, 6, 100)
    assert f.isup.counters["unexpected"] == 2


def test_unreachable_switch_is_not_sent_to(f):
    """With the switch unavailable the ACM is not sent and nothing breaks."""
    f.mtp.unavailable.add(200)
    f.rx(iam())
    assert f.mtp.sent == []
    f.isup.stop()
    assert not [c for c in f.clock.getDelayedCalls() if c.active()]


def test_failing_listener_counted_and_call_answered(f):
    """An IAM listener that raises is logged with its traceback and
    counted (C{listener failed}); the next listener still chooses, and
    the call is answered ACM then REL as usual."""
    from twisted.logger import capturedLogs

    def broken(call):
        raise ZeroDivisionError("bug")
    f.isup.add_iam_listener(broken)
    f.isup.add_iam_listener(lambda call: 17)
    with capturedLogs() as events:
        f.rx(iam())
    acm, = f.sent()
    assert acm.type == I.ACM
    assert [e["log_failure"].type for e in events if "log_failure" in e] \
        == [ZeroDivisionError]
    assert f.isup.counters["listener failed"] == 1
    f.clock.advance(3)
    rel, = f.sent()
    assert I.decode_cause(rel.variable[0]) == 17
