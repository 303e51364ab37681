"""
The shell's command declarations, one module per domain.

Importing this package declares every command in L{TREE}. Modules are
imported in the order their objects must be written by C{show
running-config} (a referenced object before its users: products before
accounts, tariffs before carriers, products and tenants, tenants and
connections before policies).
"""
from appliance.shell.commands.modes import (  # noqa: F401
    ACCOUNT, CARRIER, CONFIG, CONNECTION, CUSTOMER, EXEC, OPERATOR, POLICY,
    PRODUCT, TARIFF, TREE, command)
from appliance.shell.commands import base, numbering  # noqa: F401
from appliance.shell.commands import carriers, customers  # noqa: F401
from appliance.shell.commands import tenants  # noqa: F401
from appliance.shell.commands import routing, operators, show  # noqa: F401
from appliance.shell.commands import operations  # noqa: F401
from appliance.shell.commands import billing  # noqa: F401
from appliance.shell.commands import ss7  # noqa: F401
from appliance.shell.commands import tcap  # noqa: F401
from appliance.shell.commands import notification  # noqa: F401
from appliance.shell.commands import alarms  # noqa: F401
from appliance.shell.commands import cluster  # noqa: F401

base.declare_object_running_config()
