# -*- test-case-name: tests.cluster.test_callbacks -*-
"""
Which node POSTs a tenant's delivery-report callbacks (dlr-url), across
nodes on one database.

Every node's L{appliance.http.callbacks.CallbackSender} scans the one
queue C{root["http"].callbacks}; alone, each would POST every report.  A
callback belongs to a slot, as messages and carriers' receipts do
(L{appliance.cluster.leases}): its serial is taken from the epoch of the
node that queued it (C{epoch << 32 | n}), in the commit that changed its
message's state, so it is that node's without a write of its own (and
two nodes queuing at once no longer both write the queue's counter).
Only the slot's holder, while its lease holds, sends it; when the holder
is killed, the node that takes its slots over sends what it left, after
the lease ran out.  A callback goes out over any node's HTTP client (no
connection of the tenant's to follow), so it is never handed on.

A report posted and answered whose delete had not committed when its node
was killed is posted again by the taker: at least once, as on one node
restarted after a kill; never by two live nodes.
"""
from __future__ import annotations

from typing import Any

from zope.interface import implementer

from appliance.cluster.interfaces import ICallbackPlacement
from appliance.cluster.receipts import slot_mine, slot_numbers

__all__ = ["CallbackPlacement"]


@implementer(ICallbackPlacement)
class CallbackPlacement:
    """
    The cluster's answers to the callback sender and to the hook that
    queues callbacks (L{ICallbackPlacement}).

    @ivar cluster: the L{appliance.cluster.service.ClusterService}.
    """

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self._next = slot_numbers(cluster)

    def next_serial(self) -> int | None:
        """@return: a new callback serial of this node's slot, or C{None}
        before the node took its epoch (the queue's own counter then)."""
        return self._next()

    def mine(self, serial: int) -> bool:
        """Whether this node may send callback C{serial} now."""
        return slot_mine(self.cluster, serial)
