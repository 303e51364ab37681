"""
The simulated network elements behind one M3UA ASP: an HLR, an MSC/VLR
and an ISUP switch.  Codecs: pycrate only (L{tests.peers.sigsim.codec}).
"""
from __future__ import annotations

import time
from typing import Any, Callable

from pycrate_mobile.TS23040_SMS import SMS_DELIVER, SMS_SUBMIT
from twisted.internet import defer, protocol
from twisted.logger import Logger

from tests.peers.sigsim import codec as C

AC_GATEWAY, AC_MO, AC_ALERT, AC_MT = 20, 21, 23, 25
MAP_AC = lambda name, v: (0, 4, 0, 0, 1, 0, name, v)  # noqa: E731
ERRORS = {"absent": 6, "unknown": 1, "barred": 13, "not-provisioned": 11,
          "system-failure": 34}


class ASP(protocol.Protocol):
    """The simulator's M3UA ASP over TCP (client side)."""

    log = Logger()

    def __init__(self, sim: "Simulator"):
        self.sim = sim
        self.buf = bytearray()
        self.rc: int | None = sim.config.get("routing_context")
        self.state = "down"

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        self.sim.asp = self
        self.send(C.aspup())
        self.state = "aspup-sent"

    def connectionLost(self, reason=None):
        if self.sim.asp is self:
            self.sim.asp = None
        self.state = "down"

    def send(self, frame: bytes) -> None:
        self.sim.capture("out", frame)
        self.transport.write(frame)

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        try:
            frames = C.m3ua_frames(self.buf)
        except ValueError:
            self.transport.loseConnection()
            return
        for frame in frames:
            self.sim.capture("in", frame)
            try:
                self.frame(frame)
            except Exception:
                self.log.failure("sigsim: frame not handled: {hex}",
                                 hex=frame[:64].hex())

    def frame(self, frame: bytes) -> None:
        msg = C.m3ua_parse(frame)
        header = msg.get_val()[0]
        cls, typ = header[2], header[3]
        p = C.params(msg)
        if (cls, typ) == (1, 1):
            opc, dpc, si, ni, mp, sls, payload = p[C.TAG_PD]
            self.sim.transfer(opc, dpc, si, ni, sls, payload)
        elif (cls, typ) == (3, 4):                     # ASPUP ACK
            if self.rc is None:
                self.send(C.regreq(self.sim.pc))
                self.state = "reg-sent"
            else:
                self.send(C.aspac(self.rc))
                self.state = "aspac-sent"
        elif (cls, typ) == (9, 2):                     # REG RSP
            result = {t: v for t, _, v, _ in p[C.TAG_REG_RESULT]}
            if result.get(C.TAG_REG_STATUS, 1) != 0:
                self.log.error("sigsim: REG REQ refused {r}", r=result)
                return
            self.rc = result[C.TAG_RC][0]
            self.send(C.aspac(self.rc))
            self.state = "aspac-sent"
        elif (cls, typ) == (4, 3):                     # ASPAC ACK
            self.state = "active"
            self.sim.became_active()
        elif (cls, typ) == (3, 3):                     # BEAT
            self.send(C.beat_ack(p.get(0x0009, b"")))
        elif cls == 0 and typ == 0:
            self.log.warn("sigsim: ERR from peer {p}", p=p)

    def data(self, dpc: int, si: int, sls: int, payload: bytes) -> None:
        self.send(C.data(self.rc, self.sim.pc, dpc, si, self.sim.ni, sls,
                         payload))


class ASPFactory(protocol.Factory):
    def __init__(self, sim):
        self.sim = sim

    def buildProtocol(self, addr):
        return ASP(self.sim)


class Simulator:
    """
    The HLR, MSC and switch, their tables and records.

    @ivar records: what happened, for the tests: C{sri}, C{reports},
        C{mt}, C{calls} (ISUP), C{frames}.
    """

    log = Logger()

    def __init__(self, config: dict, clock: Any):
        self.config = config
        self.clock = clock
        self.pc = config["point_code"]
        self.ni = config.get("network_indicator", 2)
        self.node_pc = config["node_point_code"]
        self.node_gt = config["node_gt"]
        self.smsc_ssn = config.get("smsc_ssn", 8)
        hlr = config.get("hlr", {})
        self.hlr_gt = hlr.get("gt", "")
        self.hlr_versions = set(hlr.get("versions", [2, 3]))
        self.subscribers: dict[str, dict] = dict(hlr.get("subscribers", {}))
        msc = config.get("msc", {})
        self.msc_gt = msc.get("gt", "")
        self.msc_versions = set(msc.get("versions", [2, 3]))
        self.refuse: dict[str, str] = dict(msc.get("refuse", {}))
        self.asp: ASP | None = None
        self.records: dict[str, list] = {"sri": [], "reports": [], "mt": [],
                                         "calls": [], "alerts": [], "mo": []}
        self._tid = 0x5000
        self._pending: dict[int, defer.Deferred] = {}
        self._calls: dict[int, dict] = {}
        self._active_waiters: list[defer.Deferred] = []
        self._capture = open(config["capture"], "a") if config.get(
            "capture") else None

    def capture(self, direction: str, frame: bytes) -> None:
        if self._capture is not None:
            self._capture.write(f"{direction} {time.time():.6f} "
                                f"{frame.hex()}\n")
            self._capture.flush()

    def became_active(self) -> None:
        waiters, self._active_waiters = self._active_waiters, []
        for d in waiters:
            d.callback(True)

    def wait_active(self) -> defer.Deferred:
        if self.asp is not None and self.asp.state == "active":
            return defer.succeed(True)
        d = defer.Deferred()
        self._active_waiters.append(d)
        return d

    # -- MTP / SCCP -------------------------------------------------------

    def transfer(self, opc, dpc, si, ni, sls, payload) -> None:
        if si == 3:
            u = C.sccp_parse(payload)
            self.tcap(u, opc, sls)
        elif si == 5:
            self.isup(opc, sls, payload)

    def send_tcap(self, called_gt, called_ssn, calling_gt, calling_ssn,
                  value, sls=0) -> None:
        if self.asp is None:
            raise RuntimeError("ASP not connected")
        self.asp.data(self.node_pc, 3, sls, C.udt(
            called_gt, called_ssn, calling_gt, calling_ssn,
            C.tcap_encode(value)))

    # -- TCAP -------------------------------------------------------------

    def tcap(self, u: C.Unitdata, opc: int, sls: int) -> None:
        kind, body = C.tcap_decode(u.data)
        if kind in ("end", "continue", "abort"):
            d = self._pending.pop(int.from_bytes(body["dtid"], "big"), None)
            if d is not None:
                d.callback((kind, body))
            return
        if kind != "begin":
            return
        ac = C.ac_of(body)
        me, my_ssn = u.called_gt, u.called_ssn
        back = (u.calling_gt, u.calling_ssn, me, my_ssn)
        versions = self.hlr_versions if me == self.hlr_gt else \
            self.msc_versions
        if ac is not None and ac[7] not in versions:
            offer = ac[:7] + (max(versions),)
            self.send_tcap(*back, ("abort", {"dtid": body["otid"], "reason": (
                "u-abortCause", C.dialogue_response(offer, 1, 2))}), sls)
            return
        comps = body.get("components", [])
        invoke = comps[0][1][1] if comps else None
        if invoke is None:
            return
        iid = invoke["invokeId"][1]
        op = invoke["opcode"][1]
        arg = invoke.get("argument", (None, None))[1]
        answer = self.operation(me, op, arg, ac)
        end = {"dtid": body["otid"]}
        if ac is not None:
            end["dialoguePortion"] = C.dialogue_response(ac)
        if answer is not None:
            end["components"] = [self.component(iid, op, answer)]
        self.send_tcap(*back, ("end", end), sls)

    @staticmethod
    def component(iid, op, answer):
        kind = answer[0]
        if kind == "result" and answer[1] is None:
            return ("basicROS", ("returnResult", {"invokeId": ("present", iid)}))
        if kind == "result":
            return ("basicROS", ("returnResult", {"invokeId": ("present", iid), "result": {
                "opcode": ("local", op), "result": answer[1]}}))
        body = {"invokeId": ("present", iid), "errcode": ("local", answer[1])}
        if len(answer) > 2:
            body["parameter"] = answer[2]
        return ("basicROS", ("returnError", body))

    def operation(self, me: str, op: int, arg: dict, ac):
        if op == 45:
            msisdn = C.untbcd(arg["msisdn"][1:])
            self.records["sri"].append({"msisdn": msisdn, "ac": list(ac or ())})
            sub = self.subscribers.get(msisdn, {"state": "unknown"})
            if sub["state"] == "reachable":
                return ("result", ("RoutingInfoForSM-Res", {
                    "imsi": C.tbcd(sub["imsi"]),
                    "locationInfoWithLMSI": {"networkNode-Number": C.isdn(
                        sub.get("msc", self.msc_gt))}}))
            return ("error", ERRORS.get(sub["state"], 34))
        if op == 47:
            outcome = arg["sm-DeliveryOutcome"]
            self.records["reports"].append({
                "msisdn": C.untbcd(arg["msisdn"][1:]), "outcome": outcome,
                "sc": C.untbcd(arg["serviceCentreAddress"][1:])})
            return ("result", None)
        if op in (44, 46):
            da = arg["sm-RP-DA"]
            imsi = C.untbcd(da[1]) if da[0] == "imsi" else None
            tpdu = SMS_DELIVER()
            tpdu.from_bytes(arg["sm-RP-UI"])
            record = {"imsi": imsi, "opcode": op, "ac": list(ac or ()),
                      "text": tpdu["TP_UD"]["UD"].decode(),
                      "pid": tpdu["TP_PID"].to_bytes()[0],
                      "sender": tpdu["TP_OA"]["Num"].decode(),
                      "udhi": tpdu["TP_UDHI"].get_val(),
                      "more": "moreMessagesToSend" in arg}
            refusal = self.refuse.get(imsi)
            record["answer"] = refusal or "ok"
            self.records["mt"].append(record)
            if refusal == "absent":
                return ("error", 6)
            if refusal == "memory":
                return ("error", 32, ("SM-DeliveryFailureCause", {
                    "sm-EnumeratedDeliveryFailureCause": "memoryCapacityExceeded"}))
            return ("result", None)
        return ("error", 21)                       # facilityNotSupported

    def begin(self, called_gt, called_ssn, calling_gt, calling_ssn, ac, op,
              arg_type, arg, timeout=10.0) -> defer.Deferred:
        """Open a dialogue with one invoke; fires with (kind, body)."""
        self._tid = (self._tid + 1) & 0xFFFFFFFF
        tid = self._tid
        d = defer.Deferred()
        self._pending[tid] = d
        value = ("begin", {"otid": tid.to_bytes(4, "big"),
                           "dialoguePortion": C.dialogue_request(ac),
                           "components": [("basicROS", ("invoke", {
                               "invokeId": ("present", 1), "opcode": ("local", op),
                               "argument": (arg_type, arg)}))]})
        self.send_tcap(called_gt, called_ssn, calling_gt, calling_ssn, value)

        def expire():
            if self._pending.pop(tid, None) is d:
                d.callback(("timeout", {}))
        call = self.clock.callLater(timeout, expire)
        d.addBoth(lambda r: (call.active() and call.cancel(), r)[1])
        return d

    @staticmethod
    def outcome(kind, body) -> dict:
        comps = body.get("components", [])
        if kind == "end" and comps:
            c = comps[0][1]
            if c[0] == "returnResult":
                return {"result": "ok"}
            if c[0] == "returnError":
                return {"result": "error", "code": c[1]["errcode"][1]}
            return {"result": c[0]}
        return {"result": kind}

    def alert(self, msisdn: str) -> defer.Deferred:
        """AlertServiceCentre from the HLR to the node: C{msisdn} is back."""
        arg = {"msisdn": C.isdn(msisdn), "serviceCentreAddress": C.isdn(self.node_gt)}
        d = self.begin(self.node_gt, self.smsc_ssn, self.hlr_gt, 6,
                       MAP_AC(AC_ALERT, 2), 64, "AlertServiceCentreArg", arg)
        d.addCallback(lambda r: self.outcome(*r))
        d.addCallback(lambda o: (self.records["alerts"].append(
            dict(o, msisdn=msisdn)), o)[1])
        return d

    def mo(self, sender: str, recipient: str, text: str, version: int = 3
           ) -> defer.Deferred:
        """MO-ForwardSM from the MSC: C{sender}'s handset sent C{text}."""
        sub = SMS_SUBMIT()
        charset = 2 if any(ord(c) > 0x7F for c in text) else 0
        sub.set_val({"TP_MR": 1, "TP_DA": {"Num": recipient},
                     "TP_DCS": {"Group": 0, "Charset": charset}, "TP_UD": {"UD": text}})
        arg = {"sm-RP-DA": ("serviceCentreAddressDA", C.isdn(self.node_gt)),
               "sm-RP-OA": ("msisdn", C.isdn(sender)), "sm-RP-UI": sub.to_bytes()}
        d = self.begin(self.node_gt, self.smsc_ssn, self.msc_gt, 8,
                       MAP_AC(AC_MO, version), 46, "MO-ForwardSM-Arg", arg)
        d.addCallback(lambda r: self.outcome(*r))
        d.addCallback(lambda o: (self.records["mo"].append(
            dict(o, sender=sender, recipient=recipient)), o)[1])
        return d

    # -- ISUP -------------------------------------------------------------

    def iam(self, cic: int, called: str, calling: str | None,
            presentation: int = 0, original: str | None = None,
            redirecting: str | None = None, reason: int | None = 6,
            timeout: float = 30.0) -> defer.Deferred:
        """Send an IAM; fires with the call's record once REL came (RLC sent)."""
        call = {"cic": cic, "sent": self.clock.seconds(), "acm": None,
                "rel": None, "cause": None, "other": []}
        call["done"] = d = defer.Deferred()
        self._calls[cic] = call
        self.asp.data(self.node_pc, 5, cic & 0x1F, C.iam(
            cic, called, calling, presentation, original, redirecting,
            reason))

        def expire():
            if not d.called:
                d.callback(dict(self._public(call), timeout=True))
        t = self.clock.callLater(timeout, expire)
        d.addBoth(lambda r: (t.active() and t.cancel(), r)[1])
        return d

    @staticmethod
    def _public(call):
        return {k: v for k, v in call.items() if k != "done"}

    def isup(self, opc: int, sls: int, payload: bytes) -> None:
        msg = C.isup_parse(payload)
        cic = msg["CIC"].get_val()
        name = type(msg).__name__
        call = self._calls.get(cic)
        now = self.clock.seconds()
        if call is None:
            self.records["calls"].append({"cic": cic, "unsolicited": name})
            return
        if name == "AddressComplete":
            call["acm"] = now - call["sent"]
        elif name == "Release":
            call["rel"] = now - call["sent"]
            call["cause"] = C.cause_of(msg)
            self.asp.data(self.node_pc, 5, sls, C.rlc(cic))
            self._calls.pop(cic, None)
            public = self._public(call)
            self.records["calls"].append(public)
            call["done"].callback(public)
        else:
            call["other"].append(name)
