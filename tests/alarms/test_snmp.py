"""Trap encoding: the bytes decode with pysnmp to the MIB's varbinds, in
v2c and in v3 (authNoPriv and authPriv, checked by pysnmp's USM code)."""
import pytest
from pyasn1.codec.ber import decoder
from pyasn1.type import univ
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message, ScopedPDU
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters

from appliance.alarms import snmp
from appliance.alarms.table import AlarmEvent

EVENT = AlarmEvent("m3ua-no-asp-active", "node", "critical",
                   "none of 1 M3UA associations is ASP-ACTIVE",
                   1764633600.0, 1764633600.0)
ENGINE = bytes.fromhex("8001869f05" + "0102030405060708")


def names(varbinds):
    return [(tuple(o), v) for o, v in varbinds]


def check_varbinds(vbs, trap=snmp.ALARM_RAISED, severity=1):
    vbs = names(vbs)
    assert vbs[0][0] == snmp.SYS_UPTIME and int(vbs[0][1]) == 1234
    assert vbs[1] == (snmp.SNMP_TRAP_OID, univ.ObjectIdentifier(trap))
    got = {o: v for o, v in vbs[2:]}
    assert int(got[snmp.ALARM_NUMBER]) == 2
    assert bytes(got[snmp.ALARM_NAME]) == b"m3ua-no-asp-active"
    assert int(got[snmp.ALARM_SEVERITY]) == severity
    assert bytes(got[snmp.ALARM_RESOURCE]) == b"node"
    assert bytes(got[snmp.ALARM_TEXT]).startswith(b"none of 1")
    # 2025-12-02 00:00:00.0 UTC
    assert bytes(got[snmp.ALARM_TIME]) == bytes([7, 233, 12, 2, 0, 0, 0, 0])


def test_v2c():
    """A v2c trap carries the community and the alarm's varbinds."""
    pdu = snmp.trap_pdu(EVENT, 12.34, 99)
    data = snmp.encode_v2c("noc-public", pdu)
    msg, rest = decoder.decode(data, asn1Spec=v2c.Message())
    assert rest == b""
    assert int(msg["version"]) == 1
    assert bytes(v2c.apiMessage.get_community(msg)) == b"noc-public"
    pdu = v2c.apiMessage.get_pdu(msg)
    assert pdu.tagSet == v2c.SNMPv2TrapPDU.tagSet
    assert int(v2c.apiTrapPDU.get_request_id(pdu)) == 99
    check_varbinds(v2c.apiTrapPDU.get_varbinds(pdu))


def test_cleared_trap():
    """A cleared alarm is an alarmCleared notification, severity 5."""
    event = AlarmEvent(EVENT.alarm, "node", "cleared", EVENT.text,
                       EVENT.at, EVENT.since)
    msg, _ = decoder.decode(snmp.encode_v2c("c", snmp.trap_pdu(event,
                                                              12.34, 1)),
                            asn1Spec=v2c.Message())
    check_varbinds(v2c.apiTrapPDU.get_varbinds(v2c.apiMessage.get_pdu(msg)),
                   snmp.ALARM_CLEARED, 5)


def test_localized_key_rfc3414_vector():
    """The key localization matches RFC 3414 A.3.1 and A.3.2."""
    engine = bytes.fromhex("000000000000000000000002")
    assert snmp.localized_key("md5", "maplesyrup", engine).hex() == \
        "526f5eed9fcce26f8964c2930787d82b"
    assert snmp.localized_key("sha", "maplesyrup", engine).hex() == \
        "6695febc9288e36282235fc7151f128497b38f3f"


@pytest.mark.parametrize("auth,priv", [("sha", "aes"), ("md5", "des"),
                                       ("sha", ""), ("", "")])
def test_v3(auth, priv):
    """A v3 trap is from our engine id as authoritative, its digest checks
    with pysnmp's HMAC and its scoped PDU decrypts with pysnmp's cipher."""
    auth_key = snmp.localized_key(auth, "authpass1", ENGINE) if auth else b""
    priv_key = snmp.localized_key(auth, "privpass1", ENGINE) if priv else b""
    user = snmp.USMUser("noc", auth, auth_key, priv, priv_key)
    data = snmp.encode_v3(user, ENGINE, 3, 1200, snmp.trap_pdu(EVENT, 12.34,
                                                               7), 42, salt=9)
    msg, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b""
    assert int(msg["msgVersion"]) == 3 and int(msg["msgGlobalData"]["msgID"]) == 42
    flags = bytes(msg["msgGlobalData"]["msgFlags"])[0]
    assert flags == (1 if auth else 0) | (2 if priv else 0)
    params, _ = decoder.decode(bytes(msg["msgSecurityParameters"]),
                               asn1Spec=UsmSecurityParameters())
    assert bytes(params["msgAuthoritativeEngineId"]) == ENGINE
    assert int(params["msgAuthoritativeEngineBoots"]) == 3
    assert int(params["msgAuthoritativeEngineTime"]) == 1200
    assert bytes(params["msgUserName"]) == b"noc"
    if auth:
        digest = params["msgAuthenticationParameters"]
        service = snmp.AUTH[auth]()
        # Raises on a wrong digest.
        service.authenticate_incoming_message(univ.OctetString(auth_key),
                                              digest, data)
        forged = data.replace(bytes(digest), b"\1" * 12)
        with pytest.raises(Exception):
            service.authenticate_incoming_message(
                univ.OctetString(auth_key), univ.OctetString(b"\1" * 12),
                forged)
    if priv:
        plain = snmp.PRIV[priv]().decrypt_data(
            univ.OctetString(priv_key),
            (3, 1200, params["msgPrivacyParameters"]),
            msg["msgData"]["encryptedPDU"])
        scoped, _ = decoder.decode(bytes(plain), asn1Spec=ScopedPDU())
    else:
        scoped = msg["msgData"]["plaintext"]
    assert bytes(scoped["contextEngineId"]) == ENGINE
    pdu = scoped["data"].getComponent()
    check_varbinds(v2c.apiTrapPDU.get_varbinds(pdu))
