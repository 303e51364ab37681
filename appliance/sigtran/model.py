# -*- test-case-name: tests.sigtran.test_model -*-
"""
The C{ss7} configuration in the database: our signalling point (point
code, network indicator, global title, SSNs, the HLR's GT, ISUP circuits),
the M3UA peers and the SCCP routes.  Persistent; the running service reads
an immutable L{snapshot} of it rebuilt after each commit.

Lives at C{root["ss7"]} (installed by L{appliance.sigtran.generations}; a
configuration command creates it too on a database that lacks it).
"""
from __future__ import annotations

import ipaddress
from typing import Any

from BTrees.OOBTree import OOBTree
from persistent import Persistent

from appliance.model.base import Configurable, Setting, choice, int_range
from appliance.model.errors import ModelError
from appliance.sigtran.interfaces import CircuitRange, SS7Settings
from appliance.sigtran.scrc import Route

KEY = "ss7"
NETWORK_INDICATORS = ("international", "spare", "national", "reserved")
TRANSPORTS = ("tcp", "sctp")
ROLES = ("asp", "sg", "ipsp")
TRAFFIC_MODES = ("override", "loadshare")


def parse_point_code(text: str) -> int:
    """
    @param text: ITU 3-8-3 (C{0.23.1}) or a decimal integer.
    @return: the 14-bit point code.
    @raise ValueError: anything else.
    """
    parts = text.split(".")
    if len(parts) == 3:
        zone, area, sp = (int(p) for p in parts)
        if not (0 <= zone <= 7 and 0 <= area <= 255 and 0 <= sp <= 7):
            raise ValueError("3-8-3: zone 0-7, area 0-255, point 0-7")
        return zone << 11 | area << 3 | sp
    if len(parts) == 1 and text.isdigit():
        value = int(text)
        if value <= 0x3FFF:
            return value
    raise ValueError("a point code is 3-8-3 (0.23.1) or 0-16383")


def format_point_code(pc: int) -> str:
    """@return: C{pc} as ITU 3-8-3."""
    return f"{pc >> 11 & 7}.{pc >> 3 & 0xFF}.{pc & 7}"


def _digits(label: str):
    def validate(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str) or not value.isdigit() \
                or not value.isascii() or not 1 <= len(value) <= 20:
            raise ModelError(f"{label}: 1 to 20 digits")
        return value
    return validate


def _pc(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, int) or not 0 <= value <= 0x3FFF:
        raise ModelError("point code: 0 to 16383")
    return value


def _address(value: Any) -> Any:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ModelError(f"{value!r} is not an IP address") from None


def _optional_rc(value: Any) -> Any:
    if value is None:
        return None
    return int_range("routing-context", 0, 0xFFFFFFFF)(value)


class M3UAPeer(Configurable):
    """
    One M3UA association (C{m3ua-peer NAME}).

    C{role} is our role on it: C{asp} (we connect to an SG/STP and send
    ASPUP), C{ipsp} (we connect to an IPSP peer), C{sg} (the peer, an ASP,
    connects to our C{[m3ua]} listener from C{address}).
    """
    address = Setting(None, _address, doc="the peer's IP address")
    port = Setting(2905, int_range("port", 1, 65535), doc="its port")
    transport = Setting("tcp", choice("transport", TRANSPORTS))
    role = Setting("asp", choice("role", ROLES))
    routing_context = Setting(None, _optional_rc,
                              doc="None: register a routing key")
    traffic_mode = Setting("override", choice("traffic-mode", TRAFFIC_MODES))


class SCCPRoute(Configurable):
    """
    One C{sccp-route NAME}: called GTs with a prefix (translated to
    C{point_code}) or a called point code, sent through C{peer}.
    """
    gt_prefix = Setting(None, _digits("global-title-prefix"))
    point_code = Setting(None, _pc)
    peer = Setting(None, lambda v: v)


class SS7Root(Persistent):
    """
    The node's signalling point and its SIGTRAN configuration.

    @ivar peers: name to L{M3UAPeer}.
    @ivar routes: name to L{SCCPRoute}.
    @ivar circuits: ISUP CIC ranges, C{(pc, first, last)} tuples.
    """
    configured = False
    point_code = 0
    network_indicator = "international"
    global_title: str | None = None
    smsc_ssn = 8
    hlr_gt: str | None = None
    circuits: tuple = ()

    def __init__(self) -> None:
        self.peers = OOBTree()
        self.routes = OOBTree()

    def add_peer(self, name: str) -> M3UAPeer:
        """@return: a new peer (refused if the name is taken)."""
        if name in self.peers:
            raise ModelError(f"m3ua-peer {name} exists")
        peer = self.peers[name] = M3UAPeer(name)
        return peer

    def remove_peer(self, name: str) -> None:
        """Remove a peer no route uses."""
        if name not in self.peers:
            raise ModelError(f"no m3ua-peer {name!r}")
        users = [r.name for r in self.routes.values() if r.peer == name]
        if users:
            raise ModelError(f"m3ua-peer {name} is used by sccp-route "
                             + ", ".join(users))
        del self.peers[name]

    def add_route(self, name: str) -> SCCPRoute:
        """@return: a new SCCP route."""
        if name in self.routes:
            raise ModelError(f"sccp-route {name} exists")
        route = self.routes[name] = SCCPRoute(name)
        return route

    def remove_route(self, name: str) -> None:
        """Remove an SCCP route."""
        if name not in self.routes:
            raise ModelError(f"no sccp-route {name!r}")
        del self.routes[name]

    def add_circuits(self, pc: int, first: int, last: int) -> None:
        """Add a CIC range; refused if it overlaps one of the same PC."""
        if first > last:
            raise ModelError("FIRST-CIC is above LAST-CIC")
        for p, f, l in self.circuits:
            if p == pc and f <= last and first <= l:
                raise ModelError(f"circuits {f}-{l} of {format_point_code(pc)}"
                                 " overlap")
        self.circuits = self.circuits + ((pc, first, last),)

    def remove_circuits(self, pc: int, first: int, last: int) -> None:
        """Remove a CIC range exactly as configured."""
        if (pc, first, last) not in self.circuits:
            raise ModelError("no such isup circuits range")
        self.circuits = tuple(c for c in self.circuits
                              if c != (pc, first, last))

    def settings(self) -> SS7Settings:
        """@return: the immutable snapshot the upper layers read."""
        return SS7Settings(
            self.point_code, NETWORK_INDICATORS.index(self.network_indicator),
            self.global_title, self.smsc_ssn, self.hlr_gt,
            tuple(CircuitRange(*c) for c in self.circuits))

    def route_table(self) -> tuple[Route, ...]:
        """@return: the SCCP routes as immutable L{Route}s."""
        return tuple(Route(r.name, r.gt_prefix, r.point_code, r.peer)
                     for r in self.routes.values())


def ss7_of(app_root: Any, create: bool = False) -> SS7Root | None:
    """
    @param app_root: the C{ApplianceRoot} (or any object of the same
        connection).
    @param create: install C{root["ss7"]} if the database has none (only
        inside a configuration transaction).
    @return: the L{SS7Root}, or None if absent and not created.
    """
    jar = getattr(app_root, "_p_jar", None)
    if jar is None:
        return None
    root = jar.root()
    ss7 = root.get(KEY)
    if ss7 is None and create:
        ss7 = root[KEY] = SS7Root()
    return ss7


#: Defaults when the C{ss7} configuration says nothing (cause 17: user
#: busy; two seconds from ACM to REL).
RELEASE_CAUSE = 17
RELEASE_TIMER = 2


def isup_release(ss7) -> tuple[int, float]:
    """@return: the configured C{(cause, seconds)} of an C{SS7Root}."""
    return (getattr(ss7, "isup_release_cause", RELEASE_CAUSE),
            getattr(ss7, "isup_release_timer", RELEASE_TIMER))
