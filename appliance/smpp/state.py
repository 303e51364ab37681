# -*- test-case-name: tests.smpp.test_smpp_state -*-
"""
What the SMPP server keeps in the database (C{root["smpp"]}, created by
generation 4): concatenation parts acknowledged but not yet reassembled,
receipts not yet acknowledged by the carrier, and the message ids the
carrier was given for messages whose id is not simply the stored
message's.

The functions here run inside L{appliance.store.database.Storage.batch}
(they take the raw root mapping) or read the reactor thread's view.

Records are plain tuples (never a class that could move):
  - part: C{parts[(origin, sender, recipient, reference, total,
    sequence)] = (text, part_id, receipt, first_seen, encoding)};
  - receipt: C{receipts[(carrier, seq)] = (message_id, state, submitted,
    done, text, source, destination)};
  - alias: C{aliases[stored message id] = (message_id, ...)}: the ids the
    carrier saw for that stored message (the parts' ids of a reassembled
    message, or the shared id of a submit_multi).
"""
from __future__ import annotations

from typing import Any, Iterator

from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent

KEY = "smpp"


class SMPPState(Persistent):
    """
    The SMPP server's durable state.

    @ivar parts: held concatenation parts (see the module docstring).
    @ivar receipts: pending receipts by C{(carrier, seq)}.
    @ivar aliases: stored message id to the ids the carrier was given.
    @ivar epoch: the last part-id epoch handed out.
    @ivar receipt_seq: the last receipt sequence number used.
    """

    parts: OOBTree | None = None
    #: Parts of concatenated messages from vendors over outbound
    #: connections, in the same form (generation 2).
    connection_parts: OOBTree | None = None
    receipts: OOBTree | None = None
    aliases: LOBTree | None = None
    epoch: int = 0
    receipt_seq: int = 0

    def __init__(self) -> None:
        self.parts = OOBTree()
        self.receipts = OOBTree()
        self.aliases = LOBTree()

    def next_epoch(self) -> int:
        """@return: a new part-id epoch (commit before using it)."""
        self.epoch += 1
        return self.epoch

    def add_receipt(self, carrier: str, record: tuple,
                    seq: int | None = None) -> tuple[str, int]:
        """
        Queue a receipt for a carrier.

        @param seq: its sequence number, from the caller (nodes sharing a
            database number their receipts from their own epochs, so that
            they never write this object's counter both at once); by
            default the next of C{receipt_seq}.
        @return: its key.
        """
        if seq is None:
            self.receipt_seq += 1
            seq = self.receipt_seq
        key = (carrier, seq)
        self.receipts[key] = tuple(record)
        return key

    def receipts_for(self, carrier: str) -> Iterator[tuple[tuple, tuple]]:
        """@return: C{(key, record)} of a carrier's pending receipts, oldest
        first."""
        yield from self.receipts.items(min=(carrier, 0),
                                       max=(carrier, 1 << 62))


def state(raw: Any) -> SMPPState:
    """@return: the L{SMPPState} of a raw ZODB root mapping."""
    return raw[KEY]
