"""
The persistent settings of the C{alarms} domain, in C{root["alarms"]}:
log levels per component, alarm thresholds, and the SNMP managers traps
go to.  Active alarms are not kept: the conditions are evaluated again
at start, so what is active after a restart is what is true then.
"""
from __future__ import annotations

import os

from BTrees.OOBTree import OOBTree
from persistent import Persistent

KEY = "alarms"

#: Threshold name to (default, what it measures).
THRESHOLDS = {
    "hlr-timeouts": (10, "HLR/MSC timeouts per check interval"),
    "queue": (10000, "messages waiting for delivery"),
    "commit-latency": (500, "milliseconds of the slowest batched commit "
                            "in a check interval"),
}


def new_engine_id() -> bytes:
    """@return: a new RFC 3411 engine id (format 5, random octets) under
    enterprise 99999, as the MIB."""
    return bytes([0x80, 0x01, 0x86, 0x9F, 0x05]) + os.urandom(8)


class SNMPManager(Persistent):
    """
    A NOC manager that receives traps: v2c with a community, or v3 with a
    user and optional auth/priv.

    The v3 passphrases are not kept: for a trap we are the authoritative
    engine, so the shell localizes each passphrase to our engine id at
    once (RFC 3414 2.6) and keeps only those keys (hex), which is what
    C{show running-config} writes back (C{auth-key}, C{priv-key}).  A key
    opens only this node's engine id; changing the engine id needs the
    passphrases typed again.
    """
    name = ""
    address = ""
    port = 162
    community = ""
    user = ""
    auth_protocol = ""
    auth_key = ""
    priv_protocol = ""
    priv_key = ""

    def __init__(self, name: str):
        self.name = name

    @property
    def version(self) -> str:
        """@return: C{v3} once a user is set, else C{v2c}."""
        return "v3" if self.user else "v2c"


class AlarmsRoot(Persistent):
    """
    @ivar log_levels: sorted C{(component, level)} pairs.
    @ivar thresholds: sorted C{(name, value)} pairs that differ from
        L{THRESHOLDS}' defaults.
    @ivar managers: name to L{SNMPManager}.
    @ivar engine_id: our SNMPv3 engine id, hex (made at install).
    """
    log_levels: tuple = ()
    thresholds: tuple = ()
    #: Seconds between checks of the conditions.
    check_interval = 5
    #: Our SNMP engine id (hex), set once at install.
    engine_id = ""

    def __init__(self):
        self.managers = OOBTree()

    def threshold(self, name: str) -> int:
        """@return: the value of threshold C{name}."""
        return dict(self.thresholds).get(name, THRESHOLDS[name][0])
