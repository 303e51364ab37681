"""Tests for delivery-report callbacks (L{appliance.http.callbacks})."""
import hashlib
import hmac
import json

import pytest
from twisted.web.http_headers import Headers

from appliance.http.callbacks import BACKOFF, CallbackSender, wanted
from appliance.http.model import http_of
from appliance.http.params import parse_send
from appliance.http.sending import Sender
from appliance.messaging.core import Outcome
from tests.http.fakes import FakeAgent, FakeResponse
from tests.http.helpers import Core


@pytest.fixture
def node(storage, clock):
    n = Core(storage, clock)
    yield n
    n.stop()


def send(node, api=None, **more):
    params = {"from": ["123456789"], "to": ["351912345678"],
              "body": ["hi"], "dlr-url": ["http://127.0.0.1:9/dlr"]}
    params.update({k: [v] for k, v in more.items()})
    request = parse_send(params, 5, 86400)
    meta = (("dlr-url", request.dlr_url), ("dlr-level", request.dlr_level))
    if api == "jasmin":
        meta = (("api", "jasmin"), ("dlr-url", request.dlr_url),
                ("dlr-level", "2"), ("dlr-method", "POST"))
    d = Sender(node.core, node.storage, node.clock).send(
        node.tenant(), request, meta)
    node.commit()
    return d.result[1]["id"]


def deliver(node):
    [(view, answer)] = node.agent.calls
    node.agent.calls.clear()
    answer.callback(Outcome("forwarded", "ok", "r1", "carrier1"))
    node.commit()
    node.core.receipt_received("carrier1", "r1", "delivered")
    node.commit()


def test_final_state_queues_one_callback(node, storage):
    """The final state's transaction queues exactly one report (level
    final); nothing is queued for the intermediate states."""
    send(node)
    assert len(http_of(storage.root()).callbacks) == 0
    deliver(node)
    [callback] = http_of(storage.root()).callbacks.values()
    report = json.loads(callback.body)
    assert (report["state"], report["event"]) == ("delivered", "final")
    assert node.kicks == 1


def test_level_all_queues_each_change(node, storage):
    """dlr-level all reports the acceptance, the forwarding and the final
    state."""
    send(node, **{"dlr-level": "all"})
    deliver(node)
    states = [json.loads(c.body)["state"] for c in
              http_of(storage.root()).callbacks.values()]
    assert states == ["accepted", "delivering", "delivered"]


def test_sender_signs_deletes_and_retries(node, storage, clock):
    """The sender POSTs the JSON body signed with the tenant's dlr-secret;
    a 500 is retried after the backoff, a 200 removes it."""
    send(node)
    deliver(node)
    agent = FakeAgent()
    sender = CallbackSender(storage, clock, agent=agent, interval=1)
    sender.startService()
    [(method, url, headers, body, d)] = agent.requests
    assert method == b"POST" and url == b"http://127.0.0.1:9/dlr"
    signature = headers.getRawHeaders(b"X-Signature")[0].decode()
    assert signature == "sha256=" + hmac.new(
        b"0123456789abcdef0123", body, hashlib.sha256).hexdigest()
    d.callback(FakeResponse(500))
    storage.flush()
    [callback] = http_of(storage.root()).callbacks.values()
    assert callback.attempts == 1 and callback.error == "HTTP 500"
    clock.advance(BACKOFF[0] - 0.5)
    assert len(agent.requests) == 1
    clock.advance(1)
    assert len(agent.requests) == 2
    agent.requests[1][4].callback(FakeResponse(204))
    storage.flush()
    assert len(http_of(storage.root()).callbacks) == 0
    assert sender.counters["sent"] == 1
    calls = len(clock.getDelayedCalls())
    sender.stopService()
    assert len(clock.getDelayedCalls()) == calls - 1     # its loop


def test_jasmin_callback_needs_its_acknowledgement(node, storage, clock):
    """A Jasmin-style report answered 200 without the body C{ACK/Jasmin}
    is retried, as Jasmin retries it; answered C{ACK/Jasmin} it is
    removed from the queue."""
    send(node, api="jasmin")
    deliver(node)
    agent = FakeAgent()
    sender = CallbackSender(storage, clock, agent=agent, interval=1)
    sender.startService()
    [(method, _, headers, body, d)] = agent.requests
    assert method == b"POST" and b"message_status=DELIVRD" in body
    d.callback(FakeResponse(200, b"OK"))
    storage.flush()
    [callback] = http_of(storage.root()).callbacks.values()
    assert callback.attempts == 1
    assert callback.error == "no ACK/Jasmin in the answer"
    clock.advance(BACKOFF[0] + 0.5)
    agent.requests[1][4].callback(FakeResponse(200, b"ACK/Jasmin\n"))
    storage.flush()
    assert len(http_of(storage.root()).callbacks) == 0
    assert sender.counters == {"sent": 1, "failed": 1, "expired": 0}
    sender.stopService()


def test_expired_callbacks_dropped(node, storage, clock):
    """A report still failing when the message's validity has ended is
    dropped."""
    send(node, validity="60")
    deliver(node)
    agent = FakeAgent()
    sender = CallbackSender(storage, clock, agent=agent, interval=1)
    sender.startService()
    agent.requests[0][4].errback(ConnectionRefusedError())
    storage.flush()
    clock.advance(120)
    storage.flush()
    assert len(http_of(storage.root()).callbacks) == 0
    assert sender.counters["expired"] == 1
    sender.stopService()


def test_wanted_by_api():
    """Which states each API's dlr settings ask for."""
    assert wanted({}, "delivered") and not wanted({}, "delivering")
    assert wanted({"dlr-level": "all"}, "delivering")
    assert wanted({"api": "kannel", "dlr-mask": "1"}, "delivered")
    assert not wanted({"api": "kannel", "dlr-mask": "1"}, "failed")
    assert wanted({"api": "kannel", "dlr-mask": "8"}, "delivering")
    assert wanted({"api": "jasmin", "dlr-level": "1"}, "delivering")
    assert not wanted({"api": "jasmin", "dlr-level": "1"}, "delivered")


def test_answered_callback_not_sent_again_before_its_delete_commits(
        node, storage, clock):
    """A report answered 2xx stays in flight until the batched write that
    deletes it has committed: a scan in between (the next tick, a kick)
    does not POST it a second time.  Likewise a failed one waits for its
    new due time to commit before a scan may pick it up."""
    send(node)
    deliver(node)
    agent = FakeAgent()
    sender = CallbackSender(storage, clock, agent=agent, interval=1)
    sender.startService()
    [request] = agent.requests
    request[4].callback(FakeResponse(200))
    assert len(http_of(storage.root()).callbacks) == 1   # not yet deleted
    sender.scan()
    assert len(agent.requests) == 1
    storage.flush()
    assert len(http_of(storage.root()).callbacks) == 0
    sender.scan()
    assert len(agent.requests) == 1 and sender.in_flight == set()
    sender.stopService()


def test_failed_callback_waits_for_its_backoff_commit(node, storage, clock):
    """A report that failed is not POSTed again by a scan before the write
    of its next due time has committed."""
    send(node)
    deliver(node)
    agent = FakeAgent()
    sender = CallbackSender(storage, clock, agent=agent, interval=1)
    sender.startService()
    agent.requests[0][4].callback(FakeResponse(500))
    sender.scan()
    assert len(agent.requests) == 1
    storage.flush()
    sender.scan()
    assert len(agent.requests) == 1 and sender.in_flight == set()
    sender.stopService()



class RaisingAgent:
    """An HTTP client that raises before it returns a Deferred."""

    def request(self, method, url, headers=None, body=None):
        raise ValueError("bad URL")


def test_request_that_cannot_start_is_logged_and_retried(node, storage,
                                                          clock):
    """A callback whose request the agent cannot even start (it raises:
    a URL it refuses, a bug) is logged with its traceback at warning,
    counted failed and retried after the backoff like any failed
    attempt."""
    from twisted.logger import LogLevel, capturedLogs
    send(node)
    deliver(node)
    sender = CallbackSender(storage, clock, agent=RaisingAgent(), interval=1)
    with capturedLogs() as events:
        sender.startService()
        storage.flush()
    [callback] = http_of(storage.root()).callbacks.values()
    assert callback.attempts == 1 and "bad URL" in callback.error
    failures = [e for e in events if "log_failure" in e]
    assert [e["log_level"] for e in failures] == [LogLevel.warn]
    assert failures[0]["log_failure"].check(ValueError)
    assert sender.counters["failed"] == 1
    sender.stopService()


def test_pending_without_an_open_storage_is_zero(clock):
    """pending() (show http, /metrics) is 0 when the storage is not open
    or has no HTTP domain, the two conditions it expects."""
    class Closed:
        def domain(self, key):
            raise RuntimeError("storage is not open")

    class Bare:
        def domain(self, key):
            raise KeyError(key)
    for storage in (Closed(), Bare()):
        assert CallbackSender(storage, clock, agent=FakeAgent()).pending() \
            == 0
