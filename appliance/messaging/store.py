"""
The durable message store: messages, their indexes and state counters.

Per-message writes touch the message, a few BTree buckets and one
C{BTrees.Length} counter per state, so concurrent writers rarely touch the
same object and need no application-level conflict resolution.

Message ids are C{epoch << 32 | seq}. The node calls
L{MessageStore.next_epoch} once at start (one small transaction), then
allocates ids in memory with L{MessageIds}: ids are unique across restarts
without writing a counter for every message, and they grow over time, so
id order is acceptance order (within an epoch, and across epochs).
"""
from __future__ import annotations

import pickle
from decimal import Decimal
from operator import attrgetter
from typing import Any, Iterator

from BTrees.Length import Length
from BTrees.LLBTree import LLTreeSet
from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree, OOTreeSet
from persistent import Persistent
from zope.interface import implementer

from appliance.messaging.interfaces import IMessage, IMessageStore
# The id allocator is shared vocabulary (SMPP allocates part ids with it);
# re-exported here for the store's callers.
from appliance.messaging.vocabulary import (  # noqa: F401
    MAX_EPOCH, IdsExhausted, MessageIds)
from appliance.model.errors import ModelError

#: All states, in lifecycle order.
STATES = ("accepted", "delivering", "delivered", "failed", "expired")
#: States in which a message still waits for delivery.
WAITING = frozenset(("accepted", "delivering"))
#: States a message never leaves.
FINAL = frozenset(("delivered", "failed", "expired"))
ORIGIN_KINDS = ("carrier", "account", "connection", "http", "tenant", "map",
                "node")
ENCODINGS = ("gsm7", "ucs2", "latin1", "utf-8", "binary", "ascii")

#: Ids must fit a signed 64-bit LOBTree key.
_MAX_ID = (1 << 63) - 1
#: Kept in C{waiting}, C{unscheduled} and each account's set (never a
#: message id: ids are positive), so that those sets never empty.  A set
#: whose only bucket empties is one change the database cannot merge
#: with another writer's: with several nodes on one database, a node
#: delivering an account's last waiting message while another node
#: accepted one for it conflicted in nearly every commit (measured with
#: two nodes on PostgreSQL), and the account's entry was deleted and
#: created again all the time.
SENTINEL = 0


def _text_or_none(label: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ModelError(f"{label} must be text")
    return value


#: The attributes a message's compact state holds, in this order.  Append
#: new ones at the end only (a state written before holds the first ones
#: and the rest take their class defaults); never reorder or remove.  An
#: attribute set on a message that is not listed here is kept too, in the
#: state's second element (a domain may add one with a class default).
FIELDS = ("id", "origin_kind", "origin", "sender", "recipient", "account",
          "text", "payload", "encoding", "parts", "state", "attempts",
          "next_attempt", "validity", "created", "updated", "receipt",
          "route", "transport", "error", "hops", "remote", "payer", "rule",
          "charge_units", "charged", "meta")
_FIELD_SET = frozenset(FIELDS)
_values = attrgetter(*FIELDS)
#: The pickle protocol of the packed fields (fixed: it is a disk format).
_PROTOCOL = 4


@implementer(IMessage)
class Message(Persistent):
    """
    One message. See L{IMessage} for the attributes; all have class-level
    defaults.

    Stored compactly: its state is C{(packed, extra)}, C{packed} the
    values of L{FIELDS} pickled together by the C pickler (one object for
    ZODB's pickler instead of a dict of some 27 names and values: about
    half the bytes and the pickling time of the default), C{extra} a dict
    of attributes not in L{FIELDS} (persistent references allowed), or
    C{None}.  A message stored with the default (dict) state still loads.
    """

    id: int = 0
    origin_kind: str = "carrier"
    origin: str = ""
    sender: str = ""
    recipient: str = ""
    account: str | None = None
    text: str | None = None
    payload: bytes | None = None
    encoding: str = "gsm7"
    parts: int = 1
    state: str = "accepted"
    attempts: int = 0
    next_attempt: float | None = None
    validity: float = 0.0
    created: float = 0.0
    updated: float = 0.0
    receipt: int = 0
    route: str | None = None
    #: The transport it was accepted for (whose agent delivers it); None
    #: for messages stored before messages recorded it (the core then
    #: infers it from the account and route).
    transport: str | None = None
    error: str | None = None
    hops: int = 0
    #: Where it was forwarded (a connection name) and the id the far side
    #: gave it there, normalized; None until forwarded.
    remote: tuple[str, str] | None = None
    #: Billing (set by the charger when it is accepted): who pays
    #: (C{kind:name}), the authorization rule that attributed it, its
    #: billing units, and the amount reserved from a prepaid balance
    #: (C{None}: nothing reserved; 0 once returned).
    payer: str | None = None
    rule: str | None = None
    charge_units: int = 0
    charged: Decimal | None = None
    #: Protocol data kept with the message (an HTTP tenant's dlr-url,
    #: dlr-level, client-ref), C{(key, value)} pairs.
    meta: tuple = ()

    def __init__(self, id: int, origin_kind: str, origin: str, sender: str,
                 recipient: str, *, now: float, validity: float,
                 text: str | None = None, payload: bytes | None = None,
                 encoding: str = "gsm7", parts: int = 1,
                 account: str | None = None, receipt: int = 0,
                 hops: int = 0) -> None:
        """
        @param id: from L{MessageIds.next}.
        @param origin_kind: C{carrier}, C{account}, C{connection} or C{http}.
        @param origin: the origin's name.
        @param sender: digits or alphanumeric text (1 to 32 characters).
        @param recipient: E.164 digits.
        @param now: the acceptance time (epoch seconds).
        @param validity: the absolute expiry time, not before C{now}.
        @param text: the text, or C{None}.
        @param payload: binary content, or C{None}.
        @param encoding: see L{ENCODINGS}.
        @param parts: the number of SMS parts, at least 1.
        @param account: the destination account, if already known.
        @param receipt: the registered_delivery value asked for.
        @param hops: nodes passed so far.
        @raise ModelError: for any invalid field.
        """
        if isinstance(id, bool) or not isinstance(id, int) or not 0 < id <= _MAX_ID:
            raise ModelError("a message id is a positive 64-bit number")
        if origin_kind not in ORIGIN_KINDS:
            raise ModelError(f"origin kind must be one of: {', '.join(ORIGIN_KINDS)}")
        if not isinstance(origin, str):
            raise ModelError("origin must be text")
        if not isinstance(sender, str) or not 0 < len(sender) <= 32:
            raise ModelError("a sender is 1 to 32 characters")
        if not (isinstance(recipient, str) and recipient.isascii()
                and recipient.isdigit() and len(recipient) <= 15):
            raise ModelError("a recipient is 1 to 15 digits")
        if encoding not in ENCODINGS:
            raise ModelError(f"encoding must be one of: {', '.join(ENCODINGS)}")
        if payload is not None and not isinstance(payload, bytes):
            raise ModelError("a payload must be bytes")
        for label, number in (("parts", parts), ("receipt", receipt), ("hops", hops)):
            if isinstance(number, bool) or not isinstance(number, int) or number < 0:
                raise ModelError(f"{label} must be a whole number, at least 0")
        if parts < 1:
            raise ModelError("a message has at least one part")
        if validity < now:
            raise ModelError("validity must not be before the acceptance time")
        self.id = id
        self.origin_kind = origin_kind
        self.origin = origin
        self.sender = sender
        self.recipient = recipient
        self.account = _text_or_none("account", account)
        self.text = _text_or_none("text", text)
        self.payload = payload
        self.encoding = encoding
        self.parts = parts
        self.receipt = receipt
        self.hops = hops
        self.created = self.updated = float(now)
        self.validity = float(validity)

    def __repr__(self) -> str:
        return f"<Message {self.id} {self.state} {self.sender}->{self.recipient}>"

    def __getstate__(self) -> tuple[bytes, dict | None]:
        """The compact state (see the class docstring)."""
        packed = pickle.dumps(_values(self), _PROTOCOL)
        extra = None
        attrs = self.__dict__
        if len(attrs) > len(_FIELD_SET) or not _FIELD_SET.issuperset(attrs):
            extra = {k: v for k, v in attrs.items() if k not in _FIELD_SET
                     and not k.startswith(("_v_", "_p_"))} or None
        return packed, extra

    def __setstate__(self, state: Any) -> None:
        """Load a compact state, or a dict one (stored before)."""
        if isinstance(state, dict):
            Persistent.__setstate__(self, state)
            return
        packed, extra = state
        attrs = self.__dict__
        attrs.clear()
        attrs.update(zip(FIELDS, pickle.loads(packed)))
        if extra:
            attrs.update(extra)


#: Children per internal node of the message store's append-mostly trees
#: (the BTrees default is 250 or 500).  Ids and carrier ids grow, so every
#: insert lands in the last bucket, which splits every few dozen inserts;
#: each split rewrites the bucket's parent, and a default parent of up to
#: 500 children is a 6-10 KB pickle written at nearly every batched commit
#: (measured: some 9 % of the node's CPU under HTTP load, the message tree,
#: the carrier-id index and billing's record tree together).  Trees made
#: before keep their class and sizes.
INTERNAL_SIZE = 32


class MessageTree(LOBTree):
    """Message id to L{Message}, with small internal nodes."""
    max_internal_size = INTERNAL_SIZE


class IdSet(LLTreeSet):
    """A set of message ids (waiting, unscheduled, one account's waiting,
    one due second's), with small internal nodes."""
    max_internal_size = INTERNAL_SIZE


class RemoteIndex(OOBTree):
    """C{(connection, remote id)} to message id, with small internal nodes."""
    max_internal_size = INTERNAL_SIZE


def _due_second(next_attempt: float) -> int:
    """The due index's key of a time: the whole second at or after it."""
    second = int(next_attempt)
    return second if second == next_attempt else second + 1


@implementer(IMessageStore)
class MessageStore(Persistent):
    """
    The queue (stored as C{root['messages']}).

    Index invariants, kept by every method:
      - C{account_ids[account]} holds the id of each waiting message
        (state accepted or delivering) with that account, and
        L{SENTINEL}; an account's set, once made, stays;
      - C{waiting} holds the id of each waiting message (and, once a
        message was stored, L{SENTINEL});
      - C{unscheduled} holds the id of each waiting message without a
        C{next_attempt} (accepted, no outcome recorded yet: what a restart
        must dispatch again), and L{SENTINEL} as C{waiting};
      - C{due_at[second]} holds the id of each waiting message whose
        C{next_attempt} falls in the second ending then (L{_due_second}),
        and no second has an empty set;
      - C{state_counts[state]} is the number of stored messages in it.

    Every index holds ids in C{LLTreeSet}s (8 bytes an entry, cheap to
    pickle), so a waiting message costs its indexes a few dozen bytes and
    a batch of them re-writes few buckets.

    @ivar messages: id to L{Message}.
    @ivar account_ids: see above (C{OOBTree} of username to C{LLTreeSet}).
    @ivar due_at: see above (C{LOBTree} of second to C{LLTreeSet}).
    @ivar waiting: see above (an C{LLTreeSet} of ids).
    @ivar unscheduled: see above (an C{LLTreeSet} of ids).
    @ivar state_counts: state to C{BTrees.Length.Length}.
    @ivar epoch: the last epoch handed out.
    @ivar by_account: the index of generation 1 (C{(username, id)}
        tuples); C{None} once messaging generation 2 rebuilt it.
    @ivar due: the index of generation 1 (C{(ms, id)}); C{None} since.
    """

    messages: LOBTree | None = None
    account_ids: OOBTree | None = None
    due_at: LOBTree | None = None
    waiting: LLTreeSet | None = None
    unscheduled: LLTreeSet | None = None
    state_counts: OOBTree | None = None
    #: (connection, remote id) to message id, for forwarded messages.
    remote_ids: OOBTree | None = None
    epoch: int = 0
    by_account: OOTreeSet | None = None
    due: OOTreeSet | None = None

    def __init__(self) -> None:
        self.messages = MessageTree()
        self.account_ids = OOBTree()
        self.due_at = LOBTree()
        self.waiting = IdSet()
        self.unscheduled = IdSet()
        self.state_counts = OOBTree({state: Length() for state in STATES})

    def reindex(self) -> None:
        """
        Build C{account_ids}, C{due_at} and C{unscheduled} from the
        generation 1 indexes and drop those (messaging generation 2;
        idempotent).
        """
        if self.account_ids is None:
            self.account_ids = OOBTree()
        if self.due_at is None:
            self.due_at = LOBTree()
        if self.unscheduled is None:
            self.unscheduled = IdSet()
            for id in self.waiting.keys():
                message = self.messages.get(id)
                if message is not None and message.next_attempt is None:
                    self.unscheduled.add(id)
        if self.by_account is not None:
            for account, id in self.by_account.keys():
                self._add_to(self.account_ids, account, id)
            self.by_account = None
        if self.due is not None:
            for _, id in self.due.keys():
                message = self.messages.get(id)
                if message is not None and message.next_attempt is not None:
                    self._add_to(self.due_at,
                                 _due_second(message.next_attempt), id)
            self.due = None

    def next_epoch(self) -> int:
        """
        @return: a new epoch, higher than every earlier one. Commit it
            before using ids from it.
        @raise ModelError: after 2**31 - 1 epochs (never, in practice).
        """
        if self.epoch >= MAX_EPOCH:
            raise ModelError("message id epochs are exhausted")
        self.epoch += 1
        return self.epoch

    def _count(self, state: str, delta: int) -> None:
        self.state_counts[state].change(delta)

    @staticmethod
    def _add_to(index: Any, key: Any, id: int) -> None:
        ids = index.get(key)
        if ids is None:
            index[key] = ids = IdSet()
        ids.add(id)

    @staticmethod
    def _remove_from(index: Any, key: Any, id: int) -> None:
        ids = index.get(key)
        if ids is not None:
            ids.discard(id)
            if not ids:
                del index[key]

    def _index(self, message: Message) -> None:
        if message.state in WAITING:
            self.waiting.add(message.id)
            self.waiting.add(SENTINEL)          # unchanged when there
            if message.account is not None:
                ids = self.account_ids.get(message.account)
                if ids is None:
                    ids = self.account_ids[message.account] = \
                        LLTreeSet((SENTINEL,))
                ids.add(message.id)
            if message.next_attempt is not None:
                self._add_to(self.due_at, _due_second(message.next_attempt),
                             message.id)
            else:
                self.unscheduled.add(message.id)
                self.unscheduled.add(SENTINEL)

    def _unindex(self, message: Message) -> None:
        self.waiting.discard(message.id)
        self.unscheduled.discard(message.id)
        if message.account is not None:
            ids = self.account_ids.get(message.account)
            if ids is not None:
                ids.discard(message.id)
        if message.next_attempt is not None:
            self._remove_from(self.due_at, _due_second(message.next_attempt),
                              message.id)

    def add(self, message: Message) -> None:
        """
        Store a new message, state accepted or delivering.

        @param message: a L{Message} with a fresh id.
        @raise ModelError: for a duplicate id or a final state.
        """
        if not isinstance(message, Message):
            raise ModelError("only messages can be stored")
        if message.id in self.messages:
            raise ModelError(f"message {message.id} already exists")
        if message.state not in WAITING:
            raise ModelError(f"a new message cannot be {message.state}")
        self.messages[message.id] = message
        self._count(message.state, 1)
        self._index(message)

    def get(self, id: int) -> Message | None:
        """
        @param id: a message id.
        @return: the message, or C{None} (also for a non-integer id).
        """
        if isinstance(id, bool) or not isinstance(id, int) or not 0 < id <= _MAX_ID:
            return None
        return self.messages.get(id)

    def set_state(self, message: Message, state: str, *,
                  next_attempt: float | None = None, error: str | None = None,
                  now: float) -> None:
        """
        Change a message's state.

        A waiting state with a C{next_attempt} puts the message in the due
        index; a final state takes it out of every waiting index.
        C{next_attempt} and C{error} are set as given (C{None} clears them).

        @param message: a stored message.
        @param state: one of L{STATES}.
        @param next_attempt: when to try again (epoch seconds), waiting
            states only.
        @param error: the error text, or C{None}.
        @param now: the time of the change, stored as C{updated}.
        @raise ModelError: for an unknown state, a message not in this
            store, a message already in a final state, or a
            C{next_attempt} given with a final state.
        """
        if state not in STATES:
            raise ModelError(f"a message state is one of: {', '.join(STATES)}")
        if self.messages.get(message.id) is not message:
            raise ModelError(f"message {message.id} is not in the store")
        if message.state in FINAL:
            raise ModelError(f"message {message.id} is already {message.state}")
        if state in FINAL and next_attempt is not None:
            raise ModelError(f"a {state} message has no next attempt")
        error = _text_or_none("error", error)
        next_attempt = None if next_attempt is None else float(next_attempt)
        if state in WAITING:
            # Still waiting: only the due entry may move (the waiting and
            # account indexes stay as they are, their buckets unwritten).
            old = message.next_attempt
            if old != next_attempt:
                if old is not None:
                    self._remove_from(self.due_at, _due_second(old),
                                      message.id)
                else:
                    self.unscheduled.discard(message.id)
                if next_attempt is not None:
                    self._add_to(self.due_at, _due_second(next_attempt),
                                 message.id)
                else:
                    self.unscheduled.add(message.id)
                    self.unscheduled.add(SENTINEL)
        else:
            self._unindex(message)
        if state != message.state:
            self._count(message.state, -1)
            self._count(state, 1)
            message.state = state
        message.next_attempt = next_attempt
        if message.error != error:
            message.error = error
        message.updated = float(now)

    def set_account(self, message: Message, username: str | None) -> None:
        """
        Set or change a stored message's destination account (for example
        once routing found the local account), keeping C{by_account} right.

        @param message: a stored message.
        @param username: the account's username, or C{None}.
        @raise ModelError: for a message not in this store or a non-text
            username.
        """
        if self.messages.get(message.id) is not message:
            raise ModelError(f"message {message.id} is not in the store")
        username = _text_or_none("account", username)
        self._unindex(message)
        message.account = username
        self._index(message)

    def waiting_for(self, username: str) -> Iterator[Message]:
        """
        @param username: an account's username.
        @return: its accepted/delivering messages, in id order.
        """
        ids = self.account_ids.get(username)
        for id in ids.keys(min=1) if ids is not None else ():
            yield self.messages[id]

    def due_before(self, ts: float, limit: int) -> list[Message]:
        """
        @param ts: a time (epoch seconds).
        @param limit: the most to return.
        @return: waiting messages whose C{next_attempt} is at or before
            C{ts}, earliest second first (by id within a second).
        """
        out: list[Message] = []
        if limit <= 0:
            return out
        # Read lazily, one second's set at a time: a scan costs what it
        # returns, not what waits.
        for second, ids in self.due_at.items(max=_due_second(ts)):
            for id in ids.keys():
                message = self.messages[id]
                if message.next_attempt is not None and \
                        message.next_attempt <= ts:
                    out.append(message)
                    if len(out) >= limit:
                        return out
        return out

    def remove(self, id: int) -> bool:
        """
        Delete a message (normally delivered, failed or expired ones) from
        the store, its indexes and its state's counter.

        @param id: a message id.
        @return: whether there was such a message.
        """
        message = self.get(id)
        if message is None:
            return False
        self._unindex(message)
        self._count(message.state, -1)
        del self.messages[id]
        return True

    # -- forwarded messages, by the id the far side gave them ------------

    def _remote_index(self) -> OOBTree:
        if self.remote_ids is None:
            # Added after generation 2: created on first use.
            self.remote_ids = RemoteIndex()
        return self.remote_ids

    def set_remote(self, message: Message, connection: str,
                   remote_id: str) -> None:
        """
        Record that C{message} was handed to C{connection}, which gave it
        C{remote_id}, so its receipt can find it.
        """
        index = self._remote_index()
        if message.remote is not None:
            index.pop(message.remote, None)
        message.remote = (connection, remote_id)
        index[message.remote] = message.id

    def by_remote(self, connection: str, remote_id: str) -> Message | None:
        """
        @return: the waiting message forwarded to C{connection} under
            C{remote_id}, or C{None}.
        """
        index = self.remote_ids
        if index is None:
            return None
        id = index.get((connection, remote_id))
        return None if id is None else self.messages.get(id)

    def forget_remote(self, message: Message) -> None:
        """Drop C{message} from the remote-id index (it is final)."""
        index = self.remote_ids
        if index is not None and message.remote is not None:
            index.pop(message.remote, None)

    def purge(self, before: float, limit: int = 10000) -> int:
        """
        Delete final messages (delivered, failed, expired) last changed
        before C{before}, oldest ids first, looking at most at C{limit}
        messages; the next pack then reclaims their space.

        @return: how many were deleted.
        """
        doomed = []
        for looked, (id, message) in enumerate(self.messages.items()):
            if looked >= limit or message.created >= before:
                break
            if message.state in FINAL and message.updated < before:
                doomed.append(id)
        for id in doomed:
            message = self.messages[id]
            self.forget_remote(message)
            self.remove(id)
        return len(doomed)

    def counts(self) -> dict[str, int]:
        """
        @return: state to number of stored messages in it (all states).
        """
        return {state: self.state_counts[state]() for state in STATES}

    def unscheduled_ids(self, after: int = 0, limit: int = 1000
                        ) -> list[int]:
        """
        @param after: return only ids above this one (the last id of the
            previous slice).
        @param limit: the most to return.
        @return: ids of waiting messages without a next attempt, in id
            order: read in slices, so a restart never loads the backlog.
        """
        out = []
        for id in self.unscheduled.keys(min=after, excludemin=True):
            out.append(id)
            if len(out) >= limit:
                break
        return out

    def oldest_waiting(self) -> Message | None:
        """
        @return: the waiting message with the lowest id, or C{None}.
        """
        try:
            return self.messages[self.waiting.minKey(1)]
        except ValueError:
            return None
