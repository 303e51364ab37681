"""
A test bench for the SMPP server's unit tests: an in-memory database with
the seeds' carriers and John Doe's DID, the messaging core with a fake SIP
agent, the controller, and sessions on C{StringTransport}s, all on one
C{MemoryReactorClock}.  No sockets, no sleeps.
"""
from __future__ import annotations

from appliance.application import memory_storage
import struct

from smpp.pdu import operations, pdu_types as T
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface import implementer

from appliance.config import SMPPSection
from appliance.messaging.core import MessagingCore
from appliance.messaging.vocabulary import Outcome
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.smpp import pdus
from appliance.smpp.server import SMPPServer
from appliance.smpp.session import SMPPSession
from appliance.store.database import Storage


@implementer(IDeliveryAgent)
class FakeAgent:
    """Records deliveries; the test answers each."""

    def __init__(self):
        self.calls = []

    def deliver(self, message):
        d = defer.Deferred()
        self.calls.append((message, d))
        return d

    def answer(self, kind, reason=""):
        view, d = self.calls.pop(0)
        d.callback(Outcome(kind, reason))
        return view


class Env:
    """
    Everything the SMPP unit tests need.

    @ivar sent: what each session wrote, decoded by L{responses}.
    """

    def __init__(self, admission=None, **section):
        self.clock = MemoryReactorClock()
        self.clock.advance(1_000_000)
        self.storage = memory_storage(reactor=self.clock,
                                           batch_delay=0.001)
        with self.storage.transaction(note="setup") as root:
            root.add_product("Call & Chat")
            root.products["Call & Chat"].messaging = True
            root.add_customer("John Doe")
            root.add_account("John Doe", "111222333")
            root.add_did("111222333", "111222333")
            root.set_account_product("111222333", "Call & Chat")
            for name, sid, pw in (("Carrier1", "carrier1", "car1pass"),
                                  ("Carrier2", "carrier2", "car2pass"),
                                  ("Closed", "closed", "closedpw")):
                c = root.add_carrier(name)
                root.set_carrier_system_id(name, sid)
                c.set_password(pw)
                c.allow_ip("127.0.0.0/8")
            root.carriers["Carrier2"].max_binds = 1
            root.carriers["Closed"].enabled = False
        self.core = MessagingCore(self.storage, self.clock,
                                  local_transport="sip",
                                  retry_schedule=(30,), validity=600)
        self.agent = FakeAgent()
        self.core.set_agent("sip", self.agent)
        self.core.startService()
        defaults = dict(name="smpp", enabled=True, window=10,
                        bind_timeout=30, idle_timeout=300,
                        enquire_link_interval=30, response_timeout=30,
                        queue_limit=1000, reassembly_timeout=300)
        defaults.update(section)
        self.section = SMPPSection(**defaults)
        self.server = SMPPServer(self.storage, self.core, self.clock,
                                 self.section, admission=admission)
        self.core.add_state_writer(self.server.courier)   # as the wiring
        self.server.start()

    def close(self):
        self.server.stop()
        self.core.stopService()
        self.storage.close()

    def connect(self, ip="127.0.0.1"):
        """@return: (session, transport), connected."""
        s = self.section
        session = SMPPSession(self.server, self.clock, window=s.window,
                              bind_timeout=s.bind_timeout,
                              idle_timeout=s.idle_timeout,
                              enquire_link_interval=s.enquire_link_interval,
                              response_timeout=s.response_timeout)
        t = StringTransport(peerAddress=IPv4Address("TCP", ip, 40000))
        session.makeConnection(t)
        return session, t

    def bind(self, kind="transceiver", sid="carrier1", pw="car1pass",
             ip="127.0.0.1"):
        """Connect and bind; @return: (session, transport, status)."""
        session, t = self.connect(ip)
        klass = {"transceiver": operations.BindTransceiver,
                 "transmitter": operations.BindTransmitter,
                 "receiver": operations.BindReceiver}[kind]
        session.dataReceived(pdus.encode(klass(1, system_id=sid,
                                               password=pw)))
        got = responses(t)
        for _, frame in got[1:]:     # what followed the bind_resp stays
            t.write(frame)
        return session, t, got[0][0].status

    def settle(self, rounds=5):
        """Let batched commits and callLater(0)s run."""
        for _ in range(rounds):
            self.clock.advance(0.001)


def responses(t):
    """Split and clear what a transport received: [(header, frame)]."""
    frames, rest = pdus.split_frames(t.value())
    assert rest == b""
    t.clear()
    return [(pdus.header(f), f) for f in frames]


def status(name):
    """@return: the wire value of a status name."""
    return pdus.status_value(getattr(T.CommandStatus, name))


def submit_sm(seq, text=b"hello", to="111222333", src="AsiaCell", dc=0,
              esm=None, rd=0, **tlvs):
    """Encode a submit_sm with smpp.pdu3."""
    params = dict(source_addr=src, destination_addr=to, short_message=text,
                  data_coding=_coding(dc),
                  registered_delivery=T.RegisteredDelivery(
                      T.RegisteredDeliveryReceipt(rd + 1)))
    if esm:
        params["esm_class"] = T.EsmClass(
            T.EsmClassMode.DEFAULT, T.EsmClassType.DEFAULT,
            [T.EsmClassGsmFeatures.UDHI_INDICATOR_SET])
    params.update(tlvs)
    return pdus.encode(operations.SubmitSM(seq, **params))


def _coding(dc):
    by_value = {0: T.DataCodingDefault.SMSC_DEFAULT_ALPHABET,
                1: T.DataCodingDefault.IA5_ASCII,
                3: T.DataCodingDefault.LATIN_1,
                4: T.DataCodingDefault.OCTET_UNSPECIFIED_COMMON,
                8: T.DataCodingDefault.UCS2}
    return T.DataCoding(T.DataCodingScheme.DEFAULT, by_value[dc])


def submit_multi(seq, dests, text=b"hi", src="AsiaCell", dl=()):
    """Encode a submit_multi by hand (smpp.pdu3 cannot)."""
    body = b"\0" + b"\x05\x00" + src.encode() + b"\0"
    body += bytes((len(dests) + len(dl),))
    for d in dests:
        body += b"\x01\x01\x01" + d.encode() + b"\0"
    for name in dl:
        body += b"\x02" + name.encode() + b"\0"
    body += b"\x00\x00\x00" + b"\0\0" + b"\x00\x00\x00\x00"
    body += bytes((len(text),)) + text
    return struct.pack(">IIII", 16 + len(body), 0x21, 0, seq) + body


def with_payload(make, payload, pdu=False, **kw):
    """
    Encode a PDU with a message_payload TLV.  smpp.pdu3's encoder sizes
    that TLV from the length of the last TLV it decoded, so a fresh
    encoder is told the size first.

    @param make: an smpp.pdu3 operation class (with C{pdu=True} and
        C{seq=} in C{kw}), or L{submit_sm} for a submit_sm (C{dc=} only).
    """
    from smpp.pdu.pdu_encoding import PDUEncoder
    encoder = PDUEncoder()
    encoder.optionEncoder.length = len(payload)
    if pdu:
        seq = kw.pop("seq")
        return encoder.encode(make(seq, message_payload=payload, **kw))
    return encoder.encode(operations.SubmitSM(
        2, source_addr="AsiaCell", destination_addr="111222333",
        short_message=b"", data_coding=_coding(kw.get("dc", 0)),
        message_payload=payload))


def message_id(frame):
    """The message_id of a submit_sm_resp frame."""
    return frame[16:].split(b"\0")[0].decode()
