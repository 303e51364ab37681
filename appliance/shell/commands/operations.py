"""
Operational commands (EXEC mode, role admin): act on the running services
without changing the configuration.  Each is logged to the audit log.
"""
from __future__ import annotations

from appliance.model.errors import ModelError
from appliance.shell.commands.modes import EXEC, command


def _audit(ctx, text: str) -> None:
    session = ctx.session
    if session.audit is not None:
        session.audit.record(session.operator, session.source, "", text)


@command(EXEC, "smpp disconnect carrier NAME",
         help=("SMPP operations", "Close live binds", "Of a carrier",
               "Carrier name"), action="session")
def smpp_disconnect_carrier(ctx, name):
    if name not in ctx.root.carriers:
        raise ModelError(f"no carrier {name!r}")
    smpp = ctx.live.carriers
    if smpp is None:
        raise ModelError("the SMPP service does not run on this node")
    count = smpp.disconnect_carrier(name)
    _audit(ctx, f"smpp disconnect carrier {name}")
    return f"{count} bind(s) of carrier {name} disconnected\n"
