"""
HTTP digest authentication for SIP (RFC 3261 22.4, RFC 7616, RFC 8760), pure.

The database keeps only HA1 = H(user:realm:password) per algorithm, so
L{check_response} takes an HA1. Nonces carry their issue time and a MAC
(keyed BLAKE2b) under a server secret (L{NonceFactory}): they expire without server state.
L{NonceCounter} remembers the highest nonce-count per nonce (bounded) to
refuse replays. L{Verifier} puts the three together for the registrar and
the MESSAGE service.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import struct
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable, Mapping, Sequence

from twisted.internet.interfaces import IReactorTime

from appliance.sip.tokens import token_bytes

__all__ = [
    "ALGORITHMS", "Challenge", "DigestError", "NonceCounter", "NonceFactory",
    "NonceStatus", "Outcome", "Verdict", "Verifier", "challenges", "check_response",
    "compute_ha1", "parse_authorization",
]

ALGORITHMS: dict[str, Callable[[bytes], "hashlib._Hash"]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}

#: One Digest parameter: a token, "=", a quoted string or a token, then a
#: comma or the end.  The quoted string is written as an unrolled loop
#: (runs of plain characters between escapes), which the regex engine
#: matches without trying an alternation at every character: a SIPp
#: credential parses in 0.8 of the time of C{"(?:[^"\\]|\\.)*"}, to the
#: same matches (tests/sip/test_sip_digest.py compares the two).
_PARAM_RE = re.compile(
    r'\s*([A-Za-z0-9\-_.!%*+`\'~]+)\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^\s,"]+)\s*(,|$)', re.S
)
_NC_RE = re.compile(r"^[0-9a-fA-F]{8}$")
_ESCAPE_RE = re.compile(r"\\(.)", re.S)


class DigestError(ValueError):
    """
    An Authorization header that cannot be parsed.
    """


def _h(algorithm: str, text: str) -> str:
    return ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


#: Algorithm names as clients write them (any case) to ours.
_SPELLINGS: dict[str, str] = {}


def _algorithm(name: str) -> str:
    known = _SPELLINGS.get(name)
    if known is not None:
        return known
    for known in ALGORITHMS:
        if known.lower() == name.lower():
            if len(_SPELLINGS) < 64:     # bounded: names come from the network
                _SPELLINGS[name] = known
            return known
    raise DigestError(f"unsupported algorithm {name!r}")


def compute_ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """
    @param username: the user name.
    @param realm: the realm.
    @param password: the password.
    @param algorithm: C{"MD5"} or C{"SHA-256"}.
    @return: HA1 as lower-case hex, what the database stores.
    @raise DigestError: for an unsupported algorithm.
    """
    return _h(_algorithm(algorithm), f"{username}:{realm}:{password}")


def parse_authorization(value: str) -> dict[str, str]:
    """
    Parse an Authorization or Proxy-Authorization value of scheme Digest.

    @param value: e.g. C{'Digest username="bob", realm="r", ...'}.
    @return: parameter names (lower case) to unquoted values.
    @raise DigestError: if it is not a well-formed Digest credential.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest credential: {scheme!r}")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m:
            raise DigestError(f"bad Digest parameters at {rest[pos:pos + 20]!r}")
        name, raw = m.group(1).lower(), m.group(2)
        if raw.startswith('"'):
            raw = raw[1:-1]
            if "\\" in raw:
                raw = _ESCAPE_RE.sub(r"\1", raw)
        if name in params:
            raise DigestError(f"repeated Digest parameter {name!r}")
        params[name] = raw
        pos = m.end()
    if not params:
        raise DigestError("empty Digest credential")
    return params


def realm_credential(values: Iterable[str], realm: str) -> dict[str, str] | str | None:
    """
    Of a request's Authorization (or Proxy-Authorization) values, the
    credential for C{realm} (its parameters, parsed once), else the first
    unparsable one (a failure), else C{None} (credentials for other realms
    only, or none: challenge).
    """
    first = None
    for value in values:
        try:
            params = parse_authorization(value)
        except DigestError:
            first = first or value
            continue
        if params.get("realm") == realm:
            return params
    return first


def check_response(params: Mapping[str, str], method: str, ha1: str,
                   require_qop: bool = True) -> bool:
    """
    Check the C{response} of a credential against a stored HA1, in
    constant time.

    @param params: from L{parse_authorization}.
    @param method: the request method (C{"REGISTER"}...).
    @param ha1: the stored HA1 for the credential's algorithm.
    @param require_qop: refuse credentials without C{qop=auth} (RFC 2069
        style, which has no nonce-count).
    @return: whether the response is right; C{False} for anything missing
        or unsupported (C{qop=auth-int}, unknown algorithm).
    """
    try:
        algorithm = _algorithm(params.get("algorithm", "MD5"))
        nonce, uri, given = params["nonce"], params["uri"], params["response"]
    except (KeyError, DigestError):
        return False
    ha2 = _h(algorithm, f"{method}:{uri}")
    qop = params.get("qop")
    if qop is None:
        if require_qop:
            return False
        expected = _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    else:
        nc, cnonce = params.get("nc", ""), params.get("cnonce")
        if qop.lower() != "auth" or not _NC_RE.match(nc) or not cnonce:
            return False
        expected = _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return hmac.compare_digest(expected.encode("ascii"), given.lower().encode("utf-8"))


@dataclass(frozen=True)
class Challenge:
    """
    One WWW-Authenticate / Proxy-Authenticate challenge.

    @ivar realm: the realm.
    @ivar nonce: the nonce (from L{NonceFactory.make}).
    @ivar algorithm: C{"MD5"} or C{"SHA-256"}.
    @ivar opaque: an opaque value the client echoes, or C{None}.
    @ivar stale: whether the previous nonce was stale (RFC 7616 3.3).
    """

    realm: str
    nonce: str
    algorithm: str = "MD5"
    opaque: str | None = None
    stale: bool = False

    def header_value(self) -> str:
        """
        @return: the header value, e.g. C{'Digest realm="r", nonce="n",
            algorithm=MD5, qop="auth"'}.
        """
        def q(text: str) -> str:
            return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

        parts = [f"realm={q(self.realm)}", f"nonce={q(self.nonce)}"]
        if self.opaque is not None:
            parts.append(f"opaque={q(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts += [f"algorithm={self.algorithm}", 'qop="auth"']
        return "Digest " + ", ".join(parts)


def challenges(realm: str, nonce: str, algorithms: Sequence[str] = ("MD5", "SHA-256"),
               opaque: str | None = None, stale: bool = False) -> list[Challenge]:
    """
    One challenge per algorithm, in the configured order (RFC 8760 says the
    preferred one first; many deployed clients read only the first).

    @param realm: the realm.
    @param nonce: the nonce shared by the challenges.
    @param algorithms: algorithm names in order of preference.
    @param opaque: an opaque value, or C{None}.
    @param stale: mark the challenges stale.
    @return: the challenges.
    @raise DigestError: for an unknown algorithm or none at all.
    """
    if not algorithms:
        raise DigestError("no digest algorithm configured")
    return [Challenge(realm, nonce, _algorithm(a), opaque, stale) for a in algorithms]


class NonceStatus(Enum):
    """
    What L{NonceFactory.check} found.
    """

    VALID = "valid"
    STALE = "stale"
    INVALID = "invalid"


class NonceFactory:
    """
    Make and check stateless nonces: base64url(issue time, 8 random bytes,
    a 16-byte keyed BLAKE2b of both under the secret).

    BLAKE2b in its keyed mode is a MAC by design (RFC 7693) and needs no
    HMAC construction around it.  It costs 2 us per MAC here, OpenSSL's
    one-shot HMAC-SHA256 7 us (two per challenged request; the HMAC was
    3.5-4.1 % self of the MESSAGE profile, more than those 7 us explain:
    probably the GIL taken back after OpenSSL released it, not measured).
    """

    def __init__(self, secret: bytes, clock: IReactorTime, lifetime: float = 300.0) -> None:
        """
        @param secret: the server secret (at least 16 bytes).
        @param clock: the reactor's time interface.
        @param lifetime: seconds a nonce stays valid.
        @raise ValueError: for a short secret or a non-positive lifetime.
        """
        if len(secret) < 16:
            raise ValueError("nonce secret must be at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("nonce lifetime must be positive")
        # BLAKE2b takes keys of up to 64 bytes: a longer secret by its hash.
        self._secret = secret if len(secret) <= 64 else hashlib.blake2b(secret).digest()
        self._clock = clock
        self.lifetime = lifetime

    def _mac(self, payload: bytes) -> bytes:
        return hashlib.blake2b(payload, key=self._secret, digest_size=16).digest()

    def make(self) -> str:
        """
        @return: a fresh nonce (43 characters, URL-safe base64).
        """
        payload = struct.pack(">Q", int(self._clock.seconds())) + token_bytes(8)
        return base64.urlsafe_b64encode(payload + self._mac(payload)).rstrip(b"=").decode()

    def check(self, nonce: str) -> NonceStatus:
        """
        @param nonce: a nonce returned by a client.
        @return: L{NonceStatus.VALID}; C{STALE} when signed by us but
            expired; C{INVALID} when forged, garbled or from the future.
        """
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError):
            return NonceStatus.INVALID
        if len(raw) != 32 or not hmac.compare_digest(raw[16:], self._mac(raw[:16])):
            return NonceStatus.INVALID
        (issued,) = struct.unpack(">Q", raw[:8])
        age = self._clock.seconds() - issued
        if age < -1:
            return NonceStatus.INVALID
        return NonceStatus.VALID if age <= self.lifetime else NonceStatus.STALE


class NonceCounter:
    """
    Remember the highest nonce-count seen per nonce, for at most
    C{max_nonces} nonces (least recently used forgotten first).

    A nonce we do not remember is accepted only with nc=1, so forgetting a
    nonce makes its client re-authenticate rather than opening a replay.
    """

    def __init__(self, max_nonces: int = 100_000) -> None:
        """
        @param max_nonces: the memory bound.
        @raise ValueError: for a bound below 1.
        """
        if max_nonces < 1:
            raise ValueError("max_nonces must be at least 1")
        self.max_nonces = max_nonces
        self._seen: OrderedDict[str, int] = OrderedDict()

    def accept(self, nonce: str, nc: int) -> bool:
        """
        Record a use of a nonce if its count is new.

        @param nonce: the nonce.
        @param nc: the nonce-count, as an integer.
        @return: C{False} for a replay (count not above the highest seen, or
            an unknown nonce with a count other than 1).
        """
        highest = self._seen.get(nonce)
        if highest is None:
            if nc != 1:
                return False
        elif nc <= highest:
            return False
        self._seen[nonce] = nc
        self._seen.move_to_end(nonce)
        while len(self._seen) > self.max_nonces:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)


class Outcome(Enum):
    """
    The result of L{Verifier.verify}.
    """

    OK = "ok"
    STALE = "stale"
    REPLAY = "replay"
    FAILED = "failed"
    MALFORMED = "malformed"


@dataclass(frozen=True)
class Verdict:
    """
    @ivar outcome: the L{Outcome}.
    @ivar username: the credential's user name, if it could be read.
    @ivar algorithm: the credential's algorithm, if supported.
    """

    outcome: Outcome
    username: str | None = None
    algorithm: str | None = None


class Verifier:
    """
    Check a whole credential: format, realm, offered algorithm, nonce
    signature and age, response, nonce-count.
    """

    def __init__(self, realm: str, nonces: NonceFactory, counter: NonceCounter | None,
                 algorithms: Sequence[str] = ("MD5", "SHA-256")) -> None:
        """
        @param realm: our realm.
        @param nonces: the nonce factory.
        @param counter: the nonce-count memory; C{None}: the count is not
            checked here (a SIP worker's verifier: the node counts).
        @param algorithms: the algorithms we offer, in order.
        """
        self.realm = realm
        self.nonces = nonces
        self.counter = counter
        self.algorithms = [_algorithm(a) for a in algorithms]

    def challenges(self, stale: bool = False) -> list[Challenge]:
        """
        @param stale: mark them stale (the client's nonce expired).
        @return: fresh challenges, one per offered algorithm.
        """
        return challenges(self.realm, self.nonces.make(), self.algorithms, stale=stale)

    def challenge_values(self, stale: bool = False) -> list[str]:
        """
        The header values of L{challenges}, built from a template made
        once per realm (every 401 and 407 carries them).

        @param stale: mark them stale.
        @return: one C{Digest ...} value per offered algorithm, in order.
        """
        templates = self._templates
        if templates is None:
            templates = self._templates = {
                flag: [(head, tail) for head, _, tail in
                       (Challenge(self.realm, "\0", a, stale=flag).header_value().rpartition("\0")
                        for a in self.algorithms)]
                for flag in (False, True)}
        nonce = self.nonces.make()  # URL-safe base64: nothing to quote
        return [head + nonce + tail for head, tail in templates[stale]]

    _templates: dict[bool, list[tuple[str, str]]] | None = None

    def verify(self, header_value: str | Mapping[str, str], method: str,
               ha1_for: Callable[[str, str], str | None]) -> Verdict:
        """
        @param header_value: the Authorization / Proxy-Authorization value,
            or its parameters already parsed (L{parse_authorization}).
        @param method: the request method.
        @param ha1_for: C{(username, algorithm) -> HA1} or C{None} for an
            unknown user.
        @return: the verdict; C{STALE} only when the response is right but
            the nonce expired.
        """
        try:
            params = (parse_authorization(header_value) if isinstance(header_value, str)
                      else header_value)
            username = params["username"]
        except (DigestError, KeyError):
            return Verdict(Outcome.MALFORMED)
        try:
            algorithm = _algorithm(params.get("algorithm", "MD5"))
        except DigestError:
            return Verdict(Outcome.FAILED, username)
        if algorithm not in self.algorithms or params.get("realm") != self.realm:
            return Verdict(Outcome.FAILED, username, algorithm)
        status = self.nonces.check(params.get("nonce", ""))
        ha1 = ha1_for(username, algorithm)
        if ha1 is None or not check_response(params, method, ha1):
            return Verdict(Outcome.FAILED, username, algorithm)
        if status is not NonceStatus.VALID:
            # A right response on a nonce we cannot vouch for: expired, or
            # signed by another secret (this node before a restart, which
            # apps that reuse their nonce present first).  Challenge again
            # with stale=true (RFC 7616 3.3), never 403: the client knows
            # the password, and refusing would lock every app out of a
            # restarted node by the per-source failure limit.
            return Verdict(Outcome.STALE, username, algorithm)
        if self.counter is not None and \
                not self.counter.accept(params["nonce"], int(params["nc"], 16)):
            return Verdict(Outcome.REPLAY, username, algorithm)
        return Verdict(Outcome.OK, username, algorithm)
