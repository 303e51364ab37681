"""
Fuzz the SIP parser and its header and URI parsers: they raise only
L{SIPParseError}, L{HeaderError} and L{URIError}.

The message parser reads the whole input (as a datagram and as a
stream); the header and URI parsers read its first line, any text
without CR or LF: the node hands them one header value at a time, and
the message parser refuses a value holding a control character.  (Fed
the whole input, they spent four fifths of each execution scanning
message text they can never be given.)

    python fuzz/sip_message.py -max_total_time=60 /tmp/new fuzz/corpus/sip_message
"""
from __future__ import annotations

import re
import sys

import atheris

with atheris.instrument_imports():
    from appliance.sip import headers as H
    from appliance.sip import message as M
    from appliance.sip import uri as U

OURS = (M.SIPParseError, H.HeaderError, U.URIError)
_FIRST_LINE = re.compile(r"[^\r\n]*")


def test_one_input(data: bytes) -> None:
    for stream in (False, True):
        try:
            M.parse(data, stream=stream)
        except OURS:
            pass
    text = _FIRST_LINE.match(data.decode("utf-8", "replace")).group()
    for parse in (H.Address.parse, H.Via.parse, H.CSeq.parse, U.URI.parse,
                  U.parse_hostport, U.parse_params, H.split_list):
        try:
            parse(text)
        except OURS:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
