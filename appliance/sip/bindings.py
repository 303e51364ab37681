"""
Registrar bindings (RFC 3261 section 10.3, RFC 5626), pure.

A L{Binding} is one registered contact of an account: an immutable record,
stored as is in the database (C{root["registrations"]}, an C{OOBTree} of
username to a tuple of bindings). L{update_bindings} applies one REGISTER
to an account's current bindings and returns the new tuple or the error
to answer with; it neither reads the clock nor touches the database.

Do not rename or move L{Binding}: the database holds pickles of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from appliance.sip.uri import URI

__all__ = [
    "Binding", "ContactChange", "RegisterError", "contact_key", "drop_flow", "expire",
    "remove_all", "update_bindings",
]


@dataclass(frozen=True)
class Binding:
    """
    One registered contact.

    @ivar contact: the Contact URI as text.
    @ivar instance: the C{+sip.instance} value, or C{None}.
    @ivar reg_id: the RFC 5626 C{reg-id}, or C{None}.
    @ivar expires_at: clock time (seconds) when it lapses.
    @ivar transport: C{"UDP"}, C{"TCP"} or C{"TLS"}: how it registered.
    @ivar source: C{(host, port)} it registered from (for UDP, where to
        send: the C{received}/C{rport} address; for TCP/TLS, the peer of
        the connection, which identifies the flow).
    @ivar user_agent: the User-Agent header, or C{""}.
    @ivar call_id: the REGISTER's Call-ID.
    @ivar cseq: the REGISTER's CSeq number.
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


def contact_key(contact: str) -> tuple:
    """
    What makes two contact URIs the same binding: scheme, user, host (case
    folded), port and transport parameter (a simplification of RFC 3261
    19.1.4 that ignores the other parameters).

    @param contact: the URI text.
    @return: a comparable key; the text itself if it does not parse.
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
                    max_contacts: int = 10) -> tuple[Binding, ...]:
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
    @return: the new bindings, in registration order.
    @raise RegisterError: C{500} for an out-of-order REGISTER (same
        Call-ID, CSeq not higher), C{403} for too many contacts.
    """
    result = [b for b in current if b.expires_at > now]
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
                                  call_id, cseq))
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
