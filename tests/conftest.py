"""Fixtures shared by the unit tests."""
import pytest
import transaction
import ZODB


@pytest.fixture
def conn():
    """An open connection to a fresh in-memory database, own transaction
    manager (STYLE rule 14)."""
    tm = transaction.TransactionManager(explicit=True)
    db = ZODB.DB(None)
    connection = db.open(transaction_manager=tm)
    tm.begin()
    yield connection
    tm.abort()
    connection.close()
    db.close()
