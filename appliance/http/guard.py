# -*- test-case-name: tests.http.test_guard -*-
"""
Who may send, and how fast: credentials (HTTP Basic, Bearer token,
username/password parameters), failed attempts limited per source
address, messages per second per tenant, requests in flight, and the
node's admission (storage backlog, reactor lag: 503 with C{Retry-After}).
Every refusal for load is counted by reason in the node's refusals
(C{/metrics}, a warning at most once a second).

Password hashes (scrypt, some 40 ms each) are verified off the reactor
thread; a successful check is remembered against the hash it matched, so
a client that sends its password with every request costs one scrypt per
password change, not one per request.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from appliance.admission import Refusals
from appliance.http.params import APIError


def credentials(authorization: bytes | None, params: dict[str, list[str]]
                ) -> tuple[str, str | None, str | None]:
    """
    Read the credentials of a request.

    @param authorization: the C{Authorization} header.
    @param params: the request parameters (C{username}, C{password}).
    @return: C{("token", None, token)}, C{("password", name, password)},
        or C{("none", None, None)}.
    @raise APIError: a malformed C{Authorization} header (401).
    """
    if authorization:
        scheme, _, value = authorization.partition(b" ")
        scheme = scheme.lower()
        value = value.strip()
        try:
            if scheme == b"bearer" and value:
                return "token", None, value.decode("ascii")
            if scheme == b"basic" and value:
                text = base64.b64decode(value, validate=True).decode("utf-8")
                name, sep, password = text.partition(":")
                if sep:
                    return "password", name, password
        except (ValueError, UnicodeDecodeError):
            pass
        raise APIError("unauthorized", "malformed Authorization header")
    name = (params.get("username") or [None])[0]
    password = (params.get("password") or [None])[0]
    if name is not None and password is not None:
        return "password", name, password
    return "none", None, None


class FailureLimiter:
    """
    Failed authentications per source address in a sliding window; past
    the limit, requests from that address are refused without a check.
    """

    def __init__(self, clock: Any, limit: int = 10, window: float = 60.0,
                 max_sources: int = 100_000) -> None:
        self.clock, self.limit, self.window = clock, limit, window
        self.max_sources = max_sources
        self._failures: dict[str, list[float]] = {}

    def _recent(self, source: str) -> list[float]:
        now = self.clock.seconds()
        times = [t for t in self._failures.get(source, ()) if
                 t > now - self.window]
        if times:
            self._failures[source] = times
        else:
            self._failures.pop(source, None)
        return times

    def blocked(self, source: str) -> int:
        """@return: seconds to wait (0: not blocked)."""
        if source not in self._failures:
            return 0
        times = self._recent(source)
        if len(times) < self.limit:
            return 0
        return max(1, math.ceil(times[0] + self.window
                                - self.clock.seconds()))

    def failed(self, source: str) -> None:
        """Count one failure from C{source}."""
        if len(self._failures) >= self.max_sources:
            self._failures.clear()
        self._failures.setdefault(source, []).append(self.clock.seconds())


class TokenBucket:
    """C{rate} messages per second with a burst of one second's worth."""

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate)
        self.stamp = now

    def take(self, count: int, now: float) -> int:
        """
        Take C{count} tokens if there are enough.

        @return: 0 if taken, else the seconds to wait for them.
        """
        self.tokens = min(float(self.rate), self.tokens
                          + (now - self.stamp) * self.rate)
        self.stamp = now
        if count <= self.tokens:
            self.tokens -= count
            return 0
        return max(1, math.ceil((count - self.tokens) / self.rate))


class Guard:
    """
    Authenticates requests and keeps the per-tenant and global limits.

    @ivar in_flight: send requests being served.
    @ivar tenant_in_flight: per tenant.
    """

    log = Logger()

    def __init__(self, clock: Any, tenants: Callable[[], Any],
                 verify: Callable[[str, str], defer.Deferred],
                 auth_failures: int = 10, max_in_flight: int = 2000,
                 tenant_in_flight: int = 200, admission: Any = None) -> None:
        """
        @param tenants: returns the current L{HTTPRoot}.
        @param verify: C{verify(hash, password)} returns a Deferred firing
            with whether it matches (in a thread in the node).
        @param admission: the node's L{appliance.admission.Admission}
            (C{overloaded()} and its C{refusals}), or C{None}.
        """
        self.clock = clock
        self.tenants = tenants
        self.verify = verify
        self.failures = FailureLimiter(clock, auth_failures)
        self.max_in_flight = max_in_flight
        self.tenant_max = tenant_in_flight
        self.in_flight = 0
        self.tenant_in_flight: dict[str, int] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._verified: dict[bytes, str] = {}
        self._key = os.urandom(16)
        self.admission = admission
        self.refusals = admission.refusals if admission is not None \
            else Refusals(clock)

    def stop(self) -> None:
        """Report the refusals counted here (when not the node's)."""
        if self.admission is None:
            self.refusals.stop()

    def _overload(self, reason: str, error: APIError) -> APIError:
        self.refusals.refused("http", reason)
        return error

    def _cache_key(self, name: str, password: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{password}".encode("utf-8"),
                        hashlib.sha256).digest()

    def authenticate(self, source: str, authorization: bytes | None,
                     params: dict[str, list[str]]) -> defer.Deferred:
        """
        @return: a Deferred firing with the tenant, or failing with
            L{APIError} (see L{check}).
        """
        try:
            result = self.check(source, authorization, params)
        except APIError as e:
            return defer.fail(e)
        if isinstance(result, defer.Deferred):
            return result
        return defer.succeed(result)

    def check(self, source: str, authorization: bytes | None,
              params: dict[str, list[str]]) -> Any:
        """
        Authenticate a request, at once when that needs no password
        hashing (a Bearer token; a password that checked out before
        against the same stored hash).

        @return: the tenant (its L{appliance.http.model.TenantView}), or a
            Deferred firing with it once a password has been verified off
            the reactor thread.
        @raise APIError: 401 wrong or no credentials, 429 too many
            failures from this address, 403 address not allowed or tenant
            shut down (the Deferred fails with the same).
        """
        wait = self.failures.blocked(source)
        if wait:
            self.refusals.refused("http", "auth failures")
            raise APIError("throttled", "too many failed authentications "
                           "from this address", retry_after=wait)
        try:
            kind, name, secret = credentials(authorization, params)
        except APIError as e:
            self._failed(source, None, e.reason)
            raise
        if kind == "none":
            raise APIError("unauthorized", "credentials required (Basic, "
                           "Bearer or username and password)")
        root = self.tenants()
        if kind == "token":
            tenant = root.by_token(secret)
            if tenant is None:
                self._refuse(source, None, "unknown token")
            return self._admit(source, tenant)
        tenant = root.tenants.get(name)
        if tenant is None or tenant.password_hash is None:
            self._refuse(source, name, "unknown tenant or no password set")
        key = self._cache_key(tenant.name, secret)
        stored = tenant.password_hash
        if self._verified.get(key) == stored:
            return self._admit(source, tenant)
        d = self.verify(stored, secret)

        def checked(ok: bool):
            if not ok:
                self._refuse(source, name, "wrong password")
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[key] = stored
            return self._admit(source, tenant)
        return d.addCallback(checked)

    def _failed(self, source: str, name: str | None, why: str) -> None:
        self.failures.failed(source)
        self.log.warn("HTTP authentication failed from {source} for "
                      "{name}: {why}", source=source, name=name or "-",
                      why=why)

    def _refuse(self, source: str, name: str | None, why: str) -> None:
        self._failed(source, name, why)
        raise APIError("unauthorized", "authentication failed")

    def _admit(self, source: str, tenant: Any) -> Any:
        if not tenant.enabled:
            raise APIError("forbidden", f"tenant {tenant.name} is shut down")
        if not tenant.source_allowed(source):
            self.log.warn("HTTP request of tenant {name} from {source}: "
                          "address not allowed", name=tenant.name,
                          source=source)
            raise APIError(
                "address_not_allowed",
                f"requests from {source} are not allowed for this tenant")
        return tenant

    # -- limits ----------------------------------------------------------

    def enter(self, tenant: str) -> None:
        """
        Count a send request in flight.

        @raise APIError: 503 while the node's admission refuses new work
            or past the node's cap, 429 past the tenant's.
        """
        if self.admission is not None:
            why = self.admission.overloaded()
            if why is not None:
                raise self._overload(why, APIError(
                    "overloaded", "the node is overloaded; try again "
                    "shortly", retry_after=1))
        if self.in_flight >= self.max_in_flight:
            raise self._overload("node in flight", APIError(
                "overloaded", "the node is serving too many requests; try "
                "again shortly", retry_after=1))
        mine = self.tenant_in_flight.get(tenant, 0)
        if mine >= self.tenant_max:
            raise self._overload("tenant in flight", APIError(
                "throttled", "too many concurrent requests for this tenant",
                retry_after=1))
        self.in_flight += 1
        self.tenant_in_flight[tenant] = mine + 1

    def leave(self, tenant: str) -> None:
        """A request counted by L{enter} is answered."""
        self.in_flight -= 1
        left = self.tenant_in_flight.get(tenant, 1) - 1
        if left > 0:
            self.tenant_in_flight[tenant] = left
        else:
            self.tenant_in_flight.pop(tenant, None)

    def throttle(self, tenant: Any, count: int) -> None:
        """
        Take C{count} messages from the tenant's throughput.

        @raise APIError: 429 with C{Retry-After} when over it.
        """
        rate = tenant.throughput
        if not rate:
            return
        now = self.clock.seconds()
        bucket = self._buckets.get(tenant.name)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[tenant.name] = TokenBucket(rate, now)
        wait = bucket.take(count, now)
        if wait:
            raise self._overload("throughput", APIError(
                "throttled", f"over the tenant's throughput of {rate} "
                f"messages per second", retry_after=wait))
