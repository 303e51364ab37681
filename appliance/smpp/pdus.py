# -*- test-case-name: tests.smpp.test_smpp_pdus -*-
"""
SMPP 3.4 PDUs on the wire: framing, decoding into C{smpp.pdu3} objects,
and the few encodings C{smpp.pdu3} lacks.

C{smpp.pdu3} (C{smpp.pdu.pdu_encoding.PDUEncoder}) decodes and encodes
every PDU the server handles except C{submit_multi} (it has no encoders
for C{number_of_dests}, C{dest_address} or C{unsuccess_sme}): its
destination list is parsed here and the rest of its body, laid out like a
C{submit_sm}'s, is decoded by the library; C{submit_multi_resp} is built
here.

Pure: no Twisted, no ZODB.
"""
from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from smpp.pdu import operations, pdu_types
from smpp.pdu.constants import (addr_npi_name_map, addr_ton_name_map,
                                command_id_value_map, command_status_name_map)
from smpp.pdu.error import PDUParseError
from smpp.pdu.pdu_encoding import (
    DataCodingEncoder, EsmClassEncoder, PDUEncoder, RegisteredDeliveryEncoder,
)

Status = pdu_types.CommandStatus
HEADER = struct.Struct(">IIII")
#: The largest PDU we accept (a 64 KiB message_payload plus fields).
MAX_PDU = 70_000

SUBMIT_SM = 0x00000004
SUBMIT_MULTI = 0x00000021
SUBMIT_MULTI_RESP = 0x80000021
GENERIC_NACK = 0x80000000
#: Request command ids whose response is the id with the high bit set.
RESPONSE_BIT = 0x80000000

_encoder = PDUEncoder()
_dc = DataCodingEncoder()
_esm = EsmClassEncoder()
_rd = RegisteredDeliveryEncoder()


class FramingError(Exception):
    """
    The stream cannot be split into PDUs any more (a command_length below
    16 or beyond L{MAX_PDU}): the session must close.
    """


class PDUError(Exception):
    """
    One PDU is malformed or not acceptable; the session answers it with
    C{status} and goes on.

    @ivar status: the C{CommandStatus} to answer with.
    """

    def __init__(self, status: pdu_types.CommandStatus, reason: str):
        """
        @param status: the error status.
        @param reason: for the log.
        """
        super().__init__(reason)
        self.status = status


class Header(NamedTuple):
    """
    The 16 header octets of a PDU (a named tuple: two are read per
    message on its way through, and a tuple is built from the unpacked
    octets in a fraction of a frozen dataclass's time).

    @ivar length: command_length.
    @ivar command_id: the raw command id.
    @ivar status: the raw command_status.
    @ivar sequence: sequence_number.
    """
    length: int
    command_id: int
    status: int
    sequence: int

    @property
    def known(self) -> bool:
        """Whether the command id is one SMPP 3.4 defines."""
        return self.command_id in command_id_value_map

    @property
    def is_response(self) -> bool:
        """Whether the command is a response (high bit set)."""
        return bool(self.command_id & RESPONSE_BIT)

    @property
    def name(self) -> str:
        """The command's name, or its hex id if unknown."""
        return command_id_value_map.get(self.command_id,
                                        f"0x{self.command_id:08x}")


_make_header = Header._make


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """
    Cut whole PDUs off the front of a receive buffer.

    @param buffer: the octets received so far.
    @return: the whole PDUs and the incomplete rest.
    @raise FramingError: a command_length makes the stream unreadable.
    """
    frames = []
    offset = 0
    size = len(buffer)
    while size - offset >= 4:
        (length,) = struct.unpack_from(">I", buffer, offset)
        if length < HEADER.size or length > MAX_PDU:
            raise FramingError(f"command_length {length} out of range "
                               f"{HEADER.size}..{MAX_PDU}")
        if size - offset < length:
            break
        frames.append(buffer[offset:offset + length])
        offset += length
    return frames, buffer[offset:]


def header(frame: bytes) -> Header:
    """@return: the header of a whole PDU from L{split_frames}."""
    return _make_header(HEADER.unpack_from(frame))


def decode(frame: bytes) -> pdu_types.PDU:
    """
    Decode a whole PDU with C{smpp.pdu3}.

    @raise PDUError: with the status the library chose (or
        C{ESME_RINVCMDLEN}/C{ESME_RUNKNOWNERR}) for anything malformed.
    """
    try:
        return _encoder.decode(io.BytesIO(frame))
    except PDUParseError as e:
        raise PDUError(e.status, str(e)) from None
    except Exception as e:
        # Broad: on bytes from a peer the library raises ValueError,
        # KeyError, struct.error and more besides its own errors; each is
        # the peer's malformed PDU, answered with its SMPP error (the
        # fuzz harness fuzz/smpp_pdu.py holds decode to PDUError).
        raise PDUError(Status.ESME_RUNKNOWNERR,
                       f"{type(e).__name__}: {e}") from None


def encode(pdu: pdu_types.PDU) -> bytes:
    """Encode a PDU object with C{smpp.pdu3}."""
    return _encoder.encode(pdu)


def status_value(status: pdu_types.CommandStatus) -> int:
    """@return: the wire value of a C{CommandStatus}."""
    return command_status_name_map[status.name]


def bare_response(command_id: int, sequence: int,
                  status: pdu_types.CommandStatus) -> bytes:
    """
    A response with a header and no body: every error response (SMPP 3.4
    lets the body be left out when command_status is not 0), and
    C{generic_nack}, C{unbind_resp} and C{enquire_link_resp}.

    @param command_id: the response's command id.
    """
    return HEADER.pack(HEADER.size, command_id, status_value(status),
                       sequence)


def response_id(request_id: int) -> int:
    """@return: the command id of the response to C{request_id}."""
    return request_id | RESPONSE_BIT


@dataclass(frozen=True)
class Submit:
    """
    The fields of a submit_sm, data_sm or submit_multi the node uses, as
    plain values.

    @ivar recipients: destination addresses (one, except for submit_multi).
    @ivar unsuccess: submit_multi destinations refused while parsing
        (distribution lists), as C{(ton, npi, addr, status)}.
    @ivar body: short_message, or message_payload if that was sent.
    @ivar sar: C{(ref, total, seq)} from the SAR TLVs, items C{None} if
        absent.
    @ivar hops: nodes the message passed (our hop-count TLV, 0 if absent).
    @ivar source_ton: the source address's type of number.
    @ivar source_npi: the source address's numbering plan indicator.
    """
    source: str
    recipients: tuple[tuple[int, int, str], ...]
    esm_class: int
    data_coding: int
    registered_delivery: int
    body: bytes
    sar: tuple[int | None, int | None, int | None]
    unsuccess: tuple[tuple[int, int, str, int], ...] = ()
    hops: int = 0
    source_ton: int = 0
    source_npi: int = 0


def _text(value: bytes | None) -> str:
    return (value or b"").decode("latin-1")


def _code(value: Any, names: dict[str, int]) -> int:
    """The wire value of a decoded TON or NPI (an enum of C{smpp.pdu3},
    or already an int); 0 (unknown) when absent."""
    if value is None:
        return 0
    name = getattr(value, "name", None)
    return names.get(name, 0) if name is not None else int(value)


def submit_fields(pdu: pdu_types.PDU,
                  recipients: tuple[tuple[int, int, str], ...] | None = None,
                  unsuccess: tuple = ()) -> Submit:
    """
    Read the fields of a decoded submit_sm or data_sm (or of the
    submit_sm-shaped body of a submit_multi).

    @param recipients: submit_multi's destinations, parsed by
        L{decode_submit_multi}.
    @raise PDUError: C{ESME_RINVPARLEN} when both short_message and
        message_payload are set.
    """
    p = pdu.params
    short = p.get("short_message") or b""
    payload = p.get("message_payload")
    if payload is not None and short:
        raise PDUError(Status.ESME_RINVPARLEN,
                       "both short_message and message_payload are set")
    if recipients is None:
        recipients = ((_code(p.get("dest_addr_ton"), addr_ton_name_map),
                       _code(p.get("dest_addr_npi"), addr_npi_name_map),
                       _text(p.get("destination_addr"))),)
    dc = p.get("data_coding")
    esm = p.get("esm_class")
    rd = p.get("registered_delivery")
    return Submit(
        source=_text(p.get("source_addr")),
        recipients=recipients,
        esm_class=_esm.encode(esm)[0] if esm is not None else 0,
        data_coding=_dc.encode(dc)[0] if dc is not None else 0,
        registered_delivery=_rd.encode(rd)[0] if rd is not None else 0,
        body=payload if payload is not None else short,
        sar=(p.get("sar_msg_ref_num"), p.get("sar_total_segments"),
             p.get("sar_segment_seqnum")),
        unsuccess=tuple(unsuccess),
        source_ton=_code(p.get("source_addr_ton"), addr_ton_name_map),
        source_npi=_code(p.get("source_addr_npi"), addr_npi_name_map))


def _cstring(frame: bytes, offset: int, limit: int, what: str
             ) -> tuple[bytes, int]:
    end = frame.find(b"\0", offset, offset + limit)
    if end < 0:
        raise PDUError(Status.ESME_RINVPARLEN, f"{what} is not terminated")
    return frame[offset:end], end + 1


def decode_submit_multi(frame: bytes) -> Submit:
    """
    Decode a submit_multi: its destination list here, the rest (laid out
    like a submit_sm's) by C{smpp.pdu3}.

    Distribution-list destinations (dest_flag 2) are not served: they come
    back in C{unsuccess} with C{ESME_RINVDSTADR}.

    @raise PDUError: for a malformed PDU (C{ESME_RINVNUMDESTS} for 0 or
        more than 254 destinations, C{ESME_RINVDESTFLAG} for a bad flag).
    """
    h = header(frame)
    o = HEADER.size
    service_type, o = _cstring(frame, o, 6, "service_type")
    if len(frame) < o + 2:
        raise PDUError(Status.ESME_RINVPARLEN, "truncated source address")
    src_ton, src_npi = frame[o], frame[o + 1]
    source, o = _cstring(frame, o + 2, 21, "source_addr")
    if len(frame) < o + 1:
        raise PDUError(Status.ESME_RINVPARLEN, "no number_of_dests")
    count = frame[o]
    o += 1
    if not 1 <= count <= 254:
        raise PDUError(Status.ESME_RINVNUMDESTS,
                       f"number_of_dests {count} not 1..254")
    recipients, unsuccess = [], []
    for _ in range(count):
        if len(frame) < o + 1:
            raise PDUError(Status.ESME_RINVPARLEN, "truncated dest_address")
        flag = frame[o]
        if flag == 1:
            if len(frame) < o + 3:
                raise PDUError(Status.ESME_RINVPARLEN,
                               "truncated dest_address")
            ton, npi = frame[o + 1], frame[o + 2]
            addr, o = _cstring(frame, o + 3, 21, "destination_addr")
            recipients.append((ton, npi, addr.decode("latin-1")))
        elif flag == 2:
            name, o = _cstring(frame, o + 1, 21, "dl_name")
            unsuccess.append((0, 0, name.decode("latin-1"),
                              status_value(Status.ESME_RINVDSTADR)))
        else:
            raise PDUError(Status.ESME_RINVDESTFLAG,
                           f"dest_flag {flag} is not 1 or 2")
    # Re-shape as a submit_sm with an empty destination and let the
    # library decode the common tail (esm_class ... TLVs).
    body = (service_type + b"\0" + bytes((src_ton, src_npi)) + source
            + b"\0" + b"\0\0\0" + frame[o:])
    shaped = HEADER.pack(HEADER.size + len(body), 0x00000004, 0,
                         h.sequence) + body
    pdu = decode(shaped)
    return submit_fields(pdu, tuple(recipients), tuple(unsuccess))


def submit_multi_resp(sequence: int, message_id: str,
                      unsuccess: list[tuple[int, int, str, int]]) -> bytes:
    """
    Encode a submit_multi_resp.

    @param message_id: the id given to the accepted destinations ("" if
        none was accepted).
    @param unsuccess: C{(ton, npi, addr, error_status)} per refused
        destination.
    """
    body = message_id.encode("ascii") + b"\0" + bytes((len(unsuccess),))
    for ton, npi, addr, error in unsuccess:
        body += bytes((ton & 0xFF, npi & 0xFF)) + \
            addr.encode("latin-1")[:20] + b"\0" + struct.pack(">I", error)
    return HEADER.pack(HEADER.size + len(body), SUBMIT_MULTI_RESP, 0,
                       sequence) + body


def ok_response(request: Header, message_id: str) -> bytes:
    """
    The successful response to a submit_sm or data_sm.

    @param request: the request's header.
    @param message_id: the id to report.
    """
    if request.command_id == SUBMIT_SM:
        return fast_submit_sm_resp(request.sequence, message_id)
    if request.command_id == 0x00000103:
        pdu = operations.DataSMResp(request.sequence, message_id=message_id)
    else:
        pdu = operations.SubmitSMResp(request.sequence,
                                      message_id=message_id)
    return encode(pdu)


def bind_response(request: Header, system_id: str) -> bytes:
    """The successful bind_*_resp, with our system_id and version 3.4."""
    klass = {0x00000001: operations.BindReceiverResp,
             0x00000002: operations.BindTransmitterResp,
             0x00000009: operations.BindTransceiverResp}[request.command_id]
    return encode(klass(request.sequence, system_id=system_id,
                        sc_interface_version=0x34))


def request(command_id: int, sequence: int) -> bytes:
    """A request with no body (enquire_link, unbind)."""
    return HEADER.pack(HEADER.size, command_id, 0, sequence)


# -- the hot path: submit_sm in, submit_sm_resp out, on struct -------------
#
# The generic codec builds a PDU object, enum members and a dict per PDU;
# a submit_sm of the common shape (no TLVs, no schedule or validity time,
# no padding) is read here straight from the octets into a Submit.  Every
# one-octet field is judged by the library itself, once per value (cached),
# and anything of another shape or any value it refuses goes to L{decode},
# so the two always agree (tests/smpp/test_smpp_fastpath.py runs both).

#: Off (C{APPLIANCE_SMPP_FAST_PDUS=0} in the environment) only to bench or
#: profile the generic codec against this one in the same run.
FAST_PDUS = os.environ.get("APPLIANCE_SMPP_FAST_PDUS", "1") != "0"
_MANDATORY = PDUEncoder.DefaultRequiredParamEncoders
_ONE_OCTET: dict[str, dict[int, int | None]] = {}


def _octet(field: str, value: int) -> int | None:
    """
    The value the node reads for a one-octet field, as C{submit_fields}
    would after the library decoded it; C{None} if the library refuses it.
    """
    cache = _ONE_OCTET.setdefault(field, {})
    try:
        return cache[value]
    except KeyError:
        pass
    try:
        decoded = _MANDATORY[field].decode(io.BytesIO(bytes((value,))))
    except PDUParseError:       # every refusal, over all 256 values
        cache[value] = None
        return None
    if field in ("esm_class", "data_coding", "registered_delivery"):
        result = _MANDATORY[field].encode(decoded)[0] \
            if decoded is not None else 0
    elif field.endswith(("_ton", "_npi")):
        result = _code(decoded, addr_ton_name_map if field.endswith("_ton")
                       else addr_npi_name_map)
    else:
        result = value
    cache[value] = result
    return result


def _fast_cstring(frame: bytes, offset: int, size: int
                  ) -> tuple[bytes, int] | None:
    """A C-octet-string of at most C{size} octets with its NUL."""
    end = frame.find(b"\0", offset, offset + size)
    if end < 0:
        return None
    return frame[offset:end], end + 1


def fast_submit_sm(frame: bytes) -> Submit | None:
    """
    Read a submit_sm of the common shape without the generic codec.

    @param frame: a whole submit_sm from L{split_frames}.
    @return: what C{submit_fields(decode(frame))} returns, or C{None} when
        the PDU is not of the common shape (the caller then decodes it
        with the library, which also chooses the error status).
    """
    if not FAST_PDUS:
        return None
    length, command_id, status, _ = HEADER.unpack_from(frame)
    if command_id != SUBMIT_SM or status != 0 or length != len(frame):
        return None
    try:
        got = _fast_cstring(frame, 16, 6)                   # service_type
        if got is None:
            return None
        o = got[1]
        src_ton = _octet("source_addr_ton", frame[o])
        src_npi = _octet("source_addr_npi", frame[o + 1])
        got = _fast_cstring(frame, o + 2, 21)
        if got is None or src_ton is None or src_npi is None:
            return None
        source, o = got
        dst_ton = _octet("dest_addr_ton", frame[o])
        dst_npi = _octet("dest_addr_npi", frame[o + 1])
        got = _fast_cstring(frame, o + 2, 21)
        if got is None or dst_ton is None or dst_npi is None:
            return None
        dest, o = got
        esm = _octet("esm_class", frame[o])
        pid = _octet("protocol_id", frame[o + 1])
        prio = _octet("priority_flag", frame[o + 2])
        # schedule_delivery_time and validity_period empty: two NULs
        if frame[o + 3] or frame[o + 4]:
            return None
        rd = _octet("registered_delivery", frame[o + 5])
        rip = _octet("replace_if_present_flag", frame[o + 6])
        dc = _octet("data_coding", frame[o + 7])
        dmi = _octet("sm_default_msg_id", frame[o + 8])
        sm_length = frame[o + 9]
    except IndexError:
        return None
    o += 10
    if None in (esm, pid, prio, rd, rip, dc, dmi) or sm_length > 254 \
            or o + sm_length != length:
        return None                  # TLVs, padding or a refused value
    return Submit(
        source=source.decode("latin-1"),
        recipients=((dst_ton, dst_npi, dest.decode("latin-1")),),
        esm_class=esm, data_coding=dc, registered_delivery=rd,
        body=frame[o:], sar=(None, None, None),
        source_ton=src_ton, source_npi=src_npi)


_SUBMIT_SM_RESP = 0x80000004


def fast_submit_sm_resp(sequence: int, message_id: str) -> bytes:
    """
    A successful submit_sm_resp, octet for octet what L{ok_response}
    encodes with the library for an ASCII id of at most 64 characters.
    """
    if not FAST_PDUS or len(message_id) > 64 or not message_id.isascii():
        return encode(operations.SubmitSMResp(sequence,
                                              message_id=message_id))
    body = message_id.encode("ascii") + b"\0"
    return HEADER.pack(16 + len(body), _SUBMIT_SM_RESP, 0, sequence) + body


def fast_submit_sm_resp_id(frame: bytes) -> str | None:
    """
    The message_id of a successful submit_sm_resp read straight from the
    octets: what C{decode(frame).params["message_id"]} gives (latin-1,
    C{""} for an empty one), or C{None} when the body is not one
    C-octet-string of at most 65 octets filling the PDU (the caller then
    decodes it with the library).

    @param frame: a whole submit_sm_resp from L{split_frames}.
    """
    if not FAST_PDUS:
        return None
    n = len(frame)
    if n < 17 or n > 16 + 65 or frame[-1] != 0:
        return None
    body = frame[16:-1]
    if b"\0" in body:
        return None
    return body.decode("latin-1")
