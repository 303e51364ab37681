# -*- test-case-name: tests.messaging.test_core -*-
"""
The messaging core: the one path every incoming message takes.

    protocol --Submission--> submit(): route (local account, else service
    policy), store in a batched commit, fire the id --> protocol acks
                                  |
                                  v
    dispatch --MessageView--> IDeliveryAgent.deliver() --Outcome-->
    delivered / failed: final state, outcome listeners (receipts)
    offline: waits for account_online() (a REGISTER), expires at validity
    retry: next attempt by the retry schedule, expires at validity

Decisions read the reactor thread's view of the database (BTree lookups of
microseconds) and the route-table snapshot rebuilt after each configuration
commit; every state change is a batched write, and listeners hear of final
states only once they are on disk.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from appliance.messaging.interfaces import IDeliveryAgent, IMessagingCore
from appliance.messaging.vocabulary import (OUTCOMES, RECEIPT_STATES,
                                            MessageView, NoRoute, Outcome,
                                            Refused, Submission,
                                            normalize_remote_id,
                                            remote_id_forms)
from appliance.messaging.store import IdsExhausted, Message, MessageIds
from appliance.model.numbers import normalize_e164
from appliance.model.routing import route_table

#: The vocabulary, importable from here too for older callers.
__all__ = ["MessagingCore", "NoCharge", "OUTCOMES", "MessageView", "NoRoute",
           "Outcome", "Refused", "Submission", "normalize_remote_id",
           "remote_id_forms", "retry_delay", "MAX_HOPS"]

#: Nodes a message may pass before it is refused as looping.
MAX_HOPS = 5
#: Policy origins by message origin kind.
#: (C{map}: an MSC relaying mo-forwardSM counts as a carrier.)
_POLICY_ORIGIN = {"account": "app", "carrier": "carrier", "map": "carrier",
                  "connection": "connection", "http": "app",
                  "tenant": "tenant"}


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


def retry_delay(schedule: tuple[float, ...], attempts: int) -> float:
    """
    Seconds before the next attempt after C{attempts} failed ones: the
    schedule in order, its last value repeating.
    """
    return schedule[min(max(attempts, 1), len(schedule)) - 1]


@implementer(IMessagingCore)
class MessagingCore(Service):
    """
    Accepts, routes, stores and delivers messages, and retries them.

    @ivar in_flight: ids of messages being delivered right now, with the
        time each attempt started.
    """

    name = "messaging"
    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime,
                 retry_schedule: tuple[float, ...] = (30, 120, 600, 3600),
                 validity: float = 86400.0, scan_interval: float = 1.0,
                 scan_limit: int = 500, retention: float = 7 * 86400.0,
                 purge_interval: float = 3600.0):
        """
        @param storage: the L{IStorage}.
        @param clock: the reactor's time and scheduling.
        @param retry_schedule: seconds between attempts (last repeats).
        @param validity: default seconds a message may wait.
        @param scan_interval: seconds between looks at due messages.
        @param scan_limit: due messages taken per look.
        @param retention: seconds a final message is kept (receipts,
            billing, investigation) before it is deleted.
        @param purge_interval: seconds between purges.
        """
        self.storage = storage
        self.clock = clock
        self.retry_schedule = tuple(retry_schedule)
        self.validity = validity
        self.scan_interval = scan_interval
        self.scan_limit = scan_limit
        self.in_flight: dict[int, float] = {}
        self._online: dict[str, float] = {}
        self._agents: dict[str, IDeliveryAgent] = {}
        self.charger: Any = NoCharge()
        self._listeners: list[Callable[[MessageView, str], Any]] = []
        self._hooks: list[Callable[[Any, Message, str], Any]] = []
        #: Counters and histograms of the node (L{appliance.metrics}).
        self.metrics: Any = None
        self._ids: MessageIds | None = None
        self._routes = None
        self._scanner: task.LoopingCall | None = None
        self.retention = retention
        self._purger = task.LoopingCall(self.purge, retention)
        self._purger.clock = clock
        self.purge_interval = purge_interval
        self.counters = {"accepted": 0, "no_route": 0, "delivered": 0,
                         "failed": 0, "expired": 0, "retries": 0}

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
        self._ids = MessageIds(epoch)

    def _next_id(self) -> int:
        try:
            return self._ids.next()
        except IdsExhausted:
            self._new_epoch()
            return self._ids.next()

    def route_table(self):
        """@return: the current L{RouteTable} snapshot."""
        return self._routes

    def _config_changed(self, note: str) -> None:
        self._rebuild_routes()

    def _rebuild_routes(self) -> None:
        self._routes = route_table(self.storage.root())

    # -- agents and listeners -------------------------------------------

    def set_agent(self, transport: str, agent: IDeliveryAgent) -> None:
        """Deliver C{transport} routes with C{agent}."""
        self._agents[transport] = agent

    def set_charger(self, charger: Any) -> None:
        """Rate, charge and record messages with C{charger} (see
        L{NoCharge} for the three calls)."""
        self.charger = charger

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

    def route(self, submission: Submission) -> tuple[str, str | None, str]:
        """
        Decide where a message goes, without storing anything.

        @return: (transport, account username or None, route name).
        @raise NoRoute: nobody takes it.
        @raise ModelError: the recipient is not a number.
        """
        if submission.hops > MAX_HOPS:
            self.log.warn("refused message from {origin} to {to}: passed "
                          "{hops} nodes (loop?)", origin=submission.origin,
                          to=submission.recipient, hops=submission.hops)
            raise NoRoute(f"message passed {submission.hops} nodes: "
                          "routing loop")
        number = normalize_e164(submission.recipient)
        root = self.storage.root()
        account = root.account_for_did(number) or root.accounts.get(number)
        if account is not None:
            if not account.enabled:
                raise NoRoute(f"account {account.username} is disabled")
            product = root.products.get(account.product) \
                if account.product else None
            if product is not None and not product.messaging:
                raise NoRoute(f"messaging is not enabled for account "
                              f"{account.username}")
            return "sip", account.username, "local"
        origin = _POLICY_ORIGIN.get(submission.origin_kind)
        decision = self._routes.decide(submission.sender, number, origin,
                                       submission.origin)
        if decision is None:
            raise NoRoute(f"no account or service policy for {number}")
        if decision.transport == "sip":
            raise NoRoute(f"policy {decision.policy}: no local account "
                          f"{number}")
        if decision.transport not in self._agents:
            raise NoRoute(f"policy {decision.policy}: no {decision.transport}"
                          " connections in this node")
        return decision.transport, None, decision.policy

    def submit(self, submission: Submission) -> defer.Deferred:
        """
        Route and durably accept a message.

        @return: a Deferred firing with the message id after the commit.
        @raise NoRoute: before anything is stored.
        @raise Refused: the payer cannot be charged; nothing is stored.
        @raise ModelError: for invalid fields, before anything is stored.
        """
        transport, account, route = self.route(submission)
        now = self.clock.seconds()
        charge = self.charger.authorize(submission, transport, account,
                                        route, now)
        validity = now + (submission.validity if submission.validity
                          is not None else self.validity)
        message = Message(
            self._next_id(), submission.origin_kind, submission.origin,
            submission.sender, normalize_e164(submission.recipient),
            now=now, validity=validity, text=submission.text,
            encoding=submission.encoding, parts=submission.parts,
            account=account, receipt=submission.receipt,
            hops=submission.hops)
        message.route = route
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
                self.metrics.message_state(view, "accepted", transport)
            self.clock.callLater(0, self.dispatch, view, transport)
            return view.id
        d.addCallback(accepted)
        return d

    # -- delivering ----------------------------------------------------

    def dispatch(self, view: MessageView, transport: str = "sip"
                 ) -> defer.Deferred | None:
        """
        Hand one message to its agent, unless it is already in flight.

        @return: a Deferred firing once its outcome is recorded, or
            C{None} if it was in flight or no agent takes it.
        """
        if view.id in self.in_flight:
            return None
        agent = self._agents.get(transport)
        if agent is None:
            self.log.warn("no {transport} agent for message {id}",
                          transport=transport, id=view.id)
            return None
        self.in_flight[view.id] = self.clock.seconds()
        d = defer.maybeDeferred(agent.deliver, view)
        d.addErrback(self._agent_error, view)
        d.addCallback(self._record, view)

        def done(result):
            self.in_flight.pop(view.id, None)
            return result
        d.addBoth(done)
        return d

    def _agent_error(self, failure, view: MessageView) -> Outcome:
        self.log.failure("delivery agent failed on message {id}", failure,
                         id=view.id)
        return Outcome("retry", "internal error")

    def _record(self, outcome: Outcome, view: MessageView,
                final: str | None = None) -> defer.Deferred:
        now = self.clock.seconds()
        kind, reason = final or outcome.kind, outcome.reason
        if kind in ("retry", "offline") and now >= view.validity:
            kind, reason = "expired", reason or "validity period ended"
        if kind == "delivered":
            state, next_attempt = "delivered", None
        elif kind == "failed":
            state, next_attempt = "failed", None
        elif kind == "expired":
            state, next_attempt = "expired", None
        elif kind == "offline":
            # Wait for a REGISTER; the due index wakes it at its expiry.
            state, next_attempt = "accepted", view.validity
        elif kind == "forwarded":
            # Wait for the far side's receipt until the validity ends; no
            # receipt by then: expired (the documented rule).
            state, next_attempt = "delivering", view.validity
        else:
            state = "delivering"
            next_attempt = min(now + retry_delay(self.retry_schedule,
                                                 view.attempts + 1),
                               view.validity)
            started = self.in_flight.get(view.id, now)
            if view.account and self._online.get(view.account, -1) >= started:
                # The app registered again while this attempt went to its
                # old contact: try the new one now, not by the schedule.
                next_attempt = now
            self.counters["retries"] += 1

        def write(raw):
            store = raw["messages"]
            message = store.get(view.id)
            if message is None or message.state in ("delivered", "failed",
                                                    "expired"):
                return None
            if kind != "offline":
                message.attempts += 1
            store.set_state(message, state, next_attempt=next_attempt,
                            error=reason or None, now=now)
            if kind == "forwarded":
                store.set_remote(message, outcome.connection,
                                 normalize_remote_id(outcome.remote_id))
            elif state in ("delivered", "failed", "expired"):
                store.forget_remote(message)
            self.charger.state_changed(raw, message, state)
            for hook in self._hooks:
                hook(raw, message, state)
            return MessageView.of(message)
        d = self.storage.batch(write)
        d.addCallback(self._recorded, state, reason)
        d.addErrback(lambda f: self.log.failure(
            "recording the outcome of message {id} failed", f, id=view.id))
        return d

    def _recorded(self, view: MessageView | None, state: str,
                  reason: str) -> None:
        if view is None:
            return
        if self.metrics is not None:
            self.metrics.message_state(view, state, None,
                                       self.clock.seconds())
        if state in ("delivered", "failed", "expired"):
            self.counters[state] += 1
            self.log.info("message {id} to {recipient}: {state}{why}",
                          id=view.id, recipient=view.recipient, state=state,
                          why=f" ({reason})" if reason else "")
            for listener in list(self._listeners):
                try:
                    listener(view, state)
                except Exception:
                    self.log.failure("outcome listener failed")

    def scan(self) -> None:
        """Dispatch the messages whose next attempt is due; expire those
        whose validity has ended."""
        now = self.clock.seconds()
        for message in self.storage.messages().due_before(now,
                                                          self.scan_limit):
            view = MessageView.of(message)
            if view.id in self.in_flight:
                continue
            if now >= message.validity:
                self._record(Outcome("retry", "validity period ended"), view)
            elif message.state == "delivering":
                self.dispatch(view, self._transport_of(message))

    def _transport_of(self, message: Message) -> str:
        return "sip" if message.route in (None, "local") or \
            message.account else "smpp"

    def resume(self) -> None:
        """
        At start: dispatch waiting messages that have no scheduled attempt
        (accepted just before the node stopped).
        """
        store = self.storage.messages()
        pending = []
        for id in list(store.waiting):
            message = store.get(id)
            if message is not None and message.next_attempt is None:
                pending.append(MessageView.of(message))
        for view in pending:
            self.dispatch(view, "sip" if view.account else "smpp")
        if pending:
            self.log.info("resumed {n} waiting messages", n=len(pending))

    def account_online(self, username: str) -> defer.Deferred:
        """
        An app of C{username} registered: deliver its waiting messages one
        after another, in acceptance order.

        @return: a Deferred firing when all were tried.
        """
        now = self.clock.seconds()
        self._online[username] = now
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
            d = self.dispatch(view, "sip")
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
        kind = {"delivered": "delivered", "failed": "failed",
                "expired": "expired"}[state]
        d = self._record(Outcome("failed" if kind == "expired" else kind,
                                 error or f"receipt from {connection}"),
                         MessageView.of(message), final=kind)
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
        return dict(self.counters, in_flight=len(self.in_flight))
