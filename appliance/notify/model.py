# -*- test-case-name: tests.notify.test_model -*-
"""
The persistent state of the missed-call service, C{root["notify"]}: the
operator's settings (service numbers, answers, causes, templates,
blacklist) and the pending set.

The pending set is an C{OOBTree} keyed C{B + "\\x00" + A}, so what waits
for B is one range scan (C{keys(min=B + "\\x00", max=B + "\\x01")}); each
value is the tuple of a L{appliance.notify.decide.Pending}.  Its size is
a C{BTrees.Length}, so writers do not conflict on a counter.
"""
from __future__ import annotations

from BTrees.Length import Length
from BTrees.OOBTree import OOBTree, OOTreeSet
from persistent import Persistent

from appliance.notify.decide import Pending

KEY = "notify"
#: Default final responses to INVITEs per reason.
RESPONSES = {"busy": 486, "unavailable": 480, "no-answer": 480,
             "other": 480}
SEP = "\x00"


def key(called: str, caller: str) -> str:
    """@return: the pending key of (B, A)."""
    return called + SEP + caller


class NotifyRoot(Persistent):
    """
    C{root["notify"]}.

    @ivar configured: the operator entered the mode (running-config).
    @ivar service_numbers: the numbers diverted calls reach us on.
    @ivar responses: C{(reason, status)} pairs overriding L{RESPONSES}.
    @ivar release_busy: the ISUP cause for busy (17 user busy).
    @ivar release_other: the ISUP cause otherwise (42 switching
        equipment congestion).
    @ivar seized_timer: seconds between ACM and REL.
    @ivar templates: C{((kind, language), text)} pairs.
    @ivar include: items the default Who Called text includes.
    @ivar language: the language whose templates are used.
    @ivar pending_expiry: seconds a pending entry lives after its last
        call.
    @ivar delivery: C{smpp} (through the messaging core) or C{map}.
    @ivar opt_out_keyword: the word that, sent to a service number,
        puts the sender on the blacklist.
    """
    configured: bool = False
    service_numbers: tuple = ()
    responses: tuple = ()
    release_busy: int = 17
    release_other: int = 42
    seized_timer: int = 2
    templates: tuple = ()
    include: frozenset = frozenset()
    language: str = ""
    pending_expiry: int = 7 * 86400
    delivery: str = "smpp"
    opt_out_keyword: str = "STOP"
    blacklist: OOTreeSet = None  # type: ignore[assignment]
    pending: OOBTree = None  # type: ignore[assignment]
    pending_count: Length = None  # type: ignore[assignment]

    def __init__(self) -> None:
        self.blacklist = OOTreeSet()
        self.pending = OOBTree()
        self.pending_count = Length()

    def response(self, reason: str) -> int:
        """@return: the final status for an INVITE diverted for C{reason}."""
        return dict(self.responses).get(reason) or RESPONSES[reason]

    def remember(self, called: str, caller: str, entry: Pending) -> None:
        """Store (or replace) what waits for C{called} from C{caller}."""
        k = key(called, caller)
        if k not in self.pending:
            self.pending_count.change(1)
        self.pending[k] = entry.as_tuple()

    def waiting_for(self, called: str) -> list[tuple[str, Pending]]:
        """@return: C{(caller, entry)} for each caller waiting for B."""
        lo = called + SEP
        return [(k[len(lo):], Pending.from_tuple(v)) for k, v in
                self.pending.items(min=lo, max=called + "\x01",
                                   excludemax=True)]

    def forget(self, called: str, caller: str) -> bool:
        """Remove (B, A); @return: whether it was there."""
        k = key(called, caller)
        if k in self.pending:
            del self.pending[k]
            self.pending_count.change(-1)
            return True
        return False

    def get(self, called: str, caller: str) -> Pending | None:
        """@return: the entry of (B, A), or None."""
        v = self.pending.get(key(called, caller))
        return None if v is None else Pending.from_tuple(v)


def notify_of(root) -> NotifyRoot | None:
    """@return: C{root["notify"]} of a raw ZODB root mapping, or None."""
    try:
        return root.get(KEY)
    except AttributeError:
        return None
