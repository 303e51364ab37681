# -*- test-case-name: tests.smpp.test_smpp_receipts -*-
"""
Delivery receipts toward carriers (SMPP 3.4 appendix B): which outcomes
ask for one, the receipt text, and the C{deliver_sm} that carries it.

Message ids as the carrier sees them (L{message_id}): a stored message's
id in lower-case hex (C{epoch << 32 | seq}, so at most 16 characters and
unique across restarts); a concatenation part's own id is C{p} followed by
the hex of an id from the SMPP server's own epoch (see
L{appliance.smpp.server}).  A receipt always carries the id exactly as it
was in the C{submit_sm_resp}.

Pure apart from C{smpp.pdu3}'s encoder.
"""
from __future__ import annotations

import time
from typing import NamedTuple

from smpp.pdu import operations, pdu_types

from appliance.smpp import pdus

#: Our final state to (stat text, message_state TLV).
STATES: dict[str, tuple[str, pdu_types.MessageState]] = {
    "delivered": ("DELIVRD", pdu_types.MessageState.DELIVERED),
    "failed": ("UNDELIV", pdu_types.MessageState.UNDELIVERABLE),
    "expired": ("EXPIRED", pdu_types.MessageState.EXPIRED),
    "rejected": ("REJECTD", pdu_types.MessageState.REJECTED),
}
#: The err: field for each state.
_ERRORS = {"delivered": "000", "failed": "001", "expired": "002",
           "rejected": "003"}


class Receipt(NamedTuple):
    """
    One receipt to send (stored as a plain tuple).

    @ivar message_id: the id the carrier was given.
    @ivar state: C{delivered}, C{failed}, C{expired} or C{rejected}.
    @ivar submitted: when the message was accepted (epoch seconds).
    @ivar done: when it reached its state.
    @ivar text: the message text (the receipt carries its first 20
        characters).
    @ivar source: the original source_addr (the receipt's destination).
    @ivar destination: the original destination (the receipt's source).
    """
    message_id: str
    state: str
    submitted: float
    done: float
    text: str
    source: str
    destination: str


def message_id(stored_id: int) -> str:
    """@return: the id reported for a stored message (lower-case hex)."""
    return format(stored_id, "x")


def part_id(number: int) -> str:
    """@return: the id reported for one concatenation part."""
    return "p" + format(number, "x")


def wants_receipt(registered_delivery: int, state: str) -> bool:
    """
    Whether C{registered_delivery} (bits 0-1) asks for a receipt of a
    message that ended in C{state}: 1 on any final state, 2 on failure
    only; 3 (reserved in SMPP 3.4) is treated as 1.
    """
    asked = registered_delivery & 0x03
    if asked == 2:
        return state != "delivered"
    return asked in (1, 3)


def _date(ts: float) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(ts))


def receipt_text(receipt: Receipt) -> str:
    """
    The standard receipt text, dates in UTC::

        id:<id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done
        date:YYMMDDhhmm stat:DELIVRD err:000 text:<first 20 chars>

    C{dlvrd} is 001 for a delivered message and 000 otherwise.
    """
    stat = STATES[receipt.state][0]
    dlvrd = "001" if receipt.state == "delivered" else "000"
    text = "".join(c if 32 <= ord(c) < 127 else "?"
                   for c in (receipt.text or "")[:20])
    return (f"id:{receipt.message_id} sub:001 dlvrd:{dlvrd} "
            f"submit date:{_date(receipt.submitted)} "
            f"done date:{_date(receipt.done)} stat:{stat} "
            f"err:{_ERRORS[receipt.state]} text:{text}")


def _address(value: str, limit: int = 20) -> str:
    return value.encode("latin-1", "replace")[:limit].decode("latin-1")


def deliver_sm(sequence: int, receipt: Receipt) -> bytes:
    """
    The C{deliver_sm} carrying a receipt: esm_class "SMSC delivery
    receipt" (0x04), IA5 text, C{receipted_message_id} and
    C{message_state} TLVs; from the original destination to the original
    source.
    """
    pdu = operations.DeliverSM(
        sequence,
        source_addr=_address(receipt.destination),
        destination_addr=_address(receipt.source),
        esm_class=pdu_types.EsmClass(
            pdu_types.EsmClassMode.DEFAULT,
            pdu_types.EsmClassType.SMSC_DELIVERY_RECEIPT),
        data_coding=pdu_types.DataCoding(
            pdu_types.DataCodingScheme.DEFAULT,
            pdu_types.DataCodingDefault.IA5_ASCII),
        short_message=receipt_text(receipt).encode("ascii"),
        receipted_message_id=receipt.message_id,
        message_state=STATES[receipt.state][1])
    return pdus.encode(pdu)
