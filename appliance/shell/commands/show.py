"""
C{show} commands: tables of the configuration, and live state asked of the
running node through the shell's L{appliance.shell.live.LiveState}.

A live source takes part by offering C{shell_table(topic)} returning
C{(headers, rows)}: topic C{binds} for the C{smpp} source,
C{registrations} for C{sip}, C{connections} for C{smpp-client}; and
C{statistics()} returning a mapping of counter name to value for C{show
statistics}. An absent source, or one without the method, shows an empty
table.
"""
from __future__ import annotations

from typing import Any

from appliance.shell.commands.modes import command
from appliance.shell.grammar import ANY
from appliance.shell.render import table

SHOW = "Show running system information"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@command(ANY, "show products", help=(SHOW, "Products"), action="show")
def show_products(ctx):
    return table(("Product", "Messaging", "Accounts"), [
        (p.name, _yes(p.messaging),
         sum(1 for a in ctx.root.accounts.values() if a.product == p.name))
        for p in ctx.root.products.values()])


@command(ANY, "show customers", help=(SHOW, "Customers"), action="show")
def show_customers(ctx):
    return table(("Customer", "Accounts"), [
        (c.name, len(c.accounts)) for c in ctx.root.customers.values()])


@command(ANY, "show accounts", help=(SHOW, "SIP accounts"), action="show")
def show_accounts(ctx):
    return table(("Account", "Customer", "Product", "Password", "State",
                  "DIDs"), [
        (a.username, a.customer, a.product, _yes(a.ha1_md5 is not None),
         "up" if a.enabled else "shutdown", " ".join(a.dids))
        for a in ctx.root.accounts.values()])


@command(ANY, "show dids", help=(SHOW, "DIDs and their accounts"),
         action="show")
def show_dids(ctx):
    rows = []
    for did, username in ctx.root.dids.items():
        account = ctx.root.accounts.get(username)
        rows.append((did, username, account.customer if account else None))
    return table(("DID", "Account", "Customer"), rows)


@command(ANY, "show tariffs", help=(SHOW, "Tariffs"), action="show")
def show_tariffs(ctx):
    return table(("Tariff", "Currency", "Prefixes", "Carriers"), [
        (t.name, t.currency, len(t.prices),
         " ".join(c.name for c in ctx.root.carriers.values()
                  if c.tariff == t.name))
        for t in ctx.root.tariffs.values()])


@command(ANY, "show carriers", help=(SHOW, "Carriers (SMPP clients)"),
         action="show")
def show_carriers(ctx):
    return table(("Carrier", "System-id", "Binds", "Msg/s", "Tariff", "State",
                  "Allowed from"), [
        (c.name, c.system_id, c.max_binds, c.throughput or "-", c.tariff,
         "up" if c.enabled else "shutdown",
         " ".join(c.allowed_networks) or "any")
        for c in ctx.root.carriers.values()])


@command(ANY, "show connections",
         help=(SHOW, "Outbound SMPP connections and their live state"),
         action="show")
def show_connections(ctx):
    live: dict[str, tuple] = {}
    got = ctx.live.table("smpp-client", "connections")
    if got is not None:
        live = {row[0]: tuple(row[1:]) for row in got[1]}
    rows = []
    for c in ctx.root.connections.values():
        state, binds, in_flight, rate = live.get(
            c.name, ("shutdown" if c.shutdown else "-", f"-/{c.binds}", 0,
                     "0.0"))
        peer = f"{c.host}:{c.port}" + (" tls" if c.tls else "")
        rows.append((c.name, c.bind[:4], c.window, state, binds, in_flight,
                     rate, peer))
    return table(("Connection", "Bind", "Win", "State", "Binds", "Flight",
                  "Msg/s", "Peer"), rows)


@command(ANY, "show service-policies", help=(SHOW, "Service policies in order"),
         action="show")
def show_policies(ctx):
    return table(("#", "Policy", "Recipient", "Sender", "Origin", "Transport",
                  "Connections"), [
        (i, p.name, p.recipient_pattern, p.sender_pattern, p.origin,
         p.transport, " ".join(p.connections))
        for i, p in enumerate(ctx.root.ordered_policies(), 1)])


@command(ANY, "show operators", help=(SHOW, "Shell operators"), action="show")
def show_operators(ctx):
    return table(("Operator", "Role", "Keys", "Password"), [
        (o.name, o.role, len(o.ssh_keys), _yes(o.password_hash is not None))
        for o in ctx.root.operators.values()])


def _live_table(ctx, source: str, topic: str, headers: tuple[str, ...],
                **filters: Any):
    got = ctx.live.table(source, topic, **filters)
    if got is None:
        return table(headers, [])
    return table(*got)


@command(ANY, "show smpp binds", help=(SHOW, "SMPP", "Live SMPP binds"),
         action="show")
def show_smpp_binds(ctx):
    return _live_table(ctx, "smpp", "binds",
                       ("Carrier", "System-id", "Peer", "Type", "Since"))


_REGISTRATIONS = ("Account", "Contact", "Transport", "Source", "Expires in",
                  "User agent")


@command(ANY, "show sip registrations",
         help=(SHOW, "SIP", "Live SIP registrations"), action="show")
def show_sip_registrations(ctx):
    return _live_table(ctx, "sip", "registrations", _REGISTRATIONS)


@command(ANY, "show sip registrations account WORD",
         help=(SHOW, "SIP", "Live SIP registrations", "Of one account",
               "Account username"), action="show")
def show_sip_registrations_account(ctx, username):
    return _live_table(ctx, "sip", "registrations", _REGISTRATIONS,
                       account=username)


@command(ANY, "show sip transactions",
         help=(SHOW, "SIP", "SIP transactions in progress"), action="show")
def show_sip_transactions(ctx):
    return _live_table(ctx, "sip", "transactions",
                       ("Branch", "Kind", "Method", "State", "Age"))


@command(ANY, "show queue",
         help=(SHOW, "Messages by state, and the oldest waiting"),
         action="show")
def show_queue(ctx):
    store = ctx.session.storage.messages()
    text = table(("State", "Messages"), sorted(dict(store.counts()).items()))
    oldest = store.oldest_waiting()
    if oldest is not None:
        import time
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC",
                             time.gmtime(oldest.created))
        text = (text.rstrip("\n") + f"\nOldest waiting: message {oldest.id} "
                f"to {oldest.recipient}, accepted {when}, {oldest.state}\n")
    return text


@command(ANY, "show statistics", help=(SHOW, "Counters of the services"),
         action="show")
def show_statistics(ctx):
    return table(("Service", "Counter", "Value"), list(ctx.live.statistics()))
