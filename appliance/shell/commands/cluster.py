"""
C{show cluster}: the nodes sharing this node's database, alive or not,
the leases on their queued messages, and what else each node holds: the
carriers it holds receiving binds of, the receipts owed to carriers and
the tenants' delivery-report callbacks it is to send (the C{cluster} live
source, the node's L{appliance.cluster.service.ClusterService}).
"""
from __future__ import annotations

from appliance.shell.commands.modes import command
from appliance.shell.grammar import ANY
from appliance.shell.render import table

ALONE = "This node is alone on its database (not a cluster).\n"


@command(ANY, "show cluster",
         help=("Show running system information",
               "Nodes sharing the database, their leases and what each "
               "holds: messages, receiving binds, receipts, callbacks"),
         action="show")
def show_cluster(ctx):
    """Three tables: the nodes (state, heartbeat, slots, the messages
    their slots own, mailbox), the leases (each slot's holder, lease left,
    previous holder, messages), and what else each node holds (the
    carriers it holds receiving binds of, the receipts owed to carriers
    and the tenants' callbacks it is to send)."""
    nodes = ctx.live.table("cluster", "nodes")
    if nodes is None:
        return ALONE
    leases = ctx.live.table("cluster", "leases")
    holds = ctx.live.table("cluster", "holds")
    out = table(*nodes).rstrip("\n") + "\n\n" + table(*leases)
    if holds is not None:
        out = out.rstrip("\n") + "\n\n" + table(*holds)
    return out
