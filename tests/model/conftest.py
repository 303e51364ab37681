"""Fixtures for the model tests: an in-memory database with a root."""
import pytest
import transaction
import ZODB

from appliance.model.root import ApplianceRoot


@pytest.fixture
def conn():
    """An open connection to a fresh in-memory database, own transaction manager."""
    tm = transaction.TransactionManager(explicit=True)
    db = ZODB.DB(None)
    connection = db.open(transaction_manager=tm)
    tm.begin()
    yield connection
    tm.abort()
    connection.close()
    db.close()


@pytest.fixture
def root(conn):
    """An L{ApplianceRoot} stored in the in-memory database and committed."""
    conn.root()["appliance"] = ApplianceRoot()
    conn.transaction_manager.commit()
    conn.transaction_manager.begin()
    return conn.root()["appliance"]
