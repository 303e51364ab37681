"""
Helpers of the HTTP API's end-to-end tests: a node with tenants and the
two carriers' connections, curl as the client, and a callback receiver.
"""
from __future__ import annotations

import http.server
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

from appliance.http.model import token_hash
from tests.e2e.harness import Node, start_node, wait_for

TOKEN = "e2e-token-0123456789abcdefghijklmnopqrstuvw"
PASSWORD = "s3cret-pw"
SECRET = "0123456789abcdef0123"


def provision(c1_port: int, c2_port: int, extra: list[str] = ()) -> list[str]:
    """Shell lines: tariff, tenants, connections carrier1/carrier2 and the
    351%/44% policies."""
    return [
        "configure terminal",
        " tariff T", "  currency USD", "  prefix 351 0.01", "  prefix 44 0.02",
        " exit",
        " tenant acme", f"  password {PASSWORD}",
        f"  token-hash {token_hash(TOKEN)}", "  allow-sender 123456789",
        "  allow-sender ACME", "  tariff T", f"  dlr-secret {SECRET}", " exit",
        " tenant poor", f"  password {PASSWORD}", "  tariff T", "  prepaid",
        "  balance add 0.005", " exit",
        " tenant slow", f"  password {PASSWORD}", "  throughput 1", " exit",
        " tenant faraway", f"  password {PASSWORD}", "  allow-ip 10.0.0.0/8",
        " exit",
        " connection carrier1", "  host 127.0.0.1", f"  port {c1_port}",
        "  system-id node", "  password pw", " exit",
        " connection carrier2", "  host 127.0.0.1", f"  port {c2_port}",
        "  system-id node", "  password pw", " exit",
        " service-policy pt", "  recipient-pattern 351%",
        "  transport smpp connection carrier1",
        "  fallback-connection carrier2", " exit",
        " service-policy uk", "  recipient-pattern 44%",
        "  transport smpp connection carrier2", " exit",
        *extra, "end", ""]


def start_http_node(tmp_path: Path, c1_port: int, c2_port: int,
                    name: str = "node", extra: list[str] = (),
                    **http: Any) -> Node:
    """Start a node with [http] on a free loopback port, provisioned."""
    base = tmp_path / name
    base.mkdir(parents=True, exist_ok=True)
    script = base / "provision.cli"
    script.write_text("\n".join(provision(c1_port, c2_port, list(extra))))
    return start_node(tmp_path, name=name,
                      node={"provision": str(script)},
                      http={"enabled": True,
                            "listen": "tcp:port=0:interface=127.0.0.1",
                            **http})


def restart(node: Node) -> Node:
    """Start the same node again (its database is kept)."""
    again = Node(node.config, node.data_dir, node.log_path)
    again.wait_ready()
    return again


def curl(*args: str) -> tuple[int, dict[str, str], str]:
    """
    Run curl; @return: (status, headers lower-cased, body).
    """
    result = subprocess.run(
        ["curl", "-sS", "-D", "-", "--max-time", "20", *args],
        capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8", "replace")
    head, _, body = out.partition("\r\n\r\n")
    while head.startswith("HTTP/1.1 100"):
        head, _, body = body.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def api(node: Node, path: str) -> str:
    """The URL of C{path} on the node."""
    return f"http://127.0.0.1:{node.port('http')}{path}"


class Receiver:
    """
    A tenant's HTTP server receiving callbacks on loopback.

    @ivar requests: (method, path, headers, body) of each request.
    @ivar status: what it answers.
    @ivar answer: the body it answers with.
    """

    def __init__(self, port: int = 0):
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.status = 200
        self.answer = b"ACK"
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.requests.append((self.command, self.path,
                                       {k.lower(): v for k, v in
                                        self.headers.items()}, body))
                self.send_response(owner.status)
                self.send_header("Content-Length", str(len(owner.answer)))
                self.end_headers()
                self.wfile.write(owner.answer)
            do_GET = do_POST = _serve

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port),
                                                      Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/dlr"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def queued(node: Node) -> int:
    """Messages stored in the node, from its /metrics."""
    from prometheus_client.parser import text_string_to_metric_families
    _, _, text = curl(api(node, "/metrics"))
    for family in text_string_to_metric_families(text):
        if family.name == "appliance_queue_messages":
            return int(sum(s.value for s in family.samples))
    return 0


def body_json(text: str) -> Any:
    return json.loads(text)


__all__ = ["TOKEN", "PASSWORD", "SECRET", "start_http_node", "restart",
           "curl", "api", "Receiver", "queued", "body_json", "wait_for"]
