# -*- test-case-name: tests.smpp.test_smpp_client_remote -*-
"""
What the SMPP client sends to another node or a vendor SMSC, and how it
reads what comes back.  Pure: C{smpp.pdu3} for the PDUs, no Twisted, no
ZODB.

  - L{submit_frames}: one C{submit_sm} per part of a message (GSM 03.38
    when every character fits, else UCS-2; UDH concatenation with a
    reference per message from L{References}), TON/NPI by L{address_type},
    the hop count in the vendor TLV L{HOPS_TAG}; L{addressed} writes the
    numbers as a connection's numbering plan says.
  - L{read_hops}: the hop count of a raw C{submit_sm} (the SMPP server reads
    it; C{smpp.pdu3} drops vendor TLVs while decoding).
  - L{classify}: a C{submit_sm_resp} status is C{ok}, C{transient} (try
    again later, or on another connection) or C{permanent}.
  - L{parse_receipt}: a C{deliver_sm} receipt's message id and final
    state (C{delivered}, C{failed}, C{expired}).
"""
from __future__ import annotations

import re
import struct
from collections import OrderedDict
from typing import NamedTuple

from smpp.pdu import operations, pdu_types
from smpp.pdu.constants import command_status_value_map

from appliance.model.numbering import (DEFAULT_PLAN, TON_ALPHANUMERIC, Plan,
                                       outbound_address)
from appliance.smpp import pdus
from appliance.sms.segment import SMSEncoding, encode_for_sms

#: The vendor-specific TLV (SMPP 3.4 section 5.3.2: 0x1400-0x3FFF) that
#: carries the number of nodes a message has passed, as one octet.
HOPS_TAG = 0x1420
#: SMPP 3.4 bit 2 of esm_class (0x04): the deliver_sm is a receipt.
_RECEIPT_TYPES = (0x04, 0x20)
_ESM_TYPE_MASK = 0x3C

#: submit_sm_resp statuses worth another attempt (the far side is busy or
#: not ready); everything else that is not ESME_ROK is permanent.
TRANSIENT_STATUSES = frozenset({
    0x00000058,  # ESME_RTHROTTLED
    0x00000014,  # ESME_RMSGQFUL
    0x00000008,  # ESME_RSYSERR
    0x00000064,  # ESME_RX_T_APPN
    0x00000004,  # ESME_RINVBNDSTS (the bind is not ready for submits)
})

#: Receipt stat: words to our final states.  ACCEPTD, ENROUTE and UNKNOWN
#: are not final and map to nothing.
RECEIPT_STATES = {
    "DELIVRD": "delivered",
    "UNDELIV": "failed",
    "REJECTD": "failed",
    "DELETED": "failed",
    "EXPIRED": "expired",
}
#: message_state TLV values (SMPP 3.4 section 5.2.28) to final states.
_MESSAGE_STATES = {2: "delivered", 3: "expired", 4: "failed", 5: "failed",
                   8: "failed"}

_ID_FIELD = re.compile(r"\bid:\s*([^\s]+)", re.IGNORECASE)
_STAT_FIELD = re.compile(r"\bstat:\s*([A-Za-z]+)", re.IGNORECASE)
_ERR_FIELD = re.compile(r"\berr:\s*([^\s]+)", re.IGNORECASE)
_DIGITS = re.compile(r"\+?[0-9]{1,20}")


def status_name(status: int) -> str:
    """
    @param status: a command_status value.
    @return: its SMPP name (C{ESME_RTHROTTLED}), or its hex value.
    """
    entry = command_status_value_map.get(status)
    return entry["name"] if entry else f"0x{status:08x}"


def classify(status: int) -> str:
    """
    Sort a C{submit_sm_resp} status.

    @param status: the command_status.
    @return: C{ok}, C{transient} or C{permanent}.
    """
    if status == 0:
        return "ok"
    return "transient" if status in TRANSIENT_STATUSES else "permanent"


class Address(NamedTuple):
    """
    An SMPP address with its type of number and numbering plan.

    @ivar ton: 1 (international), 2 (national) or 5 (alphanumeric).
    @ivar npi: 1 (ISDN/E.164) or 0 (unknown).
    @ivar addr: the address octets (no C{+}).
    """
    ton: int
    npi: int
    addr: bytes


def address_type(address: str) -> Address:
    """
    Choose TON/NPI for an address: international/ISDN (1/1) for E.164
    digits (a leading C{+} is dropped), alphanumeric (5/0) for anything
    else (a text sender such as C{ACME}, at most 11 characters on the
    wire).

    @param address: the sender or recipient as stored.
    @return: the L{Address}.
    @raise ValueError: for an empty address.
    """
    text = (address or "").strip()
    if not text:
        raise ValueError("an SMPP address cannot be empty")
    if _DIGITS.fullmatch(text):
        return Address(1, 1, text.lstrip("+").encode("ascii"))
    return Address(5, 0, text.encode("latin-1", "replace")[:11])


def address_in(address: str, plan: Plan) -> Address:
    """
    Choose TON/NPI and the digits for an address as a connection's
    numbering plan says (L{appliance.model.numbering.outbound_address}):
    international (1/1) or, for a national-format connection, national
    (2/1) with the trunk prefix; names as in L{address_type}.

    @raise ValueError: for an empty address.
    """
    ton, npi, text = outbound_address(address, plan)
    if ton == TON_ALPHANUMERIC:
        return address_type(address)
    return Address(ton, npi, text.encode("ascii"))


def addressed(outgoing: "Outgoing", plan: Plan) -> "Outgoing":
    """
    @return: C{outgoing} with its source and destination written as
        C{plan} says (the same object under the default plan).
    """
    if plan == DEFAULT_PLAN:
        return outgoing
    return outgoing._replace(
        source=address_in(outgoing.sender, plan),
        destination=address_in(outgoing.recipient, plan))


class References:
    """
    Concatenation references, one counter per destination (0..255, then
    round again), so two long messages to one number in a row never share
    a reference.  Holds at most C{limit} destinations, forgetting the
    least recently used.
    """

    def __init__(self, limit: int = 10000):
        """@param limit: destinations remembered."""
        self.limit = limit
        self._next: OrderedDict[str, int] = OrderedDict()

    def next(self, destination: str) -> int:
        """
        @param destination: the recipient.
        @return: the reference for its next long message.
        """
        value = self._next.pop(destination, 0)
        self._next[destination] = (value + 1) & 0xFF
        while len(self._next) > self.limit:
            self._next.popitem(last=False)
        return value


def hops_tlv(hops: int) -> bytes:
    """
    @param hops: the hop count to send (clamped to 0..255).
    @return: the encoded L{HOPS_TAG} TLV.
    """
    return struct.pack(">HHB", HOPS_TAG, 1, max(0, min(255, hops)))


def with_tlv(frame: bytes, tlv: bytes) -> bytes:
    """
    Append a raw TLV to an encoded PDU and fix its command_length.

    @param frame: a whole PDU.
    @param tlv: the encoded TLV.
    @return: the longer PDU.
    """
    body = frame[4:] + tlv
    return struct.pack(">I", len(body) + 4) + body


_DATA_CODINGS = {
    0: pdu_types.DataCoding(pdu_types.DataCodingScheme.DEFAULT,
                            pdu_types.DataCodingDefault.SMSC_DEFAULT_ALPHABET),
    8: pdu_types.DataCoding(pdu_types.DataCodingScheme.DEFAULT,
                            pdu_types.DataCodingDefault.UCS2),
}


_TONS = {1: pdu_types.AddrTon.INTERNATIONAL, 2: pdu_types.AddrTon.NATIONAL,
         5: pdu_types.AddrTon.ALPHANUMERIC}
_NPIS = {1: pdu_types.AddrNpi.ISDN, 0: pdu_types.AddrNpi.UNKNOWN}


def _esm_class(udhi: bool) -> pdu_types.EsmClass:
    features = {pdu_types.EsmClassGsmFeatures.UDHI_INDICATOR_SET} \
        if udhi else set()
    return pdu_types.EsmClass(pdu_types.EsmClassMode.DEFAULT,
                              pdu_types.EsmClassType.DEFAULT, features)


def _registered(value: int) -> pdu_types.RegisteredDelivery:
    receipt = {
        0: pdu_types.RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED,
        1: pdu_types.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED,
        2: pdu_types.RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED_FOR_FAILURE,
    }[value]
    return pdu_types.RegisteredDelivery(receipt)


_SUBMIT_HEAD = struct.Struct(">IIII")
_SUBMIT_SM = 0x00000004
#: The L{HOPS_TAG} TLV's tag and length (its one value octet follows).
_HOPS_HEAD = struct.pack(">HH", HOPS_TAG, 1)


class Outgoing(NamedTuple):
    """
    A message ready to send: one C{submit_sm} builder per part.

    @ivar encoding: the alphabet and segments chosen.
    @ivar source: the source address.
    @ivar destination: the destination address.
    @ivar registered_delivery: 0, 1 (receipt) or 2 (on failure only).
    @ivar hops: the hop count to send.
    @ivar sender: the source as stored (E.164 digits or a name).
    @ivar recipient: the destination as stored.
    """
    encoding: SMSEncoding
    source: Address
    destination: Address
    registered_delivery: int
    hops: int
    sender: str = ""
    recipient: str = ""

    @property
    def parts(self) -> int:
        """The number of submit_sm it takes."""
        return self.encoding.parts

    def frame(self, part: int, sequence: int) -> bytes:
        """
        Encode one part.

        @param part: 0-based part index.
        @param sequence: the PDU's sequence_number.
        @return: the whole C{submit_sm}, hop TLV included.
        """
        fast = self._fast_frame(part, sequence)
        if fast is not None:
            return fast
        enc = self.encoding
        pdu = operations.SubmitSM(
            sequence,
            source_addr_ton=_TONS[self.source.ton],
            source_addr_npi=_NPIS[self.source.npi],
            source_addr=self.source.addr,
            dest_addr_ton=_TONS[self.destination.ton],
            dest_addr_npi=_NPIS[self.destination.npi],
            destination_addr=self.destination.addr,
            esm_class=_esm_class(enc.parts > 1),
            registered_delivery=_registered(self.registered_delivery),
            data_coding=_DATA_CODINGS[enc.data_coding],
            short_message=enc.segments[part])
        return with_tlv(pdus.encode(pdu), hops_tlv(self.hops))

    def _fast_frame(self, part: int, sequence: int) -> bytes | None:
        """
        L{frame} packed with C{struct} instead of C{smpp.pdu3} (its PDU
        object, enum members and field encoders cost about a third of
        the node's egress), octet for octet what the library encodes;
        C{None} for anything but the shapes L{submit_frames} makes (the
        library then encodes it, and refuses what it must).
        """
        if not pdus.FAST_PDUS:
            return None
        enc = self.encoding
        src, dst = self.source, self.destination
        message = enc.segments[part]
        rd = self.registered_delivery
        if (len(src.addr) > 20 or len(dst.addr) > 20 or b"\0" in src.addr
                or b"\0" in dst.addr or len(message) > 254
                or src.ton not in _TONS or dst.ton not in _TONS
                or src.npi not in _NPIS or dst.npi not in _NPIS
                or enc.data_coding not in _DATA_CODINGS
                or rd not in (0, 1, 2)):
            return None
        body = b"".join((
            b"\0", bytes((src.ton, src.npi)), src.addr, b"\0",
            bytes((dst.ton, dst.npi)), dst.addr, b"\0",
            # esm_class, protocol_id, priority_flag, the two empty times,
            # registered_delivery, replace_if_present_flag, data_coding,
            # sm_default_msg_id, sm_length
            bytes((0x40 if enc.parts > 1 else 0, 0, 0, 0, 0, rd, 0,
                   enc.data_coding, 0, len(message))),
            message, _HOPS_HEAD, bytes((max(0, min(255, self.hops)),))))
        return _SUBMIT_HEAD.pack(16 + len(body), _SUBMIT_SM, 0,
                                 sequence) + body


def submit_frames(sender: str, recipient: str, text: str, reference: int,
                  hops: int, registered_delivery: int = 1,
                  encoding: str | None = None) -> Outgoing:
    """
    Prepare a message for C{submit_sm}.

    @param sender: digits or an alphanumeric sender.
    @param recipient: the destination (E.164 digits).
    @param text: the message text.
    @param reference: the concatenation reference (L{References}).
    @param hops: the hop count to put in the TLV (ours plus one).
    @param registered_delivery: 1 asks for a receipt.
    @param encoding: the message's stored encoding: C{ucs2} is sent in
        UCS-2 (data_coding 8) whatever the text; otherwise the alphabet
        is chosen by the text (GSM 7-bit when it fits).
    @return: the L{Outgoing} message.
    @raise ValueError: an empty address, or text that cannot be sent
        (L{appliance.sms.segment.TextTooLong} and the text codec errors
        are C{ValueError}s).
    """
    if registered_delivery not in (0, 1, 2):
        raise ValueError(f"registered_delivery {registered_delivery} "
                         "is not 0, 1 or 2")
    return Outgoing(encode_for_sms(text, reference,
                                   ucs2=encoding == "ucs2"),
                    address_type(sender),
                    address_type(recipient), registered_delivery, hops,
                    sender, recipient)


def _skip_cstring(frame: bytes, offset: int) -> int:
    end = frame.index(b"\0", offset)
    return end + 1


def read_hops(frame: bytes) -> int | None:
    """
    Find the L{HOPS_TAG} TLV in a raw C{submit_sm}.

    @param frame: the whole PDU.
    @return: the hop count, or C{None} if the TLV is absent or the PDU
        cannot be walked.
    """
    try:
        o = pdus.HEADER.size
        o = _skip_cstring(frame, o)          # service_type
        o = _skip_cstring(frame, o + 2)      # source ton, npi, addr
        o = _skip_cstring(frame, o + 2)      # dest ton, npi, addr
        o += 3                               # esm_class, protocol_id, priority
        o = _skip_cstring(frame, o)          # schedule_delivery_time
        o = _skip_cstring(frame, o)          # validity_period
        o += 4                               # registered ... sm_default_msg_id
        o += 1 + frame[o]                    # sm_length, short_message
        while o + 4 <= len(frame):
            tag, length = struct.unpack_from(">HH", frame, o)
            o += 4
            if tag == HOPS_TAG and length >= 1 and o < len(frame):
                return frame[o]
            o += length
    except (ValueError, IndexError):
        return None
    return None


class ReceiptInfo(NamedTuple):
    """
    A receipt from the far side.

    @ivar message_id: the id as the far side wrote it.
    @ivar state: C{delivered}, C{failed}, C{expired}, or C{None} for an
        intermediate state (ENROUTE, ACCEPTD...).
    @ivar stat: the stat word (or message_state name) as received.
    @ivar error: the C{err:} field, if any.
    """
    message_id: str
    state: str | None
    stat: str
    error: str


def is_receipt(esm_class: int) -> bool:
    """
    @param esm_class: a deliver_sm's esm_class octet.
    @return: whether it carries a delivery receipt (SMSC receipt or
        intermediate notification).
    """
    return (esm_class & _ESM_TYPE_MASK) in _RECEIPT_TYPES


def parse_receipt(params: dict) -> ReceiptInfo | None:
    """
    Read a receipt's id and state from a decoded C{deliver_sm}'s params:
    the C{receipted_message_id} TLV first, else the C{id:} of the text;
    the C{stat:} word of the text first, else the C{message_state} TLV.

    @param params: C{pdu.params} of the decoded deliver_sm.
    @return: the L{ReceiptInfo}, or C{None} when no id can be found.
    """
    raw = params.get("short_message") or params.get("message_payload") or b""
    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    mid = params.get("receipted_message_id")
    if isinstance(mid, bytes):
        mid = mid.decode("latin-1")
    if not mid:
        match = _ID_FIELD.search(text)
        mid = match.group(1) if match else None
    if not mid:
        return None
    stat_match = _STAT_FIELD.search(text)
    err_match = _ERR_FIELD.search(text)
    error = err_match.group(1) if err_match else ""
    if stat_match:
        stat = stat_match.group(1).upper()
        return ReceiptInfo(mid, RECEIPT_STATES.get(stat), stat, error)
    state = params.get("message_state")
    if state is not None:
        value = getattr(state, "value", state)
        name = getattr(state, "name", str(state))
        return ReceiptInfo(mid, _MESSAGE_STATES.get(value), name, error)
    return ReceiptInfo(mid, None, "", error)
