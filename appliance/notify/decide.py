# -*- test-case-name: tests.notify.test_decide -*-
"""
The decisions of the missed-call service, as pure functions: what a
trigger (a diverted call) leads to, what the HLR's and the MSC's answers
to the probe lead to, and how a repeated call folds into what is already
pending.  No Twisted, no ZODB.

The cases (seed 003):

  - C{busy} (ISUP redirection reason busy, SIP C{user-busy}): the Who
    Called SMS to B at once, A as sender.
  - C{no-reply} (ISUP no reply, SIP C{no-answer}): no SMS.
  - C{unreachable} (ISUP any other reason, SIP C{unavailable} and every
    other reason): SRI-SM to the HLR, then an invisible SMS; depending on
    the answers, both SMS at once (subcase 3) or remember and wait for
    alertServiceCentre (subcases 1 and 2).

A restricted presentation (CLIR) sends nothing to anyone, in every case.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CASES", "Trigger", "Pending", "plan", "after_probe", "fold",
           "sip_case", "isup_case", "PROBE", "NOW", "NOTHING", "REMEMBER",
           "BOTH", "DROP"]

CASES = ("busy", "no-reply", "unreachable")

#: What a trigger leads to.
NOW, PROBE, NOTHING = "who-called-now", "probe", "nothing"
#: What the probe leads to.
BOTH, REMEMBER, DROP = "both-now", "remember", "drop"

#: SIP Diversion reasons (RFC 5806) and the case each is.
_SIP_CASES = {"user-busy": "busy", "no-answer": "no-reply",
              "unavailable": "unreachable"}
#: ISUP redirecting reasons (Q.763 3.45): 1 busy, 2 no reply.
_ISUP_CASES = {1: "busy", 2: "no-reply"}


def sip_case(reason: str) -> str:
    """
    @param reason: the Diversion C{reason} parameter.
    @return: the case: C{user-busy} is busy, C{no-answer} no reply,
        C{unavailable} and every other reason unreachable.
    """
    return _SIP_CASES.get((reason or "").lower().strip('"'), "unreachable")


def isup_case(reason: int | None) -> str:
    """
    @param reason: the redirecting reason of the redirection information
        (original if the last is unknown), or None.
    @return: the case (busy, no-reply, unreachable for any other).
    """
    return _ISUP_CASES.get(reason, "unreachable")


@dataclass(frozen=True, slots=True)
class Trigger:
    """
    One diverted call to the service.

    @ivar source: C{sip} or C{isup}.
    @ivar case: one of L{CASES}.
    @ivar caller: A's number (digits), "" if none was given.
    @ivar called: B's number.
    @ivar service: the service number called.
    @ivar restricted: CLIR / presentation restricted.
    @ivar at: when (seconds since the epoch).
    @ivar reason: the reason as the trigger gave it (for C{{reason}}).
    """
    source: str
    case: str
    caller: str
    called: str
    service: str
    restricted: bool
    at: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Pending:
    """
    A caller waiting for a called party (what is stored per (B, A)).

    @ivar first: the first call's time; C{last}: the last call's.
    @ivar count: how many calls.
    @ivar reason: the last call's reason.
    @ivar source: the last call's trigger source.
    """
    first: float
    last: float
    count: int
    reason: str
    source: str

    def as_tuple(self) -> tuple:
        """@return: the stored form."""
        return (self.first, self.last, self.count, self.reason, self.source)

    @classmethod
    def from_tuple(cls, value: tuple) -> "Pending":
        """@return: the entry of a stored tuple."""
        return cls(*value)


def plan(trigger: Trigger, blacklisted=frozenset()) -> str:
    """
    What a trigger leads to.

    @param blacklisted: numbers that opted out (anything with C{in}).
    @return: L{NOW} (Who Called to B at once), L{PROBE} (ask the HLR) or
        L{NOTHING} (CLIR, no reply, no numbers, both parties opted out).
    """
    if trigger.restricted or not trigger.caller or not trigger.called:
        return NOTHING
    if trigger.case == "busy":
        return NOTHING if trigger.called in blacklisted else NOW
    if trigger.case == "unreachable":
        if trigger.called in blacklisted and trigger.caller in blacklisted:
            return NOTHING
        return PROBE
    return NOTHING


#: SRI-SM outcomes that mean "absent": remember and wait (subcase 2).
_ABSENT = frozenset({"absent", "absentSubscriberSM", "absentSubscriber"})


def after_probe(sri: str, mt: str | None, detail: str = "") -> str:
    """
    What the HLR's and MSC's answers lead to.

    @param sri: the SRI-SM outcome kind (C{ok}, C{absent}, an error).
    @param mt: the invisible MT-ForwardSM outcome kind, None if not sent.
    @param detail: the MT error's detail (C{memoryCapacityExceeded}...).
    @return: L{BOTH} (subcase 3: delivered), L{REMEMBER} (subcases 1 and
        2: absent, report to the HLR and wait for its alert) or L{DROP}
        (unknown subscriber, barred, no answer: nothing can be promised).
    """
    if sri in _ABSENT:
        return REMEMBER
    if sri != "ok":
        return DROP
    if mt == "ok":
        return BOTH
    if mt in _ABSENT or detail == "memoryCapacityExceeded":
        return REMEMBER
    return DROP


def fold(existing: Pending | None, trigger: Trigger) -> Pending:
    """
    A call into what is pending for (B, A): one entry per caller, with
    the time of the last call and the count.
    """
    if existing is None:
        return Pending(trigger.at, trigger.at, 1, trigger.reason or
                       trigger.case, trigger.source)
    return Pending(existing.first, max(existing.last, trigger.at),
                   existing.count + 1, trigger.reason or trigger.case,
                   trigger.source)


def expired(entry: Pending, now: float, expiry: float) -> bool:
    """@return: whether C{entry}'s last call is older than C{expiry}."""
    return expiry > 0 and now - entry.last > expiry
