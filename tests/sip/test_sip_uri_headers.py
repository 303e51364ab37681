"""
Tests for L{appliance.sip.uri} and L{appliance.sip.headers}.
"""
from __future__ import annotations

import pytest

from appliance.sip.headers import Address, CSeq, HeaderError, Via, canonical_name, header_key, split_list
from appliance.sip.uri import URI, URIError

GOOD_URIS = [
    ("sip:alice@example.com", ("sip", "alice", None, "example.com", None)),
    ("sips:alice:secret@example.com:5061;transport=tls?subject=hi&priority=urgent",
     ("sips", "alice", "secret", "example.com", 5061)),
    ("sip:[2001:db8::1]:5070;lr", ("sip", None, None, "[2001:db8::1]", 5070)),
    ("sip:+447900123456@10.0.0.5;user=phone", ("sip", "+447900123456", None, "10.0.0.5", None)),
    ("SIP:bob@EXAMPLE.com", ("sip", "bob", None, "EXAMPLE.com", None)),
    ("tel:+447900123456;phone-context=example.com", ("tel", "+447900123456", None, "", None)),
]


@pytest.mark.parametrize("text,fields", GOOD_URIS)
def test_uri_parse(text: str, fields: tuple) -> None:
    """
    sip, sips and tel URIs parse into scheme, user, password, host, port.
    """
    uri = URI.parse(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == fields
    assert URI.parse(str(uri)) == uri


def test_uri_params_and_headers() -> None:
    """
    URI parameters are looked up case-insensitively, flags read as "", and
    URI headers keep their order.
    """
    uri = URI.parse("sips:alice@example.com;Transport=TLS;lr?subject=hi&priority=urgent")
    assert uri.param("transport") == "TLS" and uri.param("lr") == "" and uri.param("x") is None
    assert uri.headers == (("subject", "hi"), ("priority", "urgent"))
    assert uri.with_params(lr=None, ob=None).param("ob") == ""
    assert URI.parse("sip:[::1]:5060").host_port == ("::1", 5060)


BAD_URIS = ["http://example.com", "sip:", "sip:alice@", "sip:a@b@c", "sip:host:99999",
            "sip:host:5x", "sip:[::1", "sip:[zz]", "sip:ho st", "tel:", "tel:abc!",
            "sip:a@h;=x", "sip:a@h;p=\"x", "sip:a@h?novalue", "sip:a@h:٥٠٦٠", "nocolon"]


@pytest.mark.parametrize("text", BAD_URIS)
def test_uri_bad(text: str) -> None:
    """
    Malformed URIs raise URIError (a ValueError), nothing else.
    """
    with pytest.raises(URIError):
        URI.parse(text)


def test_header_names() -> None:
    """
    Compact forms expand and known names get their canonical spelling;
    unknown names keep theirs.
    """
    assert header_key("i") == "call-id" and canonical_name("i") == "Call-ID"
    assert canonical_name("www-authenticate") == "WWW-Authenticate"
    assert canonical_name("cseq") == "CSeq" and canonical_name("X-Odd-Thing") == "X-Odd-Thing"
    assert [canonical_name(c) for c in "mvftlcekosu"] == [
        "Contact", "Via", "From", "To", "Content-Length", "Content-Type", "Content-Encoding",
        "Supported", "Event", "Subject", "Allow-Events"]


def test_split_list_respects_quotes_and_brackets() -> None:
    """
    Commas inside quotes or angle brackets do not split a list.
    """
    value = '"Doe, J" <sip:j@h;x=a,b>;q=1, <sip:k@h>'
    assert split_list(value) == ['"Doe, J" <sip:j@h;x=a,b>;q=1', "<sip:k@h>"]
    with pytest.raises(HeaderError):
        split_list('"open, <sip:a@b>')


def test_address_forms() -> None:
    """
    name-addr with quoted or token display names and bare addr-spec parse;
    addr-spec parameters belong to the header, not the URI.
    """
    a = Address.parse('"Ali \\"A\\" \\\\ B" <sip:ali@h;transport=tcp>;tag=9;expires=60')
    assert a.display_name == 'Ali "A" \\ B' and a.tag == "9" and a.expires == 60
    assert a.uri.param("transport") == "tcp"
    assert Address.parse(str(a)) == a
    b = Address.parse("Bob Smith <sip:bob@h>")
    assert b.display_name == "Bob Smith" and b.tag is None
    c = Address.parse("sip:carol@h;tag=7")
    assert c.tag == "7" and c.uri.params == ()
    d = Address.parse('<sip:d@h>;+sip.instance="<urn:uuid:1-2>";reg-id=2')
    assert (d.instance, d.reg_id) == ("<urn:uuid:1-2>", 2)
    assert str(c.with_param("tag", "8")) == "<sip:carol@h>;tag=8"


@pytest.mark.parametrize("text", ['"x <sip:a@h>', '"x" sip:a@h', "<sip:a@h", "<sip:a@h> junk",
                                  "<http://a>", "<sip:a@h>;tag"])
def test_address_bad(text: str) -> None:
    """
    Malformed addresses raise HeaderError; a flag-only tag parses but reads as no tag.
    """
    if text == "<sip:a@h>;tag":
        assert Address.parse(text).tag is None
        return
    with pytest.raises(HeaderError):
        Address.parse(text)


def test_address_bad_numbers() -> None:
    """
    A non-numeric expires or reg-id raises HeaderError when read.
    """
    with pytest.raises(HeaderError):
        Address.parse("<sip:a@h>;expires=soon").expires
    with pytest.raises(HeaderError):
        Address.parse("<sip:a@h>;reg-id=x").reg_id


def test_via() -> None:
    """
    Via parses transport, host, port and parameters (branch, received,
    rport with and without value) and writes back.
    """
    v = Via.parse("SIP / 2.0 / udp 192.0.2.1:5060 ;branch=z9hG4bKx;received=10.1.1.1;rport=4000")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "192.0.2.1", 5060)
    assert (v.branch, v.received, v.rport, v.has_rport) == ("z9hG4bKx", "10.1.1.1", 4000, True)
    assert Via.parse(str(v)) == v
    w = Via.parse("SIP/2.0/TLS [2001:db8::1];branch=z9hG4bKy;rport")
    assert w.sent_by == ("2001:db8::1", 5061) and w.rport is None and w.has_rport
    assert Via.parse("SIP/2.0/UDP h").sent_by == ("h", 5060)
    assert w.with_param("rport", "5").rport == 5


@pytest.mark.parametrize("text", ["SIP/2.0 h", "SIP/2.0/UDP", "SIP/2.0/UDP h:x", "SIP/2.0/UDP h;rport=99999",
                                  "SIP/2.0/UDP h;branch", "SIP/2.0/UDP h;;"])
def test_via_bad(text: str) -> None:
    """
    Malformed Via values raise HeaderError (a flag-only branch reads as none).
    """
    if text == "SIP/2.0/UDP h;branch":
        assert Via.parse(text).branch is None
        return
    with pytest.raises(HeaderError):
        Via.parse(text)


def test_cseq() -> None:
    """
    CSeq parses number and method; a number of 2**31 or more is refused.
    """
    assert CSeq.parse(" 42  MESSAGE ") == CSeq(42, "MESSAGE")
    assert str(CSeq(1, "REGISTER")) == "1 REGISTER"
    for bad in ("2147483648 MESSAGE", "MESSAGE", "1", "-1 MESSAGE", "١ MESSAGE"):
        with pytest.raises(HeaderError):
            CSeq.parse(bad)
