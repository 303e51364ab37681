"""
Tenants' delivery-report callbacks (dlr-url) with two real nodes on one
database (ZEO, tests/e2e/zeo.py, and RelStorage in a throwaway
PostgreSQL cluster, tests/e2e/postgres.py), both bound to the test's
SMSC as connection carrier1 and both with the HTTP API: each report is
POSTed by one node (the one that recorded the state change), attempt by
attempt, and when that node is killed with SIGKILL before its report got
through, the other node POSTs it once, after the lease ran out.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.harness import start_node, wait_for
from tests.e2e.http_tools import (PASSWORD, Receiver, api, body_json, curl,
                                  provision)
from tests.e2e.smsc import SMSC
from tests.e2e.test_cluster_delivery import database, pg  # noqa: F401

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("curl") is None,
                                 reason="needs curl")]

LEASE = 3.0
HEARTBEAT = 0.5
PT = "351912345678"
BASIC = ("-u", f"acme:{PASSWORD}")
SENT = "callback of message {id} to "


def http_node(tmp_path: Path, name: str, uri: str, smsc: SMSC):
    """A node named C{name} on C{uri} with the HTTP API, provisioned
    (by whichever node starts first) with tenant acme and connection
    carrier1 to C{smsc}."""
    script = tmp_path / "http.cli"
    script.write_text("\n".join(provision(smsc.port, smsc.port)))
    return start_node(tmp_path, name=name, node={"provision": str(script)},
                      shell={"enabled": False},
                      storage={"uri": uri, "lease": LEASE,
                               "heartbeat": HEARTBEAT},
                      http={"enabled": True,
                            "listen": "tcp:port=0:interface=127.0.0.1"})


def pending(node) -> int:
    """Callbacks in the database's queue, as C{node} sees it (/metrics)."""
    from prometheus_client.parser import text_string_to_metric_families
    _, _, text = curl(api(node, "/metrics"))
    for family in text_string_to_metric_families(text):
        if family.name == "appliance_http_callbacks_pending":
            return int(sum(s.value for s in family.samples))
    raise AssertionError("no appliance_http_callbacks_pending")


def attempts(node, mid: str) -> int:
    """The POSTs of message C{mid}'s report C{node} logged (answered or
    failed)."""
    return node.log().count(SENT.format(id=mid))


def delivered_on(node, smsc: SMSC, url: str) -> str:
    """Submit on C{node} with C{url} as dlr-url, have the SMSC receipt it
    on the bind it came over; @return: the message id once delivered."""
    status, _, text = curl(*BASIC, api(node, "/sendsms/send?from=123456789"
                                       f"&to={PT}&body=cb&dlr-url={url}"))
    assert status == 200, text
    mid = body_json(text)["id"]
    wait_for(lambda: smsc.received, what="the message at the SMSC")

    def state():
        return body_json(curl(*BASIC, api(
            node, f"/sendsms/status?id={mid}"))[2])["state"]
    wait_for(lambda: state() == "delivering", what="forwarded")
    smsc.receipt(smsc.received[0])
    wait_for(lambda: state() == "delivered", what="delivered")
    return mid


@pytest.fixture
def smsc():
    s = SMSC("carrier1")
    yield s
    s.stop()


@pytest.fixture
def nodes(tmp_path, database, smsc):
    """Nodes A and B on one database, both bound to the SMSC; stopped
    afterwards (a node a test killed is only waited for)."""
    uri_a, uri_b = database
    a = http_node(tmp_path, "a", uri_a, smsc)
    try:
        b = http_node(tmp_path, "b", uri_b, smsc)
        try:
            wait_for(lambda: smsc.binds >= 4,
                     what="both nodes bound (carrier1, carrier2)")
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


def test_each_attempt_posted_by_one_node(nodes, smsc):
    """A report recorded on A is POSTed by A alone: with the tenant's
    server answering 500 three times, then 200, the server saw exactly the
    attempts A logged (four) and B logged none, and both nodes see the
    queue empty afterwards."""
    a, b = nodes
    receiver = Receiver()
    receiver.status = 500
    try:
        mid = delivered_on(a, smsc, receiver.url)
        wait_for(lambda: len(receiver.requests) >= 3, timeout=30,
                 what="three failed attempts")
        receiver.status = 200
        wait_for(lambda: pending(a) == 0 and pending(b) == 0,
                 timeout=60, what="the queue empty on both nodes")
        assert attempts(b, mid) == 0
        assert len(receiver.requests) == attempts(a, mid) >= 4
        assert all(r[1] == "/dlr" for r in receiver.requests)
    finally:
        receiver.stop()


def test_killed_nodes_report_posted_once_by_the_other(nodes, smsc):
    """A recorded a report it could not POST (the tenant's server down)
    and is killed with SIGKILL; with the server back, B POSTs it once
    A's lease ran out, and the queue is empty on B."""
    a, b = nodes
    down = Receiver()
    url = down.url
    down.stop()
    mid = delivered_on(a, smsc, url)
    wait_for(lambda: attempts(a, mid) >= 1, what="A's failed attempt")
    assert attempts(b, mid) == 0
    a.kill()
    up = Receiver(port=int(urlsplit(url).port))
    try:
        wait_for(lambda: up.requests, timeout=60,
                 what="the report from B")
        wait_for(lambda: pending(b) == 0, timeout=30,
                 what="the queue empty on B")
        assert len(up.requests) == 1
        assert attempts(b, mid) == 1
        assert body_json(up.requests[0][3].decode())["id"] == mid
    finally:
        up.stop()
