"""
Fuzz UDH/SAR parsing and the short message text codecs: they raise only
L{ConcatenationError} and L{TextCodingError}.

    python fuzz/smpp_text.py -max_total_time=60 /tmp/new fuzz/corpus/smpp_text
"""
from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from appliance.sms import text as T
    from appliance.sms import udh as U


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    esm = fdp.ConsumeInt(1)
    dc = fdp.ConsumeInt(1)
    packed = fdp.ConsumeBool()
    sar = [fdp.ConsumeIntInRange(-1, 0xFFFF) for _ in range(3)]
    payload = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        U.concatenation_from_sar(*(None if v < 0 else v for v in sar))
    except U.ConcatenationError:
        pass
    try:
        elements, body, udhl = U.split_user_data(payload, esm)
        U.concatenation_from_udh(elements)
    except U.ConcatenationError:
        elements, body, udhl = (), payload, 0
    for partial in (False, True):
        try:
            T.decode_short_message(dc, body, packed=packed, udh_length=udhl,
                                   partial=partial)
        except T.TextCodingError:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
