"""
The SIGTRAN simulator (L{tests.peers.sigsim}) as a subprocess for the
end-to-end tests and the bench, and a node provisioned to talk to it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.harness import ROOT, Node, start_node, wait_for
from tests.e2e.sip_tools import DOMAIN, provision_script

NODE_PC, SIM_PC = 185, 186                   # 0.23.1 and 0.23.2
NODE_GT = "447700900000"
HLR_GT, MSC_GT = "19995550001", "19995550002"

SS7 = """configure terminal
ss7
 point-code 0.23.1
 global-title {node_gt}
 hlr global-title {hlr_gt}
 isup circuits 0.23.2 1 31
 isup release-cause {cause}
 isup release-timer {timer}
 m3ua-peer {peer}
  address 127.0.0.1
  port {port}
  role {role}
 exit
 sccp-route sim
  global-title-prefix 1999555
  point-code 0.23.2
 exit
exit
service-policy mobiles
 recipient-pattern 4479%
 transport map
exit
end
"""


def node_for_sim(tmp_path: Path, port: int | None, accounts: dict[str, str],
                 role: str = "asp", cause: int = 34, timer: int = 1,
                 name: str = "node", log_level: str = "debug",
                 admin_keys: Path | None = None,
                 extra: str = "") -> Node:
    """
    Start a node with SIP (the apps), the shell and M3UA, provisioned
    with the C{ss7} configuration above and a policy that sends 4479...
    to mobile subscribers by MAP.

    @param port: the STP's M3UA port (role C{asp}); with role C{sg} the
        node listens and the simulator connects straight to it (None).
    @param admin_keys: an OpenSSH authorized keys file: the shell runs.
    @param extra: more provisioning commands, after the C{ss7} ones.
    """
    base = tmp_path / name
    base.mkdir(parents=True, exist_ok=True)
    script = base / "provision.cli"
    ss7 = SS7.format(node_gt=NODE_GT, hlr_gt=HLR_GT, port=port or 2905,
                     cause=cause, timer=timer,
                     peer="stp" if role == "asp" else "sim", role=role)
    if role == "sg":
        ss7 = ss7.replace("  address 127.0.0.1\n  port 2905\n",
                          "  address 127.0.0.1\n")
    script.write_text(provision_script(accounts) + ss7 + extra)
    sip = {"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
           "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
           "max_expires": 3600, "retry_schedule": [1, 2], "validity": 120,
           "auth_failures": 100000}
    shell = {"enabled": True, "admin_keys": str(admin_keys)} \
        if admin_keys else {}
    return start_node(tmp_path, name=name, sip=sip, shell=shell,
                      m3ua={"enabled": True,
                            "listen": "tcp:port=0:interface=127.0.0.1"},
                      node={"provision": str(script), "log_level": log_level})


class Sim:
    """One simulator process and its control connection."""

    def __init__(self, workdir: Path, port: int, **config: Any):
        workdir.mkdir(parents=True, exist_ok=True)
        self.ports_file = workdir / "ports.json"
        self.capture = workdir / "frames.txt"
        self.log_path = workdir / "sim.log"
        conf = {"point_code": SIM_PC, "node_point_code": NODE_PC,
                "network_indicator": 2, "node_gt": NODE_GT,
                "connect": {"host": "127.0.0.1", "port": port},
                "routing_context": None,
                "hlr": {"gt": HLR_GT, "versions": [2, 3], "subscribers": {}},
                "msc": {"gt": MSC_GT, "versions": [2, 3], "refuse": {}},
                "ports_file": str(self.ports_file),
                "capture": str(self.capture)}
        for key, value in config.items():
            if isinstance(value, dict) and isinstance(conf.get(key), dict):
                conf[key] = dict(conf[key], **value)
            else:
                conf[key] = value
        path = workdir / "sim.json"
        path.write_text(json.dumps(conf))
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.peers.sigsim", "--config", str(path)],
            cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        log.close()
        wait_for(lambda: self._ready(), 20, what="sigsim control port")
        self.port = json.loads(self.ports_file.read_text())["control"]
        self.sock = socket.create_connection(("127.0.0.1", self.port), 10)
        self.file = self.sock.makefile("rb")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError("sigsim exited:\n" + self.log())
        return self.ports_file.exists() and self.ports_file.stat().st_size > 0

    def log(self) -> str:
        """What it printed."""
        return self.log_path.read_text(errors="replace")

    def ctl(self, timeout: float = 40.0, **request: Any) -> Any:
        """Send one command and @return: its JSON answer."""
        self.sock.settimeout(timeout)
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        line = self.file.readline()
        if not line:
            raise RuntimeError("sigsim closed the control connection:\n"
                               + self.log())
        return json.loads(line)

    def frames(self) -> list[tuple[str, bytes]]:
        """Every M3UA frame it sent (C{out}) and received (C{in})."""
        out = []
        for row in self.capture.read_text().splitlines():
            direction, _, hexed = row.split()
            out.append((direction, bytes.fromhex(hexed)))
        return out

    def stop(self) -> None:
        """End the process."""
        try:
            self.sock.close()
        except OSError:
            pass
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def node_active(node: Node, count: int = 1) -> bool:
    """Whether the node logged ASP-ACTIVE at least C{count} times."""
    return node.log().count("ASP-ACTIVE (RC") >= count
