"""
Tests for MESSAGE from apps and the method dispatch (OPTIONS, 405,
other domains, CANCEL).
"""
from __future__ import annotations

from zope.interface.verify import verifyObject

from appliance.messaging.interfaces import IMessagingCore
from appliance.sip.interfaces import ITransactionUser
from appliance.sip.message import parse

try:
    from tests.sip.sipbench import DOMAIN, FakeCore, digest_response
except ImportError:  # rootdir-relative import mode
    from sipbench import DOMAIN, FakeCore, digest_response  # type: ignore[no-redef]

TEXT = "مرحبا 😀 hello"


def send_message(bench, body: bytes, ctype: str | None = "text/plain;charset=UTF-8",
                 uri: str = f"sip:2222@{DOMAIN}", password: str = "secret"):
    """MESSAGE from 1111: 407, then with credentials; the responses to the second."""
    headers = [f"Content-Type: {ctype}"] if ctype else []
    first = bench.udp(bench.request("MESSAGE", uri, headers, body=body, to=f"<{uri}>"))
    assert [r.status for r in first] == [407]
    auth = digest_response(first[0].headers.get("proxy-authenticate"), "MESSAGE", uri,
                           "1111", password)
    return bench.udp(bench.request("MESSAGE", uri, headers + [f"Proxy-Authorization: {auth}"],
                                   body=body, to=f"<{uri}>"))


def test_fakes_provide_interfaces(bench):
    """The fake core and the application provide their interfaces."""
    verifyObject(IMessagingCore, FakeCore())
    verifyObject(ITransactionUser, bench.service.application)


def test_message_accepted_only_after_commit(bench):
    """
    An authenticated MESSAGE becomes a Submission from the account to the
    recipient; 202 is sent only once the core's Deferred fires.
    """
    out = send_message(bench, TEXT.encode())
    assert out == []
    ((submission, d),) = bench.core.submitted
    assert (submission.origin_kind, submission.origin, submission.sender,
            submission.recipient, submission.text) == ("account", "1111", "1111", "2222", TEXT)
    # the source address, for authorization rules by network
    assert submission.source == "198.51.100.7"
    sent = len(bench.udp_transport.written)
    d.callback(17)
    assert len(bench.udp_transport.written) == sent + 1
    assert parse(bench.udp_transport.written[-1][0]).status == 202
    assert bench.service.statistics()["messages_in"] == 1


def test_charset_decoded_and_number_normalized(bench):
    """A latin-1 body is decoded with its charset; a +E.164 tel-like user is normalized."""
    send_message(bench, "café".encode("latin-1"), "text/plain; charset=ISO-8859-1",
                 uri=f"sip:+964-750-2222222@{DOMAIN}")
    ((submission, _),) = bench.core.submitted
    assert submission.text == "café" and submission.recipient == "9647502222222"


def test_no_route_gets_404_and_nothing_stored(bench):
    """A recipient nobody takes gets 404."""
    (r,) = send_message(bench, b"hi", uri=f"sip:5555@{DOMAIN}")
    assert r.status == 404
    assert bench.core.submitted == []


def test_core_failure_gets_500(bench):
    """If the durable accept fails, the app gets 500."""
    send_message(bench, b"hi")
    bench.core.submitted[0][1].errback(RuntimeError("disk full"))
    assert parse(bench.udp_transport.written[-1][0]).status == 500


def test_other_content_type_gets_415(bench):
    """A non text/plain body (is-composing) gets 415 with Accept: text/plain."""
    (r,) = send_message(bench, b"<x/>", "application/im-iscomposing+xml")
    assert r.status == 415 and r.headers.get("accept") == "text/plain"


def test_unknown_charset_gets_415_and_bad_bytes_400(bench):
    """An unknown charset is 415; bytes that do not decode are 400."""
    (r,) = send_message(bench, b"hi", "text/plain;charset=x-klingon")
    assert r.status == 415
    (r,) = send_message(bench, b"\xff\xfe\xfa", "text/plain;charset=utf-8")
    assert r.status == 400


def test_too_large_gets_413_and_empty_400(bench):
    """A body over max_message_bytes gets 413; an empty body gets 400."""
    (r,) = send_message(bench, b"x" * (bench.section.max_message_bytes + 1))
    assert r.status == 413
    (r,) = send_message(bench, b"")
    assert r.status == 400


def test_wrong_password_message_403(bench):
    """A MESSAGE with a wrong password gets 403 after the 407."""
    (r,) = send_message(bench, b"hi", password="nope")
    assert r.status == 403
    assert bench.core.submitted == []


def test_options_answered_200(bench):
    """OPTIONS gets 200 with Allow and Accept, without authentication."""
    (r,) = bench.udp(bench.request("OPTIONS", f"sip:{DOMAIN}"))
    assert r.status == 200
    assert "MESSAGE" in r.headers.get_all("allow") and "REGISTER" in r.headers.get_all("allow")
    assert r.headers.get("accept") == "text/plain"


def test_other_method_gets_405(bench):
    """SUBSCRIBE (and INVITE) get 405 with Allow."""
    (r,) = bench.udp(bench.request("SUBSCRIBE", f"sip:1111@{DOMAIN}"))
    assert r.status == 405 and "OPTIONS" in r.headers.get_all("allow")
    out = bench.udp(bench.request("INVITE", f"sip:1111@{DOMAIN}"))
    assert out[-1].status == 405


def test_other_domain_gets_404_own_addresses_are_ours(bench):
    """A Request-URI for another domain gets 404; 127.0.0.1 and tel: URIs are ours."""
    (r,) = bench.udp(bench.request("OPTIONS", "sip:example.org"))
    assert r.status == 404
    (r,) = bench.udp(bench.request("OPTIONS", "sip:127.0.0.1"))
    assert r.status == 200
    (r,) = bench.udp(bench.request("OPTIONS", "sip:[::1]:5060"))
    assert r.status == 200
    (r,) = bench.udp(bench.request("OPTIONS", "tel:+15551234"))
    assert r.status == 200


def test_cancel_without_transaction_gets_481(bench):
    """A CANCEL matching no INVITE gets 481."""
    (r,) = bench.udp(bench.request("CANCEL", f"sip:1111@{DOMAIN}"))
    assert r.status == 481


def test_stray_ack_ignored(bench):
    """An ACK matching no transaction gets no answer."""
    assert bench.udp(bench.request("ACK", f"sip:1111@{DOMAIN}")) == []


def test_refused_payer_gets_402_with_the_reason(bench):
    """
    A message the charger refuses (seed 001: prepaid sender without funds)
    gets 402 with the reason as the reason phrase and in a Warning, so the
    app can show it; nothing is stored.
    """
    from appliance.messaging.vocabulary import Refused

    def refuse(submission):
        raise Refused("Insufficient funds: balance 0.00 USD")
    bench.core.submit = refuse
    out = send_message(bench, b"hello")
    assert [(r.status, r.reason) for r in out] == [
        (402, "Insufficient funds: balance 0.00 USD")]
    assert out[0].headers.get("warning") == \
        '399 appliance "Insufficient funds: balance 0.00 USD"'
    assert bench.core.submitted == []


def test_user_parts_read_by_the_numbering_plan(bench):
    """With the node's plan (country code 964, trunk prefix 0), the user
    parts +964..., 00964..., 0... and 964... all become one E.164
    recipient; a name stays the username."""
    bench.core.known += ("964111222333", "alice")
    with bench.storage.transaction(user="test") as root:
        root.numbering.country_code = "964"
        root.numbering.national_prefix = "0"
    for user in ("+964111222333", "00964111222333", "0111222333",
                 "964111222333", "0111-222-333"):
        send_message(bench, b"hi", uri=f"sip:{user}@{DOMAIN}")
    send_message(bench, b"hi", uri=f"sip:alice@{DOMAIN}")
    assert [s.recipient for s, _ in bench.core.submitted] == \
        ["964111222333"] * 5 + ["alice"]


def test_bare_digits_as_the_plan_says(bench):
    """Bare digits are E.164 under the default plan and a national
    number when the plan says unknown-digits national."""
    bench.core.known += ("111222333", "964111222333")
    send_message(bench, b"hi", uri=f"sip:111222333@{DOMAIN}")
    with bench.storage.transaction(user="test") as root:
        root.numbering.country_code = "964"
        root.numbering.unknown_digits = "national"
    send_message(bench, b"hi", uri=f"sip:111222333@{DOMAIN}")
    assert [s.recipient for s, _ in bench.core.submitted] == \
        ["111222333", "964111222333"]
