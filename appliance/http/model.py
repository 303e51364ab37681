# -*- test-case-name: tests.http.test_model -*-
"""
Tenants (content providers and ESMEs sending over HTTP) and the durable
queue of delivery-report callbacks, kept in C{root["http"]}.

A tenant's password is kept as a salted scrypt hash (L{HashedSecret}); its
API token, a random 256-bit value shown once, as the SHA-256 of the token
(a random token needs no slow hash, and the index by hash makes a Bearer
look-up one BTree read).  The balance is state, not configuration.

Requests read tenants from a L{TenantBook}: an immutable snapshot of every
tenant's settings, its token index and each tenant's numbering plan, built
after each configuration commit (L{book_of}), so the hot path touches no
persistent object.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

from BTrees.LOBTree import LOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent

from appliance.model.base import (
    Configurable, Setting, boolean, int_range, network, validate_name)
from appliance.model.errors import ModelError
from appliance.model.numbering import DEFAULT_PLAN, Plan, PlanOverrides
from appliance.model.numbers import compile_pattern, validate_pattern
from appliance.model.passwords import (
    HashedSecret, hash_secret, validate_password)

#: The root key.
KEY = "http"
#: An alphanumeric sender: letters, digits, space and a few signs, 1-11.
_ALPHA_SENDER = re.compile(r"[A-Za-z0-9 .&'_-]{1,11}")
_TOKEN_HASH = re.compile(r"sha256\$[0-9a-f]{64}")
_SECRET = re.compile(r"[!-~]{16,128}")


def token_hash(token: str) -> str:
    """
    @param token: an API token as the tenant sends it.
    @return: C{sha256$<hex>} of it.
    """
    return "sha256$" + hashlib.sha256(token.encode("utf-8")).hexdigest()


def validate_token_hash(value: Any) -> str:
    """
    @return: C{value} if it is C{sha256$} and 64 hex digits.
    @raise ModelError: otherwise.
    """
    if not isinstance(value, str) or not _TOKEN_HASH.fullmatch(value):
        raise ModelError("a token hash is the sha256$... string that show "
                         "running-config writes")
    return value


def validate_sender(value: Any) -> str:
    """
    An allowed sender: a number pattern (digits, C{%}, C{_}) or an exact
    alphanumeric name of up to 11 characters.

    @raise ModelError: for anything else.
    """
    if not isinstance(value, str) or not value.strip():
        raise ModelError("a sender is a number pattern or a name")
    text = value.strip()
    if set(text) <= set("0123456789%_"):
        return validate_pattern(text)
    if not _ALPHA_SENDER.fullmatch(text):
        raise ModelError("an alphanumeric sender is 1 to 11 letters, digits, "
                         "spaces or . & ' _ -")
    return text


def validate_dlr_secret(value: Any) -> str | None:
    """
    @return: C{value}: 16 to 128 printable ASCII characters without spaces.
    @raise ModelError: otherwise.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not _SECRET.fullmatch(value):
        raise ModelError("a dlr-secret is 16 to 128 printable characters "
                         "without spaces")
    return value


def compile_networks(nets: tuple[str, ...]) -> tuple:
    """@return: the C{ip_network}s of an allowed-networks setting."""
    return tuple(ipaddress.ip_network(n) for n in nets)


def compile_senders(senders: tuple[str, ...]) -> tuple:
    """@return: the rules of an allowed-senders setting: compiled number
    patterns, and names as strings."""
    return tuple(compile_pattern(s) if set(s) <= set("0123456789%_") else s
                 for s in senders)


def address_allowed(networks: tuple, ip: str) -> bool:
    """
    @param networks: from L{compile_networks}; empty allows any address.
    @param ip: the client's address (an IPv4-mapped IPv6 one counts as
        its IPv4 address).
    """
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(str(ip).strip())
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in n for n in networks
               if n.version == address.version)


def sender_matches(rules: tuple, sender: str) -> bool:
    """
    @param rules: from L{compile_senders}; empty allows any sender.
    @param sender: digits (normalized) or an alphanumeric sender.
    """
    if not rules:
        return True
    for rule in rules:
        if isinstance(rule, str):
            if sender == rule:
                return True
        elif rule.matches(sender):
            return True
    return False


def _senders(value: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(validate_sender(v) for v in value))


def _networks(value: Any) -> tuple[str, ...]:
    return tuple(dict.fromkeys(network(v) for v in value))


class Tenant(HashedSecret, PlanOverrides, Configurable):
    """
    A tenant of the HTTP API.  Its numbering plan is the node's with its
    own overrides (C{plan_*}, L{PlanOverrides}): how the numbers of its
    requests are read.

    C{tariff} is set through L{HTTPRoot.set_tariff} (the name must exist);
    C{token_hash} through L{HTTPRoot.new_token} and friends (the index must
    stay right).  Other settings reset with C{del tenant.<name>}.

    @ivar balance: the prepaid balance (state, never in running-config).
    """

    _v_nets: tuple | None = None
    _v_senders: tuple | None = None
    balance: Decimal = Decimal(0)

    token_hash = Setting(None, lambda v: v, readonly="use HTTPRoot's tokens",
                         doc="SHA-256 of the API token, or None.")
    allowed_networks = Setting((), _networks,
                               doc="Networks requests may come from; "
                                   "empty = any.")
    allowed_senders = Setting((), _senders,
                              doc="Sender patterns or names; empty = any.")
    throughput = Setting(0, int_range("throughput", 0, 100000),
                         doc="Messages per second, 0 = unlimited.")
    prepaid = Setting(False, boolean("prepaid"),
                      doc="Whether it pays from its balance, before sending.")
    tariff = Setting(None, lambda v: v, readonly="use HTTPRoot.set_tariff",
                     doc="Name of the tariff rating its messages, or None.")
    dlr_secret = Setting(None, validate_dlr_secret,
                         doc="Key of the callbacks' HMAC signature.")
    callback_ca = Setting(None, lambda v: v,
                          doc="PEM file of the CA its https callback "
                              "servers' certificates must chain to "
                              "(None: the system's trust store).")
    enabled = Setting(True, boolean("enabled"),
                      doc="Whether its requests are served.")

    def set_password(self, password: str) -> None:
        """
        @param password: 1 to 128 printable characters (kept hashed).
        @raise ModelError: for another value.
        """
        self.password_hash = hash_secret(validate_password(password))

    def clear_password(self) -> None:
        """Remove the password: only a token authenticates it then."""
        self.password_hash = None

    def allow_ip(self, net: str) -> None:
        """@param net: an address or network requests may come from."""
        self.allowed_networks = self.allowed_networks + (network(net),)

    def disallow_ip(self, net: str) -> None:
        """@raise ModelError: if C{net} is not in the list."""
        normal = network(net)
        if normal not in self.allowed_networks:
            raise ModelError(f"{normal} is not an allowed network of "
                             f"{self.name}")
        self.allowed_networks = tuple(n for n in self.allowed_networks
                                      if n != normal)

    def allow_sender(self, sender: str) -> None:
        """@param sender: a number pattern or an alphanumeric name."""
        self.allowed_senders = self.allowed_senders + (validate_sender(
            sender),)

    def disallow_sender(self, sender: str) -> None:
        """@raise ModelError: if C{sender} is not in the list."""
        text = validate_sender(sender)
        if text not in self.allowed_senders:
            raise ModelError(f"{text} is not an allowed sender of "
                             f"{self.name}")
        self.allowed_senders = tuple(s for s in self.allowed_senders
                                     if s != text)

    def source_allowed(self, ip: str) -> bool:
        """
        @param ip: the client's address.
        @return: whether requests may come from it (any, when no
            networks are set).
        """
        nets = self.allowed_networks
        if not nets:
            return True
        cached = self._v_nets
        if cached is None or cached[0] != nets:
            cached = self._v_nets = (nets, compile_networks(nets))
        return address_allowed(cached[1], ip)

    def sender_allowed(self, sender: str) -> bool:
        """
        @param sender: digits (normalized) or an alphanumeric sender.
        @return: whether the tenant may send as it (any, when none set).
        """
        senders = self.allowed_senders
        if not senders:
            return True
        cached = self._v_senders
        if cached is None or cached[0] != senders:
            cached = self._v_senders = (senders, compile_senders(senders))
        return sender_matches(cached[1], sender)

    def view(self, node_plan: Plan = DEFAULT_PLAN) -> "TenantView":
        """
        @param node_plan: the node's numbering plan.
        @return: the immutable snapshot of this tenant's settings.
        """
        return TenantView(
            self.name, self.password_hash, self.token_hash,
            self.allowed_networks, self.allowed_senders, self.throughput,
            self.prepaid, self.tariff, self.dlr_secret, self.enabled,
            node_plan.overlaid(self.plan_overrides()),
            compile_networks(self.allowed_networks),
            compile_senders(self.allowed_senders))


@dataclass(frozen=True)
class TenantView:
    """
    A tenant's settings as requests read them (no balance: that is state,
    read from the database where it is needed).

    @ivar plan: its numbering plan (the node's with its overrides).
    """
    name: str
    password_hash: str | None
    token_hash: str | None
    allowed_networks: tuple[str, ...]
    allowed_senders: tuple[str, ...]
    throughput: int
    prepaid: bool
    tariff: str | None
    dlr_secret: str | None
    enabled: bool
    plan: Plan
    networks: tuple = field(default=(), repr=False, compare=False)
    sender_rules: tuple = field(default=(), repr=False, compare=False)

    def source_allowed(self, ip: str) -> bool:
        """Whether requests may come from C{ip} (see L{Tenant})."""
        return address_allowed(self.networks, ip)

    def sender_allowed(self, sender: str) -> bool:
        """Whether the tenant may send as C{sender} (see L{Tenant})."""
        return sender_matches(self.sender_rules, sender)


@dataclass(frozen=True)
class TenantBook:
    """
    Every tenant as requests read them, and the token index: what the
    guard and the send path use instead of L{HTTPRoot} (the same
    C{tenants.get(name)} and C{by_token(token)}).

    @ivar tenants: name to L{TenantView}.
    @ivar tokens: token hash to tenant name.
    @ivar plan: the node's numbering plan.
    """
    tenants: Mapping[str, TenantView] = field(default_factory=dict)
    tokens: Mapping[str, str] = field(default_factory=dict)
    plan: Plan = DEFAULT_PLAN

    def by_token(self, token: str) -> TenantView | None:
        """
        @param token: a Bearer token.
        @return: its tenant, or C{None}.
        """
        name = self.tokens.get(token_hash(token))
        return None if name is None else self.tenants.get(name)


def book_of(http: "HTTPRoot | None", node_plan: Plan = DEFAULT_PLAN
            ) -> TenantBook:
    """
    Snapshot the tenants.

    @param http: C{root["http"]}, or C{None} (no tenants).
    @param node_plan: the node's numbering plan.
    """
    if http is None:
        return TenantBook(plan=node_plan)
    return TenantBook(
        {name: tenant.view(node_plan) for name, tenant in
         http.tenants.items()}, dict(http.tokens.items()), node_plan)


class Callback(Persistent):
    """
    One delivery report waiting to be POSTed to a tenant.

    @ivar message: the message id.
    @ivar tenant: the tenant's name (its dlr-secret signs at send time).
    @ivar url: where to POST.
    @ivar body: the JSON body (bytes, fixed when queued).
    @ivar due: when the next attempt is due (epoch seconds).
    @ivar expires: the message's validity end: no attempt after it.
    @ivar attempts: attempts made.
    @ivar error: the last failure, for C{show http}.
    """

    message: int = 0
    tenant: str = ""
    url: str = ""
    body: bytes = b""
    due: float = 0.0
    expires: float = 0.0
    attempts: int = 0
    error: str | None = None

    def __init__(self, message: int, tenant: str, url: str, body: bytes,
                 due: float, expires: float) -> None:
        self.message, self.tenant, self.url = message, tenant, url
        self.body, self.due, self.expires = body, due, expires


class HTTPRoot(Persistent):
    """
    C{root["http"]}: tenants, their token index, and the callback queue.

    @ivar tenants: name to L{Tenant}.
    @ivar tokens: token hash to tenant name.
    @ivar callbacks: serial to L{Callback}.
    @ivar serial: the last callback serial.
    """

    tenants: OOBTree | None = None
    tokens: OOBTree | None = None
    callbacks: LOBTree | None = None
    serial: int = 0

    def __init__(self) -> None:
        self.tenants = OOBTree()
        self.tokens = OOBTree()
        self.callbacks = LOBTree()

    # -- tenants ---------------------------------------------------------

    def add_tenant(self, name: str) -> Tenant:
        """
        @raise ModelError: for a bad or taken name.
        """
        tenant = Tenant(name)
        if tenant.name in self.tenants:
            raise ModelError(f"tenant {tenant.name!r} already exists")
        self.tenants[tenant.name] = tenant
        return tenant

    def remove_tenant(self, name: str, policies: Any = ()) -> None:
        """
        @param policies: the service policies (one naming it refuses).
        @raise ModelError: no such tenant, or a policy matches it.
        """
        tenant = self.tenant(name)
        for policy in policies:
            if getattr(policy, "origin_tenant", None) == tenant.name:
                raise ModelError(f"tenant {tenant.name!r} is used by policy "
                                 f"{policy.name!r}")
        self.clear_token(tenant.name)
        del self.tenants[tenant.name]

    def tenant(self, name: str) -> Tenant:
        """@raise ModelError: if there is no tenant C{name}."""
        tenant = self.tenants.get(validate_name(name))
        if tenant is None:
            raise ModelError(f"no tenant named {name!r}")
        return tenant

    def set_tariff(self, name: str, tariff: str | None,
                   tariffs: Any) -> None:
        """
        @param tariffs: the model's tariffs by name.
        @raise ModelError: for an unknown tenant or tariff.
        """
        tenant = self.tenant(name)
        if tariff is not None:
            if tariffs.get(validate_name(tariff)) is None:
                raise ModelError(f"no tariff named {tariff!r}")
        tenant._assign("tariff", tariff)

    # -- tokens ----------------------------------------------------------

    def new_token(self, name: str) -> str:
        """
        Give a tenant a new API token (the old one stops working).

        @return: the token, to be shown once.
        """
        token = secrets.token_urlsafe(32)
        self.set_token_hash(name, token_hash(token))
        return token

    def set_token_hash(self, name: str, value: str) -> None:
        """
        Restore a token hash (as C{show running-config} writes it).

        @raise ModelError: for a bad hash or one of another tenant.
        """
        tenant = self.tenant(name)
        value = validate_token_hash(value)
        holder = self.tokens.get(value)
        if holder is not None and holder != tenant.name:
            raise ModelError(f"that token belongs to tenant {holder!r}")
        self.clear_token(tenant.name)
        self.tokens[value] = tenant.name
        tenant._assign("token_hash", value)

    def clear_token(self, name: str) -> None:
        """Remove a tenant's token."""
        tenant = self.tenant(name)
        if tenant.token_hash is not None:
            self.tokens.pop(tenant.token_hash, None)
        tenant._assign("token_hash", None)

    def by_token(self, token: str) -> Tenant | None:
        """
        @param token: a Bearer token.
        @return: its tenant, or C{None}.
        """
        name = self.tokens.get(token_hash(token))
        return None if name is None else self.tenants.get(name)

    # -- callbacks -------------------------------------------------------

    def queue_callback(self, callback: Callback,
                       serial: int | None = None) -> int:
        """
        @param serial: the serial to keep it under, from the caller (nodes
            sharing a database number their callbacks from their own
            epochs, so that they never write this object's counter both
            at once); by default the next of C{serial}.
        @return: the serial it is kept under.
        """
        if serial is None:
            self.serial += 1
            serial = self.serial
        self.callbacks[serial] = callback
        return serial


def new_dlr_secret() -> str:
    """@return: a random dlr-secret (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def sign(secret: str | None, body: bytes) -> str:
    """
    @return: the C{X-Signature} value: C{sha256=<hex HMAC-SHA256>} of
        C{body} keyed with C{secret} (an empty key when none is set).
    """
    key = (secret or "").encode("utf-8")
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def http_of(app_root: Any) -> HTTPRoot:
    """
    @param app_root: the C{ApplianceRoot} (or another object of the same
        database connection).
    @return: C{root["http"]} of that connection.
    @raise ModelError: if the database has no tenants set up.
    """
    jar = getattr(app_root, "_p_jar", None)
    http = jar.root().get(KEY) if jar is not None else None
    if http is None:
        raise ModelError("tenants are not set up in this database")
    return http


def tenant_of(app_root: Any, name: str) -> Tenant | None:
    """
    @return: the tenant C{name} of the database C{app_root} belongs to, or
        C{None} (also when tenants are not set up).
    """
    try:
        return http_of(app_root).tenants.get(name)
    except ModelError:
        return None
