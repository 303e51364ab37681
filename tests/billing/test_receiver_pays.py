"""
Tests for who pays: authorization rules through the charger and the core,
receiver pays per recipient, and the balance-low message (issue 11 items
3 and 4), on a fake clock and an in-memory database.
"""
from decimal import Decimal

from twisted.trial.unittest import SynchronousTestCase

from appliance.billing.charger import NoFunds
from appliance.billing.model import billing_of
from appliance.messaging.vocabulary import Submission
from tests.billing.helpers import DEC_1, NOV_1, memory_node

A1, A2, A3 = "9647500000001", "9647500000002", "9647500000003"


class WhoPaysTests(SynchronousTestCase):
    """The charger decides payers by the rules and the products."""

    def setUp(self):
        self.node = memory_node()
        self.addCleanup(self.node.storage.close)
        self.addCleanup(self.node.stop)

    def configure(self, fn):
        with self.node.storage.transaction(note="test") as root:
            fn(root, billing_of(root))

    def receiver_pays(self, balances, threshold=None, text=None):
        """Product "Call & Chat" charges 0.01 per received message to
        +964; accounts in C{balances} are prepaid with that balance."""
        def fn(root, billing):
            root.add_tariff("RECV")
            root.tariffs["RECV"].set_price("964", "0.01")
            product = root.products["Call & Chat"]
            billing.set_receiver_tariff(product, root.tariffs["RECV"])
            terms = billing.terms("products", product, create=True)
            terms.low_threshold = threshold
            terms.low_text = text
            for username, balance in balances.items():
                account = root.accounts[username]
                billing.terms("accounts", account, create=True).prepaid = True
                account.balance = Decimal(balance)
        self.configure(fn)

    def rule(self, name, charge, **conditions):
        def fn(root, billing):
            rule = billing.add_rule(name)
            for attr, value in conditions.items():
                setattr(rule, attr, value)
            rule.charge = charge
        self.configure(fn)

    def records(self, payer):
        return list(self.node.billing_root().records.records(
            payer, NOV_1, DEC_1))

    def balance(self, username):
        self.node.storage.sync()
        return self.node.storage.root().accounts[username].balance

    def messages(self):
        self.node.storage.sync()
        return list(self.node.storage.messages().messages.values())

    def submit(self, **kwargs):
        ids = []
        self.node.submit(**kwargs).addCallback(ids.append)
        self.node.commit()
        self.assertEqual(len(ids), 1)
        return ids[0]

    # -- receiver pays ---------------------------------------------------

    def test_each_recipient_charged_alone(self):
        """Of three recipients of a receiver-pays product, the prepaid one
        without funds is refused with a reason naming it and nothing is
        stored for it; the prepaid one with funds is debited and the
        postpaid one recorded; TATA pays its own charge for both."""
        self.receiver_pays({A1: "0.05", A2: "0"})
        self.submit(to=A1)
        with self.assertRaises(NoFunds) as refused:
            self.node.submit(to=A2)
        self.assertIn(f"+{A2} cannot receive", str(refused.exception))
        self.assertNotIn("0.00", str(refused.exception))
        self.submit(to=A3)
        self.assertEqual(sorted(m.recipient for m in self.messages()),
                         [A1, A3])
        self.assertEqual(self.balance(A1), Decimal("0.04"))
        self.assertEqual(self.balance(A2), Decimal("0"))
        (r1,) = self.records(f"account:{A1}")
        (r3,) = self.records(f"account:{A3}")
        self.assertEqual((r1.direction, r1.amount, r1.prepaid, r1.rule),
                         ("receiving", Decimal("0.01"), True,
                          "receiver-pays"))
        self.assertEqual((r3.amount, r3.prepaid), (Decimal("0.01"), False))
        self.assertEqual(self.records(f"account:{A2}"), [])
        self.assertEqual(len(self.records("carrier:TATA")), 2)
        self.assertEqual(self.node.billing.held(f"account:{A2}"), 0)

    def test_refused_recipient_holds_nothing_for_the_sender(self):
        """When the recipient cannot pay, the prepaid sender's charge is
        not held either."""
        self.receiver_pays({A2: "0"})

        def fn(root, billing):
            billing.set_product_tariff(root.products["Call & Chat"],
                                       root.tariffs["APP"])
            billing.terms("accounts", root.accounts["1111"],
                          create=True).prepaid = True
            root.accounts["1111"].balance = Decimal("1")
        self.configure(fn)
        with self.assertRaises(NoFunds):
            self.node.submit("account", "1111", to=A2, sender="1111")
        self.assertEqual(self.node.billing.held("account:1111"), 0)

    def test_receiving_charge_returned_on_failure(self):
        """A message that fails gives the recipient its receiving charge
        back, and its record follows the message's state."""
        self.receiver_pays({A1: "0.05"})
        self.submit(to=A1)
        self.node.agent.answer_all("failed", "app said no")
        self.node.commit()
        self.assertEqual(self.balance(A1), Decimal("0.05"))
        (record,) = self.records(f"account:{A1}")
        self.assertEqual(record.state, "failed")

    def test_receiving_record_follows_delivery(self):
        """A delivered message brings both its records to delivered and
        keeps the charge."""
        self.receiver_pays({A1: "0.05"})
        self.submit(to=A1)
        self.node.agent.answer_all("delivered")
        self.node.commit()
        self.assertEqual(self.balance(A1), Decimal("0.04"))
        self.assertEqual([r.state for r in self.records(f"account:{A1}")],
                         ["delivered"])
        self.assertEqual([r.state for r in self.records("carrier:TATA")],
                         ["delivered"])

    # -- balance low -----------------------------------------------------

    def notifications(self, to=A1):
        return [m for m in self.messages()
                if m.origin_kind == "node" and m.recipient == to]

    def test_balance_low_once(self):
        """A prepaid account that falls below its product's threshold gets
        one balance-low message from the template, through the core and
        free of charge, not one per message while it stays low; after a
        top-up above the threshold it is told again the next time."""
        self.receiver_pays({A1: "0.05"}, threshold=Decimal("0.03"),
                           text="{account}: {balance} {currency} left")
        for expected in (0, 0, 1, 1):
            self.submit(to=A1)
            self.node.commit()
            self.node.commit()
            self.assertEqual(len(self.notifications()), expected)
        (note,) = self.notifications()
        self.assertEqual((note.text, note.sender, note.account),
                         (f"{A1}: 0.02 USD left", "Balance", A1))
        self.assertEqual(self.balance(A1), Decimal("0.01"))
        self.assertEqual(len(self.records(f"account:{A1}")), 4)
        self.assertEqual(self.node.billing.statistics()["balance-low sent"],
                         1)

        def top_up(root, billing):
            root.accounts[A1].balance += Decimal("0.04")
            billing.rearm_low(root.accounts[A1], root.products)
        self.configure(top_up)
        self.submit(to=A1)                  # 0.04: not low
        self.node.commit()
        self.assertEqual(len(self.notifications()), 1)
        self.submit(to=A1)                  # 0.03: not below
        self.submit(to=A1)                  # 0.02: low again
        self.node.commit()
        self.node.commit()
        self.assertEqual(len(self.notifications()), 2)

    def test_balance_low_without_threshold(self):
        """Without a threshold nobody is told."""
        self.receiver_pays({A1: "0.02"})
        self.submit(to=A1)
        self.submit(to=A1)
        self.node.commit()
        self.assertEqual(self.notifications(), [])

    # -- rules ------------------------------------------------------------

    def test_charge_nobody_records_nothing(self):
        """A rule that charges nobody leaves the message without payer and
        writes no record, and names the rule on the message."""
        self.rule("carriers-free", "nobody", origin_kind="carrier")
        id = self.submit()
        self.assertEqual(self.records("carrier:TATA"), [])
        message = self.node.storage.messages().get(id)
        self.assertEqual((message.payer, message.rule),
                         (None, "carriers-free"))
        self.node.agent.answer_all("delivered")
        self.node.commit()
        self.assertEqual(self.node.storage.messages().get(id).state,
                         "delivered")

    def test_rule_tariff_and_recipient_charge(self):
        """A rule can charge the recipient with its own tariff: one record
        for the account (not a second receiver-pays one), none for the
        carrier."""
        self.receiver_pays({})
        self.rule("recipient-pays", "recipient", origin_kind="carrier",
                  tariff="APP")
        self.submit(to=A3)
        (record,) = self.records(f"account:{A3}")
        self.assertEqual((record.direction, record.tariff, record.amount,
                          record.rule),
                         ("receiving", "APP", Decimal("0.05"),
                          "recipient-pays"))
        self.assertEqual(self.records("carrier:TATA"), [])

    def test_source_network_rule(self):
        """A rule on the submitter's network decides for messages from
        that network only; others fall through to the built-in rule."""
        self.rule("lan", "nobody", source="10.0.0.0/8")
        for source in ("10.9.8.7", "192.0.2.1", None):
            self.node.core.submit(Submission(
                "carrier", "TATA", "4412345", A1, "hi", source=source))
        self.node.commit()
        rules = sorted(m.rule for m in self.messages())
        self.assertEqual(rules, ["built-in carrier", "built-in carrier",
                                 "lan"])
        self.assertEqual(len(self.records("carrier:TATA")), 2)

    def test_order_follows_configuration(self):
        """Moving a rule first in the order makes it decide from the next
        message on (the snapshot is rebuilt on commit)."""
        self.rule("carriers-pay", "carrier", origin_kind="carrier")
        self.rule("tata-free", "nobody", origin="TATA")
        first = self.submit()
        self.configure(lambda root, billing: billing.move_rule("tata-free",
                                                               1))
        second = self.submit()
        store = self.node.storage.messages()
        self.assertEqual((store.get(first).rule, store.get(second).rule),
                         ("carriers-pay", "tata-free"))

    def test_rule_without_charge_not_in_force(self):
        """A rule that does not say whom to charge yet decides nothing."""
        self.configure(lambda root, billing: billing.add_rule("draft"))
        id = self.submit()
        self.assertEqual(self.node.storage.messages().get(id).rule,
                         "built-in carrier")


class HoldTests(SynchronousTestCase):
    """The in-memory holds keep a running total per payer."""

    def test_total_release_and_expiry(self):
        """Holds add up, a release subtracts once, holds older than the
        timeout drop out, and a payer without holds is forgotten."""
        node = memory_node()
        self.addCleanup(node.storage.close)
        self.addCleanup(node.stop)
        charger = node.billing.charger
        first = [charger._hold("p", Decimal(1)) for _ in range(3)]
        node.clock.advance(100)
        last = charger._hold("p", Decimal(2))
        charger._release(True, "p", first[0])
        charger._release(True, "p", first[0])
        self.assertEqual(charger.held("p"), Decimal(4))
        node.clock.advance(250)
        self.assertEqual(charger.held("p"), Decimal(2))
        charger._release(True, "p", last)
        self.assertEqual(charger.held("p"), Decimal(0))
        self.assertNotIn("p", charger._holds)


def test_generation_2_adds_rules_to_an_older_billing_root():
    """A billing root from before authorization rules gets an empty rules
    container from evolve2, once (running it again changes nothing)."""
    from appliance.billing.generations import evolve1, evolve2
    from appliance.billing.model import BillingRoot
    root = {}
    evolve1(root)
    del root["billing"].rules           # back to the class default: None
    assert root["billing"].rules is None
    evolve2(root)
    rules = root["billing"].rules
    assert rules is not None and len(rules) == 0
    rules["x"] = "kept"
    evolve2(root)
    assert root["billing"].rules["x"] == "kept"
    assert BillingRoot.rule_order == ()
