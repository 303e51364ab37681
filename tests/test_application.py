"""Tests for the plugin options and the unstarted service tree."""
import io
import json

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.logger import ILogObserver

from appliance.application import make_node
from appliance.config import parse
from appliance.node import NodeService, PortMap
from appliance.tap import Options, makeService


def test_options_reject_bad_config(tmp_path):
    """A bad configuration is a UsageError naming the key (twistd then
    prints it and exits non-zero)."""
    conf = tmp_path / "a.conf"
    conf.write_text('[node]\nlog_level = "chatty"\n')
    with pytest.raises(usage.UsageError, match=r"\[node\] log_level"):
        Options().parseOptions(["--config", str(conf)])


def test_make_service_tree(tmp_path):
    """makeService builds, without starting or binding anything, a root
    with the storage as its first child and the shell (on by default)."""
    conf = tmp_path / "a.conf"
    conf.write_text(f'[node]\ndata_dir = "{tmp_path}/d"\n')
    options = Options()
    options.parseOptions(["--config", str(conf)])
    root = makeService(options)
    assert isinstance(root, NodeService)
    assert [s.name for s in root] == ["storage", "alarms", "shell"]
    assert not root.running
    assert root.context.storage.db is None


def test_collector_settled_once_the_node_is_up(tmp_path, monkeypatch):
    """makeService leaves the collector alone until the node is up; then
    start-up's objects are frozen and the thresholds raised (the ready
    value passes through)."""
    import gc
    from appliance import tap
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "set_threshold",
                        lambda *t: calls.append(("threshold", t)))
    conf = tmp_path / "a.conf"
    conf.write_text(f'[node]\ndata_dir = "{tmp_path}/d"\n')
    options = Options()
    options.parseOptions(["--config", str(conf)])
    root = makeService(options)
    assert calls == []
    seen = []
    root.ready.callback({"shell": [2022]})
    root.ready.addCallback(seen.append)
    assert calls == ["freeze", ("threshold", tap.GC_THRESHOLDS)]
    assert seen == [{"shell": [2022]}]


def test_services_follow_storage(tmp_path):
    """Enabled sections become named children after the storage, made by
    their factory with the node context and what was built before them;
    the context holds no services."""
    config = parse("[shell]\nenabled = true\n", base=tmp_path)
    made = []

    def make(section, node, built):
        from twisted.application.service import Service
        made.append((section.name, node, built))
        return Service()
    root = make_node(config, MemoryReactorClock(), factories={"shell": make})
    assert [s.name for s in root] == ["storage", "alarms", "shell"]
    assert made[0][0] == "shell" and made[0][1] is root.context
    assert made[0][2].live is root.live
    assert not hasattr(root.context, "services")


def test_log_observer_handed_to_application(tmp_path):
    """The node gives twistd's application its own log observer."""
    config = parse("", base=tmp_path)
    observer = object()
    root = make_node(config, MemoryReactorClock(), log_observer=observer)
    app = Componentized()
    from twisted.application.service import IServiceCollection, MultiService
    app.setComponent(IServiceCollection, MultiService())
    root.setServiceParent(app)
    assert app.getComponent(ILogObserver) is observer


def test_ports_json(tmp_path):
    """PortMap writes ports by kind, atomically, and removes the file."""
    ports = PortMap(tmp_path / "ports.json")
    ports.record("sip_udp", 5060)
    ports.record("sip_udp", 5062)
    ports.record("shell", 2022)
    ports.write()
    assert json.loads((tmp_path / "ports.json").read_text()) == {
        "shell": [2022], "sip_udp": [5060, 5062]}
    ports.remove()
    assert not (tmp_path / "ports.json").exists()


def test_start_and_ordered_stop(tmp_path):
    """The node starts its children in order and stops them one at a time
    in reverse order, the storage last; ports.json is written when ready."""
    from twisted.application.service import Service
    from twisted.internet import defer
    events = []
    stopping = defer.Deferred()

    class Slow(Service):
        name = "slow"

        def startService(self):
            events.append("slow started")
            super().startService()

        def stopService(self):
            events.append("slow stopping")
            super().stopService()
            return stopping

    config = parse(f'[node]\ndata_dir = "{tmp_path}"\n'
                   '[storage]\nuri = "memory:"\n'
                   '[shell]\nenabled = false\n', base=tmp_path)
    root = make_node(config, MemoryReactorClock())
    storage = root.getServiceNamed("storage")
    real_close = storage.close
    storage.close = lambda: (events.append("storage closed"), real_close())
    Slow().setServiceParent(root)
    root.startService()
    assert events == ["slow started"]
    assert root.ready.called
    assert (tmp_path / "ports.json").read_text() == "{}\n"
    d = root.stopService()
    assert events == ["slow started", "slow stopping"]
    assert not d.called
    stopping.callback(None)
    assert events[-1] == "storage closed"
    assert d.called
    assert not (tmp_path / "ports.json").exists()


def test_one_wiring_place(tmp_path):
    """make_node hands every service its collaborators: the core's agents
    are the SIP service's agent and the SMPP pool, its charger is the
    billing service's, the SMPP server gets the core, and the shell's live
    state shows every service's counters; nothing is left for a service
    to look up."""
    from appliance.sip.service import SIPService
    config = parse(f'[node]\ndata_dir = "{tmp_path}"\n'
                   '[storage]\nuri = "memory:"\n'
                   '[shell]\nenabled = true\n'
                   'listen = ["tcp:port=0:interface=127.0.0.1"]\n'
                   f'host_key = "{tmp_path}/hk"\n'
                   '[sip]\nenabled = true\n'
                   'listen = ["udp:port=0:interface=127.0.0.1"]\n'
                   '[smpp]\nenabled = true\n'
                   'listen = ["tcp:port=0:interface=127.0.0.1"]\n',
                   base=tmp_path)
    root = make_node(config, MemoryReactorClock())
    core = root.getServiceNamed("messaging")
    sip = root.getServiceNamed("sip")
    smpp = root.getServiceNamed("smpp")
    pool = root.getServiceNamed("smpp-client")
    billing = root.getServiceNamed("billing")
    shell = root.getServiceNamed("shell")
    assert isinstance(sip, SIPService)
    notification = root.getServiceNamed("notification")
    assert core._agents == {"sip": sip.agent, "smpp": pool,
                            "notification": notification.agent}
    assert core.local_transport == "sip"
    assert core.charger is billing.charger
    assert sip.core is core and smpp.server.core is core
    assert pool.core is core
    live = root.live
    assert shell.live is live
    assert live.core is core and live.balances is billing
    assert live.carriers is smpp
    assert live.names() == ["alarms", "billing", "messaging",
                            "notification", "sip", "smpp", "smpp-client"]
    assert [s.name for s in root] == ["storage", "billing", "messaging",
                                      "admission", "smpp-client", "alarms",
                                      "shell",
                                      "smpp", "sip", "notification"]
    assert sip.application.invite == notification.sip_invite
    assert notification.core is core


def test_overload_thresholds_wired(tmp_path):
    """The C{[overload]} thresholds reach the node's admission and the
    core's delivery lanes; without the section they keep their defaults."""
    base = (f'[node]\ndata_dir = "{tmp_path}"\n[storage]\nuri = "memory:"\n'
            '[shell]\nenabled = false\n'
            '[smpp]\nenabled = true\n'
            'listen = ["tcp:port=0:interface=127.0.0.1"]\n')
    root = make_node(parse(base + "[overload]\nmax_delay = 3\n"
                           "min_pending = 100\nmax_pending = 400\n"
                           "max_lag = 2\ndestination_in_flight = 7\n"
                           "destination_waiting = 8\ntotal_waiting = 9\n",
                           base=tmp_path), MemoryReactorClock())
    admission = root.getServiceNamed("admission")
    assert (admission.max_delay, admission.min_pending,
            admission.max_pending, admission.max_lag) == (3.0, 100, 400, 2.0)
    lanes = root.getServiceNamed("messaging").lanes
    assert (lanes.limit, lanes.queue_limit, lanes.total_waiting) == (7, 8, 9)
    root = make_node(parse(base, base=tmp_path), MemoryReactorClock())
    admission = root.getServiceNamed("admission")
    assert (admission.max_delay, admission.min_pending,
            admission.max_pending, admission.max_lag) == (1.0, 2000, 20000,
                                                          0.5)
    lanes = root.getServiceNamed("messaging").lanes
    assert (lanes.limit, lanes.queue_limit, lanes.total_waiting) == (
        100, 10_000, 100_000)
