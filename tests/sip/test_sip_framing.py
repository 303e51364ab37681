"""
Tests for L{appliance.sip.framing.StreamFramer}.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.sip.framing import KEEPALIVE, FramingError, StreamFramer
from appliance.sip.message import parse


def message(body: bytes, compact: bool = False) -> bytes:
    """
    A complete MESSAGE request with the given body and a byte Content-Length.
    """
    length = "l" if compact else "Content-Length"
    return (
        "MESSAGE sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKq\r\n"
        "From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
        "Call-ID: c1\r\nCSeq: 1 MESSAGE\r\n"
        f"{length}: {len(body)}\r\n\r\n"
    ).encode() + body


ARABIC = message("سلام 🌍 عليكم".encode())


def test_utf8_body_framed_by_bytes() -> None:
    """
    A UTF-8 body is cut at Content-Length bytes, not characters, and the
    next message follows intact.
    """
    second = message(b"plain", compact=True)
    out = StreamFramer().feed(ARABIC + second)
    assert out == [ARABIC, second]
    assert parse(out[0], stream=True).body.decode() == "سلام 🌍 عليكم"


def test_keepalive_ping_and_pong() -> None:
    """
    CRLFCRLF is a keep-alive ping; a lone CRLF (pong) is skipped silently.
    """
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KEEPALIVE]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(ARABIC) == [ARABIC]
    assert framer.buffered == 0


def test_partial_message_waits() -> None:
    """
    Nothing comes out until the header end and the whole body are there.
    """
    framer = StreamFramer()
    assert framer.feed(ARABIC[:50]) == []
    assert framer.feed(ARABIC[50:-1]) == []
    assert framer.feed(ARABIC[-1:]) == [ARABIC]


def test_header_flood_is_an_error() -> None:
    """
    A peer sending more than the limit without a header end gets a
    FramingError, after which the framer ignores input.
    """
    framer = StreamFramer(max_header_bytes=1000)
    assert framer.feed(b"A" * 1000) == []
    out = framer.feed(b"A")
    assert len(out) == 1 and isinstance(out[0], FramingError)
    assert framer.feed(ARABIC) == [] and framer.buffered == 0


def test_bad_and_huge_content_length() -> None:
    """
    A non-numeric, conflicting or too large Content-Length cannot be framed.
    """
    for raw in (ARABIC.replace(b"Content-Length: ", b"Content-Length: x"),
                ARABIC.replace(b"Content-Length:", b"l: 3\r\nContent-Length:"),
                message(b"", compact=False).replace(b"Content-Length: 0", b"Content-Length: 99999999")):
        out = StreamFramer(max_body_bytes=1_000_000).feed(raw)
        assert len(out) == 1 and isinstance(out[0], FramingError), raw


def test_stray_cr_is_an_error() -> None:
    """
    A CR not followed by LF between messages is a framing error.
    """
    out = StreamFramer().feed(b"\rXYZW")
    assert isinstance(out[0], FramingError)


_ITEMS = st.lists(st.one_of(
    st.just(b"\r\n\r\n"),
    st.binary(max_size=40).map(message),
    st.text(max_size=20).map(lambda t: message(t.encode("utf-8"), compact=True)),
), max_size=6)


@settings(max_examples=1500, deadline=None)
@given(_ITEMS, st.data())
def test_any_chunking_gives_same_messages(items: list[bytes], data: st.DataObject) -> None:
    """
    Splitting the stream at arbitrary points yields the same messages and
    keep-alives as feeding it whole.
    """
    stream = b"".join(items)
    expected = [KEEPALIVE if i == b"\r\n\r\n" else i for i in items]
    assert StreamFramer().feed(stream) == expected
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    framer = StreamFramer()
    out = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        out += framer.feed(stream[prev:cut])
        prev = cut
    assert out == expected
