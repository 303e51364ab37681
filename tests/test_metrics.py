"""Tests for the node's metrics registry (L{appliance.metrics})."""
from prometheus_client.parser import text_string_to_metric_families

from appliance.messaging.core import MessageView
from appliance.metrics import Metrics


def test_text_parses_with_seams_and_gauges():
    """Messages by state, batch sizes and scrape-time gauges appear in
    Prometheus text that prometheus_client parses back; a failing gauge
    reader does not break the scrape."""
    m = Metrics()
    view = MessageView(1, "1", "351911", None, "x", "gsm7", 1, 100.0, 0,
                       200.0, "tenant", "acme", 0, "pt", 0)
    m.message_state(view, "accepted", "smpp")
    m.message_state(view, "delivered", None, 102.5)
    m.batch_committed(32, 0.004)
    m.gauge("appliance_queue_messages", "q", ("state",),
            lambda: [(("accepted",), 3)])
    m.gauge("appliance_broken", "b", (), lambda: 1 / 0)
    families = {f.name: f for f in text_string_to_metric_families(
        m.text().decode())}
    samples = {(s.labels.get("state"), s.labels.get("route")): s.value
               for s in families["appliance_messages"].samples
               if s.name == "appliance_messages_total"}
    assert samples == {("accepted", "pt"): 1.0, ("delivered", "pt"): 1.0}
    assert [s.value for s in families["appliance_queue_messages"].samples
            ] == [3.0]
    count = [s for s in families["appliance_commit_batch_size"].samples
             if s.name.endswith("_count")]
    assert count[0].value == 1.0
    latency = [s for s in families[
        "appliance_end_to_end_latency_seconds"].samples
        if s.name.endswith("_sum")]
    assert latency[0].value == 2.5


def test_registrations_gauge_failure_is_logged():
    """The SIP registrations gauge reads the SIP service's statistics; a
    failure there is logged with its traceback (not hidden as no
    registrations), and the rest of the scrape is served."""
    from twisted.logger import capturedLogs

    from appliance.metrics import watch_node
    from appliance.shell.live import LiveState

    class SIP:
        def __init__(self):
            self.stats = {"registered_contacts": 4}

        def statistics(self):
            return self.stats

    class Storage:
        def messages(self):
            class Messages:
                def counts(self):
                    return {"accepted": 1}
            return Messages()

    m, live, sip = Metrics(), LiveState(), SIP()
    live.add_source("sip", sip)
    watch_node(m, Storage(), live)

    def scrape():
        return {f.name: [s.value for s in f.samples] for f in
                text_string_to_metric_families(m.text().decode())}
    assert scrape()["appliance_sip_registrations"] == [4.0]
    sip.stats = {}
    with capturedLogs() as events:
        families = scrape()
    assert families["appliance_sip_registrations"] == []
    assert families["appliance_queue_messages"] == [1.0]
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1 and failures[0]["log_failure"].check(KeyError)
    assert failures[0]["name"] == "appliance_sip_registrations"
