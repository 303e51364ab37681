"""The SMPP server reads source and destination addresses by their TON/NPI
and the carrier's numbering plan before the core sees them."""
import struct

import pytest
from smpp.pdu import pdu_types as T

from tests.smpp.smpp_env import (
    Env, message_id, responses, status, submit_sm)

#: John's DID in E.164 form, and the national forms a carrier may send.
DID = "964111222333"


@pytest.fixture
def env():
    e = Env()
    with e.storage.transaction(note="plan") as root:
        root.numbering.country_code = "964"
        root.numbering.national_prefix = "0"
        root.add_account("John Doe", "john")
        root.add_did("john", DID)
        root.set_account_product("john", "Call & Chat")
        root.add_account("John Doe", "2222")
        root.add_did("2222", "9647702222")
        root.set_account_product("2222", "Call & Chat")
    yield e
    e.close()


def send(env, *pdus):
    """Bind as Carrier1, send the PDUs; @return: the responses by
    sequence number."""
    session, t, _ = env.bind()
    for pdu in pdus:
        session.dataReceived(pdu)
    env.settle()
    return sorted(responses(t), key=lambda r: r[0].sequence)


def stored(env, frame):
    return env.storage.messages().get(int(message_id(frame), 16))


TON = {0: T.AddrTon.UNKNOWN, 1: T.AddrTon.INTERNATIONAL,
       2: T.AddrTon.NATIONAL, 4: T.AddrTon.SUBSCRIBER_NUMBER,
       5: T.AddrTon.ALPHANUMERIC, 6: T.AddrTon.ABBREVIATED}


def to(seq, number, ton, src="AsiaCell", src_ton=5):
    return submit_sm(seq, to=number, src=src, dest_addr_ton=TON[ton],
                     dest_addr_npi=T.AddrNpi.ISDN,
                     source_addr_ton=TON[src_ton])


def test_national_forms_reach_the_did(env):
    """TON 2 with and without the trunk prefix, TON 1, and TON 0 in the
    00 and 0 forms all reach John's DID as one E.164 recipient."""
    got = send(env, to(2, "0111222333", 2), to(3, "111222333", 2),
               to(4, DID, 1), to(5, "00" + DID, 0), to(6, "0111222333", 0),
               to(7, "+" + DID, 0))
    assert [h.status for h, _ in got] == [0] * 6
    for _, frame in got:
        m = stored(env, frame)
        assert (m.recipient, m.account) == (DID, "john")


def test_source_read_by_its_ton(env):
    """A national source (TON 2) is stored in E.164 form; an alphanumeric
    one (TON 5) is kept as the name, digits or not."""
    got = send(env, to(2, DID, 1, src="07701234567", src_ton=2),
               to(3, DID, 1, src="AsiaCell", src_ton=5),
               to(4, DID, 1, src="12345", src_ton=5))
    assert [stored(env, f).sender for _, f in got] == [
        "9647701234567", "AsiaCell", "12345"]


def test_bad_addresses_refused(env):
    """Letters in an international destination get ESME_RINVDSTADR, in an
    international source ESME_RINVSRCADR; nothing is stored."""
    got = send(env, to(2, "12ab", 1), to(3, DID, 1, src="12ab", src_ton=1))
    assert [h.status for h, _ in got] == [status("ESME_RINVDSTADR"),
                                          status("ESME_RINVSRCADR")]
    assert sum(env.storage.messages().counts().values()) == 0


def test_short_codes_are_names(env):
    """An abbreviated destination (TON 6) is a short code: 2222 reaches the
    account of that username, by its DID; 964 matches no E.164 number and
    is refused, although DIDs start with it."""
    got = send(env, to(2, "2222", 6), to(3, "964", 6))
    assert got[0][0].status == 0
    assert stored(env, got[0][1]).recipient == "9647702222"
    assert got[1][0].status == status("ESME_RINVDSTADR")


def test_carrier_override(env):
    """A carrier whose plan reads bare unknown digits as national reaches
    the DID 9647702222 with 7702222; under the node's plan (bare digits
    are E.164) the same number routes nowhere."""
    got = send(env, to(2, "7702222", 0))
    assert got[0][0].status == status("ESME_RINVDSTADR")
    with env.storage.transaction(note="override") as root:
        root.carriers["Carrier1"].plan_unknown_digits = "national"
    got = send(env, to(3, "7702222", 0))
    assert got[0][0].status == 0
    assert stored(env, got[0][1]).recipient == "9647702222"


def test_submit_multi_national(env):
    """submit_multi destinations are read by their own TON: national and
    international forms of the DID are both accepted."""
    body = b"\0" + b"\x05\x00AsiaCell\0" + bytes((2,))
    body += b"\x01\x02\x010111222333\0" + b"\x01\x01\x01" + DID.encode() \
        + b"\0"
    body += b"\x00\x00\x00" + b"\0\0" + b"\x00\x00\x00\x00" + b"\x02hi"
    frame = struct.pack(">IIII", 16 + len(body), 0x21, 0, 9) + body
    (h, resp), = send(env, frame)
    assert h.status == 0
    assert resp[16:].split(b"\0", 1)[1][0] == 0        # no unsuccess_sme
    messages = list(env.storage.messages().messages.values())
    assert [m.recipient for m in messages] == [DID, DID]


def test_data_sm_national(env):
    """data_sm addresses are read by their TON too: a national source and
    destination are stored in E.164 form."""
    from smpp.pdu import operations
    from tests.smpp.smpp_env import with_payload
    frame = with_payload(operations.DataSM, b"code 1234", pdu=True, **dict(
        seq=4, source_addr="07701234567", source_addr_ton=TON[2],
        destination_addr="0111222333", dest_addr_ton=TON[2],
        esm_class=T.EsmClass(T.EsmClassMode.DEFAULT, T.EsmClassType.DEFAULT),
        registered_delivery=T.RegisteredDelivery(
            T.RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED),
        data_coding=T.DataCoding()))
    (h, resp), = send(env, frame)
    assert (h.command_id, h.status) == (0x80000103, 0)
    m = stored(env, resp)
    assert (m.sender, m.recipient) == ("9647701234567", DID)
