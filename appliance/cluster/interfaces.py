"""
Interfaces of the cluster domain: what the messaging core asks of the
node's share of the cluster, and where the cluster learns which node holds
an app's registration.
"""
from zope.interface import Interface

__all__ = ["ICallbackPlacement", "IOwnership", "IReceiptPlacement",
           "IRegistrationLocator"]


class IOwnership(Interface):
    """
    Which queued messages this node may deliver: the messaging core asks
    before it hands a message to an agent, so that of several nodes on
    one database exactly one delivers each message.  A node alone on its
    database owns everything (the core's default).
    """

    def epoch_taken(epoch):
        """
        The core took a new message-id epoch (at start): the messages it
        accepts from now on carry it, and this node holds their lease.
        Called before the first of them is accepted; commits before it
        returns.
        """

    def owns(id):
        """
        @param id: a message id.
        @return: whether this node holds a valid lease on that message now
            (it may deliver or expire it).
        """

    def claim(view):
        """
        Called just before the core dispatches a message.

        @param view: the L{appliance.messaging.vocabulary.MessageView}.
        @return: whether to deliver it here now: C{False} when another
            node owns it, or when this node owns it but another node holds
            its app's registration (the message is then handed to that
            node, which sends it over its own flow).
        """

    def account_online(username):
        """
        An app of C{username} registered on this node: messages for it
        owned by other nodes are pointed out to them (they hand them
        over); called before the core delivers the ones this node owns.
        """

    def transaction_hook(raw, message, state):
        """
        Inside the batched transaction that stores a message (C{state}
        C{accepted}) or changes its state: at acceptance, a message for an
        app registered on another node is owned by that node from the
        start (in the same commit).  (What the cluster keeps of a final
        message is pruned later, on a slower beat.)
        """


class IRegistrationLocator(Interface):
    """
    Where an account's app is registered, across the nodes of the cluster.
    """

    def holders(username):
        """
        @return: the names of the nodes holding a live registration of
            C{username}, this node first if it holds one; empty if none.
        """

    def registered(username):
        """
        An app of C{username} registered on this node (after the REGISTER
        committed).
        """


class IReceiptPlacement(Interface):
    """
    Which node sends a carrier's pending receipts: the receipt courier
    asks before it sends one, and hands on those whose carrier has its
    receiving binds on another node (L{appliance.cluster.receipts}).
    """

    def next_seq():
        """@return: a new receipt sequence number, of this node's slot."""

    def mine(seq):
        """@return: whether this node may send the receipt C{seq} now."""

    def bound_elsewhere(carrier):
        """@return: another alive node holding a receiving bind of
            C{carrier}, or C{None}."""

    def carriers_bound():
        """@return: the carriers some alive node holds a receiving bind
            of (this node's included)."""

    def hand(raw, seq, target):
        """Inside a batched write: hand receipt C{seq} to node C{target};
        @return: whether it was handed (this node still held it)."""

    def note_handed(n):
        """C{n} receipts were handed to other nodes (committed)."""

    def forget(raw, seq):
        """Inside the write that drops receipt C{seq}: forget its
        hand-over."""


class ICallbackPlacement(Interface):
    """
    Which node POSTs a tenant's delivery-report callback: the hook that
    queues one numbers it from this node's slot, and the callback sender
    asks before it sends one (L{appliance.cluster.callbacks}).
    """

    def next_serial():
        """@return: a new callback serial of this node's slot, or C{None}
        (no slot yet: the queue numbers it)."""

    def mine(serial):
        """@return: whether this node may send the callback C{serial}
        now."""
