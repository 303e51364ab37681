# -*- test-case-name: tests.messaging.test_lanes -*-
"""
Delivery lanes: how many messages one destination (an app's account, a
service policy's route) may have in delivery at once, and who waits.

A slow or dead destination holds its own lane full and its own messages
waiting; the others' lanes are untouched, so their deliveries never
queue behind it, and the node holds at most C{limit} attempts (SIP
transactions with their retransmissions, SMPP window waiters) for it.
A message beyond its lane's C{limit} waits in the lane's queue (in
memory, in order); beyond C{queue_limit} waiting, L{Lanes.park} says no
and the core schedules it for a later attempt instead (it is on disk).

Pure: no Twisted, no database.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Hashable


class Lanes:
    """
    Per-destination concurrency.

    @ivar busy: destination key to deliveries under way.
    @ivar waiting: destination key to the items waiting for a slot.
    """

    def __init__(self, limit: int = 100, queue_limit: int = 10_000,
                 total_waiting: int = 100_000) -> None:
        """
        @param limit: deliveries under way per destination.
        @param queue_limit: items waiting per destination.
        @param total_waiting: items waiting in all lanes together.
        """
        self.limit = limit
        self.queue_limit = queue_limit
        self.total_waiting = total_waiting
        self.busy: dict[Hashable, int] = {}
        self.waiting: dict[Hashable, deque] = {}
        self._held: set[Any] = set()
        self._waiting_count = 0

    def enter(self, key: Hashable) -> bool:
        """
        Take a slot of C{key}'s lane.

        @return: whether one was free (then L{leave} must follow).
        """
        n = self.busy.get(key, 0)
        if n >= self.limit:
            return False
        self.busy[key] = n + 1
        return True

    def park(self, key: Hashable, ident: Any, item: Any) -> bool:
        """
        Queue C{item} (known by C{ident}) for C{key}'s next free slot.

        @return: whether it was queued (C{False}: the lane's queue, or all
            queues together, are full).
        """
        queue = self.waiting.get(key)
        if (queue is not None and len(queue) >= self.queue_limit) \
                or self._waiting_count >= self.total_waiting:
            return False
        if queue is None:
            queue = self.waiting[key] = deque()
        queue.append((ident, item))
        self._held.add(ident)
        self._waiting_count += 1
        return True

    def holds(self, ident: Any) -> bool:
        """@return: whether C{ident} is waiting in some lane."""
        return ident in self._held

    def leave(self, key: Hashable) -> Any:
        """
        Give back a slot of C{key}'s lane.

        @return: the next waiting item, which now holds that slot (the
            caller delivers it, then calls L{leave} again), or C{None}.
        """
        queue = self.waiting.get(key)
        if queue:
            ident, item = queue.popleft()
            self._held.discard(ident)
            self._waiting_count -= 1
            if not queue:
                del self.waiting[key]
            return item
        n = self.busy.get(key, 0) - 1
        if n > 0:
            self.busy[key] = n
        else:
            self.busy.pop(key, None)
        return None

    def waiting_count(self) -> int:
        """@return: items waiting in every lane."""
        return self._waiting_count
