"""
The simulator's control interface: one JSON object per line on a
loopback TCP port, one JSON line back per command (asynchronous commands
answer when their exchange is over).

    {"cmd": "status"}                       ASP state and routing context
    {"cmd": "wait-active", "timeout": 10}   answers once the ASP is active
    {"cmd": "set", "msisdn": M, "state": "reachable", "imsi": I, "msc": G}
    {"cmd": "refuse", "imsi": I, "how": "absent"|"memory"|null}
    {"cmd": "alert", "msisdn": M}           AlertServiceCentre to the node
    {"cmd": "mo", "from": A, "to": B, "text": T, "version": 3}
    {"cmd": "iam", "cic": 1, "called": C, "calling": A, "presentation": 0,
     "original": B, "redirecting": B, "reason": 6}
    {"cmd": "records"}                      what the HLR/MSC/switch saw
    {"cmd": "clear"}                        forget the records
"""
from __future__ import annotations

import json

from twisted.internet import defer
from twisted.protocols.basic import LineReceiver


class Control(LineReceiver):
    delimiter = b"\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, sim):
        self.sim = sim

    def lineReceived(self, line: bytes) -> None:
        try:
            req = json.loads(line)
            d = defer.maybeDeferred(self.run, req)
        except Exception as e:                           # noqa: BLE001
            d = defer.succeed({"error": repr(e)})
        d.addErrback(lambda f: {"error": f.getErrorMessage()})
        d.addCallback(lambda r: self.sendLine(json.dumps(r).encode()))

    def run(self, req: dict):
        sim = self.sim
        cmd = req["cmd"]
        if cmd == "status":
            asp = sim.asp
            return {"state": asp.state if asp else "down", "rc": asp.rc if asp else None}
        if cmd == "wait-active":
            d = sim.wait_active()
            timeout = sim.clock.callLater(req.get("timeout", 10), lambda: d.called or d.callback(False))
            return d.addCallback(lambda ok: (timeout.active() and timeout.cancel(), {"active": ok})[1])
        if cmd == "set":
            sim.subscribers[req["msisdn"]] = {k: req[k] for k in ("state", "imsi", "msc") if k in req}
            return {"ok": True}
        if cmd == "refuse":
            if req.get("how"):
                sim.refuse[req["imsi"]] = req["how"]
            else:
                sim.refuse.pop(req["imsi"], None)
            return {"ok": True}
        if cmd == "alert":
            return sim.alert(req["msisdn"])
        if cmd == "mo":
            return sim.mo(req["from"], req["to"], req["text"], req.get("version", 3))
        if cmd == "iam":
            return sim.iam(req["cic"], req["called"], req.get("calling"), req.get("presentation", 0),
                           req.get("original"), req.get("redirecting"), req.get("reason", 6),
                           req.get("timeout", 30.0))
        if cmd == "records":
            return sim.records
        if cmd == "clear":
            for v in sim.records.values():
                v.clear()
            return {"ok": True}
        return {"error": f"unknown command {cmd!r}"}
