"""
A small SMSC for end-to-end tests (smpplib is a client only): a threaded
SMPP 3.4 server on loopback that accepts any bind, answers submit_sm with
an id, records what it was sent, and sends delivery receipts when a test
asks.  Built on C{smpp.pdu3} through L{appliance.smpp.pdus}.
"""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from smpp.pdu import operations

from appliance.smpp import pdus

BIND_IDS = (0x00000001, 0x00000002, 0x00000009)
ENQUIRE_LINK, UNBIND, DELIVER_SM_RESP = 0x00000015, 0x00000006, 0x80000005


@dataclass
class Received:
    """One submit_sm the SMSC accepted."""
    id: str
    source: str
    destination: str
    text: bytes
    session: "Session"
    coding: str = ""        # data_coding's name: SMSC_DEFAULT_ALPHABET, UCS2


class Session(threading.Thread):
    """One bound ESME connection."""

    def __init__(self, smsc: "SMSC", sock: socket.socket):
        super().__init__(daemon=True)
        self.smsc, self.sock = smsc, sock
        self.lock = threading.Lock()
        self.sequence = 1000

    def send(self, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(data)

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
        except OSError:
            return
        finally:
            self.smsc.sessions.discard(self)
            self.sock.close()

    def handle(self, frame: bytes) -> None:
        head = pdus.header(frame)
        if head.command_id in BIND_IDS:
            self.smsc.binds += 1
            self.send(pdus.bind_response(head, self.smsc.name))
        elif head.command_id == pdus.SUBMIT_SM:
            pdu = pdus.decode(frame)
            p = pdu.params
            with self.smsc.lock:
                self.smsc.counter += 1
                mid = f"{self.smsc.name}-{self.smsc.counter}"
                self.smsc.received.append(Received(
                    mid, _text(p.get("source_addr")),
                    _text(p.get("destination_addr")),
                    p.get("short_message") or b"", self,
                    _coding(p.get("data_coding"))))
            self.send(pdus.ok_response(head, mid))
        elif head.command_id == ENQUIRE_LINK:
            self.send(pdus.HEADER.pack(16, ENQUIRE_LINK | pdus.RESPONSE_BIT,
                                       0, head.sequence))
        elif head.command_id == UNBIND:
            self.send(pdus.HEADER.pack(16, UNBIND | pdus.RESPONSE_BIT, 0,
                                       head.sequence))
        elif head.command_id & pdus.RESPONSE_BIT:
            with self.smsc.lock:
                self.smsc.responses.append((head.command_id, head.status,
                                            head.sequence))
        else:
            self.send(pdus.HEADER.pack(16, pdus.GENERIC_NACK, 3,
                                       head.sequence))

    def receipt(self, received: Received, stat: str = "DELIVRD") -> None:
        """Send a deliver_sm receipt for C{received}."""
        self.sequence += 1
        now = time.strftime("%y%m%d%H%M")
        text = (f"id:{received.id} sub:001 dlvrd:001 submit date:{now} "
                f"done date:{now} stat:{stat} err:000 text:").encode()
        pdu = operations.DeliverSM(
            self.sequence, source_addr=received.destination,
            destination_addr=received.source,
            esm_class=_receipt_esm(), short_message=text)
        self.send(pdus.encode(pdu))

    def deliver(self, source: str, destination: str, text: bytes) -> int:
        """Send a vendor's message (a deliver_sm that is not a receipt);
        @return: its sequence number."""
        self.sequence += 1
        pdu = operations.DeliverSM(
            self.sequence, source_addr=source.encode(),
            destination_addr=destination.encode(), short_message=text)
        self.send(pdus.encode(pdu))
        return self.sequence


def _coding(value) -> str:
    data = getattr(value, "schemeData", None)
    return getattr(data, "name", str(data))


def _receipt_esm():
    from smpp.pdu.pdu_types import EsmClass, EsmClassMode, EsmClassType
    return EsmClass(EsmClassMode.DEFAULT, EsmClassType.SMSC_DELIVERY_RECEIPT)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "" if value is None else str(value)


class SMSC:
    """
    The server.

    @ivar received: every submit_sm accepted, in order.
    @ivar tls_failures: TLS handshakes that failed (with C{tls}).
    """

    def __init__(self, name: str, port: int = 0, tls=None):
        """
        @param tls: an C{ssl.SSLContext} (server side): speak SMPP over TLS.
        """
        self.name = name
        self.tls = tls
        self.tls_failures = 0
        self.lock = threading.Lock()
        self.received: list[Received] = []
        #: Responses the ESMEs sent us: (command_id, status, sequence).
        self.responses: list[tuple[int, int, int]] = []
        self.sessions: set[Session] = set()
        self.counter = 0
        self.binds = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except OSError:  # the client refused our certificate
                    self.tls_failures += 1
                    sock.close()
                    continue
            session = Session(self, sock)
            self.sessions.add(session)
            session.start()

    def stop(self) -> None:
        """Close the listener and every session."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.listener.close()
        except OSError:
            pass
        for session in list(self.sessions):
            try:
                session.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def receipt(self, received: Received, stat: str = "DELIVRD") -> None:
        """Send a receipt for a message over the session it came on."""
        received.session.receipt(received, stat)
