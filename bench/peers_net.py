"""
Loopback helpers the benches share: a free port, waiting for a port to
open, and the statistics of the anchor's SMPP sink (its control port
answers C{STATS} with one JSON line).
"""
from __future__ import annotations

import json
import socket
import time


def free_port() -> int:
    """@return: a TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, timeout: float = 60) -> None:
    """Wait until 127.0.0.1:C{port} accepts connections."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not open")


def sink_stats(ctl: int) -> dict:
    """@return: the sink's statistics from its control port C{ctl}."""
    with socket.create_connection(("127.0.0.1", ctl), 5) as s:
        s.sendall(b"STATS\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)
