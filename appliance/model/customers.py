"""Products, customers and their SIP accounts."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from BTrees.OOBTree import OOBTree
from zope.interface import implementer

from appliance.model.base import Configurable, Setting, boolean, money
from appliance.model.errors import ModelError
from appliance.model.interfaces import IAccount, ICustomer, IProduct
from appliance.model.passwords import (DIGEST_ALGORITHMS, digest_ha1, validate_ha1,
                                       validate_password)

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~+-]{0,63}")

#: The longest SIP account password.


def validate_username(username: Any) -> str:
    """
    Check a SIP username (for app users, their DID digits).

    @param username: 1 to 64 characters: letters, digits and C{. _ ~ + -},
        starting with a letter or digit.
    @return: the username.
    @raise ModelError: if it is not acceptable.
    """
    if not isinstance(username, str) or not _USERNAME.fullmatch(username):
        raise ModelError(
            "a username is 1 to 64 letters, digits, '.', '_', '~', '+' or '-'"
        )
    return username


def _check_realm(realm: Any) -> None:
    if not isinstance(realm, str) or not realm or not realm.isprintable() or '"' in realm:
        raise ModelError("a realm must be non-empty printable text without quotes")


@implementer(IProduct)
class Product(Configurable):
    """
    A sellable service bundle such as C{Call & Chat}.
    """

    messaging = Setting(False, boolean("messaging"),
                        doc="Whether accounts with this product get SMS.")


@implementer(ICustomer)
class Customer(Configurable):
    """
    A customer (a person or a company) owning SIP accounts.

    @ivar accounts: username to L{Account}, kept by L{ApplianceRoot}.
    """

    accounts: OOBTree | None = None

    def __init__(self, name: str) -> None:
        """
        @param name: the customer's name, e.g. C{John Doe}.
        @raise ModelError: for an invalid name.
        """
        super().__init__(name)
        self.accounts = OOBTree()


def _dids(value: Any) -> tuple[str, ...]:
    return tuple(sorted(value))


@implementer(IAccount)
class Account(Configurable):
    """
    A SIP account. Only digest HA1 values of its password are stored.

    The name is the username. C{product} and C{dids} are managed by the
    root (L{ApplianceRoot.set_account_product}, C{add_did}, C{remove_did});
    C{balance} and C{enabled} are plain settings (C{del} resets them).

    @ivar username: the SIP username.
    @ivar customer: the owning customer's name.
    @ivar realm: the digest realm the HA1 values were made for, or C{None}.
    @ivar ha1_md5: hex HA1 for MD5, or C{None} when no password is set.
    @ivar ha1_sha256: hex HA1 for SHA-256, or C{None}.
    """

    username: str = ""
    customer: str = ""
    realm: str | None = None
    ha1_md5: str | None = None
    ha1_sha256: str | None = None

    product = Setting(None, lambda v: v, readonly="use the root's set_account_product",
                      doc="The product's name, or None.")
    dids = Setting((), _dids, readonly="use the root's add_did and remove_did",
                   doc="The account's DIDs (E.164 digits), sorted.")
    balance = Setting(Decimal("0"), money("balance"), doc="Prepaid balance.")
    enabled = Setting(True, boolean("enabled"), doc="Whether it may register and receive.")

    def __init__(self, username: str, customer_name: str) -> None:
        """
        @param username: see L{validate_username}.
        @param customer_name: the owning customer's name.
        @raise ModelError: for an invalid username.
        """
        validate_username(username)
        super().__init__(username)
        self.username = username
        self.customer = customer_name

    def set_password(self, password: str, realm: str) -> None:
        """
        Store the digest HA1 values of a password for a realm (never the
        password itself).

        @param password: 1 to 128 printable characters.
        @param realm: the SIP digest realm (usually the node's domain).
        @raise ModelError: for an empty, too long or unprintable password
            or realm.
        """
        validate_password(password)
        _check_realm(realm)
        self.realm = realm
        self.ha1_md5 = digest_ha1(self.username, realm, password, "MD5")
        self.ha1_sha256 = digest_ha1(self.username, realm, password, "SHA-256")

    def set_ha1(self, realm: str, ha1_md5: str, ha1_sha256: str) -> None:
        """
        Restore stored HA1 values (as C{show running-config} writes them).

        @param realm: the realm they were made for.
        @param ha1_md5: 32 hex digits.
        @param ha1_sha256: 64 hex digits.
        @raise ModelError: for a bad realm or HA1; nothing changes then.
        """
        _check_realm(realm)
        md5 = validate_ha1(ha1_md5, "MD5")
        sha256 = validate_ha1(ha1_sha256, "SHA-256")
        self.realm, self.ha1_md5, self.ha1_sha256 = realm, md5, sha256

    def clear_password(self) -> None:
        """
        Remove the password: the account can no longer authenticate.
        """
        self.realm = None
        self.ha1_md5 = None
        self.ha1_sha256 = None

    def check_ha1(self, algorithm: str) -> str | None:
        """
        The stored HA1 for a digest algorithm.

        @param algorithm: C{MD5} or C{SHA-256} (case-insensitive), as in the
            SIP C{algorithm=} parameter.
        @return: the hex HA1, or C{None} if no password is set or the
            algorithm is not supported (the caller then refuses).
        """
        name = DIGEST_ALGORITHMS.get(str(algorithm).upper())
        if name == "md5":
            return self.ha1_md5
        if name == "sha256":
            return self.ha1_sha256
        return None
