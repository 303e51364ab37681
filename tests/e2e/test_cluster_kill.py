"""
Two real nodes on one database (PostgreSQL, ZEO) under traffic, one killed with
SIGKILL in the middle of it (issue 17, item 5): what was in flight on the
killed node is sent again by the other, nothing acknowledged is lost,
nothing confirmed is sent twice, and receipts reach the carrier over
whichever node holds its bind, once.

 - A carrier (smpplib, transceiver, receipts asked for) bound to node A
   submits to two apps and to a vendor's numbers; app 1
   (L{tests.e2e.sip_app.SIPApp}, recording each MESSAGE's Message-ID) is
   registered on B, app 2 on A; both nodes bind to the vendor's SMSC
   (L{tests.e2e.crash_smsc.CrashSMSC}), which sends its receipts over
   either node's bind, resending until answered.
 - A is killed mid-traffic; app 2 registers again, on B; the carrier binds
   to B and sends a little more.  B takes A's slot over once its lease ran
   out and sends what A had not finished.
"""
from __future__ import annotations

import random
import re
import select
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import smpplib.client
import smpplib.consts

from tests.e2e.crash_peers import (APP_PASSWORD, APPS, CARRIER, DOMAIN,
                                   VENDOR_PREFIX, provision)
from tests.e2e.crash_smsc import CrashSMSC
from tests.e2e.harness import Node, start_node, wait_for
from tests.e2e.postgres import Cluster, pg_bin
from tests.e2e.sip_app import SIPApp
from tests.e2e.zeo import ZEOServer
from tests.e2e.test_shell_ssh import keygen, ssh

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(pg_bin("initdb") is None,
                       reason="Debian's postgresql is not installed "
                              "(make debs)"),
]

LEASE, HEARTBEAT = 3.0, 0.5


@pytest.fixture(params=["postgresql", "zeo"])
def database(request):
    """The database both nodes use, C{(uri_a, uri_b)}: PostgreSQL (A over
    TCP with a password, B over the Unix socket) or a ZEO server."""
    if request.param == "postgresql":
        c = Cluster().start()
        c.create_database("kill")
        yield c.uri("kill"), c.socket_uri("kill")
        c.stop()
        return
    server = ZEOServer().start()
    yield server.uri, server.uri
    server.stop()


def node_on(tmp_path: Path, name: str, uri: str, script: Path) -> Node:
    """A node on C{uri}, with the shell (the key C{tmp_path / "admin"})."""
    if not (tmp_path / "admin").exists():
        (tmp_path / "admin_keys").write_text(keygen(tmp_path / "admin")
                                             + "\n")
    return start_node(
        tmp_path, name=name,
        node={"provision": str(script), "log_level": "info"},
        shell={"enabled": True, "admin_keys": str(tmp_path / "admin_keys")},
        storage={"uri": uri, "lease": LEASE, "heartbeat": HEARTBEAT},
        smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"},
        sip={"enabled": True, "listen": ["udp:port=0:interface=127.0.0.1"],
             "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
             "max_expires": 3600, "retry_schedule": [1, 2],
             "validity": 3600, "auth_failures": 100000})


def registered_accounts(tmp_path: Path, node: Node) -> set[str]:
    """The accounts C{node}'s shell lists as registered on any node (the
    others' as of its last poll of the database)."""
    rc, out, err = ssh(tmp_path, node, "admin", tmp_path / "admin",
                       "show sip registrations")
    assert rc == 0, (out, err)
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def settled(db) -> bool:
    """Whether the database holds no message waiting and no receipt owed
    (then no node has anything left to send)."""
    conn = db.open()
    try:
        root = conn.root()
        return not list(root["messages"].waiting.keys(min=1)) and \
            len(root["smpp"].receipts) == 0
    finally:
        conn.close()


class CarrierLoad(threading.Thread):
    """
    The carrier: one transceiver bind to C{port}, C{rate} submit_sm a
    second, at most C{window} unanswered, each text a unique token, to
    the apps and the vendor in turn; answers every deliver_sm (smpplib
    does) and records receipts.

    @ivar acked: token to the message id of its submit_sm_resp (ESME_ROK).
    @ivar receipts: message id (lower case) to arrival times.
    """

    window = 10

    def __init__(self, port: int, prefix: str, rate: float,
                 acked: dict, receipts: dict, lock: threading.Lock):
        super().__init__(daemon=True)
        self.port, self.prefix, self.rate = port, prefix, rate
        self.acked, self.receipts, self.lock = acked, receipts, lock
        self.producing = threading.Event()
        self.producing.set()
        self.stopping = threading.Event()
        self.sent = 0
        self.error: str | None = None
        #: token to the number it was sent to.
        self.sent_to: dict[str, str] = {}

    def run(self) -> None:
        rng = random.Random(self.prefix)
        destinations = [APPS[0], APPS[1], f"{VENDOR_PREFIX}00001"]
        outstanding: dict[int, str] = {}
        client = smpplib.client.Client("127.0.0.1", self.port, timeout=2,
                                       allow_unknown_opt_params=True)

        def answered(pdu):
            token = outstanding.pop(pdu.sequence, None)
            if token is not None and pdu.status == 0:
                mid = pdu.message_id
                mid = mid.decode() if isinstance(mid, bytes) else str(mid)
                with self.lock:
                    self.acked[token] = mid.lower()

        def received(pdu):
            text = pdu.short_message
            text = text.decode() if isinstance(text, bytes) else text
            mid = getattr(pdu, "receipted_message_id", None)
            mid = mid.decode() if isinstance(mid, bytes) else mid
            mid = mid or text.split()[0].partition(":")[2]
            with self.lock:
                self.receipts[mid.lower()].append(time.monotonic())
        client.set_message_sent_handler(answered)
        client.set_message_received_handler(received)
        client.set_error_pdu_handler(lambda pdu: None)
        try:
            client.connect()
            client.bind_transceiver(system_id=CARRIER[0],
                                    password=CARRIER[1])
            next_at = time.monotonic()
            while not self.stopping.is_set():
                now = time.monotonic()
                if self.producing.is_set() and now >= next_at and \
                        len(outstanding) < self.window:
                    self.sent += 1
                    token = f"{self.prefix} {self.sent}"
                    to = self.sent_to[token] = rng.choice(destinations)
                    pdu = client.send_message(
                        source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                        source_addr="KillCo", dest_addr_ton=1,
                        dest_addr_npi=1, destination_addr=to,
                        short_message=token.encode(), registered_delivery=1)
                    outstanding[pdu.sequence] = token
                    next_at = max(next_at + 1 / self.rate, now - 1)
                    continue
                readable, _, _ = select.select([client._socket], [], [],
                                               0.02)
                if readable:
                    client.read_once()
        except Exception as e:
            self.error = repr(e)
        finally:
            try:
                client.disconnect()
            except Exception:
                pass


def test_kill_one_of_two_mid_traffic(tmp_path, database):
    """
    Node A killed with SIGKILL while a carrier on A sends to apps on both
    nodes and to a vendor: every submit acknowledged with ESME_ROK ends
    delivered (at its app, or at the vendor with the vendor's receipt);
    a MESSAGE an app got twice carries the same Message-ID both times and
    was never recorded delivered by A (it was unconfirmed when A died);
    a submit the vendor got twice was never recorded forwarded; each
    receipt the carrier is owed reaches it (before the kill, those of
    messages B delivered over A's bind), and a second copy only of a
    receipt A sent just before it died (none sent twice after); nothing
    is left waiting or owed in the database.
    """
    smsc = CrashSMSC(receipt_delay=0.05)
    script = tmp_path / "provision.cli"
    script.write_text(provision(smsc.port))
    uri = database[0]
    a = node_on(tmp_path, "a", uri, script)
    b = node_on(tmp_path, "b", database[1], script)
    apps = [SIPApp(APPS[0], APP_PASSWORD, DOMAIN,
                   ("127.0.0.1", b.port("sip_udp"))),
            SIPApp(APPS[1], APP_PASSWORD, DOMAIN,
                   ("127.0.0.1", a.port("sip_udp")))]
    lock = threading.Lock()
    acked: dict[str, str] = {}
    receipts: dict[str, list[float]] = defaultdict(list)
    loads: list[CarrierLoad] = []
    try:
        for app in apps:
            assert app.register(timeout=20) == 200
        wait_for(lambda: len(smsc.sessions) >= 2, 30,
                 what="both nodes bound to the vendor")
        wait_for(lambda: all(registered_accounts(tmp_path, n)
                             >= set(APPS[:2]) for n in (a, b)), 30,
                 interval=0.2, what="each node listing both apps")
        on_a = CarrierLoad(a.port("smpp"), "before", 40, acked, receipts,
                           lock)
        loads.append(on_a)
        on_a.start()
        wait_for(lambda: len(acked) >= 80, 60, what="80 submits acked")

        def receipt_for(to):
            with lock:
                return any(on_a.sent_to[t] == to and mid in receipts
                           for t, mid in acked.items())
        # Receipts of messages whose final state B recorded (delivered
        # to app 1 over B) reach the carrier's bind on A.
        wait_for(lambda: receipt_for(APPS[0]), 30,
                 what="a receipt over A for a message B delivered")
        a.kill()
        killed = time.monotonic()
        on_a.stopping.set()
        on_a.join(10)
        apps[1].node = ("127.0.0.1", b.port("sip_udp"))
        assert apps[1].register(timeout=20) == 200
        on_b = CarrierLoad(b.port("smpp"), "after", 20, acked, receipts,
                           lock)
        loads.append(on_b)
        on_b.start()
        time.sleep(2)           # pacing: B gets two seconds of load
        on_b.producing.clear()

        def arrived():
            got = {d.body.decode() for app in apps for d in app.deliveries}
            got |= {s.text for s in smsc.received}
            return set(acked) <= got
        wait_for(arrived, LEASE + 60, interval=0.2,
                 what="every acknowledged message at its app or vendor")
        wait_for(lambda: smsc.receipts_owed() == 0, 60, interval=0.2,
                 what="the vendor's receipts answered")
        vendor_tokens = {t for t in acked if any(
            s.text == t for s in smsc.received)}
        wait_for(lambda: all(acked[t] in receipts for t in acked), 60,
                 interval=0.2, what="a receipt for every acked message")
        # Late copies would come from what is still waiting or owed:
        # once the database holds none, nothing is left to send.
        from appliance.store.database import open_database
        db = open_database(uri, tmp_path)
        try:
            wait_for(lambda: settled(db), LEASE + 60, interval=0.5,
                     what="nothing waiting or owed in the database")
        finally:
            db.close()
        took = time.monotonic() - killed
    finally:
        for load in loads:
            load.stopping.set()
            load.join(10)
        for app in apps:
            app.close()
        b.stop(timeout=60)
        a.kill()
        smsc.stop()
    # The bind to A broke when A died; the one to B must not have.
    assert loads[-1].error is None, loads[-1].error

    # What A had committed before it died, from its log.
    a_log = a.log()
    delivered_by_a = set(re.findall(r"message (\d+) to \d+: delivered",
                                    a_log))

    # Copies at the apps: the same Message-ID, and never of what A had
    # recorded delivered.
    copies = 0
    for app in apps:
        by_body: dict[bytes, list] = defaultdict(list)
        for d in app.deliveries:
            by_body[d.body].append(d)
        for body, ds in by_body.items():
            if len(ds) > 1:
                copies += len(ds) - 1
                ids = {d.message_id for d in ds}
                assert len(ids) == 1 and None not in ids, (body, ids)
                assert str(int(ids.pop(), 16)) not in delivered_by_a, body

    # The database: every acked message final and delivered, nothing
    # owed; vendor copies only of messages A never recorded forwarded.
    from appliance.store.database import open_database
    db = open_database(uri, tmp_path)
    try:
        conn = db.open()
        root = conn.root()
        store = root["messages"]
        for token, mid in acked.items():
            message = store.get(int(mid, 16))
            assert message is not None, token
            assert message.state == "delivered", (token, message.state,
                                                  message.error)
        assert not list(store.waiting.keys(min=1))
        assert len(root["smpp"].receipts) == 0
        vendor_copies = 0
        texts = defaultdict(list)
        for s in smsc.received:
            texts[s.text].append(s.id)
        for token, ids in texts.items():
            if len(ids) > 1 and token in acked:
                vendor_copies += len(ids) - 1
                message = store.get(int(acked[token], 16))
                # B's copy is the one recorded: A's was never confirmed.
                assert message.remote[1].upper() == ids[-1].upper(), \
                    (token, ids, message.remote)
        conn.close()
    finally:
        db.close()

    # Receipts: each once, a second copy only of one first sent before
    # the kill (A sent it, the carrier answered, A died before it
    # recorded that).
    twice_after = [mid for mid, times in receipts.items()
                   if len([t for t in times if t > killed]) > 1]
    assert twice_after == []
    receipt_copies = sum(len(times) - 1 for times in receipts.values())
    assert "Traceback" not in b.log()
    print(f"\n{len(acked)} acked ({len(vendor_tokens)} to the vendor), all "
          f"delivered; copies at the apps {copies} (same Message-ID), at "
          f"the vendor {vendor_copies}; receipts {len(receipts)}, second "
          f"copies {receipt_copies}; B took over: "
          f"{'took over slot' in b.log()}; settled {took:.1f} s after the "
          "kill")
