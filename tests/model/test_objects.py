"""Tests for the persistent model classes: settings, validation, reset."""
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh import keys
from zope.interface.verify import verifyObject

from appliance.model import interfaces as I
from appliance.model.carriers import Carrier, Connection
from appliance.model.customers import Account, Customer, Product
from appliance.model.errors import ModelError
from appliance.model.operators import Operator
from appliance.model.passwords import digest_ha1
from appliance.model.root import ApplianceRoot
from appliance.model.routing import ServicePolicy
from appliance.model.tariffs import Tariff


def _public_line(comment="ops@example"):
    key = keys.Key(ed25519.Ed25519PrivateKey.generate())
    return key.public().toString("openssh", comment=comment).decode()


@pytest.mark.parametrize("iface, obj", [
    (I.IProduct, Product("Call & Chat")),
    (I.ICustomer, Customer("John Doe")),
    (I.IAccount, Account("111222333", "John Doe")),
    (I.ICarrier, Carrier("Carrier1")),
    (I.IConnection, Connection("vendor")),
    (I.IServicePolicy, ServicePolicy("local")),
    (I.ITariff, Tariff("standard")),
    (I.IOperator, Operator("alice")),
    (I.IApplianceRoot, ApplianceRoot()),
])
def test_verify_object(iface, obj):
    """Each model class provides its interface completely."""
    assert verifyObject(iface, obj)


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\there", None, 5])
def test_bad_names(name):
    """Empty, over-64-character, unprintable or non-text names raise ModelError."""
    with pytest.raises(ModelError):
        Product(name)


def test_names_with_spaces_and_ampersand():
    """Names may hold spaces and '&'; surrounding blanks are dropped."""
    assert Product(" Call & Chat ").name == "Call & Chat"
    assert Customer("John Doe").name == "John Doe"


def test_product_messaging_setting():
    """messaging defaults to False, takes only booleans and resets with del."""
    product = Product("Call & Chat")
    assert product.messaging is False
    product.messaging = True
    assert product.messaging is True
    assert list(product.changed_settings()) == [("messaging", True)]
    with pytest.raises(ModelError, match="true or false"):
        product.messaging = "yes"
    del product.messaging
    assert product.messaging is False
    assert list(product.changed_settings()) == []


def test_account_password_stores_only_ha1():
    """set_password keeps the realm and the two HA1 values, never the password."""
    account = Account("111222333", "John Doe")
    assert account.check_ha1("MD5") is None
    account.set_password("Circle of Life", "sip.example.org")
    assert account.realm == "sip.example.org"
    assert account.check_ha1("MD5") == digest_ha1(
        "111222333", "sip.example.org", "Circle of Life", "MD5")
    assert account.check_ha1("sha-256") == digest_ha1(
        "111222333", "sip.example.org", "Circle of Life", "SHA-256")
    assert account.check_ha1("SHA-512-256") is None
    assert "Circle of Life" not in repr(vars(account))
    account.clear_password()
    assert account.check_ha1("MD5") is None and account.realm is None


@pytest.mark.parametrize("password, realm", [
    ("", "r"), ("x" * 129, "r"), ("a\nb", "r"), ("pw", ""), ("pw", 'a"b'), (None, "r"),
])
def test_account_password_rejects(password, realm):
    """Empty, too long or unprintable passwords and bad realms raise ModelError."""
    with pytest.raises(ModelError):
        Account("u1", "c").set_password(password, realm)


@pytest.mark.parametrize("username", ["", "-abc", "a b", "user@host", "x" * 65, 123])
def test_account_bad_username(username):
    """SIP usernames are 1-64 safe characters; others raise ModelError."""
    with pytest.raises(ModelError):
        Account(username, "c")


def test_account_settings():
    """balance takes Decimal text (not floats); enabled and balance reset with del;
    product and dids are managed by the root."""
    account = Account("111222333", "John Doe")
    assert account.balance == Decimal("0") and account.enabled is True
    account.balance = "12.345"
    assert account.balance == Decimal("12.345")
    with pytest.raises(ModelError, match="float"):
        account.balance = 1.5
    with pytest.raises(ModelError):
        account.balance = "ten"
    account.enabled = False
    account.reset("balance")
    del account.enabled
    assert account.balance == Decimal("0") and account.enabled is True
    with pytest.raises(ModelError, match="set_account_product"):
        account.product = "Call & Chat"
    with pytest.raises(ModelError, match="add_did"):
        del account.dids
    with pytest.raises(ModelError, match="no setting"):
        account.reset("colour")


def test_carrier_password():
    """An SMPP password is 1-8 characters, stored hashed, checked in constant time."""
    carrier = Carrier("Carrier1")
    assert carrier.check_password("secret") is False
    with pytest.raises(ModelError) as failure:
        carrier.set_password("123456789")
    assert str(failure.value) == "SMPP password is at most 8 characters"
    assert carrier.password_hash is None
    carrier.set_password("12345678")
    assert "12345678" not in carrier.password_hash
    assert carrier.check_password("12345678")
    assert not carrier.check_password("1234567")
    carrier.clear_password()
    assert not carrier.check_password("12345678")


def test_carrier_networks():
    """Networks are normalized CIDR, IPv4 and IPv6; empty allows any source."""
    carrier = Carrier("Carrier1")
    assert carrier.source_allowed("203.0.113.9")
    carrier.allow_ip("10.1.2.3/24")
    carrier.allow_ip("2001:DB8::1")
    carrier.allow_ip("10.1.2.0/24")
    assert carrier.allowed_networks == ("10.1.2.0/24", "2001:db8::1/128")
    assert carrier.source_allowed("10.1.2.200")
    assert carrier.source_allowed("::ffff:10.1.2.7")
    assert carrier.source_allowed("2001:db8::1")
    assert not carrier.source_allowed("10.1.3.1")
    assert not carrier.source_allowed("2001:db8::2")
    assert not carrier.source_allowed("not an ip")
    with pytest.raises(ModelError):
        carrier.allow_ip("10.1.2.300")
    carrier.disallow_ip("10.1.2.9/24")
    assert carrier.allowed_networks == ("2001:db8::1/128",)
    assert not carrier.source_allowed("10.1.2.200")
    with pytest.raises(ModelError, match="not an allowed network"):
        carrier.disallow_ip("10.9.9.9")
    del carrier.allowed_networks
    assert carrier.allowed_networks == () and carrier.source_allowed("10.1.3.1")


def test_carrier_settings():
    """max_binds and throughput validate ranges and reset with del; system_id
    and tariff are managed by the root."""
    carrier = Carrier("Carrier1")
    assert (carrier.max_binds, carrier.throughput, carrier.enabled) == (4, 0, True)
    carrier.throughput = "250"
    carrier.max_binds = 2
    assert (carrier.max_binds, carrier.throughput) == (2, 250)
    for bad in (-1, 100001, "1e3", True, 2.5):
        with pytest.raises(ModelError):
            carrier.throughput = bad
    with pytest.raises(ModelError):
        carrier.max_binds = 0
    del carrier.throughput
    carrier.reset("max_binds")
    assert (carrier.max_binds, carrier.throughput) == (4, 0)
    with pytest.raises(ModelError, match="set_carrier_system_id"):
        carrier.system_id = "abc"


def test_connection_settings():
    """Connection settings validate and every one resets with del."""
    conn = Connection("vendor")
    assert (conn.port, conn.bind, conn.binds, conn.window, conn.tls) == (
        2775, "transceiver", 1, 10, False)
    conn.host = "SMSC.Example.NET."
    assert conn.host == "smsc.example.net"
    conn.host = "2001:db8:0::5"
    assert conn.host == "2001:db8::5"
    conn.password = "abcdefgh"
    assert conn.password == "abcdefgh"
    with pytest.raises(ModelError, match="at most 8"):
        conn.password = "abcdefghi"
    conn.system_id = "esme01"
    with pytest.raises(ModelError, match="at most 15"):
        conn.system_id = "x" * 16
    conn.bind = "Transmitter"
    assert conn.bind == "transmitter"
    for name, bad in [("bind", "receiver"), ("port", 0), ("port", 70000),
                      ("window", 0), ("binds", 65), ("host", "bad host"),
                      ("host", "-x.example"), ("tls", 1), ("shutdown", None)]:
        with pytest.raises(ModelError):
            setattr(conn, name, bad)
    for name in Connection.settings():
        delattr(conn, name)
    assert list(conn.changed_settings()) == []
    assert conn.host is None and conn.password is None


def test_policy_settings():
    """Patterns, origin and transport validate; all but connections reset with del."""
    policy = ServicePolicy("local")
    assert (policy.recipient_pattern, policy.sender_pattern, policy.origin,
            policy.transport) == ("%", None, None, "sip")
    policy.recipient_pattern = "964%"
    policy.sender_pattern = "_%"
    policy.origin = "carrier"
    policy.transport = "smpp"
    for name, bad in [("recipient_pattern", "96*"), ("recipient_pattern", None),
                      ("sender_pattern", "abc"), ("origin", "http"), ("transport", "mail")]:
        with pytest.raises(ModelError):
            setattr(policy, name, bad)
    for name in ("recipient_pattern", "sender_pattern", "origin", "transport"):
        policy.reset(name)
    assert list(policy.changed_settings()) == []
    with pytest.raises(ModelError, match="set_policy_connections"):
        policy.connections = ("vendor",)


def test_operator_keys_and_password():
    """Operators keep validated public keys (deduplicated) and a hashed password."""
    op = Operator("alice")
    line = _public_line()
    op.add_ssh_key(line)
    op.add_ssh_key(line.rsplit(" ", 1)[0] + " other-comment")
    assert op.ssh_keys == (line,)
    assert op.public_keys()[0].isPublic()
    second = _public_line("b")
    op.add_ssh_key(second)
    fingerprint = keys.Key.fromString(second).fingerprint(keys.FingerprintFormats.SHA256_BASE64)
    op.remove_ssh_key("SHA256:" + fingerprint)
    assert op.ssh_keys == (line,)
    op.remove_ssh_key(line)
    assert op.ssh_keys == ()
    with pytest.raises(ModelError, match="no such key"):
        op.remove_ssh_key(line)
    for bad in ("ssh-ed25519 garbage", "", "hello", 42):
        with pytest.raises(ModelError):
            op.add_ssh_key(bad)
    private = keys.Key(ed25519.Ed25519PrivateKey.generate()).toString("openssh").decode()
    with pytest.raises(ModelError):
        op.add_ssh_key(private)
    assert op.role == "view"
    op.role = "admin"
    with pytest.raises(ModelError):
        op.role = "root"
    del op.role
    assert op.role == "view"
    assert not op.check_password("pw")
    op.set_password("correct horse")
    assert op.check_password("correct horse") and not op.check_password("pw")
    op.set_password(None)
    assert not op.check_password("correct horse")
    with pytest.raises(ModelError):
        op.set_password("")


def test_tariff_prices():
    """Prices are non-negative Decimals keyed by normalized prefix."""
    tariff = Tariff("standard")
    tariff.set_price("+964", "0.0125")
    tariff.set_price("9647", Decimal("0.02"))
    tariff.set_price("44", 0)
    assert tariff.prices["964"] == Decimal("0.0125")
    for prefix, price in [("964", "-1"), ("964", 0.1), ("9x", "1"), ("964", "NaN")]:
        with pytest.raises(ModelError):
            tariff.set_price(prefix, price)
    assert tariff.lookup("9647501234567") == ("9647", Decimal("0.02"))
    assert tariff.lookup("9641") == ("964", Decimal("0.0125"))
    assert tariff.lookup("4420") == ("44", Decimal("0"))
    assert tariff.lookup("1555") is None
    assert tariff.lookup("") is None
    tariff.remove_price("9647")
    assert tariff.lookup("9647501234567") == ("964", Decimal("0.0125"))
    with pytest.raises(ModelError, match="no price"):
        tariff.remove_price("9647")
    tariff.currency = "iqd"
    assert tariff.currency == "IQD"
    with pytest.raises(ModelError):
        tariff.currency = "DOLLARS"
    del tariff.currency
    assert tariff.currency == "USD"
    snap = tariff.snapshot()
    assert (snap.name, snap.currency, len(snap)) == ("standard", "USD", 2)
    tariff.set_price("1", "0.05")
    assert snap.lookup("1555") is None, "a snapshot does not follow later changes"


def test_restore_hashes_round_trip():
    """Hashes read from one object restore onto another and still verify;
    malformed hashes are refused and change nothing."""
    carrier, copy = Carrier("a"), Carrier("b")
    carrier.set_password("pw")
    copy.set_password_hash(carrier.password_hash)
    assert copy.check_password("pw")
    op = Operator("alice")
    op.set_password_hash(carrier.password_hash)
    assert op.check_password("pw")
    for bad in ("plain", "scrypt$14$8$1$AAAA", "scrypt$14$8$1$!!$!!", "scrypt$40$8$1$"
                + "A" * 24 + "$" + "A" * 44, None):
        with pytest.raises(ModelError, match="scrypt"):
            copy.set_password_hash(bad)
    assert copy.check_password("pw")
    account, twin = Account("111", "c"), Account("111", "c")
    account.set_password("secret", "example.org")
    twin.set_ha1(account.realm, account.ha1_md5.upper(), account.ha1_sha256)
    assert (twin.realm, twin.check_ha1("MD5"), twin.check_ha1("SHA-256")) == (
        "example.org", account.ha1_md5, account.ha1_sha256)
    for args in [("r", "0" * 31, "0" * 64), ("r", "0" * 32, "g" * 64), ("", "0" * 32, "0" * 64)]:
        with pytest.raises(ModelError):
            twin.set_ha1(*args)
    assert twin.check_ha1("MD5") == account.ha1_md5
