"""
The cost of billing, and settlement over millions of records.

Part 1, in one run: messages per second from carrier TATA to an app
account through the real L{MessagingCore} (route, authorize, batched
fsync'd accept, delivery by an agent that answers "delivered" at once,
batched final state) on a FileStorage, first without billing (the core's
C{NoCharge}), then with the L{BillingService} (rating, one record per
message written in the accept transaction, its state settled in the
delivery transaction).  A producer keeps C{window} submissions
outstanding.

Part 2: builds N records for one carrier and month straight into a
L{RecordStore} on a FileStorage (large transactions), then times the
settlement of the whole month (running totals), a scan of every record
(a period that cuts the month, as a partial settlement or a CSV export
does) and the CSV export itself.

Part 0 (C{--charger N}): the charger alone, in process, on an in-memory
database: CPU per message (C{time.process_time}) of C{authorize} (an
account sending to an app account whose product charges for receiving,
both postpaid: two charges), then C{accepted} and C{state_changed}
(delivered) inside transactions of 500 messages, commits excluded.

    .venv/bin/python bench/bench_billing.py [--messages N] [--records N]
        [--charger N]
"""
from __future__ import annotations

import argparse
import calendar
import os
import resource
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import transaction
import ZODB
from twisted.internet import defer, task
from ZODB.FileStorage import FileStorage
from zope.interface import implementer

from appliance.billing.records import Record, RecordStore
from appliance.billing.service import BillingService
from appliance.billing.settlement import billable_states, export_csv, settle
from appliance.messaging.core import MessagingCore
from appliance.messaging.vocabulary import Outcome, Submission
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.application import GENERATIONS
from appliance.store.database import Storage, open_database

NOV_1 = calendar.timegm((2026, 11, 1, 0, 0, 0))
DEC_1 = calendar.timegm((2026, 12, 1, 0, 0, 0))


def cpu_seconds() -> float:
    """User plus system CPU of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@implementer(IDeliveryAgent)
class InstantAgent:
    """Delivers everything at once."""

    def deliver(self, message):
        """@return: a delivered outcome."""
        return Outcome("delivered")


def provision(root) -> None:
    """TATA with a 0.01 tariff for 964 and one app account."""
    root.add_tariff("TATA-T")
    root.tariffs["TATA-T"].set_price("964", "0.01")
    root.add_carrier("TATA")
    root.set_carrier_tariff("TATA", "TATA-T")
    root.add_product("App")
    root.products["App"].messaging = True
    root.add_customer("C")
    root.add_account("C", "9647500000001")
    root.add_did("9647500000001", "9647500000001")
    root.set_account_product("9647500000001", "App")


def receiver_pays(root) -> None:
    """The app's product charges it 0.001 per received message, from a
    prepaid balance large enough for the run (two charges a message)."""
    from appliance.billing.model import billing_of
    billing = billing_of(root)
    root.add_tariff("RECV")
    root.tariffs["RECV"].set_price("964", "0.001")
    billing.set_receiver_tariff(root.products["App"], root.tariffs["RECV"])
    account = root.accounts["9647500000001"]
    billing.terms("accounts", account, create=True).prepaid = True
    account.balance = Decimal(1_000_000)


@defer.inlineCallbacks
def traffic(reactor, n: int, window: int, billing: bool,
            receiving: bool = False):
    """
    Send C{n} messages through a fresh node and wait for all final states.

    @param receiving: also charge the receiving account (receiver pays,
        prepaid).
    @return: (messages per second, commits, records written, CPU
        seconds of this process per message: every thread, the writer's
        commits too).
    """
    tmp = tempfile.mkdtemp(prefix="bench-billing-")
    storage = Storage(lambda: open_database("Data.fs", Path(tmp)),
                      reactor=reactor, batch_max=2000, batch_delay=0.002, generations=GENERATIONS)
    storage.startService()
    with storage.transaction(note="setup") as root:
        provision(root)
        if receiving:
            receiver_pays(root)
    core = MessagingCore(storage, reactor, local_transport="sip",
                         scan_interval=3600)
    core.set_agent("sip", InstantAgent())
    service = BillingService(storage, reactor)
    if billing:
        core.set_charger(service.charger)
        service.startService()
    core.startService()
    finals = {"n": 0}
    all_final = defer.Deferred()

    def final(view, state):
        finals["n"] += 1
        if finals["n"] == n:
            all_final.callback(None)
    core.add_outcome_listener(final)
    sent = {"n": 0}
    start = time.perf_counter()
    cpu = cpu_seconds()

    def submit(_=None):
        if sent["n"] >= n:
            return
        sent["n"] += 1
        d = core.submit(Submission("carrier", "TATA", "4412345",
                                   "9647500000001", "Promotion: 50% off"))
        d.addCallback(submit)
    for _ in range(window):
        submit()
    yield all_final
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    records = 0
    if billing:
        records = storage._root()["billing"].records.count(
            "carrier:TATA", time.strftime("%Y-%m", time.gmtime()))
        service.stopService()
    yield core.stopService()
    commits = storage.commits
    yield storage.stopService()
    shutil.rmtree(tmp)
    return n / elapsed, commits, records, cpu / n


def build_records(path: str, n: int, batch: int = 250_000) -> float:
    """
    Write C{n} records of carrier TATA in November 2026.

    @return: seconds taken.
    """
    db = ZODB.DB(FileStorage(path), cache_size=50_000)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    start = time.perf_counter()
    with tm:
        conn.root()["records"] = RecordStore()
    step = (DEC_1 - NOV_1 - 1) / n
    price = Decimal("0.01")
    prefixes = ("964", "9647", "44", "1")
    for first in range(0, n, batch):
        with tm:
            store = conn.root()["records"]
            for i in range(first, min(n, first + batch)):
                p = prefixes[i % 4]
                units = 1 + i % 3
                store.add(Record(
                    i + 1, NOV_1 + i * step, "terminating", "carrier:TATA",
                    "carrier", "4412345", p + "5550000", units, units,
                    "TATA-T", p, price, price * units, "USD", False,
                    "delivered" if i % 10 else "failed"))
        conn.cacheMinimize()
    elapsed = time.perf_counter() - start
    conn.close()
    db.close()
    return elapsed


def settle_records(path: str) -> dict:
    """Time the settlements and the export over the built records."""
    db = ZODB.DB(FileStorage(path, read_only=True), cache_size=50_000)
    conn = db.open()
    store = conn.root()["records"]
    billable = billable_states("delivered")
    out = {}
    t = time.perf_counter()
    whole = settle(store, "carrier:TATA", NOV_1, DEC_1, billable,
                   [(100_000, Decimal(50)), (10_000_000, Decimal(300))])
    out["whole month from running totals"] = (time.perf_counter() - t,
                                              whole)
    conn.cacheMinimize()
    t = time.perf_counter()
    part = settle(store, "carrier:TATA", NOV_1 + 1, DEC_1, billable)
    out["scan of every record (cut period)"] = (time.perf_counter() - t,
                                                part)
    conn.cacheMinimize()
    t = time.perf_counter()
    text = export_csv(store.records("carrier:TATA", NOV_1, DEC_1), billable)
    out["CSV export of every billable record"] = (time.perf_counter() - t,
                                                  len(text) // (1 << 20))
    conn.close()
    db.close()
    return out


class _Stored:
    """What the charger reads and writes of a stored message."""

    def __init__(self, id, created, sender, recipient, account):
        self.id, self.created = id, created
        self.sender, self.recipient, self.account = sender, recipient, account
        self.parts, self.state = 1, "accepted"
        self.rule = self.payer = None
        self.charge_units, self.charged = 1, Decimal(0)


def charger_cost(n: int) -> dict:
    """
    Part 0: the charger's own CPU per message (see the module docstring).

    @return: microseconds per message by step.
    """
    from twisted.internet.testing import MemoryReactorClock
    from appliance.application import memory_storage
    from appliance.billing.model import billing_of
    clock = MemoryReactorClock()
    clock.advance(NOV_1 + 3600)
    storage = memory_storage(reactor=clock)
    with storage.transaction(note="setup") as root:
        provision(root)
        root.add_tariff("APP")
        root.tariffs["APP"].set_price("964", "0.05")
        billing = billing_of(root)
        billing.set_product_tariff(root.products["App"], root.tariffs["APP"])
        billing.set_receiver_tariff(root.products["App"], root.tariffs["APP"])
        root.add_account("C", "9647500000002")
        root.set_account_product("9647500000002", "App")
    service = BillingService(storage, clock)
    service.startService()
    charger = service.charger
    sender, to = "9647500000002", "9647500000001"
    submission = Submission("account", sender, sender, to, "hi")
    now = clock.seconds()
    auths = []
    t = time.process_time()
    for _ in range(n):
        auths.append(charger.authorize(submission, "sip", to, "local", now))
    out = {"authorize": time.process_time() - t}
    messages = [_Stored(i + 1, now + i * 0.001, sender, to, to)
                for i in range(n)]
    raw = storage._root()
    for step in ("accepted", "state_changed"):
        spent = 0.0
        for first in range(0, n, 500):
            with storage.transaction(note="bench"):
                t = time.process_time()
                for m, auth in zip(messages[first:first + 500],
                                   auths[first:first + 500]):
                    if step == "accepted":
                        charger.accepted(raw, m, auth)
                    else:
                        charger.state_changed(raw, m, "delivered")
                spent += time.process_time() - t
        out[step] = spent
    service.stopService()
    storage.close()
    return {k: v / n * 1e6 for k, v in out.items()}


def main(reactor, args):
    """Run the parts asked for and print the figures."""
    if args.charger:
        cost = charger_cost(args.charger)
        print(f"part 0: the charger alone, {args.charger} messages "
              "(account to app, receiver pays, postpaid), in process: "
              + ", ".join(f"{k} {v:.1f} µs" for k, v in cost.items())
              + f", total {sum(cost.values()):.1f} µs CPU per message "
              f"(load average {os.getloadavg()[0]:.1f})")
        if not args.messages:
            return
    n, window = args.messages, args.window
    print(f"part 1: {n} messages carrier -> app, window {window}, "
          "FileStorage, fsync'd batches")
    plain, c1, _, plain_cpu = yield traffic(reactor, n, window,
                                            billing=False)
    billed, c2, records, billed_cpu = yield traffic(reactor, n, window,
                                                    billing=True)
    print(f"  without billing: {plain:9.0f} msg/s ({c1} commits), "
          f"{plain_cpu * 1e6:,.0f} µs CPU per message")
    print(f"  with billing:    {billed:9.0f} msg/s ({c2} commits, "
          f"{records} records), {billed_cpu * 1e6:,.0f} µs CPU per message")
    print(f"  billing costs {100 * (1 - billed / plain):.1f}% of the "
          f"throughput, {(billed_cpu - plain_cpu) * 1e6:,.0f} µs CPU per "
          f"message (load average {os.getloadavg()[0]:.1f})")
    if args.receiver_pays:
        both, c3, _, both_cpu = yield traffic(reactor, n, window,
                                              billing=True, receiving=True)
        print(f"  with billing and receiver pays (prepaid): {both:9.0f} "
              f"msg/s ({c3} commits); costs "
              f"{100 * (1 - both / plain):.1f}%, "
              f"{(both_cpu - plain_cpu) * 1e6:,.0f} µs CPU per message")
    if not args.records:
        return
    tmp = tempfile.mkdtemp(prefix="bench-records-")
    try:
        path = str(Path(tmp) / "Records.fs")
        built = build_records(path, args.records)
        size = Path(path).stat().st_size / (1 << 20)
        print(f"part 2: built {args.records} records in {built:.1f} s "
              f"({args.records / built:.0f}/s), Records.fs {size:.0f} MiB")
        for label, (seconds, result) in settle_records(path).items():
            extra = (f"{result.count} billable, {result.amount} USD"
                     if hasattr(result, "count") else f"{result} MiB")
            print(f"  {label}: {seconds:.3f} s ({extra})")
    finally:
        shutil.rmtree(tmp)
    print(f"peak RSS {rss_mb():.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--records", type=int, default=1_000_000,
                        help="records for part 2 (0: skip part 2)")
    parser.add_argument("--charger", type=int, default=0,
                        help="part 0 with this many messages (0: skip)")
    parser.add_argument("--receiver-pays", action="store_true",
                        help="part 1 also with a prepaid receiving account")
    options = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(
        defer.inlineCallbacks(main)(reactor, options)))
