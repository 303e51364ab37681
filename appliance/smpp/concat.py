# -*- test-case-name: tests.smpp.test_concat -*-
"""
Reassembly of concatenated SMS (parts by UDH or SAR TLVs) into one text.

Parts are grouped by (origin, sender, recipient, reference, total): the
origin is whoever handed us the part (a carrier or a connection name), so
two carriers' reference counters never mix.

The rule for a message whose parts do not all arrive: a group expires when
its first part is older than the timeout. L{Reassembler.expired} then hands
it back as an L{Incomplete}, and the group is forgotten. With the policy
C{"deliver_partial"} (the default) the L{Incomplete} carries the text of the
parts that arrived, in order, with a marker such as C{[part 2 of 3 missing]}
in place of each missing part: the caller delivers that text, reports the
message delivered and records the missing part numbers. With C{"fail"} the
L{Incomplete} has no text and the caller fails the message.

After a group completes or expires its parts are remembered for one more
timeout, so that:

  - a part sent again after completion (an ESME that retries a
    C{submit_sm} whose response it missed) is recognised by its identical
    text and ignored, instead of opening a ghost group;
  - a part that arrives after its group expired is B{late}: under
    C{"deliver_partial"} it is returned on its own, prefixed with a marker
    such as C{[part 2 of 3, late] }, so that no accepted text is lost; under
    C{"fail"} it is dropped. Either way L{Reassembler.late_parts} counts it.

A part with a text different from the remembered one starts a new group
(the sender reused its reference for a new message).

Pure: no Twisted, no ZODB. The state is exported and imported as plain
tuples (L{Reassembler.export_state}) so that the store can keep it across
restarts.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from appliance.smpp import pdus
from appliance.smpp.pdus import Status
from appliance.sms.text import (Alphabet, TextCodingError, alphabet_for,
                                 decode_short_message, repair_surrogates)
from appliance.sms.udh import (ConcatenationError, concatenation_from_sar,
                                concatenation_from_udh, split_user_data)

__all__ = [
    "DELIVER_PARTIAL", "FAIL", "GroupKey", "Incomplete", "ReassemblyFull",
    "Reassembler", "text_of",
]

#: Policy: deliver what arrived, with a marker for each missing part.
DELIVER_PARTIAL = "deliver_partial"
#: Policy: fail a message whose parts did not all arrive.
FAIL = "fail"

_MISSING_MARKER = "[part {sequence} of {total} missing]"
_LATE_MARKER = "[part {sequence} of {total}, late] "


class ReassemblyFull(Exception):
    """
    A new message would exceed the Reassembler's C{max_groups}; the SMPP
    server answers C{ESME_RMSGQFUL}.
    """


class GroupKey(NamedTuple):
    """
    What identifies one concatenated message.

    @ivar origin: the carrier or connection that handed us the parts.
    @ivar sender: the source address.
    @ivar recipient: the destination address.
    @ivar reference: the concatenation reference number.
    @ivar total: the number of parts.
    """

    origin: str
    sender: str
    recipient: str
    reference: int
    total: int


class Incomplete(NamedTuple):
    """
    A message whose parts did not all arrive within the timeout.

    @ivar key: the message's group.
    @ivar first_seen: when its first part arrived (clock seconds).
    @ivar parts: the parts that arrived, as C{(sequence, text)} in order.
    @ivar missing: the part numbers that never arrived.
    @ivar text: the text to deliver under C{"deliver_partial"} (missing parts
        replaced by markers), or C{None} under C{"fail"}.
    """

    key: GroupKey
    first_seen: float
    parts: tuple[tuple[int, str], ...]
    missing: tuple[int, ...]
    text: str | None


class _Group:
    """
    The parts of one message seen so far.
    """

    __slots__ = ("first_seen", "parts")

    def __init__(self, first_seen: float, parts: dict[int, str]) -> None:
        self.first_seen = first_seen
        self.parts = parts


class Reassembler:
    """
    Collects the parts of concatenated messages and returns each whole text
    once all its parts are in. See the module docstring for the rule applied
    to messages that stay incomplete.

    @ivar timeout: seconds a group may wait for its parts. See L{__init__}.
    @ivar policy: C{"deliver_partial"} or C{"fail"}.
    @ivar duplicates: parts ignored because they were already held.
    @ivar late_parts: parts that arrived after their group expired.
    """

    def __init__(self, clock: Callable[[], float], timeout: float, *,
                 policy: str = DELIVER_PARTIAL, max_groups: int = 100_000,
                 missing_marker: str = _MISSING_MARKER,
                 late_marker: str = _LATE_MARKER) -> None:
        """
        @param clock: returns the current time in seconds (for example
            C{reactor.seconds}).
        @param timeout: seconds after its first part at which an incomplete
            message expires (> 0).
        @param policy: C{"deliver_partial"} or C{"fail"}.
        @param max_groups: the most incomplete messages held at once.
        @param missing_marker: stands for a missing part; formatted with
            C{sequence} and C{total}.
        @param late_marker: prefixes a late part's text; formatted likewise.
        @raise ValueError: for a bad policy, timeout or limit.
        """
        if policy not in (DELIVER_PARTIAL, FAIL):
            raise ValueError(f"policy must be {DELIVER_PARTIAL!r} or {FAIL!r}, not {policy!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        if max_groups < 1:
            raise ValueError(f"max_groups must be at least 1, not {max_groups!r}")
        for marker in (missing_marker, late_marker):
            marker.format(sequence=1, total=2)
        self._clock = clock
        self.timeout = timeout
        self.policy = policy
        self._max_groups = max_groups
        self._missing_marker = missing_marker
        self._late_marker = late_marker
        self._groups: dict[GroupKey, _Group] = {}
        # key -> (finished at, texts by sequence - 1, None where missing),
        # for groups that completed or expired less than a timeout ago.
        self._finished: dict[GroupKey, tuple[float, tuple[str | None, ...]]] = {}
        self.duplicates = 0
        self.late_parts = 0

    def __len__(self) -> int:
        """
        @return: the number of incomplete messages held.
        """
        return len(self._groups)

    def add(self, origin: str, sender: str, recipient: str, reference: int,
            sequence: int, total: int, text: str) -> str | None:
        """
        Take one part.

        @param origin: the carrier or connection it came from.
        @param sender: its source address.
        @param recipient: its destination address.
        @param reference: its concatenation reference.
        @param sequence: its part number (1..total).
        @param total: the number of parts (1..255).
        @param text: its decoded text (UCS-2 parts decoded with
            C{partial=True} so a surrogate pair split between parts joins).
        @return: the whole text when this part completes the message (parts
            in sequence order), a late part's marked text (see the module
            docstring), or C{None} while parts are missing or for a part
            ignored as a duplicate.
        @raise ConcatenationError: for a total or sequence out of range.
        @raise ReassemblyFull: if a new message would exceed C{max_groups}.
        """
        if not isinstance(total, int) or not 1 <= total <= 255:
            raise ConcatenationError(f"total number of parts {total!r} is not 1..255")
        if not isinstance(sequence, int) or not 1 <= sequence <= total:
            raise ConcatenationError(f"part number {sequence!r} is not 1..{total}")
        if not isinstance(text, str):
            raise TypeError(f"part text must be str, not {type(text).__name__}")
        if total == 1:
            return repair_surrogates(text)
        now = self._clock()
        key = GroupKey(origin, sender, recipient, reference, total)
        group = self._groups.get(key)
        if group is None:
            finished = self._finished.get(key)
            if finished is not None and now - finished[0] < self.timeout:
                held = finished[1][sequence - 1]
                if held == text:
                    self.duplicates += 1
                    return None
                if held is None:
                    return self._late(sequence, total, text)
            if len(self._groups) >= self._max_groups:
                raise ReassemblyFull(
                    f"{len(self._groups)} incomplete messages held, limit reached")
            self._finished.pop(key, None)
            group = self._groups[key] = _Group(now, {})
        if sequence in group.parts:
            self.duplicates += 1
            return None
        group.parts[sequence] = text
        if len(group.parts) < total:
            return None
        del self._groups[key]
        texts = tuple(group.parts[i] for i in range(1, total + 1))
        self._remember(key, now, texts)
        return repair_surrogates("".join(texts))

    def _late(self, sequence: int, total: int, text: str) -> str | None:
        self.late_parts += 1
        if self.policy == FAIL:
            return None
        marker = self._late_marker.format(sequence=sequence, total=total)
        return repair_surrogates(marker + text)

    def _remember(self, key: GroupKey, when: float, texts: tuple[str | None, ...]) -> None:
        self._finished.pop(key, None)
        self._finished[key] = (when, texts)
        while len(self._finished) > self._max_groups:
            del self._finished[next(iter(self._finished))]

    def discard(self, key: GroupKey) -> None:
        """Forget a message's parts without completing or expiring it (it
        was refused); a part of it arriving later opens a new group."""
        self._groups.pop(key, None)
        self._finished.pop(key, None)

    def next_deadline(self) -> float | None:
        """
        @return: the clock time at which the oldest incomplete message
            expires, or C{None} if none is held; a service can schedule its
            next call to L{expired} then.
        """
        if not self._groups:
            return None
        return min(g.first_seen for g in self._groups.values()) + self.timeout

    def expired(self, now: float | None = None) -> list[Incomplete]:
        """
        Remove and return the messages whose first part is at least the
        timeout old.

        @param now: the time to compare with; the clock's by default.
        @return: the expired messages, oldest first.
        """
        if now is None:
            now = self._clock()
        out = []
        for key, group in list(self._groups.items()):
            if now - group.first_seen < self.timeout:
                continue
            del self._groups[key]
            out.append(self._incomplete(key, group))
            texts = tuple(group.parts.get(i) for i in range(1, key.total + 1))
            self._remember(key, now, texts)
        for key, (when, _) in list(self._finished.items()):
            if now - when >= self.timeout:
                del self._finished[key]
        out.sort(key=lambda inc: inc.first_seen)
        return out

    def _incomplete(self, key: GroupKey, group: _Group) -> Incomplete:
        missing = tuple(i for i in range(1, key.total + 1) if i not in group.parts)
        parts = tuple(sorted(group.parts.items()))
        text = None
        if self.policy == DELIVER_PARTIAL:
            text = repair_surrogates("".join(
                group.parts[i] if i in group.parts
                else self._missing_marker.format(sequence=i, total=key.total)
                for i in range(1, key.total + 1)))
        return Incomplete(key, group.first_seen, parts, missing, text)

    def export_state(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """
        The state as plain tuples of str, int, float and None, for storing.

        @return: C{(groups, finished)}: each group is C{(origin, sender,
            recipient, reference, total, first_seen, ((sequence, text),
            ...))}; each finished entry is C{(origin, sender, recipient,
            reference, total, finished_at, texts)} with C{None} for a part
            that never arrived.
        """
        groups = tuple(
            tuple(key) + (g.first_seen, tuple(sorted(g.parts.items())))
            for key, g in self._groups.items())
        finished = tuple(
            tuple(key) + (when, texts) for key, (when, texts) in self._finished.items())
        return groups, finished

    def import_state(self, state: tuple[tuple[Any, ...], tuple[Any, ...]]) -> None:
        """
        Replace the state with one from L{export_state}.

        @param state: C{(groups, finished)} as L{export_state} returns.
        @raise ValueError: if the state is not in that shape.
        """
        try:
            groups_in, finished_in = state
            groups: dict[GroupKey, _Group] = {}
            for key, first_seen, parts in sorted(map(_row, groups_in), key=lambda r: r[1]):
                held = {}
                for seq, text in parts:
                    if not (isinstance(seq, int) and 1 <= seq <= key.total
                            and isinstance(text, str)):
                        raise ValueError(f"bad part {seq!r} for {key}")
                    held[seq] = text
                groups[key] = _Group(first_seen, held)
            finished: dict[GroupKey, tuple[float, tuple[str | None, ...]]] = {}
            for key, when, texts in sorted(map(_row, finished_in), key=lambda r: r[1]):
                texts = tuple(texts)
                if len(texts) != key.total or not all(
                        t is None or isinstance(t, str) for t in texts):
                    raise ValueError(f"bad texts for {key}")
                finished[key] = (when, texts)
        except (TypeError, ValueError) as e:
            raise ValueError(f"not a Reassembler state: {e}") from None
        self._groups = groups
        self._finished = finished


def _row(row: tuple[Any, ...]) -> tuple[GroupKey, float, Any]:
    """
    Check one exported row's key and time.

    @param row: C{(origin, sender, recipient, reference, total, time, data)}.
    @return: the key, the time and the data.
    @raise ValueError: if the row is not in that shape.
    """
    if not isinstance(row, tuple) or len(row) != 7:
        raise ValueError(f"row {row!r} is not a 7-tuple")
    origin, sender, recipient, reference, total, when, data = row
    if not all(isinstance(v, str) for v in (origin, sender, recipient)):
        raise ValueError(f"row {row!r}: origin, sender and recipient must be str")
    if not isinstance(reference, int) or not isinstance(total, int) or not 1 <= total <= 255:
        raise ValueError(f"row {row!r}: bad reference or total")
    if not isinstance(when, (int, float)):
        raise ValueError(f"row {row!r}: bad time")
    return GroupKey(origin, sender, recipient, reference, total), float(when), data


#: Stored message encoding by alphabet.
ENCODINGS = {Alphabet.GSM7: "gsm7", Alphabet.UCS2: "ucs2",
             Alphabet.LATIN1: "latin1", Alphabet.ASCII: "ascii"}


def text_of(submit: pdus.Submit):
    """
    Decode a submit's text.

    @return: C{(text, concatenation or None, encoding)}.
    @raise pdus.PDUError: C{ESME_RINVDCS} for binary or undecodable
        text, C{ESME_RINVESMCLASS} for a bad UDH, C{ESME_RINVOPTPARAMVAL}
        for bad SAR TLVs.
    """
    try:
        alphabet = alphabet_for(submit.data_coding)
        elements, body, udh_len = split_user_data(submit.body,
                                                  submit.esm_class)
        concat = concatenation_from_udh(elements)
    except TextCodingError as e:
        raise pdus.PDUError(Status.ESME_RINVDCS, str(e)) from None
    except ConcatenationError as e:
        raise pdus.PDUError(Status.ESME_RINVESMCLASS, str(e)) from None
    if concat is None:
        try:
            concat = concatenation_from_sar(*submit.sar)
        except ConcatenationError as e:
            raise pdus.PDUError(Status.ESME_RINVOPTPARAMVAL,
                                str(e)) from None
    try:
        text = decode_short_message(
            submit.data_coding, body, udh_length=udh_len,
            partial=concat is not None and concat.total > 1)
    except TextCodingError as e:
        raise pdus.PDUError(Status.ESME_RINVDCS, str(e)) from None
    return text, concat, ENCODINGS.get(alphabet, "utf-8")
