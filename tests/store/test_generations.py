"""Tests for L{appliance.store.generations}: per-domain upgrade steps."""
import pytest
import ZODB
from ZODB.FileStorage import FileStorage

from appliance.application import GENERATIONS
from appliance.store.generations import (KEY, LEGACY_KEY, LEGACY_SENTINEL,
                                         GenerationError, current,
                                         evolve_database)


def _steps(name):
    return dict(GENERATIONS)[name]


def test_new_database(tmp_path):
    """A new database gets every domain's steps, one transaction each,
    domains in the order given, and one counter per domain."""
    db = ZODB.DB(FileStorage(str(tmp_path / "Data.fs")))
    result = evolve_database(db, GENERATIONS)
    assert result == {name: (0, len(steps)) for name, steps in GENERATIONS}
    notes = [t["description"] for t in db.undoLog(0, 50)]
    expected = [f"evolve {name} to generation {n}"
                for name, steps in GENERATIONS
                for n in range(1, len(steps) + 1)]
    assert notes[:len(expected)] == list(reversed(expected))
    with db.transaction() as conn:
        assert dict(conn.root()[KEY]) == {
            name: len(steps) for name, steps in GENERATIONS}
        assert conn.root()[LEGACY_KEY] == LEGACY_SENTINEL
    db.close()


def test_upgrade_keeps_data(tmp_path):
    """A database with only the model domain is upgraded: the other
    domains' steps run and the model's data stays."""
    path = str(tmp_path / "Data.fs")
    db = ZODB.DB(FileStorage(path))
    model = len(_steps("model"))
    assert evolve_database(db, GENERATIONS[:1]) == {"model": (0, model)}
    with db.transaction() as conn:
        conn.root()["appliance"].add_carrier("TATA")
    db.close()

    db = ZODB.DB(FileStorage(path))
    result = evolve_database(db, GENERATIONS)
    assert result["model"] == (model, model)
    assert result["messaging"] == (0, len(_steps("messaging")))
    with db.transaction() as conn:
        root = conn.root()
        assert "TATA" in root["appliance"].carriers
        assert root["messages"] is not None
    again = evolve_database(db, GENERATIONS)
    assert all(old == new for old, new in again.values())
    db.close()


def test_legacy_single_counter_read_as_domains(tmp_path):
    """A database written when the generation was one counter (steps 1-5:
    model, messaging, sip, smpp, billing) is read as those domains, gets
    per-domain counters, and none of its steps runs again."""
    db = ZODB.DB(None)
    with db.transaction() as conn:
        root = conn.root()
        for name, steps in GENERATIONS[:3]:
            steps[0](root)
        root["appliance"].add_carrier("TATA")
        root[LEGACY_KEY] = 3
    assert current({LEGACY_KEY: 3}) == {"model": 1, "messaging": 1,
                                        "sip": 1}
    result = evolve_database(db, GENERATIONS)
    assert result["model"] == (1, len(_steps("model")))
    assert result["sip"] == (1, len(_steps("sip")))
    assert result["smpp"] == (0, len(_steps("smpp")))
    with db.transaction() as conn:
        root = conn.root()
        assert "TATA" in root["appliance"].carriers
        assert root[KEY]["smpp"] == len(_steps("smpp"))
        assert root[LEGACY_KEY] == LEGACY_SENTINEL


def test_current_legacy_database_gets_counters():
    """A legacy database already at its last step gets per-domain counters
    (and the sentinel that older code refuses) without running a step."""
    db = ZODB.DB(None)
    legacy = tuple((name, steps[:1]) for name, steps in GENERATIONS[:5])
    with db.transaction() as conn:
        root = conn.root()
        for _, steps in legacy:
            steps[0](root)
        root[LEGACY_KEY] = 5
    assert evolve_database(db, legacy) == {name: (1, 1) for name, _ in legacy}
    with db.transaction() as conn:
        assert dict(conn.root()[KEY]) == {name: 1 for name, _ in legacy}
        assert conn.root()[LEGACY_KEY] == LEGACY_SENTINEL


@pytest.mark.parametrize("counters", [
    {"model": 99},
    {"model": 1, "future-domain": 1},
])
def test_newer_database_refused(counters):
    """A database from newer code (a domain's counter beyond its steps, or
    a domain this code does not know) is refused, unchanged."""
    db = ZODB.DB(None)
    with db.transaction() as conn:
        conn.root()[KEY] = dict(counters)
    with pytest.raises(GenerationError, match="newer than this code"):
        evolve_database(db, GENERATIONS)
    with db.transaction() as conn:
        assert dict(conn.root()[KEY]) == counters
        assert "appliance" not in conn.root()


def test_legacy_newer_refused():
    """A legacy counter beyond the five legacy steps is refused."""
    db = ZODB.DB(None)
    with db.transaction() as conn:
        conn.root()[LEGACY_KEY] = 999
    with pytest.raises(GenerationError, match="newer than this code"):
        evolve_database(db, GENERATIONS)


def test_failed_step_rolls_back():
    """A step that fails leaves its domain at the previous generation and
    the earlier domains upgraded."""
    def broken(root):
        root["half"] = 1
        raise RuntimeError("step failed")
    db = ZODB.DB(None)
    with pytest.raises(RuntimeError):
        evolve_database(db, GENERATIONS[:1] + (("broken", (broken,)),))
    with db.transaction() as conn:
        assert dict(conn.root()[KEY]) == {"model": len(_steps("model"))}
        assert "half" not in conn.root()
