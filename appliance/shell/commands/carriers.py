"""
Tariffs, carriers (binding to us over SMPP) and outbound SMPP connections.
"""
from __future__ import annotations

from appliance.model.errors import ModelError
from appliance.shell.commands.helpers import flag, object_commands, setting
from appliance.shell.commands.modes import CARRIER, CONNECTION, TARIFF, command
from appliance.shell.grammar import NO_STR

# -- tariffs ----------------------------------------------------------------

object_commands(
    "tariff", "TARIFF", TARIFF, "A price list by destination prefix",
    "Tariff name",
    add=lambda ctx, name: ctx.root.add_tariff(name),
    remove=lambda ctx, name: ctx.root.remove_tariff(name),
    children=lambda root, parent: list(root.tariffs.keys()))

setting(TARIFF, "currency", "CURRENCY", "currency", "Currency of the prices",
        "ISO 4217 code, e.g. USD")


@command(TARIFF, "prefix PREFIX DECIMAL",
         help=("Price per message for a destination prefix",
               "E.164 prefix", "Price, e.g. 0.01"),
         render=lambda t: list(t.prices.items()))
def tariff_prefix(ctx, prefix, price):
    ctx.obj.set_price(prefix, price)


@command(TARIFF, "no prefix PREFIX", help=(NO_STR, "Price for a prefix",
                                           "E.164 prefix"))
def no_tariff_prefix(ctx, prefix):
    ctx.obj.remove_price(prefix)

# -- carriers ---------------------------------------------------------------


object_commands(
    "carrier", "CARRIER", CARRIER, "A carrier that binds to us over SMPP",
    "Carrier name",
    add=lambda ctx, name: ctx.root.add_carrier(name),
    remove=lambda ctx, name: ctx.root.remove_carrier(name),
    children=lambda root, parent: list(root.carriers.keys()))


@command(CARRIER, "system-id WORD",
         help=("SMPP system_id the carrier binds with", "Up to 15 characters"),
         render=lambda c: [] if c.system_id is None else [(c.system_id,)])
def carrier_system_id(ctx, system_id):
    ctx.root.set_carrier_system_id(ctx.obj.name, system_id)


@command(CARRIER, "no system-id", help=(NO_STR, "SMPP system_id"))
def no_carrier_system_id(ctx):
    ctx.root.set_carrier_system_id(ctx.obj.name, None)


@command(CARRIER, "password PASSWORD",
         help=("SMPP bind password (kept hashed)", "1 to 8 characters"))
def carrier_password(ctx, password):
    ctx.obj.set_password(password)


@command(CARRIER, "password-hash WORD",
         help=("SMPP password as its hash (from show running-config)",
               "scrypt$... hash"),
         render=lambda c: [] if c.password_hash is None
         else [(c.password_hash,)])
def carrier_password_hash(ctx, value):
    ctx.obj.set_password_hash(value)


@command(CARRIER, "no password", help=(NO_STR, "SMPP bind password"))
def no_carrier_password(ctx):
    ctx.obj.clear_password()


@command(CARRIER, "allow-ip NETWORK",
         help=("Allow binds from a network (none: from anywhere)",
               "Address or network, e.g. 127.0.0.0/8"),
         render=lambda c: [(n,) for n in c.allowed_networks])
def carrier_allow_ip(ctx, net):
    ctx.obj.allow_ip(str(net))


@command(CARRIER, "no allow-ip NETWORK",
         help=(NO_STR, "Allowed network", "Address or network"))
def no_carrier_allow_ip(ctx, net):
    ctx.obj.disallow_ip(str(net))


setting(CARRIER, "max-binds", "<1-100>", "max_binds",
        "Concurrent binds allowed", "Number of binds")
setting(CARRIER, "throughput", "<0-100000>", "throughput",
        "Max submit_sm per second (0: unlimited)", "Messages per second")


@command(CARRIER, "tariff TARIFF", help=("Tariff rating this carrier's messages",
                                         "Tariff name"),
         render=lambda c: [] if c.tariff is None else [(c.tariff,)])
def carrier_tariff(ctx, tariff):
    ctx.root.set_carrier_tariff(ctx.obj.name, tariff)


@command(CARRIER, "no tariff", help=(NO_STR, "Tariff of this carrier"))
def no_carrier_tariff(ctx):
    ctx.root.set_carrier_tariff(ctx.obj.name, None)


flag(CARRIER, "shutdown", "enabled", False, "Refuse this carrier's binds")

# -- connections ------------------------------------------------------------

object_commands(
    "connection", "CONNECTION", CONNECTION,
    "An outbound SMPP connection to a vendor's SMSC", "Connection name",
    add=lambda ctx, name: ctx.root.add_connection(name),
    remove=lambda ctx, name: ctx.root.remove_connection(name),
    children=lambda root, parent: list(root.connections.keys()))

setting(CONNECTION, "host", "HOST", "host", "SMSC host", "Name or address")
setting(CONNECTION, "port", "<1-65535>", "port", "SMSC TCP port", "Port")
setting(CONNECTION, "system-id", "WORD", "system_id", "Our SMPP system_id there",
        "Up to 15 characters")
setting(CONNECTION, "password", "PASSWORD", "password",
        "Our SMPP password there (kept in clear)", "1 to 8 characters",
        secret=True)
setting(CONNECTION, "bind", "(transmitter|transceiver)", "bind",
        "SMPP bind type", "Bind type")
setting(CONNECTION, "binds", "<1-64>", "binds", "Parallel binds",
        "Number of binds")
setting(CONNECTION, "window", "<1-1000>", "window",
        "Outstanding submit_sm per bind", "Window size")
setting(CONNECTION, "throughput", "<0-100000>", "throughput",
        "Max submit_sm per second (0: unlimited)", "Messages per second")
flag(CONNECTION, "tls", "tls", True, "Connect with TLS")


@command(CONNECTION, "tls-ca WORD",
         help=("Pin the CA the SMSC's TLS certificate must chain to "
               "(instead of [smpp] client_ca or the system's trust store)",
               "Absolute path of a PEM file"),
         render=lambda c: [] if c.tls_ca is None else [(c.tls_ca,)])
def connection_tls_ca(ctx, path):
    from appliance.tls import check_ca_file
    problem = check_ca_file(path)
    if problem:
        raise ModelError(problem)
    ctx.obj.tls_ca = path


@command(CONNECTION, "no tls-ca", help=(NO_STR, "Pinned CA of the SMSC"))
def no_connection_tls_ca(ctx):
    del ctx.obj.tls_ca
flag(CONNECTION, "shutdown", "shutdown", True, "Administratively down")
