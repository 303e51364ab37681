"""
Registrar bindings (RFC 3261 section 10.3, RFC 5626), pure.

A L{Binding} is one registered contact of an account: an immutable,
slotted record (about 120 bytes besides its strings, which are interned
where they repeat).  The database holds the very tuple of bindings the
registrar keeps in memory, so the BTree bucket in the object cache and the
registrar share one copy; L{from_record} also reads the plain tuples
(L{Binding.record}) an earlier version wrote.  L{update_bindings}
applies one REGISTER to an account's current bindings and returns the new
tuple or the error to answer with; it neither reads the clock nor touches
the database.

Do not rename or move L{Binding}: databases written before the tuple form
hold pickles of it (C{root["registrations"]}), which L{Binding.__setstate__}
still reads.
"""
from __future__ import annotations

import functools
import ipaddress
import sys
from dataclasses import MISSING, dataclass, fields
from typing import Sequence

from appliance.sip.uri import URI, URIError

__all__ = [
    "NAT_MODES", "Binding", "ContactChange", "RegisterError", "contact_address",
    "contact_key", "delivery_target", "drop_flow", "expire", "from_record", "nat_detected",
    "remove_all", "update_bindings",
]

#: C{[sip] nat}: C{auto} decides per REGISTER (L{delivery_target}),
#: C{contact} always sends to the Contact, C{flow} always over the flow.
NAT_MODES = ("auto", "contact", "flow")

#: Addresses an app behind NAT puts in its Contact: RFC 1918, RFC 6598
#: (carrier-grade NAT), link-local, IPv6 unique-local and link-local, and
#: loopback (never reachable from another host).
_NON_ROUTABLE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "127.0.0.0/8", "fc00::/7", "fe80::/10", "::1/128"))


#: Interned texts that repeat across bindings (transport names, source
#: hosts, user agents, node names): one copy each, not one per binding.
_intern = sys.intern


@dataclass(frozen=True, slots=True)
class Binding:
    """
    One registered contact.

    @ivar contact: the Contact URI as text.
    @ivar instance: the C{+sip.instance} value, or C{None}.
    @ivar reg_id: the RFC 5626 C{reg-id}, or C{None}.
    @ivar expires_at: clock time (seconds since the epoch, the reactor's
        C{seconds()}) when it lapses; comparable between nodes.
    @ivar transport: C{"UDP"}, C{"TCP"} or C{"TLS"}: how it registered.
    @ivar source: C{(host, port)} it registered from (for UDP, where to
        send: the C{received}/C{rport} address; for TCP/TLS, the peer of
        the connection, which identifies the flow).
    @ivar user_agent: the User-Agent header, or C{""}.
    @ivar call_id: the REGISTER's Call-ID.
    @ivar cseq: the REGISTER's CSeq number.
    @ivar destination: for UDP, the C{(host, port)} of the Contact that
        requests go to; C{None}: over the flow, to C{source} (bindings
        stored before this field existed read C{None}, as they were sent).
    @ivar node: the C{[node] name} of the node holding the flow it
        registered on (the node that sends requests to it); C{""} for
        bindings stored before nodes were recorded.
    """

    contact: str
    instance: str | None
    reg_id: int | None
    expires_at: float
    transport: str
    source: tuple[str, int]
    user_agent: str = ""
    call_id: str = ""
    cseq: int = 0
    destination: tuple[str, int] | None = None
    node: str = ""

    def __setstate__(self, state: object) -> None:
        """
        Unpickle: the slotted form's field values, or the C{__dict__} of
        a binding pickled by the earlier (unslotted) class, whose fields
        were a prefix of these.
        """
        if isinstance(state, dict):
            values = {f: state.get(f, d) for f, d in _DEFAULTS}
        else:
            values = dict(zip((f for f, _ in _DEFAULTS), state))  # type: ignore[call-overload]
        for name, default in _DEFAULTS:
            object.__setattr__(self, name, values.get(name, default))

    def remaining(self, now: float) -> int:
        """
        @param now: the clock time.
        @return: whole seconds left, at least 0.
        """
        return max(0, int(self.expires_at - now + 0.5))

    @property
    def stream(self) -> bool:
        """Whether it registered over a connection (TCP or TLS)."""
        return self.transport != "UDP"

    @property
    def target(self) -> tuple[str, int]:
        """Where a request to this contact goes: its Contact or its flow."""
        return tuple(self.destination or self.source)  # type: ignore[return-value]

    def record(self) -> tuple:
        """
        @return: the binding as a plain tuple without C{node} (the form
            an earlier version wrote to the database; L{from_record} reads
            it back).
        """
        return (self.contact, self.instance, self.reg_id, self.expires_at, self.transport,
                self.source, self.user_agent, self.call_id, self.cseq, self.destination)

    def on_node(self, node: str) -> "Binding":
        """
        @param node: a node name.
        @return: this binding, held by C{node}.
        """
        if node == self.node:
            return self
        return Binding(self.contact, self.instance, self.reg_id, self.expires_at,
                       self.transport, self.source, self.user_agent, self.call_id, self.cseq,
                       self.destination, _intern(node))


#: The fields of L{Binding} in order, with their defaults (C{None} for
#: the required ones).
_DEFAULTS = tuple((f.name, None if f.default is MISSING else f.default)
                  for f in fields(Binding))


def from_record(record: object, node: str = "") -> Binding:
    """
    Read a binding as the database keeps it.

    @param record: a L{Binding}, or a tuple from L{Binding.record}.
    @param node: the node holding it (from the database key).
    @return: the binding; its repeated texts interned.
    @raise ValueError: for a record of another shape.
    """
    if isinstance(record, Binding):
        return record.on_node(node)
    if not isinstance(record, tuple) or not 6 <= len(record) <= 10:
        raise ValueError(f"not a binding record: {record!r:.80}")
    (contact, instance, reg_id, expires_at, transport, source,
     user_agent, call_id, cseq, destination) = record + (("", "", 0, None)[len(record) - 6:])
    host, port = source
    return Binding(contact, instance, reg_id, float(expires_at), _intern(transport),
                   (_intern(host), int(port)), _intern(user_agent), call_id, int(cseq),
                   None if destination is None else (_intern(destination[0]),
                                                     int(destination[1])),
                   _intern(node))


@dataclass(frozen=True)
class ContactChange:
    """
    One Contact of a REGISTER, ready to apply.

    @ivar contact: the Contact URI text.
    @ivar instance: the C{+sip.instance}, or C{None}.
    @ivar reg_id: the C{reg-id}, or C{None}.
    @ivar expires: the granted lifetime in seconds, 0 to remove.
    """

    contact: str
    instance: str | None
    reg_id: int | None
    expires: int
    destination: tuple[str, int] | None = None


class RegisterError(Exception):
    """
    A REGISTER that cannot be applied.

    @ivar status: the SIP status to answer.
    @ivar reason: the reason phrase or warning text.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@functools.lru_cache(maxsize=4096)
def contact_key(contact: str) -> tuple:
    """
    What makes two contact URIs the same binding: scheme, user, host (case
    folded), port and transport parameter (a simplification of RFC 3261
    19.1.4 that ignores the other parameters).

    @param contact: the URI text.
    @return: a comparable key; the text itself if it does not parse.
        Cached (a refresh compares the same contact twice: the REGISTER's
        and the binding's).
    """
    try:
        uri = URI.parse(contact)
    except ValueError:
        return ("raw", contact)
    transport = (uri.param("transport") or "").lower()
    return (uri.scheme, uri.user, uri.host.lower(), uri.port, transport)


def _matches(binding: Binding, change: ContactChange) -> bool:
    if change.instance is not None and binding.instance is not None:
        # RFC 5626 6.3: the same instance and reg-id is the same flow's
        # binding, whatever its contact URI.
        return binding.instance == change.instance and binding.reg_id == change.reg_id
    return contact_key(binding.contact) == contact_key(change.contact)


def update_bindings(current: Sequence[Binding], changes: Sequence[ContactChange],
                    now: float, transport: str, source: tuple[str, int],
                    user_agent: str, call_id: str, cseq: int,
                    max_contacts: int = 10, node: str = "") -> tuple[Binding, ...]:
    """
    Apply the Contacts of one REGISTER (RFC 3261 10.3 steps 6 to 8).

    @param current: the account's bindings (expired ones are dropped).
    @param changes: the Contacts, with their granted expiry (0: remove).
    @param now: the clock time.
    @param transport: how the REGISTER came (C{"UDP"}, C{"TCP"}, C{"TLS"}).
    @param source: where it came from (see L{Binding.source}).
    @param user_agent: its User-Agent.
    @param call_id: its Call-ID.
    @param cseq: its CSeq number.
    @param max_contacts: the most bindings one account may hold.
    @param node: the node name new bindings carry (L{Binding.node}).
    @return: the new bindings, in registration order.
    @raise RegisterError: C{500} for an out-of-order REGISTER (same
        Call-ID, CSeq not higher), C{403} for too many contacts.
    """
    result = [b for b in current if b.expires_at > now]
    transport, user_agent, node = _intern(transport), _intern(user_agent), _intern(node)
    source = (_intern(source[0]), int(source[1]))
    for change in changes:
        keep = []
        for b in result:
            if _matches(b, change):
                if b.call_id == call_id and b.cseq >= cseq:
                    raise RegisterError(500, "Out of order REGISTER")
            else:
                keep.append(b)
        result = keep
        if change.expires > 0:
            result.append(Binding(change.contact, change.instance, change.reg_id,
                                  now + change.expires, transport, source, user_agent,
                                  call_id, cseq, change.destination, node))
    if len(result) > max_contacts:
        raise RegisterError(403, f"At most {max_contacts} contacts per account")
    return tuple(result)


def remove_all(current: Sequence[Binding], call_id: str, cseq: int) -> tuple[Binding, ...]:
    """
    Apply C{Contact: *} with C{Expires: 0} (RFC 3261 10.3 step 6).

    @param current: the account's bindings.
    @param call_id: the REGISTER's Call-ID.
    @param cseq: its CSeq number.
    @return: the bindings left: none, unless one has the same Call-ID and
        a CSeq not lower (an out-of-order request does not remove it).
    """
    return tuple(b for b in current if b.call_id == call_id and b.cseq >= cseq)


def expire(current: Sequence[Binding], now: float) -> tuple[Binding, ...]:
    """
    @param current: bindings.
    @param now: the clock time.
    @return: those not yet lapsed.
    """
    return tuple(b for b in current if b.expires_at > now)


def drop_flow(current: Sequence[Binding], transport: str,
              source: tuple[str, int]) -> tuple[Binding, ...]:
    """
    @param current: bindings.
    @param transport: a connection's transport name.
    @param source: the connection's peer.
    @return: the bindings not learnt over that connection.
    """
    return tuple(b for b in current if not (b.stream and b.transport == transport
                                            and tuple(b.source) == tuple(source)))


@functools.lru_cache(maxsize=4096)
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def contact_address(contact: str) -> tuple[str, int] | None:
    """
    Where a UDP request to a Contact goes (RFC 3263 without DNS): its
    C{maddr} or host, which must be an IP address, and its port (5060 when
    absent).

    @param contact: the Contact URI text.
    @return: C{(host, port)}, or C{None} when the Contact names a host (no
        DNS look-up is made on the delivery path), asks for another
        transport than UDP, or does not parse.
    """
    try:
        uri = URI.parse(contact)
    except (URIError, ValueError):
        return None
    if (uri.param("transport") or "udp").lower() != "udp" or uri.scheme != "sip":
        return None
    host = uri.param("maddr") or uri.host
    address = _ip(host)
    if address is None:
        return None
    return str(address), uri.port or 5060


def nat_detected(contact: tuple[str, int], source: tuple[str, int],
                 sent_by: tuple[str, int | None]) -> bool:
    """
    Whether a UDP REGISTER came through a NAT (what carriers' registrars
    test, RFC 3581 in spirit): its Contact is a non-routable address other
    than the source's, or its top Via's sent-by host or port is not where
    the packet came from.  A Contact that differs from the source only by
    port, from an app whose Via is its source, is an app listening on
    another socket of the same host: not NAT.

    @param contact: the Contact's C{(host, port)} (L{contact_address}).
    @param source: the REGISTER's source C{(host, port)}.
    @param sent_by: the top Via's C{(host, port)}, port C{None} when absent.
    @return: whether to use the flow.
    """
    source_ip = _ip(source[0])
    contact_ip = _ip(contact[0])
    if contact_ip is not None and contact_ip != source_ip \
            and any(contact_ip in net for net in _NON_ROUTABLE if net.version == contact_ip.version):
        return True
    via_ip = _ip(sent_by[0])
    if via_ip is None or via_ip != source_ip:
        return True
    return (sent_by[1] or 5060) != int(source[1])


def delivery_target(mode: str, contact: str, instance: str | None, reg_id: int | None,
                    source: tuple[str, int],
                    sent_by: tuple[str, int | None]) -> tuple[str, int] | None:
    """
    Where requests to a contact registered over UDP go (RFC 3261 10,
    RFC 3581, RFC 5626).

    @param mode: one of L{NAT_MODES}.
    @param contact: the Contact URI text.
    @param instance: its C{+sip.instance}, or C{None}.
    @param reg_id: its C{reg-id}, or C{None}.
    @param source: the REGISTER's source C{(host, port)}.
    @param sent_by: its top Via's sent-by C{(host, port)}.
    @return: the Contact's C{(host, port)}, or C{None} for the flow the
        REGISTER came on: always with C{flow}; with C{auto} when the app
        asked for outbound (instance and reg-id) or L{nat_detected}; with
        either of the others when the Contact has no usable UDP address.
    """
    if mode == "flow":
        return None
    target = contact_address(contact)
    if target is None or mode == "contact":
        return target
    if instance is not None and reg_id is not None:
        return None
    if nat_detected(target, source, sent_by):
        return None
    return target
