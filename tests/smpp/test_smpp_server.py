"""The SMPP controller: durable accept, routing, limits, text,
concatenation and submit_multi."""
import pytest
from smpp.pdu import pdu_types as T

from appliance.sms.text import gsm7_encode
from appliance.sms.udh import concatenation_udh
from tests.smpp.smpp_env import (
    Env, message_id, with_payload, responses, status, submit_multi, submit_sm,
)


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def stored(env, mid):
    return env.storage.messages().get(int(mid, 16))


def test_submit_acked_after_commit(env):
    """submit_sm_resp comes only after the batched commit, with the stored
    message's id in hex; the message is in the store as sent."""
    session, t, _ = env.bind()
    session.dataReceived(submit_sm(2, gsm7_encode("Hello @ world {€}")))
    assert t.value() == b""          # not on disk yet: no answer
    env.settle()
    (h, frame), = responses(t)
    assert (h.command_id, h.sequence, h.status) == (0x80000004, 2, 0)
    m = stored(env, message_id(frame))
    assert (m.sender, m.recipient, m.text, m.encoding, m.origin) == (
        "AsiaCell", "111222333", "Hello @ world {€}", "gsm7", "Carrier1")
    assert env.server.counters["Carrier1"]["accepted"] == 1


def test_no_route(env):
    """A destination nobody takes gets ESME_RINVDSTADR and nothing is
    stored."""
    session, t, _ = env.bind()
    session.dataReceived(submit_sm(2, to="999888777"))
    env.settle()
    (h, _), = responses(t)
    assert h.status == status("ESME_RINVDSTADR")
    assert sum(env.storage.messages().counts().values()) == 0


def test_binary_refused(env):
    """Binary data_coding is refused with ESME_RINVDCS, not stored."""
    session, t, _ = env.bind()
    session.dataReceived(submit_sm(2, b"\x01\x02", dc=4))
    (h, _), = responses(t)
    assert h.status == status("ESME_RINVDCS")
    assert sum(env.storage.messages().counts().values()) == 0


def test_ucs2_surrogates_and_payload(env):
    """UCS-2 text with a surrogate pair sent in message_payload is stored
    as the same text."""
    session, t, _ = env.bind()
    text = "مرحبا 😀"
    session.dataReceived(with_payload(submit_sm, text.encode("utf-16-be"),
                                      dc=8))
    env.settle()
    (h, frame), = responses(t)
    m = stored(env, message_id(frame))
    assert (m.text, m.encoding) == (text, "ucs2")


def test_window_throttles():
    """Beyond `window` outstanding submits a bind gets ESME_RTHROTTLED;
    the ones within the window are accepted."""
    env = Env(window=3)
    try:
        session, t, _ = env.bind()
        session.dataReceived(b"".join(submit_sm(i) for i in range(1, 6)))
        early = responses(t)
        assert [(h.sequence, h.status) for h, _ in early] == [
            (4, status("ESME_RTHROTTLED")), (5, status("ESME_RTHROTTLED"))]
        env.settle()
        assert [(h.sequence, h.status) for h, _ in responses(t)] == [
            (1, 0), (2, 0), (3, 0)]
    finally:
        env.close()


def test_carrier_throughput(env):
    """A carrier with throughput 2/s gets ESME_RTHROTTLED for the third
    submit in the same instant, and is served again a second later."""
    with env.storage.transaction() as root:
        root.carriers["Carrier1"].throughput = 2
    session, t, _ = env.bind()
    session.dataReceived(b"".join(submit_sm(i) for i in (1, 2, 3)))
    env.settle()
    got = sorted((h.sequence, h.status) for h, _ in responses(t))
    assert got == [(1, 0), (2, 0), (3, status("ESME_RTHROTTLED"))]
    env.clock.advance(1)
    session.dataReceived(submit_sm(4))
    env.settle()
    assert [h.status for h, _ in responses(t)] == [0]
    assert env.server.counters["Carrier1"]["throttled"] == 1


def test_queue_full():
    """With queue_limit messages waiting, a submit gets ESME_RMSGQFUL."""
    env = Env(queue_limit=2)
    try:
        session, t, _ = env.bind()
        session.dataReceived(submit_sm(1) + submit_sm(2))
        env.settle()
        session.dataReceived(submit_sm(3))
        env.settle()
        got = [(h.sequence, h.status) for h, _ in responses(t)]
        assert got == [(1, 0), (2, 0), (3, status("ESME_RMSGQFUL"))]
    finally:
        env.close()


def udh_part(seq, ref, total, n, text):
    return submit_sm(seq, concatenation_udh(ref, total, n) + text, esm=True,
                     rd=1)


def test_concatenated_udh(env):
    """Three UDH parts are each acknowledged with their own part id after
    being on disk; the core gets ONE message with the whole text."""
    session, t, _ = env.bind()
    session.dataReceived(udh_part(1, 7, 3, 1, b"one ") +
                         udh_part(2, 7, 3, 3, b"three"))
    assert t.value() == b""
    env.settle()
    first = responses(t)
    assert [h.status for h, _ in first] == [0, 0]
    assert len(env.storage.domain("smpp").parts) == 2
    assert sum(env.storage.messages().counts().values()) == 0
    session.dataReceived(udh_part(3, 7, 3, 2, b"two "))
    env.settle()
    (h, frame), = responses(t)
    ids = [message_id(f) for _, f in first] + [message_id(frame)]
    assert all(i.startswith("p") for i in ids) and len(set(ids)) == 3
    (m,) = env.storage.messages().messages.values()
    assert (m.text, m.parts) == ("one two three", 3)
    assert len(env.storage.domain("smpp").parts) == 0
    assert env.storage.domain("smpp").aliases[m.id] == tuple(
        ids[i] for i in (0, 2, 1))


def test_concatenated_sar(env):
    """Parts by SAR TLVs are reassembled the same way."""
    session, t, _ = env.bind()
    for n, text in ((1, b"ab"), (2, b"cd")):
        session.dataReceived(submit_sm(n, text, sar_msg_ref_num=300,
                                       sar_total_segments=2,
                                       sar_segment_seqnum=n))
    env.settle()
    assert [h.status for h, _ in responses(t)] == [0, 0]
    (m,) = env.storage.messages().messages.values()
    assert m.text == "abcd"


def test_parts_survive_restart(env):
    """Parts on disk are reloaded by a new server (a restart), and the
    message completes with the part that arrives afterwards."""
    session, t, _ = env.bind()
    session.dataReceived(udh_part(1, 9, 2, 1, b"first "))
    env.settle()
    session.connectionLost(None)
    env.server.stop()
    from appliance.smpp.server import SMPPServer
    env.server = SMPPServer(env.storage, env.core, env.clock, env.section)
    env.server.start()
    session, t, _ = env.bind()
    session.dataReceived(udh_part(2, 9, 2, 2, b"second"))
    env.settle()
    assert [h.status for h, _ in responses(t)] == [0]
    (m,) = env.storage.messages().messages.values()
    assert m.text == "first second"


def test_incomplete_deliver_partial(env):
    """A message missing a part after reassembly_timeout is submitted with
    a marker for the missing part (policy deliver_partial)."""
    session, t, _ = env.bind()
    session.dataReceived(udh_part(1, 4, 2, 1, b"half"))
    env.settle()
    env.clock.advance(301)
    env.clock.advance(10)
    env.settle()
    (m,) = env.storage.messages().messages.values()
    assert m.text == "half[part 2 of 2 missing]"
    assert len(env.storage.domain("smpp").parts) == 0


def test_incomplete_fail_rejected_receipt():
    """Under policy fail, an incomplete message is dropped and a REJECTD
    receipt with the part's id waits for the carrier."""
    env = Env(reassembly_policy="fail")
    try:
        session, t, _ = env.bind("transmitter")
        session.dataReceived(udh_part(1, 4, 2, 1, b"half"))
        env.settle()
        (h, frame), = responses(t)
        env.clock.advance(311)
        env.settle()
        assert sum(env.storage.messages().counts().values()) == 0
        (receipt,) = env.server.courier.pending["Carrier1"].values()
        assert (receipt.message_id, receipt.state) == (
            message_id(frame), "rejected")
    finally:
        env.close()


def test_submit_multi(env):
    """submit_multi: routable recipients are accepted under one id; the
    others and distribution lists come back in unsuccess_sme with
    ESME_RINVDSTADR."""
    session, t, _ = env.bind()
    session.dataReceived(submit_multi(6, ["111222333", "999"],
                                      dl=("friends",)))
    env.settle()
    (h, frame), = responses(t)
    assert (h.command_id, h.status) == (0x80000021, 0)
    body = frame[16:]
    mid, rest = body.split(b"\0", 1)
    assert int(mid, 16) in env.storage.messages().messages
    assert rest[0] == 2
    assert b"999\0" in rest and b"friends\0" in rest
    assert rest.count(b"\x00\x00\x00\x0b") == 2


def test_submission_carries_peer_address(env):
    """Each recipient's Submission carries the carrier's peer address, so
    authorization rules can match its network."""
    seen = []
    real = env.server.core.submit
    env.server.core.submit = lambda s: (seen.append(s), real(s))[1]
    session, t, _ = env.bind(ip="127.0.0.9")
    session.dataReceived(submit_multi(7, ["111222333"]))
    env.settle()
    assert [s.source for s in seen] == ["127.0.0.9"]


def test_data_sm(env):
    """data_sm with message_payload is accepted and answered with
    data_sm_resp carrying the id."""
    from smpp.pdu import operations
    from appliance.smpp import pdus
    session, t, _ = env.bind()
    session.dataReceived(with_payload(operations.DataSM, b"code 1234",
                                      pdu=True, **dict(
        seq=3, source_addr="Viber", destination_addr="111222333",
        esm_class=T.EsmClass(T.EsmClassMode.DEFAULT, T.EsmClassType.DEFAULT),
        registered_delivery=T.RegisteredDelivery(
            T.RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED),
        data_coding=T.DataCoding())))
    env.settle()
    (h, frame), = responses(t)
    assert (h.command_id, h.status) == (0x80000103, 0)
    assert stored(env, message_id(frame)).text == "code 1234"


def test_hop_count_carried_and_loops_refused(env):
    """The hop-count TLV another node adds is kept on the message, and a
    message that passed more than MAX_HOPS nodes is refused as a loop."""
    from appliance.messaging.core import MAX_HOPS
    from appliance.smpp.remote import hops_tlv, with_tlv
    session, t, _ = env.bind()
    session.dataReceived(with_tlv(submit_sm(2), hops_tlv(2)))
    session.dataReceived(with_tlv(submit_sm(3), hops_tlv(MAX_HOPS + 1)))
    env.settle()
    first, second = sorted(responses(t), key=lambda r: r[0].sequence)
    assert first[0].status == 0
    assert stored(env, message_id(first[1])).hops == 2
    assert second[0].status == status("ESME_RINVDSTADR")
    assert sum(env.storage.messages().counts().values()) == 1


def test_refused_by_the_charger(env):
    """A prepaid carrier without funds gets ESME_RSUBMITFAIL; a destination
    its tariff does not price gets ESME_RINVDSTADR; nothing is stored."""
    from appliance.messaging.vocabulary import Refused

    class NoPrice(Refused):
        kind = "destination"
    reasons = iter([Refused("Insufficient funds"), NoPrice("no price")])

    class Charger:
        def authorize(self, *a):
            raise next(reasons)
    env.core.set_charger(Charger())
    session, t, _ = env.bind()
    session.dataReceived(submit_sm(2))
    session.dataReceived(submit_sm(3))
    env.settle()
    got = sorted(responses(t), key=lambda r: r[0].sequence)
    assert [h.status for h, _ in got] == [status("ESME_RSUBMITFAIL"),
                                          status("ESME_RINVDSTADR")]
    assert sum(env.storage.messages().counts().values()) == 0


class RecordingCharger:
    """Records the charger calls; refuses while C{refuse} is set."""

    def __init__(self):
        self.calls = []
        self.refuse = None

    def authorize(self, submission, transport, account, route, now):
        self.calls.append(("authorize", submission.parts))
        if self.refuse is not None:
            raise self.refuse
        return f"charge-{len(self.calls)}"

    def accepted(self, raw, message, charge):
        self.calls.append(("accepted", charge, message.parts))

    def state_changed(self, raw, message, state):
        pass


def test_concatenation_authorized_at_first_part(env):
    """The first part of a concatenated message authorizes all the parts
    its UDH announces; the whole is stored with that charge, without a
    second authorization."""
    charger = RecordingCharger()
    env.core.set_charger(charger)
    session, t, _ = env.bind()
    session.dataReceived(udh_part(1, 8, 3, 2, b"two "))
    env.settle()
    assert charger.calls == [("authorize", 3)]
    session.dataReceived(udh_part(2, 8, 3, 1, b"one ") +
                         udh_part(3, 8, 3, 3, b"three"))
    env.settle()
    assert [h.status for h, _ in responses(t)] == [0, 0, 0]
    assert charger.calls == [("authorize", 3), ("accepted", "charge-1", 3)]
    (m,) = env.storage.messages().messages.values()
    assert m.text == "one two three"


def test_refused_first_part_refuses_the_rest(env):
    """A first part the charger refuses gets the refusal, and so do the
    later parts of that reference (no new authorization, nothing held),
    until the group would have timed out; nothing is stored."""
    from appliance.messaging.vocabulary import Refused
    charger = RecordingCharger()
    charger.refuse = Refused("Insufficient balance")
    env.core.set_charger(charger)
    session, t, _ = env.bind()
    session.dataReceived(udh_part(1, 9, 3, 1, b"one "))
    env.settle()
    charger.refuse = None
    session.dataReceived(udh_part(2, 9, 3, 2, b"two ") +
                         udh_part(3, 9, 3, 3, b"three"))
    env.settle()
    assert [h.status for h, _ in responses(t)] == \
        [status("ESME_RSUBMITFAIL")] * 3
    assert charger.calls == [("authorize", 3)]
    assert len(env.storage.domain("smpp").parts) == 0
    assert sum(env.storage.messages().counts().values()) == 0
    env.clock.advance(env.section.reassembly_timeout + 1)
    env.settle()
    session.dataReceived(udh_part(4, 9, 3, 1, b"one "))
    env.settle()
    assert [h.status for h, _ in responses(t)
            if h.command_id == 0x80000004] == [0]
    assert charger.calls[-1] == ("authorize", 3)


def test_refused_later_part_drops_the_held_ones(env):
    """A part refused after another was held (here: after a restart, the
    account disabled meanwhile, the next part is authorized again and
    refused) removes the held part from disk, answers REJECTD for it (it
    asked for a receipt), refuses the rest, and no partial message is ever
    delivered from it, even after the reassembly timeout."""
    from appliance.smpp.server import SMPPServer
    session, t, _ = env.bind()
    session.dataReceived(udh_part(1, 10, 3, 1, b"one "))
    env.settle()
    assert [h.status for h, _ in responses(t)] == [0]
    session.connectionLost(None)
    env.server.stop()
    with env.storage.transaction() as root:
        root.accounts["111222333"].enabled = False
    env.server = SMPPServer(env.storage, env.core, env.clock, env.section)
    env.core.add_state_writer(env.server.courier)
    env.server.start()
    session, t, _ = env.bind()
    session.dataReceived(udh_part(2, 10, 3, 2, b"two ") +
                         udh_part(3, 10, 3, 3, b"three"))
    env.settle()
    got = responses(t)
    statuses = sorted(h.status for h, _ in got
                      if h.command_id == 0x80000004)
    assert statuses == [status("ESME_RINVDSTADR")] * 2
    assert len(env.storage.domain("smpp").parts) == 0
    rejected = [frame for h, frame in got if h.command_id == 0x05]
    assert len(rejected) == 1 and b"stat:REJECTD" in rejected[0]
    env.clock.advance(env.section.reassembly_timeout + 60)
    env.settle()
    assert sum(env.storage.messages().counts().values()) == 0
