"""
The load of the crash campaign (L{tests.e2e.crash_load}): the node it
kills and restarts, its provisioning, and the peers, each a thread that
reconnects to the node's new ports after each restart and records what
it was told in a shared L{Ledger}:

 - L{CarrierPeer}: smpplib as a carrier, submit_sm to the apps' DIDs with
   receipts asked for (some binds transmitter-only), reading receipts;
 - L{AppPeer}: a L{tests.e2e.sip_app.SIPApp} per account, registered at
   each start, sending MESSAGE to the vendor's numbers (some runs dark);
 - L{TenantPeer}: C{/sendsms/send} with a dlr-url to L{CallbackReceiver};
 - L{VendorMOPeer}: mobile-originated messages queued on the vendor's
   L{tests.e2e.crash_smsc.CrashSMSC}.
"""
from __future__ import annotations

import http.client
import http.server
import json
import random
import select
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import smpplib.client
import smpplib.consts

from appliance.http.model import token_hash
from tests.e2e.crash_smsc import CrashSMSC
from tests.e2e.harness import Node, start_node
from tests.e2e.sip_app import SIPApp

DOMAIN = "crash.test"
APPS = ("96470000001", "96470000002", "96470000003")
APP_PASSWORD = "crash-app-pw"
CARRIER = ("crashcar", "carpw")
TENANT, TOKEN = "acme", "crash-token-0123456789abcdefghijklmnopqrstuv"
VENDOR_PREFIX = "4477009"


def provision(vendor_port: int) -> str:
    """The campaign's shell script: apps, a carrier, a tenant, the vendor
    connection and its policy, a tariff and who pays."""
    lines = [
        "configure terminal",
        " tariff T", "  currency USD", "  prefix 964 0.01", "  prefix 44 0.02",
        " exit",
        ' product "SMS"', "  messaging enable", "  tariff T", " exit",
        ' customer "Crash"']
    for user in APPS:
        lines += [f"  account {user}", f"   password {APP_PASSWORD}",
                  '   product "SMS"', f"   did {user}", "  exit"]
    lines += [
        " exit",
        " carrier CrashCarrier", f"  system-id {CARRIER[0]}",
        f"  password {CARRIER[1]}", "  allow-ip 127.0.0.0/8", "  tariff T",
        " exit",
        f" tenant {TENANT}", "  password tenant-pw",
        f"  token-hash {token_hash(TOKEN)}", "  tariff T", " exit",
        " connection vendor", "  host 127.0.0.1", f"  port {vendor_port}",
        "  system-id node", "  password pw", " exit",
        " service-policy out", f"  recipient-pattern {VENDOR_PREFIX[:2]}%",
        "  transport smpp connection vendor", " exit",
        " authorization-rule carriers-pay", "  match origin carrier",
        "  charge carrier", " exit",
        " authorization-rule vendors-pay", "  match origin connection",
        "  charge connection", " exit",
        " authorization-rule apps-pay", "  match origin app",
        "  charge sender", " exit",
        " authorization-rule tenants-pay", "  match origin tenant",
        "  charge sender", " exit",
        "end", ""]
    return "\n".join(lines)


# -- what senders were told ---------------------------------------------------

@dataclass
class Ack:
    """A message its sender was told is accepted."""
    kind: str             # carrier, app, tenant, mo
    token: str
    at: float
    id: str | None = None  # the id the sender was given, if any


@dataclass
class Ledger:
    """Everything the peers saw, shared by their threads."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    acks: dict[str, Ack] = field(default_factory=dict)
    sent: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    unanswered: Counter = field(default_factory=Counter)
    #: receipt id (the carrier's message id) to arrival times.
    receipts: dict[str, list[float]] = field(
        default_factory=lambda: defaultdict(list))
    #: receipt id to the C{stat:} of each copy, in arrival order.
    receipt_stats: dict[str, list[str]] = field(
        default_factory=lambda: defaultdict(list))
    #: receipt id to the node process that sent each copy.
    receipt_lives: dict[str, list[int | None]] = field(
        default_factory=lambda: defaultdict(list))
    counter: int = 0

    def token(self, kind: str) -> str:
        with self.lock:
            self.counter += 1
            self.sent[kind] += 1
            return f"crash {kind} {self.counter}"

    def ack(self, kind: str, token: str, id: str | None = None) -> None:
        with self.lock:
            self.acks[token] = Ack(kind, token, time.monotonic(), id)

    def receipt(self, mid: str, stat: str | None = None,
                life: int | None = None) -> None:
        """One receipt arrived: its id, C{stat:} and the node process
        whose connection it came over (L{CampaignNode.life_of})."""
        with self.lock:
            self.receipts[mid.lower()].append(time.monotonic())
            self.receipt_stats[mid.lower()].append(stat or "")
            self.receipt_lives[mid.lower()].append(life)


def receipt_stat(text: str) -> str | None:
    """The C{stat:} word of a receipt's text, or C{None}."""
    for word in text.split():
        if word.startswith("stat:"):
            return word[5:]
    return None


class CallbackReceiver:
    """
    The tenant's web server for delivery-report callbacks: answers 200 and
    records each report's message id, state and arrival time.
    """

    def __init__(self) -> None:
        self.reports: list[tuple[float, str, str]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    report = json.loads(body)
                    owner.reports.append((time.monotonic(), report["id"],
                                          report["state"]))
                except (ValueError, KeyError):
                    pass
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dlr"
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Pacer:
    """At most C{rate} events per second (C{rate} 0: none)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else None
        self.next = time.monotonic()

    def ready(self) -> bool:
        if self.interval is None:
            return False
        now = time.monotonic()
        if now >= self.next:
            self.next = max(self.next + self.interval, now - 1.0)
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next event."""
        if self.interval is None:
            return 0.1
        return max(0.0, self.next - time.monotonic())


# -- the node ------------------------------------------------------------------

class CampaignNode:
    """
    The node under test: started once with its provisioning, then killed
    and started again on the same data directory.

    @ivar generation: bumped at each start; peers reconnect when it moves.
    @ivar ports: the current C{ports.json}, C{{}} while it is down.
    """

    def __init__(self, tmp: Path, vendor_port: int, log_level: str = "info"):
        base = tmp / "node"
        base.mkdir(parents=True, exist_ok=True)
        script = base / "provision.cli"
        script.write_text(provision(vendor_port))
        self.tmp = tmp
        self.sections = dict(
            node={"provision": str(script), "log_level": log_level},
            smpp={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"},
            sip={"enabled": True,
                 "listen": ["udp:port=0:interface=127.0.0.1"],
                 "domain": DOMAIN, "realm": DOMAIN, "min_expires": 60,
                 "max_expires": 3600, "retry_schedule": [1, 2],
                 "validity": 3600, "auth_failures": 100000},
            http={"enabled": True, "listen": "tcp:port=0:interface=127.0.0.1"})
        self.node: Node | None = None
        #: monotonic times at which each node process was started.
        self.spawned: list[float] = []
        self.generation = 0
        self.ports: dict[str, list[int]] = {}
        #: the ports of each process, by generation - 1.
        self.history: list[dict[str, list[int]]] = []

    @property
    def data_fs(self) -> Path:
        return self.tmp / "node" / "data" / "Data.fs"

    def start(self) -> float:
        """Start (or restart) and wait until every listener is bound.

        @return: seconds from the process start to ready."""
        (self.tmp / "node" / "data" / "ports.json").unlink(missing_ok=True)
        started = time.monotonic()
        self.spawned.append(started)
        if self.node is None:
            self.node = start_node(self.tmp, name="node", **self.sections)
        else:
            self.node = Node(self.node.config, self.node.data_dir,
                             self.node.log_path)
            self.node.wait_ready(timeout=60)
        ready = time.monotonic() - started
        # The generation first: a peer that reads the generation and then
        # the ports never pairs an old generation with new ports.
        ports = dict(self.node.ports)
        self.generation += 1
        self.history.append(ports)
        self.ports = ports
        return ready

    def kill_starting(self, delay: float) -> bool:
        """
        Start a process and SIGKILL it C{delay} seconds later, before it
        is ready if it is not ready by then (peers never see its ports).

        @return: whether it had become ready all the same.
        """
        (self.tmp / "node" / "data" / "ports.json").unlink(missing_ok=True)
        self.spawned.append(time.monotonic())
        self.history.append({})
        self.node = Node(self.node.config, self.node.data_dir,
                         self.node.log_path)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if self.node.process.poll() is not None:
                raise RuntimeError("node died on its own while starting:\n"
                                   + self.log()[-5000:])
            # Pacing, not a condition: the kill comes at a chosen moment
            # of the start-up, whatever the node has done by then.
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        self.node.kill()
        # Read after the kill, so nothing can be sent between the read and
        # the kill: a process that became ready may already have delivered
        # (to apps registered in an earlier life), and which process sent
        # each copy is checked by its source port (L{life_of}).
        ports_file = self.tmp / "node" / "data" / "ports.json"
        ready = ports_file.exists()
        if ready:
            self.history[-1] = json.loads(ports_file.read_text())
        return ready

    def life_of(self, key: str, port: int, at: float) -> int | None:
        """
        Which process (1 for the first, 2 for the next one started...)
        listened on
        C{port} for C{key} (C{sip_udp}, C{smpp}) at monotonic time C{at}:
        the latest one started before C{at} with that port (an ephemeral
        port may come back in a later process).  C{None}: none did.
        """
        found = None
        for life, ports in enumerate(self.history, 1):
            if self.spawned[life - 1] > at:
                break
            if port in ports.get(key, ()):
                found = life
        return found

    def port(self, key: str) -> int | None:
        ports = self.ports.get(key)
        return ports[0] if ports else None

    def kill(self) -> None:
        """SIGKILL, and forget the ports."""
        self.ports = {}
        self.node.kill()

    def stop(self) -> int:
        self.ports = {}
        return self.node.stop(timeout=60)

    def log(self) -> str:
        return self.node.log() if self.node else ""


# -- the peers -----------------------------------------------------------------

class Peer(threading.Thread):
    """A load thread: runs until C{stop}; produces while C{producing}."""

    def __init__(self, node: CampaignNode, ledger: Ledger, rate: float,
                 name: str):
        super().__init__(daemon=True, name=name)
        self.node, self.ledger = node, ledger
        self.pacer = Pacer(rate)
        self.stopping = threading.Event()
        self.producing = threading.Event()
        self.producing.set()
        self.errors: list[str] = []

    def stop(self) -> None:
        self.stopping.set()


class CarrierPeer(Peer):
    """smpplib as the carrier: submits to the apps, reads receipts."""

    window = 10
    #: Share of binds that are transmitters (no receipts over them).
    transmitter_share = 0.3

    def run(self) -> None:
        rng = random.Random(1)
        while not self.stopping.is_set():
            generation, port = self.node.generation, self.node.port("smpp")
            life = self.node.life_of("smpp", port, time.monotonic()) \
                if port is not None else None
            if port is None:
                self.stopping.wait(0.05)
                continue
            outstanding: dict[int, str] = {}
            client = smpplib.client.Client("127.0.0.1", port, timeout=2,
                                           allow_unknown_opt_params=True)

            def sent(pdu, outstanding=outstanding):
                token = outstanding.pop(pdu.sequence, None)
                if token is None:
                    return
                if pdu.status == 0:
                    mid = pdu.message_id
                    mid = mid.decode() if isinstance(mid, bytes) else str(mid)
                    self.ledger.ack("carrier", token, mid)
                else:
                    with self.ledger.lock:
                        self.ledger.refused[f"carrier {pdu.status}"] += 1

            def received(pdu):
                mid = getattr(pdu, "receipted_message_id", None)
                if isinstance(mid, bytes):
                    mid = mid.decode()
                text = pdu.short_message or b""
                text = text.decode("latin-1") if isinstance(text, bytes) \
                    else text
                if not mid:
                    mid = text.split()[0].partition(":")[2]
                self.ledger.receipt(mid, receipt_stat(text), life)
            client.set_message_sent_handler(sent)
            client.set_message_received_handler(received)
            client.set_error_pdu_handler(lambda pdu: None)
            try:
                client.connect()
                # Some runs bind as a transmitter only: the receipts owed
                # then wait in the database, across kills, for a later
                # transceiver bind.
                bind = client.bind_transmitter if \
                    rng.random() < self.transmitter_share \
                    else client.bind_transceiver
                bind(system_id=CARRIER[0], password=CARRIER[1])
                while not self.stopping.is_set() and \
                        self.node.generation == generation:
                    if self.producing.is_set() and \
                            len(outstanding) < self.window and \
                            self.pacer.ready():
                        token = self.ledger.token("carrier")
                        pdu = client.send_message(
                            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                            source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
                            source_addr="CrashCo", dest_addr_ton=1,
                            dest_addr_npi=1,
                            destination_addr=rng.choice(APPS),
                            short_message=token.encode(),
                            registered_delivery=1)
                        outstanding[pdu.sequence] = token
                        continue
                    readable, _, _ = select.select(
                        [client._socket], [], [],
                        min(0.05, self.pacer.wait()))
                    if readable:
                        client.read_once()
            except Exception as e:
                if self.node.generation == generation and \
                        self.node.port("smpp") is not None:
                    self.errors.append(repr(e))
            finally:
                with self.ledger.lock:
                    self.ledger.unanswered["carrier"] += len(outstanding)
                try:
                    client.disconnect()
                except Exception:
                    pass


class CampaignApp(SIPApp):
    """
    A L{SIPApp} that also notes where each MESSAGE came from: the
    delivery's C{source} is the C{(host, port)} it was sent from, the SIP
    listener of the node process that sent it (each process binds its own
    ephemeral port), so a copy is told apart from a retry exactly, not by
    its arrival time.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._from = None
        self.on_delivery = self._noted

    def _request(self, message, data, addr) -> None:
        self._from = addr
        super()._request(message, data, addr)

    def _noted(self, delivery) -> None:
        delivery.source = self._from


class AppPeer(Peer):
    """One app: registered on every start, sends to the vendor's numbers."""

    def __init__(self, node, ledger, rate, user: str):
        super().__init__(node, ledger, rate, f"app-{user}")
        self.user = user
        self.mute_share = 0.2
        self.app = CampaignApp(user, APP_PASSWORD, DOMAIN, ("127.0.0.1", 0))
        self.registered = 0

    def run(self) -> None:
        rng = random.Random(hash(self.user))
        generation = None
        while not self.stopping.is_set():
            port = self.node.port("sip_udp")
            if port is None:
                self.stopping.wait(0.05)
                continue
            if generation != self.node.generation:
                gen = self.node.generation
                # Some runs the app goes dark: MESSAGEs to it time out and
                # wait for their retries, across kills.
                self.app.mute = self.producing.is_set() and \
                    rng.random() < self.mute_share
                self.app.node = ("127.0.0.1", port)
                if self.app.register(timeout=5) == 200:
                    generation = gen
                    self.registered = gen
                continue
            if not (self.producing.is_set() and self.pacer.ready()):
                self.stopping.wait(min(0.05, self.pacer.wait()))
                continue
            token = self.ledger.token("app")
            to = f"{VENDOR_PREFIX}{rng.randrange(100000):05d}"
            status = self.app.send(to, token, timeout=5)
            if status == 202:
                self.ledger.ack("app", token)
            elif status is None:
                with self.ledger.lock:
                    self.ledger.unanswered["app"] += 1
            else:
                with self.ledger.lock:
                    self.ledger.refused[f"app {status}"] += 1

    def stop(self) -> None:
        super().stop()


class TenantPeer(Peer):
    """The tenant: one /sendsms/send at a time, Bearer token, with a
    dlr-url for its final reports."""

    dlr_url = ""

    def run(self) -> None:
        rng = random.Random(7)
        while not self.stopping.is_set():
            port = self.node.port("http")
            if port is None or not (self.producing.is_set()
                                    and self.pacer.ready()):
                self.stopping.wait(0.05 if port is None
                                   else min(0.05, self.pacer.wait()))
                continue
            token = self.ledger.token("tenant")
            to = f"{VENDOR_PREFIX}{rng.randrange(100000):05d}"
            body = json.dumps({"from": "123456789", "to": to, "body": token,
                               "dlr-url": self.dlr_url})
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port,
                                                  timeout=5)
                conn.request("POST", "/sendsms/send", body, {
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/json"})
                response = conn.getresponse()
                text = response.read()
                conn.close()
            except (OSError, http.client.HTTPException):
                with self.ledger.lock:
                    self.ledger.unanswered["tenant"] += 1
                continue
            if response.status == 200:
                self.ledger.ack("tenant", token, json.loads(text)["id"])
            else:
                with self.ledger.lock:
                    self.ledger.refused[f"tenant {response.status}"] += 1


class VendorMOPeer(Peer):
    """Mobile-originated messages from the vendor's SMSC to the apps."""

    def __init__(self, node, ledger, rate, smsc: CrashSMSC):
        super().__init__(node, ledger, rate, "vendor-mo")
        self.smsc = smsc

    def run(self) -> None:
        rng = random.Random(11)
        while not self.stopping.is_set():
            if not (self.producing.is_set() and self.pacer.ready()
                    and self.node.port("smpp") is not None):
                self.stopping.wait(min(0.05, self.pacer.wait()))
                continue
            token = self.ledger.token("mo")
            self.smsc.mo(token, "447700900123", rng.choice(APPS), token)
