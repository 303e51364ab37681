"""
Digest authentication of requests from apps, shared by the registrar
(C{401}/WWW-Authenticate) and the MESSAGE service (C{407}/Proxy-Authenticate),
with a per-source failure rate limit.

The credentials come from L{AccountBook}: a snapshot of the accounts'
realm, HA1s, C{enabled} flag and DIDs as immutable records, read in a
connection of its own (so the reactor thread's object cache holds no
account), each account once after a configuration commit; every other
REGISTER or MESSAGE touches no persistent object.  On a database shared by several nodes the commit is
another node's: the node that committed bumps a counter in the database
(C{root["sip_config_serial"]}), and the others rebuild when their poll of
the database shows it moved.
"""
from __future__ import annotations

import secrets
import sys
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from appliance.sip.digest import (NonceCounter, NonceFactory, Outcome, Verifier,
                                  realm_credential)
from appliance.sip.tokens import token_hex
from appliance.sip.message import Request, Response, make_response

__all__ = ["AccountBook", "AuthResult", "Credentials", "DigestGate", "FailureLimiter"]

#: The database key of the configuration serial (a C{BTrees.Length}).
SERIAL_KEY = "sip_config_serial"

#: Seconds over which failures from one source are counted.
WINDOW = 60.0


class FailureLimiter:
    """
    Count authentication failures per source address over a sliding minute.

    @ivar limit: failures allowed per window; more means blocked.
    @ivar max_sources: the most sources remembered (oldest forgotten).
    """

    def __init__(self, clock: IReactorTime, limit: int, window: float = WINDOW,
                 max_sources: int = 100_000) -> None:
        """
        @param clock: the reactor's time.
        @param limit: failures allowed per window.
        @param window: the window in seconds.
        @param max_sources: memory bound.
        """
        self._clock = clock
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        #: Called with C{(source, until)} when a failure blocks a source
        #: (or keeps it blocked longer): until is when it is let in again
        #: (the clock's seconds), unless it fails again.  The SIP workers
        #: are told, so that they leave its requests to this process.
        self.on_block: Callable[[str, float], None] | None = None

    def _recent(self, source: str) -> deque[float] | None:
        times = self._failures.get(source)
        if times is None:
            return None
        cutoff = self._clock.seconds() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del self._failures[source]
            return None
        return times

    def blocked(self, source: str) -> bool:
        """
        @param source: the source host.
        @return: whether it failed more than C{limit} times in the window.
        """
        times = self._recent(source)
        return times is not None and len(times) > self.limit

    def blocks(self) -> list[tuple[str, float]]:
        """
        @return: the sources blocked now, each with when it is let in
            again (unless it fails again).
        """
        found = []
        for source in list(self._failures):
            times = self._recent(source)
            if times is not None and len(times) > self.limit:
                found.append((source, self._until(times)))
        return found

    def _until(self, times: deque[float]) -> float:
        """When a blocked source's failures drop back to C{limit} in the window."""
        return times[-(self.limit + 1)] + self.window

    def fail(self, source: str) -> None:
        """
        Record a failure.

        @param source: the source host.
        """
        times = self._recent(source)
        if times is None:
            times = self._failures[source] = deque()
        times.append(self._clock.seconds())
        self._failures.move_to_end(source)
        if len(times) > self.limit and self.on_block is not None:
            self.on_block(source, self._until(times))
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Credentials:
    """
    What the SIP hot paths need of an account, read once per rebuild.

    @ivar username: the account.
    @ivar realm: the realm its HA1s were made for, or C{None}.
    @ivar ha1_md5: hex HA1 for MD5, or C{None}.
    @ivar ha1_sha256: hex HA1 for SHA-256, or C{None}.
    @ivar enabled: whether it may register and send.
    @ivar dids: its DIDs (E.164 digits), sorted.
    """

    username: str
    realm: str | None
    ha1_md5: str | None
    ha1_sha256: str | None
    enabled: bool
    dids: tuple[str, ...]

    def check_ha1(self, algorithm: str) -> str | None:
        """
        @param algorithm: C{MD5} or C{SHA-256}, any case.
        @return: the HA1 for it, or C{None}.
        """
        name = algorithm.upper()
        if name == "MD5":
            return self.ha1_md5
        if name in ("SHA-256", "SHA256"):
            return self.ha1_sha256
        return None

    @classmethod
    def of(cls, account: Any, username: str | None = None) -> "Credentials":
        """
        @param account: an L{appliance.model.customers.Account}.
        @param username: its username object (the snapshot's dict key),
            so the two share one string.
        @return: its credentials.
        """
        realm = account.realm
        return cls(username or account.username, None if realm is None else sys.intern(realm),
                   account.ha1_md5, account.ha1_sha256, bool(account.enabled),
                   tuple(account.dids) or ())


class AccountBook:
    """
    The accounts as the SIP service reads them: username to immutable
    L{Credentials}, filled on first use from a reader connection of its
    own and dropped whole (a new empty dict swapped in) when the
    configuration changes.

    Reading all accounts at every commit would stall the reactor for
    seconds at 100,000 accounts (about 4 s of CPU on this machine); so
    each account is read once, at its first request after a change (one
    BTree lookup and one object load, in the reader's connection, whose
    cache is emptied every L{RELEASE_EVERY} reads), and every later
    request of it reads the dict only.

    @ivar rebuilds: snapshots started so far (one per configuration
        change seen; statistics, tests).
    @ivar reads: accounts read from the database so far.
    @ivar plan: the node's numbering plan as of the snapshot.
    """

    log = Logger()

    #: Reads between two empties of the reader connection's cache.
    RELEASE_EVERY = 2000

    def __init__(self, storage: Any, plan: Callable[[Any], Any] | None = None) -> None:
        """
        @param storage: the L{appliance.store.database.Storage} (its
            C{reader()}, change listeners and C{batch}).
        @param plan: reads the node's numbering plan from the root
            (L{appliance.model.numbering.node_plan}); C{None}: none kept.
        """
        self._storage = storage
        self._plan_of = plan
        self._accounts: dict[str, Credentials] = {}
        self._reader: Any = None
        self.plan: Any = None
        self._stale = True
        self._serial: int | None = None
        self._unreleased = 0
        self.rebuilds = 0
        self.reads = 0
        #: Called when a configuration change makes the snapshot stale
        #: (the SIP service tells its workers to drop their HA1s).
        self.on_stale: Callable[[], Any] | None = None

    def start(self) -> None:
        """Open the snapshot and follow the configuration."""
        self._storage.add_change_listener(self._changed)
        self.rebuild()

    def stop(self) -> None:
        """Stop following the configuration; close the reader."""
        try:
            self._storage.remove_change_listener(self._changed)
        except ValueError:
            pass
        self._close_reader()
        self._stale = True

    def get(self, username: str) -> Credentials | None:
        """
        @param username: the account.
        @return: its credentials, or C{None} for no such account (not
            remembered: unknown names must not fill memory).
        """
        if self._stale:
            self.rebuild()
        found = self._accounts.get(username)
        if found is not None:
            return found
        return self._read(username)

    __call__ = get

    def current_plan(self) -> Any:
        """@return: the numbering plan of the snapshot."""
        if self._stale:
            self.rebuild()
        return self.plan

    def __len__(self) -> int:
        return len(self._accounts)

    def _read(self, username: str) -> Credentials | None:
        reader = self._reader
        if reader is None:
            return None
        try:
            account = reader.root().accounts.get(username)
            found = None if account is None else Credentials.of(account, username)
        except Exception:
            # Broad: a database read (its errors depend on the storage);
            # the request is answered as for an unknown account.
            self.log.failure("account {username} unreadable", username=username)
            return None
        self.reads += 1
        self._unreleased += 1
        if self._unreleased >= self.RELEASE_EVERY:
            self._unreleased = 0
            reader.release()
        if found is not None:
            self._accounts[username] = found
        return found

    def _read_serial(self) -> int | None:
        counter = self._storage.domain_get(SERIAL_KEY)
        return None if counter is None else counter()

    def _changed(self, note: str) -> None:
        if note != "sync":
            # A commit of this node: a new snapshot, and tell the others.
            self._went_stale()
            if self._storage.domain_get(SERIAL_KEY) is not None:
                self._storage.batch(_bump).addErrback(
                    lambda f: self.log.failure("configuration serial not bumped", f))
            return
        try:
            serial = self._read_serial()
        except Exception:
            # Broad: a database read; a new snapshot is taken instead.
            self.log.failure("configuration serial unreadable")
            self._went_stale()
            return
        if serial != self._serial:
            self._went_stale()

    def _went_stale(self) -> None:
        self._stale = True
        if self.on_stale is not None:
            try:
                self.on_stale()
            except Exception:
                # Broad: a listener's bug must not stop the snapshot's.
                self.log.failure("account snapshot listener failed")

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            try:
                reader.release()  # back to the pool: leave its cache empty
                reader.close()
            except Exception:
                # Broad: closing a reader must not stop the new snapshot.
                self.log.failure("account reader not closed")

    def rebuild(self) -> None:
        """
        Start a new snapshot: a fresh reader (it sees every commit so
        far), an empty dict, the numbering plan read again.  On an error
        keep the old one (and try again at the next read).
        """
        try:
            serial = self._read_serial()
            reader = self._storage.reader()
        except Exception:
            # Broad: database reads; the old snapshot serves meanwhile.
            self.log.failure("account snapshot not rebuilt")
            return
        try:
            plan = self._plan_of(reader.root()) if self._plan_of is not None else None
        except Exception:
            # Broad: as above.
            self.log.failure("account snapshot not rebuilt")
            reader.close()
            return
        self._close_reader()
        self._reader = reader
        self._accounts, self.plan, self._serial = {}, plan, serial
        self._unreleased = 0
        self._stale = False
        self.rebuilds += 1


def _bump(root: Any) -> None:
    """Batched write: one more configuration change."""
    root[SERIAL_KEY].change(1)


@dataclass(frozen=True)
class AuthResult:
    """
    The outcome of L{DigestGate.authenticate}.

    @ivar username: the authenticated account, or C{None}.
    @ivar response: the answer to send instead (challenge or refusal), or
        C{None} when authenticated.
    """

    username: str | None = None
    response: Response | None = None


class DigestGate:
    """
    Challenge and verify digest credentials for one realm.

    @ivar verifier: the L{Verifier} (realm, nonces, nonce-counts).
    @ivar limiter: the L{FailureLimiter}.
    @ivar failures: authentication failures so far (statistics).
    """

    log = Logger()

    def __init__(self, realm: str, algorithms: tuple[str, ...], nonce_lifetime: float,
                 auth_failures: int, clock: IReactorTime,
                 account: Callable[[str], Any], secret: bytes | None = None) -> None:
        """
        @param realm: our digest realm.
        @param algorithms: offered in this order.
        @param nonce_lifetime: seconds a nonce is valid.
        @param auth_failures: failures per source and minute before 403 at once.
        @param clock: the reactor's time.
        @param account: username to the account (with C{enabled}, C{realm},
            C{check_ha1(algorithm)}) or C{None}.
        @param secret: the nonce secret; random when C{None}.
        """
        #: The nonce secret (the SIP workers challenge with it too).
        self.secret = secret or secrets.token_bytes(32)
        nonces = NonceFactory(self.secret, clock, nonce_lifetime)
        self.verifier = Verifier(realm, nonces, NonceCounter(), algorithms)
        self.limiter = FailureLimiter(clock, auth_failures)
        self.failures = 0
        self._account = account
        #: Set by the SIP service while it hands over a datagram a worker
        #: verified: C{(username, algorithm, HA1, nonce, nc, Call-ID,
        #: method)}, taken by the request it belongs to.
        self.vouched: tuple | None = None
        #: Set to a list by the SIP service while it hands over any other
        #: datagram a worker forwarded: the usernames verified here go to
        #: the workers (their HA1s), so they verify the next ones.
        self.taught: list[str] | None = None
        #: Requests a worker's verification let through (statistics).
        self.vouches = 0

    def _ha1(self, username: str, algorithm: str) -> str | None:
        account = self._account(username)
        if account is None or not getattr(account, "enabled", False):
            return None
        if account.realm != self.verifier.realm:
            return None
        return account.check_ha1(algorithm)

    def challenge(self, request: Request, proxy: bool, stale: bool = False) -> Response:
        """
        @param request: the request to challenge.
        @param proxy: C{407}/Proxy-Authenticate instead of C{401}/WWW-Authenticate.
        @param stale: mark the challenges stale.
        @return: the challenge response, one header per algorithm, in order.
        """
        response = make_response(request, 407 if proxy else 401, to_tag=_tag())
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        for value in self.verifier.challenge_values(stale=stale):
            response.headers.add(name, value)
        return response

    def refuse(self, request: Request, source: str, reason: str) -> Response:
        """
        Count a failure from C{source} and build the 403.

        @param request: the request refused.
        @param source: its source host.
        @param reason: for the log.
        @return: the C{403 Forbidden}.
        """
        self.failures += 1
        self.limiter.fail(source)
        self.log.info("SIP authentication failed from {source}: {reason}",
                      source=source, reason=reason)
        return make_response(request, 403, to_tag=_tag())

    def authenticate(self, request: Request, source: str, proxy: bool) -> AuthResult:
        """
        Check a request's credentials.

        @param request: the request.
        @param source: the source host (for the rate limit).
        @param proxy: use Proxy-Authorization and 407 (MESSAGE) instead of
            Authorization and 401 (REGISTER).
        @return: the account username, or the response to send.
        """
        if self.limiter.blocked(source):
            self.failures += 1
            self.log.warn("SIP request from {source} refused: too many authentication"
                          " failures", source=source)
            return AuthResult(response=make_response(request, 403, "Too Many Failures",
                                                     to_tag=_tag()))
        vouched = self.vouched
        if vouched is not None:
            self.vouched = None
            username, algorithm, ha1, nonce, nc, call_id, method = vouched
            if (call_id == request.call_id and method == request.method
                    and ha1 is not None and ha1 == self._ha1(username, algorithm)):
                # A worker checked the response and the nonce; the count
                # is ours (a replay may reach any worker).
                if self.verifier.counter.accept(nonce, nc):
                    self.vouches += 1
                    return AuthResult(username=username)
                self.log.info("SIP nonce-count replay from {source} refused", source=source)
                return AuthResult(response=self.challenge(request, proxy))
            # Not this request's, or the account changed meanwhile: verify here.
        value = self._credential(request, "Proxy-Authorization" if proxy else "Authorization")
        if value is None:
            return AuthResult(response=self.challenge(request, proxy))
        verdict = self.verifier.verify(value, request.method, self._ha1)
        if verdict.outcome is Outcome.OK:
            if self.taught is not None:
                self.taught.append(verdict.username)
            return AuthResult(username=verdict.username)
        if verdict.outcome is Outcome.STALE:
            return AuthResult(response=self.challenge(request, proxy, stale=True))
        if verdict.outcome is Outcome.REPLAY:
            self.log.info("SIP nonce-count replay from {source} refused", source=source)
            return AuthResult(response=self.challenge(request, proxy))
        what = "malformed credentials" if verdict.outcome is Outcome.MALFORMED else \
            f"wrong credentials for {verdict.username!r}"
        return AuthResult(response=self.refuse(request, source, what))

    def _credential(self, request: Request, name: str) -> dict[str, str] | str | None:
        """
        The credential for our realm (L{realm_credential}) in the
        request's C{name} headers.
        """
        return realm_credential(request.headers.get_all(name), self.verifier.realm)


def _tag() -> str:
    return token_hex(6)
