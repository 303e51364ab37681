"""Tests for the billing shell commands (L{appliance.shell.commands.billing})."""
from decimal import Decimal

from appliance.shell.live import LiveState
from appliance.application import memory_storage
import pytest
from twisted.internet.testing import MemoryReactorClock

from appliance.billing.model import billing_of
from appliance.shell.script import open_session, run_script
from appliance.shell.session import AuditLog, execute
from appliance.store.database import Storage
from tests.shell_helpers import run
from tests.billing.helpers import NOV_1, BillingNode

SCRIPT = '''configure terminal
 product "Call & Chat"
  messaging enable
 exit
 customer "John Doe"
  account 9647500000001
   product "Call & Chat"
   did 9647500000001
  exit
  account 1111
   product "Call & Chat"
   prepaid
  exit
 exit
 tariff TATA-IN
  prefix 964 0.01
  prefix 964 0.02 from 2026-12-01
  unit part
 exit
 tariff APP
  prefix 964 0.05
  product "Call & Chat"
 exit
 tariff FREE
  zero
 exit
 tariff RECV
  prefix 964 0.002
 exit
 product "Call & Chat"
  receiver-pays tariff RECV
  balance-low threshold 0.50
  balance-low sender TopUp
  balance-low text Only {balance} {currency} left, {account}: top up soon
 exit
 carrier TATA
  system-id tata
  tariff TATA-IN
  prepaid
  billable delivered
  volume-fee up-to 100000 50.00
  volume-fee up-to 1000000 300
 exit
 authorization-rule vendors-free
  match origin connection
  charge nobody
 exit
 authorization-rule tata-lan
  match origin carrier TATA
  match source 10.0.0.0/8
  match sender 44%
  charge carrier
  tariff FREE
 exit
 authorization-rule-order tata-lan 1
end
'''


@pytest.fixture
def clock():
    """A fake clock at 2026-11-01 01:00 UTC."""
    c = MemoryReactorClock()
    c.advance(NOV_1 + 3600)
    return c


@pytest.fixture
def storage(clock):
    """An in-memory storage with every generation, provisioned."""
    s = memory_storage(reactor=clock, batch_delay=0.001)
    result = run_script(s, SCRIPT)
    assert result.ok, result.text
    yield s
    s.close()


def test_settings_applied(storage):
    """The script sets the billing terms it names."""
    root = storage.root()
    billing = billing_of(root)
    tariff = billing.rating_tariff(root.tariffs["TATA-IN"])
    assert tariff.unit == "part"
    assert tariff.price_at("9647", NOV_1) == ("964", Decimal("0.01"))
    assert tariff.price_at("9647", NOV_1 + 31 * 86400)[1] == Decimal("0.02")
    assert billing.rating_tariff(root.tariffs["FREE"]).zero
    assert billing.product_tariff(root.products["Call & Chat"],
                                  root.tariffs) == "APP"
    tata = billing.terms("carriers", root.carriers["TATA"])
    assert (tata.prepaid, tata.billable) == (True, "delivered")
    assert tata.fees == ((100000, Decimal("50.00")),
                         (1000000, Decimal("300")))
    assert billing.terms("accounts", root.accounts["1111"]).prepaid


def test_running_config_round_trip(storage, clock):
    """Every billing setting is written by show running-config and replays
    to the same text in an empty database."""
    first = run(open_session(storage, "admin", "admin"),
                "show running-config")
    for line in ("  prefix 964 0.02 from 2026-12-01", "  unit part",
                 "  zero", "  tariff APP", "  prepaid",
                 "  receiver-pays tariff RECV", "  balance-low threshold 0.50",
                 "  balance-low sender TopUp",
                 "  balance-low text Only {balance} {currency} left, "
                 "{account}: top up soon",
                 " authorization-rule tata-lan", "  match origin carrier TATA",
                 "  match source 10.0.0.0/8", "  match sender 44%",
                 "  charge carrier", "  tariff FREE",
                 " authorization-rule vendors-free",
                 "  match origin connection", "  charge nobody",
                 "  billable delivered", "  volume-fee up-to 100000 50.00",
                 "   prepaid"):
        assert line in first.splitlines(), line
    lines = first.splitlines()
    assert lines.index(" authorization-rule tata-lan") < \
        lines.index(" authorization-rule vendors-free")
    fresh = memory_storage(reactor=clock)
    try:
        assert run_script(fresh, first).ok
        second = run(open_session(fresh, "admin", "admin"),
                     "show running-config")
        assert second == first
    finally:
        fresh.close()


def test_no_forms(storage):
    """Each setting's no form returns it to the default and running-config
    no longer shows it."""
    s = open_session(storage, "admin", "admin")
    run(s, "configure terminal", "tariff TATA-IN", "no unit",
        "no prefix 964 from 2026-12-01", "exit", "tariff FREE", "no zero",
        "exit", "tariff APP", 'no product "Call & Chat"', "exit",
        "carrier TATA", "no prepaid", "no billable",
        "no volume-fee up-to 100000", "no volume-fee up-to 1000000", "end")
    text = run(s, "show running-config")
    for word in ("unit", "from 2026", "zero", "billable", "volume-fee"):
        assert word not in text, word
    assert "  prepaid" not in text.splitlines()
    assert '  product "Call & Chat"' not in text.splitlines()
    result = execute(s, "configure terminal")
    result = execute(s, "carrier TATA")
    result = execute(s, "no volume-fee up-to 5")
    assert not result.ok and "no volume-fee tier" in result.text


def test_balance_is_audited_state(storage):
    """balance add credits the account, is audited, and is not in
    running-config; a non-positive amount is refused."""
    audit = AuditLog(None)
    s = open_session(storage, "admin", "admin", audit=audit)
    run(s, "configure terminal", 'customer "John Doe"', "account 1111")
    assert run(s, "balance add 5.00") == "balance 5.00"
    assert run(s, "balance subtract 1.25") == "balance 3.75"
    assert audit.lines[-2].endswith("account 1111] balance add 5.00")
    assert not execute(s, "balance add 0").ok
    assert not execute(s, "balance add -1").ok
    assert "balance " not in run(s, "show running-config")
    assert storage.root().accounts["1111"].balance == Decimal("3.75")
    shown = run(s, "show balance account 1111")
    assert "account 1111  prepaid  3.75" in shown


def test_carrier_balance(storage):
    """A carrier's prepaid balance is credited and shown."""
    s = open_session(storage, "admin", "admin")
    run(s, "configure terminal", "carrier TATA", "balance add 2")
    assert "carrier TATA  prepaid  2" in run(s, "show balance carrier TATA")


def test_bad_input(storage):
    """Bad dates, reversed periods and unknown payers get clear errors."""
    s = open_session(storage, "admin", "admin")
    r = execute(s, "show billing carrier TATA from 2026-13-01 to 2026-12-01")
    assert not r.ok and "date" in r.text
    r = execute(s, "show billing carrier TATA from 2026-12-01 to 2026-11-01")
    assert r.text == "% the period ends before it starts"
    r = execute(s, "show billing carrier NOPE from 2026-11-01 to 2026-12-01")
    assert r.text == "% no carrier named 'NOPE'"
    run(s, "configure terminal", "tariff APP")
    r = execute(s, "product Nope")
    assert not r.ok


def test_settlement_and_csv(storage, clock):
    """After 1000 delivered SMS from TATA (postpaid, 0.01), the settlement
    shows 1000 messages, 10.00 and the volume fee, and the CSV has 1000
    lines whose amounts add up to 10.00."""
    s = open_session(storage, "admin", "admin")
    run(s, "configure terminal", "carrier TATA", "no prepaid",
        "exit", "tariff TATA-IN", "no unit", "end")
    node = BillingNode(storage, clock)
    try:
        for i in range(1000):
            node.submit(to="9647500000001")
        node.commit()
        node.agent.answer_all("delivered")
        node.commit()
    finally:
        node.stop()
    text = run(s, "show billing carrier TATA from 2026-11-01 to 2026-12-01")
    lines = text.splitlines()
    assert lines[0] == ("Carrier TATA, 2026-11-01 to 2026-12-01 "
                        "(billable: delivered)")
    assert lines[3].split() == ["964", "USD", "1000", "1000", "10.00"]
    assert lines[4].split() == ["Total", "USD", "1000", "1000", "10.00"]
    assert "Volume fee 2026-11: 1000 messages, 50.00" in lines
    csv_text = run(s, "billing export carrier TATA from 2026-11-01 "
                      "to 2026-12-01 csv")
    rows = csv_text.splitlines()
    assert len(rows) == 1001
    assert sum(Decimal(r.split(",")[12]) for r in rows[1:]) == \
        Decimal("10.00")
    live = LiveState(balances=node.billing)
    live.add_source("billing", node.billing)
    stats = run(open_session(storage, "v", "view", live=live),
                "show billing statistics")
    assert "TATA 2026-11 amount    10.00 USD" in stats


def test_stale_terms_not_inherited(storage):
    """Terms of a removed tariff do not come back on a new tariff with
    the same name."""
    s = open_session(storage, "admin", "admin")
    run(s, "configure terminal", "no tariff FREE", "tariff FREE", "end")
    root = storage.root()
    assert not billing_of(root).rating_tariff(root.tariffs["FREE"]).zero
    assert "  zero" not in run(s, "show running-config").splitlines()


def test_authorization_rules_shown_in_order(storage):
    """show authorization-rules lists the rules in the order they are
    tried, then the built-in ones; a rule without charge is shown out of
    force."""
    s = open_session(storage, "admin", "admin")
    run(s, "configure terminal", "authorization-rule draft", "exit",
        "authorization-rule-order vendors-free 1", "end")
    rows = [line.split()[:2] for line in
            run(s, "show authorization-rules").splitlines()[2:]]
    assert rows[:3] == [["1", "vendors-free"], ["2", "tata-lan"],
                        ["3", "draft"]]
    assert ["-", "built-in"] in rows
    assert "(not in force)" in run(s, "show authorization-rules")


def test_impossible_charge_refused(storage):
    """charge carrier in a rule matching apps fails and changes nothing;
    so does match origin app in a rule that charges the carrier."""
    s = open_session(storage, "admin", "admin")
    run(s, "configure terminal", "authorization-rule apps",
        "match origin app")
    result = execute(s, "charge carrier")
    assert not result.ok and "no carrier to charge" in result.text
    run(s, "charge sender")
    assert billing_of(storage.root()).rules["apps"].charge == "sender"
    run(s, "exit", "authorization-rule tata-lan")
    assert not execute(s, "match origin app").ok
    rule = billing_of(storage.root()).rules["tata-lan"]
    assert (rule.origin_kind, rule.origin) == ("carrier", "TATA")
    assert not execute(s, "tariff NOPE").ok
    assert not execute(s, "match source 10.0.0.1/8").ok


def test_receiver_pays_needs_a_tariff(storage):
    """receiver-pays tariff names an existing tariff; no receiver-pays
    makes receiving free again."""
    s = open_session(storage, "admin", "admin")
    run(s, "configure terminal", 'product "Call & Chat"')
    assert not execute(s, "receiver-pays tariff NOPE").ok
    root = storage.root()
    assert billing_of(root).receiver_tariff(
        root.products["Call & Chat"], root.tariffs) == "RECV"
    run(s, "no receiver-pays")
    root = storage.root()
    assert billing_of(root).receiver_tariff(
        root.products["Call & Chat"], root.tariffs) is None
    assert not execute(s, "balance-low text {oops} left").ok
    assert not execute(s, "balance-low text {balance!r}{").ok


def test_test_route_shows_rule(storage, clock):
    """test route names the authorization rule that would decide who
    pays, by origin name and source address, and the receiving charge of
    a receiver-pays product."""
    from appliance.messaging.core import MessagingCore
    core = MessagingCore(storage, clock, local_transport="sip")
    core._rebuild_routes()
    s = open_session(storage, "alice", "view", live=LiveState(core=core))
    lan = run(s, "test route from 4412345 to 9647500000001 origin carrier "
              "TATA source 10.1.1.1")
    assert lan.splitlines() == [
        "local delivery to account 9647500000001 over SIP",
        "authorization rule tata-lan: origin carrier TATA, source "
        "10.0.0.0/8, sender 44%: charge carrier with tariff FREE",
        "payer: carrier TATA",
        "receiver pays: account 9647500000001 with tariff RECV (product "
        "Call & Chat)"]
    wan = run(s, "test route from 4412345 to 9647500000001 origin carrier "
              "TATA source 192.0.2.1")
    assert "authorization rule built-in carrier: origin carrier: charge " \
        "carrier" in wan
    vendor = run(s, "test route from 22201 to 9647500000001 origin "
                 "connection env4")
    assert "authorization rule vendors-free: origin connection: charge " \
        "nobody" in vendor
    assert "payer" not in vendor


def test_demo_rules_are_the_built_in_attribution(clock):
    """The demo ships the fixed attribution as rules: each origin kind is
    charged as the built-in rules would, by a rule an operator can see
    and edit."""
    from pathlib import Path
    from appliance.billing.charger import rule_book
    from appliance.billing.rules import BUILT_IN, Point, RuleBook
    text = (Path(__file__).parents[2] / "shell" / "demo.cli").read_text()
    fresh = memory_storage(reactor=clock)
    try:
        assert run_script(fresh, text).ok
        book = rule_book(fresh.root())
    finally:
        fresh.close()
    assert [r.name for r in book.rules] == [
        "carriers-pay", "vendors-pay", "apps-pay", "tenants-pay"]
    for kind in ("carrier", "connection", "app", "tenant"):
        point = Point(kind, "x", "127.0.0.1", "1", "111222333")
        assert book.decide(point).charge == RuleBook().decide(point).charge
        assert not book.decide(point).name.startswith("built-in")
    assert len(BUILT_IN) == 5


def test_product_tariffs_rendered_from_the_root_written(storage):
    """A product's C{tariff} and C{receiver-pays tariff} lines are
    rendered from the tariffs of the root C{show running-config} writes,
    handed to the render function, not looked up through the product's
    database connection: a root whose tariffs lack APP and RECV writes
    neither line, the storage's root writes both."""
    from types import SimpleNamespace

    from appliance.shell.commands.modes import CONFIG, TREE
    from appliance.shell.render import running_config
    root = storage.root()
    assert "  tariff APP" in running_config(TREE, CONFIG, root)
    others = {k: v for k, v in root.tariffs.items()
              if k not in ("APP", "RECV")}
    view = SimpleNamespace(tariffs=others, _p_jar=root._p_jar)
    product = root.products["Call & Chat"]
    by_spec = {c.spec: c for c in TREE.commands
               if c.mode.kind == "product" and c.render_root}
    assert set(by_spec) == {"tariff TARIFF",
                            "receiver-pays tariff TARIFF"}
    assert list(by_spec["tariff TARIFF"].render(product, root)) == [
        ("APP",)]
    assert list(by_spec["receiver-pays tariff TARIFF"].render(
        product, root)) == [("RECV",)]
    for command in by_spec.values():
        assert list(command.render(product, view)) == []
