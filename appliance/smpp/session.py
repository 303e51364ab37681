# -*- test-case-name: tests.smpp.test_smpp_session -*-
"""
One carrier's SMPP 3.4 session: framing, the session state machine and
its timers.  Decisions (who may bind, what becomes of a submit) belong to
the L{appliance.smpp.server.SMPPServer} controller.

States: C{open} (connected, not bound) -> C{binding} (the password is
being checked, off the reactor thread) -> C{bound} (as transmitter,
receiver or transceiver) -> C{unbinding} (the peer sent unbind; waiting
for our outstanding responses) -> C{closed}.

  - A PDU with an unknown command id gets C{generic_nack ESME_RINVCMDID};
    a request that cannot be decoded gets its own response with the
    decoder's status; a request not allowed in the state gets
    C{ESME_RINVBNDSTS}.  The session survives all of these.
  - Only a command_length that makes the stream unreadable (below 16 or
    beyond L{pdus.MAX_PDU}) closes it, after a C{generic_nack
    ESME_RINVCMDLEN}.
  - Windowing: up to C{window} requests may be outstanding at once;
    beyond it a submit gets C{ESME_RTHROTTLED}.  Before a submit is
    decoded the controller may refuse it (its carrier's throughput, the
    node's admission, the queue limit: L{SMPPServer.admit}).
  - Fairness and back-pressure: at most L{PER_TURN} PDUs are handled per
    read; the rest wait for the next reactor turn with the connection's
    reading paused, so one flooding bind cannot hold the reactor.  The
    session is its transport's producer: while the peer does not read
    what we write (the transport's buffer is full) we stop reading from
    it too, so a peer that never reads costs a bounded buffer and no
    more work; its unanswered enquire_link then closes it.
  - Timers (on the injected clock): the bind timeout closes a session
    still unbound; the idle timeout closes one that sent nothing; after
    C{enquire_link_interval} of silence we send C{enquire_link}, and a
    request of ours unanswered within C{response_timeout} fails (for an
    enquire_link: the session closes).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet import defer
from collections import deque

from twisted.internet.interfaces import (IDelayedCall, IPushProducer,
                                         IReactorTime)
from twisted.internet.protocol import Protocol
from zope.interface import implementer
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance.smpp import pdus
from appliance.smpp.pdus import Status
from appliance.smpp.remote import read_hops

BIND_TYPES = {0x00000001: "receiver", 0x00000002: "transmitter",
              0x00000009: "transceiver"}
SUBMITS = {0x00000004, 0x00000103, pdus.SUBMIT_MULTI}
ENQUIRE_LINK, UNBIND, DELIVER_SM = 0x00000015, 0x00000006, 0x00000005
#: Requests we do not serve, answered with their own failure status.
_REFUSED = {0x00000003: Status.ESME_RQUERYFAIL,
            0x00000008: Status.ESME_RCANCELFAIL,
            0x00000007: Status.ESME_RREPLACEFAIL}


#: PDUs handled per read before the other connections get the reactor
#: (a 64 KiB read holds up to about 900 submit_sm: a flood is read and
#: refused at once, cheaply, rather than left to wait in the socket).
PER_TURN = 1000


class ResponseTimeout(Exception):
    """The peer did not answer our request in time."""


class SessionClosed(Exception):
    """The session closed before the peer answered our request."""


@implementer(IPushProducer)
class SMPPSession(Protocol):
    """
    The protocol of one TCP/TLS connection from a carrier.

    @ivar state: C{open}, C{bound}, C{unbinding} or C{closed}.
    @ivar bind_type: C{transmitter}, C{receiver} or C{transceiver} once
        bound.
    @ivar carrier: the controller's bind record once bound.
    @ivar peer: the peer's IP address.
    @ivar since: clock time of the bind.
    @ivar in_flight: requests of the peer being worked on.
    @ivar submits: submit PDUs accepted for processing (for the rate).
    """

    log = Logger()

    def __init__(self, server: Any, clock: IReactorTime, window: int = 100,
                 bind_timeout: float = 30, idle_timeout: float = 300,
                 enquire_link_interval: float = 30,
                 response_timeout: float = 30):
        """
        @param server: the L{appliance.smpp.server.SMPPServer}.
        @param clock: for the timers.
        @param window: outstanding requests allowed per direction.
        """
        self.server = server
        self.clock = clock
        self.window = window
        self.bind_timeout = bind_timeout
        self.idle_timeout = idle_timeout
        self.enquire_link_interval = enquire_link_interval
        self.response_timeout = response_timeout
        self.state = "open"
        self.bind_type: str | None = None
        self.carrier: Any = None
        self.peer = ""
        self.since = 0.0
        self.in_flight = 0
        self.submits = 0
        self._buffer = b""
        self._sequence = 0
        self._pending: dict[int, tuple[defer.Deferred, IDelayedCall]] = {}
        self._timers: dict[str, IDelayedCall] = {}
        self._unbind_seq: int | None = None
        #: Whole PDUs read and not yet handled (beyond L{PER_TURN}).
        self._frames: deque = deque()
        #: Why reading from the peer is paused (C{turn}, C{writes}).
        self._paused: set[str] = set()
        self._turn: IDelayedCall | None = None

    # -- connection ----------------------------------------------------

    def connectionMade(self) -> None:
        """Note the peer and start the bind and idle timers."""
        peer = self.transport.getPeer()
        self.peer = getattr(peer, "host", str(peer))
        self._timer("bind", self.bind_timeout, self._bind_expired)
        self._timer("idle", self.idle_timeout, self._idle_expired)
        self.transport.registerProducer(self, True)
        self.server.connected(self)

    def connectionLost(self, reason: Failure = None) -> None:
        """Stop the timers, fail our outstanding requests, leave the
        server's bind lists."""
        was_bound = self.state in ("bound", "unbinding")
        self.state = "closed"
        self._frames.clear()
        if self._turn is not None and self._turn.active():
            self._turn.cancel()
        self._turn = None
        for call in self._timers.values():
            if call.active():
                call.cancel()
        self._timers.clear()
        pending, self._pending = self._pending, {}
        for d, call in pending.values():
            if call.active():
                call.cancel()
            d.errback(SessionClosed("session closed"))
        self.server.disconnected(self, was_bound)

    def close(self, why: str) -> None:
        """Close the connection (once what is written is sent)."""
        if self.state != "closed" and self.transport is not None:
            self.log.info("closing SMPP session from {peer}: {why}",
                          peer=self.peer, why=why)
            self.transport.loseConnection()

    def _timer(self, name: str, delay: float, fn) -> None:
        old = self._timers.get(name)
        if old is not None and old.active():
            old.reset(delay)
        else:
            self._timers[name] = self.clock.callLater(delay, fn)

    def _cancel(self, name: str) -> None:
        call = self._timers.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _bind_expired(self) -> None:
        if self.state in ("open", "binding"):
            self.close("no bind within the bind timeout")

    def _idle_expired(self) -> None:
        self.close("idle timeout")

    def _enquire(self) -> None:
        if self.state != "bound":
            return
        d = self.send_request(ENQUIRE_LINK, lambda seq: pdus.request(
            ENQUIRE_LINK, seq))
        d.addErrback(lambda f: self.close("enquire_link unanswered"))

    # -- receiving -----------------------------------------------------

    # -- back-pressure (IPushProducer: the transport calls these) ------

    def pauseProducing(self) -> None:
        """The peer does not read what we write: stop reading it."""
        self._pause("writes")

    def resumeProducing(self) -> None:
        """What we wrote drained: read again."""
        self._resume("writes")

    def stopProducing(self) -> None:
        """The connection goes away (nothing to do: see connectionLost)."""

    def _pause(self, why: str) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pauseProducing()
        self._paused.add(why)

    def _resume(self, why: str) -> None:
        if why not in self._paused:
            return
        self._paused.discard(why)
        if why == "writes" and self._frames:
            self._next_turn()
        if not self._paused and self.transport is not None \
                and self.state != "closed":
            self.transport.resumeProducing()

    def _next_turn(self) -> None:
        self._pause("turn")
        if self._turn is None or not self._turn.active():
            self._turn = self.clock.callLater(0, self._handle_frames)

    # -- receiving -----------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Split the stream into PDUs and handle them, L{PER_TURN} at a
        time."""
        self._buffer += data
        try:
            frames, self._buffer = pdus.split_frames(self._buffer)
        except pdus.FramingError as e:
            self.log.warn("SMPP framing error from {peer}: {error}",
                          peer=self.peer, error=str(e))
            seq = 0
            if len(self._buffer) >= 16:
                seq = pdus.header(self._buffer).sequence
            self._write(pdus.bare_response(pdus.GENERIC_NACK, seq,
                                           Status.ESME_RINVCMDLEN))
            self._buffer = b""
            self.close("unreadable stream")
            self.state = "closed"
            return
        self._frames.extend(frames)
        if self._turn is None or not self._turn.active():
            self._handle_frames()

    def _handle_frames(self) -> None:
        """Handle up to L{PER_TURN} PDUs; leave the rest for the next
        turn (reading paused meanwhile)."""
        self._turn = None
        frames = self._frames
        n = 0
        while frames and n < PER_TURN:
            if self.state == "closed":
                frames.clear()
                return
            if "writes" in self._paused:
                return
            frame = frames.popleft()
            n += 1
            try:
                self.pdu_received(frame)
            except Exception:
                # Broad: a bug must not take the session down with the
                # PDU; logged with its traceback, answered ESME_RSYSERR.
                self.log.failure("handling a PDU from {peer} failed",
                                 peer=self.peer)
                h = pdus.header(frame)
                if not h.is_response:
                    self._write(pdus.bare_response(
                        pdus.response_id(h.command_id), h.sequence,
                        Status.ESME_RSYSERR))
        if frames and self.state != "closed":
            if "writes" not in self._paused:
                self._next_turn()
        else:
            self._resume("turn")

    def pdu_received(self, frame: bytes) -> None:
        """Handle one whole PDU."""
        self._timer("idle", self.idle_timeout, self._idle_expired)
        if self.state == "bound":
            self._timer("enquire", self.enquire_link_interval, self._enquire)
        h = pdus.header(frame)
        if not h.known:
            self.nack(h.sequence, Status.ESME_RINVCMDID,
                      f"unknown command id 0x{h.command_id:08x}")
            return
        if h.is_response:
            self._response(h, frame)
            return
        if h.command_id in (ENQUIRE_LINK, UNBIND) and h.length != 16:
            self.nack(h.sequence, Status.ESME_RINVCMDLEN,
                      f"{h.name} with a body")
            return
        if h.command_id == ENQUIRE_LINK:
            self._write(pdus.bare_response(pdus.response_id(ENQUIRE_LINK),
                                           h.sequence, Status.ESME_ROK))
        elif h.command_id in BIND_TYPES:
            self._bind(h, frame)
        elif h.command_id == UNBIND:
            self._unbind(h)
        elif h.command_id in SUBMITS:
            self._submit(h, frame)
        elif h.command_id in _REFUSED:
            self.reply_error(h, _REFUSED[h.command_id], "not supported")
        else:
            # deliver_sm, outbind, alert_notification... from an ESME.
            self.nack(h.sequence, Status.ESME_RINVCMDID,
                      f"{h.name} is not served by this SMSC")

    def nack(self, sequence: int, status, why: str) -> None:
        """Send a generic_nack and log why."""
        self.log.info("generic_nack {status} to {peer}: {why}",
                      status=status.name, peer=self.peer, why=why)
        self._write(pdus.bare_response(pdus.GENERIC_NACK, sequence, status))

    def reply_error(self, h: pdus.Header, status, why: str) -> None:
        """Answer a request with its response carrying an error status."""
        self.log.debug("{command} from {peer} refused with {status}: {why}",
                       command=h.name, peer=self.peer, status=status.name,
                       why=why)
        self._write(pdus.bare_response(pdus.response_id(h.command_id),
                                       h.sequence, status))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and self.state != "closed":
            self.transport.write(data)

    # -- bind and unbind -----------------------------------------------

    def _bind(self, h: pdus.Header, frame: bytes) -> None:
        if self.state != "open":
            self.reply_error(h, Status.ESME_RALYBND, "already bound or "
                             "binding")
            return
        try:
            pdu = pdus.decode(frame)
        except pdus.PDUError as e:
            self.reply_error(h, e.status, str(e))
            self.close("malformed bind")
            return
        bind_type = BIND_TYPES[h.command_id]
        system_id = (pdu.params.get("system_id") or b"").decode("latin-1")
        password = (pdu.params.get("password") or b"").decode("latin-1")
        # No other request is served until the check has answered.
        self.state = "binding"
        d = self.server.authenticate(self, bind_type, system_id, password)
        d.addCallback(self._bind_checked, h, bind_type, system_id)
        d.addErrback(self._bind_error, h)

    def _bind_error(self, failure: Failure, h: pdus.Header) -> None:
        self.log.failure("SMPP bind from {peer} could not be checked",
                         failure, peer=self.peer)
        if self.state == "binding":
            self.state = "open"
            self.reply_error(h, Status.ESME_RSYSERR, "bind check failed")
            self.close("bind check failed")

    def _bind_checked(self, result: tuple, h: pdus.Header, bind_type: str,
                      system_id: str) -> None:
        if self.state != "binding":     # the connection was lost meanwhile
            return
        self.state = "open"
        status, record = result
        if status != Status.ESME_ROK:
            self.log.info("bind {type} of {system_id!r} from {peer} "
                          "refused: {status}", type=bind_type,
                          system_id=system_id, peer=self.peer,
                          status=status.name)
            self.reply_error(h, status, "bind refused")
            self.close("bind refused")
            return
        self.state = "bound"
        self.bind_type = bind_type
        self.carrier = record
        self.since = self.clock.seconds()
        self._cancel("bind")
        self._write(pdus.bind_response(h, self.server.system_id))
        self._timer("enquire", self.enquire_link_interval, self._enquire)
        self.log.info("{carrier} bound as {type} from {peer}",
                      carrier=record.name, type=bind_type, peer=self.peer)
        self.server.bound(self)

    def _unbind(self, h: pdus.Header) -> None:
        if self.state != "bound":
            self.reply_error(h, Status.ESME_RINVBNDSTS, "unbind while "
                             f"{self.state}")
            return
        self.state = "unbinding"
        self._unbind_seq = h.sequence
        self.server.unbinding(self)
        self._maybe_finish_unbind()

    def _maybe_finish_unbind(self) -> None:
        if self.state == "unbinding" and self.in_flight == 0:
            self._write(pdus.bare_response(pdus.response_id(UNBIND),
                                           self._unbind_seq, Status.ESME_ROK))
            self.close("unbound")

    # -- submits -------------------------------------------------------

    def _submit(self, h: pdus.Header, frame: bytes) -> None:
        if self.state != "bound" or self.bind_type == "receiver":
            self.reply_error(h, Status.ESME_RINVBNDSTS,
                             f"{h.name} while {self.state} "
                             f"{self.bind_type or ''}".rstrip())
            return
        if self.in_flight >= self.window:
            self.server.refuse(self, "window")
            self.reply_error(h, Status.ESME_RTHROTTLED, "window full")
            return
        refusal = self.server.admit(self)
        if refusal is not None:
            self.reply_error(h, refusal, "not admitted")
            return
        try:
            if h.command_id == pdus.SUBMIT_MULTI:
                submit = pdus.decode_submit_multi(frame)
            elif (submit := pdus.fast_submit_sm(frame)) is None:
                submit = pdus.submit_fields(pdus.decode(frame))
                if h.command_id == pdus.SUBMIT_SM:
                    # smpp.pdu3 drops vendor TLVs: read the hop count raw.
                    hops = read_hops(frame)
                    if hops:
                        submit = dataclasses.replace(submit, hops=hops)
        except pdus.PDUError as e:
            self.server.count(self, "rejected")
            self.reply_error(h, e.status, str(e))
            return
        self.in_flight += 1
        self.server.took(self)
        self.submits += 1
        try:
            result = self.server.submit(self, h, submit)
        except Exception:
            # Broad: as a failed Deferred, a bug is logged with its
            # traceback and answered ESME_RSYSERR; the bind goes on.
            result = self._submit_failed(Failure(), h)
        if isinstance(result, defer.Deferred):
            result.addErrback(self._submit_failed, h)
            result.addCallback(self._answer)
        else:
            self._answer(result)

    def _submit_failed(self, failure: Failure, h: pdus.Header) -> bytes:
        self.log.failure("submit from {peer} failed", failure,
                         peer=self.peer)
        return pdus.bare_response(pdus.response_id(h.command_id),
                                  h.sequence, Status.ESME_RSYSERR)

    def _answer(self, response: bytes) -> None:
        self.in_flight -= 1
        self.server.answered(self)
        self._write(response)
        self._maybe_finish_unbind()

    # -- our requests ---------------------------------------------------

    @property
    def outstanding(self) -> int:
        """Our requests awaiting the peer's response."""
        return len(self._pending)

    def can_deliver(self) -> bool:
        """Whether a deliver_sm may be sent now (bound to receive, window
        not full)."""
        return (self.state == "bound"
                and self.bind_type in ("receiver", "transceiver")
                and len(self._pending) < self.window)

    def send_request(self, command_id: int, build) -> defer.Deferred:
        """
        Send a request of ours.

        @param build: C{build(sequence) -> bytes}.
        @return: a Deferred firing with the response's status value (0 is
            OK), or failing with L{ResponseTimeout} or L{SessionClosed}.
        """
        if self.state == "closed":
            return defer.fail(SessionClosed("session closed"))
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        seq = self._sequence
        d: defer.Deferred = defer.Deferred()
        call = self.clock.callLater(self.response_timeout, self._timed_out,
                                    seq)
        self._pending[seq] = (d, call)
        self._write(build(seq))
        return d

    def _timed_out(self, seq: int) -> None:
        entry = self._pending.pop(seq, None)
        if entry is not None:
            entry[0].errback(ResponseTimeout(f"no response to {seq}"))

    def _response(self, h: pdus.Header, frame: bytes) -> None:
        entry = self._pending.pop(h.sequence, None)
        if entry is None:
            self.log.debug("unexpected {command} {seq} from {peer}",
                           command=h.name, seq=h.sequence, peer=self.peer)
            return
        d, call = entry
        if call.active():
            call.cancel()
        d.callback(h.status)
