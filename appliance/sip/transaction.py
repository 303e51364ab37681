"""
SIP transactions (RFC 3261 section 17) on an injected clock.

L{TransactionLayer} matches incoming messages to transactions (branch,
sent-by and method per 17.2.3, with the RFC 2543 key for requests whose
branch lacks the magic cookie), absorbs retransmissions, creates server
transactions for new requests and hands those to the transaction user
(L{ITransactionUser}). The timers of every transaction of a layer share
one L{TimerWheel} (one delayed call of the clock for all of them), which
tests drive with C{task.Clock}. A transaction renders each message it
sends once and retransmits those bytes. INVITE server transactions follow
RFC 6026 (an I{Accepted} state absorbs INVITE retransmissions after a 2xx).

A non-INVITE server transaction over UDP that has sent its final response
spends the 32 s of timer J doing one thing: re-sending that response to
retransmissions of its request.  The layer then keeps a
L{CompletedTransaction} in its place (the key, the response's bytes, where
they go), and the request, its headers and the transaction object go:
every REGISTER and MESSAGE leaves that behind for 32 s, so at a few
hundred requests a second it is most of what the SIP side holds.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Hashable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from appliance.sip.headers import HeaderError, Via
from appliance.sip.interfaces import ISIPTransport, ITransactionUser
from appliance.sip.message import Request, Response, make_response
from appliance.sip.timers import Timer, TimerWheel
from appliance.sip.tokens import token_hex

__all__ = [
    "MAGIC_COOKIE", "CompletedTransaction", "InviteServerTransaction", "NonInviteClientTransaction",
    "NonInviteServerTransaction", "State", "TimerSettings", "TransactionLayer",
    "new_branch", "response_destination",
]

MAGIC_COOKIE = "z9hG4bK"
Address = tuple[str, int]


@dataclass(frozen=True)
class TimerSettings:
    """
    The RFC 3261 timer base values, in seconds.

    @ivar t1: RTT estimate (default 0.5).
    @ivar t2: maximum retransmit interval for non-INVITE (default 4).
    @ivar t4: maximum time a message stays in the network (default 5).
    @ivar trying_delay: how long an INVITE server transaction waits for the
        TU before sending C{100 Trying} itself (RFC 3261 17.2.1: 200 ms).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    trying_delay: float = 0.2


class State(Enum):
    """
    Transaction states.
    """

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


def new_branch() -> str:
    """
    @return: a fresh, unguessable branch with the RFC 3261 magic cookie.
    """
    return MAGIC_COOKIE + token_hex(10)


def response_destination(via: Via, source: Address) -> Address:
    """
    Where a response to a request goes on UDP (RFC 3261 18.2.2, RFC 3581).

    @param via: the top Via of the request, as updated by the protocol
        (C{received}, C{rport} filled in).
    @param source: the address the request came from.
    @return: C{(host, port)}.
    """
    host = via.received or _via_host(via)
    if via.rport is not None:
        return host, via.rport
    if via.has_rport:
        return source
    return host, via.port if via.port is not None else 5060


def _via_host(via: Via) -> str:
    return via.host[1:-1] if via.host.startswith("[") else via.host


class _Transaction:
    """
    What the transaction kinds share: timers, sending, termination.

    @ivar key: the matching key in the layer.
    @ivar request: the request that created the transaction.
    @ivar transport: the L{ISIPTransport} it uses.
    @ivar address: where it sends.
    @ivar source: for a server transaction, where its request came from.
    @ivar state: the current L{State}.
    @ivar created: the clock time at creation.
    """

    log = Logger()
    kind = "transaction"

    source: Address | None = None

    def __init__(self, key: Hashable, request: Request, transport: ISIPTransport,
                 address: Address, clock: IReactorTime, timers: TimerSettings,
                 user: ITransactionUser, on_terminated: Callable[[_Transaction], None],
                 wheel: TimerWheel | None = None) -> None:
        """
        @param wheel: the layer's timers; a wheel of its own when C{None}.
        """
        self.key = key
        self.request = request
        self.transport = transport
        self.address = address
        self.state = State.TRYING
        self.created = clock.seconds()
        self._clock = clock
        self._timers = timers
        self._user = user
        self._on_terminated = on_terminated
        self._wheel = wheel if wheel is not None else TimerWheel(clock)
        self._calls: dict[str, Timer] = {}

    def _start_timer(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        self._cancel_timers(name)
        self._calls[name] = self._wheel.call_later(delay, self._fire, name, fn)

    def _fire(self, name: str, fn: Callable[[], None]) -> None:
        self._calls.pop(name, None)
        try:
            fn()
        except Exception:
            # Broad: a timer's bug must not stop the timer wheel.
            self.log.failure("timer {timer} of {tx} failed", timer=name, tx=self)

    def _cancel_timers(self, *names: str) -> None:
        for name in names or list(self._calls):
            call = self._calls.pop(name, None)
            if call is not None and call.active():
                call.cancel()

    def pending_timers(self) -> list[str]:
        """
        @return: the names of the timers currently running (C{"E"}, C{"F"}...).
        """
        return sorted(self._calls)

    @property
    def method(self) -> str:
        """The method of the transaction's request."""
        return self.request.method

    @property
    def branch(self) -> str | None:
        """The branch of the request's top Via, or C{None}."""
        try:
            return self.request.top_via().branch
        except ValueError:
            return None

    def _send(self, message: Request | Response | bytes) -> bool:
        try:
            data = message if isinstance(message, bytes) else message.to_bytes()
            self.transport.send(data, self.address)
        except Exception:
            # Broad: a transport's error (OSError, a closed connection) or
            # a rendering bug is a transport error of this transaction.
            self.log.failure("sending to {address} failed", address=self.address)
            return False
        return True

    def terminate(self) -> None:
        """
        Stop all timers and leave the layer, without telling the TU.
        """
        if self.state is State.TERMINATED:
            return
        self.state = State.TERMINATED
        self._cancel_timers()
        self._on_terminated(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value} {self.key!r}>"


class NonInviteClientTransaction(_Transaction):
    """
    Client transaction for a request other than INVITE and ACK (17.1.2).

    @ivar final: a Deferred fired with the final response (a synthesized
        408 on timer F, 503 on a transport error); it never errbacks.
    """

    kind = "client"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.final: Deferred[Response] = Deferred()
        self._interval = self._timers.t1
        self._wire = b""

    def start(self) -> None:
        """
        Send the request and start timers E (unreliable only) and F.
        """
        try:
            self._wire = self.request.to_bytes()
        except Exception:
            # Broad: a rendering bug ends the transaction with a 503.
            self.log.failure("request {tx} not rendered", tx=self)
        if not self._wire or not self._send(self._wire):
            self._finish(make_response(self.request, 503, "Transport Error"))
            return
        if not self.transport.reliable:
            self._start_timer("E", self._interval, self._timer_e)
        self._start_timer("F", 64 * self._timers.t1, self._timer_f)

    def _timer_e(self) -> None:
        self._send(self._wire)
        if self.state is State.TRYING:
            self._interval = min(2 * self._interval, self._timers.t2)
        else:
            self._interval = self._timers.t2
        self._start_timer("E", self._interval, self._timer_e)

    def _timer_f(self) -> None:
        self._finish(make_response(self.request, 408))

    def receive_response(self, response: Response) -> None:
        """
        Handle a response matched to this transaction.

        @param response: the response.
        """
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # retransmitted final response: absorbed
        if response.status < 200:
            self.state = State.PROCEEDING
            self._tell_user(response)
            return
        self.state = State.COMPLETED
        self._cancel_timers("E", "F")
        self._report_final(response)
        if self.transport.reliable:
            self.terminate()
        else:
            self._start_timer("K", self._timers.t4, self.terminate)

    def _finish(self, response: Response) -> None:
        self._report_final(response)
        self.terminate()

    def _report_final(self, response: Response) -> None:
        self._tell_user(response)
        self.final.callback(response)

    def _tell_user(self, response: Response) -> None:
        try:
            self._user.response_received(response, self)
        except Exception:
            # Broad: the user's callback; the transaction completes.
            self.log.failure("transaction user failed on a response")


class _ServerTransaction(_Transaction):
    """
    What both server transactions share: the last response sent.

    @ivar last_response: the last response sent (a non-INVITE transaction
        keeps only its bytes once completed).
    """

    kind = "server"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.last_response: Response | None = None
        self._wire = b""

    def _resend(self) -> None:
        if self._wire:
            self._send(self._wire)

    def _emit(self, response: Response) -> None:
        self.last_response = response
        try:
            self._wire = response.to_bytes()
        except Exception:
            # Broad: a rendering bug; nothing is sent for this response.
            self._wire = b""
            self.log.failure("response {status} on {tx} not rendered",
                             status=response.status, tx=self)
            return
        self._send(self._wire)


class NonInviteServerTransaction(_ServerTransaction):
    """
    Server transaction for a request other than INVITE and ACK (17.2.2).

    @ivar on_completed: set by the layer: called with the transaction once
        its final response went out over UDP, to keep a
        L{CompletedTransaction} for timer J in its place; when C{None} the
        transaction runs timer J itself.
    """

    on_completed: Callable[[NonInviteServerTransaction], None] | None = None

    def receive_request(self, request: Request) -> None:
        """
        A retransmission of the request: re-send the last response, if any.

        @param request: the retransmitted request.
        """
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend()

    def respond(self, response: Response) -> bool:
        """
        Send a response from the TU.

        @param response: a provisional or final response.
        @return: C{False} if the transaction already sent its final response.
        """
        if self.state not in (State.TRYING, State.PROCEEDING):
            self.log.warn("late {status} on {tx} dropped", status=response.status, tx=self)
            return False
        self._emit(response)
        if response.status < 200:
            self.state = State.PROCEEDING
            return True
        self.state = State.COMPLETED
        if self.transport.reliable:
            self.terminate()
        elif self.on_completed is not None and self._wire:
            # Timer J: the layer keeps the bytes and lets this object go.
            self.last_response = None
            self.on_completed(self)
        else:
            # Timer J keeps the transaction 32 s to absorb retransmissions,
            # which get the bytes in _wire: let the rest go meanwhile.
            self.last_response = None
            self.request._parsed.clear()
            self._start_timer("J", 64 * self._timers.t1, self.terminate)
        return True


class CompletedTransaction:
    """
    What is left of a non-INVITE server transaction over UDP once its final
    response is sent (RFC 3261 17.2.2, state Completed): retransmissions of
    the request get those bytes again until timer J ends it.

    @ivar key: the matching key (L{TransactionLayer.server_key}).
    @ivar wire: the final response's bytes.
    @ivar transport: the L{ISIPTransport} it went on.
    @ivar address: where it went.
    @ivar deadline: the clock time timer J fires.
    """

    __slots__ = ("key", "wire", "transport", "address", "deadline")

    log = Logger()
    kind = "server"
    state = State.COMPLETED

    def __init__(self, key: Hashable, wire: bytes, transport: ISIPTransport, address: Address,
                 deadline: float) -> None:
        self.key = key
        self.wire = wire
        self.transport = transport
        self.address = address
        self.deadline = deadline

    @property
    def method(self) -> str:
        """The request's method (the last element of every key)."""
        return self.key[-1]  # type: ignore[index]

    @property
    def branch(self) -> str | None:
        """The request's branch, for an RFC 3261 key; else C{None}."""
        key = self.key
        return key[1] if key[0] == "3261" else None  # type: ignore[index]

    def receive_request(self, request: Request) -> None:
        """
        A retransmission of the request: send the final response again.

        @param request: the retransmitted request.
        """
        try:
            self.transport.send(self.wire, self.address)
        except Exception:
            # Broad: as in _Transaction._send; the peer retransmits.
            self.log.failure("sending to {address} failed", address=self.address)

    def __repr__(self) -> str:
        return f"<CompletedTransaction {self.method} {self.key!r}>"


class InviteServerTransaction(_ServerTransaction):
    """
    Server transaction for INVITE (17.2.1, with RFC 6026's Accepted state).
    """

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.state = State.PROCEEDING
        self._interval = self._timers.t1

    def start(self) -> None:
        """
        Arrange for C{100 Trying} unless the TU answers within the delay.
        """
        if self._timers.trying_delay <= 0:
            self._send_trying()
        else:
            self._start_timer("Trying", self._timers.trying_delay, self._send_trying)

    def _send_trying(self) -> None:
        if self.state is State.PROCEEDING and self.last_response is None:
            self._emit(make_response(self.request, 100))

    def receive_request(self, request: Request) -> None:
        """
        An INVITE retransmission or the ACK for a non-2xx final response.

        @param request: the INVITE or ACK.
        """
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._cancel_timers("G", "H")
                if self.transport.reliable:
                    self.terminate()
                else:
                    self._start_timer("I", self._timers.t4, self.terminate)
            return
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._resend()

    def respond(self, response: Response) -> bool:
        """
        Send a response from the TU.

        @param response: a provisional or final response.
        @return: C{False} if it could not be sent in this state.
        """
        if self.state is State.ACCEPTED and 200 <= response.status < 300:
            self._emit(response)
            return True
        if self.state is not State.PROCEEDING:
            self.log.warn("late {status} on {tx} dropped", status=response.status, tx=self)
            return False
        self._cancel_timers("Trying")
        self._emit(response)
        if response.status < 200:
            return True
        if response.status < 300:
            self.state = State.ACCEPTED
            self._start_timer("L", 64 * self._timers.t1, self.terminate)
            return True
        self.state = State.COMPLETED
        if not self.transport.reliable:
            self._start_timer("G", self._interval, self._timer_g)
        self._start_timer("H", 64 * self._timers.t1, self._timer_h)
        return True

    def _timer_g(self) -> None:
        self._resend()
        self._interval = min(2 * self._interval, self._timers.t2)
        self._start_timer("G", self._interval, self._timer_g)

    def _timer_h(self) -> None:
        self.terminate()
        try:
            self._user.transaction_timed_out(self)
        except Exception:
            # Broad: the user's callback; the transaction is terminated.
            self.log.failure("transaction user failed on timer H")


ServerTransaction = NonInviteServerTransaction | InviteServerTransaction


class TransactionLayer:
    """
    Match messages to transactions, create server transactions, start client
    transactions.

    @ivar user: the L{ITransactionUser}.
    @ivar timers: the L{TimerSettings}.
    @ivar wheel: the L{TimerWheel} every transaction's timers run on.
    @ivar admission: decides on new requests (a
        L{appliance.sip.overload.LoadShedder}); those it refuses get a
        stateless C{503} with C{Retry-After} and no transaction.
    """

    log = Logger()
    admission: Any = None

    def __init__(self, user: ITransactionUser, clock: IReactorTime,
                 timers: TimerSettings | None = None) -> None:
        """
        @param user: receives new requests and client outcomes.
        @param clock: the reactor's time interface.
        @param timers: T1, T2, T4; RFC 3261 defaults when C{None}.
        """
        self.user = user
        self.timers = timers or TimerSettings()
        self._clock = clock
        self.wheel = TimerWheel(clock)
        self._server: dict[Hashable, ServerTransaction] = {}
        self._client: dict[Hashable, NonInviteClientTransaction] = {}
        self._completed: dict[Hashable, CompletedTransaction] = {}
        # Completed ones in the order timer J ends them (one delay for all).
        self._expiry: deque[CompletedTransaction] = deque()
        self._expiry_call: Any = None

    @staticmethod
    def server_key(request: Request, method: str | None = None) -> Hashable:
        """
        The matching key of a request (RFC 3261 17.2.3).

        @param request: the request.
        @param method: the method to match instead of the request's (for
            finding the INVITE a CANCEL targets).
        @return: a hashable key; ACK maps to INVITE.
        @raise HeaderError: for a missing or malformed Via or CSeq.
        """
        via = request.top_via()
        method = method or request.method
        if method == "ACK":
            method = "INVITE"
        branch = via.branch
        if branch and branch.startswith(MAGIC_COOKIE):
            return ("3261", branch, via.sent_by, method)
        from_tag = request.from_address().tag
        return ("2543", str(request.uri), from_tag, request.call_id,
                request.cseq().number, str(via), method)

    def receive(self, message: Request | Response, transport: ISIPTransport,
                source: Address) -> None:
        """
        Dispatch one parsed message.

        @param message: the request or response.
        @param transport: the transport it came on (responses go back on it).
        @param source: the address it came from.
        """
        try:
            if isinstance(message, Request):
                self._receive_request(message, transport, source)
            else:
                self._receive_response(message)
        except HeaderError as e:
            self.log.info("dropped message from {source}: {reason}", source=source, reason=str(e))

    def _receive_request(self, request: Request, transport: ISIPTransport,
                         source: Address) -> None:
        key = self.server_key(request)
        existing = self._server.get(key) or self._completed.get(key)
        if existing is not None:
            existing.receive_request(request)
            return
        if request.method == "ACK":
            self._call_user(request, None)
            return
        address = source if transport.reliable else response_destination(request.top_via(), source)
        if self.admission is not None and self.admission.admit() is not None:
            self._refuse(request, transport, address)
            return
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        tx = cls(key, request, transport, address, self._clock, self.timers, self.user,
                 self._forget_server, self.wheel)
        tx.source = source
        self._server[key] = tx
        if isinstance(tx, InviteServerTransaction):
            tx.start()
        elif not transport.reliable:
            tx.on_completed = self._complete
        if not self._call_user(request, tx) and tx.state in (State.TRYING, State.PROCEEDING):
            tx.respond(make_response(request, 500))

    def _refuse(self, request: Request, transport: ISIPTransport, address: Address) -> None:
        """Answer C{503} with C{Retry-After}, keeping no state."""
        response = make_response(request, 503, to_tag=token_hex(6))
        response.headers.add("Retry-After", str(self.admission.retry_after))
        try:
            transport.send(response.to_bytes(), address)
        except Exception:
            # Broad: as in _send; the refusal keeps no state either way.
            self.log.failure("sending 503 to {address} failed", address=address)

    def _call_user(self, request: Request, tx: ServerTransaction | None) -> bool:
        try:
            self.user.request_received(request, tx)
        except Exception:
            # Broad: the user's bug is answered 500 by the caller.
            self.log.failure("transaction user failed on {method}", method=request.method)
            return False
        return True

    def _receive_response(self, response: Response) -> None:
        via = response.top_via()
        key = (via.branch, response.cseq().method)
        tx = self._client.get(key)
        if tx is None:
            self.log.debug("stray {status} response dropped", status=response.status)
            return
        tx.receive_response(response)

    def send_request(self, request: Request, transport: ISIPTransport,
                     address: Address) -> NonInviteClientTransaction:
        """
        Start a non-INVITE client transaction.

        @param request: the request; its top Via must carry a branch with
            the magic cookie (L{new_branch}).
        @param transport: where to send it.
        @param address: C{(host, port)} of the next hop.
        @return: the transaction; its C{final} Deferred fires with the outcome.
        @raise ValueError: for INVITE/ACK, or a Via without a proper branch,
            or a branch already in use.
        """
        if request.method in ("INVITE", "ACK"):
            raise ValueError(f"no client transaction for {request.method}")
        branch = request.top_via().branch
        if not branch or not branch.startswith(MAGIC_COOKIE):
            raise ValueError("top Via needs a branch starting with z9hG4bK")
        key = (branch, request.method)
        if key in self._client:
            raise ValueError(f"branch {branch} already in use")
        tx = NonInviteClientTransaction(key, request, transport, address, self._clock,
                                        self.timers, self.user, self._forget_client, self.wheel)
        self._client[key] = tx
        tx.start()
        return tx

    def find_server_transaction(self, request: Request, method: str) -> ServerTransaction | None:
        """
        Find the server transaction a request refers to (a CANCEL's INVITE).

        @param request: the referring request.
        @param method: the method of the transaction looked for.
        @return: the transaction or C{None}.
        """
        try:
            return self._server.get(self.server_key(request, method))
        except HeaderError:
            return None

    def transactions(self) -> list[Any]:
        """
        @return: every live transaction, server ones first, then the
            completed ones waiting for timer J (L{CompletedTransaction}),
            then client ones (for C{show sip transactions}).
        """
        return [*self._server.values(), *self._completed.values(), *self._client.values()]

    def stop(self) -> None:
        """
        Terminate every transaction and cancel its timers (service stop).
        """
        for tx in [*self._server.values(), *self._client.values()]:
            tx.terminate()
        self._completed.clear()
        self._expiry.clear()
        if self._expiry_call is not None and self._expiry_call.active():
            self._expiry_call.cancel()
        self._expiry_call = None
        self.wheel.stop()

    #: Timer J may end completed transactions up to this much late, so
    #: that one delayed call ends a slice of them rather than each its own.
    EXPIRY_SLACK = 0.1

    def _complete(self, tx: NonInviteServerTransaction) -> None:
        """Keep a completed UDP transaction's response bytes for timer J,
        in place of the transaction."""
        if self._server.get(tx.key) is tx:
            del self._server[tx.key]
        delay = 64 * self.timers.t1
        record = CompletedTransaction(tx.key, tx._wire, tx.transport, tx.address,
                                      self._clock.seconds() + delay)
        self._completed[tx.key] = record
        self._expiry.append(record)
        if self._expiry_call is None:
            self._expiry_call = self._clock.callLater(delay, self._expire)

    def _expire(self) -> None:
        """Timer J of the completed transactions due (FIFO: one delay)."""
        self._expiry_call = None
        now = self._clock.seconds()
        queue, completed = self._expiry, self._completed
        while queue and queue[0].deadline <= now:
            record = queue.popleft()
            if completed.get(record.key) is record:
                del completed[record.key]
        if queue:
            self._expiry_call = self._clock.callLater(
                max(queue[0].deadline - now, self.EXPIRY_SLACK), self._expire)

    def _forget_server(self, tx: _Transaction) -> None:
        if self._server.get(tx.key) is tx:
            del self._server[tx.key]

    def _forget_client(self, tx: _Transaction) -> None:
        if self._client.get(tx.key) is tx:
            del self._client[tx.key]
