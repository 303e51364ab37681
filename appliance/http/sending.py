# -*- test-case-name: tests.http.test_sending -*-
"""
The send path of the HTTP API: one validated request becomes one
L{Submission} per recipient, each normalized, authorized, charged and
routed on its own; the answer is built once every accepted recipient is
committed.  Also the status of a tenant's message.
"""
from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from appliance.http.params import APIError, SendRequest
from appliance.messaging.vocabulary import NoRoute, Refused, Submission
from appliance.model.errors import ModelError
from appliance.model.numbering import Alphanumeric, node_plan, normalize

#: Seconds the queue depth read for L{Sender.queue_full} is reused.
QUEUE_CHECK = 0.05
#: Normalized senders remembered (the memo is emptied when full).
SENDER_CACHE = 10_000

#: Status names the API shows, by message state.
STATES = ("accepted", "delivering", "delivered", "failed", "expired",
          "refused")


def message_id(number: int) -> str:
    """The id the API shows for a message (hexadecimal)."""
    return format(number, "x")


def parse_id(text: str | None) -> int | None:
    """@return: the message number of an API id, or C{None}."""
    if not text or len(text) > 16:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def _price(authorization: Any, payer: str) -> tuple | None:
    """The amount and currency the core's authorization charges
    C{payer} (the billing charge's C{price_of}), or C{None}."""
    price_of = getattr(authorization.charge, "price_of", None)
    return price_of(payer) if price_of is not None else None


def refusal(error: Exception) -> tuple[str, str]:
    """The stable code and reason of a per-recipient refusal."""
    if isinstance(error, NoRoute):
        return "no_route", str(error) or "no route to this number"
    if isinstance(error, Refused):
        if getattr(error, "kind", "funds") == "destination":
            return "destination_not_allowed", str(error)
        return "no_funds", str(error)
    if isinstance(error, APIError):
        return error.code, error.reason
    return "invalid_parameter", f"to: {error}"


class Sender:
    """
    Submits requests to the messaging core.

    @ivar counters: requests and recipients by outcome.
    """

    log = Logger()

    def __init__(self, core: Any, storage: Any, clock: Any,
                 queue_limit: int = 1_000_000) -> None:
        """
        @param core: the L{IMessagingCore}.
        @param storage: the storage (queue depth, status look-ups).
        @param queue_limit: waiting messages beyond which requests get 503.
        """
        self.core, self.storage, self.clock = core, storage, clock
        self.queue_limit = queue_limit
        self._queue: tuple[float, int] = (float("-inf"), 0)
        # (plan, sender as given) -> as normalized: tenants send from a
        # few senders, over and over.
        self._senders: dict[tuple[Any, str], str] = {}

    def queue_full(self) -> bool:
        """
        Whether the node holds more waiting messages than allowed.  A
        depth read below half the limit is reused for L{QUEUE_CHECK}
        seconds, plus what this sender submitted since (the other
        protocols cannot fill the queue half way in that time); closer
        to the limit it is read for every request.
        """
        now = self.clock.seconds()
        stamp, depth = self._queue
        if now - stamp < QUEUE_CHECK and depth < self.queue_limit // 2:
            return False
        counts = self.storage.messages().counts()
        depth = counts.get("accepted", 0) + counts.get("delivering", 0)
        self._queue = (now, depth)
        return depth >= self.queue_limit

    def _plan(self, tenant: Any) -> Any:
        plan = getattr(tenant, "plan", None)
        if plan is None:        # a persistent Tenant rather than its view
            plan = node_plan(self.storage.root()).overlaid(
                tenant.plan_overrides())
        return plan

    def send(self, tenant: Any, request: SendRequest,
             meta: tuple = (), source: str | None = None) -> defer.Deferred:
        """
        Submit every recipient.

        @param tenant: its L{appliance.http.model.TenantView} (or the
            L{Tenant}); its numbering plan reads the numbers.
        @param source: the client's address (the submissions' C{source}).
        @return: a Deferred firing with C{(status, body)}: 200 with the
            recipients when at least one was accepted, else the error of
            the first refusal with every recipient's reason.
        @raise APIError: the sender is not allowed, or the queue is full
            (nothing is submitted).
        """
        plan = self._plan(tenant)
        sender = self._senders.get((plan, request.sender))
        if sender is None:
            try:
                sender = str(normalize(request.sender, plan=plan))
            except ModelError as e:
                raise APIError("invalid_parameter", f"from: {e}", "from") \
                    from None
            if len(self._senders) >= SENDER_CACHE:
                self._senders.clear()
            self._senders[(plan, request.sender)] = sender
        if not tenant.sender_allowed(sender):
            raise APIError("sender_not_allowed", f"sender {sender} "
                           "is not allowed for this tenant", "from")
        if self.queue_full():
            raise APIError("queue_full", "the node's queue is full; try "
                           "again later", retry_after=5)
        payer = f"tenant:{tenant.name}"
        results: list[Any] = []
        waits = []
        for to in request.recipients:
            try:
                number = normalize(to, plan=plan)
                if isinstance(number, Alphanumeric):
                    raise ModelError(f"{to!r} is not a number")
                number = number.digits
            except ModelError as e:
                results.append((to, APIError("invalid_parameter",
                                             f"to: {e}", "to"), None))
                continue
            submission = Submission(
                "tenant", tenant.name, sender, number,
                request.body, request.encoding, request.parts,
                request.validity, 1 if meta else 0, 0, meta, source)
            try:
                # Rated once: the price answered is the charge's own.
                authorization = self.core.authorize(submission)
                d = self.core.submit(submission, authorization)
            except (NoRoute, Refused, ModelError) as e:
                results.append((number, e, None))
                continue
            slot = len(results)
            results.append((number, None, _price(authorization, payer)))
            stamp, depth = self._queue
            self._queue = (stamp, depth + 1)
            waits.append(d.addBoth(self._stored, results, slot))
        if len(waits) == 1:
            d = waits[0]
        elif waits:
            d = defer.gatherResults(waits)
        else:
            return defer.succeed(self._answer(request, results))
        return d.addCallback(lambda _: self._answer(request, results))

    def _stored(self, result: Any, results: list, slot: int) -> None:
        number, _, price = results[slot]
        if isinstance(result, int):
            results[slot] = (number, result, price)
        elif result.check(Refused):
            # Found in the accepting transaction (another node spent the
            # prepaid balance meanwhile): a refusal like any other.
            results[slot] = (number, result.value, None)
        else:
            self.log.failure("storing a message to {to} failed", result,
                             to=number)
            results[slot] = (number, APIError("internal", "the message "
                                              "could not be stored"), None)

    @staticmethod
    def _answer(request: SendRequest, results: list) -> tuple[int, dict]:
        rows, first_id, first_error = [], None, None
        for number, outcome, price in results:
            if isinstance(outcome, int):
                row = {"to": number, "id": message_id(outcome),
                       "status": "accepted"}
                if price is not None:
                    row["price"], row["currency"] = str(price[0]), price[1]
                first_id = first_id or row["id"]
            else:
                code, reason = refusal(outcome)
                row = {"to": number, "status": "refused", "code": code,
                       "reason": reason}
                first_error = first_error or (code, reason)
            rows.append(row)
        if first_id is None:
            code, reason = first_error
            error = APIError(code, reason)
            body = error.body()
            body["recipients"] = rows
            return error.status, body
        return 200, {"id": first_id, "parts": request.parts,
                     "recipients": rows}

    # -- status ----------------------------------------------------------

    def status(self, tenant: Any, text: str | None) -> dict:
        """
        The state of one of the tenant's messages.

        @raise APIError: 400 for a malformed id, 404 for an id that is not
            the tenant's (or no longer kept).
        """
        if text is None:
            raise APIError("invalid_parameter", "id: missing", "id")
        number = parse_id(text)
        if number is None:
            raise APIError("invalid_parameter", "id: not a message id", "id")
        message = self.storage.messages().get(number)
        if message is None or message.origin_kind != "tenant" \
                or message.origin != tenant.name:
            raise APIError("not_found", f"no message {text} of this tenant")
        return describe(message)


def describe(message: Any) -> dict:
    """A message as the status answer and the callbacks show it."""
    meta = dict(message.meta)
    remote = message.remote
    out: dict[str, Any] = {
        "id": message_id(message.id), "state": message.state,
        "from": message.sender, "to": message.recipient,
        "parts": message.parts,
        "accepted_at": _iso(message.created),
        "updated_at": _iso(message.updated),
        "attempts": message.attempts,
    }
    if meta.get("client-ref"):
        out["client-ref"] = meta["client-ref"]
    if remote is not None:
        out["connection"], out["carrier_id"] = remote[0], remote[1]
    elif message.route and message.route != "local":
        out["route"] = message.route
    if message.error:
        out["error"] = message.error
    if message.charged:
        out["charged"] = str(message.charged)
    return out


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
