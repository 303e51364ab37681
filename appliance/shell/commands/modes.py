"""
The shell's modes and the one command tree every command module declares
into (C{command = TREE.command}).
"""
from __future__ import annotations

from typing import Any

from appliance.shell.grammar import CommandTree, Mode

TREE = CommandTree()
command = TREE.command


def _child(container: str):
    def resolve(root: Any, parent: Any, key: Any) -> Any:
        return getattr(root, container).get(key)
    return resolve


def _account(root: Any, customer: Any, key: Any) -> Any:
    return customer.accounts.get(key) if customer is not None else None


#: The top: C{appliance#} (admin) or C{appliance>} (view).
EXEC = Mode("exec")
#: C{configure terminal}.
CONFIG = Mode("config", EXEC)
PRODUCT = Mode("config-product", CONFIG, "product", _child("products"))
TARIFF = Mode("config-tariff", CONFIG, "tariff", _child("tariffs"))
CUSTOMER = Mode("config-customer", CONFIG, "customer", _child("customers"))
ACCOUNT = Mode("config-account", CUSTOMER, "account", _account)
CARRIER = Mode("config-carrier", CONFIG, "carrier", _child("carriers"))
CONNECTION = Mode("config-connection", CONFIG, "connection",
                  _child("connections"))
POLICY = Mode("config-service-policy", CONFIG, "service-policy",
              _child("policies"))
OPERATOR = Mode("config-operator", CONFIG, "operator", _child("operators"))
