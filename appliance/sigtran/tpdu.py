# -*- test-case-name: tests.sigtran.test_tpdu -*-
"""
SMS transfer-layer PDUs (3GPP TS 23.040 section 9.2.2): SMS-DELIVER,
which the node sends inside MT-ForwardSM, and SMS-SUBMIT, which an MSC
brings inside MO-ForwardSM.  Text is GSM 7-bit packed or UCS-2 (the
codecs of L{appliance.sms.text}), long text is split with the
concatenation user data header, and the invisible "type 0" message is
TP-PID 0x40.  pycrate's C{TS23040_SMS} is the oracle of the tests.

L{decode_submit} and L{decode_deliver} raise only L{TPDUError}.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from appliance.sms.segment import encode_for_sms
from appliance.sms.text import (
    TextCodingError, gsm7_decode, gsm7_encode, gsm7_fill_bits, gsm7_pack,
    gsm7_unpack, ucs2_decode)
from appliance.sms.udh import (
    ConcatenationError, concatenation_from_udh, parse_udh)

MTI_DELIVER, MTI_SUBMIT = 0, 1
PID_DEFAULT = 0x00
PID_TYPE0 = 0x40              # short message type 0: acknowledged, not shown
DCS_GSM7, DCS_8BIT, DCS_UCS2 = 0x00, 0x04, 0x08
TOA_INTERNATIONAL, TOA_UNKNOWN, TOA_ALPHANUMERIC = 0x91, 0x81, 0xD0


class TPDUError(ValueError):
    """A TPDU that cannot be read."""


@dataclass(frozen=True, slots=True)
class Deliver:
    """
    One SMS-DELIVER.

    @ivar sender: TP-OA digits, or alphanumeric text.
    @ivar concat: C{(reference, total, sequence)} of a part, or None.
    """
    sender: str
    text: str
    pid: int = PID_DEFAULT
    dcs: int = DCS_GSM7
    scts: float = 0.0
    more: bool = False
    concat: tuple[int, int, int] | None = None


@dataclass(frozen=True, slots=True)
class Submit:
    """One SMS-SUBMIT as an MS sent it."""
    mr: int
    recipient: str
    text: str
    pid: int = PID_DEFAULT
    dcs: int = DCS_GSM7
    srr: bool = False
    concat: tuple[int, int, int] | None = None


# -- fields -------------------------------------------------------------------

def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1], 16) << 4 | int(digits[i], 16)
                 for i in range(0, len(digits), 2))


def encode_address(number: str) -> bytes:
    """
    @return: a TP-OA/TP-DA: digits as international (a leading C{+} is
        dropped), anything else as alphanumeric GSM 7-bit.
    """
    digits = number.lstrip("+")
    if digits.isdigit() and len(digits) <= 20:
        toa = TOA_INTERNATIONAL if len(digits) > 6 else TOA_UNKNOWN
        return bytes((len(digits), toa)) + _semi_octets(digits)
    try:
        packed = gsm7_pack(gsm7_encode(number[:11]))
    except TextCodingError:
        raise TPDUError(f"sender {number!r} is not GSM 7-bit") from None
    return bytes((len(packed) * 2, TOA_ALPHANUMERIC)) + packed


def decode_address(buf: bytes, pos: int) -> tuple[str, int]:
    """@return: the address at C{pos} and the position after it."""
    n, toa = buf[pos], buf[pos + 1]
    size = (n + 1) // 2
    raw = buf[pos + 2:pos + 2 + size]
    if len(raw) != size or n > 20:
        raise TPDUError("truncated address")
    if toa & 0x70 == 0x50:
        text = gsm7_decode(gsm7_unpack(raw, n * 4 // 7))
        return text, pos + 2 + size
    digits = "".join(f"{o & 0x0F:x}{o >> 4:x}" for o in raw)[:n]
    if not digits.isdigit():
        raise TPDUError("address digits expected")
    return digits, pos + 2 + size


def encode_scts(ts: float) -> bytes:
    """@return: a TP-SCTS for C{ts} (UTC, time zone 0)."""
    t = time.gmtime(ts)
    fields = (t.tm_year % 100, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
              t.tm_sec, 0)
    return bytes((v % 10) << 4 | v // 10 for v in fields)


def _alphabet(dcs: int) -> int:
    group = dcs >> 4
    if group <= 0x3:                # general data coding
        return (dcs >> 2) & 0x03
    if group == 0xF:
        return 1 if dcs & 0x04 else 0
    if group in (0xC, 0xD):
        return 0
    if group == 0xE:
        return 2
    raise TPDUError(f"unsupported TP-DCS {dcs:#04x}")


def _user_data(buf: bytes, pos: int, udhi: bool, dcs: int
               ) -> tuple[str, tuple[int, int, int] | None]:
    udl = buf[pos]
    data = buf[pos + 1:]
    alphabet = _alphabet(dcs)
    header = 0
    concat = None
    if udhi:
        if not data or data[0] + 1 > len(data):
            raise TPDUError("bad user data header")
        header = data[0] + 1
        try:
            elements, _ = parse_udh(data)
            c = concatenation_from_udh(elements)
        except ConcatenationError as e:
            raise TPDUError(str(e)) from None
        if c is not None:
            concat = (c.reference, c.total, c.sequence)
    if alphabet == 0:
        skip = (header * 8 + 6) // 7
        if udl < skip or (udl * 7 + 7) // 8 > len(data):
            raise TPDUError("TP-UDL longer than the user data")
        septets = gsm7_unpack(data[header:], udl - skip,
                              gsm7_fill_bits(header))
        if udl % 8 == 0 and septets.endswith(b"\r"):
            septets = septets[:-1]      # CR padding (TS 23.038 6.1.2.3.1)
        return gsm7_decode(septets), concat
    if udl > len(data) or udl < header:
        raise TPDUError("TP-UDL longer than the user data")
    body = data[header:udl]
    if alphabet == 2:
        return ucs2_decode(body, partial=True), concat
    return body.decode("latin-1"), concat


# -- SMS-DELIVER ------------------------------------------------------------------

def encode_deliver(d: Deliver, ud: bytes, udl: int, udhi: bool) -> bytes:
    """@return: one SMS-DELIVER around prepared user data."""
    first = MTI_DELIVER | (0 if d.more else 0x04) | (0x40 if udhi else 0)
    return bytes((first,)) + encode_address(d.sender) + bytes(
        (d.pid, d.dcs)) + encode_scts(d.scts) + bytes((udl,)) + ud


def deliver_tpdus(sender: str, text: str, *, scts: float | None = None,
                  reference: int = 0, invisible: bool = False
                  ) -> list[bytes]:
    """
    The SMS-DELIVER parts of one message.

    @param sender: TP-OA digits or alphanumeric sender.
    @param text: the text (GSM 7-bit when it fits, else UCS-2).
    @param scts: the service centre time stamp (default: now).
    @param reference: the concatenation reference when parts are needed.
    @param invisible: a type 0 message (TP-PID 0x40): the handset
        acknowledges it without showing or storing it.
    @return: one TPDU per part; all but the last have TP-MMS "more".
    """
    ts = time.time() if scts is None else scts
    coded = encode_for_sms(text, reference & 0xFF)
    dcs = DCS_UCS2 if coded.data_coding == 8 else DCS_GSM7
    pid = PID_TYPE0 if invisible else PID_DEFAULT
    out = []
    for n, segment in enumerate(coded.segments, 1):
        udhi = coded.parts > 1
        header = segment[0] + 1 if udhi else 0
        body = segment[header:]
        if dcs == DCS_GSM7:
            ud = segment[:header] + gsm7_pack(body, gsm7_fill_bits(header))
            udl = (header * 8 + 6) // 7 + len(body)
        else:
            ud, udl = segment, len(segment)
        d = Deliver(sender, text, pid, dcs, ts, more=n < coded.parts)
        out.append(encode_deliver(d, ud, udl, udhi))
    return out


def decode_deliver(buf: bytes) -> Deliver:
    """@raise TPDUError: not a readable SMS-DELIVER."""
    try:
        first = buf[0]
        if first & 0x03 != MTI_DELIVER:
            raise TPDUError("not an SMS-DELIVER")
        sender, pos = decode_address(buf, 1)
        pid, dcs = buf[pos], buf[pos + 1]
        if len(buf) < pos + 10:
            raise TPDUError("truncated SMS-DELIVER")
        text, concat = _user_data(buf, pos + 9, bool(first & 0x40), dcs)
        return Deliver(sender, text, pid, dcs, 0.0, not first & 0x04, concat)
    except (IndexError, TextCodingError) as e:
        raise TPDUError(f"truncated or bad SMS-DELIVER: {e}") from None


# -- SMS-SUBMIT -------------------------------------------------------------------

_VP_LENGTH = {0: 0, 2: 1, 1: 7, 3: 7}


def decode_submit(buf: bytes) -> Submit:
    """@raise TPDUError: not a readable SMS-SUBMIT."""
    try:
        first = buf[0]
        if first & 0x03 != MTI_SUBMIT:
            raise TPDUError("not an SMS-SUBMIT")
        mr = buf[1]
        recipient, pos = decode_address(buf, 2)
        pid, dcs = buf[pos], buf[pos + 1]
        pos += 2 + _VP_LENGTH[(first >> 3) & 0x03]
        if pos >= len(buf):
            raise TPDUError("truncated SMS-SUBMIT")
        text, concat = _user_data(buf, pos, bool(first & 0x40), dcs)
        return Submit(mr, recipient, text, pid, dcs, bool(first & 0x20),
                      concat)
    except (IndexError, TextCodingError) as e:
        raise TPDUError(f"truncated or bad SMS-SUBMIT: {e}") from None


def encode_submit(recipient: str, text: str, mr: int = 0) -> bytes:
    """@return: a one-part SMS-SUBMIT (for tests and tools)."""
    coded = encode_for_sms(text)
    body = coded.segments[0]
    dcs = DCS_UCS2 if coded.data_coding == 8 else DCS_GSM7
    ud, udl = (gsm7_pack(body), len(body)) if dcs == DCS_GSM7 \
        else (body, len(body))
    return bytes((MTI_SUBMIT, mr & 0xFF)) + encode_address(recipient) + \
        bytes((PID_DEFAULT, dcs, udl)) + ud
