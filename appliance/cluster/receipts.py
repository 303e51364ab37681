# -*- test-case-name: tests.cluster.test_receipts -*-
"""
Which node sends a carrier the receipts it is owed, across nodes on one
database.

A receipt is written by the node that recorded its message's final state
(its SMSC's receipt may arrive on any node's bind), but the carrier's
receiving binds may be held by another node.  A pending receipt belongs to
a slot, as messages do (L{appliance.cluster.leases}): its sequence number
is taken from the writing node's epoch (C{epoch << 32 | n}), so it is the
writer's without a write of its own, and it moves with that slot when a
dead node's slots are taken over.  Only the slot's holder, while its lease
holds, sends it.  A holder without a receiving bind of the carrier hands
the receipt to a node that has one (C{root["cluster"].receipt_handed}:
sequence number to that node's slot), in the very commit that writes it
when it can; each node says at each heartbeat which carriers it holds
receiving binds of (C{NodeRecord.carriers}), and at each heartbeat takes
into its courier's line the receipts of those carriers it now holds, and
hands on those it holds for carriers bound elsewhere only.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from BTrees.LOBTree import LOBTree
from zope.interface import implementer

from appliance.cluster import leases
from appliance.cluster.interfaces import IReceiptPlacement
from appliance.cluster.model import KEY
from appliance.messaging.vocabulary import MessageIds
from appliance.model.errors import ModelError

__all__ = ["ReceiptPlacement", "slot_mine", "slot_numbers"]


def receipt_handed(c: Any) -> LOBTree:
    """@return: C{c.receipt_handed}, created on a root from before it (the
    cluster's generation 2 creates it; this is for a root built in a
    test without generations)."""
    if c.receipt_handed is None:
        c.receipt_handed = LOBTree()
    return c.receipt_handed


def slot_mine(cluster: Any, seq: int, handed: Any = None) -> bool:
    """
    Whether node C{cluster} may act now on the thing numbered C{seq} from a
    slot's epoch (C{epoch << 32 | n}: a receipt, a callback), unless
    C{handed} maps it to another slot.  A number of epoch 0 (taken from a
    counter in the database, before the cluster) has no slot: the first
    node alive by name, the one that adopts orphaned epochs, acts on it.

    @param cluster: the L{appliance.cluster.service.ClusterService}.
    @param handed: number to the slot it was handed to, or C{None}.
    """
    if cluster.usurped:
        return False
    if leases.epoch_of(seq) == 0 and not (handed and seq in handed):
        return leases.taker(cluster._alive() + [cluster.node]) == \
            cluster.node
    slot = cluster._root().slots.get(leases.slot_of(seq, handed))
    return slot is not None and leases.may_act(
        slot.holder, slot.expires, cluster.node, cluster.clock.seconds(),
        cluster.margin)


def slot_numbers(cluster: Any) -> Callable[[], int | None]:
    """
    @return: a function giving new numbers of node C{cluster}'s current
        slot (C{epoch << 32 | n}), or C{None} before the node took its
        epoch; a new epoch (a restart) starts a new count.
    """
    ids: list[MessageIds] = []

    def next_number() -> int | None:
        if cluster.slot is None:
            return None
        if not ids or ids[0].epoch != cluster.slot:
            ids[:] = [MessageIds(cluster.slot)]
        return ids[0].next()
    return next_number


@implementer(IReceiptPlacement)
class ReceiptPlacement:
    """
    The cluster's answers to the receipt courier (L{IReceiptPlacement}).

    @ivar cluster: the L{appliance.cluster.service.ClusterService}.
    @ivar receiving: C{receiving()} gives the names of the carriers this
        node holds a receiving bind of now.
    """

    def __init__(self, cluster: Any, receiving: Callable[[], Iterable[str]]
                 ) -> None:
        self.cluster = cluster
        self.receiving = receiving
        self._next = slot_numbers(cluster)

    def next_seq(self) -> int:
        """
        @return: a new receipt sequence number of this node's slot.
        @raise ModelError: the node has not taken its epoch yet.
        """
        seq = self._next()
        if seq is None:
            raise ModelError("no receipt number before the node took its epoch")
        return seq

    def mine(self, seq: int) -> bool:
        """Whether this node may send the receipt numbered C{seq} now (a
        receipt numbered before the cluster, from the state's counter, is
        of epoch 0, which has no slot: the first node alive by name, the
        one that adopts orphaned epochs, sends those)."""
        return slot_mine(self.cluster, seq,
                         self.cluster._root().receipt_handed)

    def bound_elsewhere(self, carrier: str) -> str | None:
        """@return: an alive node other than this one holding a receiving
        bind of C{carrier} (the first by name), or C{None}."""
        now = self.cluster.clock.seconds()
        me = self.cluster.node
        for name, record in self.cluster._root().nodes.items():
            if name != me and record.alive(now) and \
                    carrier in record.carriers:
                return name
        return None

    def carriers_bound(self) -> set[str]:
        """@return: the carriers some alive node holds a receiving bind of,
        this node's as of now, the others' as of their last heartbeat."""
        now = self.cluster.clock.seconds()
        out = set(self.receiving())
        for name, record in self.cluster._root().nodes.items():
            if name != self.cluster.node and record.alive(now):
                out.update(record.carriers)
        return out

    def hand(self, raw: Any, seq: int, target: str) -> bool:
        """
        Inside a batched write: hand the receipt C{seq} to C{target}'s
        current slot, if this node still holds it (read again here).

        @return: whether it was handed.
        """
        c = raw[KEY]
        record = c.nodes.get(target)
        if record is None or not record.slot or record.slot not in c.slots:
            return False
        handed = receipt_handed(c)
        slot = c.slots.get(leases.slot_of(seq, handed))
        if slot is None or not leases.may_act(
                slot.holder, slot.expires, self.cluster.node,
                self.cluster.clock.seconds(), self.cluster.margin):
            return False
        handed[seq] = record.slot
        return True

    def note_handed(self, n: int) -> None:
        """C{n} receipts were handed to other nodes (committed)."""
        self.cluster.counters["receipts_handed"] += n

    def forget(self, raw: Any, seq: int) -> None:
        """Inside the write that drops a receipt the carrier took: drop
        its hand-over entry, if any."""
        handed = raw[KEY].receipt_handed
        if handed is not None and seq in handed:
            del handed[seq]
