"""Fixtures for the model tests: an in-memory database with a root."""
import pytest
import transaction
import ZODB

from appliance.model.root import ApplianceRoot


@pytest.fixture
def root(conn):
    """An L{ApplianceRoot} stored in the in-memory database and committed."""
    conn.root()["appliance"] = ApplianceRoot()
    conn.transaction_manager.commit()
    conn.transaction_manager.begin()
    return conn.root()["appliance"]
