"""
SCCP connectionless messages (Q.713) against pycrate's SCCP codec, and the
routing and connectionless control of L{SCCPRouter}.
"""
import pytest
from pycrate_mobile.SCCP import SCCPUnitData, parse_SCCP
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from appliance.sigtran import sccp
from appliance.sigtran.interfaces import (
    IMTPUser, ISCCPProvider, NoRoute, RC_UNEQUIPPED_USER, SCCPAddress,
    SS7Settings)
from appliance.sigtran.scrc import Route, SCCPRouter, translate

HLR = SCCPAddress(gt="447900123456", ssn=6)
SMSC = SCCPAddress(gt="44770090000", ssn=8)


def pycrate_gt(digits, ssn):
    return {"AddrInd": {"res": 0, "RoutingInd": 0, "GTInd": 4, "SSNInd": 1,
                        "PCInd": 0}, "SSN": ssn,
            "GT": {"TranslationType": 0, "NumberingPlan": 1,
                   "EncodingScheme": 1 + (len(digits) % 2 == 0), "spare": 0,
                   "NAI": 4, "Addr": digits}}


def test_udt_byte_identical_to_pycrate():
    """A UDT with GT+SSN addresses (E.164, NAI international, TT 0, NP
    ISDN, odd and even digit counts) is byte for byte what pycrate builds,
    and decodes back to the same addresses."""
    u = SCCPUnitData()
    u.set_val({"ProtocolClass": {"Handling": 8, "Class": 0},
               "CalledPartyAddr": {"Value": pycrate_gt(HLR.gt, 6)},
               "CallingPartyAddr": {"Value": pycrate_gt(SMSC.gt, 8)},
               "Data": {"Value": b"hello"}})
    ours = sccp.encode(sccp.Unitdata(sccp.UDT, HLR, SMSC, b"hello", 0, True))
    assert ours == u.to_bytes()
    back = sccp.decode(ours)
    assert (back.called, back.calling, back.data, back.return_on_error) == (
        HLR, SMSC, b"hello", True)


@pytest.mark.parametrize("kind", [sccp.UDT, sccp.UDTS, sccp.XUDT, sccp.XUDTS])
def test_every_message_parses_in_pycrate(kind):
    """UDT, UDTS, XUDT (with a segmentation parameter) and XUDTS parse in
    pycrate without error and re-encode to the same bytes."""
    seg = sccp.Segmentation(True, True, 2, 0x123456) \
        if kind in (sccp.XUDT, sccp.XUDTS) else None
    called = SCCPAddress(ssn=6, pc=300, route_on_gt=False)
    u = sccp.Unitdata(kind, called, SMSC, b"\x62\x10" + b"z" * 40, 1, True,
                      cause=RC_UNEQUIPPED_USER if kind in (sccp.UDTS, sccp.XUDTS)
                      else None, segmentation=seg)
    raw = sccp.encode(u)
    theirs, error = parse_SCCP(raw)
    assert error == 0
    assert theirs.to_bytes() == raw
    back = sccp.decode(raw)
    assert (back.kind, back.called, back.calling, back.data) == (
        kind, called, SMSC, u.data)
    assert back.segmentation == seg


def test_long_data_goes_as_xudt_segments():
    """Data too long for one UDT is sent as XUDT segments that each fit in
    an MTP message, counting down the remaining segments, and reassemble
    in order to the original."""
    data = bytes(range(256)) * 3
    raws = sccp.segment(HLR, SMSC, data, 1, True, 77)
    assert len(raws) > 1 and all(len(r) <= sccp.MAX_MESSAGE for r in raws)
    decoded = [sccp.decode(r) for r in raws]
    assert [d.segmentation.remaining for d in decoded] == list(
        range(len(raws) - 1, -1, -1))
    assert decoded[0].segmentation.first and decoded[0].segmentation.in_sequence
    assert b"".join(d.data for d in decoded) == data
    assert sccp.segment(HLR, SMSC, b"short", 0, False, 1)[0][0] == sccp.UDT


@pytest.mark.parametrize("raw", [b"", b"\x09\x00\x03", b"\x09\x00\x03\x05\x07\x02",
                                 b"\x09\x00\x03\x05\x07\x01\x00", b"\x01" * 9,
                                 b"\x11\x00\x0f\x04\x05\x06\x09\x01"])
def test_malformed_raises(raw):
    """Truncated or foreign messages raise SCCPError, never anything else."""
    with pytest.raises(sccp.SCCPError):
        sccp.decode(raw)


def test_translate():
    """The longest GT prefix wins; a GT route's point code is the DPC; a
    called address routed on point code uses that PC (and a PC route's
    peer); nothing matching is None."""
    routes = (Route("uk", "44", 300, "stp1"), Route("uk79", "4479", 301),
              Route("pc400", None, 400, "stp2"))
    assert translate(routes, HLR) == (301, None)
    assert translate(routes, SCCPAddress(gt="4420", ssn=6)) == (300, "stp1")
    assert translate(routes, SCCPAddress(gt="33", ssn=6)) is None
    assert translate(routes, SCCPAddress(ssn=6, pc=400,
                                         route_on_gt=False)) == (400, "stp2")


class FakeMTP:
    def __init__(self):
        self.sent = []

    def transfer(self, pd, via=None):
        self.sent.append((pd, via))


class User:
    def __init__(self):
        self.got, self.notices, self.states = [], [], []

    def unitdata(self, called, calling, data):
        self.got.append((called, calling, data))

    def notice(self, called, calling, data, reason):
        self.notices.append((called, calling, data, reason))

    def pcstate(self, pc, available):
        self.states.append((pc, available))


def router():
    mtp = FakeMTP()
    r = SCCPRouter(mtp, Clock())
    r.configure(SS7Settings(point_code=100, global_title=SMSC.gt),
                (Route("uk", "44", 200, "stp"),))
    return r, mtp


def test_router_provides_interfaces():
    """The router is an ISCCPProvider and the MTP user for SI 3."""
    r, _ = router()
    assert verifyObject(ISCCPProvider, r) and verifyObject(IMTPUser, r)


def test_send_and_receive_through_the_router():
    """send_unitdata routes by GT to the route's DPC and peer with our OPC
    and SI 3; a UDT back is given to the user of the called SSN; a long
    one in XUDT segments arrives whole."""
    r, mtp = router()
    user = User()
    r.register_ssn(8, user)
    r.send_unitdata(HLR, r.local_address(8), b"begin")
    pd, via = mtp.sent[0]
    assert (pd.opc, pd.dpc, pd.si, via) == (100, 200, 3, "stp")
    answer = sccp.encode(sccp.Unitdata(sccp.UDT, SMSC, HLR, b"end"))
    r.mtp_transfer(type(pd)(200, 100, 3, 0, 0, 1, answer))
    assert user.got == [(SMSC, HLR, b"end")]
    long = b"L" * 900
    for raw in sccp.segment(SMSC, HLR, long, 1, True, 5):
        r.mtp_transfer(type(pd)(200, 100, 3, 0, 0, 1, raw))
    assert user.got[-1] == (SMSC, HLR, long)
    with pytest.raises(NoRoute):
        r.send_unitdata(SCCPAddress(gt="33", ssn=6), SMSC, b"x")


def test_unknown_ssn_is_returned_as_udts():
    """A UDT for an SSN nobody registered, with return on error, goes back
    to its sender as a UDTS with cause unequipped user; the sender's user
    gets it as a notice."""
    r, mtp = router()
    raw = sccp.encode(sccp.Unitdata(sccp.UDT, SCCPAddress(gt=SMSC.gt, ssn=9),
                                    HLR, b"x", 0, True))
    r.mtp_transfer(sccp_pd(raw))
    pd, _ = mtp.sent[-1]
    back = sccp.decode(pd.data)
    assert (back.kind, back.cause, pd.dpc) == (sccp.UDTS, RC_UNEQUIPPED_USER, 200)
    user = User()
    r.register_ssn(6, user)
    r.mtp_transfer(sccp_pd(sccp.encode(sccp.Unitdata(
        sccp.UDTS, SCCPAddress(gt="1", ssn=6), SMSC, b"x", cause=5))))
    assert user.notices == [(SMSC, SCCPAddress(gt="1", ssn=6), b"x", 5)]


def test_reassembly_times_out():
    """Segments that never all arrive are dropped after the reassembly
    timer, and no timer is left behind."""
    r, mtp = router()
    r.register_ssn(8, User())
    first = sccp.segment(SMSC, HLR, b"L" * 900, 0, False, 5)[0]
    r.mtp_transfer(sccp_pd(first))
    r.clock.advance(11)
    assert r.counters["reassembly timeout"] == 1 and not r.clock.getDelayedCalls()


def sccp_pd(raw):
    from appliance.sigtran.interfaces import ProtocolData
    return ProtocolData(200, 100, 3, 0, 0, 1, raw)
