"""
SIP digest against hostile apps: credentials for another realm, a nonce
replayed on another request, a MESSAGE whose From names another account.
(Nonce-count replay, stale nonces and REGISTER for another account's AoR
are in test_sip_registrar.)
"""
from __future__ import annotations

try:
    from tests.sip.sipbench import DOMAIN, digest_response
except ImportError:  # rootdir-relative import mode
    from sipbench import DOMAIN, digest_response  # type: ignore[no-redef]


def test_credentials_for_another_realm_not_accepted(bench):
    """A digest computed for another realm (right password) is not taken
    as ours: the REGISTER is challenged again and nothing is bound."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"]))[0]
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret", realm="evil.example")
    r = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}",
                                ["Contact: <sip:x@h>", f"Authorization: {auth}"]))[-1]
    assert r.status == 401
    assert bench.service.store.get("1111") == ()


def test_realm_spoofed_in_the_response_refused(bench):
    """A credential claiming our realm but computed over another one fails
    (403), it is not accepted."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"]))[0]
    challenge = first.headers.get("www-authenticate")
    auth = digest_response(challenge, "REGISTER", f"sip:{DOMAIN}", "1111", "secret",
                           realm="evil.example")
    realm = challenge.split('realm="')[1].split('"')[0]
    auth = auth.replace('realm="evil.example"', f'realm="{realm}"')
    r = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}",
                                ["Contact: <sip:x@h>", f"Authorization: {auth}"]))[-1]
    assert r.status == 403
    assert bench.service.store.get("1111") == ()


def test_nonce_reused_for_another_method_and_uri(bench):
    """A REGISTER's credential copied onto a MESSAGE (same nonce, other
    method and URI) is not accepted: the MESSAGE is not submitted."""
    first = bench.udp(bench.request("REGISTER", f"sip:{DOMAIN}", ["Contact: <sip:x@h>"]))[0]
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret")
    uri = f"sip:2222@{DOMAIN}"
    r = bench.udp(bench.request("MESSAGE", uri, ["Content-Type: text/plain",
                                                 f"Proxy-Authorization: {auth}"],
                                body=b"hi", to=f"<{uri}>"))
    assert [x.status for x in r] and r[-1].status in (401, 403, 407)
    assert bench.core.submitted == []


def test_message_from_spoofing_another_account_sends_as_the_authenticated(bench):
    """A MESSAGE authenticated as 1111 whose From names account 2222 is
    submitted as 1111: the sender is the credential's account, never the
    From header."""
    uri = f"sip:2222@{DOMAIN}"
    spoof = f"<sip:2222@{DOMAIN}>;tag=s1"
    first = bench.udp(bench.request("MESSAGE", uri, ["Content-Type: text/plain"],
                                    body=b"hi", to=f"<{uri}>", from_=spoof))
    assert [x.status for x in first] == [407]
    auth = digest_response(first[0].headers.get("proxy-authenticate"), "MESSAGE", uri,
                           "1111", "secret")
    bench.udp(bench.request("MESSAGE", uri, ["Content-Type: text/plain",
                                             f"Proxy-Authorization: {auth}"],
                            body=b"hi", to=f"<{uri}>", from_=spoof))
    ((submission, _),) = bench.core.submitted
    assert (submission.origin, submission.sender) == ("1111", "1111")

