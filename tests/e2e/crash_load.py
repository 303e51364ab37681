"""
The crash campaign (issue 17, item 1): mixed load against the real node,
SIGKILL at random moments, restart, and the checks of what was promised.

The load, all on loopback, from this process:

 - a carrier (smpplib, transceiver) submits to the apps' DIDs asking for
   receipts (C{registered_delivery} 1) and reads its receipts;
 - apps (L{tests.e2e.sip_app.SIPApp}, one per account) are registered,
   answer every MESSAGE with 200 and record its C{Message-ID}, and send
   MESSAGEs to the vendor's numbers;
 - a tenant sends to the vendor's numbers over C{/sendsms/send}, its
   web server (L{CallbackReceiver}) takes the final reports;
 - the vendor's SMSC (L{tests.e2e.crash_smsc.CrashSMSC}) takes the
   node's outbound bind, answers submit_sm, owes and resends receipts
   until answered, and sends mobile-originated messages to the apps.

Every message carries a unique text (its token), so what each sender was
told is accepted (submit_sm_resp OK, SIP 202, HTTP 200, deliver_sm_resp
OK) can be found in the database.  After each kill the database is read
(read-only FileStorage, the appliance's own persistent classes) before
the restart, and what it holds then is what the node had confirmed at
that instant: which messages were delivered or forwarded, which receipts
were still owed.  A copy sent after a restart is allowed only for what
was not confirmed at that kill.
"""

from __future__ import annotations

import bisect
import http.client
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from appliance.billing.records import unpack as unpack_record
from tests.e2e.crash_peers import (  # noqa: F401 (re-exported)
    APPS, CARRIER, DOMAIN, TENANT, TOKEN, VENDOR_PREFIX, Ack, AppPeer,
    CallbackReceiver, CampaignNode, CarrierPeer, Ledger, Peer, TenantPeer,
    VendorMOPeer, provision)
from tests.e2e.crash_smsc import CrashSMSC
from tests.e2e.harness import wait_for

FINAL = ("delivered", "failed", "expired")
#: Origin kinds the provisioning's authorization rules all charge.
BILLABLE = ("carrier", "account", "tenant", "connection")
#: Origin kinds whose messages go to the apps (a carrier's, the vendor's
#: MO) and to the vendor (an app's, the tenant's).
TO_APPS = ("carrier", "connection")
TO_VENDOR = ("account", "tenant")
#: The C{stat:} of a receipt for each final state.
RECEIPT_STAT = {"delivered": "DELIVRD", "failed": "UNDELIV",
                "expired": "EXPIRED"}


# -- the database after a kill -------------------------------------------------

@dataclass
class Stored:
    """What the database holds of one message."""
    id: int
    kind: str
    state: str
    error: str | None
    payer: str | None
    receipt: int
    remote: tuple | None
    transport: str | None
    recipient: str | None = None
    origin: str | None = None


@dataclass
class Snapshot:
    """The database read while the node is down."""
    by_text: dict[str, list[Stored]]
    records: dict[tuple[str, int], str]      # (payer, id) -> state
    pending_receipts: list[tuple[str, str]]  # (carrier, message id hex)
    pending_callbacks: list[int]             # message ids
    seconds: float
    #: (payer, id) of every record beyond the first for one message.
    duplicate_records: list[tuple[str, int]] = field(default_factory=list)

    def by_id(self) -> dict[int, tuple[str, Stored]]:
        """Message id to its text and stored message."""
        return {m.id: (text, m) for text, stored in self.by_text.items()
                for m in stored}


def read_database(path: Path) -> Snapshot:
    """
    Read a stopped node's FileStorage read-only through the appliance's
    persistent classes: messages, billing records, receipts owed.
    """
    import ZODB
    from ZODB.FileStorage import FileStorage
    from appliance.billing.model import KEY as BILLING
    from appliance.smpp.state import KEY as SMPP
    from appliance.http.model import KEY as HTTP
    started = time.monotonic()
    db = ZODB.DB(FileStorage(str(path), read_only=True))
    try:
        conn = db.open()
        root = conn.root()
        by_text: dict[str, list[Stored]] = defaultdict(list)
        for mid, m in root["messages"].messages.items():
            by_text[m.text or ""].append(Stored(
                mid, m.origin_kind, m.state, m.error, m.payer, m.receipt,
                m.remote, m.transport, m.recipient, m.origin))
        records = {}
        duplicates = []
        for (payer, _month), bucket in root[BILLING].records.months.items():
            for record in map(unpack_record, bucket.records.values()):
                if (payer, record.id) in records:
                    duplicates.append((payer, record.id))
                records[(payer, record.id)] = record.state
        pending = [(key[0], record[0]) for key, record in
                   root[SMPP].receipts.items()]
        callbacks = [c.message for c in root[HTTP].callbacks.values()]
        conn.close()
    finally:
        db.close()
    return Snapshot(dict(by_text), records, pending, callbacks,
                    time.monotonic() - started, duplicates)


# -- the campaign --------------------------------------------------------------

@dataclass
class Kill:
    """One SIGKILL and what followed."""
    at: float
    up: float            # seconds the node had run
    snapshot: Snapshot
    restarted: float = 0.0   # monotonic time the node was ready again
    recovery: float = 0.0    # seconds from the process start to ready
    first_ack: float | None = None
    graceful: bool = False   # a SIGTERM (before the drain), not a kill
    #: killed while starting, before its listeners were ready
    startup: bool = False
    #: the restart after this kill was itself killed while starting
    restart_killed: bool = False


@dataclass
class Figures:
    """What the campaign measured."""
    runs: int = 0
    #: further SIGKILLs of a restarting node, before it was ready
    startup_kills: int = 0
    messages: int = 0
    acknowledged: dict = field(default_factory=dict)
    lost: int = 0
    not_final: int = 0
    duplicates_to_apps: int = 0
    duplicates_to_vendor: int = 0
    duplicate_receipts: int = 0
    duplicate_callbacks: int = 0
    receipts: int = 0          # receipts the carrier got
    vendor_receipts: int = 0   # the vendor's receipts the node answered OK
    reports: int = 0           # callbacks the tenant got
    recovery: list = field(default_factory=list)
    baseline_recovery: list = field(default_factory=list)
    first_ack: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    refused: dict = field(default_factory=dict)
    states: dict = field(default_factory=dict)
    unanswered: dict = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        rec = sorted(self.recovery)
        fa = sorted(x for x in self.first_ack if x is not None)
        # The kills just before the SIGTERM restarts: the same database
        # size and nearly the same load as the baseline.
        last = sorted(self.recovery[-len(self.baseline_recovery):]) \
            if self.baseline_recovery else []

        def pct(values, p):
            return values[min(len(values) - 1, int(p * len(values)))] \
                if values else float("nan")
        return (
            f"runs {self.runs} (and {self.startup_kills} kills during "
            f"start-up), messages {self.messages} (acknowledged "
            f"{sum(self.acknowledged.values())}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(
                self.acknowledged.items()))
            + f"; ended {self.states}; receipts to the carrier "
            f"{self.receipts}, from the vendor {self.vendor_receipts}, "
            f"reports to the tenant {self.reports}), lost {self.lost}, not final {self.not_final}, "
            f"duplicates to apps {self.duplicates_to_apps}, to the vendor "
            f"{self.duplicates_to_vendor}, duplicate receipts to the carrier "
            f"{self.duplicate_receipts}, duplicate reports to the tenant "
            f"{self.duplicate_callbacks}; recovery (start to listeners "
            f"ready) median {pct(rec, 0.5):.2f} s, max "
            f"{rec[-1] if rec else float('nan'):.2f} s (after SIGTERM, "
            f"{len(self.baseline_recovery)} times: median "
            f"{pct(sorted(self.baseline_recovery), 0.5):.2f} s; the last "
            f"{len(last)} kills, same database size: median "
            f"{pct(last, 0.5):.2f} s); kill to first "
            f"acknowledgement median {pct(fa, 0.5):.2f} s, max "
            f"{fa[-1] if fa else float('nan'):.2f} s; refused "
            f"{self.refused}, unanswered {self.unanswered}; problems "
            f"{len(self.problems)}, notes {len(self.notes)}; "
            f"{self.seconds:.0f} s")


class Campaign:
    """
    Run the campaign: C{runs} kills at random moments, each followed by
    a read of the database and a restart; then a drain and the final
    checks.

    @ivar figures: the L{Figures}.
    """

    #: Whether two copies from one run are a problem (not just a note):
    #: to the apps, to the vendor, receipts to the carrier.
    strict_apps = True
    strict_vendor = True
    strict_receipts = True

    def __init__(self, tmp: Path, runs: int = 3, seed: int | None = None,
                 up: tuple[float, float] = (0.5, 3.0),
                 rates: dict[str, float] | None = None,
                 drain_timeout: float = 120.0, log: Callable = print,
                 log_level: str = "info", baseline: int = 1,
                 startup_share: float = 0.0):
        """
        @param runs: kills.
        @param baseline: graceful restarts (SIGTERM) after the kills, the
            same load running: the recovery time they are compared with.
        @param up: the shortest and longest time the node runs before a
            kill (seconds, uniform).
        @param rates: messages per second by kind (carrier, app, tenant,
            mo).
        @param startup_share: the share of restarts after a kill that are
            killed again while starting (at a random moment before the
            listeners are ready: opening the database after a crash, the
            first commits, the index save at start), then started again.
        """
        self.tmp = tmp
        self.runs = runs
        self.baseline = baseline
        self.startup_share = startup_share
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.random = random.Random(self.seed)
        self.up = up
        self.rates = {"carrier": 15, "app": 3, "tenant": 5, "mo": 5,
                      **(rates or {})}
        self.drain_timeout = drain_timeout
        self.say = log
        self.ledger = Ledger()
        self.smsc = CrashSMSC("vendor")
        self.callbacks = CallbackReceiver()
        self.node = CampaignNode(tmp, self.smsc.port, log_level)
        self.kills: list[Kill] = []
        self.lost: set[str] = set()
        self.figures = Figures()
        self.peers: list[Peer] = []
        self.apps: list[AppPeer] = []

    # -- running --------------------------------------------------------

    def run(self) -> Figures:
        started = time.monotonic()
        self.say(f"crash campaign: {self.runs} runs, seed {self.seed}")
        self.node.start()
        self.apps = [AppPeer(self.node, self.ledger,
                             self.rates["app"] / len(APPS), u) for u in APPS]
        self.peers = [CarrierPeer(self.node, self.ledger,
                                  self.rates["carrier"], "carrier"),
                      TenantPeer(self.node, self.ledger,
                                 self.rates["tenant"], "tenant"),
                      VendorMOPeer(self.node, self.ledger, self.rates["mo"],
                                   self.smsc), *self.apps]
        for peer in self.peers:
            if isinstance(peer, TenantPeer):
                peer.dlr_url = self.callbacks.url
            peer.start()
        try:
            for run in range(1, self.runs + 1):
                self._one_kill(run)
            for run in range(1, self.baseline + 1):
                self._one_kill(run, graceful=True)
            self._drain()
        finally:
            for peer in self.peers:
                peer.stop()
            for peer in self.peers:
                peer.join(10)
            for app in self.apps:
                app.app.close()
            self.smsc.stop()
            self.callbacks.stop()
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def _one_kill(self, run: int, graceful: bool = False) -> None:
        """Let the load run a random while, then SIGKILL the node (or, for
        the baseline, SIGTERM it), read and check its database, restart."""
        up = self.random.uniform(*self.up)
        self.stopping_wait(up)
        at = time.monotonic()
        if graceful:
            self.node.stop()
        else:
            self.node.kill()
        snapshot = read_database(self.node.data_fs)
        kill = Kill(at, up, snapshot, graceful=graceful)
        self.kills.append(kill)
        self.check_snapshot(kill, len(self.kills) - 1)
        if not graceful and self.startup_share and \
                self.random.random() < self.startup_share:
            kill.restart_killed = True
            self._startup_kill(run)
        kill.recovery = self.node.start()
        kill.restarted = time.monotonic()
        if graceful:
            self.figures.baseline_recovery.append(kill.recovery)
        else:
            self.figures.runs += 1
            self.figures.recovery.append(kill.recovery)
        stored = sum(len(v) for v in snapshot.by_text.values())
        self.say(f"{'baseline' if graceful else 'run'} {run}: "
                 f"{'stopped' if graceful else 'killed'} after {up:.2f} s; "
                 f"{stored} messages stored, read in {snapshot.seconds:.2f} "
                 f"s; ready again in {kill.recovery:.2f} s; acknowledged so "
                 f"far {len(self.ledger.acks)}; problems "
                 f"{len(self.figures.problems)}")

    def _startup_kill(self, run: int) -> None:
        """Start the node and SIGKILL it at a random moment before it is
        ready (within the median start time so far), then read and check
        its database as after any kill."""
        starts = sorted(self.figures.recovery) or [2.0]
        # Most of a start is Python's imports: the later part of it is
        # where the database is opened and first written.
        delay = self.random.uniform(0.3, 1.0) * starts[len(starts) // 2]
        ready = self.node.kill_starting(delay)
        kill = Kill(time.monotonic(), delay,
                    read_database(self.node.data_fs), startup=True)
        self.kills.append(kill)
        self.check_snapshot(kill, len(self.kills) - 1)
        self.figures.startup_kills += 1
        self.say(f"run {run}: the restart killed {delay:.2f} s after its "
                 f"start{' (it was ready)' if ready else ''}")

    def stopping_wait(self, seconds: float) -> None:
        """Let the load run for C{seconds} (the node up)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.node.node.process.poll() is not None:
                raise RuntimeError("node died on its own:\n"
                                   + self.node.log()[-5000:])
            # Pacing: the load runs for a chosen while before the kill;
            # no condition ends it early but the node dying on its own.
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _drain(self) -> None:
        """Stop producing, let every message reach its end, stop the node."""
        for peer in self.peers:
            peer.producing.clear()
            if isinstance(peer, CarrierPeer):
                peer.transmitter_share = 0.0
        for app in self.apps:
            app.app.mute = False
        # A fresh life for the drain, after a graceful stop (checked like
        # a kill): every peer rebinds or registers with its drain settings.
        at = time.monotonic()
        self.node.stop()
        kill = Kill(at, 0.0, read_database(self.node.data_fs), graceful=True)
        self.kills.append(kill)
        self.check_snapshot(kill, len(self.kills) - 1)
        kill.recovery = self.node.start()
        kill.restarted = time.monotonic()
        for app in self.apps:
            wait_for(lambda app=app: app.registered == self.node.generation,
                     timeout=30, what=f"app {app.user} registered")
        deadline = time.monotonic() + self.drain_timeout

        def settled():
            waiting = self._waiting()
            owed = self.smsc.receipts_owed()
            receipts = self._receipts_missing()
            return waiting == 0 and owed == 0 and not receipts and \
                not self._callbacks_missing()
        try:
            wait_for(settled, timeout=max(1.0, deadline - time.monotonic()),
                     interval=0.25, what="every message final")
        except TimeoutError as e:
            self.figures.problems.append(
                f"drain: {e}: waiting {self._waiting()}, SMSC receipts owed "
                f"{self.smsc.receipts_owed()}, carrier receipts missing "
                f"{len(self._receipts_missing())}")
        for peer in self.peers:
            peer.stop()
        for peer in self.peers:
            peer.join(10)
        self.node.stop()
        final = read_database(self.node.data_fs)
        self.check_final(final)

    def _waiting(self) -> int:
        port = self.node.port("http")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
            conn.close()
        except (OSError, http.client.HTTPException):
            return -1
        total = 0
        for line in text.splitlines():
            if line.startswith("appliance_queue_messages{") and (
                    'state="accepted"' in line or 'state="delivering"' in line):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def _callbacks_missing(self) -> list[str]:
        reported = {mid for _, mid, state in self.callbacks.reports
                    if state in FINAL}
        with self.ledger.lock:
            return [a.id for a in self.ledger.acks.values()
                    if a.kind == "tenant" and a.id not in reported]

    def _receipts_missing(self) -> list[str]:
        with self.ledger.lock:
            return [a.id for a in self.ledger.acks.values()
                    if a.kind == "carrier"
                    and a.id.lower() not in self.ledger.receipts]

    # -- checks ---------------------------------------------------------

    def note(self, text: str) -> None:
        """Something allowed but worth counting (a retry's copy)."""
        self.figures.notes.append(text)

    def problem(self, text: str) -> None:
        self.figures.problems.append(text)
        self.say("PROBLEM: " + text)

    def _check_common(self, snap: Snapshot, label: str,
                      acks: list[Ack]) -> None:
        for ack in acks:
            stored = snap.by_text.get(ack.token)
            if not stored:
                self.lost.add(ack.token)
                self.figures.lost = len(self.lost)
                self.problem(f"{label}: acknowledged {ack.kind} message "
                             f"{ack.token!r} (id {ack.id}) is not stored")
            elif len(stored) > 1:
                self.problem(f"{label}: {ack.token!r} stored "
                             f"{len(stored)} times")
            elif ack.id is not None and ack.kind in ("carrier", "tenant") \
                    and int(ack.id, 16) != stored[0].id:
                self.problem(f"{label}: {ack.token!r} given id {ack.id}, "
                             f"stored as {stored[0].id:x}")
        ids = {}
        for text, stored in snap.by_text.items():
            for m in stored:
                ids[m.id] = m
                if m.payer is None and m.kind in BILLABLE:
                    self.problem(f"{label}: message {m.id:x} ({text!r}) "
                                 f"from a {m.kind} has no payer")
                elif m.payer is not None and m.origin is not None and \
                        m.kind in BILLABLE and \
                        m.payer != f"{m.kind}:{m.origin}":
                    # The provisioning's rules charge every origin kind
                    # its sender (carrier, connection, account, tenant).
                    self.problem(f"{label}: message {m.id:x} ({text!r}) "
                                 f"is billed to {m.payer}, its rule "
                                 f"charges {m.kind}:{m.origin}")
                elif m.payer is not None and (m.payer, m.id) not in \
                        snap.records:
                    self.problem(f"{label}: message {m.id:x} ({text!r}) "
                                 f"billed to {m.payer} has no record")
                elif m.payer is not None and \
                        snap.records[(m.payer, m.id)] != m.state:
                    self.problem(f"{label}: record of {m.id:x} is "
                                 f"{snap.records[(m.payer, m.id)]}, the "
                                 f"message {m.state}")
                if m.state == "failed" and not m.error:
                    self.problem(f"{label}: {m.id:x} failed without a "
                                 "reason")
        for (payer, mid), state in snap.records.items():
            if mid not in ids:
                self.problem(f"{label}: record of {payer} for message "
                             f"{mid:x} belongs to no message")
            elif ids[mid].payer != payer:
                self.problem(f"{label}: record of {payer} for message "
                             f"{mid:x}, which {ids[mid].payer} pays")
        for payer, mid in snap.duplicate_records:
            self.problem(f"{label}: message {mid:x} has more than one "
                         f"record for {payer}")
        for mid in snap.pending_callbacks:
            m = ids.get(mid)
            if m is None or m.state not in FINAL:
                self.problem(f"{label}: a callback is owed for message "
                             f"{mid:x}, which is "
                             f"{m.state if m else 'missing'}")
        for carrier, rid in snap.pending_receipts:
            m = ids.get(int(rid, 16))
            if m is None or m.state not in FINAL:
                self.problem(f"{label}: receipt {rid} owed to {carrier} "
                             f"for a message that is "
                             f"{m.state if m else 'missing'}")

    def acks(self) -> list[Ack]:
        """Every acknowledgement so far: the peers' and the node's
        deliver_sm_resp OK to the vendor's mobile-originated messages."""
        with self.ledger.lock:
            acks = list(self.ledger.acks.values())
        with self.smsc.lock:
            acks += [Ack("mo", key, at) for key, at in
                     self.smsc.mo_acked.items()]
        return acks

    def check_snapshot(self, kill: Kill, index: int) -> None:
        """What the database holds right after kill number C{index}."""
        acks = self.acks()
        label = f"kill {index + 1}"
        self._check_common(kill.snapshot, label, acks)
        if index > 0:
            self._check_kept(self.kills[index - 1].snapshot, kill.snapshot,
                             label)

    def _check_kept(self, before: Snapshot, after: Snapshot,
                    label: str) -> None:
        """
        Nothing committed goes back: every message and billing record the
        database held at the previous read is still there, and a message
        final then is still in the same state (a committed transaction
        lost at a restart shows here even if nothing was acknowledged for
        it).
        """
        now = after.by_id()
        for mid, (text, m) in before.by_id().items():
            later = now.get(mid)
            if later is None:
                self.problem(f"{label}: message {mid:x} ({text!r}), "
                             f"{m.state} before, is gone")
            elif m.state in FINAL and later[1].state != m.state:
                self.problem(f"{label}: message {mid:x} ({text!r}) was "
                             f"{m.state}, is now {later[1].state}")
        for key in before.records:
            if key not in after.records:
                self.problem(f"{label}: the record of {key[0]} for message "
                             f"{key[1]:x} is gone")

    def check_final(self, snap: Snapshot) -> None:
        """The end: everything final, every copy explained."""
        acks = self.acks()
        with self.ledger.lock:
            receipts = {k: list(v) for k, v in self.ledger.receipts.items()}
            stats = {k: list(v) for k, v in
                     self.ledger.receipt_stats.items()}
            lives = {k: list(v) for k, v in
                     self.ledger.receipt_lives.items()}
            f = self.figures
            f.refused = dict(self.ledger.refused)
            f.unanswered = dict(self.ledger.unanswered)
        f.refused.update({f"mo {k}": v for k, v in Counter(
            self.smsc.mo_refused.values()).items()})
        times = sorted(a.at for a in acks)
        for kill in self.kills:
            # From a kill to the first acknowledgement after its restart;
            # a restart itself killed while starting is left out (its
            # time would count two starts).
            if kill.graceful or kill.startup or kill.restart_killed:
                continue
            after = [t for t in times if t > kill.restarted]
            kill.first_ack = after[0] - kill.at if after else None
            f.first_ack.append(kill.first_ack)
        f.messages = sum(len(v) for v in snap.by_text.values())
        f.reports = len(self.callbacks.reports)
        f.receipts = sum(len(v) for v in receipts.values())
        f.vendor_receipts = sum(self.smsc.receipts_acked.values())
        f.states = dict(Counter(m.state for v in snap.by_text.values()
                                for m in v))
        f.acknowledged = dict(Counter(a.kind for a in acks))
        self._check_common(snap, "end", acks)
        if self.kills:
            self._check_kept(self.kills[-1].snapshot, snap, "end")
        for text, stored in snap.by_text.items():
            for m in stored:
                if m.state not in FINAL:
                    f.not_final += 1
                    self.problem(f"end: {m.id:x} ({text!r}) is still "
                                 f"{m.state}")
        if snap.pending_receipts:
            self.problem(f"end: {len(snap.pending_receipts)} receipts still "
                         "owed to carriers")
        self._check_apps(snap)
        self._check_vendor(snap)
        self._check_receipts(snap, acks, receipts, stats, lives)
        self._check_callbacks(snap, acks)
        if snap.pending_callbacks:
            self.problem(f"end: {len(snap.pending_callbacks)} callbacks "
                         "still owed to the tenant")

    def life(self, at: float) -> int:
        """
        Which run of the node sent what a peer received at C{at}: 1 for
        the first process, 2 after the first kill...  A PDU or datagram
        read after a kill but before the next process was started was sent
        by the process killed (it waited in the peer's socket buffer).
        """
        return bisect.bisect_left(self.node.spawned, at)

    def _copies(self, what: str, times: list[float],
                confirmed: Callable[[Snapshot], bool],
                lives: list[int] | None = None, strict: bool = False) -> None:
        """
        Copies of one thing sent more than once (a MESSAGE to the apps, a
        submit_sm to the vendor, a receipt to the carrier), received at
        C{times}: each copy after the first must come from a later run of
        the node than the one before it, and from no run after a kill at
        which the database already held it as confirmed
        (C{confirmed(snapshot)}): that would be a copy of something the
        node knew was done.

        @param lives: which run sent each copy, when the peer knows it
            exactly (the node process's port or connection); by default
            the run in which it arrived (L{life}).
        @param strict: two copies from one run are a problem (each copy
            a peer records was answered at once, so the node had no cause
            to send it again); otherwise a retry within a run is noted.
        """
        if lives is None:
            lives = [self.life(t) for t in times]
        order = sorted(zip(lives, times))
        for i in range(1, len(order)):
            life, previous = order[i][0], order[i - 1][0]
            done = [k for k, kill in enumerate(self.kills)
                    if k + 1 < life and confirmed(kill.snapshot)]
            if done:
                self.problem(f"{what} sent again in run {life} though "
                             f"the database held it as done at kill "
                             f"{done[0] + 1}")
            elif life == previous and strict:
                self.problem(f"{what} sent twice in run {life}, the first "
                             "copy answered, no kill in between")
            elif life == previous:
                self.note(f"{what} sent twice in run {life} (a retry, "
                          "no kill in between)")

    def _app_life(self, delivery) -> int:
        """The run that sent a MESSAGE: the one whose SIP port it came
        from (L{tests.e2e.crash_peers.CampaignApp}), else by its time."""
        source = getattr(delivery, "source", None)
        life_of = getattr(self.node, "life_of", None)
        if source is not None and life_of is not None:
            life = life_of("sip_udp", source[1], delivery.at)
            if life is not None:
                return life
        return self.life(delivery.at)

    def _check_apps(self, snap: Snapshot) -> None:
        """
        What the apps got: each copy carries its message's id as
        Message-ID and reached the app of the message's recipient; a copy
        after a kill only if it was not delivered at that kill, none
        twice from one run (the app answered the first at once); every
        message stored as delivered to an app (a carrier's, the vendor's
        MO) reached one.
        """
        copies: dict[str, list] = defaultdict(list)
        for app in self.apps:
            for d in app.app.deliveries:
                copies[d.body.decode("utf-8", "replace")].append(
                    (d, app.user))
        for text, ds in copies.items():
            stored = snap.by_text.get(text)
            if not stored:
                self.problem(f"apps got {text!r}, which is not stored")
                continue
            m = stored[0]
            hexid = format(m.id, "x")
            for d, user in ds:
                if d.message_id != hexid:
                    self.problem(f"a copy of {text!r} carries Message-ID "
                                 f"{d.message_id}, not {hexid}")
                if m.recipient is not None and user != m.recipient:
                    self.problem(f"{text!r} for {m.recipient} reached the "
                                 f"app of {user}")
            self.figures.duplicates_to_apps += len(ds) - 1
            self._copies(f"{text!r} to the apps", [d.at for d, _ in ds],
                         lambda s, text=text: any(
                             m.state == "delivered"
                             for m in s.by_text.get(text, ())),
                         lives=[self._app_life(d) for d, _ in ds],
                         strict=self.strict_apps)
        for text, stored in snap.by_text.items():
            for m in stored:
                if m.state == "delivered" and m.kind in TO_APPS and \
                        text not in copies:
                    self.problem(f"end: {m.id:x} ({text!r}) is delivered "
                                 "but no app got it")

    def _check_vendor(self, snap: Snapshot) -> None:
        """
        What the vendor got: copies only if not forwarded at a kill;
        every message stored as delivered to the vendor (an app's, the
        tenant's) reached it, and delivered it is exactly when the node
        answered the vendor's receipt for the id it holds (the vendor's
        receipts all say DELIVRD).
        """
        copies: dict[str, list] = defaultdict(list)
        for s in self.smsc.received:
            copies[s.text].append(s)
        for text, ss in copies.items():
            if not snap.by_text.get(text):
                self.problem(f"the vendor got {text!r}, which is not "
                             "stored")
                continue
            self.figures.duplicates_to_vendor += len(ss) - 1
            lives = [self.life(x.session_at) if x.session_at else
                     self.life(x.at) for x in ss]
            self._copies(f"{text!r} to the vendor", [x.at for x in ss],
                         lambda s, text=text: any(
                             m.remote is not None or m.state in FINAL
                             for m in s.by_text.get(text, ())),
                         lives=lives, strict=self.strict_vendor)
        with self.smsc.lock:
            answered = {k.lower() for k in self.smsc.receipts_acked}
        for text, stored in snap.by_text.items():
            for m in stored:
                if m.kind not in TO_VENDOR or m.state not in FINAL:
                    continue
                remote = str(m.remote[1]).lower() if m.remote else None
                if m.state == "delivered" and text not in copies:
                    self.problem(f"end: {m.id:x} ({text!r}) is delivered "
                                 "but the vendor never got it")
                elif m.state == "delivered" and remote not in answered:
                    self.problem(f"end: {m.id:x} ({text!r}) is delivered "
                                 f"with no receipt answered for its id "
                                 f"{remote}")
                elif m.state != "delivered" and remote in answered:
                    self.problem(f"end: {m.id:x} ({text!r}) is {m.state} "
                                 f"though its receipt {remote} (DELIVRD) "
                                 "was answered")

    def _check_callbacks(self, snap: Snapshot, acks: list[Ack]) -> None:
        """The tenant's final reports: one for each of its messages
        stored (acknowledged or not: its dlr-url is kept with it), with
        its final state; none for a message not stored; a copy after a
        kill only if that kill's database still owed it."""
        reports: dict[str, list] = defaultdict(list)
        for at, mid, state in self.callbacks.reports:
            reports[mid].append((at, state))
        ids = snap.by_id()
        for mid in reports:
            try:
                number = int(mid, 16)
            except ValueError:
                number = None
            if number not in ids:
                self.problem(f"the tenant got a report of {mid}, which is "
                             "not stored")
        tokens = {ack.token for ack in acks if ack.kind == "tenant"}
        tokens |= {text for text, stored in snap.by_text.items()
                   if any(m.kind == "tenant" for m in stored)}
        for token in sorted(tokens):
            stored = snap.by_text.get(token)
            if not stored:
                continue        # lost: a problem already
            hexid = format(stored[0].id, "x")
            got = reports.get(hexid, [])
            if not got:
                self.problem(f"the tenant never got the report of {hexid} "
                             f"({token!r})")
                continue
            if any(state != stored[0].state for _, state in got):
                self.problem(f"a report of {hexid} says "
                             f"{sorted({s for _, s in got})}, the message is "
                             f"{stored[0].state}")
            self.figures.duplicate_callbacks += len(got) - 1
            number = stored[0].id

            def sent(s: Snapshot, token=token, number=number) -> bool:
                return any(m.state in FINAL for m in
                           s.by_text.get(token, ())) and \
                    number not in s.pending_callbacks
            self._copies(f"report {hexid}", [at for at, _ in got], sent)

    def _check_receipts(self, snap: Snapshot, acks: list[Ack],
                        receipts: dict[str, list[float]],
                        stats: dict[str, list[str]] | None = None,
                        lives: dict[str, list] | None = None) -> None:
        """
        The carrier's receipts: each owed arrived (for every message of
        the carrier stored asking for one, acknowledged or not) and says
        the message's final state; none arrived for a message not stored;
        a copy after a kill only if that kill's database still owed it.

        @param stats: receipt id to the C{stat:} of each copy.
        @param lives: receipt id to the run that sent each copy (the
            connection it came over), C{None} where unknown.
        """
        stats = stats or {}
        lives = lives or {}
        ids = snap.by_id()
        for rid in receipts:
            try:
                number = int(rid, 16)
            except ValueError:
                number = None
            if number not in ids:
                self.problem(f"the carrier got a receipt for {rid}, which "
                             "is not stored")
        for mid, (token, m) in sorted(ids.items()):
            if m.kind != "carrier" or not m.receipt:
                continue
            rid = format(mid, "x")
            times = receipts.get(rid, ())
            if not times:
                self.problem(f"the carrier never got the receipt of "
                             f"{rid} ({token!r})")
                continue
            self.figures.duplicate_receipts += len(times) - 1
            said = {s for s in stats.get(rid, ())}
            expected = RECEIPT_STAT.get(m.state)
            if said and said != {expected}:
                self.problem(f"receipt {rid} says {sorted(said)}, the "
                             f"message is {m.state}")

            def sent(s: Snapshot, rid=rid, token=token) -> bool:
                final = any(m.state in FINAL for m in
                            s.by_text.get(token, ()))
                owed = any(r.lower() == rid for c, r in s.pending_receipts)
                return final and not owed
            known = lives.get(rid)
            exact = None
            if known and len(known) == len(times) and None not in known:
                exact = list(known)
            self._copies(f"receipt {rid}", list(times), sent, lives=exact,
                         strict=self.strict_receipts and exact is not None)


CARRIER_NAME = "CrashCarrier"


def main_figures(figures: Figures) -> dict[str, Any]:
    """The figures as a plain dict (for the bench's JSON line)."""
    return {"runs": figures.runs, "startup_kills": figures.startup_kills,
            "messages": figures.messages,
            "acknowledged": figures.acknowledged, "lost": figures.lost,
            "not_final": figures.not_final, "states": figures.states,
            "duplicates_to_apps": figures.duplicates_to_apps,
            "duplicates_to_vendor": figures.duplicates_to_vendor,
            "duplicate_receipts": figures.duplicate_receipts,
            "duplicate_callbacks": figures.duplicate_callbacks,
            "receipts": figures.receipts,
            "vendor_receipts": figures.vendor_receipts,
            "reports": figures.reports,
            "recovery_s": figures.recovery,
            "baseline_recovery_s": figures.baseline_recovery,
            "first_ack_s": figures.first_ack, "problems": figures.problems,
            "seconds": figures.seconds}
