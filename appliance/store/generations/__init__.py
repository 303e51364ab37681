# -*- test-case-name: tests.store.test_generations -*-
"""
Database generations: the ordered upgrade steps of the persistent schema.

The root holds C{appliance.generation}, the number of steps applied.  At
start-up every missing step runs, each in its own transaction, before any
other service starts; a database newer than the code is refused.  A new
step is a new C{evolveN.py} module with C{evolve(root)} appended to
L{GENERATIONS}; steps are never edited once released.
"""
from __future__ import annotations

from typing import Callable, Sequence

import transaction
import ZODB

from appliance.store.generations import evolve1, evolve2, evolve3, evolve4
from appliance.store.generations import evolve5

#: The root key holding the generation number.
KEY = "appliance.generation"

#: Upgrade steps in order; step N brings generation N-1 to N.
GENERATIONS: tuple[Callable, ...] = (evolve1.evolve, evolve2.evolve,
                                      evolve3.evolve, evolve4.evolve,
                                      evolve5.evolve)


class GenerationError(Exception):
    """The database cannot be used by this code."""


def current(root) -> int:
    """@return: the generation recorded in a root mapping (0 if none)."""
    return root.get(KEY, 0)


def evolve_database(db: ZODB.DB,
                    generations: Sequence[Callable] = GENERATIONS,
                    ) -> tuple[int, int]:
    """
    Bring C{db} to the newest generation, one transaction per step.

    @return: (generation found, generation now).
    @raise GenerationError: the database is newer than C{generations}.
    """
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        with tm:
            found = current(conn.root())
        if found > len(generations):
            raise GenerationError(
                f"database generation {found} is newer than this code "
                f"({len(generations)}): upgrade the software")
        for number in range(found + 1, len(generations) + 1):
            with tm as txn:
                txn.note(f"evolve to generation {number}")
                root = conn.root()
                generations[number - 1](root)
                root[KEY] = number
        return found, len(generations)
    finally:
        tm.abort()
        conn.close()
