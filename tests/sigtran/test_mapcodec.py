"""
Tests for L{appliance.sigtran.mapcodec}: each short-message operation's
argument, result and error parameter against pycrate's MAP.
"""
import pytest

from appliance.sigtran import mapcodec as M
from appliance.sigtran import tcapcodec as T
from tests.sigtran import oracle as O


def _param_in_pycrate(op, param):
    """Wrap C{param} in an invoke; return pycrate's typed argument and check its re-encoding."""
    data = T.encode(T.TCMessage(T.TC_BEGIN, otid=b"\x01", components=[T.Invoke(1, op, param)]))
    val, again = O.decode(data)
    assert again == data
    return val[1]["components"][0][1][1]["argument"]


def _param_from_pycrate(op, arg_type, arg):
    data = O.encode(("begin", {"otid": b"\x01", "components": [O.invoke(1, op, arg_type, arg)]}))
    return T.decode(data).components[0].param


def test_sri_sm_argument():
    """RoutingInfoForSM-Arg: msisdn, priority and service centre, both ways."""
    arg = M.SRIForSM("447900123456", "447700900000")
    kind, val = _param_in_pycrate(M.OP_SRI_SM, M.encode_sri_sm(arg))
    assert kind == "RoutingInfoForSM-Arg"
    assert val == {"msisdn": O.isdn("447900123456"), "sm-RP-PRI": True,
                   "serviceCentreAddress": O.isdn("447700900000")}
    assert M.decode_sri_sm(_param_from_pycrate(45, kind, val)) == arg


def test_sri_sm_result_with_lmsi():
    """RoutingInfoForSM-Res read from pycrate: IMSI, serving MSC and LMSI."""
    res = {"imsi": O.tbcd("234150999999999"), "locationInfoWithLMSI": {
        "networkNode-Number": O.isdn("447700900111"), "lmsi": b"\x01\x02\x03\x04"}}
    data = O.encode(("end", {"dtid": b"\x01", "components": [O.result(1, 45, "RoutingInfoForSM-Res", res)]}))
    got = M.decode_routing_info(T.decode(data).components[0].param)
    assert got == M.RoutingInfo("234150999999999", "447700900111", b"\x01\x02\x03\x04")
    assert M.encode_routing_info(got) == T.decode(data).components[0].param


def test_mt_forward_sm():
    """MT-ForwardSM-Arg: sm-RP-DA IMSI, sm-RP-OA service centre, the TPDU and moreMessagesToSend."""
    arg = M.ForwardSM(("imsi", "234150999999999"), ("sc", "447700900000"), b"\x04\x0c", True)
    kind, val = _param_in_pycrate(M.OP_MT_FORWARD_SM, M.encode_forward_sm(arg))
    assert kind == "MT-ForwardSM-Arg"
    assert val["sm-RP-DA"] == ("imsi", O.tbcd("234150999999999"))
    assert val["sm-RP-OA"] == ("serviceCentreAddressOA", O.isdn("447700900000"))
    assert val["sm-RP-UI"] == b"\x04\x0c" and "moreMessagesToSend" in val
    assert M.decode_forward_sm(_param_from_pycrate(44, kind, val)) == arg


def test_mo_forward_sm_from_pycrate():
    """MO-ForwardSM-Arg from an MSC: service centre DA, MSISDN OA, the SMS-SUBMIT and the IMSI."""
    val = {"sm-RP-DA": ("serviceCentreAddressDA", O.isdn("447700900000")),
           "sm-RP-OA": ("msisdn", O.isdn("447900123456")), "sm-RP-UI": b"\x01\x00",
           "imsi": O.tbcd("234150999999999")}
    got = M.decode_forward_sm(_param_from_pycrate(46, "MO-ForwardSM-Arg", val))
    assert got == M.ForwardSM(("sc", "447700900000"), ("msisdn", "447900123456"), b"\x01\x00",
                              False, "234150999999999")


def test_report_sm_delivery_status():
    """ReportSM-DeliveryStatusArg with each outcome."""
    for outcome, name in enumerate(M.OUTCOMES):
        arg = M.DeliveryReport("447900123456", "447700900000", outcome)
        kind, val = _param_in_pycrate(M.OP_REPORT_SM_DELIVERY_STATUS, M.encode_report(arg))
        assert kind == "ReportSM-DeliveryStatusArg" and val["sm-DeliveryOutcome"] == name
        assert M.decode_report(_param_from_pycrate(47, kind, val)) == arg


def test_alert_service_centre():
    """AlertServiceCentreArg both ways."""
    arg = M.Alert("447900123456", "447700900000")
    kind, val = _param_in_pycrate(M.OP_ALERT_SC, M.encode_alert(arg))
    assert kind == "AlertServiceCentreArg"
    assert M.decode_alert(_param_from_pycrate(64, kind, val)) == arg


def test_error_parameters_are_read():
    """Error parameters from pycrate: the delivery failure cause and the absent diagnostic."""
    data = O.encode(("end", {"dtid": b"\x01", "components": [
        O.error(1, 32, "SM-DeliveryFailureCause", {"sm-EnumeratedDeliveryFailureCause": "memoryCapacityExceeded"}),
        O.error(2, 6, "AbsentSubscriberSM-Param", {"absentSubscriberDiagnosticSM": 1}),
        O.error(3, 1)]}))
    a, b, c = T.decode(data).components
    assert M.decode_error_param(a.code, a.param) == "memoryCapacityExceeded"
    assert M.decode_error_param(b.code, b.param) == "diagnostic 1"
    assert (c.code, c.param) == (M.ERR_UNKNOWN_SUBSCRIBER, None)
    assert M.encode_delivery_failure(0) == a.param


@pytest.mark.parametrize("decoder", [M.decode_sri_sm, M.decode_routing_info, M.decode_forward_sm,
                                     M.decode_report, M.decode_alert])
@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x02\x80\x05", b"\x04\x00", b"\x30\x00",
                                  b"\x30\x06\x80\x01\x91\x81\x01\xff"])
def test_malformed_raise_map_error(decoder, data):
    """Malformed parameters raise only L{MAPError}."""
    with pytest.raises(M.MAPError):
        decoder(data)


def test_tbcd():
    """TBCD digits with the filler, and AddressString."""
    assert M.tbcd("12345") == b"\x21\x43\xf5"
    assert M.untbcd(b"\x21\x43\xf5") == "12345"
    assert M.address("447700900000") == O.isdn("447700900000")
