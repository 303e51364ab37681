"""
Billing: tariff terms (dated prices, unit, zero, product), carrier terms
(prepaid, billable state, volume fees), prepaid flags and balances, and
the settlement, CSV export and balance views.

Balances are state, not configuration: C{balance add} is audited like any
change but never written by C{show running-config}.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from appliance.billing.model import billing_of
from appliance.billing.rating import format_date, parse_date
from appliance.billing.settlement import (
    billable_states, csv_chunks, settle)
from appliance.model.errors import ModelError
from appliance.shell.commands.modes import (
    ACCOUNT, CARRIER, TARIFF, command)
from appliance.shell.grammar import ANY, NO_STR
from appliance.shell.output import Stream
from appliance.shell.render import table
from appliance.shell.session import CommandError
from appliance.shell.types import ArgumentError, ArgumentType, register_type

SHOW = "Show running system information"
BILLING = "Billing and settlement"
_FROM = ("From this day (included)", "Date, YYYY-MM-DD (UTC)")
_TO = ("To this day (excluded)", "Date, YYYY-MM-DD (UTC)")


def _date(text: str) -> int:
    try:
        return parse_date(text)
    except ValueError as e:
        raise ArgumentError(str(e)) from None


register_type(ArgumentType("DATE", "date", _date, render=format_date))


def _billing(ctx: Any):
    return billing_of(ctx.root)


def _terms(ctx: Any, kind: str, create: bool = False) -> Any:
    return _billing(ctx).terms(kind, ctx.obj, create)


def _render_terms(kind: str, fn):
    """A render function over an object's terms (none: nothing)."""
    def render(obj):
        billing = billing_of(obj)
        terms = billing.terms(kind, obj)
        return [] if terms is None else fn(terms)
    return render


# -- tariffs --------------------------------------------------------------

@command(TARIFF, "prefix PREFIX DECIMAL from DATE",
         help=("Price per unit for a destination prefix",
               "E.164 prefix", "Price, e.g. 0.01") + _FROM,
         render=_render_terms("tariffs", lambda t: [
             (p, price, start) for (p, start), price in t.dated.items()]))
def tariff_dated_prefix(ctx, prefix, price, start):
    _terms(ctx, "tariffs", True).set_dated_price(prefix, start, price)


@command(TARIFF, "no prefix PREFIX from DATE",
         help=(NO_STR, "Price for a prefix", "E.164 prefix") + _FROM)
def no_tariff_dated_prefix(ctx, prefix, start):
    terms = _terms(ctx, "tariffs")
    if terms is None:
        raise ModelError(f"tariff {ctx.obj.name} has no dated prices")
    terms.remove_dated_price(prefix, start)


@command(TARIFF, "unit (message|part)",
         help=("What is counted and priced",
               "Per message, or per SMS part (3 parts: 3 units)"),
         render=_render_terms("tariffs", lambda t: [] if t.unit == "message"
                              else [(t.unit,)]))
def tariff_unit(ctx, unit):
    _terms(ctx, "tariffs", True).set_unit(unit)


@command(TARIFF, "no unit", help=(NO_STR, "Billing unit (back to message)"))
def no_tariff_unit(ctx):
    terms = _terms(ctx, "tariffs")
    if terms is not None:
        del terms.unit


@command(TARIFF, "zero", help=("Everything is free on purpose (no prefix "
                               "needed)",),
         render=_render_terms("tariffs", lambda t: [()] if t.zero else []))
def tariff_zero(ctx):
    _terms(ctx, "tariffs", True).zero = True


@command(TARIFF, "no zero", help=(NO_STR, "Zero tariff"))
def no_tariff_zero(ctx):
    terms = _terms(ctx, "tariffs")
    if terms is not None:
        del terms.zero


def _tariff_products(tariff):
    root = tariff._p_jar.root()["appliance"]
    return [(name,) for name in billing_of(tariff).products_of(
        tariff, root.products)]


@command(TARIFF, "product PRODUCT",
         help=("Rate the messages of this product's accounts",
               "Product name"), render=_tariff_products)
def tariff_product(ctx, name):
    product = ctx.root.products.get(name)
    if product is None:
        raise ModelError(f"no product named {name!r}")
    _billing(ctx).set_product_tariff(product, ctx.obj)


@command(TARIFF, "no product PRODUCT",
         help=(NO_STR, "Product rated by this tariff", "Product name"))
def no_tariff_product(ctx, name):
    product = ctx.root.products.get(name)
    billing = _billing(ctx)
    if product is None or billing.product_tariff(
            product, ctx.root.tariffs) != ctx.obj.name:
        raise ModelError(f"tariff {ctx.obj.name} does not rate product "
                         f"{name!r}")
    billing.set_product_tariff(product, None)


# -- carriers -----------------------------------------------------------

def _prepaid_commands(mode, kind: str, help: str) -> None:
    """Declare C{prepaid} and C{no prepaid} for the payers of C{kind}."""
    @command(mode, "prepaid", help=(help,),
             render=_render_terms(kind, lambda t: [()] if t.prepaid
                                  else []))
    def prepaid(ctx):
        _terms(ctx, kind, True).prepaid = True

    @command(mode, "no prepaid", help=(NO_STR, "Prepaid (back to postpaid)"))
    def no_prepaid(ctx):
        terms = _terms(ctx, kind)
        if terms is not None:
            del terms.prepaid


_prepaid_commands(CARRIER, "carriers", "Pays from a balance, before sending")


@command(CARRIER, "billable (accepted|delivered)",
         help=("What its settlement counts", "Every accepted message, or "
               "delivered ones only"),
         render=_render_terms("carriers", lambda t: [] if
                              t.billable == "accepted" else [(t.billable,)]))
def carrier_billable(ctx, rule):
    _terms(ctx, "carriers", True).set_billable(rule)


@command(CARRIER, "no billable", help=(NO_STR, "Billable state (back to "
                                       "accepted)"))
def no_carrier_billable(ctx):
    terms = _terms(ctx, "carriers")
    if terms is not None:
        del terms.billable


@command(CARRIER, "volume-fee up-to <1-2000000000> DECIMAL",
         help=("Monthly fee by volume", "For volumes up to", "Messages a "
               "month", "Fee per month"),
         render=_render_terms("carriers", lambda t: list(t.fees)))
def carrier_volume_fee(ctx, up_to, fee):
    _terms(ctx, "carriers", True).set_fee(up_to, fee)


@command(CARRIER, "no volume-fee up-to <1-2000000000>",
         help=(NO_STR, "Monthly fee by volume", "For volumes up to",
               "Messages a month"))
def no_carrier_volume_fee(ctx, up_to):
    terms = _terms(ctx, "carriers")
    if terms is None:
        raise ModelError(f"carrier {ctx.obj.name} has no volume fees")
    terms.remove_fee(up_to)


def _positive(amount: Decimal) -> Decimal:
    if amount <= 0:
        raise ModelError("the amount must be more than 0")
    return amount


@command(CARRIER, "balance add DECIMAL",
         help=("Prepaid balance (audited, not configuration)",
               "Credit it", "Amount"))
def carrier_balance_add(ctx, amount):
    terms = _terms(ctx, "carriers", True)
    terms.balance = terms.balance + _positive(amount)
    return f"balance {terms.balance}"


@command(CARRIER, "balance subtract DECIMAL",
         help=("Prepaid balance (audited, not configuration)",
               "Debit it", "Amount"))
def carrier_balance_subtract(ctx, amount):
    terms = _terms(ctx, "carriers", True)
    terms.balance = terms.balance - _positive(amount)
    return f"balance {terms.balance}"


# -- accounts -----------------------------------------------------------

_prepaid_commands(ACCOUNT, "accounts",
                  "Pays from its balance, before sending")


@command(ACCOUNT, "balance add DECIMAL",
         help=("Prepaid balance (audited, not configuration)",
               "Credit it", "Amount"))
def account_balance_add(ctx, amount):
    ctx.obj.balance = ctx.obj.balance + _positive(amount)
    return f"balance {ctx.obj.balance}"


@command(ACCOUNT, "balance subtract DECIMAL",
         help=("Prepaid balance (audited, not configuration)",
               "Debit it", "Amount"))
def account_balance_subtract(ctx, amount):
    ctx.obj.balance = ctx.obj.balance - _positive(amount)
    return f"balance {ctx.obj.balance}"


# -- views --------------------------------------------------------------

def _payer(ctx, kind: str, name: str) -> tuple[str, Any, Any, frozenset,
                                               tuple]:
    """The payer key, model object, terms, billable states and fee tiers."""
    container = ctx.root.carriers if kind == "carrier" else ctx.root.accounts
    obj = container.get(name)
    if obj is None:
        raise CommandError(f"no {kind} named {name!r}")
    terms = billing_of(ctx.root).terms(kind + "s", obj)
    prepaid = bool(terms is not None and terms.prepaid)
    rule = getattr(terms, "billable", "accepted") if terms else "accepted"
    fees = getattr(terms, "fees", ()) if terms else ()
    return (f"{kind}:{obj.name}", obj, terms,
            billable_states(rule, prepaid), fees)


def _period(start: int, end: int) -> None:
    if end <= start:
        raise CommandError("the period ends before it starts")


def show_settlement(ctx, kind: str, name: str, start: int, end: int) -> str:
    """The settlement table of a payer for a period."""
    _period(start, end)
    payer, obj, terms, billable, fees = _payer(ctx, kind, name)
    result = settle(billing_of(ctx.root).records, payer, start, end,
                    billable, fees)
    rule = "delivered" if billable == {"delivered"} else "accepted"
    head = (f"{kind.capitalize()} {obj.name}, {format_date(start)} to "
            f"{format_date(end)} (billable: {rule})")
    rows = [(line.prefix or "-", line.currency or "-", line.count,
             line.units, line.amount) for line in result.lines]
    amounts = result.amounts()
    for currency in sorted(amounts):
        count = sum(l.count for l in result.lines if l.currency == currency)
        units = sum(l.units for l in result.lines if l.currency == currency)
        rows.append(("Total", currency or "-", count, units,
                     amounts[currency]))
    text = [head, table(("Prefix", "Currency", "Messages", "Units",
                         "Amount"), rows)]
    for month, count, fee in result.months:
        text.append(f"Volume fee {month}: {count} messages, {fee}")
    if result.months:
        text.append(f"Total volume fees: {result.volume_fee}")
    return "\n".join(text)


@command(ANY, "show billing carrier CARRIER from DATE to DATE",
         help=(SHOW, BILLING, "A carrier's settlement", "Carrier name")
         + _FROM + _TO, action="show")
def show_billing_carrier(ctx, name, start, end):
    return show_settlement(ctx, "carrier", name, start, end)


@command(ANY, "show billing account ACCOUNT from DATE to DATE",
         help=(SHOW, BILLING, "An account's charges", "Account username")
         + _FROM + _TO, action="show")
def show_billing_account(ctx, name, start, end):
    return show_settlement(ctx, "account", name, start, end)


def _export(ctx, kind, name, start, end) -> Stream:
    """
    The CSV as a L{Stream}: read from a snapshot of its own in slices,
    each slice dropped from memory once written, so an export of millions
    of records runs in bounded memory while messages keep flowing.
    """
    _period(start, end)
    payer, _, _, billable, _ = _payer(ctx, kind, name)
    return Stream(_csv(ctx, payer, start, end, billable))


def _csv(ctx, payer: str, start: int, end: int, billable: frozenset):
    reader = getattr(ctx.session.storage, "reader", None)
    snapshot = reader() if reader is not None else None
    try:
        root = snapshot.root() if snapshot is not None else ctx.root
        records = billing_of(root).records.records(payer, start, end)
        for chunk in csv_chunks(records, billable):
            yield chunk
            if snapshot is not None:
                snapshot.release()
    finally:
        if snapshot is not None:
            snapshot.close()


@command(ANY, "billing export carrier CARRIER from DATE to DATE csv",
         help=(BILLING, "Write billable records", "A carrier's",
               "Carrier name") + _FROM + _TO + ("As CSV",), action="show")
def billing_export_carrier(ctx, name, start, end):
    return _export(ctx, "carrier", name, start, end)


@command(ANY, "billing export account ACCOUNT from DATE to DATE csv",
         help=(BILLING, "Write billable records", "An account's",
               "Account username") + _FROM + _TO + ("As CSV",),
         action="show")
def billing_export_account(ctx, name, start, end):
    return _export(ctx, "account", name, start, end)


def _held(ctx, payer: str) -> Decimal | None:
    services = getattr(ctx.session.node, "services", None) or {}
    held = getattr(services.get("billing"), "held", None)
    return held(payer) if held is not None else None


def _show_balance(ctx, kind: str, name: str) -> str:
    payer, obj, terms, _, _ = _payer(ctx, kind, name)
    balance = obj.balance if kind == "account" else \
        (terms.balance if terms is not None else Decimal(0))
    held = _held(ctx, payer)
    prepaid = bool(terms is not None and terms.prepaid)
    return table(("Payer", "Mode", "Balance", "In flight"), [
        (f"{kind} {obj.name}", "prepaid" if prepaid else "postpaid",
         balance, held)])


@command(ANY, "show balance account ACCOUNT",
         help=(SHOW, "Prepaid balance", "Of an account", "Account username"),
         action="show")
def show_balance_account(ctx, name):
    return _show_balance(ctx, "account", name)


@command(ANY, "show balance carrier CARRIER",
         help=(SHOW, "Prepaid balance", "Of a carrier", "Carrier name"),
         action="show")
def show_balance_carrier(ctx, name):
    return _show_balance(ctx, "carrier", name)


@command(ANY, "show billing statistics",
         help=(SHOW, BILLING, "This month's counters per carrier"),
         action="show")
def show_billing_statistics(ctx):
    services = getattr(ctx.session.node, "services", None) or {}
    stats = getattr(services.get("billing"), "statistics", None)
    if stats is None:
        return table(("Counter", "Value"), [])
    return table(("Counter", "Value"), sorted(stats().items()))
