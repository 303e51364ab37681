"""
Two real nodes (C{twistd -n appliance}) on one database, provisioned with
the seeds' demo: RelStorage in a throwaway PostgreSQL cluster
(tests/e2e/postgres.py; A over TCP with a password, B over the Unix
socket), and the same on a throwaway ZEO server (tests/e2e/zeo.py). smpplib is Carrier1 bound to node A, SIPp is John Doe's app
registered on node B.  Each message has one owner at a time (a lease in
the database): a message accepted on A for the app on B is delivered by B
over B's own socket; A killed with SIGKILL with messages queued: B takes
them over once A's lease has run out and delivers each once.
"""
from __future__ import annotations

import itertools
import re
import struct
import time
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts

from tests.e2e.harness import Node, start_node, wait_for
from tests.e2e.postgres import Cluster, pg_bin
from tests.e2e.zeo import ZEOServer
from tests.e2e.sip_tools import DOMAIN, SIPP, SIPp, received_requests, \
    write_users
from tests.e2e.test_shell_ssh import keygen, ssh
from tests.e2e.test_usecase1 import (JOHN, JOHN_PASSWORD, Carrier,
                                     demo_in_tmp)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(SIPP is None, reason="needs sipp (Debian sip-tester)"),
]

#: A short lease, so a takeover comes within seconds.
LEASE = 3.0
HEARTBEAT = 0.5


@pytest.fixture(scope="module")
def pg():
    if pg_bin("initdb") is None:
        pytest.skip("Debian's postgresql is not installed (make debs)")
    c = Cluster().start()
    yield c
    c.stop()


_NAMES = itertools.count(1)


@pytest.fixture(params=["postgresql", "zeo"])
def database(request, tmp_path):
    """
    A new database both nodes use: C{(uri_a, uri_b)}, PostgreSQL (a
    database of the module's cluster) or ZEO (a server of its own).
    """
    if request.param == "postgresql":
        pg = request.getfixturevalue("pg")
        name = f"db{next(_NAMES)}"
        pg.create_database(name)
        yield pg.uri(name), pg.socket_uri(name)
        return
    server = ZEOServer().start()
    yield server.uri, server.uri
    server.stop()


#: Added to the demo: a prepaid carrier with 0.10 USD, 0.01 per SMS, and
#: a second app account.
PREPAID = """configure terminal
 tariff PRE-IN
  currency USD
  prefix 964 0.01
 exit
 carrier PRE
  system-id pre
  password prepass
  allow-ip 127.0.0.0/8
  tariff PRE-IN
  prepaid
  balance add 0.10
 exit
 customer "John Doe"
  account 222333444
   password other-pass
   product "Call & Chat"
   did 964222333444
  exit
 exit
end
"""


def cluster_node(tmp_path: Path, name: str, uri: str,
                 shell: bool = False) -> Node:
    """A node named C{name} on C{uri} with SMPP and SIP (UDP) on loopback,
    provisioned with the demo and carrier PRE (by whichever node starts
    first); with C{shell}, the shell too (L{show}: the key C{tmp_path /
    "admin"})."""
    (tmp_path / name / "data" / "ports.json").unlink(missing_ok=True)
    script = tmp_path / "cluster.cli"
    script.write_text(demo_in_tmp(tmp_path).read_text() + PREPAID)
    shell_section = {}
    if shell:
        if not (tmp_path / "admin").exists():
            (tmp_path / "admin_keys").write_text(
                keygen(tmp_path / "admin") + "\n")
        shell_section = {"enabled": True,
                         "admin_keys": str(tmp_path / "admin_keys")}
    return start_node(
        tmp_path, name=name,
        node={"provision": str(script)}, shell=shell_section,
        storage={"uri": uri, "lease": LEASE, "heartbeat": HEARTBEAT},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600, "retry_schedule": [1, 2],
             "validity": 300},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1",
              "bind_failures": 1000})


def show(tmp_path: Path, node: Node, command: str) -> list[list[str]]:
    """The rows of a shell table on C{node} (over OpenSSH), split on
    whitespace."""
    rc, out, err = ssh(tmp_path, node, "admin", tmp_path / "admin", command)
    assert rc == 0, (out, err)
    return [line.split() for line in out.splitlines() if line.strip()]


def registered_accounts(tmp_path: Path, node: Node) -> set[str]:
    """The accounts C{node} lists as registered, on any node (the others'
    as of its last poll of the database)."""
    return {row[0] for row in show(tmp_path, node, "show sip registrations")}


def queue(tmp_path: Path, node: Node) -> dict[str, int]:
    """C{show queue} on C{node}: state to number of messages."""
    return {row[0]: int(row[-1]) for row in show(tmp_path, node, "show queue")
            if len(row) == 2 and row[-1].isdigit()}


def app_on(workdir: Path, node: Node, expected: int) -> SIPp:
    """SIPp registered as John Doe's app on C{node}, answering C{expected}
    MESSAGEs with 200; returned once its REGISTER got 200."""
    csv = write_users(workdir.with_suffix(".csv"), [(JOHN, JOHN_PASSWORD)])
    app = SIPp(workdir, "register_receive.xml", node.port("sip_udp"),
               users=csv, ooc="receive_ooc.xml", expected=expected,
               timeout=90)

    def registered():
        if app.process.poll() is not None:
            raise AssertionError(app.wait().explain())
        return any(m.direction == "received"
                   and m.first_line.startswith("SIP/2.0 200")
                   and "REGISTER" in (m.header("CSeq") or "")
                   for m in app.sent_and_received())
    wait_for(registered, what="John Doe's app registered")
    return app


def messages_of(app: SIPp, expected: int, timeout: float) -> list:
    """Wait until the app got C{expected} MESSAGEs; @return: every
    MESSAGE it received by then."""
    wait_for(lambda: len(received_requests(app.sent_and_received(),
                                           "MESSAGE")) >= expected,
             timeout, interval=0.05, what=f"{expected} MESSAGEs at the app")
    return received_requests(app.sent_and_received(), "MESSAGE")


def delivered(node: Node) -> list[str]:
    """The ids of the messages C{node} logged as delivered."""
    return re.findall(r"message (\d+) to \d+: delivered", node.log())


def conflicts(node: Node) -> tuple[dict[str, int], int]:
    """What C{node}'s log says of its commits that conflicted with the
    other node's: retries by the class of the object, and commits that
    ran out of retries."""
    log = node.log()
    retried: dict[str, int] = {}
    for name in re.findall(r"conflicted on (\S+) \(attempt", log):
        retried[name] = retried.get(name, 0) + 1
    return retried, len(re.findall(r"conflicted on \S+ \d+ times \(oid", log))


def conflict_oids(node: Node) -> list[str]:
    """The oids C{node}'s log names in its conflicts."""
    return re.findall(r"conflicted on \S+ \(attempt \d+, oid (0x[0-9a-f]*)",
                      node.log())


def object_paths(uri: str, tmp_path: Path, oids: set[str]) -> dict[str, str]:
    """
    Where the objects C{oids} (hex) sit in the database: a walk from the
    root through persistent attributes, BTree values and buckets (not
    into messages), naming each object it meets.
    """
    from persistent import Persistent
    from appliance.messaging.store import Message
    from appliance.store.database import open_database
    wanted = {int(o, 16) for o in oids if o != "0x"}
    found: dict[str, str] = {}
    db = open_database(uri, tmp_path)
    try:
        conn = db.open()
        queue = [("root", conn.root())]
        seen = set()
        while queue and len(found) < len(wanted) and len(seen) < 200000:
            path, obj = queue.pop(0)
            oid = getattr(obj, "_p_oid", None)
            if oid is None or oid in seen:
                continue
            seen.add(oid)
            n = int.from_bytes(oid, "big")
            if n in wanted:
                found[hex(n)] = path
            if isinstance(obj, Message):
                continue
            children = []
            bucket = getattr(obj, "_firstbucket", None)
            i = 0
            while bucket is not None and i < 5000:
                children.append((f"{path}.bucket{i}", bucket))
                bucket = bucket._next
                i += 1
            if hasattr(obj, "items") and not hasattr(obj, "_next"):
                try:
                    for k, v in obj.items():
                        if isinstance(v, Persistent):
                            children.append((f"{path}[{k!r}]", v))
                except Exception:
                    pass
            for k, v in getattr(obj, "__dict__", {}).items():
                if isinstance(v, Persistent):
                    children.append((f"{path}.{k}", v))
            queue.extend(children)
        conn.close()
    finally:
        db.close()
    return found


def sent_by(request) -> int:
    """The port in the top Via of a request (the node that sent it)."""
    via = request.header("Via") or ""
    return int(re.search(r"SIP/2\.0/UDP [^:;]+:(\d+)", via).group(1))


def test_accepted_on_a_delivered_by_b(tmp_path, database):
    """Three messages Carrier1 submits on node A for John's app, which is
    registered on node B, reach the app once each, sent from B's SIP
    socket (the node holding the app's flow); A sends none."""
    a = cluster_node(tmp_path, "a", database[0])
    b = cluster_node(tmp_path, "b", database[1])
    app = app_on(tmp_path / "app", b, expected=3)
    carrier = Carrier(a)
    try:
        texts = [f"cross-node {i}" for i in range(3)]
        for text in texts:
            carrier.submit(text, "AsiaCell")
        got = messages_of(app, 3, 20)
        result = app.wait(20)
        assert result.returncode == 0, result.explain()
        got = received_requests(app.sent_and_received(), "MESSAGE")
        assert sorted(r.body.decode() for r in got) == texts
        assert {sent_by(r) for r in got} == {b.port("sip_udp")}
    finally:
        carrier.close()
        app.stop()
        a.stop()
        b.stop()
    assert len(delivered(b)) == 3 and delivered(a) == []
    assert "Traceback" not in a.log() + b.log()


def test_takeover_after_kill(tmp_path, database):
    """Five messages accepted on node A while John's app is registered
    nowhere wait on A; A is killed with SIGKILL; the app registers on B;
    once A's lease has run out, B takes A's slot over and the app gets
    each message exactly once, from B."""
    a = cluster_node(tmp_path, "a", database[0])
    b = cluster_node(tmp_path, "b", database[1])
    carrier = Carrier(a)
    texts = [f"queued {i}" for i in range(5)]
    try:
        for text in texts:
            carrier.submit(text, "Viber")
    finally:
        carrier.close()
    a.kill()
    killed = time.monotonic()
    app = app_on(tmp_path / "app", b, expected=5)
    try:
        got = messages_of(app, 5, LEASE + 20)
        took = time.monotonic() - killed
        result = app.wait(20)
        assert result.returncode == 0, result.explain()
        assert "took over slot" in b.log()
        got = received_requests(app.sent_and_received(), "MESSAGE")
        assert sorted(r.body.decode() for r in got) == texts, \
            [r.body for r in got]
        assert {sent_by(r) for r in got} == {b.port("sip_udp")}
        print(f"A killed; its 5 messages at the app {took:.2f} s later "
              f"(lease {LEASE} s)")
        assert took >= LEASE - HEARTBEAT
    finally:
        app.stop()
        b.stop()
    # Each delivered once, and nothing left waiting to be sent again.
    assert sorted(delivered(b)) == sorted(set(delivered(b)))
    assert len(delivered(b)) == 5 and delivered(a) == []
    assert "Traceback" not in b.log()


def read_statuses(client, count: int) -> list[int]:
    """Read C{count} submit_sm_resp off an smpplib client's socket (raw:
    smpplib raises on the first error status); @return: their statuses."""
    statuses = []
    deadline = time.monotonic() + 30
    while len(statuses) < count:
        assert time.monotonic() < deadline, statuses
        length, command, status, _ = struct.unpack(
            ">IIII", client._recv_exact(16))
        client._recv_exact(length - 16)
        if command == 0x80000004:
            statuses.append(status)
    return statuses


def test_prepaid_balance_shared(tmp_path, database):
    """Carrier PRE (prepaid, 0.10 USD at 0.01 an SMS) bound to both nodes
    sends ten submit_sm to each at once: each node authorizes from the
    balance it read and its own holds, and the second commit on the
    carrier's balance conflicts in PostgreSQL and is re-run on what the
    first left: ten are accepted in all, the others get
    ESME_RSUBMITFAIL, and the balance ends at 0.00, never below."""
    a = cluster_node(tmp_path, "a", database[0])
    b = cluster_node(tmp_path, "b", database[1])
    clients = []
    try:
        for node in (a, b):
            c = smpplib.client.Client("127.0.0.1", node.port("smpp"),
                                      timeout=10,
                                      allow_unknown_opt_params=True)
            c.connect()
            c.bind_transceiver(system_id="pre", password="prepass")
            clients.append(c)
        for i in range(10):
            for c in clients:
                c.send_message(source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                               source_addr="PRE", dest_addr_ton=1,
                               dest_addr_npi=1,
                               destination_addr="964111222333",
                               short_message=f"paid {i}".encode())
        statuses = [read_statuses(c, 10) for c in clients]
    finally:
        for c in clients:
            c.disconnect()
    a.stop()
    b.stop()
    every = statuses[0] + statuses[1]
    print(f"accepted on A {statuses[0].count(0)}, on B "
          f"{statuses[1].count(0)}")
    assert every.count(0) == 10, statuses
    assert set(every) - {0} <= {smpplib.consts.SMPP_ESME_RSUBMITFAIL}
    # The balance and the messages as the database has them.
    from decimal import Decimal
    from appliance.billing.model import billing_of
    from appliance.store.database import open_database
    db = open_database(database[0], tmp_path)
    try:
        conn = db.open()
        app = conn.root()["appliance"]
        terms = billing_of(app).terms("carriers", app.carriers["PRE"])
        assert terms.balance == Decimal("0.00")
        messages = conn.root()["messages"]
        assert sum(1 for m in messages.messages.values()
                   if m.payer == "carrier:PRE") == 10
        conn.close()
    finally:
        db.close()
    assert "Traceback" not in a.log() + b.log()


def read_answers(client, count: int) -> dict[int, int]:
    """Read C{count} submit_sm_resp off an smpplib client's socket (raw);
    @return: sequence number to status."""
    answers: dict[int, int] = {}
    deadline = time.monotonic() + 60
    while len(answers) < count:
        assert time.monotonic() < deadline, answers
        length, command, status, seq = struct.unpack(
            ">IIII", client._recv_exact(16))
        client._recv_exact(length - 16)
        if command == 0x80000004:
            answers[seq] = status
    return answers


def load(node: Node, system_id: str, password: str, count: int,
         dids: list[str], window: int = 20) -> dict[bytes, int]:
    """Submit C{count} messages over one bind to C{dids} in turn, at most
    C{window} outstanding; @return: each message's body to the status of
    its submit_sm_resp."""
    c = smpplib.client.Client("127.0.0.1", node.port("smpp"), timeout=10,
                              allow_unknown_opt_params=True)
    c.connect()
    c.bind_transceiver(system_id=system_id, password=password)
    out: dict[bytes, int] = {}
    try:
        sent = 0
        while sent < count:
            bodies = {}
            for i in range(sent, min(count, sent + window)):
                body = f"{system_id} {i}".encode()
                pdu = c.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                    source_addr=system_id, dest_addr_ton=1, dest_addr_npi=1,
                    destination_addr=dids[i % len(dids)],
                    short_message=body)
                bodies[pdu.sequence] = body
            for seq, status in read_answers(c, len(bodies)).items():
                out[bodies[seq]] = status
            sent += len(bodies)
    finally:
        c.disconnect()
    return out


def test_both_nodes_serve_load(tmp_path, database):
    """Carrier1 on A and Carrier2 on B each send 150 messages, window 20,
    to two apps, one registered on each node, at the same time, so half
    of them cross from one node to the other: every message acknowledged
    with ESME_ROK reaches its app exactly once, and none other does.
    Both nodes commit into the same message indexes: the commits that
    conflict are counted from each node's log (by the object, found in
    the database by its oid) and re-run, a bounded number of times; no
    outcome is lost to a conflict (the core queues it again), a submit
    whose commit ran out of retries is refused ESME_RSYSERR, and while
    commits queue up the node's admission may answer ESME_RTHROTTLED;
    nothing refused is delivered (the numbers are printed)."""
    import threading
    a = cluster_node(tmp_path, "a", database[0], shell=True)
    b = cluster_node(tmp_path, "b", database[1], shell=True)
    apps = []
    for name, node, user, password in (
            ("john", a, JOHN, JOHN_PASSWORD),
            ("second", b, "222333444", "other-pass")):
        csv = write_users((tmp_path / name).with_suffix(".csv"),
                          [(user, password)])
        app = SIPp(tmp_path / name, "register_receive.xml",
                   node.port("sip_udp"), users=csv, ooc="receive_ooc.xml",
                   expected=10 ** 6, timeout=120)
        apps.append(app)
        wait_for(lambda: any(m.direction == "received"
                             and m.first_line.startswith("SIP/2.0 200")
                             for m in app.sent_and_received()),
                 what=f"{name}'s app registered")
    both = {JOHN, "222333444"}
    wait_for(lambda: all(registered_accounts(tmp_path, n) >= both
                         for n in (a, b)), 20, interval=0.2,
             what="both nodes listing both registrations")
    answers: dict[bytes, int] = {}
    dids = ["964111222333", "964222333444"]

    def run(node, sid, pw):
        answers.update(load(node, sid, pw, 150, dids))
    threads = [threading.Thread(target=run, args=(a, "carrier1", "car1pass")),
               threading.Thread(target=run, args=(b, "carrier2", "car2pass"))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(answers) == 300
        acked = {body for body, status in answers.items() if status == 0}
        refused = set(answers) - acked
        assert {answers[x] for x in refused} <= {
            smpplib.consts.SMPP_ESME_RSYSERR,
            smpplib.consts.SMPP_ESME_RTHROTTLED}

        def bodies():
            return [r.body for app in apps for r in received_requests(
                app.sent_and_received(), "MESSAGE")]
        wait_for(lambda: set(bodies()) >= acked, 60, interval=0.1,
                 what="every acknowledged message at its app")
        # Until no message waits on either node's view of the database:
        # then no copy can be sent late, and a refused message that was
        # stored all the same is counted.
        def settled(node):
            q = queue(tmp_path, node)
            return q.get("accepted") == q.get("delivering") == 0 and sum(
                q.get(s, 0) for s in ("delivered", "failed", "expired")
            ) >= len(acked)
        wait_for(lambda: settled(a) and settled(b), 60, interval=0.5,
                 what="nothing waiting on either node")
        assert queue(tmp_path, a) == queue(tmp_path, b) == {
            "accepted": 0, "delivering": 0, "delivered": len(acked),
            "failed": 0, "expired": 0}, (queue(tmp_path, a),
                                         queue(tmp_path, b))
        got = bodies()
        assert sorted(got) == sorted(acked)
        print(f"{len(acked)} acknowledged and delivered once; refused: "
              f"{sum(answers[x] == 8 for x in refused)} ESME_RSYSERR "
              "(conflicting retries ran out), "
              f"{sum(answers[x] == 88 for x in refused)} ESME_RTHROTTLED "
              "(commits queued too long)")
    finally:
        for app in apps:
            app.stop()
        a.stop()
        b.stop()
    for name, node in (("A", a), ("B", b)):
        retried, failed = conflicts(node)
        print(f"node {name}: {sum(retried.values())} commits re-run "
              f"after a conflict {retried}, {failed} ran out of retries")
    oids = conflict_oids(a) + conflict_oids(b)
    paths = object_paths(database[0], tmp_path, set(oids))
    by_path: dict[str, int] = {}
    for oid in oids:
        where = re.sub(r"\[\d+\]|\['[^']*'\]|bucket\d+", "*",
                       paths.get(oid, "(not found: " + oid + ")"))
        by_path[where] = by_path.get(where, 0) + 1
    print("conflicts by object:", sorted(by_path.items(),
                                         key=lambda kv: -kv[1]))
    for node in (a, b):
        assert "recording the outcome of message" not in node.log()


def test_show_cluster_lists_what_each_node_holds(tmp_path, database):
    """'show cluster' on B, with Carrier1 bound (transceiver) to A and
    three messages accepted on A waiting for John's app (registered
    nowhere): both nodes alive, A's slot owning the three waiting
    messages, and A holding Carrier1's receiving bind (its heartbeat
    says so), B none."""
    a = cluster_node(tmp_path, "a", database[0], shell=True)
    b = cluster_node(tmp_path, "b", database[1], shell=True)
    carrier = Carrier(a)
    try:
        for i in range(3):
            carrier.submit(f"held {i}", "Viber")

        def tables():
            # Node rows: name, state, "0.3s ago", "2.8s ago", slots,
            # waiting, mailbox (the ages split in two words each).
            rows = show(tmp_path, b, "show cluster")
            return ({r[0]: r for r in rows if len(r) == 9
                     and r[1] in ("alive", "stopped", "gone")},
                    {r[0]: r for r in rows if len(r) == 4})

        def ready():
            nodes, holds = tables()
            return nodes.get("a", [""] * 9)[7] == "3" and \
                holds.get("a", ["", ""])[1] == "Carrier1"
        wait_for(ready, timeout=10,
                 what="A's messages and bind in show cluster")
        nodes, holds = tables()
        assert nodes["a"][1] == nodes["b"][1] == "alive"
        assert nodes["b"][7] == "0"
        assert holds["b"][1:] == ["-", "0", "0"]
        assert holds["a"][2:] == ["0", "0"]
        text = "\n".join(" ".join(r) for r in show(tmp_path, b,
                                                    "show cluster"))
        assert "Receiving binds of" in text and "Holder" in text
    finally:
        carrier.close()
        a.stop()
        b.stop()
