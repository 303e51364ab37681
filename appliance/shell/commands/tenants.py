"""
Tenants of the HTTP API (C{tenant NAME} mode), the policy match on a
tenant (C{origin tenant NAME}), and C{show tenants} / C{show http}.

Passwords and tokens are written by C{show running-config} only as their
hashes; the balance is state, never written.
"""
from __future__ import annotations

from decimal import Decimal

from appliance.http.model import http_of, new_dlr_secret, tenant_of
from appliance.model.errors import ModelError
from appliance.shell.commands.helpers import flag, object_commands, setting
from appliance.shell.commands.modes import CONFIG, POLICY, command
from appliance.shell.commands.numbering import override_commands, \
    override_origin
from appliance.shell.grammar import ANY, NO_STR, Mode
from appliance.shell.render import table
from appliance.shell.types import ArgumentType, _name, register_type

SHOW = "Show running system information"

register_type(ArgumentType("TENANT", "tenant name", _name,
                           complete="tenants"))

#: C{tenant NAME}.
TENANT = Mode("config-tenant", CONFIG, "tenant",
              lambda root, parent, key: tenant_of(root, key))


def _tenants(root):
    try:
        return list(http_of(root).tenants.keys())
    except ModelError:
        return []


object_commands(
    "tenant", "TENANT", TENANT,
    "A tenant of the HTTP API (sends with one HTTP call)", "Tenant name",
    add=lambda ctx, name: http_of(ctx.root).add_tenant(name),
    remove=lambda ctx, name: http_of(ctx.root).remove_tenant(
        name, ctx.root.policies.values()),
    children=lambda root, parent: _tenants(root))


@command(TENANT, "password PASSWORD",
         help=("Password for HTTP Basic and username/password (kept "
               "hashed)", "1 to 128 characters"))
def tenant_password(ctx, password):
    ctx.obj.set_password(password)


@command(TENANT, "password-hash WORD",
         help=("Password as its hash (from show running-config)",
               "scrypt$... hash"),
         render=lambda t: [] if t.password_hash is None
         else [(t.password_hash,)])
def tenant_password_hash(ctx, value):
    ctx.obj.set_password_hash(value)


@command(TENANT, "no password", help=(NO_STR, "HTTP password"))
def no_tenant_password(ctx):
    ctx.obj.clear_password()


@command(TENANT, "token",
         help=("Make a new API token for Authorization: Bearer (shown "
               "once, kept hashed)",))
def tenant_token(ctx):
    token = http_of(ctx.root).new_token(ctx.obj.name)
    return (f"token {token}\n"
            "  (shown once: only its hash is kept)")


@command(TENANT, "token-hash WORD",
         help=("API token as its hash (from show running-config)",
               "sha256$... hash"),
         render=lambda t: [] if t.token_hash is None else [(t.token_hash,)])
def tenant_token_hash(ctx, value):
    http_of(ctx.root).set_token_hash(ctx.obj.name, value)


@command(TENANT, "no token", help=(NO_STR, "API token"))
def no_tenant_token(ctx):
    http_of(ctx.root).clear_token(ctx.obj.name)


@command(TENANT, "allow-ip NETWORK",
         help=("Allow requests from a network (none: from anywhere)",
               "Address or network, e.g. 127.0.0.0/8"),
         render=lambda t: [(n,) for n in t.allowed_networks])
def tenant_allow_ip(ctx, net):
    ctx.obj.allow_ip(str(net))


@command(TENANT, "no allow-ip NETWORK",
         help=(NO_STR, "Allowed network", "Address or network"))
def no_tenant_allow_ip(ctx, net):
    ctx.obj.disallow_ip(str(net))


@command(TENANT, "allow-sender WORD",
         help=("Allow a sender (none: any)",
               "Number pattern (digits, % and _) or exact name"),
         render=lambda t: [(s,) for s in t.allowed_senders])
def tenant_allow_sender(ctx, sender):
    ctx.obj.allow_sender(sender)


@command(TENANT, "no allow-sender WORD",
         help=(NO_STR, "Allowed sender", "Pattern or name"))
def no_tenant_allow_sender(ctx, sender):
    ctx.obj.disallow_sender(sender)


setting(TENANT, "throughput", "<0-100000>", "throughput",
        "Max messages per second (0: unlimited)", "Messages per second")

flag(TENANT, "prepaid", "prepaid", True,
     "Pays from its balance, before sending")


def _positive(amount: Decimal) -> Decimal:
    if amount <= 0:
        raise ModelError("the amount must be more than 0")
    return amount


@command(TENANT, "balance add DECIMAL",
         help=("Prepaid balance (audited, not configuration)", "Credit it",
               "Amount"))
def tenant_balance_add(ctx, amount):
    ctx.obj.balance = ctx.obj.balance + _positive(amount)
    return f"balance {ctx.obj.balance}"


@command(TENANT, "balance subtract DECIMAL",
         help=("Prepaid balance (audited, not configuration)", "Debit it",
               "Amount"))
def tenant_balance_subtract(ctx, amount):
    ctx.obj.balance = ctx.obj.balance - _positive(amount)
    return f"balance {ctx.obj.balance}"


@command(TENANT, "tariff TARIFF",
         help=("Tariff rating this tenant's messages", "Tariff name"),
         render=lambda t: [] if t.tariff is None else [(t.tariff,)])
def tenant_tariff(ctx, tariff):
    http_of(ctx.root).set_tariff(ctx.obj.name, tariff, ctx.root.tariffs)


@command(TENANT, "no tariff", help=(NO_STR, "Tariff of this tenant"))
def no_tenant_tariff(ctx):
    http_of(ctx.root).set_tariff(ctx.obj.name, None, ctx.root.tariffs)


@command(TENANT, "dlr-secret",
         help=("Make a new key for the callbacks' X-Signature (shown)",))
def tenant_dlr_secret_new(ctx):
    ctx.obj.dlr_secret = new_dlr_secret()
    return f"dlr-secret {ctx.obj.dlr_secret}"


@command(TENANT, "dlr-secret WORD",
         help=("Key for the callbacks' X-Signature (HMAC-SHA256)",
               "16 to 128 characters"),
         render=lambda t: [] if t.dlr_secret is None else [(t.dlr_secret,)],
         secret=True)
def tenant_dlr_secret(ctx, secret):
    ctx.obj.dlr_secret = secret


@command(TENANT, "callback-ca WORD",
         help=("Pin the CA its https callback servers' certificates must "
               "chain to (instead of the system's trust store)",
               "Absolute path of a PEM file"),
         render=lambda t: [] if t.callback_ca is None else [(t.callback_ca,)])
def tenant_callback_ca(ctx, path):
    from appliance.tls import check_ca_file
    problem = check_ca_file(path)
    if problem:
        raise ModelError(problem)
    ctx.obj.callback_ca = path


@command(TENANT, "no callback-ca",
         help=(NO_STR, "Pinned CA of its callback servers"))
def no_tenant_callback_ca(ctx):
    del ctx.obj.callback_ca


@command(TENANT, "no dlr-secret", help=(NO_STR, "Callback signing key"))
def no_tenant_dlr_secret(ctx):
    del ctx.obj.dlr_secret


flag(TENANT, "shutdown", "enabled", False, "Refuse this tenant's requests")

# How the numbers of its requests are read: the node's plan unless
# overridden here (numbering-plan country-code 44, ...).
override_commands(TENANT, sends=False)


def _tenants_of(root) -> dict:
    try:
        return http_of(root).tenants
    except ModelError:          # a database without the HTTP domain
        return {}


override_origin("tenant", _tenants_of, sends=False)

# -- policies -------------------------------------------------------------


@command(POLICY, "origin tenant TENANT",
         help=("Where matching messages come from", "From an HTTP tenant",
               "Tenant name"),
         render=lambda p: [] if p.origin_tenant is None
         else [(p.origin_tenant,)])
def policy_origin_tenant(ctx, name):
    tenant = http_of(ctx.root).tenant(name)
    del ctx.obj.origin
    ctx.obj.origin_tenant = tenant.name


@command(POLICY, "no origin tenant",
         help=(NO_STR, "Where matching messages come from", "HTTP tenant"))
def no_policy_origin_tenant(ctx):
    del ctx.obj.origin_tenant

# -- views ----------------------------------------------------------------


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


@command(ANY, "show tenants", help=(SHOW, "HTTP API tenants"),
         action="show")
def show_tenants(ctx):
    rows = []
    for t in (http_of(ctx.root).tenants.values() if _tenants(ctx.root)
              else ()):
        rows.append((t.name, "up" if t.enabled else "shutdown",
                     _yes(t.password_hash is not None),
                     _yes(t.token_hash is not None),
                     t.throughput or "-", t.tariff,
                     f"prepaid {t.balance}" if t.prepaid else "postpaid",
                     " ".join(t.allowed_senders) or "any",
                     " ".join(t.allowed_networks) or "any"))
    return table(("Tenant", "State", "Password", "Token", "Msg/s", "Tariff",
                  "Billing", "Senders", "Allowed from"), rows)


@command(ANY, "show http",
         help=(SHOW, "HTTP API: listeners, requests by code, callbacks"),
         action="show")
def show_http(ctx):
    service = ctx.live.source("http")
    if service is None or not hasattr(service, "shell_text"):
        return "the HTTP service does not run on this node\n"
    return service.shell_text()
