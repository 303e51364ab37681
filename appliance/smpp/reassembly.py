# -*- test-case-name: tests.smpp.test_smpp_server -*-
"""
Concatenated messages kept on disk while their parts arrive.

The pure L{appliance.smpp.concat.Reassembler} decides; this module keeps
every part it holds in C{root["smpp"].parts} too (written through the
storage's batched commits before the part is acknowledged), and rebuilds
the Reassembler from them when the node starts, so a restart loses no
acknowledged part.

Message ids: each part gets its own id (L{receipts.part_id}) in its
C{submit_sm_resp}.  When the last part arrives the whole text is
submitted to the messaging core as one message, and the ids of all its
parts are recorded as that message's aliases: its receipt is sent once
per part, each with that part's id.  A message whose parts never all
arrive is handled, after C{[smpp] reassembly_timeout}, by C{[smpp]
reassembly_policy}: C{deliver_partial} submits the parts that arrived
with a marker for each missing one (see L{appliance.smpp.concat}), C{fail}
drops them and sends a C{REJECTD} receipt for each part that asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from appliance.smpp.concat import GroupKey, Incomplete, Reassembler
from appliance.smpp.state import state


@dataclass(frozen=True)
class PartInfo:
    """
    What the server needs of a held part besides its text.

    @ivar part_id: the id the carrier was given.
    @ivar receipt: its registered_delivery bits 0-1.
    @ivar encoding: the stored message encoding of its text.
    @ivar arrived: clock time it arrived.
    """
    part_id: str
    receipt: int
    encoding: str
    arrived: float


@dataclass(frozen=True)
class Added:
    """
    What became of one part.

    @ivar kind: C{held} (stored, waiting for the others), C{duplicate}
        (already held: its earlier id is C{part_id}), C{whole} (it
        completed the message: C{text} and C{parts}) or C{late} (its
        group already expired: C{text} is the marked part on its own).
    @ivar written: for C{held}, fires once the part is on disk.
    """
    kind: str
    part_id: str
    text: str | None = None
    parts: tuple[PartInfo, ...] = ()
    written: defer.Deferred | None = None


class DurableReassembler:
    """
    A L{Reassembler} whose held parts are also on disk.

    @ivar reassembler: the pure reassembler.
    """

    def __init__(self, storage: Any, clock: Any, timeout: float,
                 policy: str, max_groups: int = 100_000,
                 container: str = "parts"):
        """
        @param storage: the L{IStorage}.
        @param clock: gives C{seconds()}.
        @param timeout: see L{Reassembler}.
        @param policy: see L{Reassembler}.
        @param container: the L{SMPPState} attribute holding the parts
            (C{parts}: carriers'; C{connection_parts}: vendors').
        """
        self.container = container
        self.storage = storage
        self.reassembler = Reassembler(clock.seconds, timeout, policy=policy,
                                       max_groups=max_groups)
        self._held: dict[GroupKey, dict[int, PartInfo]] = {}

    def load(self, smpp: Any) -> int:
        """
        Rebuild from the stored parts.

        @param smpp: the L{SMPPState} (C{storage.domain("smpp")}).
        @return: the number of parts loaded.
        """
        groups: dict[GroupKey, dict[int, tuple]] = {}
        for (origin, sender, recipient, ref, total, seq), record in \
                getattr(smpp, self.container).items():
            key = GroupKey(origin, sender, recipient, ref, total)
            groups.setdefault(key, {})[seq] = record
        rows = []
        self._held.clear()
        for key, parts in groups.items():
            first = min(r[3] for r in parts.values())
            rows.append(tuple(key) + (first, tuple(
                (seq, r[0]) for seq, r in sorted(parts.items()))))
            self._held[key] = {seq: PartInfo(r[1], r[2], r[4], r[3])
                               for seq, r in parts.items()}
        self.reassembler.import_state((tuple(rows), ()))
        return sum(len(p) for p in groups.values())

    def __len__(self) -> int:
        """@return: the messages waiting for parts."""
        return len(self._held)

    def add(self, key: GroupKey, sequence: int, text: str,
            info: PartInfo) -> Added:
        """
        Take one part.

        @raise appliance.sms.udh.ConcatenationError: bad numbering.
        @raise appliance.smpp.concat.ReassemblyFull: too many messages
            waiting for parts.
        """
        held = self._held.get(key, {})
        if sequence in held:
            return Added("duplicate", held[sequence].part_id)
        r = self.reassembler
        duplicates, late = r.duplicates, r.late_parts
        whole = r.add(key.origin, key.sender, key.recipient, key.reference,
                      sequence, key.total, text)
        if r.late_parts != late:
            return Added("late", info.part_id, whole, (info,))
        if whole is None:
            if r.duplicates != duplicates:
                return Added("duplicate", info.part_id)
            self._held.setdefault(key, {})[sequence] = info
            record = (text, info.part_id, info.receipt, info.arrived,
                      info.encoding)

            def store(raw):
                getattr(state(raw), self.container)[
                    tuple(key) + (sequence,)] = record
            return Added("held", info.part_id,
                         written=self.storage.batch(store))
        parts = dict(self._held.pop(key, {}))
        parts[sequence] = info
        return Added("whole", info.part_id, whole,
                     tuple(parts[i] for i in sorted(parts)))

    def discard(self, key: GroupKey) -> tuple[PartInfo, ...]:
        """
        Forget a message's held parts in memory (its stored ones go with
        L{forget}, in a batch).

        @return: the info of the parts that were held, in order.
        """
        self.reassembler.discard(key)
        held = self._held.pop(key, {})
        return tuple(held[i] for i in sorted(held))

    def expired(self) -> list[tuple[Incomplete, tuple[PartInfo, ...]]]:
        """
        @return: the messages whose parts did not all arrive in time, each
            with the info of its arrived parts (in order); their parts are
            still on disk until L{forget}.
        """
        out = []
        for incomplete in self.reassembler.expired():
            held = self._held.pop(incomplete.key, {})
            out.append((incomplete, tuple(held[i] for i in sorted(held))))
        return out

    @staticmethod
    def forget(raw: Any, key: GroupKey, container: str = "parts") -> None:
        """Remove a message's stored parts (inside a batch)."""
        parts = getattr(state(raw), container)
        for seq in range(1, key.total + 1):
            parts.pop(tuple(key) + (seq,), None)
