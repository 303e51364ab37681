"""
pycrate as the independent oracle of the SIGTRAN codecs' tests: its
encoders build the reference octets, its decoders read ours.
"""
from __future__ import annotations

from pycrate_asn1dir import TCAP_MAP

TC = TCAP_MAP.TCAP_MAP_Messages.TCAP_MAP_Message
AS_ID = (0, 0, 17, 773, 1, 1, 1)


def tbcd(digits: str) -> bytes:
    """TBCD by hand, independent of the node's."""
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1], 16) << 4 | int(digits[i], 16)
                 for i in range(0, len(digits), 2))


def isdn(digits: str) -> bytes:
    """An international ISDN AddressString."""
    return b"\x91" + tbcd(digits)


def encode(value) -> bytes:
    """@return: pycrate's BER of a TCAP_MAP_Message value."""
    TC.set_val(value)
    return TC.to_ber()


def decode(data: bytes):
    """@return: pycrate's reading of TCAP octets, with the re-encoding."""
    TC.from_ber(data)
    return TC.get_val(), TC.to_ber()


def request(ac):
    """A dialogue portion carrying an AARQ for C{ac}."""
    return {"direct-reference": AS_ID, "encoding": (
        "single-ASN1-type", ("DialoguePDU", ("dialogueRequest", {
            "protocol-version": (1, 1), "application-context-name": ac})))}


def response(ac, result=0, diag=("dialogue-service-user", 0)):
    """A dialogue portion carrying an AARE."""
    return {"direct-reference": AS_ID, "encoding": (
        "single-ASN1-type", ("DialoguePDU", ("dialogueResponse", {
            "protocol-version": (1, 1), "application-context-name": ac,
            "result": result, "result-source-diagnostic": diag})))}


def invoke(iid, op, arg_type, arg):
    """An invoke component."""
    return ("basicROS", ("invoke", {"invokeId": ("present", iid),
                                    "opcode": ("local", op),
                                    "argument": (arg_type, arg)}))


def result(iid, op, res_type, res):
    """A returnResultLast component."""
    return ("basicROS", ("returnResult", {"invokeId": ("present", iid),
                                          "result": {"opcode": ("local", op),
                                                     "result": (res_type,
                                                                res)}}))


def error(iid, code, param_type=None, param=None):
    """A returnError component."""
    body = {"invokeId": ("present", iid), "errcode": ("local", code)}
    if param_type:
        body["parameter"] = (param_type, param)
    return ("basicROS", ("returnError", body))
