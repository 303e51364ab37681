"""
Service policies: which messages go which way, tried in order.
"""
from __future__ import annotations

from appliance.model.errors import ModelError
from appliance.shell.commands.helpers import object_commands, setting
from appliance.shell.commands.modes import CONFIG, POLICY, command
from appliance.shell.grammar import ANY, NO_STR

object_commands(
    "service-policy", "POLICY", POLICY,
    "A routing rule (policies are tried in order)", "Policy name",
    add=lambda ctx, name: ctx.root.add_policy(name),
    remove=lambda ctx, name: ctx.root.remove_policy(name),
    children=lambda root, parent: list(root.policy_order))


@command(CONFIG, "service-policy-order POLICY <1-10000>",
         help=("Move a service policy to a place in the order",
               "Policy name", "Position, 1 = tried first"))
def policy_order(ctx, name, position):
    ctx.root.move_policy(name, position)


setting(POLICY, "recipient-pattern", "PATTERN", "recipient_pattern",
        "Recipients this policy matches", "Digits, % (any digits), _ (one digit)")
setting(POLICY, "sender-pattern", "PATTERN", "sender_pattern",
        "Senders this policy matches (none: any)",
        "Digits, % (any digits), _ (one digit)")
setting(POLICY, "origin", "(app|carrier|connection)", "origin",
        "Where matching messages come from (none: anywhere)", "Origin")


@command(POLICY, "transport sip", help=("How matching messages are delivered",
                                        "To local accounts over SIP"))
def transport_sip(ctx):
    ctx.obj.transport = "sip"
    ctx.root.set_policy_connections(ctx.obj.name, ())


@command(POLICY, "transport smpp",
         help=("How matching messages are delivered",
               "Over SMPP connections (add them with 'connection')"),
         render=lambda p: [()] if p.transport == "smpp" and not p.connections
         else [])
def transport_smpp(ctx):
    ctx.obj.transport = "smpp"


@command(POLICY, "transport smpp connection CONNECTION",
         help=("How matching messages are delivered", "Over SMPP",
               "Through this connection (first choice)", "Connection name"),
         render=lambda p: [(p.connections[0],)]
         if p.transport == "smpp" and p.connections else [])
def transport_smpp_connection(ctx, name):
    ctx.obj.transport = "smpp"
    ctx.root.set_policy_connections(ctx.obj.name, (name,))


@command(POLICY, "fallback-connection CONNECTION",
         help=("Try this connection next if the ones before it fail",
               "Connection name"),
         render=lambda p: [(c,) for c in p.connections[1:]])
def fallback_connection(ctx, name):
    current = tuple(ctx.obj.connections)
    if name in current:
        return
    ctx.root.set_policy_connections(ctx.obj.name, current + (name,))


@command(POLICY, "no fallback-connection CONNECTION",
         help=(NO_STR, "A fallback connection", "Connection name"))
def no_fallback_connection(ctx, name):
    current = tuple(ctx.obj.connections)
    if name not in current[1:]:
        raise ModelError(f"{name} is not a fallback connection of "
                         f"{ctx.obj.name}")
    ctx.root.set_policy_connections(
        ctx.obj.name, tuple(c for c in current if c != name))


@command(POLICY, "no transport", help=(NO_STR, "Delivery (back to sip)"))
def no_transport(ctx):
    ctx.root.set_policy_connections(ctx.obj.name, ())
    del ctx.obj.transport


@command(ANY, "test route from WORD to WORD",
         help=("Test what the node would do with a message",
               "Show the routing decision without sending", "Sender",
               "Sender number or name", "Recipient", "Recipient number"),
         action="show")
def test_route(ctx, sender, recipient):
    return _decide(ctx, sender, recipient, "account")


_ORIGIN = ("Where the message comes from", "app (SIP), carrier (SMPP), "
           "connection (another node or vendor) or tenant (HTTP API)")


@command(ANY, "test route from WORD to WORD origin "
         "(app|carrier|connection|tenant)",
         help=("Test what the node would do with a message",
               "Show the routing decision without sending", "Sender",
               "Sender number or name", "Recipient", "Recipient number")
         + _ORIGIN, action="show")
def test_route_origin(ctx, sender, recipient, origin):
    return _decide(ctx, sender, recipient, _KIND.get(origin, origin))


@command(ANY, "test route from WORD to WORD origin "
         "(app|carrier|connection|tenant) NAME",
         help=("Test what the node would do with a message",
               "Show the routing decision without sending", "Sender",
               "Sender number or name", "Recipient", "Recipient number")
         + _ORIGIN + ("Its name (carrier, connection, account, tenant)",),
         action="show")
def test_route_origin_name(ctx, sender, recipient, origin, name):
    return _decide(ctx, sender, recipient, _KIND.get(origin, origin), name)


@command(ANY, "test route from WORD to WORD origin "
         "(app|carrier|connection|tenant) NAME source WORD",
         help=("Test what the node would do with a message",
               "Show the routing decision without sending", "Sender",
               "Sender number or name", "Recipient", "Recipient number")
         + _ORIGIN + ("Its name (carrier, connection, account, tenant)",
                      "The address it comes from", "IP address"),
         action="show")
def test_route_origin_source(ctx, sender, recipient, origin, name, source):
    import ipaddress
    try:
        ipaddress.ip_address(source)
    except ValueError:
        raise ModelError(f"{source!r} is not an IP address") from None
    return _decide(ctx, sender, recipient, _KIND.get(origin, origin), name,
                   source)


#: Submission origin kinds by test route's words.
_KIND = {"app": "account"}


def _decide(ctx, sender: str, recipient: str, origin_kind: str,
            origin: str = "shell", source: str | None = None) -> str:
    """The core's own routing decision and the authorization rule that
    would decide who pays, described; nothing is stored.  The numbers are
    read as the origin's numbering plan reads them (C{0...}, C{00...})."""
    from appliance.messaging.vocabulary import NoRoute, Submission
    from appliance.model.numbering import normalize, plan_for
    from appliance.shell.commands.billing import who_pays
    core = ctx.live.core
    if core is None:
        raise ModelError("no messaging service runs on this node")
    plan = plan_for(ctx.root, origin_kind, origin)
    sender, recipient = (str(normalize(a, plan=plan)) for a in (sender,
                                                                recipient))
    submission = Submission(origin_kind, origin, sender, recipient, None,
                            source=source)
    try:
        transport, account, route = core.route(submission)
    except NoRoute as e:
        return f"no route: {e}\n"
    if account is not None:
        return (f"local delivery to account {account} over "
                f"{transport.upper()}\n"
                + who_pays(ctx.root, submission, account))
    entry = core.route_table().entry(route)
    got = ctx.live.table("smpp-client", "connections")
    running = {row[0]: row[1] for row in got[1]} if got is not None else {}
    states = [f"{name} ({running.get(name, 'not running')})"
              for name in entry.connections]
    return (f"policy {route}: {transport} over " + ", then ".join(states)
            + "\n" + who_pays(ctx.root, submission, None))
