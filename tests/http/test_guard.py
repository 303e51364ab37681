"""Tests for credentials and limits (L{appliance.http.guard})."""
import base64

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock

from appliance.http.guard import (
    FailureLimiter, Guard, TokenBucket, credentials)
from appliance.http.params import APIError
from appliance.shell.script import run_script
from appliance.http.model import http_of


def basic(text: str) -> bytes:
    return b"Basic " + base64.b64encode(text.encode())


def test_credentials_forms():
    """Basic, Bearer and username/password parameters are read; a
    malformed Authorization header is a 401."""
    assert credentials(basic("acme:pw:x"), {}) == ("password", "acme",
                                                   "pw:x")
    assert credentials(b"Bearer tok", {}) == ("token", None, "tok")
    assert credentials(None, {"username": ["a"], "password": ["b"]}) == (
        "password", "a", "b")
    assert credentials(None, {}) == ("none", None, None)
    for bad in (b"Basic !!", b"Basic " + base64.b64encode(b"nocolon"),
                b"Digest x", b"Bearer"):
        with pytest.raises(APIError) as e:
            credentials(bad, {})
        assert e.value.status == 401


def test_failure_limiter_window():
    """Past the limit in the window a source is blocked with the seconds
    to wait; the block ends when the oldest failure leaves the window."""
    clock = Clock()
    limiter = FailureLimiter(clock, limit=3, window=60)
    for _ in range(3):
        assert limiter.blocked("192.0.2.1") == 0
        limiter.failed("192.0.2.1")
    assert limiter.blocked("192.0.2.1") == 60
    assert limiter.blocked("192.0.2.2") == 0
    clock.advance(61)
    assert limiter.blocked("192.0.2.1") == 0


def test_token_bucket():
    """A bucket of N/s gives a burst of N, then asks to wait."""
    bucket = TokenBucket(2, 0.0)
    assert bucket.take(2, 0.0) == 0
    assert bucket.take(1, 0.0) == 1
    assert bucket.take(1, 0.5) == 0


@pytest.fixture
def guard(storage, clock):
    script = ("configure terminal\n tenant acme\n  password s3cret-pw\n"
              "  allow-ip 127.0.0.0/8\n  throughput 2\n exit\nend\n")
    assert run_script(storage, script).ok
    calls = []

    def verify(stored, password):
        from appliance.model.passwords import verify_secret
        calls.append(password)
        return defer.succeed(verify_secret(stored, password))
    g = Guard(clock, lambda: http_of(storage.root()), verify,
              auth_failures=2, max_in_flight=2, tenant_in_flight=1)
    g.calls = calls
    return g


def test_password_checked_once_then_remembered(guard):
    """A right password is verified once (off the reactor in the node);
    later requests with it do not pay for scrypt again."""
    for _ in range(3):
        d = guard.authenticate("127.0.0.1", basic("acme:s3cret-pw"), {})
        assert d.result.name == "acme"
    assert guard.calls == ["s3cret-pw"]


def test_failures_then_throttled(guard):
    """Wrong passwords are 401 and counted per source; past the limit the
    source gets 429 with Retry-After even with the right password."""
    for _ in range(2):
        f = guard.authenticate("127.0.0.9", basic("acme:wrong"), {})
        assert f.result.value.status == 401
        f.addErrback(lambda _: None)
    f = guard.authenticate("127.0.0.9", basic("acme:s3cret-pw"), {})
    assert f.result.value.status == 429 and f.result.value.retry_after
    f.addErrback(lambda _: None)


def test_address_not_allowed(guard):
    """A tenant's allow-ip refuses other sources with 403."""
    f = guard.authenticate("192.0.2.1", basic("acme:s3cret-pw"), {})
    assert f.result.value.code == "address_not_allowed"
    f.addErrback(lambda _: None)


def test_concurrency_and_throughput(guard, storage):
    """The tenant's concurrency is 429, the node's 503; throughput 2/s
    lets 2 messages pass and then asks to retry."""
    guard.enter("acme")
    with pytest.raises(APIError) as e:
        guard.enter("acme")
    assert e.value.status == 429
    guard.enter("other")
    with pytest.raises(APIError) as e:
        guard.enter("third")
    assert e.value.status == 503
    guard.leave("acme")
    guard.leave("other")
    assert guard.in_flight == 0
    tenant = http_of(storage.root()).tenants["acme"]
    guard.throttle(tenant, 2)
    with pytest.raises(APIError) as e:
        guard.throttle(tenant, 1)
    assert e.value.status == 429 and e.value.retry_after >= 1


class _Overloaded:
    """The node's admission, told by the test whether it is overloaded."""

    def __init__(self, clock):
        from appliance.admission import Refusals
        self.why = None
        self.refusals = Refusals(clock)

    def overloaded(self):
        return self.why


def test_node_overload_is_503_and_counted(storage, clock):
    """While the node's admission refuses new work a send gets 503 with
    Retry-After (nothing counted in flight); every refusal for load (node
    overload, node and tenant caps, throughput) is counted by reason."""
    script = ("configure terminal\n tenant acme\n  password s3cret-pw\n"
              "  throughput 1\n exit\nend\n")
    assert run_script(storage, script).ok
    admission = _Overloaded(clock)
    g = Guard(clock, lambda: http_of(storage.root()),
              lambda stored, pw: defer.succeed(True), max_in_flight=2,
              tenant_in_flight=1, admission=admission)
    admission.why = "lag"
    with pytest.raises(APIError) as e:
        g.enter("acme")
    assert (e.value.status, e.value.retry_after) == (503, 1)
    assert g.in_flight == 0
    admission.why = None
    g.enter("acme")
    with pytest.raises(APIError) as e:
        g.enter("acme")
    assert e.value.status == 429
    g.enter("other")
    with pytest.raises(APIError) as e:
        g.enter("third")
    assert e.value.status == 503
    tenant = http_of(storage.root()).tenants["acme"]
    g.throttle(tenant, 1)
    with pytest.raises(APIError):
        g.throttle(tenant, 1)
    assert admission.refusals.totals == {
        ("http", "lag"): 1, ("http", "tenant in flight"): 1,
        ("http", "node in flight"): 1, ("http", "throughput"): 1}
    admission.refusals.stop()
