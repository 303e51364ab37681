"""
A tiny M3UA ASP for the tests, built on pycrate's M3UA and SCCP codecs
(not the node's), so a bug in the node's codec cannot hide in both ends.
It connects over TCP, brings itself up (ASPUP, REG REQ for its point
code, ASPAC), sends DATA and collects what arrives, and answers BEATs.
"""
from __future__ import annotations

import socket
import time

from pycrate_mobile.M3UA import (
    M3UA_ASPAct, M3UA_ASPUp, M3UA_BEAT, M3UA_BEATAck, M3UA_DATA,
    M3UA_REGREQ, parse_M3UA)
from pycrate_mobile.SCCP import SCCPUnitData, parse_SCCP


def gt_address(digits: str, ssn: int) -> dict:
    """A pycrate SCCP address: GT (E.164, NAI international) + SSN."""
    return {"AddrInd": {"res": 0, "RoutingInd": 0, "GTInd": 4, "SSNInd": 1,
                        "PCInd": 0}, "SSN": ssn,
            "GT": {"TranslationType": 0, "NumberingPlan": 1,
                   "EncodingScheme": 1 + (len(digits) % 2 == 0), "spare": 0,
                   "NAI": 4, "Addr": digits}}


def udt(called: str, called_ssn: int, calling: str, calling_ssn: int,
        data: bytes) -> bytes:
    """A UDT with return on error, by pycrate."""
    u = SCCPUnitData()
    u.set_val({"ProtocolClass": {"Handling": 8, "Class": 0},
               "CalledPartyAddr": {"Value": gt_address(called, called_ssn)},
               "CallingPartyAddr": {"Value": gt_address(calling, calling_ssn)},
               "Data": {"Value": data}})
    return u.to_bytes()


class PycrateASP:
    """
    A blocking M3UA ASP.

    @ivar frames: every frame sent (C{">"}) and received (C{"<"}), in order.
    @ivar rc: the routing context the STP gave our routing key.
    """

    def __init__(self, port: int, point_code: int):
        self.point_code = point_code
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.frames: list[tuple[str, bytes]] = []
        self.rc: int | None = None
        self.received: list = []

    def send(self, msg) -> None:
        raw = msg.to_bytes()
        self.frames.append((">", raw))
        self.sock.sendall(raw)

    def recv(self, timeout: float = 10.0):
        """@return: the next message (answering BEATs on the way)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 8:
                n = int.from_bytes(self.buffer[4:8], "big")
                if len(self.buffer) >= n:
                    raw, self.buffer = self.buffer[:n], self.buffer[n:]
                    self.frames.append(("<", raw))
                    msg, err = parse_M3UA(raw)
                    assert err == 0, (err, raw.hex())
                    if isinstance(msg, M3UA_BEAT):
                        ack = M3UA_BEATAck()
                        ack.set_val({"ParamsBEATAck": msg["ParamsBEAT"].get_val()})
                        self.send(ack)
                        continue
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no M3UA message")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the peer")
            self.buffer += chunk

    def expect(self, cls, timeout: float = 10.0):
        """@return: the next message of class C{cls} (others kept)."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(max(0.01, deadline - time.monotonic()))
            if isinstance(msg, cls):
                return msg
            self.received.append(msg)

    def up(self) -> None:
        """ASPUP, REG REQ (dynamic routing key for our PC), ASPAC."""
        from pycrate_mobile.M3UA import M3UA_ASPActAck, M3UA_ASPUpAck, M3UA_REGRSP
        self.send(M3UA_ASPUp())
        self.expect(M3UA_ASPUpAck)
        reg = M3UA_REGREQ()
        reg.set_val({"ParamsREGREQ": [{"Tag": 0x0207, "Val": [
            {"Tag": 0x020a, "Val": 1},
            {"Tag": 0x020b, "Val": {"Mask": 0, "PC": self.point_code}}]}]})
        self.send(reg)
        rsp = self.expect(M3UA_REGRSP)
        result = rsp.get_val()[1][0][2]
        self.rc = [p[2] for p in result if p[0] == 0x0006][0][0]
        act = M3UA_ASPAct()
        act.set_val({"ParamsASPAct": [{"Tag": 0x000b, "Val": 1},
                                      {"Tag": 0x0006, "Val": [self.rc]}]})
        self.send(act)
        self.expect(M3UA_ASPActAck)

    def data(self, dpc: int, payload: bytes, si: int = 3, sls: int = 0) -> None:
        """Send a DATA to C{dpc}."""
        m = M3UA_DATA()
        m.set_val({"ParamsDATA": [
            {"Tag": 0x0006, "Val": [self.rc]},
            {"Tag": 0x0210, "Val": {"OPC": self.point_code, "DPC": dpc,
                                    "SI": si, "NI": 2, "MP": 0, "SLS": sls,
                                    "Data": payload}}]})
        self.send(m)

    def next_data(self, timeout: float = 10.0):
        """@return: the next DATA's Protocol Data and its SCCP message."""
        msg = self.expect(M3UA_DATA, timeout)
        for p in msg["ParamsDATA"].get_val():
            if p[0] == 0x0210:
                opc, dpc, si, ni, mp, sls, data = p[2]
                sccp, err = parse_SCCP(data)
                return (opc, dpc, si, sls), sccp
        raise AssertionError("DATA without Protocol Data")

    def close(self) -> None:
        self.sock.close()
