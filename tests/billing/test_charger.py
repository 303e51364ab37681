"""Tests for L{appliance.billing.charger} through a real L{MessagingCore}."""
import os
import shutil
import tempfile
from decimal import Decimal

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.billing.charger import NoFunds, NoTariff
from appliance.billing.interfaces import IBillingService, ICharger
from appliance.billing.model import billing_of
from appliance.billing.settlement import billable_states, settle
from appliance.messaging.vocabulary import Refused
from tests.billing.helpers import (
    DAY, DEC_1, NOV_1, BillingNode, file_storage, memory_node, provision)


class ChargerTests(SynchronousTestCase):
    """Rating, reservation and records through the core."""

    def setUp(self):
        self.node = memory_node()
        self.addCleanup(self.node.storage.close)
        self.addCleanup(self.node.stop)

    def configure(self, fn):
        with self.node.storage.transaction(note="test") as root:
            fn(root, billing_of(root))

    def prepaid_account(self, balance):
        def fn(root, billing):
            billing.set_product_tariff(root.products["Call & Chat"],
                                       root.tariffs["APP"])
            billing.terms("accounts", root.accounts["1111"],
                          create=True).prepaid = True
            root.accounts["1111"].balance = Decimal(balance)
        self.configure(fn)

    def stored_count(self):
        return sum(self.node.storage.messages().counts().values())

    def test_interfaces(self):
        """The charger and the service provide their interfaces."""
        verifyObject(ICharger, self.node.billing.charger)
        verifyObject(IBillingService, self.node.billing)

    def test_thousand_from_tata_is_ten_dollars(self):
        """1000 SMS from TATA at 0.01 settle to exactly 10.00 USD, per
        prefix and in total, and each message names its payer and rule."""
        ids = []
        for i in range(1000):
            d = self.node.submit(to=f"964750000000{1 + i % 3}")
            d.addCallback(ids.append)
            if i % 200 == 199:
                self.node.commit()
        self.node.commit()
        self.assertEqual(len(ids), 1000)
        self.assertEqual(self.node.agent.answer_all("delivered"), 1000)
        self.node.commit()
        store = self.node.billing_root().records
        result = settle(store, "carrier:TATA", NOV_1, DEC_1,
                        billable_states("delivered"))
        self.assertEqual((result.count, result.units, result.amount),
                         (1000, 1000, Decimal("10.00")))
        self.assertEqual([(l.prefix, l.currency) for l in result.lines],
                         [("964", "USD")])
        message = self.node.storage.messages().get(ids[0])
        self.assertEqual(message.payer, "carrier:TATA")
        self.assertEqual(message.rule, "built-in carrier")
        stats = self.node.billing.statistics()
        self.assertEqual(stats["TATA 2026-11 messages"], 1000)
        self.assertEqual(stats["TATA 2026-11 amount"], "10.00 USD")

    def test_price_change_mid_period(self):
        """A price from the 15th rates later messages at the new price and
        leaves earlier records at the old one."""
        self.node.submit()
        self.node.commit()
        self.configure(lambda root, billing: billing.terms(
            "tariffs", root.tariffs["TATA-T"], create=True)
            .set_dated_price("964", NOV_1 + 14 * DAY, "0.02"))
        self.node.clock.advance(20 * DAY)
        self.node.submit()
        self.node.commit()
        records = list(self.node.billing_root().records.records(
            "carrier:TATA", NOV_1, DEC_1))
        self.assertEqual([r.price for r in records],
                         [Decimal("0.01"), Decimal("0.02")])
        result = settle(self.node.billing_root().records, "carrier:TATA",
                        NOV_1, DEC_1, billable_states("accepted"))
        self.assertEqual(result.amount, Decimal("0.03"))

    def test_per_part_units(self):
        """With unit part, a 3-part SMS is 3 units and costs 3 prices."""
        self.configure(lambda root, billing: billing.terms(
            "tariffs", root.tariffs["TATA-T"], create=True).set_unit("part"))
        self.node.submit(parts=3)
        self.node.commit()
        (record,) = self.node.billing_root().records.records(
            "carrier:TATA", NOV_1, DEC_1)
        self.assertEqual((record.units, record.amount), (3, Decimal("0.03")))

    def test_no_prefix_refused(self):
        """A destination the carrier's tariff has no price for is refused
        with a reason, and nothing is stored."""
        def fn(root, billing):
            root.add_account("John Doe", "4477001")
            root.add_did("4477001", "4477001")
            root.set_account_product("4477001", "Call & Chat")
        self.configure(fn)
        with self.assertRaises(NoTariff) as e:
            self.node.submit(to="4477001")
        self.assertIn("No tariff for destination +4477001", str(e.exception))
        self.node.commit()
        self.assertEqual(self.stored_count(), 0)

    def test_zero_tariff_is_free_but_recorded(self):
        """A zero tariff rates every destination at 0 and still records."""
        self.configure(lambda root, billing: setattr(billing.terms(
            "tariffs", root.tariffs["TATA-T"], create=True), "zero", True))
        self.node.submit()
        self.node.commit()
        (record,) = self.node.billing_root().records.records(
            "carrier:TATA", NOV_1, DEC_1)
        self.assertEqual((record.amount, record.prefix), (Decimal(0), ""))

    def test_prepaid_refusal_stores_nothing(self):
        """A prepaid account is debited at acceptance; when its balance,
        less what is in flight, cannot cover a message it is refused at
        once with a readable reason and nothing is stored."""
        self.prepaid_account("0.12")
        self.node.submit("account", "1111")
        self.node.submit("account", "1111")
        with self.assertRaises(NoFunds) as e:
            self.node.submit("account", "1111")
        self.assertEqual(str(e.exception), "Insufficient balance: the "
                         "message costs 0.05 USD, 0.02 USD available")
        self.node.commit()
        self.assertEqual(self.stored_count(), 2)
        self.node.storage.sync()
        self.assertEqual(self.node.storage.root().accounts["1111"].balance,
                         Decimal("0.02"))
        self.assertEqual(self.node.billing.held("account:1111"), Decimal(0))

    def test_recipients_charged_independently(self):
        """Of two recipients of one sender, the one that cannot be paid
        for is refused and the other goes through."""
        self.prepaid_account("0.05")
        d = self.node.submit("account", "1111", to="9647500000001")
        with self.assertRaises(Refused):
            self.node.submit("account", "1111", to="9647500000002")
        self.node.commit()
        id = self.successResultOf(d)
        self.assertEqual(self.node.agent.calls[0][0].id, id)

    def test_failed_returns_reservation(self):
        """A prepaid message that fails permanently gets its reservation
        back and is not billed; the record shows failed."""
        self.prepaid_account("0.10")
        self.node.submit("account", "1111")
        self.node.commit()
        self.node.agent.answer_all("failed", "no such user")
        self.node.commit()
        root = self.node.billing_root()
        self.assertEqual(self.node.storage.root().accounts["1111"].balance,
                         Decimal("0.10"))
        (record,) = root.records.records("account:1111", NOV_1, DEC_1)
        self.assertEqual(record.state, "failed")
        result = settle(root.records, "account:1111", NOV_1, DEC_1,
                        billable_states("accepted", prepaid=True))
        self.assertEqual(result.amount, Decimal(0))

    def test_prepaid_carrier(self):
        """A prepaid carrier pays from its own balance and is refused when
        it runs out."""
        def fn(root, billing):
            terms = billing.terms("carriers", root.carriers["TATA"],
                                  create=True)
            terms.prepaid, terms.balance = True, Decimal("0.01")
        self.configure(fn)
        self.node.submit()
        with self.assertRaises(Refused):
            self.node.submit()
        self.node.commit()
        terms = self.node.billing_root().carriers["TATA"]
        self.assertEqual(terms.balance, Decimal("0.00"))

    def test_postpaid_account_unlimited(self):
        """A postpaid account with a product tariff is rated and recorded
        but never refused for its balance."""
        self.configure(lambda root, billing: billing.set_product_tariff(
            root.products["Call & Chat"], root.tariffs["APP"]))
        self.node.submit("account", "1111")
        self.node.commit()
        (record,) = self.node.billing_root().records.records(
            "account:1111", NOV_1, DEC_1)
        self.assertEqual((record.amount, record.prepaid, record.direction),
                         (Decimal("0.05"), False, "originating"))

    def test_account_change_seen_by_next_message(self):
        """The charger keeps each account's product and prepaid flag in
        memory after its first message; a configuration commit that
        changes them (product, prepaid, balance) is seen by the very next
        message, and a prepaid balance is never overspent."""
        self.configure(lambda root, billing: billing.set_product_tariff(
            root.products["Call & Chat"], root.tariffs["APP"]))
        self.node.submit("account", "1111")
        self.node.commit()
        # Prepaid with 0.05: one message at 0.05 passes, the next is
        # refused.
        self.prepaid_account("0.05")
        self.node.submit("account", "1111")
        self.node.commit()
        with self.assertRaises(NoFunds):
            self.node.submit("account", "1111")
        self.node.commit()
        self.node.storage.sync()
        self.assertEqual(self.node.storage.root().accounts["1111"].balance,
                         Decimal("0.00"))

        # Another product with a dearer tariff, postpaid again.
        def other_product(root, billing):
            root.add_tariff("DEAR")
            root.tariffs["DEAR"].set_price("964", "0.20")
            root.add_product("Dear")
            root.products["Dear"].messaging = True
            billing.set_product_tariff(root.products["Dear"],
                                       root.tariffs["DEAR"])
            root.set_account_product("1111", "Dear")
            billing.terms("accounts", root.accounts["1111"]).prepaid = False
        self.configure(other_product)
        self.node.submit("account", "1111")
        self.node.commit()
        records = list(self.node.billing_root().records.records(
            "account:1111", NOV_1, DEC_1))
        self.assertEqual([(r.amount, r.prepaid) for r in records],
                         [(Decimal("0.05"), False), (Decimal("0.05"), True),
                          (Decimal("0.20"), False)])

    def test_receiver_pays_change_seen_by_next_message(self):
        """A recipient whose product starts charging for receiving is
        charged from the next message on (its configuration is read from
        memory after the first)."""
        self.node.submit(to="9647500000001")
        self.node.commit()
        self.assertEqual(list(self.node.billing_root().records.records(
            "account:9647500000001", NOV_1, DEC_1)), [])
        self.configure(lambda root, billing: billing.set_receiver_tariff(
            root.products["Call & Chat"], root.tariffs["APP"]))
        self.node.submit(to="9647500000001")
        self.node.commit()
        (record,) = self.node.billing_root().records.records(
            "account:9647500000001", NOV_1, DEC_1)
        self.assertEqual((record.direction, record.amount),
                         ("receiving", Decimal("0.05")))

    def test_hold_released_when_commit_fails(self):
        """A hold whose message never commits expires after the timeout."""
        self.prepaid_account("0.05")
        self.node.billing.charger.authorize(
            _Sub("account", "1111", "9647500000001"), "sip", None, "local",
            self.node.clock.seconds())
        self.assertEqual(self.node.billing.held("account:1111"),
                         Decimal("0.05"))
        self.node.clock.advance(301)
        self.assertEqual(self.node.billing.held("account:1111"), Decimal(0))


class _Sub:
    """A minimal submission for calling authorize() directly."""
    parts = 1
    text = "x"

    def __init__(self, kind, origin, recipient):
        self.origin_kind, self.origin, self.recipient = kind, origin, recipient


class DurabilityTests(SynchronousTestCase):
    """Records on a FileStorage."""

    def test_records_survive_reopen(self):
        """After a reopen, every message has its record and every record
        its message, with the same state."""
        tmp = tempfile.mkdtemp(prefix="billing-test-")
        self.addCleanup(shutil.rmtree, tmp)
        path = os.path.join(tmp, "Data.fs")
        clock = MemoryReactorClock()
        clock.advance(NOV_1 + 60)
        storage = file_storage(path, clock)
        with storage.transaction(note="setup") as root:
            provision(root)
        node = BillingNode(storage, clock)
        for i in range(50):
            node.submit(to=f"964750000000{1 + i % 3}")
        node.commit()
        node.agent.answer_all("delivered")
        node.commit()
        for i in range(10):
            node.submit()
        node.commit()
        node.stop()
        storage.close()
        storage = file_storage(path, clock)
        self.addCleanup(storage.close)
        messages = {m.id: m for m in
                    storage.messages().messages.values()}
        records = {r.id: r for r in billing_of(storage.root()).records
                   .records("carrier:TATA", NOV_1, DEC_1)}
        self.assertEqual(len(messages), 60)
        self.assertEqual(set(messages), set(records))
        for id, message in messages.items():
            self.assertEqual(records[id].state, message.state)
