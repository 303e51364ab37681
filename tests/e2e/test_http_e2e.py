"""
End to end: the HTTP API of a real node (issue 12), with curl as the
tenant's client, two SMSCs started by the test as Carrier1 and Carrier2
(connections carrier1/carrier2, policies 351% and 44%), and an HTTP
server of the test receiving delivery-report callbacks.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.harness import wait_for
from tests.e2e.http_tools import (
    PASSWORD, SECRET, TOKEN, Receiver, api, body_json, curl, queued,
    restart, start_http_node)
from tests.e2e.smsc import SMSC

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("curl") is None,
                                 reason="needs curl")]

BASIC = ("-u", f"acme:{PASSWORD}")
PT, UK, DE = "351912345678", "447700900123", "4930123456"


@pytest.fixture
def node(tmp_path, carriers):
    c1, c2 = carriers
    n = start_http_node(tmp_path, c1.port, c2.port)
    wait_for(lambda: c1.binds and c2.binds, what="both carriers bound")
    yield n
    n.stop()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def send(node, query: str, *auth: str):
    return curl(*(auth or BASIC), api(node, "/sendsms/send?" + query))


def test_prefix_picks_the_carrier(node, carriers):
    """A Portuguese number leaves on Carrier1's link and a UK number on
    Carrier2's, with the tenant's sender and text; one request naming both
    sends one to each; the answer carries each id and price."""
    c1, c2 = carriers
    status, _, text = send(node, f"from=123456789&to={PT}&body=hello+pt")
    assert status == 200, text
    status, _, text = curl("-H", f"Authorization: Bearer {TOKEN}",
                           api(node, f"/sendsms/send?from=ACME&to={UK}"
                                     "&body=hello+uk"))
    assert status == 200, text
    wait_for(lambda: len(c1.received) == 1 and len(c2.received) == 1,
             what="one message at each carrier")
    assert (c1.received[0].source, c1.received[0].destination,
            c1.received[0].text) == ("123456789", PT, b"hello pt")
    assert (c2.received[0].source, c2.received[0].destination) == (
        "ACME", UK)
    status, _, text = curl(*BASIC, "-H", "Content-Type: application/json",
                           "--data", json.dumps({
                               "from": "123456789", "to": [PT, UK],
                               "body": "both"}),
                           api(node, "/sendsms/send"))
    assert status == 200, text
    answer = body_json(text)
    assert [(r["to"], r["status"], r["price"], r["currency"])
            for r in answer["recipients"]] == [
        (PT, "accepted", "0.01", "USD"), (UK, "accepted", "0.02", "USD")]
    wait_for(lambda: len(c1.received) == 2 and len(c2.received) == 2,
             what="the second pair")
    assert c1.received[1].text == c2.received[1].text == b"both"


def test_carrier1_down_falls_over(tmp_path):
    """With Carrier1 unreachable, a Portuguese number goes out over the
    policy's fallback, Carrier2."""
    c1, c2 = SMSC("carrier1"), SMSC("carrier2")
    c1.stop()
    try:
        n = start_http_node(tmp_path, c1.port, c2.port)
        wait_for(lambda: c2.binds, what="carrier2 bound")
        status, _, text = send(n, f"from=123456789&to={PT}&body=via+2")
        assert status == 200, text
        wait_for(lambda: c2.received, what="the message at carrier2")
        assert c2.received[0].destination == PT
        n.stop()
    finally:
        c2.stop()


def test_errors_store_nothing(node, carriers):
    """Each error has its status and stable code, and nothing is stored:
    400 naming the parameter, 401, 403 sender and source address, 402
    with a reason to show, 404 no route, 413 too many parts, 429 with
    Retry-After."""
    before = queued(node)
    cases = [
        (BASIC, "from=123456789&to=" + PT, 400, "invalid_parameter"),
        (("-u", "acme:wrong"), f"from=123456789&to={PT}&body=x", 401,
         "unauthorized"),
        ((), f"from=123456789&to={PT}&body=x", 401, "unauthorized"),
        (BASIC, f"from=999&to={PT}&body=x", 403, "sender_not_allowed"),
        (("-u", f"faraway:{PASSWORD}"), f"from=1&to={PT}&body=x", 403,
         "address_not_allowed"),
        (("-u", f"poor:{PASSWORD}"), f"from=1&to={PT}&body=x", 402,
         "no_funds"),
        (BASIC, f"from=123456789&to={DE}&body=x", 404, "no_route"),
        (BASIC, f"from=123456789&to={PT}&body=" + "x" * 2000, 413,
         "too_many_parts"),
    ]
    for auth, query, status, code in cases:
        got, headers, text = send(node, query, *auth) if auth else curl(
            api(node, "/sendsms/send?" + query))
        assert (got, body_json(text)["code"]) == (status, code), (query,
                                                                  text)
    _, _, text = send(node, "from=123456789&to=" + PT)
    assert body_json(text)["parameter"] == "body"
    _, _, text = send(node, f"from=1&to={PT}&body=x",
                      "-u", f"poor:{PASSWORD}")
    assert "Insufficient balance" in body_json(text)["reason"]
    slow = ("-u", f"slow:{PASSWORD}")
    assert send(node, f"from=1&to={PT}&body=x", *slow)[0] == 200
    status, headers, text = send(node, f"from=1&to={PT}&body=x", *slow)
    assert (status, body_json(text)["code"]) == (429, "throttled")
    assert int(headers["retry-after"]) >= 1
    assert queued(node) == before + 1
    assert len(carriers[0].received) == 1


def test_queue_full_503(tmp_path, carriers):
    """Past [http] queue_limit waiting messages, a send gets 503
    queue_full with Retry-After and is not stored."""
    c1, c2 = carriers
    n = start_http_node(tmp_path, c1.port, c2.port, queue_limit=1)
    assert send(n, f"from=123456789&to={PT}&body=1")[0] == 200
    status, headers, text = send(n, f"from=123456789&to={PT}&body=2")
    assert (status, body_json(text)["code"]) == (503, "queue_full")
    assert "retry-after" in headers
    assert queued(n) == 1
    n.stop()


def test_kannel_and_jasmin_clients(node, carriers, receiver):
    """Kannel's /cgi-bin/sendsms and Jasmin's /send and /balance answer as
    those gateways do, and Kannel's dlr-url is called with its escapes
    replaced when the receipt comes."""
    c1, _ = carriers
    dlr = receiver.url + "?type=%d&to=%p&from=%P&at=%T"
    status, headers, text = curl("-G", api(node, "/cgi-bin/sendsms"),
                                 "--data-urlencode", "username=acme",
                                 "--data-urlencode", f"password={PASSWORD}",
                                 "--data-urlencode", "from=123456789",
                                 "--data-urlencode", f"to={PT}",
                                 "--data-urlencode", "text=kannel",
                                 "--data-urlencode", f"dlr-url={dlr}",
                                 "--data-urlencode", "dlr-mask=3")
    assert (status, text) == (202, "0: Accepted for delivery")
    assert headers["content-type"].startswith("text/html")
    assert curl(api(node, "/cgi-bin/sendsms?username=acme&password=no"
                          f"&from=1&to={PT}&text=x"))[::2] == (
        403, "Authorization failed for sendsms")
    assert curl(api(node, "/cgi-bin/sendsms?username=acme&password="
                          f"{PASSWORD}&from=1&text=x"))[::2] == (
        400, "Missing receiver number, rejected")
    status, _, text = curl(api(node, "/send?username=acme&password="
                                     f"{PASSWORD}&from=123456789&to={PT}"
                                     "&content=jasmin"))
    assert status == 200 and text.startswith('Success "'), text
    assert curl(api(node, f"/send?username=acme&password=bad&to={PT}"
                          "&content=x"))[::2] == (
        403, 'Error "Authentication failure for username:acme"')
    assert curl(api(node, f"/send?username=acme&password={PASSWORD}"
                          "&content=x"))[::2] == (
        400, 'Error "Mandatory argument [to] is not found."')
    assert curl(api(node, f"/send?username=acme&password={PASSWORD}"
                          f"&from=123456789&to={DE}&content=x"))[::2] == (
        412, 'Error "No route found"')
    status, _, text = curl(api(node, "/balance?username=poor&password="
                                     f"{PASSWORD}"))
    assert status == 200 and body_json(text)["balance"] == "0.005"
    wait_for(lambda: len(c1.received) == 2, what="both at carrier1")
    assert [r.text for r in c1.received] == [b"kannel", b"jasmin"]
    c1.receipt(c1.received[0])
    wait_for(lambda: receiver.requests, what="Kannel's dlr-url called")
    method, path, _, _ = receiver.requests[0]
    query = parse_qs(urlsplit(path).query)
    assert method == "GET"
    assert (query["type"], query["to"], query["from"]) == (
        ["1"], [PT], ["123456789"])
    assert int(query["at"][0]) > 1_700_000_000


def test_signed_callback_and_status(node, carriers, receiver):
    """With dlr-url the node POSTs a JSON report once the carrier's
    receipt makes the message delivered, signed with the tenant's
    dlr-secret; the status shows the state and the carrier's id."""
    c1, _ = carriers
    status, _, text = send(node, f"from=123456789&to={PT}&body=dlr"
                                 f"&client-ref=r-1&dlr-url={receiver.url}")
    assert status == 200, text
    mid = body_json(text)["id"]
    wait_for(lambda: c1.received, what="the message at carrier1")
    status, _, text = curl(*BASIC, api(node, f"/sendsms/status?id={mid}"))
    wait_for(lambda: body_json(curl(*BASIC, api(
        node, f"/sendsms/status?id={mid}"))[2])["state"] == "delivering",
        what="forwarded")
    c1.receipt(c1.received[0])
    wait_for(lambda: receiver.requests, what="the callback")
    method, _, headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body,
                                    hashlib.sha256).hexdigest()
    assert method == "POST" and headers["x-signature"] == expected
    report = json.loads(body)
    assert (report["id"], report["state"], report["client-ref"],
            report["carrier_id"]) == (mid, "delivered", "r-1",
                                      c1.received[0].id)
    status, _, text = curl(*BASIC, api(node, f"/sendsms/status?id={mid}"))
    got = body_json(text)
    assert (status, got["state"], got["connection"]) == (
        200, "delivered", "carrier1")
    status, _, _ = curl("-u", f"slow:{PASSWORD}",
                        api(node, f"/sendsms/status?id={mid}"))
    assert status == 404


def test_callback_survives_sigkill(tmp_path, carriers):
    """The node is killed with SIGKILL after the receipt made the message
    delivered and before the callback could be delivered (the tenant's
    server was down): after the restart the callback arrives."""
    c1, c2 = carriers
    n = start_http_node(tmp_path, c1.port, c2.port)
    wait_for(lambda: c1.binds, what="carrier1 bound")
    down = Receiver()
    url = down.url
    down.stop()
    status, _, text = send(n, f"from=123456789&to={PT}&body=k&dlr-url={url}")
    mid = body_json(text)["id"]
    wait_for(lambda: c1.received, what="the message at carrier1")
    wait_for(lambda: body_json(curl(*BASIC, api(
        n, f"/sendsms/status?id={mid}"))[2])["state"] == "delivering",
        what="forwarded")
    c1.receipt(c1.received[0])
    wait_for(lambda: body_json(curl(*BASIC, api(
        n, f"/sendsms/status?id={mid}"))[2])["state"] == "delivered",
        what="delivered")
    wait_for(lambda: "callback of message" in n.log() and "failed" in
             n.log(), what="a failed callback attempt")
    n.kill()
    up = Receiver(port=int(urlsplit(url).port))
    try:
        again = restart(n)
        wait_for(lambda: up.requests, timeout=30, what="the callback after "
                 "the restart")
        report = json.loads(up.requests[0][3])
        assert (report["id"], report["state"]) == (mid, "delivered")
        again.stop()
    finally:
        up.stop()


def test_metrics_and_health(node):
    """/metrics is Prometheus text that prometheus_client parses, with the
    node's message, queue, bind and latency metrics; /healthz says ok."""
    from prometheus_client.parser import text_string_to_metric_families
    assert send(node, f"from=123456789&to={PT}&body=m")[0] == 200
    status, headers, text = curl(api(node, "/metrics"))
    assert status == 200 and headers["content-type"].startswith(
        "text/plain")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("appliance_messages", "appliance_queue_messages",
                 "appliance_smpp_connection_binds",
                 "appliance_accept_latency_seconds",
                 "appliance_commit_batch_size", "appliance_http_requests",
                 "appliance_sip_registrations"):
        assert name in families, name
    accepted = [s for s in families["appliance_messages"].samples
                if s.labels.get("state") == "accepted"]
    assert accepted[0].labels["origin"] == "tenant"
    binds = {s.labels["connection"]: s.value for s in
             families["appliance_smpp_connection_binds"].samples}
    assert binds == {"carrier1": 1.0, "carrier2": 1.0}
    status, _, text = curl(api(node, "/healthz"))
    assert status == 200 and body_json(text)["status"] == "ok"


def test_tls_listener_and_keep_alive(tmp_path, carriers):
    """[http] listens on a list of endpoints, plain and TLS (ports.json
    keys http and http_tls); curl verifies the certificate, sends two
    requests over one kept-alive TLS connection, and both are accepted."""
    from tests.e2e.sip_tools import make_certificate
    key, cert = make_certificate(tmp_path / "tls")
    c1, c2 = carriers
    n = start_http_node(tmp_path, c1.port, c2.port, listen=[
        "tcp:port=0:interface=127.0.0.1",
        f"ssl:port=0:interface=127.0.0.1:privateKey={key}:certKey={cert}"])
    port = n.port("http_tls")
    url = (f"https://127.0.0.1:{port}/sendsms/send?from=123456789&to={PT}"
           "&body=tls")
    import subprocess
    run = subprocess.run(["curl", "-sS", "-v", "--cacert", str(cert), *BASIC,
                          url, url], capture_output=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(b'"status": "accepted"') == 2, run.stdout
    assert b"Re-using existing connection" in run.stderr or \
        b"Reusing existing" in run.stderr, run.stderr[-2000:]
    wait_for(lambda: len(c1.received) == 2, what="both TLS sends")
    assert n.port("http") != port
    n.stop()


def _callbacks_pending(node) -> int:
    from prometheus_client.parser import text_string_to_metric_families
    _, _, text = curl(api(node, "/metrics"))
    for family in text_string_to_metric_families(text):
        if family.name == "appliance_http_callbacks_pending":
            return int(sum(s.value for s in family.samples))
    return 0


def test_coding_plan_source_and_jasmin_acknowledgement(tmp_path, carriers,
                                                       receiver):
    """coding=ucs2 leaves as data_coding 8 (UCS-2) even for GSM text,
    coding auto as GSM; a tenant's own numbering plan reads its national
    numbers (0912345678 with country code 351 is 351912345678); an
    authorization rule matching the client's address (match source
    127.0.0.0/8, charge nobody) lets a prepaid tenant without funds send;
    a Jasmin dlr-url answered without ACK/Jasmin is retried, as Jasmin
    does, until it is answered ACK/Jasmin."""
    c1, c2 = carriers
    n = start_http_node(tmp_path, c1.port, c2.port, extra=[
        " tenant acme", "  numbering-plan country-code 351",
        "  numbering-plan national-prefix 0", " exit",
        " authorization-rule lan", "  match origin tenant poor",
        "  match source 127.0.0.0/8", "  charge nobody", " exit"])
    try:
        wait_for(lambda: c1.binds and c2.binds, what="both carriers bound")
        status, _, text = send(n, "from=123456789&to=0912345678&body=hello"
                                  "&coding=ucs2")
        assert status == 200, text
        assert body_json(text)["recipients"][0]["to"] == PT
        status, _, text = send(n, f"from=123456789&to={PT}&body=plain")
        assert status == 200, text
        wait_for(lambda: len(c1.received) == 2, what="both at carrier1")
        wide, plain = sorted(c1.received, key=lambda r: r.coding != "UCS2")
        assert (wide.coding, wide.text) == ("UCS2",
                                            "hello".encode("utf-16-be"))
        assert (plain.coding, plain.text) == ("SMSC_DEFAULT_ALPHABET",
                                              b"plain")
        status, _, text = send(n, f"from=123456789&to={PT}&body=free",
                               "-u", f"poor:{PASSWORD}")
        assert status == 200, text
        wait_for(lambda: len(c1.received) == 3, what="the free one")
        status, _, text = curl(api(n, "/send?username=acme&password="
                                      f"{PASSWORD}&from=123456789&to={PT}"
                                      f"&content=jdlr&dlr=yes&dlr-url="
                                      f"{receiver.url}&dlr-level=2"))
        assert status == 200 and text.startswith('Success "'), text
        wait_for(lambda: len(c1.received) == 4, what="the Jasmin one")
        c1.receipt(c1.received[3])
        wait_for(lambda: len(receiver.requests) >= 2, timeout=30,
                 what="the report retried after a plain ACK")
        assert all(b"message_status=DELIVRD" in r[3]
                   for r in receiver.requests)
        assert _callbacks_pending(n) == 1
        receiver.answer = b"ACK/Jasmin"
        wait_for(lambda: _callbacks_pending(n) == 0, timeout=30,
                 what="the report acknowledged")
    finally:
        n.stop()
