# -*- test-case-name: tests.billing.test_rules -*-
"""
Authorization rules: who pays for a message, decided from where it came
in (pure).

An incoming point is what a protocol knows of a message before it is
stored (L{Point}): the kind of its origin in the rules' words (C{carrier}
for an SMPP bind of a carrier, C{connection} for a message from a vendor
over one of our outbound connections, C{app} for a SIP account, C{tenant}
for the HTTP API), the origin's name, the address it came from and the
sender.  Rules are tried in their configured order (L{RuleBook}); the
first one that matches and can charge the message decides:

  - C{carrier}: the carrier it came from (only messages from carriers,
    and from MSCs over MAP by their global title);
  - C{connection}: the vendor of the connection it came over (only
    messages over connections);
  - C{sender}: the sending account or tenant (only messages from apps and
    tenants);
  - C{recipient}: the local account that receives it (only messages for a
    local account);
  - C{nobody}: it is free, and no record is written.

A rule that matches but cannot charge the message (C{charge carrier} for
a message from an app) is passed over, so a short list such as "carriers
pay, apps pay" stays correct for everything else.  When no rule decides,
the built-in attribution (L{BUILT_IN}) does: the origin pays, which is
what the node did before rules existed.

Nothing here imports Twisted or ZODB: the charger rebuilds a L{RuleBook}
after each configuration commit and matches on it per message.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from appliance.model.errors import ModelError
from appliance.model.numbers import PatternMatcher

#: Origin kinds a rule can match.
ORIGINS = ("carrier", "connection", "app", "tenant")
#: Who a rule can charge.
CHARGES = ("carrier", "connection", "sender", "recipient", "nobody")
#: The rules' origin kind by L{Submission} origin kind (C{node}: the
#: node's own messages, such as balance notifications, match no rule).
ORIGIN_OF = {"carrier": "carrier", "connection": "connection",
             "account": "app", "http": "tenant", "tenant": "tenant",
             "map": "map"}
#: Which origins each charge can apply to (C{recipient} and C{nobody}:
#: any).
_CHARGEABLE = {"carrier": ("carrier", "map"), "connection": ("connection",),
               "sender": ("app", "tenant")}


class Point(NamedTuple):
    """
    Where a message came in.

    @ivar origin_kind: one of L{ORIGINS}, or C{node} for the node's own.
    @ivar origin: the origin's name (carrier, connection, account,
        tenant).
    @ivar source: the peer's IP address as text, or C{None} when the
        protocol does not know it.
    @ivar sender: the sender address (digits, or an alphanumeric name).
    @ivar recipient: the local account that receives it, or C{None}.
    """
    origin_kind: str
    origin: str
    source: str | None = None
    sender: str = ""
    recipient: str | None = None


def point_of(submission, account: str | None) -> Point:
    """
    @param submission: a L{appliance.messaging.vocabulary.Submission}.
    @param account: the receiving local account, if any.
    @return: its incoming point.
    """
    return Point(ORIGIN_OF.get(submission.origin_kind,
                               submission.origin_kind),
                 submission.origin, getattr(submission, "source", None),
                 getattr(submission, "sender", ""), account)


def _address(text: str | None):
    if not text:
        return None
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


@dataclass(frozen=True)
class Rule:
    """
    One authorization rule.

    @ivar name: its name.
    @ivar origin_kind: the origin kind it matches (C{None}: any).
    @ivar origin: the origin's name it matches (C{None}: any).
    @ivar source: the network the peer's address must be in (C{None}:
        any; a message whose address is unknown does not match a rule
        with a network).
    @ivar sender: the sender pattern (C{None}: any sender; a pattern only
        matches numeric senders).
    @ivar charge: one of L{CHARGES}.
    @ivar tariff: the tariff to rate with (C{None}: the payer's own).
    """
    name: str
    origin_kind: str | None = None
    origin: str | None = None
    source: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    sender: PatternMatcher | None = None
    charge: str = "nobody"
    tariff: str | None = None

    @classmethod
    def build(cls, name: str, origin_kind: str | None = None,
              origin: str | None = None, source: str | None = None,
              sender: str | None = None, charge: str = "nobody",
              tariff: str | None = None) -> "Rule":
        """
        @param source: a network in text (C{10.0.0.0/8}).
        @param sender: a number pattern (C{964%}).
        @raise ValueError: for an unknown origin kind or charge, a bad
            network or pattern, or a charge the origin can never have.
        """
        if origin_kind is not None and origin_kind not in ORIGINS:
            raise ValueError(f"an origin is one of: {', '.join(ORIGINS)}")
        if charge not in CHARGES:
            raise ValueError(f"a rule charges one of: {', '.join(CHARGES)}")
        check_charge(origin_kind, charge)
        network = None if source is None else \
            ipaddress.ip_network(str(source), strict=False)
        try:
            pattern = None if sender is None else PatternMatcher(sender)
        except ModelError as e:
            raise ValueError(str(e)) from None
        return cls(name, origin_kind, origin, network, pattern, charge,
                   tariff)

    def matches(self, point: Point) -> bool:
        """
        @return: whether C{point} matches every condition of the rule
            (whether the rule can charge it is L{applies}).
        """
        if self.origin_kind is not None and \
                point.origin_kind != self.origin_kind:
            return False
        if self.origin is not None and point.origin != self.origin:
            return False
        if self.source is not None:
            address = _address(point.source)
            if address is None or address.version != self.source.version \
                    or address not in self.source:
                return False
        if self.sender is not None and not self.sender.matches(point.sender):
            return False
        return True

    def applies(self, point: Point) -> bool:
        """
        @return: whether the rule matches C{point} and can charge it.
        """
        return self.matches(point) and can_charge(self.charge, point)

    def describe(self) -> str:
        """@return: the rule in one line, for tables and C{test route}."""
        conditions = []
        if self.origin_kind is not None:
            conditions.append(f"origin {self.origin_kind}"
                              + (f" {self.origin}" if self.origin else ""))
        elif self.origin is not None:
            conditions.append(f"origin name {self.origin}")
        if self.source is not None:
            conditions.append(f"source {self.source}")
        if self.sender is not None:
            conditions.append(f"sender {self.sender.pattern}")
        what = ", ".join(conditions) or "anything"
        tariff = f" with tariff {self.tariff}" if self.tariff else ""
        return f"{what}: charge {self.charge}{tariff}"


def can_charge(charge: str, point: Point) -> bool:
    """
    @return: whether C{charge} names somebody for a message from C{point}.
    """
    if charge == "recipient":
        return point.recipient is not None
    allowed = _CHARGEABLE.get(charge)
    return allowed is None or point.origin_kind in allowed


def check_charge(origin_kind: str | None, charge: str) -> None:
    """
    @raise ValueError: when a rule for C{origin_kind} could never charge
        C{charge} (C{match origin app} with C{charge carrier}).
    """
    allowed = _CHARGEABLE.get(charge)
    if origin_kind is not None and allowed is not None \
            and origin_kind not in allowed:
        raise ValueError(f"a message from a {origin_kind} has no {charge} "
                         f"to charge (it charges: "
                         f"{', '.join(a for a in allowed)} messages)")


#: The attribution when no configured rule decides: the origin pays (an
#: MSC over MAP counts as a carrier, by its global title; no rule can
#: name that origin kind yet, but C{charge carrier} rules apply to it).
BUILT_IN = (
    Rule("built-in carrier", "carrier", charge="carrier"),
    Rule("built-in connection", "connection", charge="connection"),
    Rule("built-in app", "app", charge="sender"),
    Rule("built-in tenant", "tenant", charge="sender"),
    Rule("built-in map", "map", charge="carrier"),
)


@dataclass(frozen=True)
class RuleBook:
    """
    The configured rules in order, then the built-in ones.

    @ivar rules: the configured rules, first tried first.
    """
    rules: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, rules: Iterable[Rule]) -> "RuleBook":
        """@return: a book of C{rules} in the order given."""
        return cls(tuple(rules))

    def decide(self, point: Point) -> Rule:
        """
        The rule that decides who pays for a message from C{point}.

        @return: the first configured rule that applies, else the
            built-in rule of its origin kind, else a C{nobody} rule
            (the node's own messages).
        """
        for rule in self.rules:
            if rule.applies(point):
                return rule
        for rule in BUILT_IN:
            if rule.applies(point):
                return rule
        return _FREE


_FREE = Rule("built-in node", charge="nobody")
