"""
Tests for MESSAGE to apps (the SIP delivery agent: forking, outcomes,
From of numbers and alphanumeric senders), TCP flows (reuse, loss), the
service's listeners, shell tables and statistics.
"""
from __future__ import annotations

from twisted.internet.address import IPv4Address
from zope.interface.verify import verifyObject

from appliance.messaging.vocabulary import MessageView
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.sip.delivery import from_header, message_id
from appliance.sip.message import Request, make_response, parse

try:
    from tests.sip.sipbench import APP, DOMAIN, FakeStream, digest_response
except ImportError:  # rootdir-relative import mode
    from sipbench import APP, DOMAIN, FakeStream, digest_response  # type: ignore[no-redef]

TEXT = "رسالة 😀"


def view(account: str = "1111", sender: str = "9647502222222", text: str = TEXT) -> MessageView:
    return MessageView(7, sender, "9647501111111", account, text, "utf-8", 1, 0.0, 0, 86400.0)


def sent_requests(bench, start: int = 0) -> list[tuple[Request, tuple[str, int]]]:
    out = []
    for data, addr in bench.udp_transport.written[start:]:
        m = parse(data)
        if isinstance(m, Request):
            out.append((m, addr))
    return out


def answer(bench, request: Request, status: int, source=APP) -> None:
    """The app answers one of our MESSAGEs over UDP."""
    bench.udp_protocol.datagramReceived(make_response(request, status).to_bytes(), source)


def results(d) -> list:
    out: list = []
    d.addBoth(out.append)
    return out


def test_agent_provides_interface(bench):
    """The agent provides IDeliveryAgent."""
    verifyObject(IDeliveryAgent, bench.service.agent)


def test_no_contact_is_offline(bench):
    """An account without a binding: outcome offline, nothing sent."""
    (outcome,) = results(bench.service.agent.deliver(view()))
    assert outcome.kind == "offline"


def test_delivered_over_udp_to_received_address(bench):
    """
    A MESSAGE goes to the binding's received/rport address with From the
    sender's number, To the AOR, text/plain UTF-8 and the exact body; 200
    means delivered.
    """
    bench.register(source=("203.0.113.5", 1234))
    start = len(bench.udp_transport.written)
    got = results(bench.service.agent.deliver(view()))
    ((request, addr),) = sent_requests(bench, start)
    assert addr == ("203.0.113.5", 1234)
    assert str(request.uri) == "sip:1111@198.51.100.7:40000"
    assert request.from_address().uri.user == "9647502222222"
    assert request.from_address().uri.host == DOMAIN
    assert str(request.to_address().uri) == f"sip:1111@{DOMAIN}"
    assert request.headers.get("content-type") == "text/plain;charset=UTF-8"
    assert request.body == TEXT.encode("utf-8")
    assert request.top_via().host == "192.0.2.10"
    assert got == []
    answer(bench, request, 200, ("203.0.113.5", 1234))
    assert got[0].kind == "delivered"
    assert bench.service.statistics()["delivered"] == 1


def test_alphanumeric_sender_in_from():
    """An alphanumeric sender is the display name and the user part; numbers lose their +."""
    assert from_header("AsiaCell", "d", "t") == '"AsiaCell" <sip:AsiaCell@d>;tag=t'
    assert from_header("+9647501", "d", "t") == "<sip:9647501@d>;tag=t"
    assert from_header("My Shop", "d", "t") == '"My Shop" <sip:My%20Shop@d>;tag=t'


def test_forking_first_2xx_wins(bench):
    """With two contacts both get the MESSAGE; a 480 then a 200 is delivered."""
    bench.register(contact="<sip:1111@10.0.0.1:5060>", call_id="a")
    bench.register(contact="<sip:1111@10.0.0.2:5060>", call_id="b")
    start = len(bench.udp_transport.written)
    got = results(bench.service.agent.deliver(view()))
    reqs = sent_requests(bench, start)
    assert sorted(str(r.uri) for r, _ in reqs) == ["sip:1111@10.0.0.1:5060",
                                                  "sip:1111@10.0.0.2:5060"]
    answer(bench, reqs[0][0], 480)
    assert got == []
    answer(bench, reqs[1][0], 200)
    assert got[0].kind == "delivered"


def test_all_temporary_failures_retry(bench):
    """480 from one fork and a timeout (timer F) on the other: retry."""
    bench.register(contact="<sip:1111@10.0.0.1:5060>", call_id="a")
    bench.register(contact="<sip:1111@10.0.0.2:5060>", call_id="b")
    start = len(bench.udp_transport.written)
    got = results(bench.service.agent.deliver(view()))
    reqs = sent_requests(bench, start)
    answer(bench, reqs[0][0], 480)
    bench.reactor.advance(1)
    assert len(sent_requests(bench, start)) > 2  # timer E retransmits to the silent fork
    bench.reactor.pump([1] * 40)
    assert got[0].kind == "retry"


def test_every_copy_carries_the_message_id(bench):
    """
    Each MESSAGE of a stored message, to every fork and on every later
    attempt, carries C{Message-ID} with the id in hex (the id SMPP gives
    carriers); another message has another: an app drops a copy it got
    before (a crash between its 200 and the commit of "delivered") by it.
    """
    bench.register(contact="<sip:1111@10.0.0.1:5060>", call_id="a")
    bench.register(contact="<sip:1111@10.0.0.2:5060>", call_id="b")
    start = len(bench.udp_transport.written)
    bench.service.agent.deliver(view())
    first = sent_requests(bench, start)
    start = len(bench.udp_transport.written)
    bench.service.agent.deliver(view())
    again = sent_requests(bench, start)
    other = MessageView(0x1f, "9647502222222", "9647501111111", "1111", "x",
                        "utf-8", 1, 0.0, 0, 86400.0)
    start = len(bench.udp_transport.written)
    bench.service.agent.deliver(other)
    third = sent_requests(bench, start)
    ids = {r.headers.get("message-id") for r, _ in first + again}
    assert ids == {"7"} and len(first + again) == 4
    assert len({r.headers.get("call-id") for r, _ in first + again}) == 4
    assert {r.headers.get("message-id") for r, _ in third} == {"1f"}
    assert message_id(0x100000001) == "100000001"


def test_permanent_failure_wins_over_temporary(bench):
    """A 415 and a 503: failed with reason 415 Unsupported Media Type."""
    bench.register(contact="<sip:1111@10.0.0.1:5060>", call_id="a")
    bench.register(contact="<sip:1111@10.0.0.2:5060>", call_id="b")
    start = len(bench.udp_transport.written)
    got = results(bench.service.agent.deliver(view()))
    reqs = sent_requests(bench, start)
    answer(bench, reqs[0][0], 503)
    answer(bench, reqs[1][0], 415)
    assert got[0].kind == "failed" and got[0].reason == "415 Unsupported Media Type"


def tcp_app(bench, peer=("198.51.100.20", 50000)):
    """Connect an app over TCP to the service's TCP listener."""
    factory = bench.reactor.tcpServers[0][1]
    protocol = factory.buildProtocol(IPv4Address("TCP", *peer))
    transport = FakeStream(peer)
    protocol.makeConnection(transport)
    return protocol, transport


def tcp_register(bench, protocol, transport) -> int:
    """REGISTER over the connection with digest; the final status."""
    contact = "Contact: <sip:1111@10.9.9.9:5060;transport=tcp>"
    via = "SIP/2.0/TCP 10.9.9.9:5060;branch=z9hG4bKt{n};rport"
    protocol.dataReceived(bench.request("REGISTER", f"sip:{DOMAIN}", [contact],
                                        via=via.format(n=1), call_id="t"))
    first = parse(transport.value(), stream=True)
    transport.clear()
    auth = digest_response(first.headers.get("www-authenticate"), "REGISTER",
                           f"sip:{DOMAIN}", "1111", "secret")
    protocol.dataReceived(bench.request("REGISTER", f"sip:{DOMAIN}",
                                        [contact, f"Authorization: {auth}"],
                                        via=via.format(n=2), call_id="t"))
    bench.settle()
    final = parse(transport.value(), stream=True)
    transport.clear()
    return final.status


def test_tcp_flow_reused_for_delivery(bench):
    """
    An app registered over TCP gets its MESSAGE over the same connection
    (the NAT case), and its 200 on that connection completes the delivery.
    """
    protocol, transport = tcp_app(bench)
    assert tcp_register(bench, protocol, transport) == 200
    (b,) = bench.service.store.get("1111")
    assert b.transport == "TCP" and b.source == ("198.51.100.20", 50000)
    got = results(bench.service.agent.deliver(view()))
    request = parse(transport.value(), stream=True)
    assert request.method == "MESSAGE" and request.top_via().transport == "TCP"
    protocol.dataReceived(make_response(request, 200).to_bytes())
    assert got[0].kind == "delivered"


def test_tcp_flow_loss_drops_bindings(bench):
    """When the registered connection closes its bindings go: the account is offline."""
    protocol, transport = tcp_app(bench)
    assert tcp_register(bench, protocol, transport) == 200
    protocol.connectionLost(None)
    bench.settle()
    assert bench.service.store.get("1111") == ()
    (outcome,) = results(bench.service.agent.deliver(view()))
    assert outcome.kind == "offline"


def test_keepalive_answered_on_tcp(bench):
    """A CRLFCRLF keep-alive on a connection is answered with CRLF (RFC 5626)."""
    protocol, transport = tcp_app(bench)
    protocol.dataReceived(b"\r\n\r\n")
    assert transport.value() == b"\r\n"


def test_listeners_recorded_and_closed(bench):
    """The UDP and TCP ports are recorded; stopping closes connections and ports."""
    assert bench.node.ports.ports == {"sip_udp": [5060], "sip_tcp": [5060]}
    assert bench.service.ready.called
    protocol, transport = tcp_app(bench)
    bench.service.stopService()
    assert transport.disconnecting


def test_shell_tables_and_statistics(bench):
    """
    show sip registrations lists account, contact, transport, source,
    where requests go, expires, user agent and the node holding the flow
    (filterable by account); transactions lists
    live transactions; statistics count registers.
    """
    bench.register(extra=["User-Agent: Zoiper"])
    headers, rows = bench.service.shell_table("registrations")
    assert headers == ("account", "contact", "transport", "source", "sent to", "expires in",
                       "user agent", "node")
    assert rows == [("1111", "sip:1111@198.51.100.7:40000", "UDP", "198.51.100.7:40000",
                     "198.51.100.7:40000 (contact)", "600", "Zoiper", "appliance")]
    assert bench.service.shell_table("registrations", account="2222")[1] == []
    bench.service.agent.deliver(view())
    headers, rows = bench.service.shell_table("transactions")
    assert ("client", "MESSAGE", "Trying") in [r[1:4] for r in rows]
    stats = bench.service.statistics()
    assert stats["registers"] == 1 and stats["registered_contacts"] == 1
    try:
        bench.service.shell_table("nonsense")
    except KeyError as e:
        assert "registrations" in str(e)
    else:
        raise AssertionError("unknown topic accepted")
    bench.reactor.pump([1] * 40)  # let the MESSAGE time out
