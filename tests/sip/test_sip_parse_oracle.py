"""
The fast SIP parse against the parser it replaced (L{reference_parser}):
on valid, mutated and random messages they agree on everything read, and
they refuse the same messages for the same reason, except that the fast
parse leaves the Via values below the top one to be parsed when asked for.
"""
from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from appliance.sip.headers import HeaderError, Via, split_list
from appliance.sip.message import Request, SIPParseError, parse
from appliance.sip.uri import URIError, _split_outside_quotes

try:
    from tests.sip.reference_parser import (
        reference_parse, reference_split_list, reference_split_outside_quotes)
    from tests.sip.test_sip_message import GOOD, _TOKENS, build
except ImportError:  # rootdir-relative import mode
    from reference_parser import (  # type: ignore[no-redef]
        reference_parse, reference_split_list, reference_split_outside_quotes)
    from test_sip_message import GOOD, _TOKENS, build  # type: ignore[no-redef]

SEEDS = [
    GOOD,
    build(start="SIP/2.0 180 Ringing"),
    build(start="REGISTER sip:h SIP/2.0", length=0, headers=[
        "v: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK-1;rport",
        "Via: SIP/2.0/TCP [2001:db8::1]:5060;branch=z9hG4bK-2, SIP/2.0/UDP h",
        'f: "Bob \\"B\\"" <sip:bob@h>;tag=9', "t: sip:bob@h", "i: reg-1",
        "CSeq: 2 REGISTER", "Contact: <sip:bob@10.0.0.1:5070>;expires=60, *",
        'Authorization: Digest username="bob", realm="h", nonce="n"',
        "Expires: 3600"]),
]


def outcome(fn, data: bytes):  # type: ignore[no-untyped-def]
    try:
        return fn(data), None
    except SIPParseError as e:
        return None, e


def lower_via_error(headers) -> str | None:  # type: ignore[no-untyped-def]
    """What is wrong with the Vias below the top one, if anything."""
    try:
        vias = headers.get_all("via")
    except HeaderError as e:
        return str(e)
    for value in vias[1:]:
        try:
            Via.parse(value)
        except (HeaderError, URIError) as e:
            return str(e)
    return None


def agree(data: bytes) -> None:
    for stream in (False, True):
        new, new_error = outcome(lambda d: parse(d, stream=stream), data)
        old, old_error = outcome(lambda d: reference_parse(d, stream=stream), data)
        if old is not None:
            assert new is not None, (data, new_error)
            assert type(new) is type(old)
            if isinstance(old, Request):
                assert (new.method, new.uri) == (old.method, old.uri)
            else:
                assert (new.status, new.reason) == (old.status, old.reason)
            assert list(new.headers) == list(old.headers)
            assert new.body == old.body
            assert new.to_bytes() == old.to_bytes()
            assert new.top_via() == old.top_via()
            assert new.from_address() == old.from_address()
            assert new.to_address() == old.to_address()
            assert new.cseq() == old.cseq()
        elif new is None:
            if new_error.reason != old_error.reason:
                # the old parse stopped at a lower Via, the new one reads on
                assert lower_via_error(new_error.partial.headers) == old_error.reason, data
        else:
            # Only a Via below the top one may be what the old parse refused.
            vias = [v for n, v in new.headers if n == "Via"]
            assert len(vias) > 1 or "," in vias[0], (data, old_error.reason)
            try:
                new.vias()
            except (HeaderError, URIError):
                pass
            else:
                raise AssertionError(f"all Vias parse, yet refused: {old_error.reason}")


def test_seeds_agree() -> None:
    """The seed messages parse the same way with both parsers."""
    for seed in SEEDS:
        agree(seed)
        assert parse(seed) is not None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_messages_agree(data: st.DataObject) -> None:
    """Seed messages with tokens deleted, inserted or replaced: both parsers
    accept them alike or refuse them for the same reason."""
    raw = bytearray(data.draw(st.sampled_from(SEEDS)))
    for _ in range(data.draw(st.integers(1, 5))):
        pos = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        token = data.draw(st.one_of(_TOKENS, st.sampled_from([b"\n", b"\r", b" ", b"\t",
                                                     b"Via: SIP/2.0/UDP x, y"])))
        if action == "delete":
            del raw[pos:pos + len(token)]
        elif action == "insert":
            raw[pos:pos] = token
        else:
            raw[pos:pos + len(token)] = token
    agree(bytes(raw))


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_agree(data: bytes) -> None:
    """Random bytes: both parsers refuse them for the same reason (or agree)."""
    agree(data)


_TEXT = st.text(alphabet=st.sampled_from(list('ab ,;"\\<>=\t')), max_size=40)


@settings(max_examples=1500, deadline=None)
@given(_TEXT)
def test_splitters_agree(text: str) -> None:
    """The comma and semicolon splitters give what the character loops gave,
    or fail alike."""
    for new, old, error, args in (
            (split_list, reference_split_list, HeaderError, ()),
            (_split_outside_quotes, reference_split_outside_quotes, URIError, (";",))):
        try:
            expected = old(text, *args)
        except error:
            try:
                new(text, *args)
            except error:
                continue
            raise AssertionError(f"{new.__name__} accepted {text!r}")
        assert new(text, *args) == expected


_VIA_TEXT = st.lists(st.sampled_from([
    "SIP/2.0/", "UDP", "tcp", " ", "  ", "h", "10.0.0.1", "[::1]", ":", "5060", "99999",
    ";", "branch=z9hG4bK1", "rport", "rport=5", "rport=x", "=", '"q"', "received=1.2.3.4",
    ",", "-", ".", "\t"]), max_size=12).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_VIA_TEXT)
@example("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport")
@example("SIP/2.0/tcp h;rport=x")
@example("SIP/2.0/UDP h:99999")
@example("SIP/2.0/UDP h;branch=")
@example("SIP/2.0/UDP h;received=1.2.3.4;rport=5;x=y=z")
def test_via_fast_path_agrees(text: str) -> None:
    """The fast Via reader gives what the general one gives, or both refuse."""
    try:
        expected = Via._parse_general(text)
    except (HeaderError, URIError):
        expected = None
    try:
        got = Via.parse(text)
    except (HeaderError, URIError):
        got = None
    assert got == expected, text


@settings(max_examples=1000, deadline=None)
@given(_VIA_TEXT, st.sampled_from([None, 5060, 1]))
def test_via_stamped_sets_received_and_rport(text: str, rport) -> None:  # type: ignore[no-untyped-def]
    """Via.stamped gives what setting received, then rport, one at a time
    gave (the first parameter of each name replaced, else appended)."""
    try:
        via = Via.parse(text)
    except (HeaderError, URIError):
        return
    expected = via.with_param("received", "192.0.2.9")
    if rport is not None:
        expected = expected.with_param("rport", str(rport))
    assert via.stamped("192.0.2.9", rport) == expected
