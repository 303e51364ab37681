"""Operators: the people who log in to the shell."""
from __future__ import annotations

from typing import Any

from twisted.conch.ssh.keys import BadKeyError, FingerprintFormats, Key
from zope.interface import implementer

from appliance.model.base import Configurable, Setting, choice
from appliance.model.errors import ModelError
from appliance.model.interfaces import IOperator
from appliance.model.passwords import HashedSecret, hash_secret, validate_password

#: The longest operator password.


def parse_public_key(line: Any) -> tuple[Key, str]:
    """
    Parse one OpenSSH public key line.

    @param line: e.g. C{ssh-ed25519 AAAA... alice@laptop}.
    @return: the key and the line, stripped.
    @raise ModelError: if it is not an OpenSSH public key.
    """
    if isinstance(line, bytes):
        line = line.decode("ascii", "replace")
    if not isinstance(line, str) or not line.strip() or "\n" in line.strip():
        raise ModelError("an SSH key is one OpenSSH public key line")
    text = line.strip()
    try:
        key = Key.fromString(text.encode("utf-8"))
    except (BadKeyError, ValueError, TypeError, IndexError):
        raise ModelError("not a valid OpenSSH public key") from None
    if not key.isPublic():
        raise ModelError("that is a private key: give the public key line")
    return key, text


def _key_lines(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    out: list[str] = []
    blobs: set[bytes] = set()
    for line in value:
        key, text = parse_public_key(line)
        if key.blob() not in blobs:
            blobs.add(key.blob())
            out.append(text)
    return tuple(out)


@implementer(IOperator)
class Operator(HashedSecret, Configurable):
    """
    A shell operator. C{role} and C{ssh_keys} reset with C{del}; the
    password is set with L{set_password} (C{None} removes it).
    """

    role = Setting("view", choice("role", ("view", "admin")), doc="view or admin.")
    ssh_keys = Setting((), _key_lines, doc="OpenSSH public key lines.")

    def add_ssh_key(self, line: str) -> None:
        """
        @param line: an OpenSSH public key line; adding a key already
            present (same key, any comment) changes nothing.
        @raise ModelError: if it is not a public key.
        """
        self.ssh_keys = self.ssh_keys + (line,)

    def remove_ssh_key(self, key: str) -> None:
        """
        @param key: the key's line (comment ignored) or its SHA256
            fingerprint (C{SHA256:...} or the bare base64).
        @raise ModelError: if the operator has no such key.
        """
        wanted = key.strip().removeprefix("SHA256:") if isinstance(key, str) else ""
        try:
            wanted_blob: bytes | None = parse_public_key(key)[0].blob()
        except ModelError:
            wanted_blob = None
        kept = []
        for line in self.ssh_keys:
            parsed = Key.fromString(line.encode("utf-8"))
            fingerprint = parsed.fingerprint(FingerprintFormats.SHA256_BASE64)
            if parsed.blob() == wanted_blob or fingerprint.rstrip("=") == wanted.rstrip("="):
                continue
            kept.append(line)
        if len(kept) == len(self.ssh_keys):
            raise ModelError(f"operator {self.name} has no such key")
        self.ssh_keys = tuple(kept)

    def public_keys(self) -> list[Key]:
        """
        @return: the parsed keys, for the SSH public key checker.
        """
        return [Key.fromString(line.encode("utf-8")) for line in self.ssh_keys]

    def set_password(self, password: str | None) -> None:
        """
        @param password: 1 to 128 printable characters, or C{None} to
            disable password login.
        @raise ModelError: for an empty, too long or unprintable password.
        """
        if password is None:
            self.password_hash = None
            return
        validate_password(password)
        self.password_hash = hash_secret(password)
