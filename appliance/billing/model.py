# -*- test-case-name: tests.billing.test_model -*-
"""
The persistent billing configuration and state (C{root["billing"]}).

Billing terms extend the model's tariffs, carriers, products and accounts
without changing their classes: each is a small L{Terms} object kept by
name in L{BillingRoot}, bound to the model object's database identity, so
terms of a deleted object never come back to life on a new object of the
same name (they are ignored, and replaced when set again).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterator

from BTrees.OOBTree import OOBTree
from persistent import Persistent

from appliance.billing.rating import UNITS, RatingTariff
from appliance.billing.records import RecordStore
from appliance.model.base import money
from appliance.model.errors import ModelError
from appliance.model.numbers import normalize_e164

#: The root key.
KEY = "billing"
#: What a carrier's settlement counts: every accepted message, or only
#: delivered ones.
BILLABLE = ("accepted", "delivered")
#: The most volume-fee tiers a carrier may have.
MAX_TIERS = 32
#: The most authorization rules a node may have.
MAX_RULES = 1000

_amount = money("an amount")


class Terms(Persistent):
    """
    Billing terms of one model object.

    @ivar oid: the database identity of the object they belong to.
    """

    oid: bytes | None = None


class TariffTerms(Terms):
    """
    A tariff's billing terms.

    @ivar unit: C{message} or C{part}.
    @ivar zero: whether the tariff rates everything at 0 on purpose.
    @ivar dated: C{(prefix, effective_from)} to the price from that day.
    """

    unit: str = "message"
    zero: bool = False
    dated: OOBTree | None = None

    def __init__(self) -> None:
        self.dated = OOBTree()

    def set_unit(self, unit: str) -> None:
        """
        @param unit: C{message} or C{part}.
        @raise ModelError: for another word.
        """
        if unit not in UNITS:
            raise ModelError(f"a billing unit is one of: {', '.join(UNITS)}")
        self.unit = unit

    def set_dated_price(self, prefix: str, start: int, price: Any) -> None:
        """
        A price for a prefix from a day on (earlier records keep theirs).

        @param prefix: number prefix.
        @param start: effective-from, epoch seconds (midnight UTC).
        @param price: Decimal, int or decimal string, at least 0.
        @raise ModelError: for a bad prefix or price.
        """
        amount = _amount(price)
        if amount < 0:
            raise ModelError("a price cannot be negative")
        self.dated[(normalize_e164(prefix), int(start))] = amount

    def remove_dated_price(self, prefix: str, start: int) -> None:
        """
        @raise ModelError: if there is no such price.
        """
        key = (normalize_e164(prefix), int(start))
        if key not in self.dated:
            raise ModelError(f"no price for {key[0]} from that date")
        del self.dated[key]


class CarrierTerms(Terms):
    """
    A carrier's billing terms.

    @ivar prepaid: whether it pays from a balance, before sending.
    @ivar balance: its prepaid balance.
    @ivar billable: C{accepted} or C{delivered}: what its settlement
        counts.
    @ivar fees: volume-fee tiers, C{(up_to, monthly fee)} ascending.
    """

    prepaid: bool = False
    balance: Decimal = Decimal(0)
    billable: str = "accepted"
    fees: tuple[tuple[int, Decimal], ...] = ()

    def set_billable(self, rule: str) -> None:
        """
        @raise ModelError: for a word not in L{BILLABLE}.
        """
        if rule not in BILLABLE:
            raise ModelError(f"billable is one of: {', '.join(BILLABLE)}")
        self.billable = rule

    def set_fee(self, up_to: int, fee: Any) -> None:
        """
        Set the monthly fee for volumes up to C{up_to} messages.

        @raise ModelError: for a bad volume or fee, or too many tiers.
        """
        if isinstance(up_to, bool) or not isinstance(up_to, int) \
                or up_to < 1:
            raise ModelError("a volume tier is a whole number of at least 1")
        amount = _amount(fee)
        if amount < 0:
            raise ModelError("a fee cannot be negative")
        tiers = dict(self.fees)
        tiers[up_to] = amount
        if len(tiers) > MAX_TIERS:
            raise ModelError(f"at most {MAX_TIERS} volume-fee tiers")
        self.fees = tuple(sorted(tiers.items()))

    def remove_fee(self, up_to: int) -> None:
        """
        @raise ModelError: if there is no such tier.
        """
        tiers = dict(self.fees)
        if up_to not in tiers:
            raise ModelError(f"no volume-fee tier up to {up_to}")
        del tiers[up_to]
        self.fees = tuple(sorted(tiers.items()))


class AccountTerms(Terms):
    """
    An account's billing terms (its balance is the model's
    C{Account.balance}).

    @ivar prepaid: whether it pays from its balance, before sending.
    @ivar low_notified: whether it was told its balance fell below its
        product's threshold (set with the debit that crossed it, cleared
        when the balance is back at or above the threshold), so it is
        told once, not once per message.
    """

    prepaid: bool = False
    low_notified: bool = False


#: The balance-low text when the product sets none; its fields are those
#: of L{LOW_FIELDS}.
LOW_TEXT = ("Your balance is {balance} {currency}, below {threshold} "
            "{currency}. Please top up to keep receiving messages.")
#: Fields a balance-low template may use.
LOW_FIELDS = ("account", "balance", "currency", "threshold")
#: The sender of balance-low messages when the product sets none.
LOW_SENDER = "Balance"


def check_template(text: str) -> str:
    """
    @param text: a balance-low template (C{{balance}} and the other
        L{LOW_FIELDS} are replaced).
    @return: it, stripped.
    @raise ModelError: for an empty template, an unknown field or a
        malformed brace.
    """
    import string
    text = (text or "").strip()
    if not text:
        raise ModelError("the text is empty")
    if len(text) > 480:
        raise ModelError("the text is longer than 480 characters")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(text)
                  if f is not None]
    except ValueError as e:
        raise ModelError(f"bad template: {e}") from None
    for f in fields:
        if f not in LOW_FIELDS:
            raise ModelError(f"unknown field {{{f}}}: the template may use "
                             + ", ".join("{" + n + "}" for n in LOW_FIELDS))
    return text


class ProductTerms(Terms):
    """
    Which tariffs rate a product's accounts: for what they send, and for
    what they receive; and when their balance is low enough to tell them.

    @ivar tariff: the tariff's name, or C{None}.
    @ivar tariff_oid: that tariff's database identity.
    @ivar receiver_tariff: the tariff charging its accounts for messages
        they receive (receiver pays), or C{None}.
    @ivar receiver_tariff_oid: that tariff's database identity.
    @ivar low_threshold: a prepaid account's balance below which it gets
        one balance-low message, or C{None}: never.
    @ivar low_text: the balance-low template (C{None}: L{LOW_TEXT}).
    @ivar low_sender: the balance-low sender (C{None}: L{LOW_SENDER}).
    """

    tariff: str | None = None
    tariff_oid: bytes | None = None
    receiver_tariff: str | None = None
    receiver_tariff_oid: bytes | None = None
    low_threshold: Decimal | None = None
    low_text: str | None = None
    low_sender: str | None = None


class AuthorizationRule(Persistent):
    """
    One authorization rule as configured (see L{appliance.billing.rules};
    the charger snapshots them as L{appliance.billing.rules.Rule}).

    @ivar name: its name.
    @ivar origin_kind: C{carrier}, C{connection}, C{app}, C{tenant} or
        C{None} (any).
    @ivar origin: the origin's name, or C{None} (any).
    @ivar source: a network in text, or C{None} (any).
    @ivar sender: a sender pattern, or C{None} (any).
    @ivar charge: who pays, or C{None}: the rule is not in force yet.
    @ivar tariff: the tariff to rate with, or C{None}: the payer's own.
    """

    name: str = ""
    origin_kind: str | None = None
    origin: str | None = None
    source: str | None = None
    sender: str | None = None
    charge: str | None = None
    tariff: str | None = None

    def __init__(self, name: str) -> None:
        self.name = name

    def snapshot(self):
        """
        @return: the immutable L{appliance.billing.rules.Rule}, or
            C{None} while it charges nobody in particular (no C{charge}).
        """
        from appliance.billing.rules import Rule
        if self.charge is None:
            return None
        return Rule.build(self.name, self.origin_kind, self.origin,
                          self.source, self.sender, self.charge,
                          self.tariff)


_KINDS = {"tariffs": TariffTerms, "carriers": CarrierTerms,
          "accounts": AccountTerms, "products": ProductTerms}


class BillingRoot(Persistent):
    """
    Billing terms by object name, and the records.

    @ivar tariffs: tariff name to L{TariffTerms}.
    @ivar carriers: carrier name to L{CarrierTerms}.
    @ivar accounts: username to L{AccountTerms}.
    @ivar products: product name to L{ProductTerms}.
    @ivar records: the L{RecordStore}.
    @ivar rules: authorization rule name to L{AuthorizationRule}.
    @ivar rule_order: the rules' names, first tried first.
    """

    tariffs: OOBTree | None = None
    carriers: OOBTree | None = None
    accounts: OOBTree | None = None
    products: OOBTree | None = None
    records: RecordStore | None = None
    rules: OOBTree | None = None
    rule_order: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.tariffs = OOBTree()
        self.carriers = OOBTree()
        self.accounts = OOBTree()
        self.products = OOBTree()
        self.records = RecordStore()
        self.rules = OOBTree()

    # -- authorization rules ------------------------------------------

    def add_rule(self, name: str) -> AuthorizationRule:
        """
        A new rule, tried after the others.

        @raise ModelError: if the name is taken or too many rules exist.
        """
        if name in self.rules:
            raise ModelError(f"authorization rule {name!r} exists")
        if len(self.rule_order) >= MAX_RULES:
            raise ModelError(f"at most {MAX_RULES} authorization rules")
        rule = self.rules[name] = AuthorizationRule(name)
        self.rule_order = self.rule_order + (name,)
        return rule

    def remove_rule(self, name: str) -> None:
        """
        @raise ModelError: if there is no such rule.
        """
        if name not in self.rules:
            raise ModelError(f"no authorization rule named {name!r}")
        del self.rules[name]
        self.rule_order = tuple(n for n in self.rule_order if n != name)

    def move_rule(self, name: str, position: int) -> None:
        """
        Put a rule at a place in the order (1: tried first; past the end:
        last).

        @raise ModelError: if there is no such rule.
        """
        if name not in self.rules:
            raise ModelError(f"no authorization rule named {name!r}")
        order = [n for n in self.rule_order if n != name]
        order.insert(max(position, 1) - 1, name)
        self.rule_order = tuple(order)

    def ordered_rules(self) -> list[AuthorizationRule]:
        """@return: the rules, first tried first."""
        return [self.rules[n] for n in self.rule_order if n in self.rules]

    def _oid(self, obj: Any) -> bytes | None:
        if getattr(obj, "_p_oid", None) is None and obj._p_jar is None \
                and self._p_jar is not None:
            self._p_jar.add(obj)
        return obj._p_oid

    def terms(self, kind: str, obj: Any, create: bool = False) -> Any:
        """
        The terms of a model object.

        @param kind: C{tariffs}, C{carriers}, C{accounts} or C{products}.
        @param obj: the model object (its C{name} is the key).
        @param create: make (or replace stale) terms when there are none.
        @return: the terms, or C{None} when there are none and C{create}
            is false.
        """
        container = getattr(self, kind)
        terms = container.get(obj.name)
        oid = self._oid(obj)
        if terms is not None and terms.oid == oid:
            return terms
        if not create:
            return None
        terms = _KINDS[kind]()
        terms.oid = oid
        container[obj.name] = terms
        return terms

    def product_tariff(self, product: Any, tariffs: Any) -> str | None:
        """
        @param product: a model product.
        @param tariffs: the model's tariffs by name.
        @return: the name of the tariff rating its accounts, if that
            tariff still exists.
        """
        terms = self.terms("products", product)
        if terms is None or terms.tariff is None:
            return None
        tariff = tariffs.get(terms.tariff)
        if tariff is None or self._oid(tariff) != terms.tariff_oid:
            return None
        return terms.tariff

    def set_product_tariff(self, product: Any, tariff: Any | None) -> None:
        """
        Rate a product's accounts with a tariff (C{None}: no tariff).
        """
        terms = self.terms("products", product, create=True)
        terms.tariff = None if tariff is None else tariff.name
        terms.tariff_oid = None if tariff is None else self._oid(tariff)

    def receiver_tariff(self, product: Any, tariffs: Any) -> str | None:
        """
        @return: the name of the tariff charging a product's accounts for
            what they receive, if it is set and still exists.
        """
        terms = self.terms("products", product)
        if terms is None or terms.receiver_tariff is None:
            return None
        tariff = tariffs.get(terms.receiver_tariff)
        if tariff is None or self._oid(tariff) != terms.receiver_tariff_oid:
            return None
        return terms.receiver_tariff

    def set_receiver_tariff(self, product: Any, tariff: Any | None) -> None:
        """
        Charge a product's accounts for messages they receive, with a
        tariff (C{None}: they receive for free).
        """
        terms = self.terms("products", product, create=True)
        terms.receiver_tariff = None if tariff is None else tariff.name
        terms.receiver_tariff_oid = None if tariff is None \
            else self._oid(tariff)

    def low_threshold(self, account: Any, products: Any) -> Decimal | None:
        """
        @return: the balance-low threshold of an account's product, or
            C{None}.
        """
        product = products.get(account.product) if account.product else None
        terms = self.terms("products", product) if product is not None \
            else None
        return None if terms is None else terms.low_threshold

    def rearm_low(self, account: Any, products: Any) -> None:
        """
        After a credit: an account whose balance is back at or above its
        threshold will be told again the next time it falls below.
        """
        terms = self.terms("accounts", account)
        if terms is None or not terms.low_notified:
            return
        threshold = self.low_threshold(account, products)
        if threshold is None or account.balance >= threshold:
            terms.low_notified = False

    def products_of(self, tariff: Any, products: Any) -> Iterator[str]:
        """
        @return: the names of the products a tariff rates.
        """
        for product in products.values():
            if self.product_tariff(product, {tariff.name: tariff}) \
                    == tariff.name:
                yield product.name

    def rating_tariff(self, tariff: Any) -> RatingTariff:
        """
        @param tariff: a model tariff.
        @return: its immutable rating snapshot (undated and dated prices,
            unit, zero).
        """
        terms = self.terms("tariffs", tariff)
        dated = [] if terms is None else \
            [(p, s, price) for (p, s), price in terms.dated.items()]
        return RatingTariff.build(
            tariff.name, tariff.currency,
            terms.unit if terms is not None else "message",
            terms.zero if terms is not None else False,
            dict(tariff.prices.items()), dated)


def billing_of(app_root: Any) -> BillingRoot:
    """
    @param app_root: the C{ApplianceRoot} (or any object of the same
        connection).
    @return: C{root["billing"]} of the same database connection.
    @raise ModelError: if billing is not set up in this database.
    """
    jar = getattr(app_root, "_p_jar", None)
    billing = jar.root().get(KEY) if jar is not None else None
    if billing is None:
        raise ModelError("billing is not set up in this database")
    return billing
