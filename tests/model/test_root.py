"""Tests for ApplianceRoot: every method, refusals and index consistency."""
import pytest
import transaction

from appliance.model.errors import ModelError


def _consistent(root):
    """The global indexes agree with the objects they index."""
    for did, username in root.dids.items():
        assert did in root.accounts[username].dids
    for username, account in root.accounts.items():
        assert root.customers[account.customer].accounts[username] is account
        for did in account.dids:
            assert root.dids[did] == username
    for customer in root.customers.values():
        for username, account in customer.accounts.items():
            assert root.accounts[username] is account
    for sid, carrier in root.carriers_by_system_id.items():
        assert carrier.system_id == sid and root.carriers[carrier.name] is carrier
    for carrier in root.carriers.values():
        if carrier.system_id is not None:
            assert root.carriers_by_system_id[carrier.system_id] is carrier
    assert sorted(root.policy_order) == sorted(root.policies.keys())


def test_products(root):
    """Products are added once and cannot be removed while an account uses them."""
    product = root.add_product("Call & Chat")
    assert root.products["Call & Chat"] is product
    with pytest.raises(ModelError, match="already exists"):
        root.add_product("Call & Chat")
    root.add_customer("John Doe")
    root.add_account("John Doe", "111222333")
    root.set_account_product("111222333", "Call & Chat")
    assert root.accounts["111222333"].product == "Call & Chat"
    with pytest.raises(ModelError, match="used by account 111222333"):
        root.remove_product("Call & Chat")
    root.set_account_product("111222333", None)
    assert root.accounts["111222333"].product is None
    root.remove_product("Call & Chat")
    assert "Call & Chat" not in root.products
    with pytest.raises(ModelError, match="no product"):
        root.remove_product("Call & Chat")
    with pytest.raises(ModelError, match="no product"):
        root.set_account_product("111222333", "Gold")
    with pytest.raises(ModelError, match="no account"):
        root.set_account_product("999", None)


def test_customers_and_accounts(root):
    """Usernames are global; a customer with accounts cannot be removed."""
    root.add_customer("John Doe")
    root.add_customer("Jane Roe")
    with pytest.raises(ModelError, match="already exists"):
        root.add_customer("John Doe")
    account = root.add_account("John Doe", "111222333")
    assert root.accounts["111222333"] is account
    assert root.customers["John Doe"].accounts["111222333"] is account
    assert account.customer == "John Doe"
    with pytest.raises(ModelError, match="taken by customer 'John Doe'"):
        root.add_account("Jane Roe", "111222333")
    with pytest.raises(ModelError, match="no customer"):
        root.add_account("Nobody", "555")
    with pytest.raises(ModelError):
        root.add_account("Jane Roe", "bad user")
    with pytest.raises(ModelError, match="still has accounts"):
        root.remove_customer("John Doe")
    root.remove_account("111222333")
    assert "111222333" not in root.accounts
    assert "111222333" not in root.customers["John Doe"].accounts
    root.remove_customer("John Doe")
    assert "John Doe" not in root.customers
    with pytest.raises(ModelError, match="no account"):
        root.remove_account("111222333")
    _consistent(root)


def test_dids(root):
    """DIDs are normalized, unique across accounts, and freed with the account."""
    root.add_customer("John Doe")
    root.add_account("John Doe", "111222333")
    root.add_account("John Doe", "444")
    assert root.add_did("111222333", "+964 111 222 333") == "964111222333"
    assert root.add_did("111222333", "111222333") == "111222333"
    assert root.add_did("111222333", "00964111222333") == "964111222333"  # idempotent
    assert root.accounts["111222333"].dids == ("111222333", "964111222333")
    assert root.account_for_did("+964-111-222-333") is root.accounts["111222333"]
    assert root.account_for_did("5550000") is None
    assert root.account_for_did("not a number") is None
    with pytest.raises(ModelError) as failure:
        root.add_did("444", "964111222333")
    assert str(failure.value) == "DID 964111222333 already belongs to account 111222333"
    with pytest.raises(ModelError):
        root.add_did("444", "12ab")
    with pytest.raises(ModelError, match="no account"):
        root.add_did("nobody", "123")
    with pytest.raises(ModelError, match="has no DID"):
        root.remove_did("444", "964111222333")
    root.remove_did("111222333", "+964111222333")
    assert root.accounts["111222333"].dids == ("111222333",)
    assert root.account_for_did("964111222333") is None
    root.add_did("444", "964111222333")
    _consistent(root)
    root.remove_account("111222333")
    assert root.account_for_did("111222333") is None
    assert root.account_for_did("964111222333") is root.accounts["444"]
    _consistent(root)


def test_carriers_and_system_ids(root):
    """system_ids are unique, indexed, re-indexed on change and freed on removal."""
    c1 = root.add_carrier("Carrier1")
    root.add_carrier("Carrier2")
    root.set_carrier_system_id("Carrier1", "tata01")
    assert c1.system_id == "tata01"
    assert root.carrier_by_system_id("tata01") is c1
    with pytest.raises(ModelError, match="used by carrier 'Carrier1'"):
        root.set_carrier_system_id("Carrier2", "tata01")
    with pytest.raises(ModelError, match="at most 15"):
        root.set_carrier_system_id("Carrier2", "x" * 16)
    with pytest.raises(ModelError, match="printable ASCII"):
        root.set_carrier_system_id("Carrier2", "tätä")
    root.set_carrier_system_id("Carrier1", "tata01")  # same again: fine
    root.set_carrier_system_id("Carrier1", "tata02")
    assert root.carrier_by_system_id("tata01") is None
    assert root.carrier_by_system_id("tata02") is c1
    root.set_carrier_system_id("Carrier2", "tata01")
    _consistent(root)
    root.set_carrier_system_id("Carrier1", None)
    assert c1.system_id is None and root.carrier_by_system_id("tata02") is None
    root.set_carrier_system_id("Carrier1", "tata02")
    root.remove_carrier("Carrier1")
    assert root.carrier_by_system_id("tata02") is None
    assert root.carrier_by_system_id(None) is None
    with pytest.raises(ModelError, match="no carrier"):
        root.remove_carrier("Carrier1")
    _consistent(root)


def test_tariffs(root):
    """A carrier's tariff must exist; a tariff in use cannot be removed."""
    root.add_carrier("Carrier1")
    root.add_tariff("standard")
    with pytest.raises(ModelError, match="already exists"):
        root.add_tariff("standard")
    with pytest.raises(ModelError, match="no tariff"):
        root.set_carrier_tariff("Carrier1", "premium")
    root.set_carrier_tariff("Carrier1", "standard")
    assert root.carriers["Carrier1"].tariff == "standard"
    with pytest.raises(ModelError, match="used by carrier 'Carrier1'"):
        root.remove_tariff("standard")
    root.set_carrier_tariff("Carrier1", None)
    root.remove_tariff("standard")
    assert "standard" not in root.tariffs


def test_connections_and_policies(root):
    """Policies keep an order; connections in use by a policy cannot be removed."""
    root.add_connection("vendorA")
    root.add_connection("vendorB")
    for name in ("local", "intl", "fallback"):
        root.add_policy(name)
    assert root.policy_order == ("local", "intl", "fallback")
    root.move_policy("fallback", 1)
    assert [p.name for p in root.ordered_policies()] == ["fallback", "local", "intl"]
    root.move_policy("fallback", 3)
    assert root.policy_order == ("local", "intl", "fallback")
    for bad in (0, 4, "2", True):
        with pytest.raises(ModelError, match="between 1 and 3"):
            root.move_policy("intl", bad)
    with pytest.raises(ModelError, match="no connection"):
        root.set_policy_connections("intl", ["vendorA", "vendorC"])
    assert root.policies["intl"].connections == ()
    root.set_policy_connections("intl", ["vendorB", "vendorA", "vendorB"])
    assert root.policies["intl"].connections == ("vendorB", "vendorA")
    with pytest.raises(ModelError, match="used by policy 'intl'"):
        root.remove_connection("vendorA")
    root.set_policy_connections("intl", [])
    root.remove_connection("vendorA")
    root.remove_policy("local")
    assert root.policy_order == ("intl", "fallback")
    with pytest.raises(ModelError, match="no policy"):
        root.remove_policy("local")
    with pytest.raises(ModelError, match="already exists"):
        root.add_policy("intl")
    _consistent(root)


def test_operators(root):
    """Operators are added once and removed by name."""
    op = root.add_operator("alice")
    assert root.operators["alice"] is op
    with pytest.raises(ModelError):
        root.add_operator("alice")
    root.remove_operator("alice")
    with pytest.raises(ModelError, match="no operator"):
        root.remove_operator("alice")


def test_changes_persist_and_reset_survives_commit(conn, root):
    """Settings, resets and indexes survive a commit and a fresh connection."""
    tm = conn.transaction_manager
    carrier = root.add_carrier("Carrier1")
    carrier.throughput = 50
    root.set_carrier_system_id("Carrier1", "sid1")
    root.add_customer("John Doe")
    root.add_account("John Doe", "111222333")
    root.add_did("111222333", "111222333")
    tm.commit()
    other_tm = transaction.TransactionManager(explicit=True)
    other = conn.db().open(transaction_manager=other_tm)
    other_tm.begin()
    seen = other.root()["appliance"]
    assert seen.carriers["Carrier1"].throughput == 50
    assert seen.carrier_by_system_id("sid1").name == "Carrier1"
    assert seen.account_for_did("111222333").username == "111222333"
    other_tm.abort()
    tm.begin()
    del root.carriers["Carrier1"].throughput
    tm.commit()
    other_tm.begin()
    assert seen.carriers["Carrier1"].throughput == 0
    other_tm.abort()
    other.close()
    tm.begin()
