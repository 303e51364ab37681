"""
What several nodes on one database share about each other
(C{root["cluster"]}, a L{ClusterRoot}).

  - C{nodes}: name to L{NodeRecord}, each written by its own node only
    (the heartbeat), so nodes never conflict on it;
  - C{slots}: message-id epoch to L{Slot}, the lease on every message of
    that epoch.  A node takes a new epoch each time it starts, so the
    messages it accepts are its own without a write per message; its
    heartbeat renews every slot it holds in one commit; a node that takes
    over a dead one rewrites that node's slots, and both writing the same
    slot objects is what makes two claims on one slot conflict in the
    database instead of both winning;
  - C{handed}: message id to the epoch of the slot that owns it, for the
    few messages owned by another node than the one that accepted them
    (delivered over another node's flow), dropped when they are final;
  - C{mailboxes}: node name to the ids of messages it should look at now
    (handed to it, or its own ones an app registered for on another node);
  - C{receipt_handed}: receipt sequence number to the epoch of the slot
    that sends it, for the receipts handed to a node holding a receiving
    bind of their carrier (L{appliance.cluster.receipts}).

Where an app is registered is the SIP registrar's to say (its bindings
carry their node); C{presence} is left from before that and unused.

Do not rename or move these classes: the database holds their pickles.
"""
from __future__ import annotations

from BTrees.LLBTree import LLTreeSet
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent

#: The root entry of the cluster domain.
KEY = "cluster"
#: Always in a mailbox (see L{ClusterRoot.mailbox}); never a message id.
SENTINEL = 0


class NodeRecord(Persistent):
    """
    One node of the cluster, as its heartbeat last wrote it.

    @ivar name: the node's C{[node] name}.
    @ivar incarnation: a random token of the running process; another
        process starting under the same name writes its own.
    @ivar started: when that process started (epoch seconds).
    @ivar beat: its last heartbeat (epoch seconds, the node's clock).
    @ivar lease: seconds its slots last after a heartbeat.
    @ivar slot: the epoch it accepts messages under now.
    @ivar stopped: when it stopped cleanly (C{None}: running or killed).
    @ivar carriers: the carriers it holds receiving (receiver or
        transceiver) SMPP binds of, as of its last heartbeat.
    """

    name: str = ""
    incarnation: str = ""
    started: float = 0.0
    beat: float = 0.0
    lease: float = 10.0
    slot: int = 0
    stopped: float | None = None
    carriers: frozenset = frozenset()

    def __init__(self, name: str) -> None:
        """@param name: the node's name."""
        self.name = name

    def alive(self, now: float) -> bool:
        """Whether its last heartbeat is younger than its lease."""
        return self.stopped is None and now < self.beat + self.lease


class Slot(Persistent):
    """
    The lease on the messages of one id epoch.

    @ivar holder: the node that may deliver them.
    @ivar expires: until when (epoch seconds, the holder's clock); renewed
        by each of its heartbeats.
    @ivar since: when the holder got it.
    @ivar previous: who held it before a takeover (C{None}: its creator).
    """

    holder: str = ""
    expires: float = 0.0
    since: float = 0.0
    previous: str | None = None

    def __init__(self, holder: str, expires: float, since: float) -> None:
        self.holder = holder
        self.expires = expires
        self.since = since


class ClusterRoot(Persistent):
    """C{root["cluster"]} (see the module docstring)."""

    nodes: OOBTree | None = None
    slots: LOBTree | None = None
    handed: LOBTree | None = None
    mailboxes: OOBTree | None = None
    presence: OOBTree | None = None
    receipt_handed: LOBTree | None = None

    def __init__(self) -> None:
        self.nodes = OOBTree()
        self.slots = LOBTree()
        self.handed = LOBTree()
        self.mailboxes = OOBTree()
        self.receipt_handed = LOBTree()

    def mailbox(self, node: str) -> LLTreeSet:
        """
        @return: the mailbox of C{node}, created on first use.  It always
            holds L{SENTINEL} (no message id), so that emptying it never
            empties its bucket: other nodes add to it while its node takes
            ids out, and the database resolves those concurrent changes
            only while the bucket stays non-empty.
        """
        box = self.mailboxes.get(node)
        if box is None:
            box = self.mailboxes[node] = LLTreeSet()
        if SENTINEL not in box:
            box.add(SENTINEL)
        return box
