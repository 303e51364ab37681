"""
Tests for the registrar: digest challenge and checks, expires bounds,
un-registration, expiry, RFC 5626 instance replacement, persistence,
and the rate limit on authentication failures.
"""
from __future__ import annotations

from pathlib import Path

from appliance.sip.registrar import TREE_KEY

try:
    from tests.sip.sipbench import APP, DOMAIN, Bench, digest_response
except ImportError:  # rootdir-relative import mode
    from sipbench import APP, DOMAIN, Bench, digest_response  # type: ignore[no-redef]


def contacts(response) -> list[str]:
    return response.headers.get_all("contact")


def test_register_challenged_then_accepted(bench):
    """
    A REGISTER without credentials gets 401 with one WWW-Authenticate per
    configured algorithm (MD5 first, qop=auth); with the right digest it
    gets 200 listing the contact with its expires, and the core is told
    the account is online.
    """
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:1111@198.51.100.7:40000>"]))
    assert [r.status for r in first] == [401]
    challenges = first[0].headers.get_all("www-authenticate")
    assert len(challenges) == 2
    assert "algorithm=MD5" in challenges[0] and "algorithm=SHA-256" in challenges[1]
    assert 'qop="auth"' in challenges[0]
    ok = bench.register()
    assert ok.status == 200
    assert contacts(ok) == ["<sip:1111@198.51.100.7:40000>;expires=600"]
    assert bench.core.online == ["1111"]


def test_sha256_credentials_accepted(bench):
    """A client answering the SHA-256 challenge registers too (RFC 8760)."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:1111@h>"]))[0]
    sha = first.headers.get_all("www-authenticate")[1]
    auth = digest_response(sha, "REGISTER", f"sip:{DOMAIN}", "1111", "secret")
    ok = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}",
                                 ["Contact: <sip:1111@h>", f"Authorization: {auth}"]))[-1]
    assert ok.status == 200


def test_wrong_password_and_disabled_account_get_403(bench):
    """A wrong password, an unknown user and a disabled account get 403 after the challenge."""
    assert bench.register(password="wrong").status == 403
    assert bench.register(user="9999").status == 403
    assert bench.register(user="3333").status == 403
    assert bench.service.gate.failures == 3
    assert bench.service.store.get("1111") == ()


def test_register_for_another_account_refused(bench):
    """Credentials of 1111 cannot register the AOR of 2222: 403."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"],
                                    to=f"<sip:2222@{DOMAIN}>"))[0]
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret")
    r = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}",
                                ["Contact: <sip:x@h>", f"Authorization: {auth}"],
                                to=f"<sip:2222@{DOMAIN}>"))[-1]
    assert r.status == 403


def test_register_to_a_did_of_the_account_accepted(bench):
    """The AOR may be one of the account's DIDs."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"],
                                    to=f"<sip:+9647501111111@{DOMAIN}>"))[0]
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret")
    r = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}",
                                ["Contact: <sip:x@h>", f"Authorization: {auth}"],
                                to=f"<sip:+9647501111111@{DOMAIN}>"))[-1]
    assert r.status == 200


def test_nonce_count_replay_rechallenged(bench):
    """A credential replayed with the same nonce-count is not accepted: a fresh 401."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"]))[0]
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret")
    hdrs = ["Contact: <sip:x@h>", f"Authorization: {auth}"]
    assert bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", hdrs))[-1].status == 200
    assert bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", hdrs))[-1].status == 401


def test_stale_nonce_rechallenged_with_stale_flag(bench):
    """A right answer to an expired nonce gets 401 with stale=TRUE, not 403."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"]))[0]
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret")
    bench.reactor.advance(bench.section.nonce_lifetime + 5)
    r = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}",
                                ["Contact: <sip:x@h>", f"Authorization: {auth}"]))[-1]
    assert r.status == 401
    assert "stale=TRUE" in r.headers.get("www-authenticate")


def test_too_brief_gets_423_and_long_is_cut(bench):
    """Expires below min_expires gets 423 with Min-Expires; above max_expires is cut to it."""
    r = bench.register(expires=10)
    assert r.status == 423
    assert r.headers.get("min-expires") == str(bench.section.min_expires)
    r = bench.register(expires=999999)
    assert r.status == 200
    assert contacts(r) == [f"<sip:1111@198.51.100.7:40000>;expires={bench.section.max_expires}"]


def test_several_contacts_and_unregister_one_and_all(bench):
    """
    Several contacts coexist; expires=0 removes one; Contact * with
    Expires 0 removes all.
    """
    bench.register(contact="<sip:1111@10.0.0.1:5060>", call_id="a")
    r = bench.register(contact="<sip:1111@10.0.0.2:5060>;expires=300", call_id="b")
    assert sorted(contacts(r)) == ["<sip:1111@10.0.0.1:5060>;expires=600",
                                   "<sip:1111@10.0.0.2:5060>;expires=300"]
    r = bench.register(contact="<sip:1111@10.0.0.1:5060>", expires=0, call_id="a")
    assert contacts(r) == ["<sip:1111@10.0.0.2:5060>;expires=300"]
    assert len(bench.storage.domain(TREE_KEY)[("1111", "appliance")]) == 1
    r = bench.register(contact="*", expires=0, call_id="c")
    assert r.status == 200 and contacts(r) == []
    assert bench.service.store.get("1111") == ()
    assert bench.storage.domain(TREE_KEY).get(("1111", "appliance")) is None


def test_wildcard_needs_expires_zero(bench):
    """Contact * with a non-zero Expires is a 400."""
    assert bench.register(contact="*", expires=60).status == 400


def test_binding_expires_on_the_clock(bench):
    """A binding lapses after its expires: the sweep removes it from memory and the database."""
    bench.register(expires=120)
    assert len(bench.service.store.get("1111")) == 1
    bench.reactor.advance(119)
    assert len(bench.service.store.get("1111")) == 1
    assert len(bench.storage.domain(TREE_KEY)[("1111", "appliance")]) == 1
    bench.reactor.advance(2)
    bench.settle()
    assert bench.service.store.get("1111") == ()
    assert bench.storage.domain(TREE_KEY).get(("1111", "appliance")) is None


def test_same_instance_and_reg_id_replaces_binding(bench):
    """RFC 5626: a new contact with the same +sip.instance and reg-id replaces the old binding."""
    inst = ';+sip.instance="<urn:uuid:00000000-0000-0000-0000-000000000001>";reg-id=1'
    bench.register(contact=f"<sip:1111@10.0.0.1:5060>{inst}", call_id="a")
    r = bench.register(contact=f"<sip:1111@10.0.0.9:6000>{inst}", call_id="b")
    assert len(contacts(r)) == 1
    assert contacts(r)[0].startswith("<sip:1111@10.0.0.9:6000>;expires=600;+sip.instance=")
    assert r.headers.get("require") == "outbound"
    (b,) = bench.service.store.get("1111")
    assert b.instance == "<urn:uuid:00000000-0000-0000-0000-000000000001>" and b.reg_id == 1


def test_binding_records_source_and_user_agent(bench):
    """The binding keeps the received/rport source, the transport and the User-Agent."""
    bench.register(extra=["User-Agent: Zoiper 5"], source=("203.0.113.5", 1234))
    (b,) = bench.service.store.get("1111")
    assert b.source == ("203.0.113.5", 1234) and b.transport == "UDP"
    assert b.user_agent == "Zoiper 5"


def test_rate_limit_refuses_at_once(bench):
    """
    After more than auth_failures failures from one address in a minute,
    its requests get 403 at once without a challenge; other addresses
    are unaffected; a minute later it may try again.
    """
    for _ in range(4):
        assert bench.register(password="bad").status == 403
    r = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"]))[-1]
    assert r.status == 403
    assert bench.register(source=("203.0.113.99", 5060)).status == 200
    bench.reactor.advance(61)
    assert bench.register().status == 200


def test_bindings_survive_a_restart(tmp_path: Path):
    """Bindings are in the database: a new service on the reopened FileStorage has them."""
    path = tmp_path / "Data.fs"
    first = Bench(tmp_path, database=path)
    assert first.register().status == 200
    first.stop()
    first.storage.flush()
    first.storage.close()
    second = Bench(tmp_path, database=path, fill=False)
    (b,) = second.service.store.get("1111")
    assert b.contact == "sip:1111@198.51.100.7:40000" and b.source == APP
    assert second.service.agent.usable("1111")  # a UDP binding is usable at once
    second.stop()
    second.storage.close()


def test_out_of_order_register_refused(bench):
    """A REGISTER with the same Call-ID and a lower CSeq than the binding's gets 500."""
    bench.register(call_id="z")
    late = bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:1111@198.51.100.7:40000>"],
                         call_id="z", cseq=1)
    first = bench.udp(late)[0]
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret")
    r = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}",
                                ["Contact: <sip:1111@198.51.100.7:40000>",
                                 f"Authorization: {auth}"], call_id="z", cseq=1))[-1]
    assert r.status == 500
