"""Fixtures of the shell tests: an in-memory storage and sessions on it."""
from appliance.application import memory_storage
import pytest
from twisted.internet.task import Clock

from appliance.shell.script import open_session
from appliance.shell.session import AuditLog
from appliance.store.database import Storage

@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def storage(clock):
    st = memory_storage(reactor=clock)
    yield st
    st.close()


@pytest.fixture
def audit(tmp_path, clock):
    clock.advance(1_800_000_000)
    return AuditLog(tmp_path / "audit.log", now=clock.seconds)


@pytest.fixture
def admin(storage, audit):
    return open_session(storage, "admin", "admin", source="192.0.2.7",
                        audit=audit)
