"""Tests for L{appliance.smpp.connections}: the pool of outbound binds and
the C{smpp} delivery agent, with the real messaging core on an in-memory
database, fake endpoints on C{StringTransport}s and a fake clock."""
from smpp.pdu import operations
from smpp.pdu.pdu_types import (EsmClass, EsmClassGsmFeatures, EsmClassMode,
                                EsmClassType)
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from appliance.application import memory_storage
from appliance.messaging.core import MessagingCore
from appliance.messaging.vocabulary import Submission
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.smpp import pdus
from appliance.smpp import receipts as R
from appliance.smpp.client import Timers
from appliance.smpp.connections import Backoff, ConnectionPool
from appliance.smpp.remote import read_hops
from appliance.store.database import Storage


class Link:
    """One fake TCP connection made by the pool."""

    def __init__(self, name, protocol):
        self.name = name
        self.protocol = protocol           # ClientService's proxy
        self.transport = StringTransport()
        self.lost = False
        protocol.makeConnection(self.transport)

    def frames(self):
        """Decode and clear what the client wrote."""
        frames, _ = pdus.split_frames(self.transport.value())
        self.transport.clear()
        return [(pdus.header(f), f) for f in frames]

    def bind(self, status=0):
        """Answer the pending bind."""
        [(h, _)] = self.frames()
        if status:
            self.protocol.dataReceived(pdus.HEADER.pack(
                16, h.command_id | 0x80000000, status, h.sequence))
        else:
            self.protocol.dataReceived(pdus.bind_response(h, "far"))

    def answer(self, message_id="ff", status=0):
        """Answer every submit_sm written so far; return them."""
        sent = self.frames()
        for h, _ in sent:
            if status:
                self.protocol.dataReceived(pdus.HEADER.pack(
                    16, 0x80000004, status, h.sequence))
            else:
                self.protocol.dataReceived(pdus.encode(
                    operations.SubmitSMResp(h.sequence,
                                            message_id=message_id)))
        return sent

    def drop(self):
        """The far side closes the connection."""
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(ConnectionError("gone")))


class Endpoints:
    """Fake endpoints: record each connection; refuse when told."""

    def __init__(self):
        self.links: list[Link] = []
        self.refuse = set()

    def __call__(self, settings):
        endpoints = self

        class Endpoint:
            def connect(self, factory):
                if settings.name in endpoints.refuse:
                    return defer.fail(ConnectionRefusedError())
                link = Link(settings.name, factory.buildProtocol(None))
                endpoints.links.append(link)
                return defer.succeed(link.protocol)
        return Endpoint()

    def of(self, name):
        """The live links of a connection."""
        return [l for l in self.links if l.name == name
                and not l.lost and not l.transport.disconnecting]


class PoolTests(SynchronousTestCase):
    """The pool on the real core, two connections env4 and env5."""

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(1_000_000)
        self.storage = memory_storage(reactor=self.clock,
                                           batch_delay=0.001)
        with self.storage.transaction(note="setup") as root:
            for name in ("env4", "env5"):
                c = root.add_connection(name)
                c.host, c.port = "127.0.0.1", 2775
                c.system_id, c.password = "env1", "secret"
                c.window = 2
            root.add_policy("to-env4")
            root.policies["to-env4"].recipient_pattern = "222%"
            root.policies["to-env4"].transport = "smpp"
            root.set_policy_connections("to-env4", ["env4", "env5"])
        self.core = MessagingCore(self.storage, self.clock,
                                  local_transport="sip",
                                  retry_schedule=(30,), validity=600)
        self.core.startService()
        self.endpoints = Endpoints()
        self.pool = ConnectionPool(
            self.storage, self.core, self.clock, self.endpoints,
            timers=Timers(5, 10, 30), backoff=Backoff(1, 2, 60, 30))
        self.core.set_agent("smpp", self.pool)      # as the wiring does
        self.pool.startService()
        self.finals = []
        self.core.add_outcome_listener(
            lambda v, state: self.finals.append((v.id, state)))

    def tearDown(self):
        d = self.pool.stopService()
        for link in self.endpoints.links:
            for h, _ in link.frames():
                if h.command_id == 6:
                    link.protocol.dataReceived(pdus.bare_response(
                        0x80000006, h.sequence, pdus.Status.ESME_ROK))
            link.drop()
        self.successResultOf(d)
        self.settle()
        self.core.stopService()
        self.storage.close()
        # Nothing left behind: no reconnect, pacing or receipt timers.
        assert [c for c in self.clock.getDelayedCalls() if c.active()] == []

    def settle(self, seconds=0.01):
        """Let batched commits and callLater(0) run."""
        for _ in range(5):
            self.clock.advance(seconds)

    def submit(self, to="2222", text="hello", sender="1111", hops=0):
        d = self.core.submit(Submission("account", sender, sender, to,
                                        text, hops=hops))
        self.settle()
        return self.successResultOf(d)

    def bind_all(self, name="env4"):
        for link in self.endpoints.of(name):
            link.bind()

    def state(self, id):
        return self.storage.messages().get(id).state

    def test_agent_and_binds(self):
        """The pool is a delivery agent and opens one bind per configured
        bind on each connection."""
        verifyObject(IDeliveryAgent, self.pool)
        assert [l.name for l in self.endpoints.links] == ["env4", "env5"]
        headers, rows = self.pool.shell_table("connections")
        assert headers == ("name", "state", "binds", "in-flight", "rate")
        assert rows[0][:3] == ("env4", "connecting", "0/1")
        self.bind_all()
        assert self.pool.shell_table("connections")[1][0][:3] == \
            ("env4", "up", "1/1")
        self.assertRaises(KeyError, self.pool.shell_table, "binds")

    def test_forward_then_receipt(self):
        """A message for 222% is submitted over env4 with the hop TLV; the
        submit_sm_resp id makes it forwarded (delivering); a receipt naming
        the id in decimal makes it delivered, and deliver_sm_resp follows
        the commit."""
        self.bind_all()
        id = self.submit()
        link = self.endpoints.of("env4")[0]
        [(h, frame)] = link.answer(message_id="00FF")
        assert read_hops(frame) == 1
        self.settle()
        assert self.state(id) == "delivering"
        link.protocol.dataReceived(R.deliver_sm(
            31, R.Receipt("255", "delivered", 0, 0, "hello", "1111",
                          "2222")))
        self.settle()
        assert self.state(id) == "delivered"
        assert (id, "delivered") in self.finals
        [(h, _)] = link.frames()
        assert (h.command_id, h.sequence, h.status) == (0x80000005, 31, 0)

    def test_number_form_per_connection(self):
        """A connection whose plan says national sends numbers of the
        plan's country with TON 2 and the trunk prefix, others stay
        international (TON 1); the other connection, without the
        override, sends TON 1; a plan change applies without a re-bind."""
        with self.storage.transaction(note="plan") as root:
            root.numbering.country_code = "964"
            root.numbering.national_prefix = "0"
            root.connections["env4"].plan_number_format = "national"
            root.policies["to-env4"].recipient_pattern = "%"
        self.settle()
        self.bind_all()
        self.bind_all("env5")
        self.submit(to="9642222333", sender="9647701234567")
        link = self.endpoints.of("env4")[0]
        [(_, frame)] = link.answer()
        pdu = pdus.decode(frame)
        p = pdu.params
        assert (p["dest_addr_ton"].name, p["destination_addr"]) == \
            ("NATIONAL", b"02222333")
        assert (p["source_addr_ton"].name, p["source_addr"]) == \
            ("NATIONAL", b"07701234567")
        self.submit(to="4420794600", sender="AsiaCell")
        [(_, frame)] = link.answer()
        p = pdus.decode(frame).params
        assert (p["dest_addr_ton"].name, p["destination_addr"]) == \
            ("INTERNATIONAL", b"4420794600")
        assert p["source_addr_ton"].name == "ALPHANUMERIC"
        assert len(self.endpoints.links) == 2          # no re-bind
        with self.storage.transaction(note="plan") as root:
            del root.connections["env4"].plan_number_format
            root.policies["to-env4"].recipient_pattern = "%"
        self.settle()
        self.submit(to="9642222333", sender="9647701234567")
        [(_, frame)] = link.answer()
        p = pdus.decode(frame).params
        assert (p["dest_addr_ton"].name, p["destination_addr"]) == \
            ("INTERNATIONAL", b"9642222333")

    def test_receipt_before_commit(self):
        """A receipt that overtakes the commit of its forwarded outcome is
        tried again and still matches."""
        self.bind_all()
        id = self.submit()
        link = self.endpoints.of("env4")[0]
        link.answer(message_id="abc")
        link.protocol.dataReceived(R.deliver_sm(
            5, R.Receipt("abc", "failed", 0, 0, "", "1", "2")))
        self.settle()
        self.clock.advance(0.3)
        self.settle()
        assert self.state(id) == "failed"

    def test_multipart_reports_last_id(self):
        """A 400-character text goes as three parts; the last part's id is
        the one its receipt must carry."""
        self.bind_all()
        id = self.submit(text="y" * 400)
        link = self.endpoints.of("env4")[0]
        ids = []
        for n in range(3):
            [(h, _)] = link.frames()
            mid = f"p{n}"
            ids.append(mid)
            link.protocol.dataReceived(pdus.encode(operations.SubmitSMResp(
                h.sequence, message_id=mid)))
        self.settle()
        store = self.storage.messages()
        assert store.by_remote("env4", "p2").id == id
        assert store.by_remote("env4", "p0") is None
        # An earlier part's receipt is acknowledged at once, and changes
        # nothing; the last part's receipt delivers the message.
        link.protocol.dataReceived(R.deliver_sm(
            8, R.Receipt("P0", "delivered", 0, 0, "", "1", "2")))
        [(h, _)] = link.frames()
        assert (h.sequence, h.status) == (8, 0)
        assert self.state(id) == "delivering"
        link.protocol.dataReceived(R.deliver_sm(
            9, R.Receipt("p2", "delivered", 0, 0, "", "1", "2")))
        self.settle()
        assert self.state(id) == "delivered"

    def test_failover_to_next_connection(self):
        """When env4 has no bind up, env5 carries the message."""
        self.bind_all("env5")
        self.submit()
        assert self.endpoints.of("env4")[0].frames()[1:] == []
        [(h, _)] = self.endpoints.of("env5")[0].answer()
        assert h.command_id == 4

    def test_transient_tries_next_then_retry(self):
        """ESME_RTHROTTLED on env4 tries env5; MSGQFUL there too gives a
        retry outcome naming both."""
        self.bind_all()
        self.bind_all("env5")
        id = self.submit()
        self.endpoints.of("env4")[0].answer(status=0x58)
        self.endpoints.of("env5")[0].answer(status=0x14)
        self.settle()
        m = self.storage.messages().get(id)
        assert m.state == "delivering" and m.next_attempt is not None
        assert "ESME_RTHROTTLED" in m.error and "ESME_RMSGQFUL" in m.error

    def test_no_connection_up_retries(self):
        """With no bind up anywhere the message waits for a retry."""
        id = self.submit()
        m = self.storage.messages().get(id)
        assert m.state == "delivering" and "env4: connecting" in m.error

    def test_permanent_error_fails(self):
        """ESME_RINVDSTADR fails the message with the status name."""
        self.bind_all()
        id = self.submit()
        self.endpoints.of("env4")[0].answer(status=0x0B)
        self.settle()
        m = self.storage.messages().get(id)
        assert m.state == "failed" and "ESME_RINVDSTADR" in m.error

    def test_lost_bind_is_transient(self):
        """A bind lost with a submit outstanding gives a retry."""
        self.bind_all()
        id = self.submit()
        self.endpoints.of("env4")[0].drop()
        self.settle()
        assert self.state(id) == "delivering"

    def test_window_waits(self):
        """With a window of 2, the third message waits for a response."""
        self.bind_all()
        for _ in range(3):
            self.submit()
        link = self.endpoints.of("env4")[0]
        sent = link.frames()
        assert len(sent) == 2
        assert self.pool.shell_table("connections")[1][0][3] == 3
        link.protocol.dataReceived(pdus.encode(operations.SubmitSMResp(
            sent[0][0].sequence, message_id="1")))
        assert len(link.frames()) == 1

    def test_throughput_cap(self):
        """A throughput of 2/s spaces submits half a second apart."""
        with self.storage.transaction(note="cap") as root:
            root.connections["env4"].throughput = 2
            root.connections["env4"].window = 10
        self.bind_all()
        for _ in range(3):
            self.submit()
        link = self.endpoints.of("env4")[0]
        assert len(link.frames()) == 1
        self.clock.advance(0.5)
        assert len(link.frames()) == 1
        self.clock.advance(0.5)
        assert len(link.frames()) == 1

    def test_reconnect_with_backoff(self):
        """A lost bind reconnects after the backoff delay."""
        self.bind_all()
        self.endpoints.of("env4")[0].drop()
        assert self.endpoints.of("env4") == []
        self.clock.advance(1)
        assert len(self.endpoints.of("env4")) == 1

    def test_refused_bind_longer_backoff(self):
        """A refused bind waits the longer refused delay (30 s) before the
        next try, and the state says refused."""
        link = self.endpoints.of("env4")[0]
        link.bind(status=0x0E)
        assert link.transport.disconnecting
        link.drop()
        assert self.pool.shell_table("connections")[1][0][1] == "refused"
        self.clock.advance(29)
        assert self.endpoints.of("env4") == []
        self.clock.advance(1)
        assert len(self.endpoints.of("env4")) == 1

    def test_shutdown_and_back(self):
        """shutdown unbinds and stops reconnecting; no shutdown binds
        again."""
        self.bind_all()
        link = self.endpoints.of("env4")[0]
        with self.storage.transaction(note="shutdown") as root:
            root.connections["env4"].shutdown = True
        [(h, _)] = link.frames()
        assert h.command_id == 6
        link.protocol.dataReceived(pdus.bare_response(
            0x80000006, h.sequence, pdus.Status.ESME_ROK))
        link.drop()
        self.clock.advance(120)
        assert self.endpoints.of("env4") == []
        assert self.pool.shell_table("connections")[1][0][1] == "shutdown"
        with self.storage.transaction(note="no shutdown") as root:
            root.connections["env4"].shutdown = False
        assert len(self.endpoints.of("env4")) == 1

    def test_removed_connection_closed(self):
        """A removed connection is unbound and forgotten."""
        self.bind_all("env5")
        link = self.endpoints.of("env5")[0]
        with self.storage.transaction(note="remove") as root:
            root.set_policy_connections("to-env4", ["env4"])
            root.remove_connection("env5")
        assert "env5" not in self.pool.connections
        [(h, _)] = link.frames()
        assert h.command_id == 6

    def test_changed_credentials_rebind(self):
        """A new password re-binds; a new window applies live."""
        self.bind_all()
        old = self.endpoints.of("env4")[0]
        with self.storage.transaction(note="window") as root:
            root.connections["env4"].window = 7
        assert old.protocol._protocol.window == 7
        with self.storage.transaction(note="password") as root:
            root.connections["env4"].password = "other"
        [(h, _)] = old.frames()
        assert h.command_id == 6
        old.drop()
        new = self.endpoints.of("env4")[0]
        [(h, frame)] = new.frames()
        assert pdus.decode(frame).params["password"] == b"other"

    def vendor_message(self, seq, text, to=b"111222333", esm=0):
        """A vendor's deliver_sm (MO) on env4's bind; @return: the link."""
        with self.storage.transaction(note="account") as root:
            if "111222333" not in root.accounts:
                root.add_customer("John Doe")
                root.add_account("John Doe", "111222333")
        link = self.endpoints.of("env4")[0]
        link.protocol.dataReceived(pdus.encode(operations.DeliverSM(
            seq, source_addr=b"4479001", destination_addr=to,
            esm_class=EsmClass(EsmClassMode.DEFAULT, EsmClassType.DEFAULT,
                               [EsmClassGsmFeatures.UDHI_INDICATOR_SET])
            if esm else EsmClass(EsmClassMode.DEFAULT, EsmClassType.DEFAULT),
            short_message=text)))
        return link

    def test_vendor_message_accepted_after_commit(self):
        """A deliver_sm that is not a receipt is a vendor's message: it is
        stored with origin kind connection and the connection's name, and
        its deliver_sm_resp (status 0) is written only after the commit."""
        self.bind_all()
        link = self.vendor_message(3, b"hello from a vendor")
        assert link.frames() == []
        self.settle()
        [(h, _)] = link.frames()
        assert (h.sequence, h.status) == (3, 0)
        (m,) = self.storage.messages().messages.values()
        assert (m.origin_kind, m.origin, m.sender, m.recipient, m.text,
                m.account) == ("connection", "env4", "4479001", "111222333",
                               "hello from a vendor", "111222333")
        assert self.pool.statistics()["env4.messages_in"] == 1

    def test_vendor_message_without_route(self):
        """A vendor's message nobody takes gets ESME_RINVDSTADR and nothing
        is stored."""
        self.bind_all()
        link = self.vendor_message(4, b"hi", to=b"999")
        self.settle()
        [(h, _)] = link.frames()
        assert (h.sequence, h.status) == (4, 0x0B)
        assert sum(self.storage.messages().counts().values()) == 0

    def test_vendor_concatenated_message(self):
        """A vendor's concatenated message (UDH) is reassembled: the first
        part is on disk before its deliver_sm_resp, the last completes one
        message with the whole text, and no part is left stored."""
        from appliance.sms.udh import concatenation_udh
        self.bind_all()
        link = self.vendor_message(5, concatenation_udh(7, 2, 1) + b"one ",
                                   esm=1)
        assert link.frames() == []
        self.settle()
        [(h, _)] = link.frames()
        assert (h.sequence, h.status) == (5, 0)
        assert len(self.storage.domain("smpp").connection_parts) == 1
        assert sum(self.storage.messages().counts().values()) == 0
        self.vendor_message(6, concatenation_udh(7, 2, 2) + b"two", esm=1)
        self.settle()
        [(h, _)] = link.frames()
        assert (h.sequence, h.status) == (6, 0)
        (m,) = self.storage.messages().messages.values()
        assert (m.text, m.parts, m.origin_kind) == ("one two", 2,
                                                    "connection")
        assert len(self.storage.domain("smpp").connection_parts) == 0

    def test_removed_policy_fails(self):
        """A message whose policy was removed fails with a clear reason."""
        id = self.submit()
        with self.storage.transaction(note="remove policy") as root:
            root.remove_policy("to-env4")
        self.bind_all()
        self.clock.advance(30)
        self.settle()
        m = self.storage.messages().get(id)
        assert m.state == "failed" and "no longer exists" in m.error

    def test_statistics(self):
        """Counters per connection."""
        self.bind_all()
        self.submit()
        self.endpoints.of("env4")[0].answer()
        stats = self.pool.statistics()
        assert stats["env4.submitted"] == 1 and stats["env4.accepted"] == 1


def test_tls_options_verify(tmp_path):
    """TLS options check the far side's certificate (VERIFY_PEER) and
    name; a CA file that cannot be read is an error, not a silent
    fallback."""
    import pytest
    from OpenSSL import SSL
    from appliance.smpp.connections import tls_options
    from tests.e2e.sip_tools import make_certificate
    _, ca = make_certificate(tmp_path, "env4")
    options = tls_options("127.0.0.1", ca)

    class TLSProtocol:            # what clientConnectionForTLS reads
        class factory:
            wrappedFactory = None
    connection = options.clientConnectionForTLS(TLSProtocol())
    assert connection.get_context().get_verify_mode() & SSL.VERIFY_PEER
    assert options._hostnameBytes == b"127.0.0.1"
    with pytest.raises(OSError):
        tls_options("127.0.0.1", tmp_path / "missing.pem")
