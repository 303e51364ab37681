"""Carriers (binding to us over SMPP) and outbound SMPP connections."""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Iterable

from zope.interface import implementer

from appliance.model.base import (
    Configurable, Setting, ascii_text, boolean, choice, int_range, network,
)
from appliance.model.errors import ModelError
from appliance.model.interfaces import ICarrier, IConnection
from appliance.model.numbering import PlanOverrides
from appliance.model.passwords import HashedSecret, hash_secret

#: SMPP 3.4 section 5.2.1: system_id is a C-Octet string of 16 octets.
MAX_SYSTEM_ID = 15
#: SMPP 3.4 section 5.2.2: password is a C-Octet string of 9 octets.
MAX_SMPP_PASSWORD = 8

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

validate_system_id = ascii_text("system_id", MAX_SYSTEM_ID)


def validate_smpp_password(value: Any) -> str:
    """
    Check an SMPP password: 1 to 8 printable ASCII characters, never
    truncated.

    @param value: the password.
    @return: the password.
    @raise ModelError: C{SMPP password is at most 8 characters} and the like.
    """
    if not isinstance(value, str) or not value:
        raise ModelError("SMPP password cannot be empty")
    if len(value) > MAX_SMPP_PASSWORD:
        raise ModelError(f"SMPP password is at most {MAX_SMPP_PASSWORD} characters")
    if not (value.isascii() and value.isprintable()):
        raise ModelError("SMPP password may only hold printable ASCII characters")
    return value


def validate_host(value: Any) -> str | None:
    """
    Check a host: an IPv4/IPv6 address or a DNS name.

    @param value: the host, or C{None} for "not set".
    @return: the host (lower-cased names, compressed IPv6).
    @raise ModelError: if it is neither.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ModelError("a host must be non-empty text")
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.rstrip(".").lower()
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(l) for l in name.split(".")):
        raise ModelError(f"{text!r} is not a host name or IP address")
    return name


def _networks(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    out: list[str] = []
    for item in value:
        net = network(item)
        if net not in out:
            out.append(net)
    return tuple(out)


@implementer(ICarrier)
class Carrier(HashedSecret, PlanOverrides, Configurable):
    """
    A carrier that binds to us over SMPP and submits messages.

    C{system_id} and C{tariff} are managed by the root (their indexes and
    references must stay right): L{ApplianceRoot.set_carrier_system_id},
    L{ApplianceRoot.set_carrier_tariff}, with C{None} as the reset. The
    other settings reset with C{del carrier.<name>}.

    An empty C{allowed_networks} allows binds from any address.
    """

    _v_nets: tuple | None = None

    system_id = Setting(None, validate_system_id,
                        readonly="use the root's set_carrier_system_id",
                        doc="SMPP system_id the carrier binds with.")
    allowed_networks = Setting((), _networks,
                               doc="CIDR networks binds may come from; empty = any.")
    max_binds = Setting(4, int_range("max binds", 1, 100), doc="Concurrent binds.")
    throughput = Setting(0, int_range("throughput", 0, 100000),
                         doc="submit_sm per second, 0 = unlimited.")
    tariff = Setting(None, lambda v: v, readonly="use the root's set_carrier_tariff",
                     doc="Name of the tariff rating this carrier, or None.")
    enabled = Setting(True, boolean("enabled"), doc="Whether binds are accepted.")

    def set_password(self, password: str) -> None:
        """
        Set the SMPP bind password (stored salted and hashed).

        @param password: 1 to 8 printable ASCII characters.
        @raise ModelError: C{SMPP password is at most 8 characters} for a
            longer one (never truncated), or another sentence.
        """
        self.password_hash = hash_secret(validate_smpp_password(password))

    def clear_password(self) -> None:
        """
        Remove the password: every bind is refused.
        """
        self.password_hash = None

    def allow_ip(self, net: str) -> None:
        """
        Add a network binds may come from.

        @param net: an address or CIDR network, IPv4 or IPv6.
        @raise ModelError: if it is not one.
        """
        self.allowed_networks = self.allowed_networks + (network(net),)

    def disallow_ip(self, net: str) -> None:
        """
        Remove a network added by L{allow_ip}.

        @param net: the network, in any notation that normalizes to it.
        @raise ModelError: if it is not a network or not in the list.
        """
        normal = network(net)
        if normal not in self.allowed_networks:
            raise ModelError(f"{normal} is not an allowed network of {self.name}")
        self._assign("allowed_networks",
                     tuple(n for n in self.allowed_networks if n != normal))

    def source_allowed(self, ip: str) -> bool:
        """
        Whether a bind may come from an address.

        @param ip: the peer address (IPv4-mapped IPv6 is also checked as IPv4).
        @return: C{True} if no networks are set (any source) or one contains
            the address; C{False} otherwise or for an unparsable address.
        """
        nets = self.allowed_networks
        if not nets:
            return True
        cached = self._v_nets
        if cached is None or cached[0] != nets:
            cached = (nets, [ipaddress.ip_network(n) for n in nets])
            self._v_nets = cached
        try:
            address = ipaddress.ip_address(str(ip).strip())
        except ValueError:
            return False
        candidates = [address]
        if address.version == 6 and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            a in n for a in candidates for n in cached[1] if a.version == n.version
        )


@implementer(IConnection)
class Connection(PlanOverrides, Configurable):
    """
    An outbound SMPP connection to a vendor's SMSC. Its password is stored
    in clear because we must send it. Every setting resets with
    C{del connection.<name>}.
    """

    host = Setting(None, validate_host, doc="SMSC host name or address.")
    port = Setting(2775, int_range("port", 1, 65535), doc="SMSC TCP port.")
    system_id = Setting(None, validate_system_id, doc="Our system_id there.")
    password = Setting(None, lambda v: None if v is None else validate_smpp_password(v),
                       doc="Our password there (clear text).")
    bind = Setting("transceiver", choice("bind", ("transmitter", "transceiver")),
                   doc="Bind type.")
    binds = Setting(1, int_range("binds", 1, 64), doc="Number of parallel binds.")
    window = Setting(10, int_range("window", 1, 1000), doc="Outstanding submit_sm per bind.")
    throughput = Setting(0, int_range("throughput", 0, 100000),
                         doc="submit_sm per second, 0 = unlimited.")
    tls = Setting(False, boolean("tls"), doc="Whether to use TLS.")
    tls_ca = Setting(None, lambda v: v,
                     doc="PEM file of the CA the SMSC's certificate must "
                         "chain to (None: [smpp] client_ca or the system's "
                         "trust store).")
    shutdown = Setting(False, boolean("shutdown"), doc="Whether it is administratively down.")


def unique(values: Iterable[str]) -> tuple[str, ...]:
    """
    @param values: strings.
    @return: them in order, without repeats.
    """
    return tuple(dict.fromkeys(values))
