"""
The M3UA association state machine and the M3UA layer, on a task.Clock
and StringTransport: ASP up/active with and without routing key
registration, BEAT loss, peer restart, DUNA/DAVA told to the users,
ERR for malformed and unexpected messages, the responder (SG) side, and
traffic modes across several peers.
"""
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface.verify import verifyObject

from appliance.sigtran import asp, m3ua
from appliance.sigtran.interfaces import (
    DestinationUnavailable, IMTPProvider, ProtocolData)
from appliance.sigtran.mtp import M3UALayer
from appliance.sigtran.transport import M3UAStreamProtocol

import pytest

PC = 185     # 0.23.1


class User:
    def __init__(self):
        self.events = []

    def mtp_transfer(self, pd):
        self.events.append(("transfer", pd))

    def mtp_pause(self, dpc):
        self.events.append(("pause", dpc))

    def mtp_resume(self, dpc):
        self.events.append(("resume", dpc))

    def mtp_status(self, dpc, cause):
        self.events.append(("status", dpc, cause))


def setup(role="asp", rc=None, mode="override", name="stp"):
    clock = Clock()
    layer = M3UALayer(PC)
    user = User()
    layer.register_user(3, user)
    a = asp.Association(asp.PeerSettings(name, "127.0.0.1", 2905, "tcp",
                                         role, rc, mode),
                        layer, clock, PC, asp.Timers(beat=10, beat_misses=2))
    layer.associations[name] = a
    proto = M3UAStreamProtocol(a)
    tr = StringTransport()
    proto.makeConnection(tr)
    return clock, layer, user, a, proto, tr


def sent(tr):
    """Decode and clear what the association wrote."""
    raw, out = tr.value(), []
    tr.clear()
    while raw:
        n = m3ua.frame_length(raw)
        out.append(m3ua.decode(raw[:n]))
        raw = raw[n:]
    return out


def activate(clock, a, proto, tr, rc=7):
    assert all(m.kind == m3ua.ASPUP for m in sent(tr))
    proto.dataReceived(m3ua.aspsm(m3ua.ASPUP_ACK))
    [req] = sent(tr)
    if req.kind == m3ua.REG_REQ:
        [key] = req.nested(m3ua.TAG_ROUTING_KEY)
        assert m3ua.sub_u32(key, m3ua.TAG_DPC) == PC
        proto.dataReceived(m3ua.reg_rsp([(1, 0, rc)]))
        [req] = sent(tr)
    assert req.kind == m3ua.ASPAC and req.routing_contexts() == (rc,)
    proto.dataReceived(m3ua.asptm(m3ua.ASPAC_ACK, rcs=(rc,)))
    assert a.state == asp.ACTIVE


def test_layer_provides_imtpprovider():
    """The M3UA layer is an IMTPProvider."""
    assert verifyObject(IMTPProvider, M3UALayer())


def test_asp_registers_a_routing_key_then_goes_active():
    """Without a configured routing context the ASP sends ASPUP, REG REQ
    for our point code, then ASPAC with the routing context the SG gave,
    and is ASP-ACTIVE after the ASPAC ACK; DATA then carries that RC."""
    clock, layer, user, a, proto, tr = setup()
    activate(clock, a, proto, tr)
    layer.transfer(ProtocolData(PC, 200, 3, 2, 0, 1, b"x"))
    [data] = sent(tr)
    assert data.routing_contexts() == (7,) and data.protocol_data().dpc == 200


def test_configured_rc_skips_registration():
    """A configured routing context goes straight into ASPAC."""
    clock, layer, user, a, proto, tr = setup(rc=9)
    activate(clock, a, proto, tr, rc=9)


def test_ack_timer_resends_then_closes():
    """An unanswered ASPUP is sent again every T(ack); after the last try
    the connection is closed (the ClientService then reconnects)."""
    clock, layer, user, a, proto, tr = setup()
    sent(tr)
    for _ in range(4):
        clock.advance(2)
        assert [m.kind for m in sent(tr)] == [m3ua.ASPUP]
    clock.advance(2)
    assert tr.disconnecting


def test_beat_answered_and_beat_loss_closes():
    """A BEAT is answered with a BEAT ACK echoing its data; our own BEATs
    unanswered twice close the association."""
    clock, layer, user, a, proto, tr = setup()
    activate(clock, a, proto, tr)
    proto.dataReceived(m3ua.beat(m3ua.BEAT, b"ping"))
    [ack] = sent(tr)
    assert ack.kind == m3ua.BEAT_ACK and ack.get(m3ua.TAG_HEARTBEAT_DATA) == b"ping"
    clock.advance(10)
    [beat] = sent(tr)
    proto.dataReceived(m3ua.beat(m3ua.BEAT_ACK, beat.get(m3ua.TAG_HEARTBEAT_DATA)))
    clock.advance(10)
    clock.advance(10)
    assert not tr.disconnecting
    clock.advance(10)
    assert tr.disconnecting


def test_duna_dava_pause_and_resume_users():
    """DUNA makes a destination unavailable (users paused, transfer
    refused); DAVA brings it back (users resumed)."""
    clock, layer, user, a, proto, tr = setup()
    activate(clock, a, proto, tr)
    proto.dataReceived(m3ua.ssnm(m3ua.DUNA, [200], rcs=(7,)))
    assert ("pause", 200) in user.events
    with pytest.raises(DestinationUnavailable):
        layer.transfer(ProtocolData(PC, 200, 3, 2, 0, 1, b"x"))
    proto.dataReceived(m3ua.ssnm(m3ua.DAVA, [200], rcs=(7,)))
    assert user.events[-1] == ("resume", 200)
    proto.dataReceived(m3ua.scon([200], level=1))
    proto.dataReceived(m3ua.dupu(200, 2, 3))
    assert user.events[-2:] == [("status", 200, "congested"),
                                ("status", 200, "user-part-inaccessible")]


def test_peer_restart_pauses_then_recovers():
    """The connection lost pauses the destinations it carried; a new
    connection goes through ASPUP/ASPAC again and resumes them."""
    clock, layer, user, a, proto, tr = setup()
    layer.watch([200])
    activate(clock, a, proto, tr)
    assert user.events[-1] == ("resume", 200)
    proto.connectionLost(None)
    assert user.events[-1] == ("pause", 200) and a.state == asp.DOWN
    proto2 = M3UAStreamProtocol(a)
    tr2 = StringTransport()
    proto2.makeConnection(tr2)
    activate(clock, a, proto2, tr2)
    assert user.events[-1] == ("resume", 200)


def test_data_reaches_the_user_and_malformed_gets_err():
    """DATA for our point code reaches the SI's user; a malformed message
    or DATA before ASP-ACTIVE is answered with ERR and the association
    keeps serving; a frame with an impossible length closes it."""
    clock, layer, user, a, proto, tr = setup()
    sent(tr)
    proto.dataReceived(m3ua.data(ProtocolData(200, PC, 3, 2, 0, 1, b"early")))
    [e] = sent(tr)
    assert e.kind == m3ua.ERR and e.u32(m3ua.TAG_ERROR_CODE) == m3ua.E_UNEXPECTED_MESSAGE
    tr.clear()
    proto.dataReceived(b"\x01\x00\x07\x07\x00\x00\x00\x08")
    [e] = sent(tr)
    assert e.u32(m3ua.TAG_ERROR_CODE) == m3ua.E_UNSUPPORTED_CLASS
    activate(clock, a, proto, tr)
    proto.dataReceived(m3ua.data(ProtocolData(200, PC, 3, 2, 0, 1, b"hi"), rc=7))
    assert user.events[-1][0] == "transfer" and user.events[-1][1].data == b"hi"
    proto.dataReceived(b"\x01\x00\x01\x01\x00\x00\x00\x05")
    assert tr.disconnecting


def test_responder_side():
    """As SG (role sg) we answer ASPUP, give a routing context for a
    REG REQ, answer ASPAC with ASPAC ACK and NTFY AS-ACTIVE, and the
    registered DPC becomes available through it."""
    clock, layer, user, a, proto, tr = setup(role="sg", name="msc")
    assert sent(tr) == []
    proto.dataReceived(m3ua.aspsm(m3ua.ASPUP))
    assert [m.kind for m in sent(tr)] == [m3ua.ASPUP_ACK]
    proto.dataReceived(m3ua.reg_req([m3ua.RoutingKey(5, (300,))]))
    [rsp] = sent(tr)
    [result] = rsp.nested(m3ua.TAG_REG_RESULT)
    assert m3ua.sub_u32(result, m3ua.TAG_REG_STATUS) == 0
    rc = m3ua.sub_u32(result, m3ua.TAG_ROUTING_CONTEXT)
    proto.dataReceived(m3ua.asptm(m3ua.ASPAC, rcs=(rc,)))
    ack, ntfy = sent(tr)
    assert ack.kind == m3ua.ASPAC_ACK and ntfy.status() == (1, 3)
    assert layer.available(300) and not layer.available(301)
    proto.dataReceived(m3ua.asptm(m3ua.ASPAC, traffic_mode=7))
    [e] = sent(tr)
    assert e.u32(m3ua.TAG_ERROR_CODE) == m3ua.E_UNSUPPORTED_TRAFFIC_MODE


def test_traffic_modes():
    """Override uses the first active peer only and fails over when it
    goes; loadshare spreads by SLS."""
    layer = M3UALayer(PC)

    class A:
        def __init__(self, name, mode):
            self.name, self.active, self.unavailable, self.served = name, True, set(), set()
            self.settings = asp.PeerSettings(name, traffic_mode=mode)
            self.got = []

        def send_data(self, pd):
            self.got.append(pd.sls)

    one, two = A("one", "override"), A("two", "override")
    layer.associations.update(one=one, two=two)
    for sls in range(4):
        layer.transfer(ProtocolData(PC, 200, 3, 2, 0, sls, b""))
    assert (one.got, two.got) == ([0, 1, 2, 3], [])
    one.active = False
    layer.transfer(ProtocolData(PC, 200, 3, 2, 0, 0, b""))
    assert two.got == [0]
    three, four = A("three", "loadshare"), A("four", "loadshare")
    layer.associations = {"three": three, "four": four}
    for sls in range(4):
        layer.transfer(ProtocolData(PC, 200, 3, 2, 0, sls, b""))
    assert (three.got, four.got) == ([0, 2], [1, 3])
