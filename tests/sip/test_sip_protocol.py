"""
Tests for L{appliance.sip.protocol}: UDP and stream adapters.
"""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from zope.interface.verify import verifyObject

from appliance.sip.interfaces import ISIPTransport
from appliance.sip.message import Request, parse
from appliance.sip.protocol import SIPDatagramProtocol, SIPStreamProtocol
from appliance.sip.transaction import TimerSettings, TransactionLayer

try:
    from tests.sip.test_sip_transaction import RecordingUser
except ImportError:  # rootdir-relative import mode
    from test_sip_transaction import RecordingUser  # type: ignore[no-redef]

BODY = "رسالة 😀".encode()


def msg(method: str = "MESSAGE", via: str = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp;rport",
        body: bytes = BODY, length: int | None = None) -> bytes:
    """
    Raw request bytes.
    """
    n = len(body) if length is None else length
    return (f"{method} sip:bob@example.com SIP/2.0\r\nVia: {via}\r\n"
            "From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
            f"Call-ID: c1\r\nCSeq: 1 {method}\r\nContent-Length: {n}\r\n\r\n").encode() + body


class FakeDatagramTransport:
    """
    Records datagrams written; C{getHost} answers our bound address.
    """

    def __init__(self) -> None:
        self.written: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.written.append((data, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "192.0.2.10", 5060)


class Receiver:
    """
    Collects what the protocols deliver; may raise.
    """

    def __init__(self, explode: bool = False) -> None:
        self.got: list[tuple[object, object, tuple[str, int]]] = []
        self.explode = explode

    def receive(self, message, transport, source) -> None:
        self.got.append((message, transport, source))
        if self.explode:
            raise RuntimeError("boom")


def udp(receiver=None):
    """
    A UDP protocol on a fake datagram transport.
    """
    proto = SIPDatagramProtocol(receiver or Receiver())
    proto.makeConnection(FakeDatagramTransport())
    return proto


def test_protocols_provide_transport_interface() -> None:
    """
    Both protocols provide ISIPTransport.
    """
    assert verifyObject(ISIPTransport, udp())
    stream = SIPStreamProtocol(Receiver())
    stream.makeConnection(StringTransport())
    assert verifyObject(ISIPTransport, stream)


def test_udp_stamps_received_and_rport() -> None:
    """
    A request's top Via gets received and rport from the source (RFC 3581),
    and the UTF-8 body arrives byte-exact.
    """
    receiver = Receiver()
    proto = udp(receiver)
    proto.datagramReceived(msg(), ("203.0.113.7", 40000))
    (message, transport, source), = receiver.got
    assert isinstance(message, Request) and transport is proto and source == ("203.0.113.7", 40000)
    via = message.top_via()
    assert (via.received, via.rport) == ("203.0.113.7", 40000)
    assert message.body == BODY


def test_udp_received_without_rport_only_when_host_differs() -> None:
    """
    Without rport, received is added only when sent-by differs from the source.
    """
    receiver = Receiver()
    proto = udp(receiver)
    proto.datagramReceived(msg(via="SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKp"), ("10.0.0.1", 5060))
    proto.datagramReceived(msg(via="SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKq"), ("10.0.0.2", 5060))
    assert [m.top_via().received for m, _, _ in receiver.got] == [None, "10.0.0.2"]
    assert [m.top_via().has_rport for m, _, _ in receiver.got] == [False, False]


def test_udp_malformed_request_gets_400_with_warning() -> None:
    """
    A request with a short body is answered 400 with a Warning, sent back
    to the source, and not delivered.
    """
    receiver = Receiver()
    proto = udp(receiver)
    with capturedLogs() as events:
        proto.datagramReceived(msg(length=999), ("203.0.113.7", 40000))
    assert receiver.got == []
    assert [e["source"] for e in events if "reason" in e] == [("203.0.113.7", 40000)]
    (data, addr), = proto.transport.written
    assert addr == ("203.0.113.7", 40000)
    response = parse(data)
    assert response.status == 400
    assert response.headers.get("warning") == '399 192.0.2.10 "body shorter than Content-Length"'


def test_udp_unanswerable_dropped_and_logged() -> None:
    """
    Garbage and an unanswerable ACK are dropped without an answer (and
    logged); keep-alive padding is ignored silently.
    """
    proto = udp()
    with capturedLogs() as events:
        for data in (b"\x00\xff garbage", b"\r\n\r\n", b"", msg(method="ACK", length=999)):
            proto.datagramReceived(data, ("203.0.113.7", 40000))
    assert proto.transport.written == []
    assert [e["action"] for e in events if "action" in e] == ["dropped", "dropped"]


def test_udp_receiver_exception_does_not_escape() -> None:
    """
    An exception in the receiver is logged, not raised to the reactor.
    """
    proto = udp(Receiver(explode=True))
    with capturedLogs() as events:
        proto.datagramReceived(msg(), ("203.0.113.7", 40000))
    assert any("log_failure" in e for e in events)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_udp_survives_anything(data: bytes) -> None:
    """
    No datagram makes datagramReceived raise, and none makes the protocol
    log an error or a failure (the catch-all that keeps the listener up
    would otherwise hide a bug): malformed input is a warning at most.
    """
    with capturedLogs() as events:
        udp().datagramReceived(msg()[:40] + data, ("203.0.113.7", 40000))
    assert_no_errors(events)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 300), st.binary(max_size=200),
       st.sampled_from(["MESSAGE", "REGISTER", "OPTIONS", "ACK", "INVITE", "CANCEL"]))
def test_udp_and_transaction_layer_survive_anything(cut: int, data: bytes,
                                                    method: str) -> None:
    """
    Bytes spliced anywhere into a request, through the UDP adapter and a
    real transaction layer, log no error or failure.
    """
    layer = TransactionLayer(RecordingUser(answer=202), Clock(), TimerSettings())
    proto = SIPDatagramProtocol(layer)
    proto.makeConnection(FakeDatagramTransport())
    request = msg(method=method)
    with capturedLogs() as events:
        proto.datagramReceived(request[:cut] + data + request[cut:], ("203.0.113.7", 40000))
    assert_no_errors(events)


def assert_no_errors(events: list[dict]) -> None:
    """Fail on any captured event of level error or critical (failures included)."""
    bad = [formatEvent(e) + (e["log_failure"].getTraceback() if "log_failure" in e else "")
           for e in events if e.get("log_level") in (LogLevel.error, LogLevel.critical)]
    assert bad == []


def stream(receiver=None, name: str = "TCP"):
    """
    A stream protocol on a StringTransport with peer and host addresses.
    """
    proto = SIPStreamProtocol(receiver or Receiver(), name=name)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.4", 50000),
                                hostAddress=IPv4Address("TCP", "192.0.2.10", 5060))
    proto.makeConnection(transport)
    return proto, transport


def test_stream_frames_keepalive_and_messages() -> None:
    """
    Messages split across reads are delivered whole; CRLFCRLF is answered
    with one CRLF.
    """
    receiver = Receiver()
    proto, transport = stream(receiver)
    data = b"\r\n\r\n" + msg(via="SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKp") * 2
    for i in range(0, len(data), 7):
        proto.dataReceived(data[i:i + 7])
    assert transport.value() == b"\r\n"
    assert len(receiver.got) == 2 and all(m.body == BODY for m, _, _ in receiver.got)
    assert receiver.got[0][2] == ("198.51.100.4", 50000)
    assert receiver.got[0][0].top_via().received == "198.51.100.4"


def test_stream_malformed_answered_on_connection() -> None:
    """
    A malformed request on a stream gets its 400 on the same connection,
    which stays open.
    """
    proto, transport = stream()
    bad = msg(via="SIP/2.0/TCP 10.0.0.1;branch=z9hG4bKp").replace(b"CSeq: 1 MESSAGE", b"CSeq: 1 INVITE")
    proto.dataReceived(bad)
    assert parse(transport.value()).status == 400 and not transport.disconnecting


def test_stream_flood_closes_connection() -> None:
    """
    A peer sending headers past the limit without an end is disconnected.
    """
    lost = []
    proto, transport = stream()
    proto.on_lost = lost.append
    proto.dataReceived(b"A" * 70000)
    assert transport.disconnecting
    proto.connectionLost(None)
    assert lost == [proto] and not proto.connected


def test_udp_through_transaction_layer_absorbs_retransmission() -> None:
    """
    End to end over the UDP adapter and a real TransactionLayer: the TU sees
    one MESSAGE, and the retransmission is answered with the same 202 sent
    to the rport address.
    """
    clock = Clock()
    user = RecordingUser(answer=202)
    layer = TransactionLayer(user, clock, TimerSettings())
    proto = udp(layer)
    proto.datagramReceived(msg(), ("203.0.113.7", 40000))
    proto.datagramReceived(msg(), ("203.0.113.7", 40000))
    assert len(user.requests) == 1
    assert [parse(d).status for d, _ in proto.transport.written] == [202, 202]
    assert {a for _, a in proto.transport.written} == {("203.0.113.7", 40000)}
    clock.advance(32)
    assert layer.transactions() == [] and clock.getDelayedCalls() == []
