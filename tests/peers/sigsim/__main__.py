"""
Run the simulator: C{python -m tests.peers.sigsim --config FILE} (JSON,
or TOML when the name ends in .toml).  Keys:

    point_code, node_point_code, network_indicator (2), node_gt, smsc_ssn (8)
    connect: {"host": "127.0.0.1", "port": 2905}    the STP or the node
    routing_context: null (REG REQ for point_code) or an integer
    hlr: {"gt": ..., "versions": [2, 3], "subscribers": {MSISDN: {"state":
          "reachable"|"absent"|"unknown"|"barred"|..., "imsi": ..., "msc": ...}}}
    msc: {"gt": ..., "versions": [2, 3], "refuse": {IMSI: "absent"|"memory"}}
    control_port: 0 (ephemeral), ports_file: where to write {"control": port}
    capture: a file where every M3UA frame sent and received is appended (hex)
"""
from __future__ import annotations

import argparse
import json
import sys
import tomllib

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import endpoints, protocol
from twisted.logger import globalLogBeginner, textFileLogObserver

from tests.peers.sigsim.control import Control
from tests.peers.sigsim.sim import ASPFactory, Simulator


def load(path: str) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f) if path.endswith(".toml") else json.load(f)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="sigsim")
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = load(args.config)
    from twisted.internet import reactor
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    sim = Simulator(config, reactor)
    target = config["connect"]
    client = ClientService(
        endpoints.TCP4ClientEndpoint(reactor, target.get("host", "127.0.0.1"), target["port"]),
        ASPFactory(sim), retryPolicy=backoffPolicy(initialDelay=0.2, maxDelay=2.0), clock=reactor)
    client.startService()
    factory = protocol.Factory.forProtocol(lambda: Control(sim))
    port = reactor.listenTCP(config.get("control_port", 0), factory, interface="127.0.0.1")
    number = port.getHost().port
    if config.get("ports_file"):
        with open(config["ports_file"], "w") as f:
            json.dump({"control": number}, f)
    print(f"sigsim ready control={number}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
