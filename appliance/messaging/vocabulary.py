# -*- test-case-name: tests.messaging.test_core -*-
"""
The vocabulary every protocol shares with the messaging core: what a
protocol hands in (L{Submission}), what a delivery agent is handed
(L{MessageView}) and answers (L{Outcome}), the refusals raised before
anything is stored (L{NoRoute}, L{Refused}), and how another SMSC's
message ids are matched when its receipts come back, and the in-memory
allocator of our own message ids (L{MessageIds}).

Pure: no Twisted, no ZODB.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from zope.interface import implementer

from appliance.messaging.interfaces import IMessageIds
from appliance.model.errors import ModelError

#: Outcome kinds an agent reports.
OUTCOMES = ("delivered", "offline", "retry", "failed", "forwarded")
#: Final states a receipt from a far node may report.
RECEIPT_STATES = ("delivered", "failed", "expired")


class NoRoute(Exception):
    """
    Nobody takes the recipient: refuse before storing (SIP 404, SMPP
    ESME_RINVDSTADR).  C{str()} is the reason.
    """


class Refused(Exception):
    """
    The payer cannot be charged (no funds, no tariff for the destination):
    refuse at once, before storing, with a reason the sender's user can
    read (SIP 402 reason phrase and Warning, an SMPP error status, a JSON
    error).  C{str()} is that reason.

    @cvar kind: C{funds} (the payer cannot pay) or C{destination} (nothing
        prices this destination); protocols choose their status by it.
    """

    kind = "funds"


@dataclass(frozen=True)
class Submission:
    """
    A message as a protocol received it, before it is accepted.

    @ivar origin_kind: C{account}, C{carrier}, C{connection}, C{http},
        C{map} (mo-forwardSM; the origin is the MSC's global title), or
        C{node} (the node's own, such as balance-low messages).
    @ivar origin: the origin's name (account username, carrier name...).
    @ivar sender: digits or an alphanumeric sender.
    @ivar recipient: the destination number (normalized here).
    @ivar validity: seconds it may wait for delivery (None: the default).
    @ivar receipt: registered_delivery asked for (SMPP).
    @ivar hops: nodes it has passed (loop protection).
    @ivar meta: protocol data kept with the message, C{(key, value)}
        pairs (an HTTP tenant's dlr-url and client-ref).
    @ivar source: the submitter's IP address where the protocol knows it
        (SMPP peer, SIP source), for authorization rules by network.
    """
    origin_kind: str
    origin: str
    sender: str
    recipient: str
    text: str | None
    encoding: str = "utf-8"
    parts: int = 1
    validity: float | None = None
    receipt: int = 0
    hops: int = 0
    meta: tuple[tuple[str, str], ...] = ()
    source: str | None = None


@dataclass(frozen=True)
class MessageView:
    """An immutable copy of a stored message, for delivery agents."""
    id: int
    sender: str
    recipient: str
    account: str | None
    text: str | None
    encoding: str
    parts: int
    created: float
    attempts: int
    validity: float
    origin_kind: str = "account"
    origin: str = ""
    receipt: int = 0
    route: str | None = None
    hops: int = 0
    transport: str | None = None

    @classmethod
    def of(cls, m: Any) -> "MessageView":
        """
        Copy a persistent message (an L{appliance.messaging.store.Message}).

        Made twice per message on its way (accept, outcome): the values
        go straight into the new view's dict instead of through the
        frozen dataclass's C{__init__} (one C{object.__setattr__} per
        field), the same view for a fraction of the time.
        """
        view = _new(cls)
        view.__dict__.update(zip(_VIEW_FIELDS, _view_values(m)))
        return view


_new = object.__new__
#: MessageView's fields, in order, and a getter of them from a message.
_VIEW_FIELDS = tuple(f.name for f in fields(MessageView))
_view_values = attrgetter(*_VIEW_FIELDS)


@dataclass(frozen=True)
class Authorization:
    """
    A message routed and charged but not stored yet (the core's
    C{authorize}); a protocol holding one for the first part of a
    concatenated message hands it to C{submit} with the whole.

    @ivar decision: where it goes (an
        L{appliance.messaging.routing.Decision}).
    @ivar charge: the charger's opaque charge.
    @ivar at: when it was authorized.
    """
    decision: Any
    charge: Any
    at: float


@dataclass(frozen=True)
class Outcome:
    """
    What a delivery attempt came to.

    @ivar kind: C{delivered}, C{offline}, C{retry}, C{failed}, or
        C{forwarded}: handed to another node or vendor, which gave it
        C{remote_id} on C{connection}; its receipt decides the final state.
    @ivar reason: for the log and the message's error field.
    """
    kind: str
    reason: str = ""
    remote_id: str | None = None
    connection: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.kind!r}")
        if self.kind == "forwarded" and not (self.remote_id
                                             and self.connection):
            raise ValueError("a forwarded outcome names its connection "
                             "and remote id")


def normalize_remote_id(remote_id: str) -> str:
    """
    The canonical form of a message id given by another SMSC, so its
    receipt matches whether it writes the id in hex or decimal, upper or
    lower case, or with leading zeros: a number (decimal digits) is kept
    as decimal without leading zeros; anything else is lower-cased
    without leading zeros.
    """
    text = remote_id.strip().lower()
    stripped = text.lstrip("0") or "0"
    return stripped


def remote_id_forms(remote_id: str) -> list[str]:
    """
    The forms under which a receipt's id may have been recorded: as
    given, and read as hexadecimal turned decimal, and read as decimal
    turned hexadecimal (some SMSCs answer submit_sm_resp in one base and
    write receipts in the other).
    """
    forms = [normalize_remote_id(remote_id)]
    text = forms[0]
    try:
        forms.append(str(int(text, 16)))
    except ValueError:
        pass
    if text.isdigit():
        forms.append(format(int(text), "x"))
    return list(dict.fromkeys(forms))


_SEQ_BITS = 32
_MAX_SEQ = (1 << _SEQ_BITS) - 1
#: Epochs keep ids within a signed 64-bit LOBTree key.
MAX_EPOCH = (1 << 31) - 1


class IdsExhausted(Exception):
    """
    A L{MessageIds} gave out all 2**32 - 1 ids of its epoch. The caller
    commits a new C{IMessageStore.next_epoch} and makes a new allocator.
    """


@implementer(IMessageIds)
class MessageIds:
    """
    Transient id allocator for one epoch (not stored in the database).

    @ivar epoch: the epoch.
    """

    def __init__(self, epoch: int) -> None:
        """
        @param epoch: from C{IMessageStore.next_epoch}, 1 to 2**31 - 1.
        @raise ModelError: for an epoch out of range.
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) \
                or not 1 <= epoch <= MAX_EPOCH:
            raise ModelError(f"an epoch is between 1 and {MAX_EPOCH}")
        self.epoch = epoch
        self._seq = 0

    def next(self) -> int:
        """
        @return: the next id, C{epoch << 32 | seq} with seq from 1.
        @raise IdsExhausted: when seq would pass 2**32 - 1.
        """
        if self._seq >= _MAX_SEQ:
            raise IdsExhausted(f"epoch {self.epoch} has no ids left")
        self._seq += 1
        return self.epoch << _SEQ_BITS | self._seq
