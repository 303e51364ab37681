"""
Service policies (persistent) and the route table (a pure snapshot).

The route table is built from the root after each configuration commit
and read by the messaging core; it holds no ZODB objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from zope.interface import implementer

from appliance.model.base import Configurable, Setting, choice, validate_name
from appliance.model.interfaces import IServicePolicy
from appliance.model.numbers import PatternMatcher, compile_pattern, validate_pattern

#: Where a message may come from, as a policy's C{origin}.
ORIGINS = ("app", "carrier", "connection")
#: How a policy delivers: C{sip} (local accounts), C{smpp} (connections)
#: or C{map} (to mobile subscribers: SRI-SM then MT-ForwardSM).
TRANSPORTS = ("sip", "smpp", "map", "notification")


def _optional_pattern(value: Any) -> str | None:
    return None if value is None else validate_pattern(value)


@implementer(IServicePolicy)
class ServicePolicy(Configurable):
    """
    One routing rule: which messages (recipient and sender patterns,
    origin) go which way (transport, connections in priority order).

    All settings but C{connections} reset with C{del policy.<name>};
    C{connections} is set through L{ApplianceRoot.set_policy_connections}
    (an empty tuple resets it). A new policy matches every recipient
    (C{%}) from any sender and origin, delivered over SIP.
    """

    recipient_pattern = Setting("%", validate_pattern, doc="Recipient number pattern.")
    sender_pattern = Setting(None, _optional_pattern,
                             doc="Sender number pattern; None = any sender.")
    origin = Setting(None, choice("origin", ORIGINS, optional=True),
                     doc="app, carrier or connection; None = any.")
    transport = Setting("sip", choice("transport", TRANSPORTS), doc="sip, smpp, map or notification.")
    origin_tenant = Setting(None, lambda v: None if v is None else validate_name(v),
                            doc="Only messages of this HTTP tenant; None = any.")
    connections = Setting((), tuple, readonly="use the root's set_policy_connections",
                          doc="Connection names in priority order.")


@dataclass(frozen=True)
class Route:
    """
    The outcome of routing one message.

    @ivar policy: the matching policy's name.
    @ivar transport: C{sip} or C{smpp}.
    @ivar connections: connection names in priority order (may be empty:
        the caller then fails the message as unroutable).
    """

    policy: str
    transport: str
    connections: tuple[str, ...]


@dataclass(frozen=True)
class RouteEntry:
    """
    One compiled policy of a L{RouteTable}.
    """

    name: str
    recipient: PatternMatcher
    sender: PatternMatcher | None
    origin: str | None
    transport: str
    connections: tuple[str, ...]
    tenant: str | None = None

    def route(self) -> Route:
        """
        @return: the L{Route} this entry decides.
        """
        return Route(self.name, self.transport, self.connections)


class RouteTable:
    """
    An immutable, ordered list of compiled policies.
    """

    __slots__ = ("entries",)

    def __init__(self, entries: Iterable[RouteEntry]) -> None:
        """
        @param entries: in priority order.
        """
        self.entries: tuple[RouteEntry, ...] = tuple(entries)

    def decide(self, sender: str, recipient: str, origin: str,
               origin_name: str | None = None) -> Route | None:
        """
        The first policy, in order, matching the message.

        @param sender: the sender (digits or alphanumeric; a policy with a
            sender pattern only matches numeric senders).
        @param recipient: the recipient, E.164 digits.
        @param origin: C{app} (C{account} is accepted as a synonym),
            C{carrier}, C{connection} or another kind (which matches only
            policies without an origin).
        @param origin_name: the origin's name (a policy with
            C{origin tenant NAME} matches only origin C{tenant} of that name).
        @return: its L{Route}, or C{None} if no policy matches.
        """
        if origin == "account":
            origin = "app"
        for entry in self.entries:
            if entry.origin is not None and entry.origin != origin:
                continue
            if entry.tenant is not None and (origin != "tenant"
                                             or origin_name != entry.tenant):
                continue
            if not entry.recipient.matches(recipient):
                continue
            if entry.sender is not None and not entry.sender.matches(sender):
                continue
            return entry.route()
        return None

    def entry(self, name: str) -> RouteEntry | None:
        """
        @param name: a policy name.
        @return: its compiled entry, or C{None}.
        """
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def __len__(self) -> int:
        return len(self.entries)


def route_table(root: Any) -> RouteTable:
    """
    Snapshot the root's policies, in order.

    @param root: an L{IApplianceRoot}.
    @return: the table.
    """
    entries = []
    for policy in root.ordered_policies():
        entries.append(RouteEntry(
            name=policy.name,
            recipient=compile_pattern(policy.recipient_pattern),
            sender=(None if policy.sender_pattern is None
                    else compile_pattern(policy.sender_pattern)),
            origin=policy.origin,
            transport=policy.transport,
            connections=tuple(policy.connections),
            tenant=policy.origin_tenant,
        ))
    return RouteTable(entries)
