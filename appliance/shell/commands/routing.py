"""
Service policies: which messages go which way, tried in order.
"""
from __future__ import annotations

from appliance.model.errors import ModelError
from appliance.shell.commands.helpers import object_commands, setting
from appliance.shell.commands.modes import CONFIG, POLICY, command
from appliance.shell.grammar import NO_STR

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
