"""Fixtures of the HTTP API tests: an in-memory storage with every
domain's generations, on a fake clock."""
import pytest
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock

from appliance.application import memory_storage
from appliance.config import parse
from appliance.http.service import HTTPService
from appliance.metrics import Metrics
from appliance.model.passwords import verify_secret
from appliance.node import PortMap
from tests.http.helpers import Core


@pytest.fixture
def clock():
    c = MemoryReactorClock()
    c.advance(1_800_000_000)
    return c


@pytest.fixture
def storage(clock):
    st = memory_storage(reactor=clock)
    yield st
    st.close()


@pytest.fixture
def service(storage, clock, tmp_path):
    core = Core(storage, clock)
    section = parse("[http]\nenabled = true\nmax_request_bytes = 2048\n"
                    "max_headers = 20\n", base=tmp_path).service("http")
    svc = HTTPService(section, clock, storage, core.core,
                      PortMap(tmp_path / "ports.json"),
                      charger=core.billing.charger, metrics=Metrics(),
                      verify=lambda h, p: defer.succeed(verify_secret(h, p)))
    svc.node = core
    yield svc
    core.stop()
