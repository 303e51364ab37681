"""
Write the seed corpora of the SIGTRAN upper-layer fuzz harnesses
(C{python -m tests.sigtran.fuzz_seeds}; the files are committed): valid
messages built by pycrate and by the node's encoders.
"""
from __future__ import annotations

import os
from pathlib import Path

from appliance.sigtran import isupcodec as I
from appliance.sigtran import mapcodec as M
from appliance.sigtran import tcapcodec as T
from appliance.sigtran.tpdu import deliver_tpdus, encode_submit
from tests.peers.sigsim import codec as C


def write(name: str, seeds: list[bytes]) -> None:
    d = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / name
    os.makedirs(d, exist_ok=True)
    for n, seed in enumerate(seeds):
        with open(os.path.join(d, f"seed-{n:02d}"), "wb") as f:
            f.write(seed)


def tcap() -> list[bytes]:
    ac = M.ac_name(20, 3)
    out = [T.encode(T.TCMessage(T.TC_BEGIN, otid=b"\x00\x00\x00\x01", dialogue=T.AARQ(ac),
                                components=[T.Invoke(1, 45, M.encode_sri_sm(M.SRIForSM("447900123456", "447700900000")))])),
           T.encode(T.TCMessage(T.TC_BEGIN, otid=b"\x07", dialogue=T.AARQ(M.ac_name(21, 3)), components=[
               T.Invoke(1, 46, M.encode_forward_sm(M.ForwardSM(("sc", "447700900000"), ("msisdn", "447900123456"),
                                                               encode_submit("1111", "hi"))))])),
           T.encode(T.TCMessage(T.TC_BEGIN, otid=b"\x08", dialogue=T.AARQ(M.ac_name(23, 2)), components=[
               T.Invoke(1, 64, M.encode_alert(M.Alert("447900123456", "447700900000")))])),
           T.encode(T.TCMessage(T.TC_END, dtid=b"\x00\x00\x00\x01", dialogue=T.AARE(ac), components=[
               T.ReturnResult(1, 45, M.encode_routing_info(M.RoutingInfo("234150000000001", "19995550002")))])),
           T.encode(T.TCMessage(T.TC_ABORT, dtid=b"\x00\x00\x00\x02", dialogue=T.AARE(
               M.ac_name(20, 2), T.AARE_REJECTED, 1, 2))),
           T.encode(T.TCMessage(T.TC_CONTINUE, otid=b"\x09", dtid=b"\x00\x00\x00\x03", components=[
               T.ReturnError(1, 32, M.encode_delivery_failure(0))])),
           C.tcap_encode(("begin", {"otid": b"\x01\x02", "dialoguePortion": C.dialogue_request(M.ac_name(25, 3)),
                                    "components": [("basicROS", ("invoke", {
                                        "invokeId": ("present", 1), "opcode": ("local", 44),
                                        "argument": ("MT-ForwardSM-Arg", {
                                            "sm-RP-DA": ("imsi", C.tbcd("234150000000001")),
                                            "sm-RP-OA": ("serviceCentreAddressOA", C.isdn("447700900000")),
                                            "sm-RP-UI": deliver_tpdus("447700900002", "hello")[0]})}))]}))]
    return out


def isup() -> list[bytes]:
    num = I.encode_number(I.Number("447900999000"), "called")
    return [I.encode(I.ISUPMessage(5, I.IAM, fixed=[b"\x00", b"\x20\x01", b"\x0a", b"\x00"], variable=[num],
                                   optional={I.P_CALLING: I.encode_number(I.Number("447700900002", 4, 0), "calling"),
                                             I.P_REDIRECTION_INFO: I.encode_redirection(I.Redirection(3, 6, 1, 6))})),
            C.iam(6, "447900999000", "447700900002", 1, "447900123456", "447900123456", 1),
            C.rel(5, 16), C.rlc(5),
            I.encode(I.ISUPMessage(1, I.GRS, variable=[I.range_status(8)])),
            I.encode(I.ISUPMessage(1, I.CGB, fixed=[b"\x00"], variable=[b"\x03\x05"])),
            I.encode(I.ISUPMessage(4, I.BLO)), I.encode(I.ISUPMessage(4, I.RSC))]


def tpdu() -> list[bytes]:
    return deliver_tpdus("447700900002", "x" * 200, scts=0) + deliver_tpdus("Bank", "Héllo €uro ✓ 你好", scts=0) + [
        encode_submit("447900123456", "hi there", 7), encode_submit("1111", "Привет")]


if __name__ == "__main__":
    write("tcap_map", tcap())
    write("isup", isup())
    write("tpdu", tpdu())
