"""Tests for the tenant shell commands (L{appliance.shell.commands.tenants})."""
from decimal import Decimal

from appliance.application import memory_storage
from appliance.http.model import http_of, token_hash
from appliance.shell.script import open_session, run_script
from appliance.shell.session import execute
from tests.shell_helpers import run

SCRIPT = '''configure terminal
 tariff T
  currency USD
  prefix 351 0.01
 exit
 tenant acme
  password s3cret-pw
  allow-ip 127.0.0.0/8
  allow-sender 123456789
  allow-sender ACME
  throughput 50
  prepaid
  balance add 10.50
  tariff T
  dlr-secret 0123456789abcdef0123
 exit
 service-policy pt
  recipient-pattern 351%
  origin tenant acme
 exit
end
'''


def _admin(storage):
    return open_session(storage, "admin", "admin")


def test_tenant_settings(storage):
    """The tenant mode's commands set the tenant's settings; the password
    is kept only as its scrypt hash and the balance is credited."""
    assert run_script(storage, SCRIPT).ok
    tenant = http_of(storage.root()).tenants["acme"]
    assert tenant.check_password("s3cret-pw")
    assert not tenant.check_password("other")
    assert tenant.password_hash.startswith("scrypt$")
    assert tenant.allowed_networks == ("127.0.0.0/8",)
    assert tenant.sender_allowed("123456789")
    assert tenant.sender_allowed("ACME")
    assert not tenant.sender_allowed("999")
    assert tenant.throughput == 50 and tenant.prepaid
    assert tenant.balance == Decimal("10.50") and tenant.tariff == "T"
    assert storage.root().policies["pt"].origin_tenant == "acme"


def test_token_shown_once_kept_hashed(storage):
    """C{token} shows a new token once; only its SHA-256 is kept, it finds
    the tenant, and C{no token} makes it stop working."""
    assert run_script(storage, SCRIPT).ok
    session = _admin(storage)
    run(session, "configure terminal", "tenant acme")
    text = run(session, "token")
    token = text.split()[1]
    http = http_of(storage.root())
    assert http.tenants["acme"].token_hash == token_hash(token)
    assert http.by_token(token).name == "acme"
    config = run(session, "show running-config")
    assert token not in config and token_hash(token) in config
    run(session, "no token")
    assert http_of(storage.root()).by_token(token) is None


def test_running_config_hashes_only_and_round_trip(storage, clock):
    """show running-config writes tenants with their password and token
    hashes (never the secrets, never the balance); replaying it into an
    empty database renders the same text and the password still works."""
    assert run_script(storage, SCRIPT).ok
    session = _admin(storage)
    run(session, "configure terminal", "tenant acme", "token", "end")
    first = run(session, "show running-config")
    assert "s3cret-pw" not in first
    assert "password-hash scrypt$" in first and "token-hash sha256$" in first
    assert "balance" not in first
    assert first.index("tenant acme") < first.index("service-policy pt")
    assert " origin tenant acme" in first
    fresh = memory_storage(reactor=clock)
    try:
        replay = run_script(fresh, first)
        assert replay.ok, replay.text
        assert run(_admin(fresh), "show running-config") == first
        assert http_of(fresh.root()).tenants["acme"].check_password(
            "s3cret-pw")
    finally:
        fresh.close()


def test_failed_commands_change_nothing(storage):
    """A bad sender, network, tariff or tenant is refused with a reason
    and changes nothing; a tenant named by a policy cannot be removed."""
    assert run_script(storage, SCRIPT).ok
    session = _admin(storage)
    run(session, "configure terminal", "tenant acme")
    for line in ("allow-sender +!!", "allow-ip 300.1.1.1", "tariff NONE",
                 "dlr-secret short", "throughput 100001"):
        result = execute(session, line)
        assert not result.ok, line
    tenant = http_of(storage.root()).tenants["acme"]
    assert tenant.allowed_senders == ("123456789", "ACME")
    assert tenant.tariff == "T"
    run(session, "exit")
    result = execute(session, "no tenant acme")
    assert not result.ok and "policy" in result.text
    assert "acme" in http_of(storage.root()).tenants


def test_show_tenants(storage):
    """show tenants lists each tenant with its billing and allowances."""
    assert run_script(storage, SCRIPT).ok
    text = run(_admin(storage), "show tenants")
    assert "acme" in text and "prepaid 10.50" in text
    assert "127.0.0.0/8" in text and "ACME" in text


def test_policy_origin_tenant_routes(storage, clock):
    """A policy with C{origin tenant acme} matches acme's messages only."""
    from appliance.model.routing import route_table
    assert run_script(storage, SCRIPT).ok
    table = route_table(storage.root())
    assert table.decide("1", "351911", "tenant", "acme").policy == "pt"
    assert table.decide("1", "351911", "tenant", "other") is None
    assert table.decide("1", "351911", "app") is None
