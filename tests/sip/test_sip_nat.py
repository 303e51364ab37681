"""
Tests for where requests to an app registered over UDP go: its Contact,
or the flow its REGISTER came on (RFC 3261 10, RFC 3581, RFC 5626), as
decided by L{appliance.sip.bindings.delivery_target} and C{[sip] nat}.
"""
from __future__ import annotations

import pytest

from appliance.config import ConfigError, parse
from appliance.sip.bindings import Binding, contact_address, delivery_target, nat_detected
from appliance.sip.message import Request, parse as parse_sip

try:
    from tests.sip.sipbench import Bench
except ImportError:  # rootdir-relative import mode
    from sipbench import Bench  # type: ignore[no-redef]

SOURCE = ("198.51.100.7", 40000)
SENT_BY = ("198.51.100.7", 40000)


def test_contact_address_forms() -> None:
    """
    A Contact's UDP address is its maddr or IP host and its port (5060
    when absent); host names, other transports and sips give none.
    """
    assert contact_address("sip:a@198.51.100.7:5070") == ("198.51.100.7", 5070)
    assert contact_address("sip:a@198.51.100.7") == ("198.51.100.7", 5060)
    assert contact_address("sip:a@[2001:db8::1]:5070") == ("2001:db8::1", 5070)
    assert contact_address("sip:a@host.example:5070;maddr=192.0.2.9") == ("192.0.2.9", 5070)
    assert contact_address("sip:a@host.example:5070") is None
    assert contact_address("sip:a@198.51.100.7;transport=tcp") is None
    assert contact_address("sips:a@198.51.100.7") is None
    assert contact_address("not a uri") is None


@pytest.mark.parametrize("contact, source, sent_by, nat", [
    # an app listening on another port of the host it registers from
    (("198.51.100.7", 5070), SOURCE, SENT_BY, False),
    # a third-party registration: the registering host is the source
    (("203.0.113.9", 5060), SOURCE, SENT_BY, False),
    # a phone behind NAT writes its private address everywhere
    (("10.1.2.3", 5060), SOURCE, ("10.1.2.3", 5060), True),
    # a private Contact, though the Via was rewritten (STUN, an ALG)
    (("192.168.1.20", 5060), SOURCE, SENT_BY, True),
    (("100.64.0.9", 5060), SOURCE, SENT_BY, True),
    (("fd00::5", 5060), ("2001:db8::7", 40000), ("2001:db8::7", 40000), True),
    # the source port is not the Via's (a NAT that keeps the address)
    (("198.51.100.7", 40000), ("198.51.100.7", 61000), SENT_BY, True),
    # no port in Via means 5060
    (("198.51.100.7", 5060), ("198.51.100.7", 5060), ("198.51.100.7", None), False),
    # a Via host name is not the source address
    (("198.51.100.7", 5060), SOURCE, ("phone.example", 40000), True),
    # a private app reached directly on the same LAN is not NATed
    (("10.1.2.3", 5070), ("10.1.2.3", 5060), ("10.1.2.3", 5060), False),
])
def test_nat_detection(contact, source, sent_by, nat) -> None:
    """
    NAT is detected from a non-routable Contact other than the source, or
    a Via sent-by host or port that is not the source; a Contact that
    differs only by port or names another public host is not NAT.
    """
    assert nat_detected(contact, source, sent_by) is nat


def test_delivery_target_by_mode() -> None:
    """
    C{auto}: outbound (instance and reg-id) and NAT use the flow (C{None}),
    others the Contact; C{contact} always the Contact (when it has an
    address); C{flow} always the flow.
    """
    plain = ("sip:a@198.51.100.7:5070", None, None, SOURCE, SENT_BY)
    outbound = ("sip:a@198.51.100.7:5070", "<urn:uuid:1>", 1, SOURCE, SENT_BY)
    natted = ("sip:a@10.1.2.3:5060", None, None, SOURCE, ("10.1.2.3", 5060))
    named = ("sip:a@phone.example:5060", None, None, SOURCE, SENT_BY)
    assert delivery_target("auto", *plain) == ("198.51.100.7", 5070)
    assert delivery_target("auto", *outbound) is None
    assert delivery_target("auto", *natted) is None
    assert delivery_target("auto", *named) is None
    # an instance alone (GRUU without outbound) is not outbound
    assert delivery_target("auto", "sip:a@198.51.100.7:5070", "<urn:uuid:1>", None,
                           SOURCE, SENT_BY) == ("198.51.100.7", 5070)
    for args in (plain, outbound, natted):
        assert delivery_target("flow", *args) is None
    assert delivery_target("contact", *natted) == ("10.1.2.3", 5060)
    assert delivery_target("contact", *outbound) == ("198.51.100.7", 5070)
    assert delivery_target("contact", *named) is None


def test_binding_without_destination_uses_its_source() -> None:
    """
    A binding stored before destinations existed (or one on its flow) is
    reached at its source; one with a destination there.
    """
    old = Binding("sip:a@10.0.0.1", None, None, 10.0, "UDP", SOURCE)
    assert old.target == SOURCE
    new = Binding("sip:a@198.51.100.7:5070", None, None, 10.0, "UDP", SOURCE,
                  destination=("198.51.100.7", 5070))
    assert new.target == ("198.51.100.7", 5070)


def test_nat_setting_parsed_and_checked() -> None:
    """C{[sip] nat} defaults to auto, takes contact or flow, refuses anything else."""
    assert parse("").sip.nat == "auto"
    assert parse('[sip]\nnat = "flow"\n').sip.nat == "flow"
    with pytest.raises(ConfigError) as e:
        parse('[sip]\nnat = "stun"\n')
    assert "[sip] nat: auto, contact or flow" in e.value.errors


def delivered_to(bench: Bench) -> tuple[Request, tuple[str, int]]:
    """Deliver one message to 1111; return the MESSAGE sent and where."""
    from appliance.messaging.core import MessageView
    start = len(bench.udp_transport.written)
    bench.service.agent.deliver(MessageView(7, "2222", "9647501111111", "1111", "hi",
                                            "utf-8", 1, 0.0, 0, 86400.0))
    sent = [(parse_sip(d), a) for d, a in bench.udp_transport.written[start:]]
    ((request, address),) = [(m, a) for m, a in sent if isinstance(m, Request)]
    return request, address


@pytest.mark.parametrize("nat, contact, via, expected", [
    ("auto", "<sip:1111@198.51.100.7:5070>", None, ("198.51.100.7", 5070)),
    ("auto", "<sip:1111@10.1.2.3:5060>", "SIP/2.0/UDP 10.1.2.3:5060;rport",
     ("198.51.100.7", 40000)),
    ("auto", '<sip:1111@198.51.100.7:5070>;+sip.instance="<urn:uuid:00000000-0000-1000-8000'
     '-000000000001>";reg-id=1', None, ("198.51.100.7", 40000)),
    ("flow", "<sip:1111@198.51.100.7:5070>", None, ("198.51.100.7", 40000)),
    ("contact", "<sip:1111@10.1.2.3:5060>", "SIP/2.0/UDP 10.1.2.3:5060;rport",
     ("10.1.2.3", 5060)),
])
def test_registered_app_reached_where_it_listens(tmp_path, nat, contact, via, expected):
    """
    Through the registrar and the delivery agent: a REGISTER over UDP from
    198.51.100.7:40000 makes MESSAGE go to its Contact (another port),
    or over its flow when NATed or outbound, as C{[sip] nat} says; the
    Request-URI is the Contact either way.
    """
    bench = Bench(tmp_path, nat=nat)
    try:
        assert bench.register(contact=contact, via=via).status == 200
        request, address = delivered_to(bench)
        assert address == expected
        assert str(request.uri) == contact.split(">")[0][1:]
    finally:
        bench.stop()
        bench.reactor.advance(60)
