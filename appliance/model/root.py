"""
The application root: every operational object, with its indexes.

All changes that touch more than one object (or an index) go through the
root's methods, which validate first and change nothing when they raise
L{ModelError}.
"""
from __future__ import annotations

from typing import Iterable

from BTrees.OOBTree import OOBTree
from persistent import Persistent
from zope.interface import implementer

from appliance.model.base import validate_name
from appliance.model.carriers import Carrier, Connection, unique, validate_system_id
from appliance.model.customers import Account, Customer, Product, validate_username
from appliance.model.errors import ModelError
from appliance.model.interfaces import IApplianceRoot
from appliance.model.numbering import NumberingPlan
from appliance.model.numbers import normalize_e164
from appliance.model.operators import Operator
from appliance.model.routing import ServicePolicy
from appliance.model.tariffs import Tariff


def _need(container: OOBTree, name: str, kind: str):
    obj = container.get(name) if isinstance(name, str) else None
    if obj is None:
        raise ModelError(f"no {kind} named {name!r}")
    return obj


def _refuse_if_used(kind: str, name: str, users, uses, describe) -> None:
    """
    @raise ModelError: naming the first of C{users} for which C{uses(user)}
        holds (C{describe(user)} says who it is).
    """
    for user in users:
        if uses(user):
            raise ModelError(f"{kind} {name!r} is used by {describe(user)}")


def _add(container: OOBTree, obj, kind: str):
    if obj.name in container:
        raise ModelError(f"{kind} {obj.name!r} already exists")
    container[obj.name] = obj
    return obj


@implementer(IApplianceRoot)
class ApplianceRoot(Persistent):
    """
    The root of the operational data (stored as C{root['appliance']}).

    @ivar products: name to L{Product}.
    @ivar customers: name to L{Customer}.
    @ivar accounts: username to L{Account} (usernames are global).
    @ivar dids: E.164 digits to username.
    @ivar carriers: name to L{Carrier}.
    @ivar carriers_by_system_id: system_id to L{Carrier}.
    @ivar connections: name to L{Connection}.
    @ivar policies: name to L{ServicePolicy}.
    @ivar policy_order: policy names, first match first.
    @ivar tariffs: name to L{Tariff}.
    @ivar operators: name to L{Operator}.
    @ivar numbering: the node's L{NumberingPlan}.
    """

    products: OOBTree | None = None
    customers: OOBTree | None = None
    accounts: OOBTree | None = None
    dids: OOBTree | None = None
    carriers: OOBTree | None = None
    carriers_by_system_id: OOBTree | None = None
    connections: OOBTree | None = None
    policies: OOBTree | None = None
    policy_order: tuple[str, ...] = ()
    tariffs: OOBTree | None = None
    operators: OOBTree | None = None
    numbering: NumberingPlan | None = None
    #: The start-up script that provisioned this database, once it ran.
    provisioned: str | None = None

    def __init__(self) -> None:
        self.products = OOBTree()
        self.customers = OOBTree()
        self.accounts = OOBTree()
        self.dids = OOBTree()
        self.carriers = OOBTree()
        self.carriers_by_system_id = OOBTree()
        self.connections = OOBTree()
        self.policies = OOBTree()
        self.tariffs = OOBTree()
        self.operators = OOBTree()
        self.numbering = NumberingPlan()

    # -- products -----------------------------------------------------------

    def add_product(self, name: str) -> Product:
        """
        @param name: a new product name.
        @return: the new L{Product}.
        @raise ModelError: for a bad or taken name.
        """
        return _add(self.products, Product(name), "product")

    def remove_product(self, name: str) -> None:
        """
        @param name: a product no account uses.
        @raise ModelError: if there is none or an account uses it.
        """
        product = _need(self.products, validate_name(name), "product")
        _refuse_if_used("product", product.name, self.accounts.values(),
                        lambda a: a.product == product.name,
                        lambda a: f"account {a.username}")
        del self.products[product.name]

    # -- customers and accounts ----------------------------------------------

    def add_customer(self, name: str) -> Customer:
        """
        @param name: a new customer name, e.g. C{John Doe}.
        @return: the new L{Customer}.
        @raise ModelError: for a bad or taken name.
        """
        return _add(self.customers, Customer(name), "customer")

    def remove_customer(self, name: str) -> None:
        """
        @param name: a customer without accounts.
        @raise ModelError: if there is none or it has accounts.
        """
        customer = _need(self.customers, validate_name(name), "customer")
        if len(customer.accounts):
            raise ModelError(
                f"customer {customer.name!r} still has accounts: remove them first"
            )
        del self.customers[customer.name]

    def add_account(self, customer: str, username: str) -> Account:
        """
        @param customer: an existing customer's name.
        @param username: a username not used by any account.
        @return: the new L{Account}.
        @raise ModelError: for an unknown customer, a bad or taken username.
        """
        owner = _need(self.customers, validate_name(customer), "customer")
        validate_username(username)
        taken = self.accounts.get(username)
        if taken is not None:
            raise ModelError(
                f"username {username} is taken by customer {taken.customer!r}"
            )
        account = Account(username, owner.name)
        self.accounts[username] = account
        owner.accounts[username] = account
        return account

    def remove_account(self, username: str) -> None:
        """
        Remove an account and free its DIDs.

        @param username: an existing account.
        @raise ModelError: if there is none.
        """
        account = _need(self.accounts, username, "account")
        for did in account.dids:
            if self.dids.get(did) == account.username:
                del self.dids[did]
        owner = self.customers.get(account.customer)
        if owner is not None and account.username in owner.accounts:
            del owner.accounts[account.username]
        del self.accounts[account.username]

    def set_account_product(self, username: str, product: str | None) -> None:
        """
        @param username: an existing account.
        @param product: an existing product's name, or C{None} to reset.
        @raise ModelError: for an unknown account or product.
        """
        account = _need(self.accounts, username, "account")
        if product is not None:
            product = _need(self.products, validate_name(product), "product").name
        account._assign("product", product)

    def add_did(self, username: str, number: str) -> str:
        """
        Give an account a DID.

        @param username: an existing account.
        @param number: the DID in any notation L{normalize_e164} takes.
        @return: the normalized DID.
        @raise ModelError: for an unknown account, a bad number, or a DID
            already on another account (the sentence names it).
        """
        account = _need(self.accounts, username, "account")
        did = normalize_e164(number)
        owner = self.dids.get(did)
        if owner == account.username:
            return did
        if owner is not None:
            raise ModelError(f"DID {did} already belongs to account {owner}")
        self.dids[did] = account.username
        account._assign("dids", tuple(sorted(account.dids + (did,))))
        return did

    def remove_did(self, username: str, number: str) -> None:
        """
        @param username: an existing account.
        @param number: one of its DIDs.
        @raise ModelError: for an unknown account, a bad number or a DID
            that account does not have.
        """
        account = _need(self.accounts, username, "account")
        did = normalize_e164(number)
        if did not in account.dids:
            raise ModelError(f"account {account.username} has no DID {did}")
        del self.dids[did]
        account._assign("dids", tuple(d for d in account.dids if d != did))

    def account_for_did(self, number: str) -> Account | None:
        """
        @param number: a number, in any notation L{normalize_e164} takes.
        @return: the account owning it as a DID, or C{None} (also for a
            number that does not normalize).
        """
        try:
            did = normalize_e164(number)
        except ModelError:
            return None
        username = self.dids.get(did)
        return None if username is None else self.accounts.get(username)

    # -- carriers and tariffs -----------------------------------------------

    def add_carrier(self, name: str) -> Carrier:
        """
        @param name: a new carrier name.
        @return: the new L{Carrier}.
        @raise ModelError: for a bad or taken name.
        """
        return _add(self.carriers, Carrier(name), "carrier")

    def remove_carrier(self, name: str) -> None:
        """
        @param name: an existing carrier; its system_id is freed.
        @raise ModelError: if there is none.
        """
        carrier = _need(self.carriers, validate_name(name), "carrier")
        if carrier.system_id is not None:
            self.carriers_by_system_id.pop(carrier.system_id, None)
        del self.carriers[carrier.name]

    def set_carrier_system_id(self, name: str, system_id: str | None) -> None:
        """
        @param name: an existing carrier.
        @param system_id: up to 15 printable ASCII characters, unique among
            carriers; C{None} resets it (the carrier cannot bind).
        @raise ModelError: for an unknown carrier, a bad or taken system_id.
        """
        carrier = _need(self.carriers, validate_name(name), "carrier")
        sid = validate_system_id(system_id)
        holder = self.carriers_by_system_id.get(sid) if sid is not None else None
        if holder is not None and holder is not carrier:
            raise ModelError(f"system_id {sid} is used by carrier {holder.name!r}")
        if carrier.system_id is not None:
            self.carriers_by_system_id.pop(carrier.system_id, None)
        if sid is not None:
            self.carriers_by_system_id[sid] = carrier
        carrier._assign("system_id", sid)

    def carrier_by_system_id(self, system_id: str) -> Carrier | None:
        """
        @param system_id: the system_id of a bind.
        @return: the carrier, or C{None}.
        """
        if not isinstance(system_id, str):
            return None
        return self.carriers_by_system_id.get(system_id)

    def set_carrier_tariff(self, name: str, tariff: str | None) -> None:
        """
        @param name: an existing carrier.
        @param tariff: an existing tariff's name, or C{None} to reset.
        @raise ModelError: for an unknown carrier or tariff.
        """
        carrier = _need(self.carriers, validate_name(name), "carrier")
        if tariff is not None:
            tariff = _need(self.tariffs, validate_name(tariff), "tariff").name
        carrier._assign("tariff", tariff)

    def add_tariff(self, name: str) -> Tariff:
        """
        @param name: a new tariff name.
        @return: the new L{Tariff}.
        @raise ModelError: for a bad or taken name.
        """
        return _add(self.tariffs, Tariff(name), "tariff")

    def remove_tariff(self, name: str) -> None:
        """
        @param name: a tariff no carrier uses.
        @raise ModelError: if there is none or a carrier uses it.
        """
        tariff = _need(self.tariffs, validate_name(name), "tariff")
        _refuse_if_used("tariff", tariff.name, self.carriers.values(),
                        lambda c: c.tariff == tariff.name,
                        lambda c: f"carrier {c.name!r}")
        del self.tariffs[tariff.name]

    # -- connections and policies -------------------------------------------

    def add_connection(self, name: str) -> Connection:
        """
        @param name: a new connection name.
        @return: the new L{Connection}.
        @raise ModelError: for a bad or taken name.
        """
        return _add(self.connections, Connection(name), "connection")

    def remove_connection(self, name: str) -> None:
        """
        @param name: a connection no policy uses.
        @raise ModelError: if there is none or a policy uses it.
        """
        connection = _need(self.connections, validate_name(name), "connection")
        _refuse_if_used("connection", connection.name, self.policies.values(),
                        lambda p: connection.name in p.connections,
                        lambda p: f"policy {p.name!r}")
        del self.connections[connection.name]

    def add_policy(self, name: str) -> ServicePolicy:
        """
        @param name: a new policy name; it goes last in the order.
        @return: the new L{ServicePolicy}.
        @raise ModelError: for a bad or taken name.
        """
        policy = _add(self.policies, ServicePolicy(name), "policy")
        self.policy_order = self.policy_order + (policy.name,)
        return policy

    def remove_policy(self, name: str) -> None:
        """
        @param name: an existing policy.
        @raise ModelError: if there is none.
        """
        policy = _need(self.policies, validate_name(name), "policy")
        del self.policies[policy.name]
        self.policy_order = tuple(n for n in self.policy_order if n != policy.name)

    def move_policy(self, name: str, position: int) -> None:
        """
        @param name: an existing policy.
        @param position: its new place, 1-based (1 = first tried).
        @raise ModelError: for an unknown policy or a position out of range.
        """
        policy = _need(self.policies, validate_name(name), "policy")
        count = len(self.policy_order)
        if isinstance(position, bool) or not isinstance(position, int) \
                or not 1 <= position <= count:
            raise ModelError(f"a policy position is between 1 and {count}")
        order = [n for n in self.policy_order if n != policy.name]
        order.insert(position - 1, policy.name)
        self.policy_order = tuple(order)

    def set_policy_connections(self, name: str, names: Iterable[str]) -> None:
        """
        @param name: an existing policy.
        @param names: existing connection names in priority order (repeats
            dropped); empty resets.
        @raise ModelError: for an unknown policy or connection.
        """
        policy = _need(self.policies, validate_name(name), "policy")
        if isinstance(names, str):
            names = (names,)
        chosen = unique(
            _need(self.connections, validate_name(n), "connection").name for n in names
        )
        policy._assign("connections", chosen)

    def ordered_policies(self) -> list[ServicePolicy]:
        """
        @return: the policies in routing order.
        """
        return [self.policies[n] for n in self.policy_order]

    # -- operators ----------------------------------------------------------

    def add_operator(self, name: str) -> Operator:
        """
        @param name: a new operator (login) name.
        @return: the new L{Operator}.
        @raise ModelError: for a bad or taken name.
        """
        return _add(self.operators, Operator(name), "operator")

    def remove_operator(self, name: str) -> None:
        """
        @param name: an existing operator.
        @raise ModelError: if there is none.
        """
        operator = _need(self.operators, validate_name(name), "operator")
        del self.operators[operator.name]
