"""The storage service on ZEO: a real ZEO server started by the test."""
import socket
import subprocess
import sys

import pytest
from twisted.internet.testing import MemoryReactorClock

from appliance.application import GENERATIONS
from appliance.store.database import Storage, open_database
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put(root, key, value):
    root["test"] = {**root.get("test", {}), key: value}


@pytest.fixture
def zeo(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ZEO.runzeo", "-a", f"127.0.0.1:{port}",
         "-f", str(tmp_path / "zeo.fs")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    wait_for(listening, 30, what="ZEO server")
    yield f"zeo://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_zeo_uri(zeo, tmp_path):
    """zeo://host:port opens a ZEO client; generations, batched writes and
    a second client's view work as with FileStorage."""
    clock = MemoryReactorClock()
    one = Storage(lambda: open_database(zeo, tmp_path), clock, generations=GENERATIONS)
    one.startService()
    d = one.batch(put, "a", 1)
    one.flush()
    assert d.called
    two = Storage(lambda: open_database(zeo, tmp_path), clock, generations=GENERATIONS)
    two.open()
    try:
        assert two.root() is not None
        two.sync()
        assert wait_for(lambda: (two.sync(), two._root().get("test"))[1],
                        10, what="ZEO invalidation") == {"a": 1}
    finally:
        two.close()
        one.stopService()
