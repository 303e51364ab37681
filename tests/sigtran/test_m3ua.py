"""
The M3UA codec against RFC 4666, with pycrate's independent M3UA codec as
the oracle: every message we build parses in pycrate with no error, as the
same class and type, and pycrate re-encodes it to the same bytes; messages
pycrate builds decode in ours to the same values.
"""
import pytest
from pycrate_mobile.M3UA import M3UA_DATA, parse_M3UA

from appliance.sigtran import m3ua, sccp
from appliance.sigtran.interfaces import ProtocolData, SCCPAddress

#: A DATA's payload: a real UDT (so tshark decodes it down to SCCP).
PD = ProtocolData(100, 200, 3, 2, 0, 5, sccp.encode(sccp.Unitdata(
    sccp.UDT, SCCPAddress(gt="447900123456", ssn=6),
    SCCPAddress(gt="44770090000", ssn=8), b"x" * 97, 0, True)))

#: One of every message the node sends or reads, as our builders make it.
MESSAGES = {
    "DATA": m3ua.data(PD, rc=7, correlation=9),
    # An ISUP RLC on CIC 17 (SI 5).
    "DATA_NO_RC": m3ua.data(ProtocolData(1, 2, 5, 0, 0, 0, b"\x11\x00\x10\x00")),
    "ASPUP": m3ua.aspsm(m3ua.ASPUP, asp_id=42, info="node"),
    "ASPUP_ACK": m3ua.aspsm(m3ua.ASPUP_ACK),
    "ASPDN": m3ua.aspsm(m3ua.ASPDN, info="bye"),
    "ASPDN_ACK": m3ua.aspsm(m3ua.ASPDN_ACK),
    "BEAT": m3ua.beat(m3ua.BEAT, b"\x00\x01\x02"),
    "BEAT_ACK": m3ua.beat(m3ua.BEAT_ACK, b"\x00\x01\x02"),
    "ASPAC": m3ua.asptm(m3ua.ASPAC, rcs=(7, 8), traffic_mode=m3ua.TM_LOADSHARE),
    "ASPAC_ACK": m3ua.asptm(m3ua.ASPAC_ACK, rcs=(7,), traffic_mode=1),
    "ASPIA": m3ua.asptm(m3ua.ASPIA, rcs=(7,)),
    "ASPIA_ACK": m3ua.asptm(m3ua.ASPIA_ACK),
    "DUNA": m3ua.ssnm(m3ua.DUNA, [100, (8, 200)], rcs=(7,), info="gone"),
    "DAVA": m3ua.ssnm(m3ua.DAVA, [100]),
    "DAUD": m3ua.ssnm(m3ua.DAUD, [100, 300], rcs=(1,)),
    "DRST": m3ua.ssnm(m3ua.DRST, [100]),
    "SCON": m3ua.scon([100], concerned=200, level=2, rcs=(7,)),
    "DUPU": m3ua.dupu(100, m3ua.CAUSE_UNEQUIPPED, 5, rcs=(7,)),
    "NTFY": m3ua.ntfy(m3ua.STATUS_AS_STATE_CHANGE, m3ua.AS_ACTIVE,
                      asp_id=42, rcs=(7,)),
    "ERR": m3ua.err(m3ua.E_UNEXPECTED_MESSAGE, b"\x01\x00\x07\x07", rcs=(7,)),
    "REG_REQ": m3ua.reg_req([m3ua.RoutingKey(1, (100,), traffic_mode=2,
                                             sis=(3, 5)),
                             m3ua.RoutingKey(2, (101,), rc=9)]),
    "REG_RSP": m3ua.reg_rsp([(1, 0, 7), (2, 1, 0)]),
    "DEREG_REQ": m3ua.dereg_req([7, 8]),
    "DEREG_RSP": m3ua.dereg_rsp([(7, 0)]),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_round_trip_against_pycrate(name):
    """Each message we build is read by pycrate without error as the same
    class/type, pycrate writes it back byte for byte, and our own decoder
    reads it back as the same message."""
    raw = MESSAGES[name]
    theirs, error = parse_M3UA(raw)
    assert error == 0
    header = theirs.get_val()[0]
    ours = m3ua.decode(raw)
    assert (header[2], header[3]) == ours.kind
    assert ours.name == name.replace("_NO_RC", "")
    assert theirs.to_bytes() == raw
    assert m3ua.encode(ours) == raw


def test_data_fields_as_pycrate_builds_them():
    """A DATA built by pycrate decodes to the same routing context and
    Protocol Data fields."""
    m = M3UA_DATA()
    m.set_val({"ParamsDATA": [
        {"Tag": 0x0006, "Val": [1]},
        {"Tag": 0x0210, "Val": {"OPC": 100, "DPC": 200, "SI": 3, "NI": 2,
                                "MP": 0, "SLS": 5, "Data": b"abcde"}}]})
    ours = m3ua.decode(m.to_bytes())
    assert ours.routing_contexts() == (1,)
    assert ours.protocol_data() == ProtocolData(100, 200, 3, 2, 0, 5, b"abcde")


def test_network_appearance_is_32_bits():
    """The Network Appearance is a 32-bit value (RFC 4666 3.3.1); pycrate
    0.8.1 has it as 8 bits, so this one is checked by bytes (and by tshark
    in the e2e decode test)."""
    raw = m3ua.data(PD, rc=1, na=0x01020304)
    assert raw[8:16] == b"\x02\x00\x00\x08\x01\x02\x03\x04"
    assert m3ua.decode(raw).network_appearance() == 0x01020304


def test_accessors():
    """Affected PCs keep their masks, DUPU's cause and user and NTFY's
    status come back, REG RSP results decode as nested parameters."""
    assert m3ua.decode(MESSAGES["DUNA"]).affected_pcs() == ((0, 100), (8, 200))
    assert m3ua.decode(MESSAGES["DUPU"]).user_cause() == (1, 5)
    assert m3ua.decode(MESSAGES["NTFY"]).status() == (1, 3)
    results = m3ua.decode(MESSAGES["REG_RSP"]).nested(m3ua.TAG_REG_RESULT)
    assert [m3ua.sub_u32(r, m3ua.TAG_ROUTING_CONTEXT) for r in results] == [7, 0]
    assert m3ua.decode(MESSAGES["ASPUP"]).info_string() == "node"


@pytest.mark.parametrize("raw, code", [
    (b"\x02\x00\x03\x01\x00\x00\x00\x08", m3ua.E_INVALID_VERSION),
    (b"\x01\x00\x05\x01\x00\x00\x00\x08", m3ua.E_UNSUPPORTED_CLASS),
    (b"\x01\x00\x03\x09\x00\x00\x00\x08", m3ua.E_UNSUPPORTED_TYPE),
    (b"\x01\x00\x03\x01\x00\x00\x00\x10", m3ua.E_PROTOCOL_ERROR),
    (b"\x01\x00", m3ua.E_PROTOCOL_ERROR),
    (b"\x01\x00\x03\x01\x00\x00\x00\x0c\x00\x04\x00\x02",
     m3ua.E_PARAMETER_FIELD_ERROR),
    (b"\x01\x00\x03\x01\x00\x00\x00\x0c\x00\x04\x00\x09",
     m3ua.E_PARAMETER_FIELD_ERROR),
    (b"\x01\x00\x01\x01\x00\x00\x00\x08", m3ua.E_MISSING_PARAMETER),
])
def test_malformed_gets_the_rfc_error_code(raw, code):
    """Malformed messages raise M3UAError with the RFC 4666 3.8.1 code the
    ERR must carry."""
    with pytest.raises(m3ua.M3UAError) as e:
        m3ua.decode(raw).protocol_data()
    assert e.value.code == code


def test_frame_length():
    """TCP framing reads the length from the header, waits for 8 bytes,
    and refuses lengths that cannot be a message."""
    assert m3ua.frame_length(MESSAGES["BEAT"][:7]) is None
    assert m3ua.frame_length(MESSAGES["BEAT"]) == len(MESSAGES["BEAT"])
    with pytest.raises(m3ua.M3UAError):
        m3ua.frame_length(b"\x01\x00\x03\x01\x00\x00\x00\x06")
    with pytest.raises(m3ua.M3UAError):
        m3ua.frame_length(b"\x01\x00\x03\x01\x7f\x00\x00\x08")
