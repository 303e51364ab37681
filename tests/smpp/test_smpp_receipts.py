"""Delivery receipts: text, deliver_sm, durable queue, retries."""
import struct

import pytest

from appliance.smpp import pdus
from appliance.smpp import receipts as R
from appliance.sms.udh import concatenation_udh
from tests.smpp.smpp_env import Env, message_id, responses, submit_sm


@pytest.fixture
def env():
    e = Env()
    yield e
    e.close()


def test_receipt_text():
    """The receipt text has the standard fields, UTC dates, and the first
    20 characters of the text (non-ASCII as '?')."""
    r = R.Receipt("1a2b", "failed", 0.0, 86400 + 3600 + 60, "héllo " * 5,
                  "Asia", "111")
    assert R.receipt_text(r) == (
        "id:1a2b sub:001 dlvrd:000 submit date:7001010000 done "
        "date:7001020101 stat:UNDELIV err:001 text:h?llo h?llo h?llo h?")


@pytest.mark.parametrize("rd,state,wanted", [
    (0, "delivered", False), (1, "delivered", True), (1, "failed", True),
    (2, "delivered", False), (2, "expired", True), (3, "delivered", True)])
def test_wants_receipt(rd, state, wanted):
    """registered_delivery 1 asks on any outcome, 2 on failure only."""
    assert R.wants_receipt(rd, state) is wanted


def decode_deliver(frame):
    pdu = pdus.decode(frame)
    return pdu.params


def ack(session, h, status=0):
    session.dataReceived(struct.pack(">IIII", 16, 0x80000005, status,
                                     h.sequence))


def submit_and_deliver(env, session, t, rd=1, outcome="delivered"):
    session.dataReceived(submit_sm(2, b"code 1234", rd=rd))
    env.settle()
    (_, frame), = responses(t)
    mid = message_id(frame)
    env.agent.answer(outcome)
    env.settle()
    return mid


def test_receipt_to_transceiver(env):
    """A delivered message that asked for a receipt gets a deliver_sm with
    esm_class 0x04, receipted_message_id = the submit_sm_resp id,
    message_state DELIVERED and stat:DELIVRD; the deliver_sm_resp removes
    it from the database."""
    session, t, _ = env.bind()
    mid = submit_and_deliver(env, session, t)
    (h, frame), = responses(t)
    assert h.command_id == 0x00000005
    assert frame[16:].split(b"\0")[3] == b"111222333"  # from the handset
    params = decode_deliver(frame)
    assert params["receipted_message_id"] == mid.encode()
    assert params["message_state"].name == "DELIVERED"
    assert params["esm_class"].type.name == "SMSC_DELIVERY_RECEIPT"
    assert params["short_message"].startswith(f"id:{mid} sub:001".encode())
    assert b"stat:DELIVRD err:000 text:code 1234" in params["short_message"]
    assert len(env.storage.domain("smpp").receipts) == 1
    ack(session, h)
    env.settle()
    assert len(env.storage.domain("smpp").receipts) == 0
    assert env.server.courier.sent["Carrier1"] == 1


def test_no_receipt_when_not_asked(env):
    """registered_delivery 0: no receipt is stored or sent."""
    session, t, _ = env.bind()
    submit_and_deliver(env, session, t, rd=0)
    assert responses(t) == []
    assert len(env.storage.domain("smpp").receipts) == 0


def test_receipt_waits_for_receiver_bind(env):
    """With only a transmitter bound, the receipt waits in the database;
    when a receiver binds it is sent there."""
    tx, t, _ = env.bind("transmitter")
    mid = submit_and_deliver(env, tx, t, outcome="failed")
    assert responses(t) == []
    assert len(env.storage.domain("smpp").receipts) == 1
    rx, rt, _ = env.bind("receiver")
    (h, frame), = responses(rt)
    params = decode_deliver(frame)
    assert params["receipted_message_id"] == mid.encode()
    assert b"stat:UNDELIV" in params["short_message"]


def test_receipt_survives_restart(env):
    """A pending receipt is reloaded by a new server and sent on bind."""
    tx, t, _ = env.bind("transmitter")
    mid = submit_and_deliver(env, tx, t)
    tx.connectionLost(None)
    env.server.stop()
    from appliance.smpp.server import SMPPServer
    env.server = SMPPServer(env.storage, env.core, env.clock, env.section)
    env.server.start()
    rx, rt, _ = env.bind("receiver")
    (h, frame), = responses(rt)
    assert decode_deliver(frame)["receipted_message_id"] == mid.encode()


def test_receipt_retried_after_error_and_timeout(env):
    """An error deliver_sm_resp, then no response at all: the receipt is
    sent again at each retry tick until acknowledged."""
    session, t, _ = env.bind()
    submit_and_deliver(env, session, t)
    (h, _), = responses(t)
    ack(session, h, status=0x08)
    env.clock.advance(30)
    sent = [x for x in responses(t) if x[0].command_id == 5]
    assert len(sent) == 1
    env.clock.advance(30)      # response timeout, then the next tick
    env.clock.advance(30)
    again = [x for x in responses(t) if x[0].command_id == 5]
    assert len(again) >= 1
    for h, _ in again:
        ack(session, h)
    env.settle()
    assert len(env.storage.domain("smpp").receipts) == 0


def test_receipt_round_robin(env):
    """Receipts alternate between the carrier's receiving binds."""
    tx, t, _ = env.bind("transmitter")
    a, at, _ = env.bind("receiver")
    b, bt, _ = env.bind("receiver")
    for seq in (2, 3):
        tx.dataReceived(submit_sm(seq, b"x", rd=1))
    env.settle()
    env.agent.answer("delivered")
    env.agent.answer("delivered")
    env.settle()
    assert len(responses(at)) == 1 and len(responses(bt)) == 1


def test_receipts_per_part(env):
    """A reassembled message's receipt goes out once per part, each with
    the id that part got in its submit_sm_resp."""
    session, t, _ = env.bind()
    for n in (1, 2):
        session.dataReceived(submit_sm(
            n, concatenation_udh(5, 2, n) + b"part", esm=True, rd=1))
    env.settle()
    ids = sorted(message_id(f) for _, f in responses(t))
    env.agent.answer("delivered")
    env.settle()
    got = sorted(decode_deliver(f)["receipted_message_id"].decode()
                 for _, f in responses(t))
    assert got == ids


def test_receipt_commits_with_the_final_state(env):
    """The receipt a carrier is owed is written in the very commit that
    makes its message final: after that one commit both are on disk (a
    crash right after it keeps both), before it neither is."""
    tx, t, _ = env.bind("transmitter")
    tx.dataReceived(submit_sm(2, b"code 1234", rd=1))
    env.settle()
    (_, frame), = responses(t)
    mid = message_id(frame)
    (view, d), = env.agent.calls
    commits = env.storage.commits
    smpp = env.storage.domain("smpp")
    env.agent.answer("delivered")
    assert env.storage.messages().get(view.id).state != "delivered"
    assert len(smpp.receipts) == 0
    env.storage.flush()
    assert env.storage.commits == commits + 1
    assert env.storage.messages().get(view.id).state == "delivered"
    (record,), = [tuple(smpp.receipts.values())]
    assert record[:2] == (mid, "delivered")
    # A new server (the node restarted) sends it exactly once.
    tx.connectionLost(None)
    env.server.stop()
    from appliance.smpp.server import SMPPServer
    env.server = SMPPServer(env.storage, env.core, env.clock, env.section)
    env.server.start()
    rx, rt, _ = env.bind("receiver")
    (h, frame), = responses(rt)
    assert decode_deliver(frame)["receipted_message_id"] == mid.encode()
    ack(rx, h)
    env.settle()
    env.clock.advance(60)
    env.settle()
    assert [h for h, _ in responses(rt) if h.command_id == 0x05] == []
    assert len(smpp.receipts) == 0
