"""
Pure password handling: SIP digest HA1 values and salted secret hashes.

SIP accounts store only the digest HA1 values (RFC 7616 section 3.4.2,
RFC 8760 for SIP): C{H(username ":" realm ":" password)} for MD5 and
SHA-256, so the server can check digest responses without the password.
Other secrets (SMPP carrier passwords, operator passwords) are stored as
salted scrypt hashes in a self-describing string::

    scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

from appliance.model.errors import ModelError

#: Digest algorithm names (as in the SIP C{algorithm=} parameter) to
#: hashlib names.
DIGEST_ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256"}

_SCHEME = "scrypt"
_LOG2_N = 14
_R = 8
_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def digest_ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """
    The digest HA1 of a credential.

    @param username: the SIP username.
    @param realm: the digest realm.
    @param password: the password in clear.
    @param algorithm: C{MD5} or C{SHA-256} (case-insensitive).
    @return: lower-case hex of C{H(username ":" realm ":" password)} over
        the UTF-8 bytes.
    @raise ModelError: for another algorithm or non-text arguments.
    """
    name = DIGEST_ALGORITHMS.get(str(algorithm).upper())
    if name is None:
        raise ModelError(f"unsupported digest algorithm {algorithm!r}")
    for value in (username, realm, password):
        if not isinstance(value, str):
            raise ModelError("digest credentials must be text")
    data = f"{username}:{realm}:{password}".encode("utf-8")
    return hashlib.new(name, data).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_secret(password: str) -> str:
    """
    Hash a secret with a fresh random salt (scrypt, n=2**14, r=8, p=1).

    @param password: the secret in clear.
    @return: the self-describing hash string (see the module docstring).
    @raise ModelError: if C{password} is not text.
    """
    if not isinstance(password, str):
        raise ModelError("a password must be given as text")
    salt = os.urandom(_SALT_BYTES)
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=1 << _LOG2_N, r=_R, p=_P,
        dklen=_KEY_BYTES,
    )
    return f"{_SCHEME}${_LOG2_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def validate_secret_hash(stored: str) -> str:
    """
    Check a hash string made by L{hash_secret} (e.g. replayed from C{show
    running-config}) without knowing the secret.

    @param stored: C{scrypt$<log2 n>$<r>$<p>$<salt>$<hash>}.
    @return: C{stored}.
    @raise ModelError: if it is not in that form or its parameters are
        out of range.
    """
    problem = ModelError("a password hash is the scrypt$... string that "
                         "show running-config writes")
    if not isinstance(stored, str):
        raise problem
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise problem
    try:
        log2n, r, p = (int(x) for x in parts[1:4])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise problem from None
    if not (1 <= log2n <= 20 and 1 <= r <= 32 and 1 <= p <= 16) \
            or len(salt) < 8 or len(key) < 16:
        raise problem
    return stored


def validate_ha1(value: str, algorithm: str) -> str:
    """
    Check a hex HA1 value.

    @param value: the HA1 (32 hex digits for MD5, 64 for SHA-256).
    @param algorithm: C{MD5} or C{SHA-256}.
    @return: the value, lower-cased.
    @raise ModelError: for another length, non-hex text or algorithm.
    """
    name = DIGEST_ALGORITHMS.get(str(algorithm).upper())
    if name is None:
        raise ModelError(f"unsupported digest algorithm {algorithm!r}")
    length = hashlib.new(name).digest_size * 2
    if not isinstance(value, str) or len(value) != length:
        raise ModelError(f"a {algorithm} HA1 is {length} hex digits")
    try:
        int(value, 16)
    except ValueError:
        raise ModelError(f"a {algorithm} HA1 is {length} hex digits") from None
    return value.lower()


def verify_secret(stored: str | None, password: str) -> bool:
    """
    Check a secret against a hash made by L{hash_secret}, in constant time.

    @param stored: the stored hash string, or C{None} (no secret set).
    @param password: the candidate secret.
    @return: whether it matches; C{False} for C{None}, a malformed or
        unknown hash string, or a non-text candidate.
    """
    if not isinstance(stored, str) or not isinstance(password, str):
        return False
    try:
        scheme, log2n, r, p, salt, key = stored.split("$")
        if scheme != _SCHEME:
            return False
        log2n_i, r_i, p_i = int(log2n), int(r), int(p)
        if not (1 <= log2n_i <= 20 and 1 <= r_i <= 32 and 1 <= p_i <= 16):
            return False
        salt_b = base64.b64decode(salt, validate=True)
        key_b = base64.b64decode(key, validate=True)
        candidate = hashlib.scrypt(
            password.encode("utf-8"), salt=salt_b, n=1 << log2n_i, r=r_i,
            p=p_i, dklen=len(key_b), maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate, key_b)


#: The longest password an operator or account may have.
MAX_PASSWORD_LENGTH = 128


def validate_password(password: object) -> str:
    """
    @return: C{password}, if it is 1 to L{MAX_PASSWORD_LENGTH} printable
        characters.
    @raise ModelError: otherwise, saying why.
    """
    if not isinstance(password, str) or not password:
        raise ModelError("a password cannot be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ModelError(f"a password is at most {MAX_PASSWORD_LENGTH} characters")
    if not password.isprintable():
        raise ModelError("a password may only hold printable characters")
    return password


class HashedSecret:
    """
    Mixin for objects whose password is kept only as a L{hash_secret}
    string in C{password_hash} (carriers, operators): restore a hash as
    C{show running-config} writes it, and check a candidate password.
    """

    password_hash: str | None = None

    def set_password_hash(self, stored: str) -> None:
        """
        Restore a password hash (as C{show running-config} writes it).

        @param stored: a L{hash_secret} string.
        @raise ModelError: if it is not one.
        """
        self.password_hash = validate_secret_hash(stored)

    def check_password(self, password: str) -> bool:
        """
        @param password: the candidate (e.g. from a bind PDU).
        @return: whether it matches (constant-time); C{False} when no
            password is set.
        """
        return verify_secret(self.password_hash, password)
