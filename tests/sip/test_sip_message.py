"""
Tests for L{appliance.sip.message}: parsing, serialization, responses.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.sip.message import (
    Headers, Request, Response, SIPParseError, make_error_response, make_response, parse,
)

UTF8_BODY = "مرحبا بالعالم 👋🏽 ✓".encode("utf-8")


def build(start: str = "MESSAGE sip:bob@example.com SIP/2.0", headers: list[str] | None = None,
          body: bytes = b"", length: int | None = None) -> bytes:
    """
    Build raw message bytes from a start line, header lines and a body.
    """
    if headers is None:
        headers = [
            "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
            'From: "Alice" <sip:alice@example.com>;tag=1928301774',
            "To: <sip:bob@example.com>",
            "Call-ID: a84b4c76e66710@pc33.example.com",
            "CSeq: 314159 MESSAGE",
            "Content-Type: text/plain;charset=UTF-8",
        ]
    if length is None:
        length = len(body)
    lines = [start, *headers, f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


GOOD = build(body=UTF8_BODY)


def test_utf8_body_byte_exact() -> None:
    """
    An Arabic + emoji body with Content-Length counted in bytes parses
    byte-exact and serializes with the same byte count.
    """
    assert len(UTF8_BODY) != len(UTF8_BODY.decode("utf-8"))
    msg = parse(GOOD)
    assert isinstance(msg, Request)
    assert msg.body == UTF8_BODY
    wire = msg.to_bytes()
    assert f"Content-Length: {len(UTF8_BODY)}\r\n".encode() in wire
    assert wire.endswith(b"\r\n\r\n" + UTF8_BODY)


def test_request_fields() -> None:
    """
    Method, Request-URI, Via, From, To, Call-ID and CSeq read back parsed.
    """
    msg = parse(GOOD)
    assert msg.method == "MESSAGE"
    assert msg.uri.user == "bob" and msg.uri.host == "example.com"
    via = msg.top_via()
    assert (via.transport, via.host, via.port, via.branch) == ("UDP", "192.0.2.1", 5060, "z9hG4bK776asdhds")
    assert via.has_rport and via.rport is None
    assert msg.from_address().display_name == "Alice"
    assert msg.from_address().tag == "1928301774"
    assert msg.to_address().tag is None
    assert msg.call_id == "a84b4c76e66710@pc33.example.com"
    assert (msg.cseq().number, msg.cseq().method) == (314159, "MESSAGE")


def test_compact_forms_folding_lists_and_unknown_headers() -> None:
    """
    Compact names are expanded, folded lines joined, Via lists split across
    values and lines, and unknown headers kept in order with their spelling.
    """
    raw = build(start="REGISTER sip:example.com SIP/2.0", headers=[
        "v: SIP/2.0/TCP [2001:db8::9]:5061;branch=z9hG4bKa, SIP/2.0/UDP proxy.example.com;branch=z9hG4bKb",
        "V: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc",
        'f: "Bob \\"the\\" Builder, Jr" <sip:bob@example.com>;tag=x',
        "t: sip:bob@example.com",
        "i: reg-1",
        "X-Custom-One: first",
        "CSeq: 2",
        "  REGISTER",
        "m: <sip:bob@198.51.100.7:40000;transport=tcp>;expires=3600;+sip.instance=\"<urn:uuid:0001>\";reg-id=1,"
        " <sip:bob@[::1]>;q=0.5",
        "x-custom-two: second",
        "k: path, outbound",
    ])
    msg = parse(raw)
    assert [v.branch for v in msg.vias()] == ["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]
    assert msg.vias()[0].host == "[2001:db8::9]" and msg.vias()[0].sent_by == ("2001:db8::9", 5061)
    assert msg.from_address().display_name == 'Bob "the" Builder, Jr'
    assert msg.cseq().method == "REGISTER"
    first, second = msg.contacts()
    assert (first.expires, first.instance, first.reg_id) == (3600, "<urn:uuid:0001>", 1)
    assert first.uri.param("transport") == "tcp" and first.uri.port == 40000
    assert second.uri.host == "[::1]" and second.param("q") == "0.5"
    assert msg.headers.get_all("supported") == ["path", "outbound"]
    names = [name for name, _ in msg.headers]
    assert names.index("X-Custom-One") < names.index("x-custom-two")
    wire = msg.to_bytes().decode()
    assert "Call-ID: reg-1\r\n" in wire and "Contact: <sip:" in wire and "CSeq: 2 REGISTER\r\n" in wire


def test_response_parse() -> None:
    """
    A status line parses into a Response with code and reason phrase.
    """
    raw = build(start="SIP/2.0 486 Busy Here")
    msg = parse(raw)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (486, "Busy Here")


def test_udp_body_truncated_to_content_length() -> None:
    """
    On UDP a body longer than Content-Length is truncated (RFC 3261 18.3).
    """
    msg = parse(build(body=b"hello world", length=5))
    assert msg.body == b"hello"


def test_stream_body_must_match() -> None:
    """
    From a stream, extra bytes after Content-Length are an error.
    """
    with pytest.raises(SIPParseError):
        parse(build(body=b"hello world", length=5), stream=True)


def test_no_content_length_on_udp_takes_rest() -> None:
    """
    Without Content-Length, a UDP body extends to the end of the datagram.
    """
    raw = GOOD.replace(f"Content-Length: {len(UTF8_BODY)}\r\n".encode(), b"")
    assert parse(raw).body == UTF8_BODY


def test_leading_crlf_ignored() -> None:
    """
    CRLFs before the start line are skipped (RFC 3261 7.5).
    """
    assert parse(b"\r\n\r\n" + GOOD).body == UTF8_BODY


MALFORMED = [
    ("short body", build(body=b"abc", length=10), "body shorter"),
    ("no header end", GOOD.split(b"\r\n\r\n")[0], "no end of headers"),
    ("bad start line", build(start="MESSAGE sip:bob@example.com"), "bad start line"),
    ("bad version", build(start="MESSAGE sip:bob@example.com SIP/3.0"), "version"),
    ("bad uri", build(start="MESSAGE http://x SIP/2.0"), "Request-URI"),
    ("bad status", build(start="SIP/2.0 99 Odd"), "status"),
    ("missing call-id", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "To: <sip:b@h>",
        "CSeq: 1 MESSAGE"]), "Call-ID"),
    ("bad cseq", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "To: <sip:b@h>",
        "Call-ID: c", "CSeq: one MESSAGE"]), "CSeq"),
    ("cseq method mismatch", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "To: <sip:b@h>",
        "Call-ID: c", "CSeq: 1 INVITE"]), "CSeq method"),
    ("bad content-length", build(length=-1), "Content-Length"),
    ("bad header line", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "To: <sip:b@h>",
        "Call-ID: c", "CSeq: 1 MESSAGE", "no colon here"]), "bad header line"),
    ("unterminated display name", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", 'From: "Alice <sip:a@h>;tag=1', "To: <sip:b@h>",
        "Call-ID: c", "CSeq: 1 MESSAGE"]), "display name"),
    ("bad via", build(headers=[
        "Via: SIP/2.0 h", "From: <sip:a@h>;tag=1", "To: <sip:b@h>",
        "Call-ID: c", "CSeq: 1 MESSAGE"]), "Via"),
    ("nul in header", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "To: <sip:b@h>",
        "Call-ID: c\x00d", "CSeq: 1 MESSAGE"]), "control character"),
    ("headers too large", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "To: <sip:b@h>",
        "Call-ID: c", "CSeq: 1 MESSAGE", "X-Big: " + "a" * 70000]), "too large"),
    ("latin-1 in header", build().replace(b"Alice", b"Al\xe9ce"), "UTF-8"),
    ("two From", build(headers=[
        "Via: SIP/2.0/UDP h;branch=z9hG4bK1", "From: <sip:a@h>;tag=1", "From: <sip:c@h>",
        "To: <sip:b@h>", "Call-ID: c", "CSeq: 1 MESSAGE"]), "more than one From"),
]


@pytest.mark.parametrize("name,raw,reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed(name: str, raw: bytes, reason: str) -> None:
    """
    Each malformed message raises SIPParseError naming the problem.
    """
    with pytest.raises(SIPParseError) as info:
        parse(raw)
    assert reason in info.value.reason


def test_partial_allows_400_with_warning() -> None:
    """
    A request with a bad Content-Length still yields a 400 copying Via,
    From, To, Call-ID and CSeq, with a 399 Warning carrying the reason.
    """
    with pytest.raises(SIPParseError) as info:
        parse(build(body=b"abc", length=10))
    response = make_error_response(info.value, "sip.example.net")
    assert response is not None and response.status == 400
    wire = parse(response.to_bytes())
    assert wire.call_id == "a84b4c76e66710@pc33.example.com"
    assert wire.top_via().branch == "z9hG4bK776asdhds"
    assert wire.headers.get("warning") == '399 sip.example.net "body shorter than Content-Length"'


def test_partial_without_enough_is_not_answered() -> None:
    """
    A broken start line, a response or an ACK cannot be answered.
    """
    for raw in (b"garbage\r\n\r\n", build(start="SIP/2.0 200 OK", length=-1),
                build(start="ACK sip:b@h SIP/2.0", length=-1)):
        with pytest.raises(SIPParseError) as info:
            parse(raw)
        assert make_error_response(info.value, "h") is None


def test_make_response_copies_and_tags() -> None:
    """
    make_response copies Via (all, in order), From, To, Call-ID, CSeq, adds
    the To tag, and has an empty body with Content-Length 0.
    """
    raw = build(headers=[
        "Via: SIP/2.0/UDP a;branch=z9hG4bK1", "Via: SIP/2.0/UDP b;branch=z9hG4bK2",
        "From: <sip:a@h>;tag=1", "To: <sip:b@h>", "Call-ID: c", "CSeq: 7 MESSAGE",
        "Subject: not copied"], body=b"x")
    response = make_response(parse(raw), 202, to_tag="srv")
    out = parse(response.to_bytes())
    assert [v.host for v in out.vias()] == ["a", "b"]
    assert out.to_address().tag == "srv" and out.from_address().tag == "1"
    assert (out.status, out.reason, out.body) == (202, "Accepted", b"")
    assert "subject" not in out.headers
    assert make_response(parse(raw), 100, to_tag="srv").to_address().tag is None


def test_make_response_rejects_bad_status() -> None:
    """
    A status outside 100-699 is refused with ValueError.
    """
    with pytest.raises(ValueError):
        make_response(parse(GOOD), 99)


def test_set_top_via_keeps_position_and_others() -> None:
    """
    Rewriting the top Via keeps the remaining Vias and the header order.
    """
    msg = parse(build(headers=[
        "Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2",
        "From: <sip:a@h>;tag=1", "To: <sip:b@h>", "Call-ID: c", "CSeq: 7 MESSAGE"]))
    msg.set_top_via(msg.top_via().with_param("received", "192.0.2.9"))
    assert [v.received for v in msg.vias()] == ["192.0.2.9", None]
    assert [n for n, _ in msg.headers][0] == "Via"


def test_headers_set_and_remove() -> None:
    """
    Headers.set replaces every line of a name at the first position;
    remove deletes them; lookups ignore case and compact forms.
    """
    h = Headers([("Expires", "1"), ("X-A", "a"), ("expires", "2")])
    h.set("EXPIRES", "3")
    assert list(h) == [("Expires", "3"), ("X-A", "a")]
    h.remove("x-a")
    assert "X-A" not in h and len(h) == 1
    h.add("l", "0")
    assert h.get("Content-Length") == "0"


def test_roundtrip_table() -> None:
    """
    parse -> to_bytes -> parse gives the same message for each good sample.
    """
    samples = [GOOD, build(start="SIP/2.0 200 OK"), build(start="OPTIONS sip:h SIP/2.0",
               headers=["Via: SIP/2.0/TLS h:5061;branch=z9hG4bKz", "From: sip:a@h;tag=9",
                        "To: tel:+447900123456", "Call-ID: q", "CSeq: 3 OPTIONS"])]
    for raw in samples:
        first = parse(raw)
        second = parse(first.to_bytes())
        assert first.to_bytes() == second.to_bytes()
        assert list(first.headers) == list(second.headers) and first.body == second.body


_TOKENS = st.sampled_from([
    b"\r\n", b"\r\n\r\n", b":", b";", b",", b"<", b">", b'"', b"\\", b" ", b"\t", b"\x00",
    b"@", b"sip:", b"SIP/2.0", b"Content-Length: ", b"l: 99", b"9999999999", b"\xff\xfe",
    "é👋".encode(), b"Via: ", b"z9hG4bK", b"[", b"]", b"=", b"CSeq: 1", b"-1",
])


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_fuzz_random_bytes(data: bytes) -> None:
    """
    Random bytes either parse or raise SIPParseError, never anything else.
    """
    try:
        parse(data)
    except SIPParseError:
        pass


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_messages(data: st.DataObject) -> None:
    """
    Valid messages with bytes deleted, replaced or inserted either parse
    (and then serialize and re-parse) or raise SIPParseError, and a 400
    built from the error is itself parseable.
    """
    raw = bytearray(data.draw(st.sampled_from([GOOD, build(start="SIP/2.0 180 Ringing"),
                                               build(start="REGISTER sip:h SIP/2.0", length=0)])))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        token = data.draw(_TOKENS)
        if action == "delete":
            del raw[pos:pos + len(token)]
        elif action == "insert":
            raw[pos:pos] = token
        else:
            raw[pos:pos + len(token)] = token
    try:
        msg = parse(bytes(raw))
    except SIPParseError as e:
        response = make_error_response(e, "h")
        if response is not None:
            parse(response.to_bytes())
        return
    assert parse(msg.to_bytes()).body == msg.body
