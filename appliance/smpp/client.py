# -*- test-case-name: tests.smpp.test_smpp_client -*-
"""
The ESME side of one SMPP bind: we connect to another node or a vendor
SMSC, bind, submit and take receipts.

A thin protocol on C{smpp.pdu3}'s encoder and L{appliance.smpp.pdus}'s
framing, not a subclass of C{smpp.twisted3}'s C{SMPPClientProtocol}: that
one ties windowing to its own request queue, formats its log strings
eagerly and has no place for a raw vendor TLV (our hop count), while the
pool needs the window, the response timers and the bind state as plain
attributes it can read for routing and for C{show connections}.

States: C{binding} (bind sent), C{bound}, C{unbinding}, C{closed}.  The
L{ESMEProtocol.bound} Deferred fires with the protocol once the bind is
accepted and fails with L{BindRefused} (the status) or L{BindLost}; the
pool counts such a connection as a failed attempt and backs off (longer
after a refusal).  It is not C{ClientService}'s C{prepareConnection}:
Twisted 26.10's C{ClientService} has no transition for a connection that
closes after C{prepareConnection} failed.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from smpp.pdu import operations
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from appliance.smpp import pdus
from appliance.smpp.pdus import Status
from appliance.smpp.remote import status_name

BIND_TRANSMITTER = 0x00000002
BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
ENQUIRE_LINK = 0x00000015
BIND_COMMANDS = {"transmitter": BIND_TRANSMITTER,
                 "transceiver": BIND_TRANSCEIVER}
_BIND_CLASSES = {"transmitter": operations.BindTransmitter,
                 "transceiver": operations.BindTransceiver}


class BindRefused(Exception):
    """
    The far side answered our bind with an error.

    @ivar status: the command_status.
    """

    def __init__(self, status: int):
        """@param status: the command_status of the bind response."""
        super().__init__(f"bind refused: {status_name(status)}")
        self.status = status


class BindLost(Exception):
    """The connection closed before the bind or a response came."""


class RequestTimeout(Exception):
    """No response to a request within the response timeout."""


class Credentials(NamedTuple):
    """
    How one bind identifies itself.

    @ivar system_id: our system_id at the far side.
    @ivar password: our password there.
    @ivar bind: C{transmitter} or C{transceiver}.
    """
    system_id: str
    password: str
    bind: str = "transceiver"


class Timers(NamedTuple):
    """
    Client timers, in seconds.

    @ivar bind_timeout: wait for the bind response.
    @ivar response_timeout: wait for any other response.
    @ivar enquire_link: silence before we send an enquire_link.
    """
    bind_timeout: float = 10.0
    response_timeout: float = 10.0
    enquire_link: float = 30.0


class SubmitResult(NamedTuple):
    """
    The far side's answer to one submit_sm.

    @ivar status: the command_status.
    @ivar message_id: the id it gave (empty on error).
    """
    status: int
    message_id: str


class ESMEProtocol(Protocol):
    """
    One bind towards an SMSC.

    @ivar state: C{binding}, C{bound}, C{unbinding} or C{closed}.
    @ivar bound: fires with this protocol once bound.
    @ivar window: requests allowed outstanding.
    @ivar outstanding: sequence number to (Deferred, deadline, command
        id), oldest first (every request has the same timeout, so one
        timer armed at the oldest deadline serves them all).
    @ivar on_receipt: called with the decoded deliver_sm; returns the
        deliver_sm_resp status (or a Deferred of it).
    @ivar on_slot: called whenever a window slot frees or the bind comes up.
    @ivar on_lost: called with this protocol when the connection closes.
    @ivar peer_system_id: the system_id in the far side's bind response.
    """

    log = Logger()

    def __init__(self, credentials: Credentials, clock: IReactorTime,
                 timers: Timers = Timers(), window: int = 10,
                 on_receipt: Callable[[Any], Any] | None = None,
                 on_slot: Callable[[], Any] | None = None,
                 on_lost: Callable[["ESMEProtocol"], Any] | None = None,
                 name: str = "smsc"):
        """
        @param credentials: system_id, password and bind type.
        @param clock: for the timers.
        @param timers: the timeouts.
        @param window: outstanding submit_sm allowed.
        @param on_receipt: deliver_sm handler (default: acknowledge).
        @param on_slot: window-slot notification.
        @param on_lost: connection-lost notification.
        @param name: for the log (connection name and bind number).
        """
        if credentials.bind not in BIND_COMMANDS:
            raise ValueError(f"unknown bind type {credentials.bind!r}")
        self.credentials = credentials
        self.clock = clock
        self.timers = timers
        self.window = window
        self.on_receipt = on_receipt
        self.on_slot = on_slot
        self.on_lost = on_lost
        self.name = name
        self.state = "binding"
        self.bound: defer.Deferred = defer.Deferred()
        self.outstanding: dict[int, tuple[defer.Deferred, float,
                                          int]] = {}
        #: The one response timer, armed at the oldest deadline.
        self._expiry: IDelayedCall | None = None
        self.peer_system_id = ""
        self.submits = 0
        self._buffer = b""
        self._sequence = 0
        self._idle: IDelayedCall | None = None
        self._bind_timer: IDelayedCall | None = None
        self._closing: defer.Deferred | None = None

    # -- connection ------------------------------------------------------

    def connectionMade(self) -> None:
        """Send the bind and wait for its response."""
        c = self.credentials
        seq = self._next_sequence()
        pdu = _BIND_CLASSES[c.bind](
            seq, system_id=c.system_id.encode("ascii"),
            password=c.password.encode("ascii"), system_type=b"",
            interface_version=0x34)
        self.transport.write(pdus.encode(pdu))
        self._bind_timer = self.clock.callLater(self.timers.bind_timeout,
                                                self._bind_expired)

    def _bind_expired(self) -> None:
        self._bind_timer = None
        self.log.warn("{name}: no bind response in {secs} s", name=self.name,
                      secs=self.timers.bind_timeout)
        self._fail_bind(RequestTimeout("no bind response"))
        self.transport.loseConnection()

    def _fail_bind(self, reason: Exception) -> None:
        if not self.bound.called:
            self.bound.errback(Failure(reason))

    def connectionLost(self, reason: Failure = None) -> None:
        """Fail everything outstanding; tell the owner."""
        was = self.state
        self.state = "closed"
        for timer in (self._idle, self._bind_timer, self._expiry):
            if timer is not None and timer.active():
                timer.cancel()
        self._idle = self._bind_timer = self._expiry = None
        self._fail_bind(BindLost("connection closed before the bind"))
        pending, self.outstanding = self.outstanding, {}
        for d, _, _ in pending.values():
            d.errback(Failure(BindLost("connection lost")))
        if self._closing is not None and not self._closing.called:
            self._closing.callback(None)
        if was == "bound":
            self.log.info("{name}: bind lost", name=self.name)
        if self.on_lost is not None:
            self.on_lost(self)

    # -- receiving --------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Split the stream into PDUs and handle each."""
        try:
            frames, self._buffer = pdus.split_frames(self._buffer + data)
        except pdus.FramingError as e:
            self.log.warn("{name}: {why}; closing", name=self.name,
                          why=str(e))
            self.transport.loseConnection()
            return
        self._touch()
        for frame in frames:
            if self.state == "closed":
                return
            self.pdu_received(frame)

    def pdu_received(self, frame: bytes) -> None:
        """Handle one whole PDU."""
        h = pdus.header(frame)
        if h.is_response:
            self._response(h, frame)
        elif h.command_id == ENQUIRE_LINK:
            self._write(pdus.bare_response(pdus.response_id(h.command_id),
                                           h.sequence, Status.ESME_ROK))
        elif h.command_id == DELIVER_SM:
            self._deliver_sm(h, frame)
        elif h.command_id == UNBIND:
            self._write(pdus.bare_response(pdus.response_id(h.command_id),
                                           h.sequence, Status.ESME_ROK))
            self.state = "unbinding"
            self.transport.loseConnection()
        else:
            self._write(pdus.bare_response(pdus.GENERIC_NACK, h.sequence,
                                           Status.ESME_RINVCMDID))

    def _response(self, h: pdus.Header, frame: bytes) -> None:
        if h.command_id in (BIND_TRANSMITTER | pdus.RESPONSE_BIT,
                            BIND_TRANSCEIVER | pdus.RESPONSE_BIT):
            self._bind_response(h, frame)
            return
        entry = self.outstanding.pop(h.sequence, None)
        if entry is None:
            self.log.debug("{name}: unexpected {pdu} seq {seq}",
                           name=self.name, pdu=h.name, seq=h.sequence)
            return
        d = entry[0]
        message_id = ""
        if h.status == 0 and h.command_id == SUBMIT_SM | pdus.RESPONSE_BIT:
            try:
                message_id = pdus.fast_submit_sm_resp_id(frame)
                if message_id is None:
                    raw = pdus.decode(frame).params.get("message_id") or b""
                    message_id = raw.decode("latin-1") \
                        if isinstance(raw, bytes) else str(raw)
            except pdus.PDUError as e:
                self.log.warn("{name}: bad submit_sm_resp: {why}",
                              name=self.name, why=str(e))
        d.callback(SubmitResult(h.status, message_id))
        self._slot()

    def _bind_response(self, h: pdus.Header, frame: bytes) -> None:
        if self._bind_timer is not None and self._bind_timer.active():
            self._bind_timer.cancel()
        self._bind_timer = None
        if self.state != "binding":
            return
        if h.status != 0:
            self.log.warn("{name}: bind refused with {status}",
                          name=self.name, status=status_name(h.status))
            self._fail_bind(BindRefused(h.status))
            self.transport.loseConnection()
            return
        try:
            raw = pdus.decode(frame).params.get("system_id") or b""
            self.peer_system_id = raw.decode("latin-1") \
                if isinstance(raw, bytes) else str(raw)
        except pdus.PDUError:
            pass
        self.state = "bound"
        self.log.info("{name}: bound as {bind} to {peer}", name=self.name,
                      bind=self.credentials.bind, peer=self.peer_system_id)
        self.bound.callback(self)
        self._slot()

    def _deliver_sm(self, h: pdus.Header, frame: bytes) -> None:
        resp = pdus.response_id(h.command_id)
        try:
            pdu = pdus.decode(frame)
        except pdus.PDUError as e:
            self.log.warn("{name}: bad deliver_sm: {why}", name=self.name,
                          why=str(e))
            self._write(pdus.bare_response(resp, h.sequence, e.status))
            return
        if self.on_receipt is None:
            d = defer.succeed(0)
        else:
            d = defer.maybeDeferred(self.on_receipt, pdu)

        def failed(f: Failure) -> int:
            self.log.failure("{name}: deliver_sm handler failed", f,
                             name=self.name)
            return pdus.status_value(Status.ESME_RSYSERR)

        def answer(status: int) -> None:
            if self.state == "closed":
                return
            if status == 0:   # body: an empty message_id
                self._write(pdus.HEADER.pack(pdus.HEADER.size + 1, resp, 0,
                                             h.sequence) + b"\0")
            else:
                self._write(pdus.HEADER.pack(pdus.HEADER.size, resp, status,
                                             h.sequence))
        d.addErrback(failed).addCallback(answer)

    # -- sending ----------------------------------------------------------

    @property
    def free(self) -> int:
        """Window slots free now (0 unless bound)."""
        if self.state != "bound":
            return 0
        return max(0, self.window - len(self.outstanding))

    def submit(self, build: Callable[[int], bytes]) -> defer.Deferred:
        """
        Send one submit_sm.

        @param build: makes the PDU from its sequence number.
        @return: a Deferred firing with a L{SubmitResult}, or failing with
            L{BindLost} or L{RequestTimeout}.
        """
        if self.state != "bound":
            return defer.fail(BindLost(f"{self.name} is not bound"))
        self.submits += 1
        return self._request(SUBMIT_SM, build)

    def _request(self, command_id: int, build: Callable[[int], bytes]
                 ) -> defer.Deferred:
        seq = self._next_sequence()
        d: defer.Deferred = defer.Deferred()
        timeout = self.timers.response_timeout
        self.outstanding[seq] = (d, self.clock.seconds() + timeout,
                                 command_id)
        if self._expiry is None:
            self._expiry = self.clock.callLater(timeout, self._expire)
        self._write(build(seq))
        return d

    def _expire(self) -> None:
        """
        Fail the requests whose deadline passed (the oldest first), then
        arm the timer at the next oldest's deadline.  One timer per bind
        instead of a delayed call per submit_sm: the responses of a busy
        bind come in milliseconds, and each per-request timer cost its
        heap insertion and cancellation.
        """
        self._expiry = None
        now = self.clock.seconds()
        expired = []
        for seq, (_, deadline, _) in self.outstanding.items():
            if deadline > now:
                self._expiry = self.clock.callLater(deadline - now,
                                                    self._expire)
                break
            expired.append(seq)
        for seq in expired:
            self._timed_out(seq)

    def _timed_out(self, seq: int) -> None:
        entry = self.outstanding.pop(seq, None)
        if entry is None:
            return
        d, _, command_id = entry
        self.log.warn("{name}: no response to {seq} in {secs} s",
                      name=self.name, seq=seq,
                      secs=self.timers.response_timeout)
        d.errback(Failure(RequestTimeout(f"no response in "
                                         f"{self.timers.response_timeout} s")))
        if command_id == ENQUIRE_LINK:
            self.transport.loseConnection()
        else:
            self._slot()

    def unbind(self) -> defer.Deferred:
        """
        Unbind politely: send unbind, wait for its response (or the
        response timeout), close.

        @return: a Deferred firing once the connection is closed.
        """
        if self._closing is None:
            self._closing = defer.Deferred()
        if self.state == "closed":
            self._closing.callback(None)
            return self._closing
        if self.state == "bound":
            self.state = "unbinding"
            d = self._request(UNBIND, lambda seq: pdus.request(UNBIND, seq))
            d.addBoth(lambda _: self.transport.loseConnection())
        else:
            self.transport.loseConnection()
        return self._closing

    def _enquire(self) -> None:
        self._idle = None
        if self.state != "bound":
            return
        d = self._request(ENQUIRE_LINK,
                          lambda seq: pdus.request(ENQUIRE_LINK, seq))
        # Its timeout is logged and closes the bind (_timed_out); a lost
        # connection fails it too: nothing is left to do here.
        d.addErrback(lambda f: None)
        self._touch()

    def _touch(self) -> None:
        if self.state in ("closed",):
            return
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.timers.enquire_link)
        else:
            self._idle = self.clock.callLater(self.timers.enquire_link,
                                              self._enquire)

    def _slot(self) -> None:
        if self.on_slot is not None:
            self.on_slot()

    def _next_sequence(self) -> int:
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        return self._sequence

    def _write(self, data: bytes) -> None:
        if self.state != "closed":
            self.transport.write(data)


class ESMEFactory(Factory):
    """
    Builds the protocol of one bind; C{ClientService} calls it on every
    (re)connection.
    """

    noisy = False

    def __init__(self, make: Callable[[], ESMEProtocol]):
        """@param make: builds a fresh protocol."""
        self.make = make

    def buildProtocol(self, addr: Any) -> ESMEProtocol:
        """@return: a new L{ESMEProtocol}."""
        protocol = self.make()
        protocol.factory = self
        return protocol
