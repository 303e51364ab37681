"""Fixtures of the HTTP API tests: an in-memory storage with every
domain's generations, on a fake clock."""
import pytest
from twisted.internet.testing import MemoryReactorClock

from appliance.application import memory_storage


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
