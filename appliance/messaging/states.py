# -*- test-case-name: tests.messaging.test_states -*-
"""
What a delivery attempt's outcome makes of a message: one pure decision.

    next_state(kind, reason, view, now, schedule, ...) -> Next

  - C{delivered}, C{failed}, C{expired}: that final state.
  - C{retry} or C{offline} once the validity has ended: C{expired}.
  - C{offline} (no app registered): C{accepted}, woken at the validity's
    end unless the account registers first (the core's
    C{account_online}).
  - C{forwarded} (another node or vendor took it): C{delivering} until its
    receipt comes back; none by the validity's end: expired.
  - C{retry}: C{delivering}, next attempt by the retry schedule (never
    after the validity ends), or at once when the account registered
    again while the attempt went to its old contact.

Pure: no Twisted, no ZODB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: States a message never leaves.
FINAL = ("delivered", "failed", "expired")


@dataclass(frozen=True)
class Next:
    """
    The state to record.

    @ivar state: C{accepted}, C{delivering} or a final state.
    @ivar next_attempt: when to look at it again (epoch seconds), or
        C{None}.
    @ivar reason: for the log and the message's error field.
    @ivar kind: the outcome kind that decided (C{expired} when the
        validity ended).
    """
    state: str
    next_attempt: float | None
    reason: str
    kind: str

    @property
    def final(self) -> bool:
        """Whether the message is done."""
        return self.state in FINAL

    @property
    def retry(self) -> bool:
        """Whether this schedules another attempt."""
        return self.kind == "retry"


def retry_delay(schedule: tuple[float, ...], attempts: int) -> float:
    """
    Seconds before the next attempt after C{attempts} failed ones: the
    schedule in order, its last value repeating.
    """
    return schedule[min(max(attempts, 1), len(schedule)) - 1]


def next_state(kind: str, reason: str, view: Any, now: float,
               schedule: tuple[float, ...], started: float | None = None,
               online_since: float | None = None) -> Next:
    """
    Decide a message's next state (the rules are in the module docstring).

    @param kind: the outcome kind (or a final state a receipt reported).
    @param reason: the outcome's reason.
    @param view: the L{appliance.messaging.vocabulary.MessageView}
        (C{validity}, C{attempts}).
    @param now: the time of the outcome.
    @param schedule: seconds between attempts (the last repeats).
    @param started: when this attempt started (default: C{now}).
    @param online_since: when the receiving account last registered, or
        C{None}.
    @return: the L{Next}.
    @raise ValueError: for an unknown kind.
    """
    if kind in ("retry", "offline") and now >= view.validity:
        kind, reason = "expired", reason or "validity period ended"
    if kind in FINAL:
        return Next(kind, None, reason, kind)
    if kind == "offline":
        return Next("accepted", view.validity, reason, kind)
    if kind == "forwarded":
        return Next("delivering", view.validity, reason, kind)
    if kind != "retry":
        raise ValueError(f"unknown outcome kind {kind!r}")
    next_attempt = min(now + retry_delay(schedule, view.attempts + 1),
                       view.validity)
    started = now if started is None else started
    if online_since is not None and online_since >= started:
        next_attempt = now
    return Next("delivering", next_attempt, reason, kind)
