"""Tests for the pure request handling (L{appliance.http.params})."""
import pytest

from appliance.http.params import (
    APIError, json_args, kannel_dlr_url, parse_send, split_recipients)


def send(**params):
    return parse_send({k.replace("_", "-"): v if isinstance(v, list)
                       else [v] for k, v in params.items()}, 5, 86400)


def test_minimal_request():
    """from, to and body make a request; the text's alphabet and parts are
    chosen (GSM 7 here, one part)."""
    r = send(**{"from": "123456789"}, to="351912345678", body="hello")
    assert r.recipients == ("351912345678",)
    assert (r.encoding, r.parts, r.dlr_level) == ("gsm7", 1, "final")


def test_recipients_comma_and_repeated():
    """to may be comma-separated or repeated; duplicates are dropped; more
    than 100 is a 400 naming to."""
    r = send(**{"from": "1"}, to=["351911,44771", "351911", "49"],
             body="x")
    assert r.recipients == ("351911", "44771", "49")
    with pytest.raises(APIError) as e:
        split_recipients([",".join(str(i) for i in range(101))])
    assert e.value.status == 400 and e.value.param == "to"


@pytest.mark.parametrize("params,param,status", [
    ({"to": "1", "body": "x"}, "from", 400),
    ({"from": "1", "body": "x"}, "to", 400),
    ({"from": "1", "to": "2"}, "body", 400),
    ({"from": "1", "to": "2", "body": "x", "coding": "latin"}, "coding", 400),
    ({"from": "1", "to": "2", "body": "€uro ☃", "coding": "gsm7"}, "body",
     400),
    ({"from": "1", "to": "2", "body": "x", "validity": "5"}, "validity", 400),
    ({"from": "1", "to": "2", "body": "x", "dlr-url": "ftp://x"}, "dlr-url",
     400),
    ({"from": "1", "to": "2", "body": "x", "dlr-level": "some"}, "dlr-level",
     400),
    ({"from": "1", "to": "2", "body": "x", "bogus": "1"}, "bogus", 400),
    ({"from": "TooLongSenderName", "to": "2", "body": "x"}, "from", 400),
    ({"from": "1", "to": "2", "body": "x" * 1000}, "body", 413),
])
def test_invalid_parameters(params, param, status):
    """Each invalid parameter is refused with its status and names it."""
    with pytest.raises(APIError) as e:
        parse_send({k: [v] for k, v in params.items()}, 5, 86400)
    assert e.value.status == status
    assert e.value.param == param


def test_ucs2_parts():
    """Text outside GSM 7 goes as UCS-2: 70 characters per single
    message, 67 per part beyond."""
    assert send(**{"from": "1"}, to="2", body="ж" * 70).parts == 1
    r = send(**{"from": "1"}, to="2", body="ж" * 71)
    assert (r.encoding, r.parts) == ("ucs2", 2)


def test_json_body():
    """A JSON object's strings, numbers and lists become parameters; other
    shapes are a 400."""
    assert json_args(b'{"to": ["1", 2], "body": "x"}') == {
        "to": ["1", "2"], "body": ["x"]}
    for bad in (b"[1]", b"{", b'{"to": null}', b'{"to": {"a": 1}}',
                b"\xff"):
        with pytest.raises(APIError):
            json_args(bad)


def test_kannel_escapes():
    """Kannel's %d, %p, %P, %T and %% are replaced (URL-encoded); other
    escapes are kept as written."""
    url = kannel_dlr_url("http://h/d?t=%d&to=%p&from=%P&at=%T&x=%q&p=%%",
                         1, "+351 91", "ACME", 1800000000.7)
    assert url == ("http://h/d?t=1&to=%2B351%2091&from=ACME&at=1800000000"
                   "&x=%q&p=%")


def test_parts_at_the_single_message_edge():
    """160 septets are one GSM part (an extension character such as the
    euro sign counts two), 161 are two; a character outside GSM makes
    the body UCS-2 under auto and a 400 under gsm7."""
    from appliance.http.params import encode_body
    assert encode_body("a" * 160, "auto", 5) == ("gsm7", 1)
    assert encode_body("\u20ac" * 80, "auto", 5) == ("gsm7", 1)
    assert encode_body("\u20ac" * 80 + "a", "gsm7", 5) == ("gsm7", 2)
    assert encode_body("a" * 161, "auto", 5) == ("gsm7", 2)
    assert encode_body("\u0105", "auto", 5) == ("ucs2", 1)
    with pytest.raises(APIError) as e:
        encode_body("\u0105", "gsm7", 5)
    assert e.value.param == "body"
    assert encode_body("a", "ucs2", 5) == ("ucs2", 1)
