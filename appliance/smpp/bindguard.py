# -*- test-case-name: tests.smpp.test_smpp_bindguard -*-
"""
What a bind attempt may cost the node: failed binds counted per source
address (past the limit the source is locked out and refused without a
password check), password checks run one at a time per source and two at a time in all
(a few more from one source wait their turn: a carrier opens its binds
together), a password that checked out is remembered so a carrier's
re-binds cost no new check, and the checks themselves run by an injected
C{verify} (a thread in the node: scrypt costs some 40 ms and releases the
GIL, so it must not run on the reactor thread).
"""
from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections import OrderedDict
from typing import Any, Callable

from twisted.internet import defer, threads
from twisted.logger import Logger

from appliance.model.passwords import verify_secret

Verify = Callable[[str | None, str], defer.Deferred]


def inline_verify(stored: str | None, password: str) -> defer.Deferred:
    """Check on the calling thread (unit tests; never the node)."""
    return defer.maybeDeferred(verify_secret, stored, password)


def thread_verify(reactor: Any) -> Verify:
    """@return: a C{verify} that runs the check in the reactor's thread
    pool."""
    def verify(stored: str | None, password: str) -> defer.Deferred:
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(),
                                         verify_secret, stored, password)
    return verify


class BindGuard:
    """
    Per-source failure counts and lock-outs, and the bounded queue of
    password checks.

    @ivar limit: failures within C{window} seconds that lock a source
        out; it stays locked until the oldest of them is C{window} old.
    @ivar per_source: checks one source may have in progress or waiting
        (they run one at a time per source); past it a bind is refused.
    @ivar checking: checks in progress or waiting per source.
    @ivar remembered: how many passwords that checked out are kept (as a
        keyed hash with the stored hash they matched, never in clear) so a
        re-bind costs no new check; a changed password has another stored
        hash and is checked again.
    """

    log = Logger()

    def __init__(self, clock: Any, verify: Verify, limit: int = 5,
                 window: float = 60.0, per_source: int = 8,
                 concurrent: int = 2, max_waiting: int = 64,
                 max_sources: int = 100_000,
                 remembered: int = 4096) -> None:
        self.clock = clock
        self.verify_fn = verify
        self.limit, self.window = limit, window
        self.per_source = per_source
        self.max_waiting = max_waiting
        self.max_sources = max_sources
        self.checking: dict[str, int] = {}
        self._failures: dict[str, list[float]] = {}
        self._semaphore = defer.DeferredSemaphore(concurrent)
        self._locks: dict[str, defer.DeferredLock] = {}
        self.remembered = remembered
        self._good: OrderedDict[bytes, None] = OrderedDict()
        self._key = os.urandom(32)

    def locked(self, source: str) -> int:
        """@return: seconds until C{source} may try again (0: now)."""
        times = self._failures.get(source)
        if not times:
            return 0
        now = self.clock.seconds()
        times[:] = [t for t in times if t > now - self.window]
        if not times:
            del self._failures[source]
            return 0
        if len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[-self.limit] + self.window - now))

    def failed(self, source: str, system_id: str, why: str) -> None:
        """Count a failed bind from C{source}; log the lock-out when this
        one reaches the limit."""
        if len(self._failures) >= self.max_sources \
                and source not in self._failures:
            self._failures.clear()
        times = self._failures.setdefault(source, [])
        times.append(self.clock.seconds())
        del times[:-self.limit]
        self.log.info("SMPP bind of {system_id!r} from {source} failed: "
                      "{why}", system_id=system_id, source=source, why=why)
        if len(times) >= self.limit and self.locked(source):
            self.log.warn("SMPP binds from {source} locked out for {secs} s "
                          "after {n} failures (last as {system_id!r})",
                          source=source, secs=self.locked(source),
                          n=self.limit, system_id=system_id)

    def succeeded(self, source: str) -> None:
        """A bind from C{source} succeeded: forget its failures."""
        self._failures.pop(source, None)

    def busy(self, source: str) -> str | None:
        """@return: why a check for C{source} cannot start now, or
        C{None}."""
        if self.checking.get(source, 0) >= self.per_source:
            return "too many binds from this address being checked"
        if len(self._semaphore.waiting) >= self.max_waiting:
            return "too many binds being checked"
        return None

    def _digest(self, stored: str | None, password: str) -> bytes:
        return hmac.new(self._key, f"{stored}\0{password}".encode(),
                        hashlib.sha256).digest()

    def verify(self, source: str, stored: str | None,
               password: str) -> defer.Deferred:
        """
        Check a password (call L{busy} first): at once if it checked out
        before against the same stored hash, else in the bounded queue,
        one at a time per source.

        @return: a Deferred firing with whether it matches.
        """
        digest = self._digest(stored, password) if stored else None
        if digest is not None and digest in self._good:
            self._good.move_to_end(digest)
            return defer.succeed(True)
        self.checking[source] = self.checking.get(source, 0) + 1
        lock = self._locks.get(source)
        if lock is None:
            lock = self._locks[source] = defer.DeferredLock()

        def check():
            if digest is not None and digest in self._good:
                return True
            return self._semaphore.run(self.verify_fn, stored, password)

        def done(result):
            left = self.checking.get(source, 1) - 1
            if left:
                self.checking[source] = left
            else:
                self.checking.pop(source, None)
                self._locks.pop(source, None)
            if result is True and digest is not None:
                self._good[digest] = None
                while len(self._good) > self.remembered:
                    self._good.popitem(last=False)
            return result
        return lock.run(check).addBoth(done)
