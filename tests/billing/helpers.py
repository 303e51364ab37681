"""Shared fixtures of the billing tests: a core with billing on a fake
clock, a fake SIP agent, and a provisioned TATA carrier."""
from __future__ import annotations

from appliance.application import GENERATIONS, memory_storage
import calendar
from decimal import Decimal

import ZODB
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from zope.interface import implementer

from appliance.billing.model import billing_of
from appliance.billing.service import BillingService
from appliance.messaging.core import MessagingCore
from appliance.messaging.vocabulary import Outcome, Submission
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.store.database import Storage

#: 2026-11-01 00:00 UTC.
NOV_1 = calendar.timegm((2026, 11, 1, 0, 0, 0))
DEC_1 = calendar.timegm((2026, 12, 1, 0, 0, 0))
DAY = 86400


@implementer(IDeliveryAgent)
class FakeAgent:
    """Records deliveries; each returns a Deferred the test fires."""

    def __init__(self):
        self.calls: list = []

    def deliver(self, message):
        d = defer.Deferred()
        self.calls.append((message, d))
        return d

    def answer_all(self, kind, reason=""):
        """Answer every waiting delivery with an outcome of C{kind}."""
        calls, self.calls = self.calls, []
        for _, d in calls:
            d.callback(Outcome(kind, reason))
        return len(calls)


def provision(root):
    """TATA with a 0.01 tariff for 964; app accounts with DIDs; a prepaid
    product tariff APP at 0.05 for 964."""
    root.add_tariff("TATA-T")
    root.tariffs["TATA-T"].set_price("964", "0.01")
    root.add_carrier("TATA")
    root.set_carrier_system_id("TATA", "tata1")
    root.set_carrier_tariff("TATA", "TATA-T")
    root.add_tariff("APP")
    root.tariffs["APP"].set_price("964", "0.05")
    root.add_product("Call & Chat")
    root.products["Call & Chat"].messaging = True
    root.add_customer("John Doe")
    for username in ("9647500000001", "9647500000002", "9647500000003",
                     "1111"):
        root.add_account("John Doe", username)
        root.set_account_product(username, "Call & Chat")
        if username != "1111":
            root.add_did(username, username)


class BillingNode:
    """A core, billing service and fake agent on a storage and clock."""

    def __init__(self, storage: Storage, clock: MemoryReactorClock):
        self.storage, self.clock = storage, clock
        self.core = MessagingCore(storage, clock, local_transport="sip",
                                  retry_schedule=(30, 120),
                                  validity=600, scan_interval=1)
        self.agent = FakeAgent()
        self.core.set_agent("sip", self.agent)
        self.billing = BillingService(storage, clock)
        self.core.set_charger(self.billing.charger)
        self.billing.charger.submit = self.core.submit   # as the wiring does
        self.billing.startService()
        self.core.startService()

    def stop(self):
        """Stop the services (not the storage)."""
        self.core.stopService()
        self.billing.stopService()

    def submit(self, origin_kind="carrier", origin="TATA",
               to="9647500000001", parts=1, sender="4412345"):
        """Submit without waiting for the commit; returns the Deferred."""
        return self.core.submit(Submission(origin_kind, origin, sender, to,
                                           "hi", parts=parts))

    def commit(self):
        """Let the batched commit and the dispatches happen."""
        self.clock.advance(0.001)
        self.clock.advance(0)

    def billing_root(self):
        """The committed C{root["billing"]}."""
        self.storage.sync()
        return billing_of(self.storage.root())


def memory_node(start=NOV_1 + 3600) -> BillingNode:
    """A provisioned node on an in-memory database."""
    clock = MemoryReactorClock()
    clock.advance(start)
    storage = memory_storage(reactor=clock, batch_delay=0.001)
    with storage.transaction(note="setup") as root:
        provision(root)
    return BillingNode(storage, clock)


def file_storage(path: str, clock) -> Storage:
    """A storage on a FileStorage file, opened."""
    from ZODB.FileStorage import FileStorage
    storage = Storage(lambda: ZODB.DB(FileStorage(path)), reactor=clock,
                      batch_delay=0.001, generations=GENERATIONS)
    storage.open()
    return storage


def money(text: str) -> Decimal:
    """Decimal from text."""
    return Decimal(text)
