# -*- test-case-name: tests.store.test_generations -*-
"""
Database generations: the ordered upgrade steps of the persistent schema,
contributed by each domain.

A domain that keeps persistent state has a C{generations} module with
C{GENERATIONS = (evolve1, evolve2, ...)}: functions of the ZODB root
mapping that create or convert what the domain keeps.  The store imports
no domain: C{appliance.application} hands it the ordered list of
C{(domain, steps)} pairs, so the store stays at the bottom of the import
graph.  The root holds C{appliance.generations}, one counter per domain.

At start-up every missing step runs, each in its own transaction, before
any other service starts.  A database newer than the code (a domain's
counter beyond its steps, or a domain this code does not know) is refused
and left untouched.  Steps are never edited once released; a new step is
appended to its domain's tuple.
"""
from __future__ import annotations

from typing import Callable, Sequence

import transaction
import ZODB
from persistent.mapping import PersistentMapping

#: The root key holding the per-domain counters.
KEY = "appliance.generations"

#: The single counter of databases written before generations were per
#: domain, and the domains its five steps belonged to, in order.
LEGACY_KEY = "appliance.generation"
LEGACY_DOMAINS = ("model", "messaging", "sip", "smpp", "billing")

#: What the legacy counter is set to once a database has per-domain
#: counters, so that code from before them refuses it as newer.
LEGACY_SENTINEL = 1000

Domains = Sequence[tuple[str, Sequence[Callable]]]


class GenerationError(Exception):
    """The database cannot be used by this code."""


def current(root) -> dict[str, int]:
    """
    @return: domain to steps applied, read from a root mapping (a legacy
        single counter is read as the domains it covered).
    """
    if KEY in root:
        return dict(root[KEY])
    legacy = root.get(LEGACY_KEY, 0)
    if legacy > len(LEGACY_DOMAINS):
        raise GenerationError(
            f"database generation {legacy} is newer than this code: "
            "upgrade the software")
    return {name: 1 for name in LEGACY_DOMAINS[:legacy]}


def evolve_database(db: ZODB.DB, domains: Domains
                    ) -> dict[str, tuple[int, int]]:
    """
    Bring C{db} to the newest generation of every domain, one transaction
    per step, domains in the order given.

    @param domains: C{(domain name, steps)} pairs in dependency order.
    @return: domain to (steps found, steps now).
    @raise GenerationError: the database is newer than C{domains}.
    """
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        with tm:
            found = current(conn.root())
        known = dict(domains)
        for name, count in found.items():
            if name not in known:
                raise GenerationError(
                    f"database has state of domain {name!r} that this code "
                    "does not know: it is newer than this code, upgrade the "
                    "software")
            if count > len(known[name]):
                raise GenerationError(
                    f"database generation {count} of domain {name!r} is "
                    f"newer than this code ({len(known[name])}): upgrade "
                    "the software")
        result = {}
        for name, steps in domains:
            have = found.get(name, 0)
            for number in range(have + 1, len(steps) + 1):
                with tm as txn:
                    txn.note(f"evolve {name} to generation {number}")
                    root = conn.root()
                    steps[number - 1](root)
                    counters = root.get(KEY)
                    if counters is None:
                        counters = root[KEY] = PersistentMapping(found)
                    counters[name] = number
                    root[LEGACY_KEY] = LEGACY_SENTINEL
            result[name] = (have, len(steps))
        with tm:
            root = conn.root()
            if KEY not in root:     # a legacy database already current
                root[KEY] = PersistentMapping(found)
                root[LEGACY_KEY] = LEGACY_SENTINEL
        return result
    finally:
        tm.abort()
        conn.close()
