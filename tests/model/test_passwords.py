"""Tests for appliance.model.passwords: digest HA1 and salted secrets."""
import hashlib

import pytest

from appliance.model.errors import ModelError
from appliance.model.passwords import digest_ha1, hash_secret, verify_secret

# RFC 7616 section 3.9.1.
USER, REALM, PASSWORD = "Mufasa", "http-auth@example.org", "Circle of Life"
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_RESPONSE = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}


def _response(algorithm, ha1):
    name = {"MD5": "md5", "SHA-256": "sha256"}[algorithm]
    h = lambda s: hashlib.new(name, s.encode()).hexdigest()
    ha2 = h("GET:/dir/index.html")
    return h(f"{ha1}:{NONCE}:00000001:{CNONCE}:auth:{ha2}")


@pytest.mark.parametrize("algorithm, name", [("MD5", "md5"), ("SHA-256", "sha256")])
def test_ha1_matches_hashlib(algorithm, name):
    """HA1 is the hex hash of 'username:realm:password' for MD5 and SHA-256."""
    expected = hashlib.new(name, b"Mufasa:http-auth@example.org:Circle of Life").hexdigest()
    assert digest_ha1(USER, REALM, PASSWORD, algorithm) == expected


def test_ha1_known_values():
    """The RFC 7616 example credential gives these fixed HA1 values."""
    assert digest_ha1(USER, REALM, PASSWORD, "MD5") == "3d78807defe7de2157e2b0b6573a855f"
    assert digest_ha1(USER, REALM, PASSWORD, "sha-256") == (
        "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232")


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_ha1_reproduces_rfc7616_response(algorithm):
    """The HA1 yields the response values printed in RFC 7616 section 3.9.1."""
    ha1 = digest_ha1(USER, REALM, PASSWORD, algorithm)
    assert _response(algorithm, ha1) == RFC_RESPONSE[algorithm]


def test_ha1_utf8():
    """Non-ASCII credentials are hashed as UTF-8."""
    assert digest_ha1("é", "r", "p", "MD5") == hashlib.md5("é:r:p".encode()).hexdigest()


@pytest.mark.parametrize("args", [
    ("u", "r", "p", "SHA-512"), ("u", "r", None, "MD5"), (b"u", "r", "p", "MD5"),
])
def test_ha1_rejects(args):
    """Unsupported algorithms and non-text credentials raise ModelError."""
    with pytest.raises(ModelError):
        digest_ha1(*args)


def test_secret_round_trip():
    """A hashed secret verifies with the right password and not with another."""
    stored = hash_secret("s3cret")
    assert stored.startswith("scrypt$")
    assert "s3cret" not in stored
    assert verify_secret(stored, "s3cret")
    assert not verify_secret(stored, "s3creT")
    assert not verify_secret(stored, "")


def test_secret_salted():
    """Two hashes of one password differ (random salt) and both verify."""
    a, b = hash_secret("pw"), hash_secret("pw")
    assert a != b
    assert verify_secret(a, "pw") and verify_secret(b, "pw")


@pytest.mark.parametrize("stored", [
    None, "", "plain", "md5$x", "scrypt$14$8$1$!!!$!!!", "scrypt$99$8$1$AAAA$AAAA",
    "scrypt$x$8$1$AAAA$AAAA",
])
def test_verify_malformed(stored):
    """A missing or malformed stored hash never verifies and never raises."""
    assert verify_secret(stored, "pw") is False


def test_hash_rejects_non_text():
    """Hashing something that is not text raises ModelError."""
    with pytest.raises(ModelError):
        hash_secret(b"bytes")
