# -*- test-case-name: tests.smpp.test_smpp_receipts -*-
"""
Sending delivery receipts to carriers, durably.

A message's receipt is written to C{root["smpp"].receipts} inside the very
transaction that makes the message final (the courier is the messaging
core's L{IStateWriter}), so a crash keeps both or neither; other receipts
(a concatenation that failed) through a batched commit of their own.
Once committed it is sent as a C{deliver_sm} to a receiver or transceiver
bind of its carrier, round robin.  It leaves the database only once the
carrier answered C{deliver_sm_resp} with status 0.  An error status, a
response timeout or a closed session puts it back in line: it is tried
again at the next retry tick (every C{retry_interval} seconds) or when
the carrier binds again.  While the carrier has no such bind the
receipts simply wait on disk.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterable

from twisted.internet import defer, task
from twisted.logger import Logger

from zope.interface import implementer

from appliance.messaging.interfaces import IStateWriter
from appliance.smpp import receipts as R
from appliance.smpp.session import DELIVER_SM
from appliance.smpp.state import state


@implementer(IStateWriter)
class ReceiptCourier:
    """
    The pending receipts of every carrier and their sending.

    @ivar pending: carrier name to an ordered C{key -> Receipt}.
    @ivar sending: keys of receipts sent and not yet answered.
    @ivar sent: receipts acknowledged, by carrier.
    """

    log = Logger()

    def __init__(self, storage: Any, clock: Any,
                 receivers: Callable[[str], list], retry_interval: float):
        """
        @param storage: the L{IStorage}.
        @param clock: for the retry tick.
        @param receivers: C{receivers(carrier)} gives its sessions able to
            receive, in round-robin order (the callee rotates).
        @param retry_interval: seconds between retries of failed sends.
        """
        self.storage = storage
        self.clock = clock
        self.receivers = receivers
        self.retry_interval = retry_interval
        self.pending: dict[str, OrderedDict] = {}
        self.sending: set[tuple] = set()
        self.sent: dict[str, int] = {}
        self._loop: task.LoopingCall | None = None

    def load(self, smpp: Any) -> int:
        """Read the pending receipts from the L{SMPPState}; @return: count."""
        self.pending.clear()
        for key, record in smpp.receipts.items():
            self.pending.setdefault(key[0], OrderedDict())[key] = \
                R.Receipt(*record)
        return sum(len(p) for p in self.pending.values())

    def start(self) -> None:
        """Start the retry tick."""
        self._loop = task.LoopingCall(self.flush_all)
        self._loop.clock = self.clock
        self._loop.start(self.retry_interval, now=False)

    def stop(self) -> None:
        """Stop the retry tick."""
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def count(self) -> int:
        """@return: receipts waiting (including those being sent)."""
        return sum(len(p) for p in self.pending.values())

    def enqueue(self, carrier: str, receipts: Iterable[R.Receipt]
                ) -> defer.Deferred:
        """
        Store receipts for a carrier, then send them.

        @return: a Deferred firing with their keys once they are on disk.
        """
        records = [tuple(r) for r in receipts]

        def add(raw):
            st = state(raw)
            return [st.add_receipt(carrier, record) for record in records]
        d = self.storage.batch(add)

        def stored(keys):
            line = self.pending.setdefault(carrier, OrderedDict())
            for key, record in zip(keys, records):
                line[key] = R.Receipt(*record)
            self.flush(carrier)
            return keys
        d.addCallback(stored)
        return d

    # -- the core's state writer ------------------------------------------

    def final_state(self, raw: Any, message: Any, final: str) -> Any:
        """
        Inside the transaction of a message's final state: write the
        receipts its carrier asked for (one per id the carrier saw: the
        parts' ids of a reassembled message, the shared id of a
        submit_multi), and forget those aliases.

        @return: C{(carrier, [(key, record), ...])}, or C{None}.
        """
        if message.origin_kind != "carrier" or not R.wants_receipt(
                message.receipt, final):
            return None
        st = state(raw)
        aliases = st.aliases.get(message.id)
        ids = aliases if aliases else (R.message_id(message.id),)
        now = self.clock.seconds()
        records = [tuple(R.Receipt(mid, final, message.created, now,
                                   message.text or "", message.sender,
                                   message.recipient)) for mid in ids]
        if aliases:
            st.aliases.pop(message.id, None)
        return message.origin, [(st.add_receipt(message.origin, record),
                                 record) for record in records]

    def committed(self, view: Any, final: str, written: Any) -> None:
        """After that commit: line the receipts up and send them."""
        if written is None:
            return
        carrier, rows = written
        line = self.pending.setdefault(carrier, OrderedDict())
        for key, record in rows:
            line[key] = R.Receipt(*record)
        self.flush(carrier)

    def flush_all(self) -> None:
        """Try every carrier's waiting receipts."""
        for carrier in list(self.pending):
            self.flush(carrier)

    def flush(self, carrier: str) -> None:
        """Send what a carrier's binds have room for."""
        line = self.pending.get(carrier)
        if not line:
            return
        sessions = self.receivers(carrier)
        if not sessions:
            return
        for key, receipt in list(line.items()):
            if key in self.sending:
                continue
            session = next((s for s in sessions if s.can_deliver()), None)
            if session is None:
                return
            # Move the chosen session to the back: round robin.
            sessions.remove(session)
            sessions.append(session)
            self._send(session, carrier, key, receipt)

    def _send(self, session: Any, carrier: str, key: tuple,
              receipt: R.Receipt) -> None:
        self.sending.add(key)
        d = session.send_request(
            DELIVER_SM, lambda seq: R.deliver_sm(seq, receipt))
        d.addCallbacks(self._answered, self._failed,
                       callbackArgs=(carrier, key),
                       errbackArgs=(carrier, key))

    def _answered(self, status: int, carrier: str, key: tuple) -> None:
        if status != 0:
            self.log.info("receipt {key} refused by {carrier} with status "
                          "0x{status:08x}; will retry", key=key,
                          carrier=carrier, status=status)
            self.sending.discard(key)
            return

        def remove(raw):
            state(raw).receipts.pop(key, None)
        d = self.storage.batch(remove)

        def removed(_):
            self.sending.discard(key)
            line = self.pending.get(carrier)
            if line is not None:
                line.pop(key, None)
                if not line:
                    del self.pending[carrier]
            self.sent[carrier] = self.sent.get(carrier, 0) + 1
            self.flush(carrier)
        d.addCallback(removed)
        d.addErrback(lambda f: self.log.failure(
            "removing receipt {key} failed", f, key=key))

    def _failed(self, failure: Any, carrier: str, key: tuple) -> None:
        self.log.info("receipt {key} to {carrier} not answered ({why}); "
                      "will retry", key=key, carrier=carrier,
                      why=failure.getErrorMessage())
        self.sending.discard(key)
