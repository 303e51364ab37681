"""
Several nodes on one ZEO server (C{zeo://}, C{runzeo} of the venv's ZEO
package, tests/e2e/zeo.py): the configuration sharing the PostgreSQL test
checks, on ZEO.  The delivery, takeover and prepaid tests run on both
databases in test_cluster_delivery.py.
"""
import pytest

from tests.e2e.test_cluster_postgresql import \
    test_two_nodes_share_configuration as share_configuration
from tests.e2e.test_shell_ssh import keygen
from tests.e2e.zeo import RUNZEO, ZEOServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not RUNZEO.exists(), reason="runzeo not in the venv"),
]


class OneServer:
    """A ZEO server standing in for the PostgreSQL cluster of the shared
    test: each 'database' is the server's one storage, both nodes reach
    it at the same URI."""

    def __init__(self, server):
        self.server = server

    def create_database(self, name):
        pass

    def uri(self, name):
        return self.server.uri

    socket_uri = uri


@pytest.fixture
def zeo():
    server = ZEOServer().start()
    yield OneServer(server)
    server.stop()


@pytest.fixture
def admin(tmp_path):
    key = tmp_path / "admin"
    (tmp_path / "admin_keys").write_text(keygen(key) + "\n")
    return key


def test_two_nodes_share_configuration_on_zeo(tmp_path, zeo, admin):
    """Two nodes on one ZEO server: a carrier created on A over the shell
    shows on B and B's SMPP listener accepts its bind within about a
    second (ZEO's invalidations, seen at B's 0.5 s poll); a carrier
    deleted on B disappears on A."""
    share_configuration(tmp_path, zeo, admin)
