"""
The simulator's codecs: thin wrappers over pycrate, nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass

from pycrate_asn1dir import TCAP_MAP
from pycrate_mobile import M3UA as P3
from pycrate_mobile import ISUP as PI
from pycrate_mobile.SCCP import SCCPUnitData, parse_SCCP

TC = TCAP_MAP.TCAP_MAP_Messages.TCAP_MAP_Message
AS_ID = (0, 0, 17, 773, 1, 1, 1)
TAG_RC, TAG_PD, TAG_RK, TAG_LRKID, TAG_DPC = 0x0006, 0x0210, 0x0207, \
    0x020A, 0x020B
TAG_REG_RESULT, TAG_REG_STATUS = 0x0208, 0x0212


def tbcd(digits: str) -> bytes:
    """Digits as TBCD with the F filler."""
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1], 16) << 4 | int(digits[i], 16)
                 for i in range(0, len(digits), 2))


def untbcd(data: bytes) -> str:
    """TBCD octets to digits (filler dropped)."""
    out = []
    for o in data:
        for n in (o & 0x0F, o >> 4):
            if n == 0x0F:
                return "".join(out)
            out.append("0123456789*#abc"[n])
    return "".join(out)


def isdn(digits: str) -> bytes:
    """An international ISDN AddressString."""
    return b"\x91" + tbcd(digits)


# -- M3UA ------------------------------------------------------------------

def m3ua_frames(buf: bytearray) -> list[bytes]:
    """Cut whole M3UA messages off the front of C{buf} (TCP framing)."""
    out = []
    while len(buf) >= 8:
        n = int.from_bytes(buf[4:8], "big")
        if n < 8:
            raise ValueError("bad M3UA length")
        if len(buf) < n:
            break
        out.append(bytes(buf[:n]))
        del buf[:n]
    return out


def m3ua_parse(data: bytes):
    """@return: pycrate's message object (raises on error)."""
    msg, err = P3.parse_M3UA(data)
    if err:
        raise ValueError(f"pycrate M3UA error {err}")
    return msg


def params(msg) -> dict[int, object]:
    """Tag to value of a parsed M3UA message's parameters."""
    out = {}
    for p in msg.get_val()[1]:
        out.setdefault(p[0], p[2])
    return out


def aspup() -> bytes:
    return P3.M3UA_ASPUp().to_bytes()


def aspac(rc: int | None) -> bytes:
    m = P3.M3UA_ASPAct()
    vals = [{"Tag": 0x000B, "Val": 1}]                    # override
    if rc is not None:
        vals.append({"Tag": TAG_RC, "Val": [rc]})
    m.set_val({"ParamsASPAct": vals})
    return m.to_bytes()


def regreq(pc: int) -> bytes:
    m = P3.M3UA_REGREQ()
    m.set_val({"ParamsREGREQ": [{"Tag": TAG_RK, "Val": [
        {"Tag": TAG_LRKID, "Val": 1}, {"Tag": TAG_DPC, "Val": {"Mask": 0, "PC": pc}}]}]})
    return m.to_bytes()


def beat_ack(data: bytes) -> bytes:
    m = P3.M3UA_BEATAck()
    m.set_val({"ParamsBEATAck": [{"Tag": 0x0009, "Val": data}]})
    return m.to_bytes()


def data(rc: int | None, opc: int, dpc: int, si: int, ni: int, sls: int,
         payload: bytes) -> bytes:
    vals = []
    if rc is not None:
        vals.append({"Tag": TAG_RC, "Val": [rc]})
    vals.append({"Tag": TAG_PD, "Val": {"OPC": opc, "DPC": dpc, "SI": si, "NI": ni,
                                        "MP": 0, "SLS": sls, "Data": payload}})
    m = P3.M3UA_DATA()
    m.set_val({"ParamsDATA": vals})
    return m.to_bytes()


# -- SCCP ------------------------------------------------------------------

def gt_address(digits: str, ssn: int) -> dict:
    return {"AddrInd": {"res": 0, "RoutingInd": 0, "GTInd": 4, "SSNInd": 1, "PCInd": 0},
            "SSN": ssn, "GT": {"TranslationType": 0, "NumberingPlan": 1,
                               "EncodingScheme": 1 + (len(digits) % 2 == 0), "spare": 0,
                               "NAI": 4, "Addr": digits}}


@dataclass
class Unitdata:
    """A UDT/XUDT as the simulator reads it."""
    called_gt: str | None
    called_ssn: int | None
    calling_gt: str | None
    calling_ssn: int | None
    data: bytes


def _addr(value) -> tuple[str | None, int | None]:
    ind = value["AddrInd"]
    ssn = value["SSN"].get_val() if ind["SSNInd"].get_val() else None
    gt = None
    if ind["GTInd"].get_val() == 4:
        raw = value["GT"]["Addr"].to_bytes()
        odd = value["GT"]["EncodingScheme"].get_val() == 1
        gt = "".join(f"{o & 15:x}{o >> 4:x}" for o in raw)
        gt = gt[:-1] if odd else gt
    return gt, ssn


def sccp_parse(payload: bytes) -> Unitdata:
    msg, err = parse_SCCP(payload)
    if err:
        raise ValueError(f"pycrate SCCP error {err}")
    called = _addr(msg["CalledPartyAddr"]["Value"])
    calling = _addr(msg["CallingPartyAddr"]["Value"])
    return Unitdata(called[0], called[1], calling[0], calling[1],
                    msg["Data"]["Value"].get_val())


def udt(called_gt: str, called_ssn: int, calling_gt: str, calling_ssn: int,
        payload: bytes) -> bytes:
    u = SCCPUnitData()
    u.set_val({"ProtocolClass": {"Handling": 8, "Class": 0},
               "CalledPartyAddr": {"Value": gt_address(called_gt, called_ssn)},
               "CallingPartyAddr": {"Value": gt_address(calling_gt, calling_ssn)},
               "Data": {"Value": payload}})
    return u.to_bytes()


# -- TCAP / MAP ----------------------------------------------------------------

def tcap_decode(data: bytes):
    """@return: pycrate's value of a TCAP message: (kind, dict)."""
    TC.from_ber(data)
    return TC.get_val()


def tcap_encode(value) -> bytes:
    TC.set_val(value)
    return TC.to_ber()


def dialogue_request(ac):
    return {"direct-reference": AS_ID, "encoding": ("single-ASN1-type", ("DialoguePDU", (
        "dialogueRequest", {"protocol-version": (1, 1), "application-context-name": ac})))}


def dialogue_response(ac, result=0, diag=0):
    return {"direct-reference": AS_ID, "encoding": ("single-ASN1-type", ("DialoguePDU", (
        "dialogueResponse", {"protocol-version": (1, 1), "application-context-name": ac,
                             "result": result,
                             "result-source-diagnostic": ("dialogue-service-user", diag)})))}


def ac_of(body) -> tuple | None:
    """The application context of a dialogue portion, or None."""
    portion = body.get("dialoguePortion")
    if not portion:
        return None
    return portion["encoding"][1][1][1]["application-context-name"]


# -- ISUP -------------------------------------------------------------------------

def isup_parse(payload: bytes):
    msg, err = PI.parse_ISUP(payload)
    if err:
        raise ValueError(f"pycrate ISUP error {err}")
    return msg


def _number(digits: str, **extra) -> dict:
    return dict({"OE": len(digits) % 2, "NAI": 4, "NumPlan": 1, "Num": digits}, **extra)


def iam(cic: int, called: str, calling: str | None, presentation: int,
        original: str | None, redirecting: str | None,
        reason: int | None) -> bytes:
    m = PI.InitialAddress()
    opt = {}
    if calling is not None:
        opt["CallingPartyNum"] = {"CallingPartyNum": _number(
            calling, AddrPresInd=presentation, ScreeningInd=3)}
    if original is not None:
        opt["OriginalCalledNum"] = {"OriginalCalledNum": _number(original, AddrPresInd=0)}
    if redirecting is not None:
        opt["RedirectingNum"] = {"RedirectingNum": _number(redirecting, AddrPresInd=0)}
    if reason is not None:
        opt["RedirectionInfo"] = {"RedirectionInfo": {
            "RedirectingInd": 3, "OriginalRedirectReason": reason,
            "RedirectingReason": reason, "RedirectCounter": 1}}
    m.set_val({"CIC": cic, "CallingPartyCat": 10,
               "ForwardCallInd": {"ISDNUserPartInd": 1},
               "CalledPartyNum": {"CalledPartyNum": _number(called)}, "Opt": opt})
    for name in list(opt) + ["EOO"]:
        m["Opt"][name].set_trans(False)
    return m.to_bytes()


def isup_simple(cls_name: str, cic: int) -> bytes:
    m = getattr(PI, cls_name)()
    m.set_val({"CIC": cic})
    if "Opt" in m._by_name:
        pass
    return m.to_bytes()


def rlc(cic: int) -> bytes:
    return isup_simple("ReleaseComplete", cic)


def rel(cic: int, cause: int) -> bytes:
    m = PI.Release()
    m.set_val({"CIC": cic, "CauseInd": {"CauseInd": {
        "ext": 1, "Class": cause >> 4, "Cause": cause & 0x0F}}})
    return m.to_bytes()


def cause_of(msg) -> int:
    ci = msg["CauseInd"]["CauseInd"]
    return ci["Class"].get_val() << 4 | ci["Cause"].get_val()
