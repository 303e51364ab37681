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

On a database several nodes share, the cluster's L{placement}
(L{appliance.cluster.receipts}) says which node sends each receipt: the
courier numbers receipts from its node's slot, sends only those its node
holds, hands those whose carrier is bound on another node only to that
node (in the commit that writes them when it can), and at each heartbeat
(L{rehome}) takes in what was handed to it or taken over with a dead
node's slot.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterable

from twisted.internet import defer, task
from twisted.logger import Logger
from ZODB.POSException import ConflictError
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
        #: The cluster's L{appliance.cluster.interfaces.IReceiptPlacement}
        #: on a shared database (set by the wiring), else C{None}.
        self.placement: Any = None
        #: Keys being handed to another node (not sent meanwhile).
        self._handing: set[tuple] = set()

    def load(self, smpp: Any) -> int:
        """Read the pending receipts from the L{SMPPState}; @return: count."""
        self.pending.clear()
        for key, record in smpp.receipts.items():
            if self.placement is not None and \
                    not self.placement.mine(key[1]):
                continue
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
            target = self._elsewhere(carrier)
            out = []
            for record in records:
                key = st.add_receipt(carrier, record, self._seq())
                out.append((key, target is not None and
                            self.placement.hand(raw, key[1], target)))
            return out
        d = self.storage.batch(add)

        def stored(rows):
            line = self.pending.setdefault(carrier, OrderedDict())
            for (key, handed), record in zip(rows, records):
                if handed:
                    self.placement.note_handed(1)
                else:
                    line[key] = R.Receipt(*record)
            self.flush(carrier)
            return [key for key, _ in rows]
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
        target = self._elsewhere(message.origin)
        rows = []
        for record in records:
            key = st.add_receipt(message.origin, record, self._seq())
            handed = target is not None and \
                self.placement.hand(raw, key[1], target)
            rows.append((key, None if handed else record))
        return message.origin, rows

    def _seq(self) -> int | None:
        """A receipt's sequence number from the cluster, or C{None} (the
        state's own counter, on a database of this node alone)."""
        return self.placement.next_seq() if self.placement is not None \
            else None

    def _elsewhere(self, carrier: str) -> str | None:
        """The node to hand a carrier's new receipts to: one holding a
        receiving bind of it, when this node holds none."""
        if self.placement is None or self.receivers(carrier):
            return None
        return self.placement.bound_elsewhere(carrier)

    def committed(self, view: Any, final: str, written: Any) -> None:
        """After that commit: line the receipts up and send them."""
        if written is None:
            return
        carrier, rows = written
        line = self.pending.setdefault(carrier, OrderedDict())
        for key, record in rows:
            if record is not None:
                line[key] = R.Receipt(*record)
            else:                       # handed to another node
                self.placement.note_handed(1)
        if not line:
            del self.pending[carrier]
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
            if key in self.sending or key in self._handing:
                continue
            if self.placement is not None and \
                    not self.placement.mine(key[1]):
                # Its slot was taken over (this node was cut off past its
                # lease): the taker sends it.
                del line[key]
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
            if self.placement is not None:
                self.placement.forget(raw, key[1])
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

    # -- several nodes on one database ---------------------------------------

    def rehome(self, smpp: Any) -> tuple[int, int]:
        """
        At each heartbeat of a cluster node: line up the receipts this node
        holds for carriers bound here that are not in line yet (handed to
        it, or taken over with a dead node's slot), and hand on those it
        holds for carriers bound only on another node.

        @param smpp: the reactor thread's L{SMPPState}.
        @return: how many were taken in and how many are being handed.
        """
        placement = self.placement
        if placement is None:
            return 0, 0
        taken = 0
        hand: dict[str, list[tuple]] = {}
        for carrier in sorted(placement.carriers_bound()):
            here = bool(self.receivers(carrier))
            target = None if here else placement.bound_elsewhere(carrier)
            if not here and target is None:
                continue
            before = taken
            line = self.pending.get(carrier)
            for key, record in smpp.receipts_for(carrier):
                if key in self.sending or key in self._handing or \
                        not placement.mine(key[1]):
                    continue
                if here:
                    if line is None:
                        line = self.pending.setdefault(carrier,
                                                       OrderedDict())
                    if key not in line:
                        line[key] = R.Receipt(*record)
                        taken += 1
                else:
                    hand.setdefault(target, []).append(key)
            if taken > before:
                self.flush(carrier)
        for target, keys in hand.items():
            self._hand(target, keys)
        if taken:
            self.log.info("took in {n} receipts owed to carriers bound here",
                          n=taken)
        return taken, sum(map(len, hand.values()))

    def _hand(self, target: str, keys: list[tuple]) -> None:
        """Hand C{keys} to node C{target} in one batched write; once it
        committed they leave this node's line."""
        self._handing.update(keys)

        def write(raw):
            return [key for key in keys
                    if self.placement.hand(raw, key[1], target)]

        def handed(done):
            for key in done:
                line = self.pending.get(key[0])
                if line is not None:
                    line.pop(key, None)
                    if not line:
                        del self.pending[key[0]]
            if done:
                self.placement.note_handed(len(done))
                self.log.info("handed {n} receipts to node {node}, which "
                              "holds their carrier's bind", n=len(done),
                              node=target)

        def finished(result):
            self._handing.difference_update(keys)
            return result
        d = self.storage.batch(write)
        d.addCallback(handed)
        d.addBoth(finished)
        def failed(f):
            if f.check(ConflictError):
                # The next heartbeat tries again.
                self.log.warn("handing receipts to {node} conflicted; "
                              "tried again at the next heartbeat",
                              node=target)
                return
            self.log.failure("handing receipts to {node} failed", f,
                             node=target)
        d.addErrback(failed)
