"""
Tests for L{appliance.sigtran.tcapcodec} and L{appliance.sigtran.ber}:
every TCAP message and dialogue PDU round-trips against pycrate.
"""
import pytest

from appliance.sigtran import ber
from appliance.sigtran import mapcodec as M
from appliance.sigtran import tcapcodec as T
from tests.sigtran import oracle as O

GW3 = (0, 4, 0, 0, 1, 0, 20, 3)
GW2 = (0, 4, 0, 0, 1, 0, 20, 2)
SRI = {"msisdn": O.isdn("447900123456"), "sm-RP-PRI": True,
       "serviceCentreAddress": O.isdn("447700900000")}


def test_begin_with_dialogue_and_invoke_is_pycrates_bytes():
    """A Begin with an AARQ and an SRI-SM invoke is the octets pycrate writes, and reads back as built."""
    ref = O.encode(("begin", {"otid": b"\x00\x00\x00\x2a",
                              "dialoguePortion": O.request(GW3),
                              "components": [O.invoke(1, 45, "RoutingInfoForSM-Arg", SRI)]}))
    ours = T.encode(T.TCMessage(T.TC_BEGIN, otid=b"\x00\x00\x00\x2a", dialogue=T.AARQ(GW3), components=[
        T.Invoke(1, 45, M.encode_sri_sm(M.SRIForSM("447900123456", "447700900000")))]))
    assert ours == ref
    m = T.decode(ref)
    assert (m.kind, m.otid, m.dialogue.ac) == (T.TC_BEGIN, b"\x00\x00\x00\x2a", GW3)
    assert m.components[0].opcode == 45
    assert M.decode_sri_sm(m.components[0].param) == M.SRIForSM("447900123456", "447700900000")


def test_end_with_aare_and_result():
    """An End with an accepting AARE and a returnResultLast round-trips."""
    res = {"imsi": O.tbcd("234150999999999"),
           "locationInfoWithLMSI": {"networkNode-Number": O.isdn("447700900111")}}
    ref = O.encode(("end", {"dtid": b"\x01\x02", "dialoguePortion": O.response(GW3),
                            "components": [O.result(1, 45, "RoutingInfoForSM-Res", res)]}))
    m = T.decode(ref)
    assert isinstance(m.dialogue, T.AARE) and m.dialogue.result == T.AARE_ACCEPTED
    assert M.decode_routing_info(m.components[0].param) == M.RoutingInfo("234150999999999", "447700900111")
    assert T.encode(m) == ref


def test_continue_and_empty_result():
    """A Continue with both ids and an empty returnResultLast (alertServiceCentre's answer) round-trips."""
    ref = O.encode(("continue", {"otid": b"\x09", "dtid": b"\x00\x00\x00\x01", "components": [
        ("basicROS", ("returnResult", {"invokeId": ("present", 3)}))]}))
    m = T.decode(ref)
    assert (m.otid, m.dtid, m.components[0]) == (b"\x09", b"\x00\x00\x00\x01", T.ReturnResult(3))
    assert T.encode(m) == ref


def test_abort_refusing_the_context_names_the_supported_version():
    """A U-Abort carrying an AARE 'application context not supported' names the version the peer has."""
    ref = O.encode(("abort", {"dtid": b"\x01", "reason": ("u-abortCause", O.response(
        GW2, 1, ("dialogue-service-user", 2)))}))
    m = T.decode(ref)
    assert m.dialogue == T.AARE(GW2, T.AARE_REJECTED, T.SOURCE_USER, T.DIAG_AC_NOT_SUPPORTED)
    assert T.encode(m) == ref


def test_provider_abort_and_user_abrt():
    """A P-Abort cause and an ABRT dialogue PDU round-trip."""
    ref = O.encode(("abort", {"dtid": b"\x07", "reason": ("p-abortCause", 1)}))
    assert T.decode(ref).p_abort == T.P_UNRECOGNIZED_TID
    assert T.encode(T.decode(ref)) == ref
    ours = T.encode(T.TCMessage(T.TC_ABORT, dtid=b"\x07", dialogue=T.ABRT(T.ABRT_USER)))
    val, again = O.decode(ours)
    assert val[1]["reason"][1]["encoding"][1][1][0] == "dialogueAbort"
    assert again == ours


def test_error_and_reject_components():
    """returnError with a parameter and a Reject with no invoke id are read as pycrate writes them."""
    ref = O.encode(("end", {"dtid": b"\x01", "components": [
        O.error(1, 32, "SM-DeliveryFailureCause", {"sm-EnumeratedDeliveryFailureCause": "memoryCapacityExceeded"}),
        ("basicROS", ("reject", {"invokeId": ("absent", 0), "problem": ("general", 1)}))]}))
    m = T.decode(ref)
    err, rej = m.components
    assert (err.code, M.decode_error_param(err.code, err.param)) == (32, "memoryCapacityExceeded")
    assert rej == T.Reject(None, T.R_GENERAL, 1)
    assert T.encode(m) == ref


def test_indefinite_lengths_are_read():
    """A peer that writes indefinite lengths is understood."""
    data = bytes.fromhex("6280480101" "6c80" "a1800201010201050000" "0000" "0000")
    m = T.decode(data)
    assert m.otid == b"\x01" and m.components == [T.Invoke(1, 5, None)]


@pytest.mark.parametrize("data, cause", [
    (b"", T.P_BADLY_FORMATTED),
    (bytes.fromhex("6303480101"), T.P_UNRECOGNIZED_MESSAGE),
    (bytes.fromhex("6203490101"), T.P_INCORRECT_PORTION),       # Begin with a dtid
    (bytes.fromhex("62074805010203040506")[:9], T.P_INCORRECT_PORTION),  # 5-octet tid
    (bytes.fromhex("6205480101"), T.P_BADLY_FORMATTED),  # length beyond the data
])
def test_malformed_messages_raise_tcap_error_with_cause(data, cause):
    """Malformed messages raise only L{TCAPError}, carrying the P-abort cause to answer with."""
    with pytest.raises(T.TCAPError) as e:
        T.decode(data)
    assert e.value.cause == cause


def test_bad_component_is_flagged_as_such():
    """A sound transaction portion with a broken component is told apart (Reject, not Abort)."""
    with pytest.raises(T.TCAPError) as e:
        T.decode(bytes.fromhex("62094801016c04a1020500"))
    assert e.value.component and e.value.tid == b"\x01"


def test_ber_integers_and_oids():
    """INTEGER and OBJECT IDENTIFIER contents encode minimally and decode back."""
    for n in (0, 1, 127, 128, 255, 256, -1, -129, 2**31):
        assert ber.decode_int(ber.encode_int(n)) == n
    assert ber.encode_int(128) == b"\x00\x80"
    for oid in (GW3, T.DIALOGUE_AS_ID, (2, 999, 3)):
        assert ber.decode_oid(ber.encode_oid(oid)) == oid
    with pytest.raises(ber.BERError):
        ber.decode_oid(b"\x81")
