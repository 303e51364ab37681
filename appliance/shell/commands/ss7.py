"""
The C{ss7} configuration: our signalling point, M3UA peers, SCCP routes
and ISUP circuits (issue 13's spellings), and C{show ss7}.
"""
from __future__ import annotations

from appliance.model.errors import ModelError
from appliance.shell.commands.helpers import setting
from appliance.shell.commands.modes import CONFIG, command
from appliance.shell.grammar import ANY, NO_STR, Mode
from appliance.shell.types import ArgumentError, ArgumentType, register_type
from appliance.sigtran.model import (
    format_point_code, parse_point_code, ss7_of)


def _pc(text: str) -> int:
    try:
        return parse_point_code(text)
    except ValueError as e:
        raise ArgumentError(str(e)) from None


def _digits(text: str) -> str:
    if not text.isdigit() or not text.isascii() or not 1 <= len(text) <= 20:
        raise ArgumentError("expected 1 to 20 digits")
    return text


def _ip(text: str) -> str:
    import ipaddress
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ArgumentError("expected an IP address") from None


register_type(ArgumentType("PC", "point code (3-8-3 or 0-16383)", _pc,
                           render=format_point_code))
register_type(ArgumentType("DIGITS", "digits", _digits))
register_type(ArgumentType("IP", "IP address", _ip))


def _peer(root, parent, key):
    return parent.peers.get(key) if parent is not None else None


def _route(root, parent, key):
    return parent.routes.get(key) if parent is not None else None


SS7 = Mode("config-ss7", CONFIG, "ss7", lambda root, parent, key: ss7_of(root))
M3UA_PEER = Mode("config-m3ua-peer", SS7, "m3ua-peer", _peer)
SCCP_ROUTE = Mode("config-sccp-route", SS7, "sccp-route", _route)


def _configured(root, parent):
    ss7 = ss7_of(root)
    return ["ss7"] if ss7 is not None and ss7.configured else []


@command(CONFIG, "ss7", help=("Our SS7 signalling point over SIGTRAN",),
         enters=SS7, children=_configured)
def ss7(ctx):
    obj = ss7_of(ctx.root, create=True)
    obj.configured = True
    ctx.enter("ss7")


def _unset(obj, attr: str) -> None:
    try:
        delattr(obj, attr)
    except AttributeError:
        pass


def _plain(attr: str, spec: str, help: tuple, render=None, convert=None):
    """A setting of the SS7 root (plain attribute with a class default)."""
    def default_render(o):
        value = getattr(o, attr)
        return [] if value == getattr(type(o), attr) else [(value,)]

    @command(SS7, spec, help=help, render=render or default_render)
    def set_value(ctx, value):
        setattr(ctx.obj, attr, convert(value) if convert else value)

    words = spec.split()[:-1]

    @command(SS7, "no " + " ".join(words), help=(NO_STR,) + help[:-1])
    def unset_value(ctx):
        _unset(ctx.obj, attr)


_plain("point_code", "point-code PC",
       ("Our point code", "ITU 3-8-3 (0.23.1) or an integer"))
_plain("network_indicator",
       "network-indicator (international|national|spare|reserved)",
       ("The network indicator of our messages", "Network"))
_plain("global_title", "global-title DIGITS",
       ("Our global title (E.164, international)", "Digits"))
_plain("smsc_ssn", "ssn smsc <2-254>",
       ("Our subsystem numbers", "The SMSC's SSN", "SSN"))
_plain("hlr_gt", "hlr global-title DIGITS",
       ("The HLR", "Its global title", "Digits"))


@command(SS7, "isup circuits PC <0-4095> <0-4095>",
         help=("ISUP circuits", "A range of circuits to a switch",
               "The switch's point code", "First CIC", "Last CIC"),
         render=lambda o: list(o.circuits))
def isup_circuits(ctx, pc, first, last):
    ctx.obj.add_circuits(pc, first, last)


@command(SS7, "no isup circuits PC <0-4095> <0-4095>",
         help=(NO_STR, "ISUP circuits", "A range of circuits",
               "The switch's point code", "First CIC", "Last CIC"))
def no_isup_circuits(ctx, pc, first, last):
    ctx.obj.remove_circuits(pc, first, last)


@command(SS7, "m3ua-peer NAME", help=("An M3UA association", "Peer name"),
         enters=M3UA_PEER, children=lambda root, obj: list(obj.peers.keys()))
def m3ua_peer(ctx, name):
    if name not in ctx.obj.peers:
        ctx.obj.add_peer(name)
    ctx.enter(name)


@command(SS7, "no m3ua-peer NAME", help=(NO_STR, "An M3UA association",
                                         "Peer name"))
def no_m3ua_peer(ctx, name):
    ctx.obj.remove_peer(name)


setting(M3UA_PEER, "address", "IP", "address", "The peer's address",
        "IP address")
setting(M3UA_PEER, "port", "<1-65535>", "port", "The peer's port", "Port")
setting(M3UA_PEER, "transport", "(tcp|sctp)", "transport",
        "The transport", "TCP (RFC 4666 1.3.1) or SCTP")
setting(M3UA_PEER, "role", "(asp|sg|ipsp)", "role", "Our role on it",
        "asp: we connect to an SG; sg: the ASP connects to us; ipsp")
setting(M3UA_PEER, "routing-context", "<0-4294967295>", "routing_context",
        "The routing context (none: register a routing key)", "RC")
setting(M3UA_PEER, "traffic-mode", "(override|loadshare)", "traffic_mode",
        "How traffic is shared with other peers", "Traffic mode")


@command(SS7, "sccp-route NAME", help=("An SCCP route", "Route name"),
         enters=SCCP_ROUTE, children=lambda root, obj: list(obj.routes.keys()))
def sccp_route(ctx, name):
    if name not in ctx.obj.routes:
        ctx.obj.add_route(name)
    ctx.enter(name)


@command(SS7, "no sccp-route NAME", help=(NO_STR, "An SCCP route",
                                          "Route name"))
def no_sccp_route(ctx, name):
    ctx.obj.remove_route(name)


setting(SCCP_ROUTE, "global-title-prefix", "DIGITS", "gt_prefix",
        "Called global titles starting with these digits", "Digits")
setting(SCCP_ROUTE, "point-code", "PC", "point_code",
        "The destination point code (alone: called PCs it matches)",
        "ITU 3-8-3 or an integer")


@command(SCCP_ROUTE, "peer NAME",
         help=("Send through this M3UA peer", "Peer name"),
         render=lambda r: [] if r.peer is None else [(r.peer,)])
def route_peer(ctx, name):
    if name not in ctx.parent.peers:
        raise ModelError(f"no m3ua-peer {name!r}")
    ctx.obj.peer = name


@command(SCCP_ROUTE, "no peer", help=(NO_STR, "The M3UA peer"))
def no_route_peer(ctx):
    del ctx.obj.peer


@command(ANY, "show ss7", help=("Show running system information",
                                "SIGTRAN associations, destinations, counters"),
         action="show")
def show_ss7(ctx):
    svc = ctx.live.source("m3ua")
    if svc is not None:
        return svc.show()
    ss7 = ss7_of(ctx.root)
    if ss7 is None or not ss7.configured:
        return "ss7 is not configured\n"
    return ("the M3UA service does not run on this node ([m3ua] enabled = "
            "false); configured peers: " + (", ".join(ss7.peers.keys())
                                            or "none") + "\n")


