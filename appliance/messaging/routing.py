# -*- test-case-name: tests.messaging.test_routing -*-
"""
Where a message goes: one pure decision over what the configuration says.

    decide(lookup, submission, local, transports) -> Decision | NoRoute

  1. A message that passed more than L{MAX_HOPS} nodes is refused (a loop
     between nodes).
  2. The recipient's account (by DID, then by username) takes it, over
     the C{local} transport (the one delivering to accounts' apps), unless
     the account is disabled or its product has no messaging.
  3. Otherwise the first service policy matching sender, recipient and
     origin takes it, over its transport, which must be one this node
     delivers with (C{transports}); a policy whose transport is the local
     one names no account here, so it routes nothing.
  4. Nobody: L{NoRoute}, with the reason the sender is told.

The lookup is an L{IRouteLookup}: the messaging core hands in one over
the reactor thread's view of the database and its route-table snapshot;
tests hand in L{StaticLookup}.  Pure: no Twisted, no ZODB.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Mapping

from zope.interface import Interface, implementer

from appliance.messaging.vocabulary import NoRoute, Submission
from appliance.model.numbers import normalize_e164

#: Nodes a message may pass before it is refused as looping.
MAX_HOPS = 5
#: The name of the route to a local account.
LOCAL = "local"
#: Policy origins by message origin kind.
#: (C{map}: an MSC relaying mo-forwardSM counts as a carrier.)
POLICY_ORIGIN = {"account": "app", "carrier": "carrier", "map": "carrier",
                 "connection": "connection", "http": "app",
                 "tenant": "tenant"}


@dataclass(frozen=True)
class LocalAccount:
    """
    What routing needs of an account.

    @ivar username: its username.
    @ivar enabled: whether it may receive.
    @ivar messaging: whether its product carries messages (no product:
        yes).
    """
    username: str
    enabled: bool = True
    messaging: bool = True


@dataclass(frozen=True)
class Decision:
    """
    Where a message goes.

    @ivar transport: the agent's transport name.
    @ivar account: the receiving account's username, or C{None}.
    @ivar route: C{local} or the policy's name.
    @ivar recipient: the recipient, normalized.
    """
    transport: str
    account: str | None
    route: str
    recipient: str

    def __iter__(self):
        """Unpacks as C{(transport, account, route)}, as the core's
        C{route()} always returned."""
        return iter((self.transport, self.account, self.route))


class IRouteLookup(Interface):
    """What routing reads: accounts and the service policies."""

    def account(number):
        """
        @param number: normalized digits.
        @return: the L{LocalAccount} owning C{number} as a DID, else the
            account whose username it is, else C{None}.
        """

    def policy(sender, recipient, origin, origin_name):
        """
        @param origin: the policy origin (C{app}, C{carrier}...).
        @param origin_name: the origin's name (a tenant's, for policies of
            one tenant).
        @return: the first matching policy's
            L{appliance.model.routing.Route}, or C{None}.
        """


@implementer(IRouteLookup)
class StaticLookup:
    """An L{IRouteLookup} over plain mappings (tests, benches)."""

    def __init__(self, accounts: Mapping[str, LocalAccount] = {},
                 dids: Mapping[str, str] = {}, table: Any = None) -> None:
        """
        @param accounts: username to account.
        @param dids: DID to username.
        @param table: a L{appliance.model.routing.RouteTable}, or C{None}.
        """
        self.accounts = dict(accounts)
        self.dids = dict(dids)
        self.table = table

    def account(self, number: str) -> LocalAccount | None:
        """See L{IRouteLookup.account}."""
        username = self.dids.get(number, number)
        return self.accounts.get(username)

    def policy(self, sender: str, recipient: str, origin: str | None,
               origin_name: str | None = None):
        """See L{IRouteLookup.policy}."""
        if self.table is None:
            return None
        return self.table.decide(sender, recipient, origin, origin_name)


@implementer(IRouteLookup)
class RootLookup:
    """
    An L{IRouteLookup} over the reactor thread's view of the
    L{appliance.model.root.ApplianceRoot} (BTree reads of microseconds)
    and a route-table snapshot.
    """

    def __init__(self, root: Any, table: Any) -> None:
        """
        @param root: the L{ApplianceRoot}.
        @param table: the L{appliance.model.routing.RouteTable} snapshot.
        """
        self.root = root
        self.table = table

    def account(self, number: str) -> LocalAccount | None:
        """See L{IRouteLookup.account}."""
        root = self.root
        account = root.account_for_did(number) or root.accounts.get(number)
        if account is None:
            return None
        product = root.products.get(account.product) \
            if account.product else None
        return LocalAccount(account.username, bool(account.enabled),
                            product is None or bool(product.messaging))

    def policy(self, sender: str, recipient: str, origin: str | None,
               origin_name: str | None = None):
        """See L{IRouteLookup.policy}."""
        return self.table.decide(sender, recipient, origin, origin_name)


def decide(lookup: Any, submission: Submission, local: str,
           transports: Collection[str]) -> Decision:
    """
    Route one message (the rules are in the module docstring).

    @param lookup: an L{IRouteLookup}.
    @param submission: the message as received.
    @param local: the transport that delivers to local accounts.
    @param transports: the transports this node has agents for.
    @return: the L{Decision}.
    @raise NoRoute: nobody takes it; C{str()} says why.
    @raise appliance.model.errors.ModelError: the recipient is not a
        number.
    """
    if submission.hops > MAX_HOPS:
        raise NoRoute(f"message passed {submission.hops} nodes: "
                      "routing loop")
    number = normalize_e164(submission.recipient)
    account = lookup.account(number)
    if account is not None:
        if not account.enabled:
            raise NoRoute(f"account {account.username} is disabled")
        if not account.messaging:
            raise NoRoute(f"messaging is not enabled for account "
                          f"{account.username}")
        return Decision(local, account.username, LOCAL, number)
    origin = POLICY_ORIGIN.get(submission.origin_kind)
    route = lookup.policy(submission.sender, number, origin,
                          submission.origin)
    if route is None:
        raise NoRoute(f"no account or service policy for {number}")
    if route.transport == local:
        raise NoRoute(f"policy {route.policy}: no local account {number}")
    if route.transport not in transports:
        raise NoRoute(f"policy {route.policy}: no {route.transport} "
                      "connections in this node")
    return Decision(route.transport, None, route.policy, number)
