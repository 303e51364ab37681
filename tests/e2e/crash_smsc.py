"""
A vendor's SMSC that behaves as real ones do across a client's crash,
for the crash campaign: receipts and mobile-originated messages are
owed until the node answers them.

 - A submit_sm to a destination ending in C{reject} is refused with
   ESME_RINVDSTADR (a permanent error: the message fails).
 - Every other submit_sm is answered with a new id (C{V<n>}) and recorded;
   its DELIVRD receipt is owed from then on, sent over any bound
   receiver/transceiver session, and sent again (after a timeout, a
   closed session, an error status, or the node's next bind) until a
   deliver_sm_resp with status 0 comes back.
 - Mobile-originated messages (deliver_sm that are not receipts) queued
   with L{CrashSMSC.mo} are sent once each; a deliver_sm_resp OK makes
   them acknowledged (the node must then have them), anything else (no
   answer before a crash, an error) drops them.

Framing and PDUs with C{smpp.pdu3} through L{appliance.smpp.pdus}, as
L{tests.e2e.smsc} does.  Threads: one acceptor, one reader per session,
one sender that pushes owed PDUs every few milliseconds.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from smpp.pdu import operations
from smpp.pdu.pdu_types import EsmClass, EsmClassMode, EsmClassType

from appliance.smpp import pdus
from tests.e2e.smsc import _text

BIND_IDS = (0x00000001, 0x00000002, 0x00000009)
ENQUIRE_LINK, UNBIND = 0x00000015, 0x00000006
DELIVER_SM_RESP = 0x80000005
#: The permanent error given to destinations ending in L{CrashSMSC.reject}.
ESME_RINVDSTADR = 0x0000000B
#: Seconds a sent deliver_sm may go unanswered before it is sent again.
RESEND_AFTER = 5.0


@dataclass
class Submitted:
    """One submit_sm accepted: our id, the addresses and text."""
    id: str
    source: str
    destination: str
    text: str
    at: float
    #: when the session it came over was accepted (which node process
    #: sent it: a process's connections are all opened after its start).
    session_at: float = 0.0


@dataclass
class Owed:
    """A deliver_sm we owe: a receipt (C{receipt_for} set) or an MO."""
    key: str
    source: str
    destination: str
    text: bytes
    receipt_for: str | None
    due: float
    sent_at: float | None = None
    session: "Session | None" = None
    sequence: int = 0


class Session(threading.Thread):
    """One bound ESME connection (the node's outbound bind)."""

    def __init__(self, smsc: "CrashSMSC", sock: socket.socket):
        super().__init__(daemon=True)
        self.smsc, self.sock = smsc, sock
        self.lock = threading.Lock()
        self.bound = False
        self.alive = True
        self.accepted = time.monotonic()

    def send(self, data: bytes) -> bool:
        try:
            with self.lock:
                self.sock.sendall(data)
            return True
        except OSError:
            self.alive = False
            return False

    def run(self) -> None:
        buffer = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
                frames, buffer = pdus.split_frames(buffer + data)
                for frame in frames:
                    self.handle(frame)
        except (OSError, ValueError):
            return
        finally:
            self.alive = False
            self.smsc.session_closed(self)
            try:
                self.sock.close()
            except OSError:
                pass

    def handle(self, frame: bytes) -> None:
        head = pdus.header(frame)
        if head.command_id in BIND_IDS:
            self.bound = True
            self.send(pdus.bind_response(head, self.smsc.name))
            self.smsc.bound(self)
        elif head.command_id == pdus.SUBMIT_SM:
            p = pdus.decode(frame).params
            destination = _text(p.get("destination_addr"))
            if self.smsc.reject and destination.endswith(self.smsc.reject):
                self.smsc.rejected += 1
                self.send(pdus.HEADER.pack(16, pdus.SUBMIT_SM |
                                           pdus.RESPONSE_BIT,
                                           ESME_RINVDSTADR, head.sequence))
                return
            mid = self.smsc.submitted(_text(p.get("source_addr")),
                                      destination,
                                      p.get("short_message") or b"",
                                      self.accepted)
            self.send(pdus.ok_response(head, mid))
        elif head.command_id == ENQUIRE_LINK:
            self.send(pdus.HEADER.pack(16, ENQUIRE_LINK | pdus.RESPONSE_BIT,
                                       0, head.sequence))
        elif head.command_id == UNBIND:
            self.send(pdus.HEADER.pack(16, UNBIND | pdus.RESPONSE_BIT, 0,
                                       head.sequence))
        elif head.command_id == DELIVER_SM_RESP:
            self.smsc.answered(self, head.sequence, head.status)
        elif head.command_id & pdus.RESPONSE_BIT:
            pass
        else:
            self.send(pdus.HEADER.pack(16, pdus.GENERIC_NACK, 3,
                                       head.sequence))


class CrashSMSC:
    """
    The server.

    @ivar received: every submit_sm accepted, in order.
    @ivar receipts_acked: our id to how many times the node answered its
        receipt with status 0.
    @ivar mo_acked: MO key to the time the node answered it with 0.
    @ivar mo_refused: MO key to the status it was refused with.
    """

    def __init__(self, name: str = "vendor", receipt_delay: float = 0.05,
                 reject: str = "99"):
        """
        @param receipt_delay: seconds after a submit_sm before its
            receipt is first sent.
        @param reject: submit_sm to destinations ending in these digits
            get ESME_RINVDSTADR (the message fails with that reason).
        """
        self.name = name
        self.reject = reject
        self.rejected = 0
        self.receipt_delay = receipt_delay
        self.lock = threading.Lock()
        self.received: list[Submitted] = []
        self.owed: dict[str, Owed] = {}
        self.receipts_acked: dict[str, int] = {}
        self.mo_acked: dict[str, float] = {}
        self.mo_refused: dict[str, int] = {}
        self.sessions: list[Session] = []
        self._sequence = 0
        self._by_sequence: dict[tuple[int, int], Owed] = {}
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._stopped = threading.Event()
        self._wake = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._sender, daemon=True).start()

    # -- sessions ----------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            session = Session(self, sock)
            with self.lock:
                self.sessions.append(session)
            session.start()

    def bound(self, session: Session) -> None:
        self._wake.set()

    def session_closed(self, session: Session) -> None:
        with self.lock:
            if session in self.sessions:
                self.sessions.remove(session)
            for owed in list(self.owed.values()):
                if owed.session is session:
                    owed.session, owed.sent_at = None, None
                    if owed.receipt_for is None:
                        self._drop_mo(owed, -1)
        self._wake.set()

    # -- what the node sends -----------------------------------------------

    def submitted(self, source: str, destination: str, text: bytes,
                  session_at: float = 0.0) -> str:
        """Record a submit_sm; owe its receipt; @return: our id."""
        with self.lock:
            mid = f"V{len(self.received) + 1}"
            now = time.monotonic()
            decoded = text.decode("latin-1")
            self.received.append(Submitted(mid, source, destination, decoded,
                                           now, session_at))
            receipt = (f"id:{mid} sub:001 dlvrd:001 submit date:"
                       f"{time.strftime('%y%m%d%H%M')} done date:"
                       f"{time.strftime('%y%m%d%H%M')} stat:DELIVRD err:000 "
                       f"text:").encode()
            self.owed[mid] = Owed(mid, destination, source, receipt, mid,
                                  now + self.receipt_delay)
        self._wake.set()
        return mid

    def answered(self, session: Session, sequence: int, status: int) -> None:
        """A deliver_sm_resp."""
        with self.lock:
            owed = self._by_sequence.pop((id(session), sequence), None)
            if owed is None or self.owed.get(owed.key) is not owed:
                return
            if status == 0:
                del self.owed[owed.key]
                if owed.receipt_for is not None:
                    self.receipts_acked[owed.key] = \
                        self.receipts_acked.get(owed.key, 0) + 1
                else:
                    self.mo_acked[owed.key] = time.monotonic()
            elif owed.receipt_for is None:
                self._drop_mo(owed, status)
            else:
                owed.session, owed.sent_at = None, None
                owed.due = time.monotonic() + 0.5

    def _drop_mo(self, owed: Owed, status: int) -> None:
        self.owed.pop(owed.key, None)
        self.mo_refused[owed.key] = status

    # -- what we send ------------------------------------------------------

    def mo(self, key: str, source: str, destination: str, text: str) -> None:
        """Queue one mobile-originated message to the node."""
        with self.lock:
            self.owed[key] = Owed(key, source, destination,
                                  text.encode("latin-1"), None,
                                  time.monotonic())
        self._wake.set()

    def _sender(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(0.02)
            self._wake.clear()
            now = time.monotonic()
            with self.lock:
                live = [s for s in self.sessions if s.bound and s.alive]
                if not live:
                    continue
                work = []
                for owed in self.owed.values():
                    if owed.due > now:
                        continue
                    if owed.sent_at is not None:
                        if now - owed.sent_at < RESEND_AFTER:
                            continue
                        if owed.receipt_for is None:
                            continue        # an MO is sent once
                    self._sequence += 1
                    session = live[self._sequence % len(live)]
                    owed.session, owed.sent_at = session, now
                    owed.sequence = self._sequence
                    self._by_sequence[(id(session), self._sequence)] = owed
                    work.append((session, owed, self._pdu(owed)))
                    if len(work) >= 200:
                        break
            for session, owed, data in work:
                session.send(data)
            with self.lock:
                stale = [o for o in self.owed.values()
                         if o.receipt_for is None and o.sent_at is not None
                         and now - o.sent_at > 30]
                for o in stale:
                    self._drop_mo(o, -2)

    def _pdu(self, owed: Owed) -> bytes:
        if owed.receipt_for is not None:
            esm = EsmClass(EsmClassMode.DEFAULT,
                           EsmClassType.SMSC_DELIVERY_RECEIPT)
            pdu = operations.DeliverSM(
                owed.sequence, source_addr=owed.source.encode(),
                destination_addr=owed.destination.encode(), esm_class=esm,
                short_message=owed.text)
        else:
            pdu = operations.DeliverSM(
                owed.sequence, source_addr=owed.source.encode(),
                destination_addr=owed.destination.encode(),
                short_message=owed.text)
        return pdus.encode(pdu)

    def receipts_owed(self) -> int:
        """Receipts not yet answered with 0."""
        with self.lock:
            return sum(1 for o in self.owed.values()
                       if o.receipt_for is not None)

    def stop(self) -> None:
        """Close the listener and every session."""
        self._stopped.set()
        for sock in [self.listener] + [s.sock for s in list(self.sessions)]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
