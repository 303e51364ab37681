"""
The store overrides a few ZODB methods with copies that leave one step
out or share one object (L{appliance.store.database}): FileStorage's
C{_finish_finish} without its fsync (the writer thread fsyncs outside the
lock), and whatever else that module lists in C{COPIED}.  A copy is right
only for the ZODB code it was copied from, so this test fails as soon as an
upgrade of ZODB changes one of the originals: whoever upgrades then reads
the new original and brings the copy up to date before changing the hash.
"""
from __future__ import annotations

import hashlib
import inspect
import sys

import pytest
import ZODB.Connection
import ZODB.FileStorage
import ZODB.serialize

from appliance.store import database


def _original(name: str):
    module = sys.modules["ZODB.FileStorage.FileStorage"]
    owners = {"FileStorage": module.FileStorage,
              "Connection": ZODB.Connection.Connection,
              "ObjectWriter": ZODB.serialize.ObjectWriter}
    owner, attribute = name.split(".")
    return getattr(owners[owner], attribute)


@pytest.mark.parametrize("name", sorted(database.COPIED))
def test_the_original_is_the_code_the_copy_was_made_from(name):
    source = inspect.getsource(_original(name))
    assert hashlib.sha256(source.encode()).hexdigest() == \
        database.COPIED[name], (
            f"ZODB's {name} changed since the copy in "
            "appliance/store/database.py was made from it: bring the copy "
            "up to date with the new original, then its hash")


def test_every_copy_is_listed():
    # The overriding classes define no copied method that is not listed.
    fs = database._file_storage_class()
    for attribute in ("store", "_finish_finish"):
        if attribute in vars(fs):
            assert f"FileStorage.{attribute}" in database.COPIED
    connection = getattr(database, "_Connection", None)
    if connection is not None and "_commit" in vars(connection):
        assert "Connection._commit" in database.COPIED
    writer = getattr(database, "_ObjectWriter", None)
    if writer is not None and "persistent_id" in vars(writer):
        assert "ObjectWriter.persistent_id" in database.COPIED
