# -*- test-case-name: tests.alarms.test_snmp -*-
"""
SNMP notifications of alarm changes to the NOC (APPLIANCE-MIB,
C{docs/APPLIANCE-MIB.txt}): SNMPv2-Trap PDUs in v2c messages (community)
or in v3 messages (USM, noAuthNoPriv, authNoPriv or authPriv), encoded
with pysnmp's protocol modules without its transports, and sent over a
Twisted UDP port.

For a trap the sender is the authoritative engine (RFC 3414 1.5.1): the
v3 keys are localized with our own engine id, boots and time, so the
manager is configured with that engine id (C{show alarms} prints it).
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import Any, Callable

from pyasn1.codec.ber import encoder
from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message, ScopedPDU
from pysnmp.proto.secmod.rfc3414.auth import hmacmd5, hmacsha
from pysnmp.proto.secmod.rfc3414.priv import des
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
from pysnmp.proto.secmod.rfc3826.priv import aes
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from appliance.alarms.model import new_engine_id  # noqa: F401
from appliance.alarms.table import SEVERITIES, AlarmEvent

#: The MIB's root (enterprises.99999: a placeholder until the operator's
#: IANA private enterprise number replaces it in the MIB and here).
MIB = (1, 3, 6, 1, 4, 1, 99999, 1)
NOTIFICATIONS = MIB + (0,)
ALARM_RAISED = NOTIFICATIONS + (1,)
ALARM_CLEARED = NOTIFICATIONS + (2,)
OBJECTS = MIB + (1,)
ALARM_NUMBER = OBJECTS + (1, 0)
ALARM_NAME = OBJECTS + (2, 0)
ALARM_SEVERITY = OBJECTS + (3, 0)
ALARM_RESOURCE = OBJECTS + (4, 0)
ALARM_TEXT = OBJECTS + (5, 0)
ALARM_TIME = OBJECTS + (6, 0)
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)

AUTH = {"md5": hmacmd5.HmacMd5, "sha": hmacsha.HmacSha}
PRIV = {"des": des.Des, "aes": aes.Aes}
_HASH = {"md5": hashlib.md5, "sha": hashlib.sha1}


def date_and_time(at: float) -> bytes:
    """@return: SNMPv2-TC DateAndTime (8 octets, UTC) of POSIX time C{at}."""
    t = time.gmtime(at)
    return bytes([t.tm_year >> 8, t.tm_year & 0xFF, t.tm_mon, t.tm_mday,
                  t.tm_hour, t.tm_min, t.tm_sec,
                  int((at % 1) * 10)])


def varbinds(event: AlarmEvent, uptime: float) -> list[tuple]:
    """
    The varbinds of the trap of C{event}.

    @param uptime: seconds since the node started (sysUpTime).
    """
    trap = ALARM_CLEARED if event.severity == "cleared" else ALARM_RAISED
    return [
        (SYS_UPTIME, rfc1902.TimeTicks(int(uptime * 100) % 2 ** 32)),
        (SNMP_TRAP_OID, rfc1902.ObjectIdentifier(trap)),
        (ALARM_NUMBER, rfc1902.Unsigned32(event.number)),
        (ALARM_NAME, rfc1902.OctetString(event.alarm.encode())),
        (ALARM_SEVERITY,
         rfc1902.Integer32(SEVERITIES.index(event.severity) + 1)),
        (ALARM_RESOURCE, rfc1902.OctetString(event.resource.encode())),
        (ALARM_TEXT, rfc1902.OctetString(event.text.encode())),
        (ALARM_TIME, rfc1902.OctetString(date_and_time(event.at))),
    ]


def trap_pdu(event: AlarmEvent, uptime: float, request_id: int) -> Any:
    """@return: the SNMPv2-Trap PDU of C{event}."""
    pdu = v2c.SNMPv2TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiTrapPDU.set_request_id(pdu, request_id)
    v2c.apiTrapPDU.set_varbinds(pdu, varbinds(event, uptime))
    return pdu


def encode_v2c(community: str, pdu: Any) -> bytes:
    """@return: a v2c message carrying C{pdu}."""
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community.encode())
    v2c.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def localized_key(protocol: str, passphrase: str, engine_id: bytes) -> bytes:
    """@return: the RFC 3414 key of C{passphrase} localized to C{engine_id}
    with the hash of auth C{protocol} (C{md5} or C{sha})."""
    h = _HASH[protocol]
    data = (passphrase.encode() * (1048576 // len(passphrase) + 1))[:1048576]
    ku = h(data).digest()
    return h(ku + engine_id + ku).digest()


class USMUser:
    """
    A v3 user as the trap sender uses it: keys already localized to our
    engine id (L{localized_key}).

    @ivar level: C{noAuthNoPriv}, C{authNoPriv} or C{authPriv}.
    """

    def __init__(self, name: str, auth: str = "", auth_key: bytes = b"",
                 priv: str = "", priv_key: bytes = b""):
        """
        @param auth: C{md5}, C{sha} or C{""}.
        @param priv: C{des}, C{aes} or C{""} (needs C{auth}).
        """
        self.name = name
        self.auth = auth
        self.auth_key = auth_key
        self.priv = priv if auth else ""
        self.priv_key = priv_key
        self.level = ("authPriv" if self.priv else
                      "authNoPriv" if auth else "noAuthNoPriv")


def encode_v3(user: USMUser, engine_id: bytes, boots: int, engine_time: int,
              pdu: Any, msg_id: int, salt: int = 0) -> bytes:
    """
    @return: a v3 message carrying C{pdu} from the authoritative engine
        C{engine_id}, authenticated and encrypted as C{user}'s level says.
    """
    scoped = ScopedPDU()
    scoped["contextEngineId"] = engine_id
    scoped["contextName"] = b""
    scoped["data"].setComponentByType(pdu.tagSet, pdu)
    flags = (1 if user.auth else 0) | (2 if user.priv else 0)
    params = UsmSecurityParameters()
    params["msgAuthoritativeEngineId"] = engine_id
    params["msgAuthoritativeEngineBoots"] = boots
    params["msgAuthoritativeEngineTime"] = engine_time
    params["msgUserName"] = user.name.encode()
    params["msgPrivacyParameters"] = b""
    msg = SNMPv3Message()
    msg["msgVersion"] = 3
    header = msg["msgGlobalData"]
    header["msgID"] = msg_id
    header["msgMaxSize"] = 65507
    header["msgFlags"] = bytes([flags])
    header["msgSecurityModel"] = 3
    if user.priv:
        service = PRIV[user.priv]()
        data, privacy = service.encrypt_data(
            univ.OctetString(user.priv_key),
            (boots, engine_time, salt), encoder.encode(scoped))
        params["msgPrivacyParameters"] = privacy
        msg["msgData"]["encryptedPDU"] = data
    else:
        msg["msgData"]["plaintext"] = scoped
    params["msgAuthenticationParameters"] = b"\0" * 12 if user.auth else b""
    msg["msgSecurityParameters"] = encoder.encode(params)
    whole = encoder.encode(msg)
    if user.auth:
        whole = AUTH[user.auth]().authenticate_outgoing_message(
            univ.OctetString(user.auth_key), whole)
    return bytes(whole)


class TrapSender(DatagramProtocol):
    """
    Sends each alarm change to every configured manager.

    @ivar sent: traps sent since start.
    @ivar engine_id: our v3 engine id.
    """
    log = Logger()

    def __init__(self, managers: Callable[[], list], clock: Any,
                 engine_id: bytes, boots: int = 1):
        """
        @param managers: returns the current managers' settings
            (L{ManagerSettings}).
        @param clock: gives C{seconds()} (uptime and v3 engine time).
        @param boots: our v3 engine boots.
        """
        self.managers = managers
        self.clock = clock
        self.engine_id = engine_id
        self.boots = boots
        self.started = clock.seconds()
        self.sent = 0
        #: Traps that could not be encoded or written.
        self.failed = 0
        self._ids = 0

    def _next_id(self) -> int:
        self._ids = (self._ids + 1) % 2147483647
        return self._ids

    def encode(self, manager: Any, event: AlarmEvent) -> bytes:
        """@return: the datagram of C{event} for C{manager}."""
        uptime = self.clock.seconds() - self.started
        pdu = trap_pdu(event, uptime, self._next_id())
        if not manager.user:
            return encode_v2c(manager.community or "public", pdu)
        user = USMUser(manager.user, manager.auth_protocol,
                       bytes.fromhex(manager.auth_key),
                       manager.priv_protocol,
                       bytes.fromhex(manager.priv_key))
        return encode_v3(user, self.engine_id, self.boots, int(uptime), pdu,
                         self._next_id(), salt=int.from_bytes(
                             os.urandom(8), "big"))

    def alarm(self, event: AlarmEvent) -> None:
        """Send C{event} to every manager (an alarm listener)."""
        if self.transport is None:
            return
        for manager in self.managers():
            try:
                data = self.encode(manager, event)
                self.transport.write(data, (manager.address, manager.port))
                self.sent += 1
            except Exception:
                # Broad: a manager's keys, address or a bug in one trap's
                # encoding must not keep the trap from the other managers.
                self.failed += 1
                self.log.failure("trap to {manager} failed",
                                 manager=manager.name)
