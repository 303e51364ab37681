# -*- test-case-name: tests.cluster.test_service -*-
"""
The node's share of a cluster: several nodes on one database (ZEO or
RelStorage), each a full node, telling each other through that database
who is alive and who delivers which message.

  - **Registry and heartbeat.**  Each node keeps its L{NodeRecord} in
    C{root["cluster"].nodes} and renews it, with the lease of every slot
    it holds, every C{heartbeat} seconds in one small transaction on a
    connection and in a thread of its own (a few objects, whatever the
    message rate; the reactor does not wait for the database server).
  - **One owner per message.**  A message belongs to the slot of its id's
    epoch, that is to the node that accepted it, unless it was handed to
    another (L{appliance.cluster.leases}).  The core asks L{claim} before
    each delivery; only the slot's holder, and only while its lease has
    more than a margin left, delivers, expires or hands it on.
  - **Takeover.**  At each heartbeat the first node alive by name looks
    for slots whose lease ran out (their holder was killed, or cut off
    from the database), takes them in one write and dispatches their
    waiting messages.  A node back in time renews its slots instead, and
    the database lets only one of the two writes commit.
  - **Delivery over the app's node.**  A message for an app registered on
    another node (L{IRegistrationLocator}) is handed to that node's slot
    and put in its mailbox, in the commit that accepts it or, later, by
    its owner; a node reads its mailbox when the database moves on (the
    storage's poll) and at each heartbeat.  An app registering on a node
    points its messages owned elsewhere out to their owners, which hand
    them over.

Everything here runs on the reactor thread; reads use the reactor
thread's connection, writes go through the storage's batched commits.
"""
from __future__ import annotations

import secrets
import threading
from typing import Any, Callable, Iterable

import transaction
from twisted.application.service import Service
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appliance.cluster import leases
from appliance.cluster.interfaces import IOwnership, IRegistrationLocator
from appliance.cluster.model import KEY, SENTINEL, NodeRecord, Slot

__all__ = ["ClusterService", "Usurped"]

#: Final message states (the cluster forgets a hand-over then).
FINAL = frozenset(("delivered", "failed", "expired"))
#: Heartbeats between looks for orphaned epochs and retired slots.
TIDY_EVERY = 30

NODE_HEADERS = ("Node", "State", "Last beat", "Started", "Slots",
                "Waiting", "Mailbox")
LEASE_HEADERS = ("Slot", "Holder", "Lease left", "Previous holder",
                 "Waiting", "Handed in")
HOLDS_HEADERS = ("Node", "Receiving binds of", "Receipts", "Callbacks")


class _BeatThread(ThreadPool):
    """The heartbeat's one daemon thread."""

    def __init__(self) -> None:
        super().__init__(1, 1, "cluster-heartbeat")

    def threadFactory(self, *args: Any, **kwargs: Any) -> threading.Thread:
        """A daemon thread: a process that exits without stopping the
        service is not held up by it."""
        return threading.Thread(*args, daemon=True, **kwargs)


class Usurped(Exception):
    """Another process runs under this node's name: its record is not
    ours any more."""


def _waiting_ids(store: Any, lo: int, hi: int) -> Iterable[int]:
    """The ids of waiting messages between C{lo} and C{hi} (the message
    store's C{waiting} index)."""
    return store.waiting.keys(lo, hi)


def _waiting_epochs(store: Any) -> list[int]:
    """The epochs that have waiting messages (one jump per epoch)."""
    return _key_epochs(store.waiting)


def _key_epochs(tree: Any) -> list[int]:
    """The epochs, from 1, of the integer keys of C{tree} (one jump per
    epoch; epoch 0 holds the message store's sentinel, and the callbacks
    numbered before the cluster, which have no slot)."""
    out = []
    epoch = 1
    while True:
        try:
            key = tree.minKey(leases.epoch_range(epoch)[0])
        except ValueError:
            return out
        epoch = leases.epoch_of(key)
        out.append(epoch)
        epoch += 1


def _receipt_slots(c: Any, smpp: Any) -> dict[int, int]:
    """Slot to the number of carriers' receipts pending in it (epoch 0:
    numbered before the cluster, sent by the first node alive)."""
    out: dict[int, int] = {}
    receipts = getattr(smpp, "receipts", None)
    if not receipts:
        return out
    handed = c.receipt_handed
    for _, seq in receipts.keys():
        key = leases.slot_of(seq, handed)
        out[key] = out.get(key, 0) + 1
    return out


def _callback_slots(http: Any) -> dict[int, int]:
    """Slot to the number of tenants' callbacks queued in it (epoch 0:
    numbered before the cluster, sent by the first node alive)."""
    out: dict[int, int] = {}
    callbacks = getattr(http, "callbacks", None)
    if not callbacks:
        return out
    for serial in callbacks.keys():
        key = leases.epoch_of(serial)
        out[key] = out.get(key, 0) + 1
    return out


def _held_epochs(c: Any, smpp: Any, http: Any) -> set[int]:
    """The slots owning pending receipts or queued callbacks (a slot
    that owns any must not be retired, and one without a slot must be
    adopted, or nobody would ever send them)."""
    out = set(_receipt_slots(c, smpp))
    callbacks = getattr(http, "callbacks", None)
    if callbacks:
        out.update(_key_epochs(callbacks))
    out.discard(0)
    return out


@implementer(IOwnership)
class ClusterService(Service):
    """
    See the module docstring.

    @ivar node: this node's name (C{[node] name}; distinct per node).
    @ivar incarnation: this process's token in the node record.
    @ivar lease: seconds a slot lasts after a heartbeat.
    @ivar heartbeat: seconds between heartbeats.
    @ivar margin: seconds before a lease runs out when its holder stops
        acting (more than the nodes' clocks may differ).
    @ivar dispatch: called with message ids to deliver (taken over, handed
        in, pointed out); the wiring sets it to the core's.
    @ivar counters: taken slots, handed and received messages, wakes.
    """

    name = "cluster"
    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime, node: str, *,
                 locator: IRegistrationLocator | None = None,
                 local_transport: str | None = "sip", lease: float = 10.0,
                 heartbeat: float = 1.0, margin: float | None = None,
                 dispatch: Callable[[Iterable[int]], Any] | None = None,
                 incarnation: str | None = None) -> None:
        """
        @param storage: the L{appliance.store.interfaces.IStorage}.
        @param clock: the reactor's time and scheduling.
        @param node: this node's name.
        @param locator: where apps are registered (C{None}: nowhere else,
            nothing is handed over).
        @param local_transport: the transport whose messages go to apps
            (those follow the app's registration); C{None}: none.
        @param lease: seconds; more than twice the heartbeat.
        @param heartbeat: seconds.
        @param margin: default: one heartbeat.
        """
        if lease <= 2 * heartbeat:
            raise ValueError("the lease must be more than two heartbeats")
        self.storage = storage
        self.clock = clock
        self.node = node
        self.locator = locator
        self.local_transport = local_transport
        self.lease = lease
        self.heartbeat = heartbeat
        self.margin = heartbeat if margin is None else margin
        self.dispatch = dispatch
        self.incarnation = incarnation or secrets.token_hex(8)
        self.slot: int | None = None
        self.usurped = False
        self.counters = {"heartbeats": 0, "slots_taken": 0, "handed_out": 0,
                         "handed_in": 0, "pointed_out": 0,
                         "beats_failed": 0, "receipts_handed": 0}
        #: Receipts to carriers (L{place_receipts}), or C{None}.
        self.receipts: Any = None
        #: Tenants' callbacks (L{place_callbacks}), or C{None}.
        self.callbacks: Any = None
        self._courier: Any = None
        self._beater: task.LoopingCall | None = None
        self._beating = False
        self._btm: transaction.TransactionManager | None = None
        self._bconn: Any = None
        #: The heartbeat's own thread (a reactor that takes calls from
        #: threads), else None: the beat commits inline.
        self._pool: Any = None
        self._beat_d: defer.Deferred | None = None
        self._handing: set[int] = set()
        self._emptying: set[int] = set()
        self._beats = 0

    # -- life cycle ----------------------------------------------------

    def startService(self) -> None:
        """Enter the registry (this process's incarnation) and start the
        heartbeat."""
        super().startService()
        self.storage.run(self._enter, self.clock.seconds(), user="cluster",
                         note=f"node {self.node} starts")
        self.log.info("cluster node {node} started (lease {lease} s, "
                      "heartbeat {beat} s)", node=self.node,
                      lease=self.lease, beat=self.heartbeat)
        self.storage.add_change_listener(self._changed)
        if IReactorFromThreads.providedBy(self.clock):
            self._pool = _BeatThread()
            self._pool.start()
        self._beater = task.LoopingCall(self.beat)
        self._beater.clock = self.clock
        self._beater.start(self.heartbeat, now=False)

    def stopService(self) -> defer.Deferred:
        """Stop the heartbeat and give up this node's slots at once, so
        another node takes its messages over without waiting for the
        lease to run out."""
        super().stopService()
        if self._beater is not None and self._beater.running:
            self._beater.stop()
        try:
            self.storage.remove_change_listener(self._changed)
        except ValueError:
            pass
        # A beat under way in its thread finishes first.
        waiting = self._beat_d if self._beating and self._beat_d is not None \
            else defer.succeed(None)
        waiting = waiting.addErrback(lambda _: None)
        waiting.addCallback(lambda _: self._close_beat())
        if self.usurped:
            return waiting

        def leave(_: Any) -> defer.Deferred:
            d = self.storage.batch(self._leave, self.clock.seconds())
            d.addErrback(lambda f: self.log.failure(
                "cluster node {node} not released", f, node=self.node))
            return d
        return waiting.addCallback(leave)

    def _close_beat(self) -> None:
        """Close the heartbeat's connection and stop its thread."""
        if self._bconn is not None:
            self._btm.abort()
            self._bconn.close()
            self._bconn = self._btm = None
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    def _root(self) -> Any:
        return self.storage.domain(KEY)

    def _domain(self, key: str) -> Any:
        """Another domain's root entry, read as data (the SMPP receipts,
        the HTTP callbacks), or C{None}."""
        try:
            return self.storage.domain(key)
        except KeyError:
            return None

    def _enter(self, root: Any, now: float) -> None:
        c = self.storage.domain(KEY)
        record = c.nodes.get(self.node)
        if record is None:
            record = c.nodes[self.node] = NodeRecord(self.node)
        elif record.incarnation and record.stopped is None and \
                now < record.beat + record.lease:
            self.log.warn(
                "node {node} was alive in the database {ago:.1f} s ago: "
                "restarted after a kill, or another node runs under the "
                "same name (names must be distinct)", node=self.node,
                ago=now - record.beat)
        record.incarnation = self.incarnation
        record.started = now
        record.beat = now
        record.lease = self.lease
        record.stopped = None

    def _leave(self, raw: Any, now: float) -> None:
        c = raw[KEY]
        record = c.nodes.get(self.node)
        if record is None or record.incarnation != self.incarnation:
            return
        record.stopped = now
        for slot in c.slots.values():
            if slot.holder == self.node:
                slot.expires = min(slot.expires, now)

    def place_receipts(self, courier: Any,
                       receiving: Callable[[], Iterable[str]]) -> None:
        """
        Share the sending of carriers' receipts with the other nodes
        (L{appliance.cluster.receipts}): the courier asks this node's
        L{ReceiptPlacement}, the heartbeat says which carriers this node
        holds receiving binds of, and after each heartbeat the courier
        takes in and hands on (L{ReceiptCourier.rehome}).

        @param courier: the SMPP server's receipt courier.
        @param receiving: the carriers with a receiving bind here now.
        """
        from appliance.cluster.receipts import ReceiptPlacement
        self.receipts = ReceiptPlacement(self, receiving)
        courier.placement = self.receipts
        self._courier = courier

    def place_callbacks(self, sender: Any) -> Any:
        """
        Share the sending of tenants' delivery-report callbacks with the
        other nodes (L{appliance.cluster.callbacks}): the sender asks this
        node's L{CallbackPlacement} before each POST.

        @param sender: the HTTP service's callback sender.
        @return: the placement, for the hook that queues callbacks.
        """
        from appliance.cluster.callbacks import CallbackPlacement
        self.callbacks = CallbackPlacement(self)
        sender.placement = self.callbacks
        return self.callbacks

    # -- the core's questions (IOwnership) -------------------------------

    def epoch_taken(self, epoch: int) -> None:
        """The core's new epoch becomes this node's current slot (one
        transaction, with a renewal of the slots it still holds)."""
        self.storage.run(self._take_epoch, epoch, self.clock.seconds(),
                         user="cluster", note=f"node {self.node} epoch")
        self.slot = epoch

    def _take_epoch(self, root: Any, epoch: int, now: float) -> None:
        c = self.storage.domain(KEY)
        c.slots[epoch] = Slot(self.node, now + self.lease, now)
        record = c.nodes.get(self.node)
        if record is not None:
            record.slot = epoch
        self._renew(c, now)

    def owns(self, id: int) -> bool:
        """Whether this node holds a valid lease on message C{id}."""
        if self.usurped:
            return False
        c = self._root()
        slot = c.slots.get(leases.slot_of(id, c.handed))
        return slot is not None and leases.may_act(
            slot.holder, slot.expires, self.node, self.clock.seconds(),
            self.margin)

    def claim(self, view: Any) -> bool:
        """Deliver here only what this node owns and whose app is not
        registered on another node (that node gets it)."""
        if not self.owns(view.id):
            return False
        target = self._target(view.account, view.transport)
        if target is None:
            return True
        self._hand(view.id, target)
        return False

    def _target(self, account: str | None, transport: str | None
                ) -> str | None:
        """The node to hand a message for C{account} to, if not here."""
        if account is None or self.locator is None or \
                transport not in (None, self.local_transport):
            return None
        holders = self.locator.holders(account)
        if not holders:
            return None
        return leases.hand_to(holders, self._alive(), self.node)

    def _alive(self) -> list[str]:
        now = self.clock.seconds()
        return [name for name, record in self._root().nodes.items()
                if record.alive(now)]

    def _hand(self, id: int, target: str) -> None:
        if id in self._handing:
            return
        self._handing.add(id)
        d = self.storage.batch(self._write_hand, id, target)

        def done(handed: bool) -> None:
            self._handing.discard(id)
            if handed:
                self.counters["handed_out"] += 1
                self.log.debug("message {id} handed to node {target}",
                               id=id, target=target)

        def failed(f: Any) -> None:
            self._handing.discard(id)
            self._failed(f, "handing message {id} to {target}", id=id,
                         target=target)
        d.addCallbacks(done, failed)

    def _write_hand(self, raw: Any, id: int, target: str) -> bool:
        """Batched write: hand message C{id} to C{target}'s current slot,
        if this node still owns it (read again in the transaction)."""
        c = raw[KEY]
        record = c.nodes.get(target)
        if record is None or not record.slot or record.slot not in c.slots:
            return False
        slot = c.slots.get(leases.slot_of(id, c.handed))
        if slot is None or not leases.may_act(
                slot.holder, slot.expires, self.node, self.clock.seconds(),
                self.margin):
            return False
        c.handed[id] = record.slot
        c.mailbox(target).add(id)
        return True

    def transaction_hook(self, raw: Any, message: Any, state: str) -> None:
        """At acceptance: a message for an app registered on another node
        belongs to that node from this very commit."""
        if state == "accepted":
            target = self._target(message.account, message.transport)
            if target is None:
                return
            c = raw[KEY]
            record = c.nodes.get(target)
            if record is None or record.slot not in c.slots:
                return
            c.handed[message.id] = record.slot
            c.mailbox(target).add(message.id)
            self.counters["handed_out"] += 1
        # A final message's hand-over entry is pruned by tidy(), on a
        # slower beat: deleting it here, next to the entries the
        # accepting node keeps adding, made the two nodes' commits
        # conflict.

    def account_online(self, username: str) -> None:
        """Record where the app registered, and point its waiting
        messages owned by other nodes out to them."""
        if self.locator is not None:
            self.locator.registered(username)
        c = self._root()
        owners: dict[str, list[int]] = {}
        for message in self.storage.messages().waiting_for(username):
            slot = c.slots.get(leases.slot_of(message.id, c.handed))
            if slot is not None and slot.holder != self.node:
                owners.setdefault(slot.holder, []).append(message.id)
        if owners:
            self.counters["pointed_out"] += sum(map(len, owners.values()))
            self.storage.batch(self._write_mail, owners).addErrback(
                self._failed, "pointing out messages")

    @staticmethod
    def _write_mail(raw: Any, owners: dict[str, list[int]]) -> None:
        c = raw[KEY]
        for node, ids in owners.items():
            c.mailbox(node).update(ids)

    # -- heartbeat, takeover, mailbox --------------------------------------

    def beat(self) -> defer.Deferred | None:
        """
        Renew this node's record and slots in one small transaction of its
        own (a connection the heartbeat alone uses, so that the lease does
        not wait behind queued message writes: under overload those queue
        for seconds, and a lease renewed through them lapsed on a live
        node); then read the mailbox and take over lapsed slots.

        @return: a Deferred firing after all that, or C{None} when this
            node no longer runs under its name.
        """
        if self._beating or self.usurped:
            return None
        self._beating = True
        carriers = frozenset(self.receipts.receiving()) \
            if self.receipts is not None else None
        if self._pool is not None:
            # Off the reactor: a commit to a database server is a round
            # trip or more (measured: 5% of a node's reactor time with
            # two nodes on PostgreSQL, the reactor blocked meanwhile).
            d = threads.deferToThreadPool(self.clock, self._pool,
                                          self._commit_beat, carriers)
        else:
            d = defer.maybeDeferred(self._commit_beat, carriers)
        self._beat_d = d
        d.addCallbacks(self._beaten, self._beat_failed)
        return d

    def _commit_beat(self, carriers: frozenset | None = None) -> list[int]:
        """The heartbeat's transaction, retried on a conflict (a takeover
        of one of its slots committed meanwhile); in the heartbeat's
        thread, on its own connection, touching nothing of the
        reactor's."""
        if self._btm is None:
            self._btm = transaction.TransactionManager()
            self._bconn = self.storage.db.open(self._btm)
        for attempt in range(3):
            self._btm.abort()
            try:
                regained = self._write_beat(self._bconn.root(), carriers)
                self._btm.get().note(f"heartbeat of {self.node}")
                self._btm.commit()
                return regained
            except ConflictError:
                self._btm.abort()
                if attempt == 2:
                    raise
            except BaseException:
                # Anything else: leave the connection clean, re-raise.
                self._btm.abort()
                raise
        raise AssertionError("unreachable")

    def _write_beat(self, raw: Any, carriers: frozenset | None = None
                    ) -> list[int]:
        now = self.clock.seconds()
        c = raw[KEY]
        record = c.nodes.get(self.node)
        if record is None or record.incarnation != self.incarnation:
            raise Usurped(self.node)
        record.beat = now
        if carriers is not None and carriers != record.carriers:
            record.carriers = carriers
        return self._renew(c, now)

    def _renew(self, c: Any, now: float) -> list[int]:
        """Renew the slots this node holds; @return: those it could not
        act on before (lapsed: their messages need dispatching)."""
        regained = []
        for key, slot in c.slots.items():
            if slot.holder != self.node:
                continue
            if not leases.may_act(slot.holder, slot.expires, self.node, now,
                                  self.margin) and key != self.slot:
                regained.append(key)
            slot.expires = now + self.lease
        return regained

    def _beaten(self, regained: list[int]) -> None:
        self._beating = False
        self.storage.sync()         # the reads see the renewal
        self.counters["heartbeats"] += 1
        if regained:
            self.log.info("node {node} renewed its lapsed slots {slots}",
                          node=self.node, slots=regained)
            self._dispatch_slots(regained)
        self.read_mailbox()
        self.take_over()
        if self._courier is not None:
            try:
                self._courier.rehome(self.storage.domain("smpp"))
            except Exception:
                self.log.failure("receipts not rehomed")
        self._beats += 1
        if self._beats % TIDY_EVERY == 1:
            self.tidy()

    def _failed(self, failure: Any, what: str, **fields: Any) -> None:
        """A cluster write that failed: a conflict that ran out of the
        storage's retries is a warning (the next heartbeat, poll or tidy
        does it again), anything else an error with its traceback."""
        if failure.check(ConflictError):
            self.log.warn(what + " conflicted; done again later", **fields)
            return
        self.log.failure(what + " failed", failure, **fields)

    def _beat_failed(self, failure: Any) -> None:
        self._beating = False
        self.counters["beats_failed"] += 1
        if failure.check(Usurped):
            self.usurped = True
            self.log.error(
                "another process now runs as cluster node {node}: this one "
                "stops delivering (node names must be distinct)",
                node=self.node)
            return
        self.log.failure("heartbeat of node {node} not committed", failure,
                         node=self.node)

    def take_over(self) -> list[int]:
        """
        Take the slots whose lease ran out, if this node is the first one
        alive; their waiting messages are dispatched once that commits.

        @return: the slots asked for.
        """
        now = self.clock.seconds()
        c = self._root()
        slots = {key: (slot.holder, slot.expires)
                 for key, slot in c.slots.items()}
        wanted = leases.takeable(slots, self._alive(), self.node, now)
        if wanted:
            d = self.storage.batch(self._write_take, wanted)
            d.addCallbacks(self._taken, self._failed,
                           errbackArgs=("taking over slots {slots}",),
                           errbackKeywords={"slots": wanted})
        return wanted

    def _write_take(self, raw: Any, keys: list[int]) -> list[tuple[int, str]]:
        now = self.clock.seconds()
        c = raw[KEY]
        taken = []
        for key in keys:
            slot = c.slots.get(key)
            if slot is None or slot.holder == self.node or now < slot.expires:
                continue
            taken.append((key, slot.holder))
            slot.previous = slot.holder
            slot.holder = self.node
            slot.expires = now + self.lease
            slot.since = now
        return taken

    def _taken(self, taken: list[tuple[int, str]]) -> None:
        if not taken:
            return
        for key, previous in taken:
            self.counters["slots_taken"] += 1
            self.log.warn("node {node} took over slot {slot} from {previous}"
                          " (its lease ran out)", node=self.node, slot=key,
                          previous=previous)
        self._dispatch_slots([key for key, _ in taken])

    def _slot_ids(self, keys: Iterable[int]) -> list[int]:
        """The waiting messages the slots C{keys} own."""
        c = self._root()
        store = self.storage.messages()
        keys = set(keys)
        ids = [id for key in keys
               for id in _waiting_ids(store, *leases.epoch_range(key))
               if leases.slot_of(id, c.handed) in keys]
        ids.extend(id for id, key in c.handed.items()
                   if key in keys and id in store.waiting)
        return sorted(set(ids))

    def _prefetch(self, ids: Iterable[int]) -> None:
        """
        Load the messages C{ids} that this node's connection has not in
        memory in one round trip to the database (RelStorage's
        C{prefetch}), instead of one query each as the core reads them:
        the messages another node handed here or owned before are in no
        cache of this node.  A measured 10% of a node's reactor time went
        to those single loads with two nodes on PostgreSQL.
        """
        messages = self.storage.messages().messages
        ghosts = []
        for id in ids:
            message = messages.get(id)
            if message is not None and message._p_changed is None:
                ghosts.append(message)
        if len(ghosts) > 1 and ghosts[0]._p_jar is not None:
            ghosts[0]._p_jar.prefetch(ghosts)

    def _dispatch_slots(self, keys: list[int]) -> None:
        ids = self._slot_ids(keys)
        if ids and self.dispatch is not None:
            self._prefetch(ids)
            self.log.info("node {node} dispatches {n} messages of slots "
                          "{slots}", node=self.node, n=len(ids), slots=keys)
            self.dispatch(ids)

    def _changed(self, note: str) -> None:
        self.read_mailbox()

    def read_mailbox(self) -> list[int]:
        """
        Dispatch the messages in this node's mailbox (handed to it, or
        pointed out by the node their app registered on), and empty it.

        @return: the ids taken out.
        """
        if self.usurped:
            return []
        box = self._root().mailboxes.get(self.node)
        if not box:
            return []
        ids = [id for id in box
               if id != SENTINEL and id not in self._emptying]
        if not ids:
            return []
        self._emptying.update(ids)
        d = self.storage.batch(self._write_empty, ids)

        def emptied(result: Any) -> Any:
            self._emptying.difference_update(ids)
            return result
        d.addBoth(emptied)
        d.addErrback(self._failed, "emptying the mailbox")
        self.counters["handed_in"] += len(ids)
        if self.dispatch is not None:
            self._prefetch(ids)
            self.dispatch(ids)
        return ids

    def _write_empty(self, raw: Any, ids: list[int]) -> None:
        box = raw[KEY].mailbox(self.node)
        for id in ids:
            box.discard(id)

    def tidy(self) -> None:
        """
        Adopt epochs with waiting messages, pending carriers' receipts or
        queued callbacks and no slot (messages stored before the cluster,
        or whose slot was lost), if this node is the first one alive, and
        retire the slots this node holds that own none of those any more
        (a slot retired with receipts or callbacks in it left them to
        nobody).
        """
        c = self._root()
        store = self.storage.messages()
        epochs = set(_waiting_epochs(store))
        epochs.update(key for id, key in c.handed.items()
                      if id in store.waiting)
        # Receipts and callbacks a slot owns keep it (and want a holder).
        epochs.update(_held_epochs(c, self._domain("smpp"),
                                   self._domain("http")))
        orphans = sorted(e for e in epochs if e not in c.slots)
        if orphans and leases.taker(self._alive() + [self.node]) != self.node:
            orphans = []
        idle = [key for key, slot in c.slots.items()
                if slot.holder == self.node and key != self.slot
                and key not in epochs]
        # Hand-overs to this node's slots of messages no longer waiting.
        mine = {key for key, slot in c.slots.items()
                if slot.holder == self.node}
        done = [id for id, key in c.handed.items()
                if key in mine and id not in store.waiting]
        if orphans or idle or done:
            d = self.storage.batch(self._write_tidy, orphans, idle, done)
            d.addCallbacks(self._tidied, self._failed,
                           errbackArgs=("the cluster tidy-up",))

    def _write_tidy(self, raw: Any, orphans: list[int], idle: list[int],
                    done: list[int] = ()) -> list[int]:
        now = self.clock.seconds()
        c = raw[KEY]
        for id in done:
            c.handed.pop(id, None)
        adopted = []
        for key in orphans:
            if key not in c.slots:
                c.slots[key] = Slot(self.node, now + self.lease, now)
                adopted.append(key)
        for key in idle:
            slot = c.slots.get(key)
            if slot is not None and slot.holder == self.node:
                del c.slots[key]
        return adopted

    def _tidied(self, adopted: list[int]) -> None:
        if adopted:
            self.log.info("node {node} adopted slots {slots} (no holder)",
                          node=self.node, slots=adopted)
            self._dispatch_slots(adopted)

    # -- live state for the shell ------------------------------------------

    def shell_table(self, topic: str, **filters: Any
                    ) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
        """
        C{show cluster}: topic C{nodes} (each node, alive or not, how many
        slots it holds and how many waiting messages they own), C{leases}
        (each slot, its holder and how long its lease has left) or
        C{holds} (what each node holds besides: the carriers it holds
        receiving binds of, the receipts owed to carriers and the
        tenants' callbacks it is to send).

        @raise KeyError: another topic.
        """
        return cluster_table(self._root(), self.storage.messages(),
                             self.clock.seconds(), topic,
                             smpp=self._domain("smpp"),
                             http=self._domain("http"),
                             receiving=self.receipts.receiving()
                             if self.receipts is not None else None,
                             me=self.node)

    def statistics(self) -> dict[str, int]:
        """Counters for C{show statistics}, with the storage's conflicts
        (commits another node's writes made re-run, and those that ran
        out of retries): what sharing one database costs."""
        out = dict(self.counters)
        out["storage_conflicts"] = getattr(self.storage, "conflicts", 0)
        out["storage_conflicts_failed"] = getattr(
            self.storage, "conflicts_failed", 0)
        return out


def _ago(now: float, then: float) -> str:
    return f"{max(0.0, now - then):.1f}s ago"


def cluster_table(c: Any, store: Any, now: float, topic: str, *,
                  smpp: Any = None, http: Any = None,
                  receiving: Iterable[str] | None = None,
                  me: str | None = None
                  ) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """
    The tables of L{ClusterService.shell_table}, from C{root["cluster"]}
    and the message store as of now.

    @param smpp: C{root["smpp"]} (its pending receipts), or C{None}.
    @param http: C{root["http"]} (its queued callbacks), or C{None}.
    @param receiving: the carriers node C{me} holds receiving binds of
        now (the other nodes' as of their last heartbeat).
    """
    if topic == "holds":
        return _holds_table(c, now, smpp, http, receiving, me)
    waiting: dict[int, int] = {}
    for key in c.slots.keys():
        lo, hi = leases.epoch_range(key)
        waiting[key] = sum(1 for id in _waiting_ids(store, lo, hi)
                           if leases.slot_of(id, c.handed) == key)
    handed_in: dict[int, int] = {}
    for id, key in c.handed.items():
        if id in store.waiting:
            handed_in[key] = handed_in.get(key, 0) + 1
    owned = {key: waiting.get(key, 0) + handed_in.get(key, 0)
             for key in c.slots.keys()}
    if topic == "nodes":
        rows = []
        for name, record in c.nodes.items():
            held = [key for key, slot in c.slots.items()
                    if slot.holder == name]
            state = "alive" if record.alive(now) else (
                "stopped" if record.stopped is not None else "gone")
            box = c.mailboxes.get(name)
            rows.append((name, state, _ago(now, record.beat),
                         _ago(now, record.started), str(len(held)),
                         str(sum(owned[k] for k in held)),
                         str(len(box) if box is not None else 0)))
        return NODE_HEADERS, rows
    if topic == "leases":
        rows = []
        for key, slot in c.slots.items():
            left = slot.expires - now
            rows.append((str(key), slot.holder,
                         f"{left:.1f}s" if left > 0 else "lapsed",
                         slot.previous or "-", str(waiting.get(key, 0)),
                         str(handed_in.get(key, 0))))
        return LEASE_HEADERS, rows
    raise KeyError(f"no cluster table {topic!r}: nodes, leases or holds")


def _holds_table(c: Any, now: float, smpp: Any, http: Any,
                 receiving: Iterable[str] | None, me: str | None
                 ) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """
    C{holds}: per node, the carriers it holds receiving binds of (so the
    receipts owed to them go out over it), the pending receipts and the
    queued callbacks its slots own (those it sends, or hands on for a
    carrier bound elsewhere); receipts and callbacks numbered before the
    cluster (epoch 0) count for the first node alive, which sends them;
    a last row C{(no holder)} counts those of a slot nobody holds (the
    first node alive adopts it at its next tidy-up).
    """
    receipts = _receipt_slots(c, smpp)
    callbacks = _callback_slots(http)
    alive = [name for name, record in c.nodes.items() if record.alive(now)]
    first = leases.taker(alive)
    holder = {key: slot.holder for key, slot in c.slots.items()}
    held: dict[str, list[int]] = {}
    orphans = [0, 0]
    for i, counts in enumerate((receipts, callbacks)):
        for key, n in counts.items():
            name = first if key == 0 else holder.get(key)
            if name is None:
                orphans[i] += n
            else:
                held.setdefault(name, [0, 0])[i] += n
    rows = []
    for name, record in c.nodes.items():
        carriers = set(receiving) if name == me and receiving is not None \
            else set(record.carriers)
        r, cb = held.pop(name, (0, 0))
        rows.append((name, ",".join(sorted(carriers)) or "-", str(r),
                     str(cb)))
    for name, (r, cb) in sorted(held.items()):     # a holder not listed
        rows.append((name, "-", str(r), str(cb)))
    if orphans[0] or orphans[1]:
        rows.append(("(no holder)", "-", str(orphans[0]), str(orphans[1])))
    return HOLDS_HEADERS, rows
