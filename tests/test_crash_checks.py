"""
The crash campaign's checks (L{tests.e2e.crash_load}) on made-up
databases and peers' records, without a node: each check can fail.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

from tests.e2e.crash_load import (Ack, Campaign, CampaignNode, Figures, Kill,
                                  Ledger, Snapshot, Stored)
from tests.e2e.crash_peers import receipt_stat


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


def app(user: str, *deliveries) -> SimpleNamespace:
    """An AppPeer stand-in: its user and its app's deliveries."""
    return SimpleNamespace(user=user,
                           app=SimpleNamespace(deliveries=list(deliveries)))


def delivery(text: str, message_id: str, at: float = 1.0,
             source: tuple | None = None) -> SimpleNamespace:
    return SimpleNamespace(at=at, message_id=message_id, body=text.encode(),
                           source=source)


def vendor(received=(), answered=()) -> SimpleNamespace:
    return SimpleNamespace(received=list(received), lock=threading.Lock(),
                           receipts_acked={k: 1 for k in answered})


def test_tenant_given_id_is_the_stored_one():
    """The id an HTTP answer gave must be the stored message's."""
    c = campaign()
    snap = snapshot({"t": stored(0x20, kind="tenant", payer="tenant:acme")},
                    {("tenant:acme", 0x20): "delivered"})
    c._check_common(snap, "kill 1", [Ack("tenant", "t", 1.0, "20")])
    assert c.figures.problems == []
    c._check_common(snap, "kill 1", [Ack("tenant", "t", 1.0, "21")])
    assert "given id 21, stored as 20" in c.figures.problems[0]


def test_record_of_another_payer_or_twice_is_a_problem():
    """A record under another payer than the message's, and a second
    record for one message, are problems even though a record exists."""
    c = campaign()
    snap = snapshot({"a": stored(1, payer="carrier:C")},
                    {("carrier:C", 1): "delivered",
                     ("account:X", 1): "delivered"})
    c._check_common(snap, "kill 1", [])
    assert c.figures.problems == ["kill 1: record of account:X for message "
                                  "1, which carrier:C pays"]
    c = campaign()
    snap = snapshot({"a": stored(1, payer="carrier:C")},
                    {("carrier:C", 1): "delivered"})
    snap.duplicate_records.append(("carrier:C", 1))
    c._check_common(snap, "kill 1", [])
    assert "more than one record" in c.figures.problems[0]


def test_committed_state_never_goes_back():
    """Between two reads nothing committed is lost: a message or record
    gone, or a final message in another state, is a problem; a waiting
    message becoming final, or a new message, is not."""
    before = snapshot({"a": stored(1, payer="carrier:C"),
                       "b": stored(2, state="delivering")},
                      {("carrier:C", 1): "delivered"})
    fine = snapshot({"a": stored(1, payer="carrier:C"), "b": stored(2),
                     "c": stored(3)}, {("carrier:C", 1): "delivered"})
    c = campaign()
    c._check_kept(before, fine, "kill 2")
    assert c.figures.problems == []
    back = snapshot({"a": stored(1, state="delivering")})
    c._check_kept(before, back, "kill 2")
    text = "\n".join(c.figures.problems)
    assert "message 1 ('a') was delivered, is now delivering" in text
    assert "message 2 ('b'), delivering before, is gone" in text
    assert "the record of carrier:C for message 1 is gone" in text


def test_check_snapshot_compares_with_the_previous_kill():
    """check_snapshot runs the comparison against the previous read."""
    first = Kill(1.0, 1.0, snapshot({"a": stored(1)}))
    second = Kill(2.0, 1.0, snapshot({}))
    c = campaign(kills=[first, second])
    c.smsc = vendor()
    c.acks = lambda: []
    c.check_snapshot(second, 1)
    assert "message 1 ('a'), delivered before, is gone" in \
        c.figures.problems[0]


def test_delivered_means_an_app_got_it():
    """A carrier's or MO message stored as delivered that no app got,
    or that reached another app than its recipient's, is a problem."""
    m = stored(0x30, kind="carrier")
    m.recipient = "111"
    c = campaign()
    c.strict_apps = True
    c.apps = [app("111", delivery("a", "30"))]
    c._check_apps(snapshot({"a": m}))
    assert c.figures.problems == []
    c.apps = [app("222", delivery("a", "30"))]
    c._check_apps(snapshot({"a": m}))
    assert c.figures.problems == ["'a' for 111 reached the app of 222"]
    c = campaign()
    c._check_apps(snapshot({"a": m}))
    assert "is delivered but no app got it" in c.figures.problems[0]


def test_two_copies_to_an_app_from_one_process_are_a_problem():
    """
    The run that sent a MESSAGE is the one whose SIP port it came from,
    not the time it was read: a copy read after the restart but sent by
    the killed process is not a copy of the new one; two copies from one
    process (both answered) are a problem when strict.
    """
    node = CampaignNode.__new__(CampaignNode)
    node.spawned = [0.0, 10.0]
    node.history = [{"sip_udp": [5060]}, {"sip_udp": [5070]}]
    waiting = snapshot({"a": stored(1, state="delivering")})
    c = campaign(spawned=(0.0, 10.0), kills=[Kill(5.0, 5.0, waiting, 10.5)])
    c.node = node
    c.apps = [app("x", delivery("a", "1", 10.2, ("127.0.0.1", 5060)),
                  delivery("a", "1", 11.0, ("127.0.0.1", 5070)))]
    c._check_apps(snapshot({"a": stored(1)}))
    assert c.figures.problems == [] and c.figures.notes == []
    c.apps = [app("x", delivery("a", "1", 10.2, ("127.0.0.1", 5070)),
                  delivery("a", "1", 11.0, ("127.0.0.1", 5070)))]
    c._check_apps(snapshot({"a": stored(1)}))
    assert c.figures.problems == ["'a' to the apps sent twice in run 2, the "
                                  "first copy answered, no kill in between"]


def test_life_of_a_port_that_comes_back():
    """An ephemeral port used by two processes belongs to the latest one
    started before the datagram arrived."""
    node = CampaignNode.__new__(CampaignNode)
    node.spawned = [0.0, 10.0, 20.0]
    node.history = [{"smpp": [7]}, {"smpp": [8]}, {"smpp": [7]}]
    assert node.life_of("smpp", 7, 5.0) == 1
    assert node.life_of("smpp", 7, 25.0) == 3
    assert node.life_of("smpp", 8, 25.0) == 2
    assert node.life_of("smpp", 9, 25.0) is None


def test_vendor_deliveries_and_its_receipts():
    """An app's or tenant's message delivered that the vendor never got,
    or delivered though no receipt was answered for its id, or not
    delivered though its (DELIVRD) receipt was answered: problems."""
    def m(state="delivered", remote=("vendor", "v1")):
        return Stored(0x40, "tenant", state, None if state != "failed"
                      else "x", None, 0, remote, "smpp")
    sub = SimpleNamespace(text="a", at=1.0, session_at=0.5)
    c = campaign()
    c.smsc = vendor([sub], ["V1"])
    c._check_vendor(snapshot({"a": m()}))
    assert c.figures.problems == []
    c.smsc = vendor([], ["V1"])
    c._check_vendor(snapshot({"a": m()}))
    assert "the vendor never got it" in c.figures.problems[-1]
    c.smsc = vendor([sub], [])
    c._check_vendor(snapshot({"a": m()}))
    assert "no receipt answered for its id v1" in c.figures.problems[-1]
    c.smsc = vendor([sub], ["V1"])
    c._check_vendor(snapshot({"a": m("expired")}))
    assert "is expired though its receipt v1" in c.figures.problems[-1]


def test_receipt_says_the_final_state_and_is_owed_for_every_stored():
    """
    A receipt must say its message's final state; a stored carrier
    message asking for one (acknowledged or not) must get one; a receipt
    for a message not stored is a problem.
    """
    c = campaign()
    snap = snapshot({"a": stored(0x50), "b": stored(0x51, state="failed")})
    c._check_receipts(snap, [], {"50": [1.0], "51": [1.0]},
                      {"50": ["DELIVRD"], "51": ["UNDELIV"]})
    assert c.figures.problems == []
    c._check_receipts(snap, [], {"50": [1.0], "51": [1.0]},
                      {"50": ["DELIVRD"], "51": ["DELIVRD"]})
    assert c.figures.problems == ["receipt 51 says ['DELIVRD'], the message "
                                  "is failed"]
    c = campaign()
    c._check_receipts(snap, [], {"50": [1.0], "99": [1.0]})
    text = "\n".join(c.figures.problems)
    assert "never got the receipt of 51" in text
    assert "receipt for 99, which is not stored" in text


def test_receipt_copies_from_one_connection_are_a_problem():
    """Two copies of a receipt over one process's connections (the
    carrier answered the first) are a problem."""
    c = campaign(spawned=(0.0,))
    snap = snapshot({"a": stored(0x50)})
    c._check_receipts(snap, [], {"50": [1.0, 2.0]}, {}, {"50": [1, 1]})
    assert "receipt 50 sent twice in run 1, the first copy answered" in \
        c.figures.problems[0]


def test_callback_owed_for_every_stored_tenant_message():
    """A tenant's message stored but never acknowledged (the answer lost
    in a kill) still gets its report; a report of a message not stored
    is a problem."""
    c = campaign()
    c.callbacks = SimpleNamespace(reports=[(1.0, "61", "delivered")])
    snap = snapshot({"t": stored(0x60, kind="tenant"),
                     "u": stored(0x61, kind="tenant")})
    c._check_callbacks(snap, [])
    assert c.figures.problems == ["the tenant never got the report of 60 "
                                  "('t')"]
    c = campaign()
    c.callbacks = SimpleNamespace(reports=[(1.0, "99", "delivered")])
    c._check_callbacks(snapshot({}), [])
    assert "report of 99, which is not stored" in c.figures.problems[0]


def test_receipt_stat_read_from_the_text():
    assert receipt_stat("id:1 sub:001 dlvrd:000 stat:UNDELIV err:001 "
                        "text:x") == "UNDELIV"
    assert receipt_stat("no receipt") is None


def test_summary_names_the_figures():
    """The summary line gives the kills just before the baseline beside
    it, and the notes' count."""
    f = Figures(runs=3, recovery=[1.0, 9.0, 2.0], baseline_recovery=[4.0],
                first_ack=[5.0, None, 6.0], notes=["n"])
    line = f.summary()
    assert "after SIGTERM, 1 times: median 4.00 s; the last 1 kills, same " \
        "database size: median 2.00 s" in line
    assert "kill to first acknowledgement median 6.00 s, max 6.00 s" in line
    assert "problems 0, notes 1" in line


def test_billed_to_the_payer_its_rule_names():
    """The provisioning charges each origin its sender: a message billed
    to someone else (a record to match, so only the payer is wrong) is a
    problem."""
    def m(payer):
        return Stored(1, "account", "delivered", None, payer, 0, None,
                      "smpp", "447700900001", "96470000001")
    c = campaign()
    c._check_common(snapshot({"a": m("account:96470000001")},
                             {("account:96470000001", 1): "delivered"}),
                    "kill 1", [])
    assert c.figures.problems == []
    c._check_common(snapshot({"a": m("carrier:CrashCarrier")},
                             {("carrier:CrashCarrier", 1): "delivered"}),
                    "kill 1", [])
    assert c.figures.problems == ["kill 1: message 1 ('a') is billed to "
                                  "carrier:CrashCarrier, its rule charges "
                                  "account:96470000001"]
