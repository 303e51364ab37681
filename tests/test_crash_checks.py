"""
The crash campaign's checks (L{tests.e2e.crash_load}) on made-up
databases and peers' records, without a node: each check can fail.
"""
from __future__ import annotations

from types import SimpleNamespace

from tests.e2e.crash_load import (Ack, Campaign, Figures, Kill, Ledger,
                                  Snapshot, Stored)


def stored(id: int, state: str = "delivered", payer: str | None = None,
           kind: str = "carrier") -> Stored:
    return Stored(id, kind, state, None if state != "failed" else "x",
                  payer, 1, None, "sip")


def snapshot(messages: dict, records: dict | None = None,
             receipts: list | None = None,
             callbacks: list | None = None) -> Snapshot:
    return Snapshot({t: [m] for t, m in messages.items()}, records or {},
                    receipts or [], callbacks or [], 0.0)


def campaign(spawned=(0.0,), kills=()) -> Campaign:
    c = Campaign.__new__(Campaign)
    c.figures, c.lost, c.kills = Figures(), set(), list(kills)
    c.node = SimpleNamespace(spawned=list(spawned))
    c.say = lambda line: None
    c.ledger = Ledger()
    c.apps = []
    return c


def test_acknowledged_but_not_stored_is_lost():
    """An acknowledged message missing from the database counts as lost
    (once, however many checks see it) and is a problem."""
    c = campaign()
    acks = [Ack("carrier", "t1", 1.0, "1"), Ack("app", "t2", 1.0)]
    snap = snapshot({"t1": stored(1)})
    c._check_common(snap, "kill 1", acks)
    c._check_common(snap, "kill 2", acks)
    assert c.figures.lost == 1
    assert any("'t2'" in p for p in c.figures.problems)


def test_billing_records_and_messages_match():
    """A record of no message, a billed message without its record, a
    record in another state than its message and a carrier's message
    without a payer are each a problem; a matching pair is not."""
    c = campaign()
    c._check_common(snapshot({"a": stored(1, payer="carrier:C")},
                             {("carrier:C", 1): "delivered"}), "ok", [])
    assert c.figures.problems == []
    c._check_common(snapshot({"a": stored(1, payer="carrier:C")},
                             {("carrier:C", 2): "delivered"}), "bad", [])
    c._check_common(snapshot({"a": stored(1, payer="carrier:C")},
                             {("carrier:C", 1): "accepted"}), "bad", [])
    c._check_common(snapshot({"b": stored(3)}), "bad", [])
    text = "\n".join(c.figures.problems)
    assert "from a carrier has no payer" in text
    assert "has no record" in text and "belongs to no message" in text
    assert "record of 1 is accepted" in text


def test_receipt_owed_only_for_final_messages():
    """A receipt owed for a message still waiting is a problem."""
    c = campaign()
    c._check_common(snapshot({"a": stored(0x10, state="delivering", kind="node")},
                             receipts=[("C", "10")]), "kill 1", [])
    assert "owed to C" in c.figures.problems[0]


def test_copies_after_a_kill_only_if_not_confirmed():
    """
    A copy sent by the node's second run of something its database held
    as done at the first kill is a problem; of something not yet done,
    allowed; two copies from one run are only noted.
    """
    done = snapshot({"a": stored(1)})
    waiting = snapshot({"a": stored(1, state="delivering")})
    delivered = lambda s: any(m.state == "delivered"
                              for m in s.by_text.get("a", ()))
    c = campaign(spawned=(0.0, 10.0), kills=[Kill(5.0, 5.0, done, 10.5)])
    c._copies("'a' to the apps", [1.0, 12.0], delivered)
    assert len(c.figures.problems) == 1
    c = campaign(spawned=(0.0, 10.0), kills=[Kill(5.0, 5.0, waiting, 10.5)])
    c._copies("'a' to the apps", [1.0, 6.0, 12.0], delivered)
    assert c.figures.problems == []
    assert c.figures.notes == ["'a' to the apps sent twice in run 1 (a "
                               "retry, no kill in between)"]
