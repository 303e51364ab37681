# -*- test-case-name: tests.billing.test_charger -*-
"""
The billing service: owns the L{Charger} and answers the shell (C{show
statistics}, balances in flight).

Wiring (C{appliance.application}): create it after the storage and hand
its C{charger} to the messaging core's constructor.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from appliance.billing.charger import Charger
from appliance.billing.interfaces import IBillingService
from appliance.billing.model import billing_of
from appliance.billing.rating import month_of


@implementer(IBillingService)
class BillingService(Service):
    """
    Billing as a service.

    @ivar charger: the L{Charger}.
    """

    name = "billing"
    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime,
                 hold_timeout: float = 300.0,
                 tenants: Any = None) -> None:
        """
        @param storage: the L{IStorage}, opened before this starts.
        @param clock: the reactor's time.
        @param hold_timeout: see L{Charger}.
        @param tenants: the tenants' payer lookup; see L{Charger}.
        """
        self.storage = storage
        self.clock = clock
        self.charger = Charger(storage, clock, hold_timeout,
                               tenants=tenants)

    def startService(self) -> None:
        """Snapshot the tariffs and follow configuration commits."""
        super().startService()
        self.charger.start()

    def stopService(self) -> None:
        """Stop following configuration commits."""
        super().stopService()
        self.charger.stop()

    def held(self, payer: str) -> Decimal:
        """@return: the amount authorized for C{payer}, not yet stored."""
        return self.charger.held(payer)

    def statistics(self) -> dict[str, Any]:
        """
        Per carrier, this month's messages, units and amount from the
        database's running totals (a restart loses none), and the
        refusals since start.
        """
        root = self.storage.root()
        store = billing_of(root).records
        month = month_of(self.clock.seconds())
        stats: dict[str, Any] = {"refused": self.charger.refused,
                                 "balance-low sent": self.charger.notified}
        for name in root.carriers.keys():
            count = units = 0
            amounts: dict[str, Decimal] = {}
            for (_, currency, _), (c, u, a) in store.totals(
                    f"carrier:{name}", month):
                count, units = count + c, units + u
                amounts[currency] = amounts.get(currency, Decimal(0)) + a
            stats[f"{name} {month} messages"] = count
            stats[f"{name} {month} units"] = units
            stats[f"{name} {month} amount"] = " ".join(
                f"{a} {c}" for c, a in sorted(amounts.items()) if c) or "0"
        return stats
