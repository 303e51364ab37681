"""
Billing: tariff terms (dated prices, unit, zero), product terms (the
tariff for what its accounts send, C{receiver-pays} for what they
receive, the balance-low message), carrier terms (prepaid, billable
state, volume fees), prepaid flags and balances, authorization rules
(who pays), and the settlement, CSV export and balance views.

Balances are state, not configuration: C{balance add} is audited like any
change but never written by C{show running-config}.

Tariffs are written before products (see L{appliance.shell.commands}), so
a product names its tariffs (C{tariff}, C{receiver-pays tariff}); the
older C{product PRODUCT} of tariff mode is still accepted.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from appliance.billing.model import billing_of, check_template
from appliance.billing.rating import format_date, parse_date
from appliance.billing.rules import CHARGES, ORIGINS, check_charge
from appliance.billing.settlement import (
    billable_states, csv_chunks, settle)
from appliance.model.errors import ModelError
from appliance.shell.commands.helpers import object_commands
from appliance.shell.commands.modes import (
    ACCOUNT, CARRIER, CONFIG, PRODUCT, TARIFF, command)
from appliance.shell.grammar import ANY, NO_STR, Mode
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


@command(TARIFF, "product PRODUCT",
         help=("Rate the messages of this product's accounts",
               "Product name"))
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


# -- products -------------------------------------------------------------

def _tariff(ctx, name: str) -> Any:
    tariff = ctx.root.tariffs.get(name)
    if tariff is None:
        raise ModelError(f"no tariff named {name!r}")
    return tariff


def _product_terms(fn):
    """A render function over a product's terms (none: nothing)."""
    return _render_terms("products", fn)


def _product_tariff(product, root):
    """Running-config of C{tariff}: the tariff, if it still exists among
    the tariffs of C{root} (the C{ApplianceRoot} being written)."""
    name = billing_of(root).product_tariff(product, root.tariffs)
    return [] if name is None else [(name,)]


def _receiver_tariff(product, root):
    """Running-config of C{receiver-pays tariff}, as L{_product_tariff}."""
    name = billing_of(root).receiver_tariff(product, root.tariffs)
    return [] if name is None else [(name,)]


@command(PRODUCT, "tariff TARIFF",
         help=("Rate what this product's accounts send", "Tariff name"),
         render=_product_tariff, render_root=True)
def product_tariff(ctx, name):
    _billing(ctx).set_product_tariff(ctx.obj, _tariff(ctx, name))


@command(PRODUCT, "no tariff", help=(NO_STR, "Tariff for what its accounts "
                                     "send"))
def no_product_tariff(ctx):
    _billing(ctx).set_product_tariff(ctx.obj, None)


@command(PRODUCT, "receiver-pays tariff TARIFF",
         help=("Charge this product's accounts for messages they receive "
               "(each recipient on its own; prepaid accounts from their "
               "balance)", "With this tariff (per message or per part, "
               "as its unit says)", "Tariff name"),
         render=_receiver_tariff, render_root=True)
def product_receiver_pays(ctx, name):
    _billing(ctx).set_receiver_tariff(ctx.obj, _tariff(ctx, name))


@command(PRODUCT, "no receiver-pays",
         help=(NO_STR, "Receiving is free again"))
def no_product_receiver_pays(ctx):
    _billing(ctx).set_receiver_tariff(ctx.obj, None)


_LOW = "Tell a prepaid account once when its balance falls low"


@command(PRODUCT, "balance-low threshold DECIMAL",
         help=(_LOW, "Below this balance", "Amount"),
         render=_product_terms(lambda t: [] if t.low_threshold is None
                               else [(t.low_threshold,)]))
def product_low_threshold(ctx, amount):
    _terms(ctx, "products", True).low_threshold = amount


@command(PRODUCT, "balance-low sender WORD",
         help=(_LOW, "The message's sender", "Sender name or number"),
         render=_product_terms(lambda t: [] if t.low_sender is None
                               else [(t.low_sender,)]))
def product_low_sender(ctx, sender):
    if len(sender) > 32:
        raise ModelError("a sender is at most 32 characters")
    _terms(ctx, "products", True).low_sender = sender


@command(PRODUCT, "balance-low text LINE",
         help=(_LOW, "The message's text: {balance}, {currency}, "
               "{threshold} and {account} are replaced", "Template"),
         render=_product_terms(lambda t: [] if t.low_text is None
                               else [(t.low_text,)]))
def product_low_text(ctx, text):
    _terms(ctx, "products", True).low_text = check_template(text)


@command(PRODUCT, "no balance-low threshold",
         help=(NO_STR, _LOW, "Threshold (no message)"))
def no_product_low_threshold(ctx):
    terms = _terms(ctx, "products")
    if terms is not None:
        del terms.low_threshold


@command(PRODUCT, "no balance-low sender",
         help=(NO_STR, _LOW, "Sender (back to Balance)"))
def no_product_low_sender(ctx):
    terms = _terms(ctx, "products")
    if terms is not None:
        del terms.low_sender


@command(PRODUCT, "no balance-low text",
         help=(NO_STR, _LOW, "Text (back to the default)"))
def no_product_low_text(ctx):
    terms = _terms(ctx, "products")
    if terms is not None:
        del terms.low_text


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
    _billing(ctx).rearm_low(ctx.obj, ctx.root.products)
    return f"balance {ctx.obj.balance}"


@command(ACCOUNT, "balance subtract DECIMAL",
         help=("Prepaid balance (audited, not configuration)",
               "Debit it", "Amount"))
def account_balance_subtract(ctx, amount):
    ctx.obj.balance = ctx.obj.balance - _positive(amount)
    return f"balance {ctx.obj.balance}"


# -- authorization rules ---------------------------------------------------

def _rule(root: Any, parent: Any, key: Any) -> Any:
    rules = billing_of(root).rules
    return rules.get(key) if rules is not None else None


#: C{authorization-rule NAME}.
RULE = Mode("config-authorization-rule", CONFIG, "authorization-rule", _rule)

object_commands(
    "authorization-rule", "NAME", RULE,
    "Who pays for messages from an incoming point (rules are tried in "
    "order)", "Rule name",
    add=lambda ctx, name: _billing(ctx).add_rule(name),
    remove=lambda ctx, name: _billing(ctx).remove_rule(name),
    children=lambda root, parent: list(billing_of(root).rule_order))


@command(CONFIG, "authorization-rule-order NAME <1-10000>",
         help=("Move an authorization rule to a place in the order",
               "Rule name", "Position, 1 = tried first"))
def rule_order(ctx, name, position):
    _billing(ctx).move_rule(name, position)


def _checked(fn):
    """Run C{fn}, turning a rule's ValueError into a failed command."""
    try:
        return fn()
    except ValueError as e:
        raise ModelError(str(e)) from None


_ORIGINS = "(" + "|".join(ORIGINS) + ")"
_ORIGIN_HELP = ("carrier (SMPP bind), connection (our outbound SMPP "
                "connection), app (SIP account) or tenant (HTTP API)")


@command(RULE, f"match origin {_ORIGINS}",
         help=("What the rule matches", "Where the message comes from",
               _ORIGIN_HELP),
         render=lambda r: [(r.origin_kind,)]
         if r.origin_kind is not None and r.origin is None else [])
def rule_origin(ctx, kind):
    _checked(lambda: check_charge(kind, ctx.obj.charge or "nobody"))
    ctx.obj.origin_kind, ctx.obj.origin = kind, None


@command(RULE, f"match origin {_ORIGINS} NAME",
         help=("What the rule matches", "Where the message comes from",
               _ORIGIN_HELP, "Its name (carrier, connection, account "
               "username or tenant)"),
         render=lambda r: [(r.origin_kind, r.origin)]
         if r.origin_kind is not None and r.origin is not None else [])
def rule_origin_name(ctx, kind, name):
    _checked(lambda: check_charge(kind, ctx.obj.charge or "nobody"))
    ctx.obj.origin_kind, ctx.obj.origin = kind, name


@command(RULE, "match source NETWORK",
         help=("What the rule matches", "The submitter's address (SMPP "
               "peer, SIP source, HTTP client)",
               "IP network, e.g. 10.0.0.0/8"),
         render=lambda r: [] if r.source is None else [(r.source,)])
def rule_source(ctx, network):
    ctx.obj.source = str(network)


@command(RULE, "match sender PATTERN",
         help=("What the rule matches", "The sender number",
               "Digits, % (any digits), _ (one digit)"),
         render=lambda r: [] if r.sender is None else [(r.sender,)])
def rule_sender(ctx, pattern):
    from appliance.model.numbers import validate_pattern
    ctx.obj.sender = validate_pattern(pattern)


@command(RULE, "no match origin", help=(NO_STR, "What the rule matches",
                                        "Origin (any)"))
def no_rule_origin(ctx):
    del ctx.obj.origin_kind
    del ctx.obj.origin


@command(RULE, "no match source", help=(NO_STR, "What the rule matches",
                                        "Source network (any)"))
def no_rule_source(ctx):
    del ctx.obj.source


@command(RULE, "no match sender", help=(NO_STR, "What the rule matches",
                                        "Sender pattern (any)"))
def no_rule_sender(ctx):
    del ctx.obj.sender


@command(RULE, "charge (" + "|".join(CHARGES) + ")",
         help=("Who pays for matching messages (the rule is in force once "
               "it says)", "carrier: the carrier it came from; "
               "connection: the connection's vendor; sender: the sending "
               "account or tenant; recipient: the receiving account; "
               "nobody: free, no record"),
         render=lambda r: [] if r.charge is None else [(r.charge,)])
def rule_charge(ctx, who):
    _checked(lambda: check_charge(ctx.obj.origin_kind, who))
    ctx.obj.charge = who


@command(RULE, "no charge", help=(NO_STR, "Who pays (the rule is out of "
                                  "force)"))
def no_rule_charge(ctx):
    del ctx.obj.charge


@command(RULE, "tariff TARIFF",
         help=("Rate with this tariff instead of the payer's own",
               "Tariff name"),
         render=lambda r: [] if r.tariff is None else [(r.tariff,)])
def rule_tariff(ctx, name):
    ctx.obj.tariff = _tariff(ctx, name).name


@command(RULE, "no tariff", help=(NO_STR, "Tariff (the payer's own)"))
def no_rule_tariff(ctx):
    del ctx.obj.tariff


def rule_rows(root: Any) -> list[tuple]:
    """
    The rules in order as table rows, then the built-in ones.

    @param root: the C{ApplianceRoot}.
    """
    from appliance.billing.rules import BUILT_IN
    rows = []
    for i, stored in enumerate(billing_of(root).ordered_rules(), 1):
        cond = []
        if stored.origin_kind:
            cond.append(f"origin {stored.origin_kind}"
                        + (f" {stored.origin}" if stored.origin else ""))
        if stored.source:
            cond.append(f"source {stored.source}")
        if stored.sender:
            cond.append(f"sender {stored.sender}")
        rows.append((i, stored.name, ", ".join(cond) or "any",
                     stored.charge or "(not in force)",
                     stored.tariff or "payer's own"))
    for rule in BUILT_IN:
        rows.append(("-", rule.name, f"origin {rule.origin_kind}",
                     rule.charge, "payer's own"))
    return rows


def who_pays(root: Any, submission: Any, account: str | None) -> str:
    """
    For C{test route}: the authorization rule that would decide who pays
    for a message, and the receiving account's charge if its product
    charges for receiving.

    @param root: the C{ApplianceRoot}.
    @param submission: the test L{Submission}.
    @param account: the receiving local account, if any.
    @return: one or two lines.
    """
    from appliance.billing.charger import rule_book
    from appliance.billing.rules import point_of
    point = point_of(submission, account)
    rule = rule_book(root).decide(point)
    lines = [f"authorization rule {rule.name}: {rule.describe()}"]
    if rule.charge != "nobody":
        payer = {"carrier": f"carrier {point.origin}",
                 "connection": f"connection {point.origin}",
                 "sender": f"{point.origin_kind} {point.origin}",
                 "recipient": f"account {account}"}[rule.charge]
        lines.append(f"payer: {payer}")
    obj = root.accounts.get(account) if account else None
    product = root.products.get(obj.product) \
        if obj is not None and obj.product else None
    receiver = billing_of(root).receiver_tariff(product, root.tariffs) \
        if product is not None else None
    if receiver is not None and rule.charge != "recipient":
        lines.append(f"receiver pays: account {account} with tariff "
                     f"{receiver} (product {product.name})")
    return "\n".join(lines) + "\n"


@command(ANY, "show authorization-rules",
         help=(SHOW, "Who pays: the rules in the order they are tried"),
         action="show")
def show_authorization_rules(ctx):
    return table(("#", "Rule", "Matches", "Charges", "Tariff"),
                 rule_rows(ctx.root))


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
    balances = ctx.live.balances
    return balances.held(payer) if balances is not None else None


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
    billing = ctx.live.source("billing")
    if billing is None:
        return table(("Counter", "Value"), [])
    return table(("Counter", "Value"), sorted(billing.statistics().items()))
