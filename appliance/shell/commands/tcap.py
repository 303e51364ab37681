"""
C{show tcap dialogues}, C{transport map} of a service policy, and the
ISUP release settings of the C{ss7}
mode (C{isup release-cause}, C{isup release-timer}): what the node
answers an incoming call with, and when.
"""
from __future__ import annotations

from appliance.shell.commands.modes import POLICY, command
from appliance.shell.commands.ss7 import SS7
from appliance.shell.grammar import ANY, NO_STR

# The defaults live with the SS7 model (the SMSC reads them too).
from appliance.sigtran.model import (  # noqa: E402,F401
    RELEASE_CAUSE, RELEASE_TIMER, isup_release)


def _setting(attr: str, default: int, spec: str, help: tuple) -> None:
    def render(o):
        value = getattr(o, attr, default)
        return [] if value == default else [(value,)]

    @command(SS7, spec, help=help, render=render)
    def set_value(ctx, value):
        setattr(ctx.obj, attr, value)

    @command(SS7, "no " + " ".join(spec.split()[:-1]),
             help=(NO_STR,) + help[:-1])
    def unset_value(ctx):
        if attr in ctx.obj.__dict__:
            delattr(ctx.obj, attr)


_setting("isup_release_cause", RELEASE_CAUSE, "isup release-cause <1-127>",
         ("ISUP circuits", "The cause of our REL (Q.850; 17 user busy)",
          "Cause value"))
_setting("isup_release_timer", RELEASE_TIMER, "isup release-timer <0-3600>",
         ("ISUP circuits", "Seconds from our ACM to our REL", "Seconds"))


@command(POLICY, "transport map",
         help=("How matching messages are delivered",
               "To mobile subscribers by MAP (SRI-SM, MT-ForwardSM)"),
         render=lambda p: [()] if p.transport == "map" else [])
def transport_map(ctx):
    ctx.obj.transport = "map"
    ctx.root.set_policy_connections(ctx.obj.name, ())


@command(ANY, "show tcap dialogues",
         help=("Show running system information", "TCAP (MAP) state",
               "Open dialogues by context, limit and counters"),
         action="show")
def show_tcap_dialogues(ctx):
    svc = ctx.live.source("map")
    if svc is None:
        return "TCAP does not run on this node ([m3ua] enabled = false)\n"
    from appliance.shell.render import table
    s = svc.tcap.summary()
    out = [f"{s['open']} dialogues open (limit {s['limit']}), SSN "
           f"{svc.tcap.ssn}", ""]
    out.append(table(("Direction and context", "Open"),
                     sorted(s["by_context"].items())))
    out += ["", table(("Counter", "Count"), sorted(s["counters"].items()))]
    agent = svc.agent
    if agent is not None:
        out += ["", table(("MAP delivery", "Count"),
                          sorted(agent.counters.items())
                          + [("waiting subscribers", len(agent.waiting))])]
    out += ["", table(("MAP server", "Count"),
                      sorted(svc.server.counters.items()))]
    return "\n".join(out) + "\n"
