"""
tshark, an independent decoder, agrees with the M3UA and SCCP codec on
every message it builds (re-wrapped in SCTP with PPID 3 by the helper).
"""
import pytest

from appliance.sigtran import m3ua, sccp
from appliance.sigtran.interfaces import ProtocolData, SCCPAddress
from tests.e2e import tshark_m3ua
from tests.sigtran.test_m3ua import MESSAGES

pytestmark = [pytest.mark.e2e]


def test_every_m3ua_message_decodes_as_built():
    """Each message of the codec decodes in tshark as the same M3UA
    message with nothing malformed; a DATA with a 32-bit Network
    Appearance and SCCP UDT, XUDT segments and UDTS inside decode down to
    SCCP."""
    names = sorted(MESSAGES)
    frames = [MESSAGES[n] for n in names]
    hlr = SCCPAddress(gt="447900123456", ssn=6)
    smsc = SCCPAddress(gt="44770090000", ssn=8)
    inner = [sccp.encode(sccp.Unitdata(sccp.UDT, hlr, smsc, b"\x01" * 20, 0, True)),
             *sccp.segment(hlr, smsc, b"\x02" * 500, 1, True, 7),
             sccp.encode(sccp.Unitdata(sccp.UDTS, smsc, hlr, b"\x03", cause=1))]
    for raw in inner:
        frames.append(m3ua.data(ProtocolData(185, 186, 3, 2, 0, 1, raw), rc=1,
                                na=0x01020304))
    decoded = tshark_m3ua.decode(frames)
    assert decoded.malformed == 0, decoded.lines
    assert decoded.names[:len(names)] == [n.replace("_NO_RC", "") for n in names]
    assert all(":m3ua:sccp" in p for p in decoded.protocols[len(names):]), \
        decoded.protocols
    assert "UDTS" in " ".join(decoded.lines) or \
        "Unitdata Service" in " ".join(decoded.lines)
