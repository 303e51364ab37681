# -*- test-case-name: tests.cluster.test_leases -*-
"""
The lease rules, pure: no Twisted, no ZODB.

A message belongs to the slot of its id's epoch (the upper 32 bits: the
node that accepted it took that epoch when it started), unless it was
handed to another node's slot.  A slot's holder may act on its messages
(deliver, expire, hand over) while the slot's lease, renewed by each of
its heartbeats, has more than a margin left; any other node may take the
slot once the lease has run out.  With clocks apart by less than the
margin the two never overlap in time, and a takeover and a renewal that
race both write the slot, so the database lets only one of them commit.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

#: Bits of a message id below its epoch.
EPOCH_SHIFT = 32


def epoch_of(id: int) -> int:
    """@return: the epoch of message id C{id}."""
    return id >> EPOCH_SHIFT


def epoch_range(epoch: int) -> tuple[int, int]:
    """@return: the lowest and highest message id of C{epoch}."""
    return epoch << EPOCH_SHIFT, ((epoch + 1) << EPOCH_SHIFT) - 1


def slot_of(id: int, handed: Mapping[int, int] | None) -> int:
    """
    @param handed: message id to the slot it was handed to (or C{None}).
    @return: the slot (an epoch) that owns message C{id}.
    """
    if handed:
        slot = handed.get(id)
        if slot is not None:
            return slot
    return epoch_of(id)


def may_act(holder: str, expires: float, me: str, now: float,
            margin: float) -> bool:
    """
    Whether node C{me} may act on a slot's messages at C{now}.

    @param holder: the slot's holder.
    @param expires: when its lease runs out.
    @param margin: seconds before that when the holder stops acting (more
        than the clocks of two nodes may differ).
    """
    return holder == me and now < expires - margin


def taker(alive: Iterable[str]) -> str | None:
    """
    @param alive: the names of the nodes alive.
    @return: the node that takes over lapsed slots (the first by name),
        or C{None}.
    """
    return min(alive, default=None)


def takeable(slots: Mapping[int, tuple[str, float]], alive: Iterable[str],
             me: str, now: float) -> list[int]:
    """
    The slots node C{me} should take over now.

    @param slots: slot key to C{(holder, expires)}.
    @param alive: the nodes alive (C{me} counts as alive).
    @return: the keys of the lapsed slots of other nodes, if C{me} is the
        taker; none otherwise.
    """
    if taker(set(alive) | {me}) != me:
        return []
    return sorted(key for key, (holder, expires) in slots.items()
                  if holder != me and now >= expires)


def hand_to(holders: Sequence[str], alive: Iterable[str],
            me: str) -> str | None:
    """
    Where a message for an app goes, given where it is registered.

    @param holders: the nodes holding its registration, best (the most
        recent) first.
    @param alive: the nodes alive.
    @return: the first of them alive, if that is another node: the node to
        hand the message to; C{None} to keep it here (the best holder is
        this node, or it is registered nowhere, or only on nodes gone).
    """
    alive = set(alive) | {me}
    for node in holders:
        if node in alive:
            return None if node == me else node
    return None
