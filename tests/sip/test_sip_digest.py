"""
Tests for L{appliance.sip.digest}.
"""
from __future__ import annotations

import hashlib

import pytest
from twisted.internet.task import Clock

from appliance.sip.digest import (
    DigestError, NonceCounter, NonceFactory, NonceStatus, Outcome, Verifier, challenges,
    check_response, compute_ha1, parse_authorization,
)

# RFC 7616 section 3.9.1 (HTTP, uri /dir/index.html), published responses.
RFC7616 = {
    "username": "Mufasa", "realm": "http-auth@example.org", "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "qop": "auth",
    "opaque": "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS",
}
VECTORS = [("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
           ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")]
SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("algorithm,expected", VECTORS)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    """
    The RFC 7616 3.9.1 example's published response is accepted for MD5 and
    SHA-256, computed from HA1 only; one wrong hex digit is refused.
    """
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    params = dict(RFC7616, algorithm=algorithm, response=expected)
    assert check_response(params, "GET", ha1)
    wrong = expected[:-1] + ("0" if expected[-1] != "0" else "1")
    assert not check_response(dict(params, response=wrong), "GET", ha1)
    assert not check_response(params, "POST", ha1)


def test_parse_authorization_header() -> None:
    """
    A Digest credential with quoted values (commas and escaped quotes
    inside) and tokens parses to a dict; garbage raises DigestError.
    """
    value = ('Digest username="Mufasa", realm="a, \\"b\\"", nonce="n", uri="sip:h",'
             'response="r", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c"')
    params = parse_authorization(value)
    assert params["realm"] == 'a, "b"' and params["algorithm"] == "SHA-256" and params["nc"] == "00000001"
    for bad in ("Basic abc", 'Digest username="x', "Digest", 'Digest a="1", a="2"', "Digest ==="):
        with pytest.raises(DigestError):
            parse_authorization(bad)


def test_check_response_refuses_incomplete() -> None:
    """
    Missing fields, auth-int, a bad nc, an unknown algorithm, and (by
    default) a credential without qop are refused.
    """
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life")
    params = dict(RFC7616, response=VECTORS[0][1])
    assert not check_response({k: v for k, v in params.items() if k != "uri"}, "GET", ha1)
    assert not check_response(dict(params, qop="auth-int"), "GET", ha1)
    assert not check_response(dict(params, nc="1"), "GET", ha1)
    assert not check_response(dict(params, algorithm="SHA-512"), "GET", ha1)
    ha2 = hashlib.md5(b"GET:/dir/index.html").hexdigest()
    legacy = hashlib.md5(f"{ha1}:{params['nonce']}:{ha2}".encode()).hexdigest()
    no_qop = {k: v for k, v in params.items() if k not in ("qop", "nc", "cnonce")}
    no_qop["response"] = legacy
    assert not check_response(no_qop, "GET", ha1)
    assert check_response(no_qop, "GET", ha1, require_qop=False)


def test_challenges_in_configured_order() -> None:
    """
    One challenge per algorithm, in the configured order, with qop="auth",
    opaque and stale when asked.
    """
    values = [c.header_value() for c in challenges("sip.example", "N", ("SHA-256", "MD5"), "O", True)]
    assert values == [
        'Digest realm="sip.example", nonce="N", opaque="O", stale=TRUE, algorithm=SHA-256, qop="auth"',
        'Digest realm="sip.example", nonce="N", opaque="O", stale=TRUE, algorithm=MD5, qop="auth"',
    ]
    with pytest.raises(DigestError):
        challenges("r", "n", ("MD4",))
    with pytest.raises(DigestError):
        challenges("r", "n", ())


def test_nonce_lifetime_and_forgery() -> None:
    """
    A nonce is valid within its lifetime, stale after, and invalid when
    forged, garbled, from another secret or from the future.
    """
    clock = Clock()
    clock.advance(1_000_000)
    factory = NonceFactory(SECRET, clock, lifetime=300)
    nonce = factory.make()
    assert factory.make() != nonce
    assert factory.check(nonce) is NonceStatus.VALID
    clock.advance(300)
    assert factory.check(nonce) is NonceStatus.VALID
    clock.advance(1)
    assert factory.check(nonce) is NonceStatus.STALE
    assert NonceFactory(b"x" * 32, clock).check(nonce) is NonceStatus.INVALID
    tampered = ("A" if nonce[0] != "A" else "B") + nonce[1:]
    for bad in (tampered, "", "!!!!", nonce[:-2], "é" * 43):
        assert factory.check(bad) is NonceStatus.INVALID
    future = NonceFactory(SECRET, Clock(), 300)
    future._clock.advance(2_000_000)  # type: ignore[attr-defined]
    assert factory.check(future.make()) is NonceStatus.INVALID
    with pytest.raises(ValueError):
        NonceFactory(b"short", clock)
    # A secret longer than a BLAKE2b key signs by its hash: two long
    # secrets that differ only past 64 bytes still sign differently.
    long_a = NonceFactory(b"s" * 64 + b"a", clock)
    long_b = NonceFactory(b"s" * 64 + b"b", clock)
    signed = long_a.make()
    assert long_a.check(signed) is NonceStatus.VALID
    assert long_b.check(signed) is NonceStatus.INVALID


def test_nonce_counter_replay_and_bound() -> None:
    """
    A nonce-count must grow per nonce; an unknown nonce is accepted only
    with nc=1; memory stays within the bound (oldest forgotten).
    """
    counter = NonceCounter(max_nonces=2)
    assert counter.accept("a", 1) and counter.accept("a", 2)
    assert not counter.accept("a", 2) and not counter.accept("a", 1)
    assert not counter.accept("b", 5)
    assert counter.accept("b", 1) and counter.accept("c", 1)
    assert len(counter) == 2
    assert not counter.accept("a", 3)  # forgotten: must re-authenticate
    with pytest.raises(ValueError):
        NonceCounter(0)


def credential(nonce: str, algorithm: str = "MD5", nc: str = "00000001", password: str = "pw",
               realm: str = "sip.example", method: str = "REGISTER") -> str:
    """
    Compute an Authorization value as a client would.
    """
    h = hashlib.md5 if algorithm == "MD5" else hashlib.sha256
    ha1 = h(f"alice:{realm}:{password}".encode()).hexdigest()
    ha2 = h(f"{method}:sip:sip.example".encode()).hexdigest()
    resp = h(f"{ha1}:{nonce}:{nc}:cn:auth:{ha2}".encode()).hexdigest()
    return (f'Digest username="alice", realm="{realm}", nonce="{nonce}", uri="sip:sip.example", '
            f'response="{resp}", algorithm={algorithm}, qop=auth, nc={nc}, cnonce="cn"')


def test_verifier_outcomes() -> None:
    """
    The verifier accepts a right credential once, refuses its replay, a
    wrong password, an unknown user, a foreign realm or algorithm, reports
    a right credential on an expired nonce as stale, and garbage as malformed.
    """
    clock = Clock()
    verifier = Verifier("sip.example", NonceFactory(SECRET, clock, 60), NonceCounter(), ("SHA-256", "MD5"))
    ha1s = {alg: compute_ha1("alice", "sip.example", "pw", alg) for alg in ("MD5", "SHA-256")}

    def lookup(user: str, alg: str) -> str | None:
        return ha1s[alg] if user == "alice" else None

    nonce = verifier.challenges()[0].nonce
    for alg in ("SHA-256", "MD5"):
        n = verifier.nonces.make()
        assert verifier.verify(credential(n, alg), "REGISTER", lookup).outcome is Outcome.OK
    ok = credential(nonce)
    assert verifier.verify(ok, "REGISTER", lookup).outcome is Outcome.OK
    assert verifier.verify(ok, "REGISTER", lookup).outcome is Outcome.REPLAY
    assert verifier.verify(credential(nonce, nc="00000002"), "REGISTER", lookup).outcome is Outcome.OK
    assert verifier.verify(credential(nonce, nc="00000003", password="bad"), "REGISTER", lookup).outcome is Outcome.FAILED
    assert verifier.verify(credential(nonce, realm="other"), "REGISTER", lookup).outcome is Outcome.FAILED
    assert verifier.verify(credential(nonce, method="MESSAGE"), "REGISTER", lookup).outcome is Outcome.FAILED
    assert verifier.verify(credential("forged", password="bad"), "REGISTER", lookup).outcome is Outcome.FAILED
    assert verifier.verify(credential(nonce).replace("alice", "mallory", 1), "REGISTER", lookup).outcome is Outcome.FAILED
    assert verifier.verify("Digest nonsense", "REGISTER", lookup).outcome is Outcome.MALFORMED
    md5_only = Verifier("sip.example", verifier.nonces, NonceCounter(), ("MD5",))
    assert md5_only.verify(credential(nonce, "SHA-256"), "REGISTER", lookup).outcome is Outcome.FAILED
    clock.advance(61)
    verdict = verifier.verify(credential(nonce, nc="00000009"), "REGISTER", lookup)
    assert (verdict.outcome, verdict.username) == (Outcome.STALE, "alice")
    assert verifier.challenges(stale=True)[0].stale


def test_right_response_on_a_nonce_of_another_secret_is_stale():
    """
    After a restart the node signs nonces with a new secret; an app that
    reuses the nonce it was given before (right password) is challenged
    again as stale, not refused: no failure counted, so a restarted node
    does not lock its apps out.  A wrong password on such a nonce, and a
    forged nonce with a wrong password, still fail.
    """
    clock = Clock()
    before = Verifier("sip.example", NonceFactory(SECRET, clock, 60), NonceCounter())
    after = Verifier("sip.example", NonceFactory(b"n" * 32, clock, 60), NonceCounter())
    ha1 = compute_ha1("alice", "sip.example", "pw", "MD5")

    def lookup(user: str, alg: str) -> str | None:
        return ha1 if user == "alice" and alg == "MD5" else None

    old = before.challenges()[0].nonce
    assert before.verify(credential(old, "MD5"), "REGISTER", lookup).outcome is Outcome.OK
    verdict = after.verify(credential(old, "MD5", nc="00000002"), "REGISTER", lookup)
    assert (verdict.outcome, verdict.username) == (Outcome.STALE, "alice")
    assert after.verify(credential(old, "MD5", password="bad"), "REGISTER",
                        lookup).outcome is Outcome.FAILED
    assert after.verify(credential("forged", "MD5"), "REGISTER", lookup).outcome is Outcome.STALE
    assert after.verify(credential("forged", "MD5", password="bad"), "REGISTER",
                        lookup).outcome is Outcome.FAILED


def test_challenge_values_are_the_challenges_header_values() -> None:
    """
    L{Verifier.challenge_values} (built from a template) gives exactly the
    header values of L{Verifier.challenges} for its nonce, stale or not,
    in the configured order, with a realm that needs quoting.
    """
    clock = Clock()
    verifier = Verifier('a "quoted" realm', NonceFactory(b"k" * 32, clock), NonceCounter(),
                        ("SHA-256", "MD5"))
    for stale in (False, True):
        values = verifier.challenge_values(stale=stale)
        nonce = values[0].split('nonce="', 1)[1].split('"', 1)[0]
        assert verifier.nonces.check(nonce) is NonceStatus.VALID
        assert values == [c.header_value() for c in
                          challenges('a "quoted" realm', nonce, ("SHA-256", "MD5"), stale=stale)]
    assert verifier.challenge_values() != verifier.challenge_values()  # a fresh nonce each


def test_parameter_pattern_matches_as_the_plain_one() -> None:
    """The unrolled quoted-string pattern parses every credential as the
    plain alternation did: the same parameters or the same error, over
    200,000 random strings of the characters that matter."""
    import random
    import re

    import appliance.sip.digest as digest
    plain = re.compile(
        r'\s*([A-Za-z0-9\-_.!%*+`\'~]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,"]+)\s*(,|$)', re.S)
    rng = random.Random(1)
    samples = ['Digest a="x\\"y", b=c', 'Digest a="unterminated, b=c', 'Digest a=b,,c=d',
               'Digest a = "q" , b= z', 'Digest a="\\\\", b="\\"\\""', 'Digest a="x"y',
               'Digest a="",b=""', 'Digest a="x\\', 'Digest a=b,', 'Digest a="\n"']
    samples += ["Digest " + "".join(rng.choice('ab="\\, =x\n') for _ in range(rng.randint(0, 14)))
                for _ in range(200_000)]

    def outcome(pattern, text):
        saved, digest._PARAM_RE = digest._PARAM_RE, pattern
        try:
            return parse_authorization(text)
        except DigestError as e:
            return ("error", str(e))
        finally:
            digest._PARAM_RE = saved
    unrolled = digest._PARAM_RE
    assert unrolled.pattern != plain.pattern
    differing = [s for s in samples if outcome(plain, s) != outcome(unrolled, s)]
    assert differing == []
