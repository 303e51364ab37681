"""The cluster in the node's service tree and its configuration keys."""
import pytest
from twisted.internet.testing import MemoryReactorClock

from appliance.application import make_node
from appliance.cluster.service import ClusterService
from appliance.config import ConfigError, parse


def node_on(tmp_path, uri, extra=""):
    config = parse(f'[node]\nname = "east"\ndata_dir = "{tmp_path}"\n'
                   f'[storage]\nuri = "{uri}"\n{extra}'
                   '[shell]\nenabled = false\n'
                   '[sip]\nenabled = true\n'
                   'listen = ["udp:port=0:interface=127.0.0.1"]\n',
                   base=tmp_path)
    return make_node(config, MemoryReactorClock())


@pytest.mark.parametrize("uri", ["postgresql://u@127.0.0.1:1/db",
                                 "zeo://127.0.0.1:1"])
def test_shared_database_has_cluster(tmp_path, uri):
    """On a database other nodes share, the node's cluster share runs
    before the core, under the node's name with the configured lease and
    heartbeat; it is the core's ownership, its transaction hook, and the
    shell's 'cluster' source; its locator sees the SIP registrar."""
    root = node_on(tmp_path, uri, "lease = 6.0\nheartbeat = 0.5\n")
    names = [s.name for s in root]
    assert names.index("cluster") < names.index("messaging")
    cluster = root.getServiceNamed("cluster")
    core = root.getServiceNamed("messaging")
    sip = root.getServiceNamed("sip")
    assert isinstance(cluster, ClusterService)
    assert cluster.node == "east"
    assert (cluster.lease, cluster.heartbeat) == (6.0, 0.5)
    assert core.ownership is cluster
    assert cluster.transaction_hook in core._hooks
    assert cluster.dispatch == core.dispatch_ids
    assert cluster.locator._holders == sip.store.holders
    assert root.live.source("cluster") is cluster


@pytest.mark.parametrize("uri", ["Data.fs", "memory:"])
def test_own_database_no_cluster(tmp_path, uri):
    """A node on its own database has no cluster service: the core owns
    every message."""
    root = node_on(tmp_path, uri)
    assert "cluster" not in [s.name for s in root]
    assert type(root.getServiceNamed("messaging").ownership).__name__ == \
        "SoleOwner"


@pytest.mark.parametrize("keys,error", [
    ("heartbeat = 0.0\n", "[storage] heartbeat"),
    ("lease = 1.0\nheartbeat = 1.0\n", "[storage] lease"),
    ("lease = \"long\"\n", "[storage] lease"),
])
def test_bad_lease_keys(tmp_path, keys, error):
    """A heartbeat out of range, or a lease of two heartbeats or less, is
    refused with its key named."""
    with pytest.raises(ConfigError) as e:
        parse(f'[storage]\n{keys}', base=tmp_path)
    assert error in str(e.value)


def test_lease_defaults(tmp_path):
    """By default a lease lasts 10 s and a heartbeat comes every second."""
    config = parse("", base=tmp_path)
    assert (config.storage.lease, config.storage.heartbeat) == (10.0, 1.0)


@pytest.mark.parametrize("uri,placed", [("zeo://127.0.0.1:1", True),
                                        ("memory:", False)])
def test_callbacks_placed_on_a_shared_database(tmp_path, uri, placed):
    """On a shared database the HTTP callback sender asks the cluster's
    placement which callbacks it sends; on its own database it has none
    (it sends every callback)."""
    root = node_on(tmp_path, uri, "[http]\nenabled = true\n"
                   'listen = ["tcp:port=0:interface=127.0.0.1"]\n')
    sender = root.getServiceNamed("http").callbacks
    if placed:
        assert sender.placement is root.getServiceNamed("cluster").callbacks
        assert sender.placement is not None
    else:
        assert sender.placement is None
