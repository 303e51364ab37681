"""End-to-end fixtures: no node outlives its test; the two SMSCs of the
HTTP API's tests."""
import pytest

from tests.e2e.harness import kill_all


@pytest.fixture(autouse=True)
def _no_node_left_behind():
    yield
    kill_all()


@pytest.fixture
def carriers():
    """Two SMSCs of the tests' own, Carrier1 and Carrier2 (connections
    carrier1/carrier2 of tests.e2e.http_tools.provision)."""
    from tests.e2e.smsc import SMSC
    c1, c2 = SMSC("carrier1"), SMSC("carrier2")
    yield c1, c2
    c1.stop()
    c2.stop()
