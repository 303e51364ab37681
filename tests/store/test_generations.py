"""Tests for L{appliance.store.generations}: schema upgrade steps."""
import pytest
import transaction
import ZODB
from ZODB.FileStorage import FileStorage

from appliance.store.generations import (GENERATIONS, KEY, GenerationError,
                                         evolve_database)


def test_new_database(tmp_path):
    """A new database gets every generation, one transaction each."""
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    assert evolve_database(db) == (0, len(GENERATIONS))
    notes = [t["description"] for t in db.undoLog(0, 10)]
    assert notes[:len(GENERATIONS)] == [
        f"evolve to generation {n}" for n in range(len(GENERATIONS), 0, -1)]
    db.close()


def test_upgrade_old_database_keeps_data(tmp_path):
    """A generation-1 database with data is upgraded and keeps its data."""
    path = str(tmp_path / "Data.fs")
    db = ZODB.DB(FileStorage(path))
    assert evolve_database(db, GENERATIONS[:1]) == (0, 1)
    with db.transaction() as conn:
        conn.root()["appliance"].add_carrier("TATA")
    db.close()

    db = ZODB.DB(FileStorage(path))
    assert evolve_database(db) == (1, len(GENERATIONS))
    with db.transaction() as conn:
        root = conn.root()
        assert root[KEY] == len(GENERATIONS)
        assert "TATA" in root["appliance"].carriers
        assert root["messages"] is not None
    assert evolve_database(db) == (len(GENERATIONS), len(GENERATIONS))
    db.close()


def test_newer_database_refused(tmp_path):
    """A database from newer code is refused, unchanged."""
    db = ZODB.DB(None)
    with db.transaction() as conn:
        conn.root()[KEY] = len(GENERATIONS) + 1
    with pytest.raises(GenerationError, match="newer than this code"):
        evolve_database(db)
    with db.transaction() as conn:
        assert conn.root()[KEY] == len(GENERATIONS) + 1
        assert "appliance" not in conn.root()


def test_failed_step_rolls_back(tmp_path):
    """A step that fails leaves the database at the previous generation."""
    def broken(root):
        root["half"] = 1
        raise RuntimeError("step failed")
    db = ZODB.DB(None)
    with pytest.raises(RuntimeError):
        evolve_database(db, GENERATIONS[:1] + (broken,))
    with db.transaction() as conn:
        assert conn.root()[KEY] == 1
        assert "half" not in conn.root()
