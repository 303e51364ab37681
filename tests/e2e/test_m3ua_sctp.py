"""
M3UA over SCTP: the same node, one configuration word away (C{transport
sctp}).  Runs only where the kernel has SCTP; this build machine's
kernel has none (errno 93), so here it is skipped with that reason.
"""
from __future__ import annotations

import socket
import threading

import pytest
from pycrate_mobile.M3UA import (
    M3UA_ASPActAck, M3UA_ASPUpAck, M3UA_REGRSP, parse_M3UA)

from appliance.sigtran.transport import sctp_available
from tests.e2e.harness import start_node, wait_for

SCTP, WHY = sctp_available()
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not SCTP, reason=WHY or "SCTP available")]

PROVISION = """configure terminal
ss7
 point-code 0.23.1
 m3ua-peer sg
  address 127.0.0.1
  port {port}
  transport sctp
 exit
exit
end
"""


def sctp_sg(server: socket.socket, seen: list) -> None:
    """A minimal SG with pycrate's codec: acks ASPUP, REG REQ, ASPAC."""
    conn, _ = server.accept()
    answers = {(3, 1): M3UA_ASPUpAck, (4, 1): M3UA_ASPActAck}
    for _ in range(3):
        raw = conn.recv(65536)
        msg, err = parse_M3UA(raw)
        seen.append((err, raw[2], raw[3]))
        if (raw[2], raw[3]) == (9, 1):
            rsp = M3UA_REGRSP()
            rsp.set_val({"ParamsREGRSP": [{"Tag": 0x0208, "Val": [
                {"Tag": 0x020a, "Val": 1}, {"Tag": 0x0212, "Val": 0},
                {"Tag": 0x0006, "Val": [5]}]}]})
            conn.sendall(rsp.to_bytes())
        else:
            conn.sendall(answers[(raw[2], raw[3])]().to_bytes())


def test_node_goes_active_over_sctp(tmp_path):
    """With C{transport sctp} the node connects over a one-to-one SCTP
    socket and reaches ASP-ACTIVE; each M3UA message arrives as one SCTP
    message that pycrate parses without error."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM,
                           socket.IPPROTO_SCTP)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    seen: list = []
    t = threading.Thread(target=sctp_sg, args=(server, seen), daemon=True)
    t.start()
    script = tmp_path / "provision.cli"
    script.write_text(PROVISION.format(port=server.getsockname()[1]))
    node = start_node(tmp_path, node={"provision": str(script)},
                      m3ua={"enabled": True,
                            "listen": "tcp:port=0:interface=127.0.0.1"})
    wait_for(lambda: "ASP-ACTIVE (RC 5)" in node.log(), 20, what="ASP-ACTIVE")
    assert [s[1:] for s in seen] == [(3, 1), (9, 1), (4, 1)]
    assert all(s[0] == 0 for s in seen)
    node.stop()
