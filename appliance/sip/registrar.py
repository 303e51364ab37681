"""
The registrar (RFC 3261 section 10, RFC 5626 instance and reg-id).

L{BindingStore} keeps this node's bindings in memory (slotted
L{Binding} records, one dict entry per account) and writes them behind to
the database: a change marks the account dirty, and one function queued
on the storage's batched commit writes every dirty account at once, so a
REGISTER's C{200 OK} waits for no commit.  What a crash can lose is the
last batch or two (a few milliseconds of changes): an app whose binding
is lost is unreachable until its next REGISTER refresh re-creates it, and
messages for it wait in the queue meanwhile (nothing acknowledged to a
sender depends on a registration being durable).  Expiry is one heap of
due times read by one sweep on the injected clock.

In the database (C{root["sip_bindings"]}) the bindings are keyed by
C{(username, node)}: each node writes only its own keys, and
L{BindingStore.lookup} also reads the other nodes' (as of the storage's
last poll of a shared database), so a node finds which node holds an
app's flow.  L{Registrar} answers REGISTER: digest (401), checks, the pure
update of L{appliance.sip.bindings}, then C{200 OK} listing the current
contacts, and tells the messaging core that the account is online.
"""
from __future__ import annotations

import heapq
from typing import Any, Callable, Iterator

from twisted.internet import task
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel

from appliance.logs import shows
from appliance.model.errors import ModelError
from appliance.model.numbers import normalize_e164
from appliance.sip import bindings as B
from appliance.sip.auth import DigestGate
from appliance.sip.bindings import Binding, ContactChange, RegisterError, from_record
from appliance.sip.headers import HeaderError
from appliance.sip.tokens import token_hex
from appliance.sip.message import Request, make_response
from appliance.sip.uri import URIError

__all__ = ["BindingStore", "Registrar", "aor_user"]

#: The database key of the bindings written before nodes were recorded
#: (username to a tuple of L{Binding}); read once and claimed.
ROOT_KEY = "registrations"

#: The database key of the bindings tree: C{(username, node)} to the tuple
#: of L{Binding} objects that node holds (the very tuple it keeps in
#: memory, so the object cache's copy is the same objects; plain
#: L{Binding.record} tuples written by an earlier version read as well).
TREE_KEY = "sip_bindings"

#: Above every node name (letters, digits, C{-} and C{_}): the upper bound
#: of one account's keys.
_LAST = "\x7f"

Flow = tuple[str, str, int]


def aor_user(aor: str) -> str:
    """
    @param aor: an account username, or an address of record
        (C{sip:1111@domain}, C{<sips:1111@domain>}, C{tel:...}).
    @return: the username it names.
    """
    text = aor.strip().strip("<>")
    scheme, colon, rest = text.partition(":")
    if colon and scheme.lower() in ("sip", "sips", "tel"):
        text = rest
    return text.split("@", 1)[0].split(";", 1)[0]


class BindingStore:
    """
    This node's bindings by account, in memory, written behind to the
    database; and the other nodes' bindings, read from it.

    @ivar node: this node's name (L{Binding.node} of the bindings it makes).
    @ivar sweep_interval: seconds between expiry sweeps.
    @ivar retry_delay: seconds before a failed write is tried again.
    @ivar writes: batched writes committed (statistics, tests).
    """

    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime, node: str = "",
                 sweep_interval: float = 1.0, retry_delay: float = 1.0) -> None:
        """
        @param storage: the L{appliance.store.database.Storage}.
        @param clock: the reactor's time.
        @param node: this node's C{[node] name}.
        @param sweep_interval: seconds between sweeps.
        @param retry_delay: seconds before a failed write is retried.
        """
        self._storage = storage
        self._clock = clock
        self.node = node
        self.sweep_interval = sweep_interval
        self.retry_delay = retry_delay
        self.writes = 0
        self._bindings: dict[str, tuple[Binding, ...]] = {}
        self._flows: dict[Flow, set[str]] = {}
        self._heap: list[tuple[float, str]] = []
        self._due: dict[str, float] = {}
        self._dirty: set[str] = set()
        self._inflight: set[str] = set()
        self._queued = False
        self._claimed: list[str] = []
        self._retry: IDelayedCall | None = None
        self._sweeper: task.LoopingCall | None = None
        self._expired_listeners: list[Callable[[str], None]] = []

    # -- life cycle ----------------------------------------------------

    def load(self) -> int:
        """
        Read this node's bindings from the database, dropping lapsed
        ones, and claim those written before nodes were recorded.

        @return: the number of bindings loaded.
        """
        now = self._clock.seconds()
        self._bindings.clear()
        self._flows.clear()
        self._heap.clear()
        self._due.clear()
        found: dict[str, tuple[Binding, ...]] = {}
        tree = self._storage.domain_get(TREE_KEY)
        for (username, node), records in (tree.items() if tree is not None else ()):
            if node != self.node:
                continue
            if all(type(r) is Binding and r.node == node for r in records):
                found[username] = records  # the object cache's tuple itself: no copy
            else:
                found[username] = tuple(from_record(r, node) for r in records)
                self._dirty.add(username)  # rewrite the earlier record form
        legacy = self._storage.domain_get(ROOT_KEY)
        self._claimed = list(legacy.keys()) if legacy is not None else []
        for username in self._claimed:
            found[username] = found.get(username, ()) + tuple(
                from_record(r, self.node) for r in legacy[username])
            self._dirty.add(username)
        count = 0
        for username, value in found.items():
            live = B.expire(value, now)
            if len(live) != len(value):
                self._dirty.add(username)
            else:
                live = value
            self._set(username, live)
            count += len(live)
        if self._dirty:
            self._ensure_queued()
        return count

    def start(self) -> None:
        """
        Start the expiry sweep.
        """
        if self._sweeper is None:
            self._sweeper = task.LoopingCall(self.sweep)
            self._sweeper.clock = self._clock
            self._sweeper.start(self.sweep_interval, now=False)

    def stop(self) -> None:
        """
        Stop the expiry sweep and retries; what is dirty is queued on the
        storage, which commits it before it closes.
        """
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self._dirty and not self._queued:
            self._queue()

    def on_expired(self, listener: Callable[[str], None]) -> None:
        """
        @param listener: called with a username whose bindings a sweep changed.
        """
        self._expired_listeners.append(listener)

    # -- this node's bindings ------------------------------------------

    def get(self, username: str) -> tuple[Binding, ...]:
        """
        @param username: the account.
        @return: its bindings on this node not yet lapsed.
        """
        current = self._bindings.get(username)
        if not current:
            return ()
        now = self._clock.seconds()
        for b in current:
            if b.expires_at <= now:
                return B.expire(current, now)
        return current

    def put(self, username: str, value: tuple[Binding, ...]) -> None:
        """
        Replace an account's bindings now in memory, and in the database
        at a coming batched commit (write-behind: nothing waits for it).

        @param username: the account.
        @param value: its new bindings.
        """
        self._set(username, value)
        self._dirty.add(username)
        self._ensure_queued()

    def _set(self, username: str, value: tuple[Binding, ...]) -> None:
        old = self._bindings.get(username, ())
        for b in old:
            if b.stream and b not in value:
                key = (b.transport, b.source[0], b.source[1])
                users = self._flows.get(key)
                if users is not None:
                    users.discard(username)
                    if not users:
                        del self._flows[key]
        if not value:
            self._bindings.pop(username, None)
            return
        self._bindings[username] = value
        for b in value:
            if b.stream:
                self._flows.setdefault((b.transport, b.source[0], b.source[1]),
                                       set()).add(username)
        due = min(b.expires_at for b in value)
        scheduled = self._due.get(username)
        if scheduled is None or due < scheduled:
            self._due[username] = due
            heapq.heappush(self._heap, (due, username))

    # -- write-behind --------------------------------------------------

    def _ensure_queued(self) -> None:
        """Queue the write unless it is queued or waits for a retry."""
        if not self._queued and (self._retry is None or not self._retry.active()):
            self._queue()

    def _queue(self) -> None:
        self._queued = True
        d = self._storage.batch(self._write_dirty)
        d.addCallbacks(self._written, self._write_failed)

    def _write_dirty(self, root: Any) -> int:
        """Batched write: every dirty account's bindings as they are now."""
        names = self._inflight | self._dirty
        self._inflight, self._dirty = names, set()
        tree = root[TREE_KEY]
        node = self.node
        for username in names:
            key = (username, node)
            value = self._bindings.get(username)
            if value:
                tree[key] = value
            elif key in tree:
                del tree[key]
        if self._claimed:
            legacy = root[ROOT_KEY]
            for username in self._claimed:
                if username in legacy:
                    del legacy[username]
        return len(names)

    def _written(self, count: int) -> None:
        self._inflight = set()
        self._claimed = []
        self._queued = False
        self.writes += 1
        if self._dirty:
            self._queue()

    def _write_failed(self, failure: Any) -> None:
        self._dirty |= self._inflight
        self.log.failure("bindings of {n} accounts not saved: retrying in {delay} s",
                         failure, n=len(self._dirty), delay=self.retry_delay)
        self._inflight = set()
        self._queued = False
        if self._retry is None or not self._retry.active():
            self._retry = self._clock.callLater(self.retry_delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self._dirty and not self._queued:
            self._queue()

    @property
    def dirty(self) -> int:
        """Accounts changed in memory and not yet committed."""
        return len(self._dirty) + len(self._inflight)

    # -- expiry and flows ----------------------------------------------

    def sweep(self) -> list[str]:
        """
        Remove lapsed bindings.

        @return: the accounts whose bindings changed.
        """
        now = self._clock.seconds()
        changed = []
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            when, username = heapq.heappop(heap)
            if due.get(username) != when:
                continue  # superseded by an earlier entry, or gone
            del due[username]
            current = self._bindings.get(username)
            if current is None:
                continue
            live = B.expire(current, now)
            self._set(username, live)  # re-schedules the next due time
            if len(live) != len(current):
                self._dirty.add(username)
                changed.append(username)
                self.log.debug("registration of {username} lapsed ({n} contacts left)",
                               username=username, n=len(live))
        if changed:
            self.log.info("{n} registrations lapsed", n=len(changed))
            self._ensure_queued()
        for username in changed:
            for listener in self._expired_listeners:
                listener(username)
        return changed

    def drop_flow(self, transport: str, source: tuple[str, int]) -> list[str]:
        """
        A connection closed: remove the bindings learnt over it.

        @param transport: C{"TCP"} or C{"TLS"}.
        @param source: the connection's peer.
        @return: the accounts that lost bindings.
        """
        users = self._flows.get((transport, source[0], int(source[1])))
        changed = []
        for username in sorted(users or ()):
            current = self._bindings.get(username, ())
            left = B.drop_flow(current, transport, source)
            if len(left) != len(current):
                self.put(username, left)
                changed.append(username)
        return changed

    def items(self) -> Iterator[tuple[str, tuple[Binding, ...]]]:
        """
        @return: C{(username, bindings)} pairs of this node's live
            bindings, by username.
        """
        now = self._clock.seconds()
        for username in sorted(self._bindings):
            live = B.expire(self._bindings[username], now)
            if live:
                yield username, live

    def count(self) -> int:
        """
        @return: the number of bindings held (lapsed ones until the sweep).
        """
        return sum(len(v) for v in self._bindings.values())

    def accounts(self) -> int:
        """@return: the number of accounts with bindings on this node."""
        return len(self._bindings)

    # -- every node's bindings -----------------------------------------

    def lookup(self, aor: str) -> tuple[Binding, ...]:
        """
        Where an account is registered, on any node of the database.

        @param aor: a username or address of record (L{aor_user}).
        @return: its live bindings, each with its L{Binding.node}: this
            node's first (from memory: current), then the other nodes' in
            node order, as the database showed them at the storage's
            last poll (a shared database is polled every half second);
            on a database error, this node's only.
        """
        username = aor_user(aor)
        local = self.get(username)
        try:
            remote = tuple(self._remote(username, self._clock.seconds()))
        except Exception:
            # Broad: a database read (ZODB, RelStorage, ZEO errors); this
            # node's bindings still answer.
            self.log.failure("bindings of {username} on other nodes unreadable",
                             username=username)
            return local
        return local + remote if remote else local

    def holders(self, aor: str) -> tuple[str, ...]:
        """
        The nodes holding a live registration of an account, best first.

        @param aor: a username or address of record.
        @return: node names, the one whose latest binding lapses last
            first (the app's most recent registration, when apps use one
            expires value); this node first on a tie.
        """
        latest: dict[str, float] = {}
        for b in self.lookup(aor):
            if b.expires_at > latest.get(b.node, 0.0):
                latest[b.node] = b.expires_at
        return tuple(sorted(latest, key=lambda n: (-latest[n], n != self.node, n)))

    def _remote(self, username: str, now: float) -> Iterator[Binding]:
        tree = self._storage.domain_get(TREE_KEY)
        if tree is None:
            return
        for (_, node), records in tree.items(min=(username,), max=(username, _LAST)):
            if node == self.node:
                continue
            for record in records:
                b = from_record(record, node)
                if b.expires_at > now:
                    yield b

    def everywhere(self) -> Iterator[tuple[str, Binding]]:
        """
        Every node's live bindings, for C{show sip registrations}: this
        node's from memory, the others' from the database as of the last
        poll.

        @return: C{(username, binding)} pairs, by username, this node's
            first within an account.
        """
        now = self._clock.seconds()
        others: dict[str, list[Binding]] = {}
        try:
            tree = self._storage.domain_get(TREE_KEY)
            for (username, node), records in (tree.items() if tree is not None else ()):
                if node != self.node:
                    live = [b for b in (from_record(r, node) for r in records)
                            if b.expires_at > now]
                    if live:
                        others.setdefault(username, []).extend(live)
        except Exception:
            # Broad: as in lookup, this node's bindings are still listed.
            self.log.failure("bindings of other nodes unreadable")
        for username in sorted(set(self._bindings) | set(others)):
            for b in self.get(username):
                yield username, b
            for b in others.get(username, ()):
                yield username, b


class Registrar:
    """
    Answer REGISTER requests.

    @ivar store: the L{BindingStore}.
    @ivar registers: REGISTERs answered 200 (statistics).
    """

    log = Logger()

    def __init__(self, section: Any, gate: DigestGate, store: BindingStore,
                 account: Callable[[str], Any], clock: IReactorTime,
                 online: Callable[[str], None] | None = None, max_contacts: int = 10) -> None:
        """
        @param section: the L{appliance.config.SIPSection} (expires bounds).
        @param gate: digest authentication.
        @param store: the bindings.
        @param account: username to the account or C{None}.
        @param clock: the reactor's time.
        @param online: called with a username after a REGISTER that added or
            refreshed a binding is answered (the core's C{account_online}).
        @param max_contacts: bindings allowed per account.
        """
        self.section = section
        self.gate = gate
        self.store = store
        self._account = account
        self._clock = clock
        self.online = online
        self.max_contacts = max_contacts
        self.registers = 0

    def handle(self, request: Request, tx: Any) -> None:
        """
        Answer one REGISTER through its server transaction.

        @param request: the REGISTER.
        @param tx: the server transaction (its C{transport} and C{address}
            say how the app is reached).
        """
        source = tx.address
        # The packet's own source: the flow (tx.address is where responses
        # go, which without rport is the Via's port).
        flow = tuple(getattr(tx, "source", None) or source)
        auth = self.gate.authenticate(request, source[0], proxy=False)
        if auth.response is not None:
            tx.respond(auth.response)
            return
        username = auth.username or ""
        try:
            to_user = request.to_address().uri.user
            if not self._is_aor_of(username, to_user):
                tx.respond(self.gate.refuse(request, source[0],
                                            f"{username} may not register {to_user}"))
                return
            cseq = request.cseq().number
            call_id = request.call_id or ""
            header_expires = request.int_header("expires")
            if request.is_contact_wildcard():
                if header_expires != 0:
                    tx.respond(make_response(request, 400, "Wildcard Needs Expires 0"))
                    return
                new = B.remove_all(self.store.get(username), call_id, cseq)
                changes: list[ContactChange] = []
            else:
                stream = bool(getattr(tx.transport, "reliable", False))
                changes = self._changes(request, header_expires,
                                        None if stream else (flow[0], int(flow[1])))
                new = B.update_bindings(
                    self.store.get(username), changes, self._clock.seconds(),
                    tx.transport.name,
                    (source[0], int(source[1])) if stream else (flow[0], int(flow[1])),
                    request.headers.get("user-agent") or "", call_id, cseq, self.max_contacts,
                    self.store.node)
        except _TooBrief:
            response = make_response(request, 423)
            response.headers.add("Min-Expires", str(self.section.min_expires))
            tx.respond(response)
            return
        except RegisterError as e:
            tx.respond(make_response(request, e.status, e.reason))
            return
        except (HeaderError, URIError) as e:
            response = make_response(request, 400)
            response.headers.add("Warning", f'399 appliance "{_clean(str(e))}"')
            tx.respond(response)
            return
        if not changes and not request.is_contact_wildcard():
            tx.respond(self._ok(request, new))  # a query: nothing changes
            return
        refreshed = any(c.expires > 0 for c in changes)
        self.store.put(username, new)  # written behind: the answer does not wait
        self.registers += 1
        current = self.store.get(username)
        tx.respond(self._ok(request, current))
        # Built only when shown: a debug event filtered out still costs
        # its dict and the publisher's walk (5.6 % of the node's CPU under
        # REGISTER load, bench/profiles/sip-register-1a6656e.txt).
        if shows(_NAMESPACE, LogLevel.debug):
            self.log.debug("{username} registered {n} contacts from {source} (reached at"
                           " {targets})", username=username, n=len(current),
                           source=tx.address, targets=", ".join(_describe(b) for b in current))
        if refreshed and self.online is not None:
            try:
                self.online(username)
            except Exception:
                # Broad: the core's callback; the REGISTER is answered.
                self.log.failure("account_online({username}) failed", username=username)

    def lookup(self, aor: str) -> tuple[Binding, ...]:
        """
        Where an app is registered, on this node or another of the same
        database (L{BindingStore.lookup}).

        @param aor: a username or address of record.
        @return: its live bindings, each with the L{Binding.node} holding
            its flow, this node's first.
        """
        return self.store.lookup(aor)

    def _is_aor_of(self, username: str, to_user: str | None) -> bool:
        if to_user == username:
            return True
        account = self._account(username)
        if account is None or to_user is None:
            return False
        try:
            return normalize_e164(to_user) in account.dids
        except ModelError:
            return False

    def _changes(self, request: Request, header_expires: int | None,
                 udp_source: tuple[str, int] | None) -> list[ContactChange]:
        """
        @param udp_source: for a REGISTER over UDP, its source: each
            Contact's delivery target is decided (L{B.delivery_target});
            C{None} over TCP/TLS, where requests use the connection.
        """
        out = []
        sent_by: tuple[str, int | None] = ("", None)
        if udp_source is not None:
            via = request.top_via()
            sent_by = (via.host, via.port)
        mode = getattr(self.section, "nat", "auto")
        for contact in request.contacts():
            if contact.uri.scheme not in ("sip", "sips"):
                raise HeaderError(f"Contact must be a sip URI, not {contact.uri.scheme}")
            expires = contact.expires
            if expires is None:
                expires = header_expires
            if expires is None:
                expires = self.section.default_expires
            if 0 < expires < self.section.min_expires:
                raise _TooBrief()
            expires = min(expires, self.section.max_expires)
            destination = None
            if udp_source is not None and expires > 0:
                destination = B.delivery_target(mode, str(contact.uri), contact.instance,
                                                contact.reg_id, udp_source, sent_by)
            out.append(ContactChange(str(contact.uri), contact.instance, contact.reg_id,
                                     expires, destination))
        return out

    def _ok(self, request: Request, current: tuple[Binding, ...]) -> Any:
        response = make_response(request, 200, to_tag=_tag())
        now = self._clock.seconds()
        outbound = False
        for b in current:
            value = f"<{b.contact}>;expires={b.remaining(now)}"
            if b.instance is not None:
                value += ';+sip.instance="' + b.instance.replace('"', "") + '"'
            if b.reg_id is not None:
                value += f";reg-id={b.reg_id}"
                outbound = True
            response.headers.add("Contact", value)
        if outbound:
            response.headers.add("Require", "outbound")
        return response


def _describe(b: Binding) -> str:
    """How a binding is reached, for the log."""
    if b.stream:
        return f"{b.transport} connection"
    return f"{b.target[0]}:{b.target[1]} ({'contact' if b.destination else 'flow'})"


#: The namespace of the registrar's log events (L{shows}).
_NAMESPACE = f"{__name__}.Registrar"


class _TooBrief(Exception):
    """A Contact asked for less than min_expires."""


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "?" for c in text)[:100]


def _tag() -> str:
    return token_hex(6)
