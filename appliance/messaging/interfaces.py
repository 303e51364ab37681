"""Interfaces of the messaging domain: the durable message queue."""
from zope.interface import Attribute, Interface


class IMessage(Interface):
    """
    One short message (possibly of several parts) in the queue.

    Once stored, change C{state}, C{next_attempt} and C{error} only through
    L{IMessageStore.set_state} and C{account} only through
    L{IMessageStore.set_account}, which keep the indexes right. Other
    attributes (C{attempts}, C{route}, C{hops}...) are plain.
    """

    id = Attribute("int: C{epoch << 32 | seq}, unique across restarts.")
    origin_kind = Attribute("str: carrier, account, connection or http.")
    origin = Attribute("str: name of the carrier/account/connection/API user.")
    sender = Attribute("str: digits or alphanumeric sender.")
    recipient = Attribute("str: E.164 digits.")
    account = Attribute("str or None: destination account username.")
    text = Attribute("str or None: the text.")
    payload = Attribute("bytes or None: binary content (UDH included).")
    encoding = Attribute("str: gsm7, ucs2, latin1, utf-8 or binary.")
    parts = Attribute("int: number of SMS parts.")
    state = Attribute("str: accepted, delivering, delivered, failed or expired.")
    attempts = Attribute("int: delivery attempts so far.")
    next_attempt = Attribute("float or None: when to try again (epoch seconds).")
    validity = Attribute("float: absolute expiry time (epoch seconds).")
    created = Attribute("float: when it was accepted.")
    updated = Attribute("float: last state change.")
    receipt = Attribute("int: registered_delivery requested.")
    route = Attribute("str or None: the policy that routed it.")
    transport = Attribute("str or None: the transport it was accepted for "
                          "(None: stored before messages recorded it).")
    error = Attribute("str or None: the last error.")
    hops = Attribute("int: how many nodes it went through (loop guard).")


class IMessageIds(Interface):
    """
    A transient allocator of message ids for one epoch (one node start).
    """

    epoch = Attribute("int: the epoch (upper 32 bits of every id).")

    def next():
        """
        @return: the next id.
        @raise IdsExhausted: after 2**32 - 1 ids; get a new epoch.
        """


class IMessageStore(Interface):
    """
    The durable queue every protocol writes accepted messages to.
    """

    messages = Attribute("LOBTree: id to IMessage.")
    account_ids = Attribute("OOBTree: username to the LLTreeSet of its "
                            "waiting messages' ids.")
    due_at = Attribute("LOBTree: the second a next attempt falls in (its "
                       "ceiling) to the LLTreeSet of those messages' ids.")

    def next_epoch():
        """
        @return: a new epoch number; call once per node start, in its own
            transaction, then build a C{MessageIds(epoch)}.
        """

    def add(message):
        """
        Store a new message (its id already allocated).
        """

    def get(id):
        """
        @return: the message, or None.
        """

    def set_state(message, state, *, next_attempt=None, error=None, now):
        """
        Change a message's state (the rest is keyword-only); indexes
        and counters follow.
        """

    def set_account(message, username):
        """
        Set a stored message's destination account (indexes follow).
        """

    def waiting_for(username):
        """
        @return: an iterator of the accepted/delivering messages for an
            account, in id order.
        """

    def due_before(ts, limit):
        """
        @return: up to C{limit} waiting messages whose next attempt is at
            or before C{ts}, earliest first.
        """

    def remove(id):
        """
        Delete a message and its index entries.
        """

    def counts():
        """
        @return: a dict of state to number of stored messages.
        """

    def oldest_waiting():
        """
        @return: the waiting message with the lowest id, or None.
        """

    def unscheduled_ids(after=0, limit=1000):
        """
        @return: up to C{limit} ids above C{after} of waiting messages
            without a next attempt (no outcome recorded yet), in id order.
        """


class IDeliveryAgent(Interface):
    """
    Delivers stored messages over one transport (C{sip}: to an account's
    registered apps; later C{smpp}: over client connections).  The
    messaging core calls it; it never touches the database itself.
    """

    def deliver(message):
        """
        Try to deliver one message now.

        @param message: a L{appliance.messaging.vocabulary.MessageView}.
        @return: a Deferred firing with an
            L{appliance.messaging.vocabulary.Outcome}: C{delivered}; C{offline}
            (no app registered: the core keeps it until
            L{IMessagingCore.account_online}); C{retry} (temporary: 408,
            480, 5xx, timeout); C{failed} (permanent).  It never errbacks
            for a delivery problem.
        """


class IStateWriter(Interface):
    """
    Writes what must be durable together with a message's final state (a
    carrier's receipt), inside the very transaction that records that
    state, and acts on it once committed: a crash keeps both or neither.
    """

    def final_state(raw, message, state):
        """
        Inside the final state's batched transaction (may be re-run: only
        write to C{raw}, change nothing else).

        @param raw: the ZODB root mapping of the transaction.
        @param message: the L{IMessage}, already in its final state.
        @param state: C{delivered}, C{failed} or C{expired}.
        @return: a value handed to L{committed}.
        """

    def committed(view, state, written):
        """
        After that transaction committed.

        @param view: the L{appliance.messaging.vocabulary.MessageView}.
        @param written: what L{final_state} returned.
        """


class IMessagingCore(Interface):
    """
    Accept, route, store, deliver, retry: the one path every protocol's
    incoming message takes (SIP MESSAGE from apps, SMPP from carriers and
    connections; HTTP and MAP later).  Protocols call the first group;
    the wiring (C{appliance.application}) calls the second.
    """

    def route(submission):
        """
        Where a message would go, storing nothing (C{test route}, and
        checks before a part is kept).

        @return: an L{appliance.messaging.routing.Decision} (unpacks as
            transport, account username or None, route name).
        @raise appliance.messaging.vocabulary.NoRoute: nobody takes it.
        @raise appliance.model.errors.ModelError: not a number.
        """

    def authorize(submission):
        """
        Route and charge a message, storing nothing: the first part of a
        concatenated message authorizes all the parts it announces.

        @return: an L{appliance.messaging.vocabulary.Authorization} for
            L{submit}.
        @raise appliance.messaging.vocabulary.NoRoute: nobody takes it.
        @raise appliance.messaging.vocabulary.Refused: the payer cannot
            be charged.
        """

    def submit(submission, authorization=None):
        """
        Route and durably accept one message.

        @param submission: an L{appliance.messaging.vocabulary.Submission}.
        @param authorization: from L{authorize} (C{None}: authorize now).
        @return: a Deferred firing with the new message id once the message
            is committed (acknowledge the sender only then).
        @raise appliance.messaging.vocabulary.NoRoute: synchronously, before
            anything is stored, when no local account or policy takes the
            recipient.
        @raise appliance.messaging.vocabulary.Refused: synchronously, the
            payer cannot be charged; nothing is stored.
        """

    def account_online(username):
        """
        An app of C{username} registered: deliver its waiting messages, in
        the order they were accepted.

        @return: a Deferred firing when all were tried.
        """

    def receipt_received(connection, remote_id, state, error=""):
        """
        A receipt from the node or vendor a message was forwarded to over
        C{connection}, for the id it gave (hex or decimal).

        @param state: C{delivered}, C{failed} or C{expired}.
        @return: a Deferred firing with whether a message matched (its
            final state is then committed).
        """

    def route_table():
        """
        @return: the current L{appliance.model.routing.RouteTable}
            snapshot (service policies and their connections).
        """

    def statistics():
        """@return: counters since start, for C{show statistics}."""

    def set_agent(transport, agent):
        """Use the L{IDeliveryAgent} C{agent} for C{transport}."""

    def set_charger(charger):
        """Rate, charge and record with the
        L{appliance.billing.interfaces.ICharger} C{charger}."""

    def add_state_writer(writer):
        """Call the L{IStateWriter} C{writer} inside each final state's
        transaction, then after its commit."""

    def add_outcome_listener(listener):
        """
        Call C{listener(view, state)} after each final state change
        (C{delivered}, C{failed}, C{expired}) is committed.
        """
