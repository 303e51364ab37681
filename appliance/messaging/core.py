# -*- test-case-name: tests.messaging.test_core -*-
"""
The messaging core: the one path every incoming message takes.

    protocol --Submission--> submit(): route (local account, else service
    policy), store in a batched commit, fire the id --> protocol acks
                                  |
                                  v
    dispatch --MessageView--> IDeliveryAgent.deliver() --Outcome-->
    delivered / failed: final state; state writers write what must be
        durable with it (a carrier's receipt) in the same commit, and act
        on it after; outcome listeners hear of it
    offline: waits for account_online() (a REGISTER), expires at validity
    retry: next attempt by the retry schedule, expires at validity

Where a message goes is the pure L{appliance.messaging.routing.decide},
what an outcome makes of it the pure
L{appliance.messaging.states.next_state}; the core holds no transport
name: the wiring tells it which transport delivers to local accounts, and
each message records the transport it was accepted for.

Decisions read the reactor thread's view of the database (BTree lookups of
microseconds) and the route-table snapshot rebuilt after each configuration
commit; every state change is a batched write, and listeners hear of final
states only once they are on disk.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from ZODB.POSException import ConflictError
from zope.interface import implementer

from appliance.messaging.interfaces import (IDeliveryAgent, IMessagingCore,
                                            IStateWriter)
from appliance.messaging.lanes import Lanes
from appliance.messaging.routing import (LOCAL, MAX_HOPS, Decision,
                                         RootLookup, decide)
from appliance.messaging.states import FINAL, next_state, retry_delay
from appliance.messaging.vocabulary import (OUTCOMES, RECEIPT_STATES,
                                            Authorization, MessageView,
                                            NoRoute, Outcome, Refused,
                                            Submission, normalize_remote_id,
                                            remote_id_forms)
from appliance.messaging.store import Message
from appliance.messaging.vocabulary import IdsExhausted, MessageIds
from appliance.model.routing import route_table

#: The vocabulary, importable from here too for older callers.
__all__ = ["MessagingCore", "NoCharge", "OUTCOMES", "MessageView", "NoRoute",
           "Outcome", "Refused", "Submission", "normalize_remote_id",
           "remote_id_forms", "retry_delay", "MAX_HOPS"]


#: Times an outcome whose commit ran out of conflict retries is queued
#: again (after 0.1 s, doubling), so that it is not lost to a busy
#: shared database: a lost "delivered" would leave the message waiting,
#: to be sent again after a restart or a takeover.
RECORD_RETRIES = 5


class NoCharge:
    """
    The charger used when billing is not configured: every message is
    free and nothing is recorded.  A charger's three calls are the
    billing seam: L{authorize} before anything is stored (may raise
    L{Refused}), L{accepted} and L{state_changed} inside the same batched
    transaction as the change they describe.
    """

    def authorize(self, submission: "Submission", transport: str,
                  account: str | None, route: str, now: float) -> Any:
        """
        Rate the message and check the payer can pay; reserve nothing yet.

        @return: an opaque charge handed to L{accepted}.
        @raise Refused: the payer cannot be charged.
        """
        return None

    def accepted(self, raw: Any, message: Message, charge: Any) -> None:
        """Inside the accept transaction: reserve, and write the record."""

    def state_changed(self, raw: Any, message: Message, state: str) -> None:
        """Inside a state change's transaction: settle or return."""


class SoleOwner:
    """
    The ownership of a node alone on its database: every message is its
    own.  Several nodes on one database share their messages through an
    L{appliance.cluster.interfaces.IOwnership} instead (handed in by the
    wiring): the core asks it before each delivery.
    """

    def epoch_taken(self, epoch: int) -> None:
        """Nothing to record."""

    def owns(self, id: int) -> bool:
        """@return: C{True}."""
        return True

    def claim(self, view: MessageView) -> bool:
        """@return: C{True}: deliver everything here."""
        return True

    def account_online(self, username: str) -> None:
        """Nothing to point out."""


@implementer(IMessagingCore)
class MessagingCore(Service):
    """
    Accepts, routes, stores and delivers messages, and retries them.

    @ivar in_flight: ids of messages being delivered right now, with the
        time each attempt started.
    @ivar local_transport: the transport of messages to local accounts.
    """

    name = "messaging"
    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime, *,
                 local_transport: str,
                 retry_schedule: tuple[float, ...] = (30, 120, 600, 3600),
                 validity: float = 86400.0, scan_interval: float = 1.0,
                 scan_limit: int = 500, retention: float = 7 * 86400.0,
                 purge_interval: float = 3600.0, charger: Any = None,
                 metrics: Any = None, ownership: Any = None,
                 lanes: Lanes | None = None):
        """
        @param storage: the L{IStorage}.
        @param clock: the reactor's time and scheduling.
        @param local_transport: the transport whose agent delivers to
            local accounts (the wiring's choice; the core knows no
            transport by name).
        @param retry_schedule: seconds between attempts (last repeats).
        @param validity: default seconds a message may wait.
        @param scan_interval: seconds between looks at due messages.
        @param scan_limit: due messages taken per look.
        @param retention: seconds a final message is kept (receipts,
            billing, investigation) before it is deleted.
        @param purge_interval: seconds between purges.
        @param charger: the L{appliance.billing.interfaces.ICharger}
            (default: L{NoCharge}).
        @param metrics: the node's L{appliance.metrics.Metrics}, or C{None}.
        @param ownership: which messages this node delivers, an
            L{appliance.cluster.interfaces.IOwnership} (default
            L{SoleOwner}: all of them).
        @param lanes: deliveries at once per destination (an account, a
            route), so a slow or dead one delays only its own messages
            (the node's wiring hands L{Lanes}; default: no limit).
        """
        self.storage = storage
        self.clock = clock
        self.local_transport = local_transport
        self.retry_schedule = tuple(retry_schedule)
        self.validity = validity
        self.scan_interval = scan_interval
        self.scan_limit = scan_limit
        self.in_flight: dict[int, float] = {}
        self.lanes = lanes if lanes is not None else Lanes(
            limit=1 << 62, queue_limit=0)
        self._online: dict[str, float] = {}
        self._agents: dict[str, IDeliveryAgent] = {}
        self.charger: Any = charger if charger is not None else NoCharge()
        self._listeners: list[Callable[[MessageView, str], Any]] = []
        self._writers: list[IStateWriter] = []
        self._hooks: list[Callable[[Any, Message, str], Any]] = []
        #: Counters and histograms of the node (L{appliance.metrics}).
        self.metrics: Any = metrics
        self.ownership: Any = ownership if ownership is not None \
            else SoleOwner()
        self._scan_skipped = 0
        #: Lane slots freed while deliveries were being started (see
        #: L{_attempted}).
        self._starts: deque = deque()
        self._starting = False
        self._ids: MessageIds | None = None
        self._routes = None
        self._scanner: task.LoopingCall | None = None
        self.retention = retention
        self._purger = task.LoopingCall(self.purge, retention)
        self._purger.clock = clock
        self.purge_interval = purge_interval
        self.counters = {"accepted": 0, "no_route": 0, "delivered": 0,
                         "failed": 0, "expired": 0, "retries": 0,
                         "agent_errors": 0, "listener_errors": 0}

    # -- life cycle ----------------------------------------------------

    def startService(self) -> None:
        """
        Take a new id epoch, build the route table, and start looking for
        due messages (the first look also resumes what was waiting when
        the node stopped).
        """
        super().startService()
        self._new_epoch()
        self._rebuild_routes()
        self.storage.add_change_listener(self._config_changed)
        self._scanner = task.LoopingCall(self.scan)
        self._scanner.clock = self.clock
        self._scanner.start(self.scan_interval, now=False)
        self._purger.start(self.purge_interval, now=False)
        self.clock.callLater(0, self.resume)

    def stopService(self) -> defer.Deferred:
        """Stop scanning; deliveries under way finish on their own."""
        super().stopService()
        if self._scanner is not None and self._scanner.running:
            self._scanner.stop()
        if self._purger.running:
            self._purger.stop()
        try:
            self.storage.remove_change_listener(self._config_changed)
        except ValueError:
            pass
        return defer.succeed(None)

    def _new_epoch(self) -> None:
        epoch = self.storage.run(lambda root: self.storage.messages()
                                 .next_epoch(), user="messaging",
                                 note="message id epoch")
        self.ownership.epoch_taken(epoch)
        self._ids = MessageIds(epoch)

    def _next_id(self) -> int:
        try:
            return self._ids.next()
        except IdsExhausted:
            self._new_epoch()
            return self._ids.next()

    def route_table(self):
        """@return: the current L{RouteTable} snapshot."""
        if self._routes is None:
            self._rebuild_routes()
        return self._routes

    def _config_changed(self, note: str) -> None:
        self._rebuild_routes()

    def _rebuild_routes(self) -> None:
        self._routes = route_table(self.storage.root())

    # -- agents, writers and listeners ----------------------------------

    def set_agent(self, transport: str, agent: IDeliveryAgent) -> None:
        """Deliver C{transport} routes with C{agent}."""
        self._agents[transport] = agent

    def set_charger(self, charger: Any) -> None:
        """Rate, charge and record messages with C{charger} (see
        L{NoCharge} for the three calls)."""
        self.charger = charger

    def add_state_writer(self, writer: IStateWriter) -> None:
        """Have C{writer} write inside each final state's transaction, and
        act on what it wrote once that is committed."""
        self._writers.append(writer)

    def add_outcome_listener(self, listener: Callable[[MessageView, str],
                                                      Any]) -> None:
        """Hear of every committed final state."""
        self._listeners.append(listener)

    def add_transaction_hook(self, hook: Callable[[Any, Message, str],
                                                  Any]) -> None:
        """
        Call C{hook(raw, message, state)} inside the batched transaction
        that stores a message (state C{accepted}) or changes its state, so
        what it writes commits or aborts with that change.
        """
        self._hooks.append(hook)

    # -- accepting -----------------------------------------------------

    def route(self, submission: Submission) -> Decision:
        """
        Decide where a message goes, without storing anything (see
        L{appliance.messaging.routing.decide}).

        @return: the L{Decision}; it unpacks as (transport, account
            username or None, route name).
        @raise NoRoute: nobody takes it.
        @raise ModelError: the recipient is not a number.
        """
        try:
            return decide(RootLookup(self.storage.root(), self.route_table()),
                          submission, self.local_transport, self._agents)
        except NoRoute as e:
            if submission.hops > MAX_HOPS:
                self.log.warn("refused message from {origin} to {to}: "
                              "passed {hops} nodes (loop?)",
                              origin=submission.origin,
                              to=submission.recipient, hops=submission.hops)
            raise e

    def authorize(self, submission: Submission) -> Authorization:
        """
        Route and charge a message without storing it (the first part of
        a concatenated message authorizes the whole: C{parts} is the
        number it announces).

        @return: the L{Authorization} to hand to L{submit}.
        @raise NoRoute: nobody takes it.
        @raise Refused: the payer cannot be charged.
        @raise ModelError: for invalid fields.
        """
        decision = self.route(submission)
        now = self.clock.seconds()
        charge = self.charger.authorize(submission, decision.transport,
                                        decision.account, decision.route,
                                        now)
        return Authorization(decision, charge, now)

    def submit(self, submission: Submission,
               authorization: Authorization | None = None) -> defer.Deferred:
        """
        Route and durably accept a message.

        @param authorization: from L{authorize} for this message (its
            first part's), or C{None} to authorize it now.
        @return: a Deferred firing with the message id after the commit.
        @raise NoRoute: before anything is stored.
        @raise Refused: the payer cannot be charged; nothing is stored.
        @raise ModelError: for invalid fields, before anything is stored.
        """
        if authorization is None:
            authorization = self.authorize(submission)
        decision, charge = authorization.decision, authorization.charge
        now = self.clock.seconds()
        validity = now + (submission.validity if submission.validity
                          is not None else self.validity)
        message = Message(
            self._next_id(), submission.origin_kind, submission.origin,
            submission.sender, decision.recipient,
            now=now, validity=validity, text=submission.text,
            encoding=submission.encoding, parts=submission.parts,
            account=decision.account, receipt=submission.receipt,
            hops=submission.hops)
        message.route = decision.route
        message.transport = decision.transport
        if submission.meta:
            message.meta = submission.meta

        def add(raw):
            raw["messages"].add(message)
            self.charger.accepted(raw, message, charge)
            for hook in self._hooks:
                hook(raw, message, "accepted")
            return MessageView.of(message)
        d = self.storage.batch(add)

        def accepted(view: MessageView) -> int:
            self.counters["accepted"] += 1
            if self.metrics is not None:
                self.metrics.message_state(view, "accepted",
                                           decision.transport)
            self.clock.callLater(0, self.dispatch, view)
            return view.id
        d.addCallback(accepted)
        return d

    # -- delivering ----------------------------------------------------

    def _transport_of(self, message: Any) -> str | None:
        """The transport a message was accepted for; for a message stored
        before messages recorded it: the local one for an account, else
        its policy's."""
        if message.transport is not None:
            return message.transport
        if message.account or message.route in (None, LOCAL):
            return self.local_transport
        entry = self.route_table().entry(message.route)
        return entry.transport if entry is not None else None

    def dispatch(self, view: MessageView, transport: str | None = None
                 ) -> defer.Deferred | None:
        """
        Hand one message to its agent, unless it is already in flight;
        when its destination's lane is full it waits there for a free
        slot, or, with that queue full too, is scheduled for a later
        attempt.

        @param transport: the agent's transport (default: the message's).
        @return: a Deferred firing once its outcome is recorded, or
            C{None} if it was in flight or waits in its lane, or no agent
            takes it.
        """
        if view.id in self.in_flight or self.lanes.holds(view.id) \
                or not self.ownership.claim(view):
            return None
        if transport is None:
            transport = self._transport_of(view)
        agent = self._agents.get(transport)
        if agent is None:
            self.log.warn("no {transport} agent for message {id}",
                          transport=transport, id=view.id)
            return None
        lane = (transport, view.account or view.route)
        if not self.lanes.enter(lane):
            if self.lanes.park(lane, view.id, view):
                return None
            return self._record(Outcome(
                "retry", "too many messages in delivery to its "
                "destination"), view)
        return self._deliver(view, agent, lane)

    def _deliver(self, view: MessageView, agent: IDeliveryAgent,
                 lane: tuple) -> defer.Deferred:
        """
        One attempt holding a slot of C{lane}.  Once the agent has its
        outcome the slot passes to the lane's next waiting message, while
        the outcome is recorded: the destination is done with this one,
        so its next delivery does not wait for a commit (the message
        stays in C{in_flight}, not dispatched again, until recorded).
        """
        self.in_flight[view.id] = self.clock.seconds()
        try:
            d = agent.deliver(view)
        except Exception:
            # Broad: an agent's bug (raised, not a failed Deferred) is
            # the same internal error: logged, counted, retried.
            d = defer.fail()
        else:
            if not isinstance(d, defer.Deferred):
                d = defer.succeed(d)
        d.addErrback(self._agent_error, view)
        d.addCallback(self._attempted, view, agent, lane)
        d.addBoth(self._attempt_over, view.id)
        return d

    def _attempted(self, outcome: Outcome, view: MessageView,
                   agent: IDeliveryAgent, lane: tuple) -> defer.Deferred:
        """The agent's outcome is in: free the lane's slot, record it."""
        following = self.lanes.leave(lane)
        if following is not None:
            self._starts.append((following, agent, lane))
            if not self._starting:
                # Started here, not from within each other's callbacks:
                # agents that answer at once would otherwise recurse
                # through the whole lane's queue.
                self._starting = True
                try:
                    while self._starts:
                        self._deliver(*self._starts.popleft())
                finally:
                    self._starting = False
        return self._record(outcome, view)

    def _attempt_over(self, result: Any, id: int) -> Any:
        self.in_flight.pop(id, None)
        return result

    def _agent_error(self, failure, view: MessageView) -> Outcome:
        self.counters["agent_errors"] += 1
        self.log.failure("delivery agent failed on message {id}", failure,
                         id=view.id)
        return Outcome("retry", "internal error")

    def _record(self, outcome: Outcome, view: MessageView,
                final: str | None = None) -> defer.Deferred:
        now = self.clock.seconds()
        decided = next_state(
            final or outcome.kind, outcome.reason, view, now,
            self.retry_schedule, started=self.in_flight.get(view.id, now),
            online_since=self._online.get(view.account)
            if view.account else None)
        state, reason = decided.state, decided.reason
        if decided.retry:
            self.counters["retries"] += 1
        writers = tuple(self._writers) if decided.final else ()

        def write(raw):
            store = raw["messages"]
            message = store.get(view.id)
            if message is None or message.state in FINAL:
                return None
            if decided.kind != "offline":
                message.attempts += 1
            store.set_state(message, state,
                            next_attempt=decided.next_attempt,
                            error=reason or None, now=now)
            if decided.kind == "forwarded":
                store.set_remote(message, outcome.connection,
                                 normalize_remote_id(outcome.remote_id))
            elif decided.final:
                store.forget_remote(message)
            self.charger.state_changed(raw, message, state)
            for hook in self._hooks:
                hook(raw, message, state)
            written = tuple((w, w.final_state(raw, message, state))
                            for w in writers)
            return MessageView.of(message), written
        d = self.storage.batch(write)
        d.addErrback(self._record_again, write, view, 0)
        d.addCallback(self._recorded, state, reason)
        d.addErrback(lambda f: self.log.failure(
            "recording the outcome of message {id} failed", f, id=view.id))
        return d

    def _record_again(self, failure: Any, write: Callable, view: MessageView,
                      tries: int) -> Any:
        """An outcome's commit that still conflicted after the storage's
        retries is queued again, a bounded number of times, later; the
        message stays in flight meanwhile (not dispatched again)."""
        if not failure.check(ConflictError) or tries >= RECORD_RETRIES:
            return failure
        self.counters["record_retries"] = \
            self.counters.get("record_retries", 0) + 1
        self.log.warn("outcome of message {id} conflicted; queued again "
                      "({n} of {max})", id=view.id, n=tries + 1,
                      max=RECORD_RETRIES)
        d = task.deferLater(self.clock, 0.1 * 2 ** tries, self.storage.batch,
                            write)
        d.addErrback(self._record_again, write, view, tries + 1)
        return d

    def _recorded(self, result: tuple | None, state: str,
                  reason: str) -> None:
        if result is None:
            return
        view, written = result
        if self.metrics is not None:
            self.metrics.message_state(view, state, None,
                                       self.clock.seconds())
        if state not in FINAL:
            return
        self.counters[state] += 1
        self.log.info("message {id} to {recipient}: {state}{why}",
                      id=view.id, recipient=view.recipient, state=state,
                      why=f" ({reason})" if reason else "")
        for writer, value in written:
            try:
                writer.committed(view, state, value)
            except Exception:
                # Broad: the state is committed; a writer's (billing,
                # receipts) bug must not keep the others from hearing it.
                self.counters["listener_errors"] += 1
                self.log.failure("state writer failed after the commit")
        for listener in list(self._listeners):
            try:
                listener(view, state)
            except Exception:
                # Broad: a listener is a callback; the others still run.
                self.counters["listener_errors"] += 1
                self.log.failure("outcome listener failed")

    def scan(self) -> None:
        """Dispatch the messages whose next attempt is due; expire those
        whose validity has ended."""
        now = self.clock.seconds()
        owns = self.ownership.owns
        skipped = 0
        # Other nodes' due messages are skipped without counting against
        # the limit: look further by as many as were skipped last time.
        for message in self.storage.messages().due_before(
                now, self.scan_limit + self._scan_skipped):
            if not owns(message.id):
                skipped += 1
                continue
            view = MessageView.of(message)
            if view.id in self.in_flight:
                continue
            if now >= message.validity:
                self._record(Outcome("retry", "validity period ended"), view)
            elif message.state == "delivering":
                self.dispatch(view, self._transport_of(message))
        self._scan_skipped = min(skipped, 20 * self.scan_limit)

    def dispatch_ids(self, ids: Iterable[int]) -> int:
        """
        Dispatch the waiting messages among C{ids}, in id (acceptance)
        order: messages this node took over from another, or was handed.

        @return: how many were dispatched.
        """
        store = self.storage.messages()
        count = 0
        for id in sorted(ids):
            message = store.get(id)
            if message is None or message.state not in ("accepted",
                                                         "delivering"):
                continue
            if message.remote is not None:
                # Forwarded: the far side confirmed it (submit_sm_resp)
                # and its receipt will settle it; sending it again would
                # deliver it twice.
                continue
            if self.dispatch(MessageView.of(message),
                             self._transport_of(message)) is not None:
                count += 1
        return count

    def resume(self, after: int = 0) -> None:
        """
        At start: dispatch waiting messages that have no scheduled attempt
        (accepted just before the node stopped), a slice per reactor turn
        from the store's C{unscheduled} index: the backlog of scheduled
        messages is never read.

        @param after: the last id of the previous slice.
        """
        store = self.storage.messages()
        ids = store.unscheduled_ids(after, self.scan_limit)
        pending = []
        for id in ids:
            message = store.get(id)
            if message is not None and message.next_attempt is None:
                pending.append((MessageView.of(message),
                                self._transport_of(message)))
        for view, transport in pending:
            self.dispatch(view, transport)
        if pending:
            self.log.info("resumed {n} waiting messages", n=len(pending))
        if len(ids) >= self.scan_limit and self.running:
            self.clock.callLater(0, self.resume, ids[-1])

    def account_online(self, username: str) -> defer.Deferred:
        """
        An app of C{username} registered: deliver its waiting messages one
        after another, in acceptance order.

        @return: a Deferred firing when all were tried.
        """
        now = self.clock.seconds()
        self._online[username] = now
        self.ownership.account_online(username)
        views = [MessageView.of(m) for m in
                 self.storage.messages().waiting_for(username)
                 if m.id not in self.in_flight]
        return self._in_order(views, now)

    @defer.inlineCallbacks
    def _in_order(self, views: Iterable[MessageView], now: float):
        for view in views:
            if now >= view.validity:
                yield self._record(Outcome("retry", "validity period ended"),
                                   view)
                continue
            d = self.dispatch(view, self._transport_of(view))
            if d is not None:
                yield d

    def receipt_received(self, connection: str, remote_id: str, state: str,
                         error: str = "") -> defer.Deferred:
        """
        A receipt from the node or vendor a message was forwarded to.

        @param state: C{delivered}, C{failed} or C{expired}.
        @return: a Deferred firing with whether a waiting message matched
            (the final state is then committed and listeners heard of it).
        """
        if state not in RECEIPT_STATES:
            raise ValueError(f"unknown receipt state {state!r}")
        store = self.storage.messages()
        message = None
        for form in remote_id_forms(remote_id):
            message = store.by_remote(connection, form)
            if message is not None:
                break
        if message is None or message.state not in ("delivering",
                                                     "accepted"):
            self.log.info("receipt from {connection} for unknown message "
                          "{remote_id} ({state})", connection=connection,
                          remote_id=remote_id, state=state)
            return defer.succeed(False)
        d = self._record(Outcome("failed" if state == "expired" else state,
                                 error or f"receipt from {connection}"),
                         MessageView.of(message), final=state)
        return d.addCallback(lambda _: True)

    def purge(self, older_than: float) -> defer.Deferred:
        """
        Delete final messages last changed more than C{older_than} seconds
        ago (in a batched write); packs then reclaim the space.

        @return: a Deferred firing with how many were deleted.
        """
        before = self.clock.seconds() - older_than
        return self.storage.batch(lambda raw: raw["messages"].purge(before))

    def statistics(self) -> dict[str, int]:
        """Counters since start, for C{show statistics}."""
        return dict(self.counters, in_flight=len(self.in_flight),
                    waiting_for_destination=self.lanes.waiting_count())
