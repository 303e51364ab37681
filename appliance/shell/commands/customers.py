"""
Products, customers and their SIP accounts:
C{product NAME}, C{customer NAME}, and in a customer C{account USERNAME}.
"""
from __future__ import annotations

from appliance.model.errors import ModelError
from appliance.shell.commands.helpers import flag, object_commands
from appliance.shell.commands.modes import ACCOUNT, CUSTOMER, PRODUCT, command
from appliance.shell.grammar import NO_STR

# -- products ---------------------------------------------------------------

object_commands(
    "product", "PRODUCT", PRODUCT, "A product (service bundle)",
    "Product name, quoted if it has spaces",
    add=lambda ctx, name: ctx.root.add_product(name),
    remove=lambda ctx, name: ctx.root.remove_product(name),
    children=lambda root, parent: list(root.products.keys()))

flag(PRODUCT, "messaging enable", "messaging", True,
     ("Messaging (SMS) service", "Accounts with this product get SMS"))

# -- customers and accounts --------------------------------------------------

object_commands(
    "customer", "CUSTOMER", CUSTOMER, "A customer owning SIP accounts",
    "Customer name, quoted if it has spaces",
    add=lambda ctx, name: ctx.root.add_customer(name),
    remove=lambda ctx, name: ctx.root.remove_customer(name),
    children=lambda root, parent: list(root.customers.keys()))


def _add_account(ctx, username):
    return ctx.root.add_account(ctx.obj.name, username)


def _remove_account(ctx, username):
    account = ctx.root.accounts.get(username)
    if account is None or account.customer != ctx.obj.name:
        raise ModelError(f"customer {ctx.obj.name!r} has no account {username}")
    ctx.root.remove_account(username)


object_commands(
    "account", "ACCOUNT", ACCOUNT, "A SIP account of this customer",
    "Username (for app users, the DID)",
    add=_add_account, remove=_remove_account,
    children=lambda root, customer: list(customer.accounts.keys()),
    mode=CUSTOMER)


@command(ACCOUNT, "password PASSWORD",
         help=("SIP digest password (only its HA1 hashes are kept)",
               "The password"))
def account_password(ctx, password):
    ctx.obj.set_password(password, ctx.session.realm)


def _hashes(account):
    if account.ha1_md5 is None:
        return []
    return [(account.realm, account.ha1_md5, account.ha1_sha256)]


@command(ACCOUNT, "password-hash realm NAME md5 HEX sha256 HEX",
         help=("SIP password as HA1 hashes (from show running-config)",
               "Digest realm the hashes were made for", "The realm",
               "MD5 HA1", "32 hex digits", "SHA-256 HA1", "64 hex digits"),
         render=_hashes, secret=True)  # an HA1 answers a digest challenge
def account_password_hash(ctx, realm, md5, sha256):
    ctx.obj.set_ha1(realm, md5, sha256)


@command(ACCOUNT, "no password", help=(NO_STR, "SIP digest password"))
def no_account_password(ctx):
    ctx.obj.clear_password()


@command(ACCOUNT, "product PRODUCT", help=("The account's product",
                                           "Product name"),
         render=lambda a: [] if a.product is None else [(a.product,)])
def account_product(ctx, product):
    ctx.root.set_account_product(ctx.obj.username, product)


@command(ACCOUNT, "no product", help=(NO_STR, "The account's product"))
def no_account_product(ctx):
    ctx.root.set_account_product(ctx.obj.username, None)


@command(ACCOUNT, "did NUMBER", help=("Give the account a DID",
                                      "E.164 number"),
         render=lambda a: [(d,) for d in a.dids])
def account_did(ctx, number):
    ctx.root.add_did(ctx.obj.username, number)


@command(ACCOUNT, "no did DID", help=(NO_STR, "Take a DID away", "E.164 number"))
def no_account_did(ctx, number):
    ctx.root.remove_did(ctx.obj.username, number)


flag(ACCOUNT, "shutdown", "enabled", False,
     "Disable the account (no registration, no delivery)")
