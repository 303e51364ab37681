"""
The registrar (RFC 3261 section 10, RFC 5626 instance and reg-id).

L{BindingStore} keeps every account's bindings in memory and writes each
change through the storage's batched commit to C{root["registrations"]},
so a restart keeps them; a periodic sweep on the injected clock removes
lapsed ones. L{Registrar} answers REGISTER: digest (401), checks, the pure
update of L{appliance.sip.bindings}, then C{200 OK} listing the current
contacts once the change is committed, and tells the messaging core that
the account is online.
"""
from __future__ import annotations

import heapq
from typing import Any, Callable, Iterator

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from appliance.sip import bindings as B
from appliance.sip.auth import DigestGate
from appliance.sip.bindings import Binding, ContactChange, RegisterError
from appliance.sip.headers import HeaderError
from appliance.sip.message import Request, make_response
from appliance.sip.uri import URIError

__all__ = ["BindingStore", "Registrar"]

#: The database key of the bindings tree.
ROOT_KEY = "registrations"


def _put(root: Any, username: str, value: tuple[Binding, ...]) -> None:
    """Batched write: set (or delete) one account's bindings."""
    tree = root[ROOT_KEY]
    if value:
        tree[username] = value
    elif username in tree:
        del tree[username]


class BindingStore:
    """
    Bindings by account, in memory, written through to the database.

    @ivar sweep_interval: seconds between expiry sweeps.
    """

    log = Logger()

    def __init__(self, storage: Any, clock: IReactorTime, sweep_interval: float = 1.0) -> None:
        """
        @param storage: the L{appliance.store.database.Storage}.
        @param clock: the reactor's time.
        @param sweep_interval: seconds between sweeps.
        """
        self._storage = storage
        self._clock = clock
        self.sweep_interval = sweep_interval
        self._bindings: dict[str, tuple[Binding, ...]] = {}
        self._heap: list[tuple[float, str]] = []
        self._sweeper: task.LoopingCall | None = None
        self._expired_listeners: list[Callable[[str], None]] = []

    def load(self) -> int:
        """
        Read the bindings from the database, dropping lapsed ones.

        @return: the number of bindings loaded.
        """
        now = self._clock.seconds()
        tree = self._storage.domain_get(ROOT_KEY)
        self._bindings.clear()
        self._heap.clear()
        count = 0
        lapsed = []
        for username, value in (tree.items() if tree is not None else ()):
            live = B.expire(value, now)
            if len(live) != len(value):
                lapsed.append(username)
            if live:
                self._set(username, live)
                count += len(live)
        for username in lapsed:
            self._write(username)
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
        Stop the expiry sweep.
        """
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None

    def on_expired(self, listener: Callable[[str], None]) -> None:
        """
        @param listener: called with a username whose bindings a sweep changed.
        """
        self._expired_listeners.append(listener)

    def get(self, username: str) -> tuple[Binding, ...]:
        """
        @param username: the account.
        @return: its bindings not yet lapsed.
        """
        return B.expire(self._bindings.get(username, ()), self._clock.seconds())

    def put(self, username: str, value: tuple[Binding, ...]) -> Deferred:
        """
        Replace an account's bindings now in memory, and in the database at
        the next batched commit.

        @param username: the account.
        @param value: its new bindings.
        @return: a Deferred firing once committed.
        """
        self._set(username, value)
        return self._write(username)

    def _set(self, username: str, value: tuple[Binding, ...]) -> None:
        if value:
            self._bindings[username] = value
            heapq.heappush(self._heap, (min(b.expires_at for b in value), username))
        else:
            self._bindings.pop(username, None)

    def _write(self, username: str) -> Deferred:
        d = self._storage.batch(_put, username, self._bindings.get(username, ()))
        d.addErrback(self._write_failed, username)
        return d

    def _write_failed(self, failure: Any, username: str) -> Any:
        self.log.failure("bindings of {username} not saved", failure, username=username)
        return failure

    def sweep(self) -> list[str]:
        """
        Remove lapsed bindings.

        @return: the accounts whose bindings changed.
        """
        now = self._clock.seconds()
        changed = []
        while self._heap and self._heap[0][0] <= now:
            _, username = heapq.heappop(self._heap)
            current = self._bindings.get(username)
            if current is None:
                continue
            live = B.expire(current, now)
            if len(live) == len(current):
                continue
            self._set(username, live)
            self._write(username).addErrback(lambda _: None)
            changed.append(username)
            self.log.info("registration of {username} lapsed ({n} contacts left)",
                          username=username, n=len(live))
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
        changed = []
        for username, current in list(self._bindings.items()):
            left = B.drop_flow(current, transport, source)
            if len(left) != len(current):
                self.put(username, left).addErrback(lambda _: None)
                changed.append(username)
        return changed

    def items(self) -> Iterator[tuple[str, tuple[Binding, ...]]]:
        """
        @return: C{(username, bindings)} pairs of live bindings, by username.
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
            refreshed a binding is committed (the core's C{account_online}).
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
                    request.headers.get("user-agent") or "", call_id, cseq, self.max_contacts)
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
        d = self.store.put(username, new)
        d.addCallbacks(self._committed, self._not_committed,
                       callbackArgs=(request, tx, username, refreshed),
                       errbackArgs=(request, tx))

    def _committed(self, _: Any, request: Request, tx: Any, username: str,
                   refreshed: bool) -> None:
        self.registers += 1
        tx.respond(self._ok(request, self.store.get(username)))
        current = self.store.get(username)
        self.log.info("{username} registered {n} contacts from {source} (reached at {targets})",
                      username=username, n=len(current), source=tx.address,
                      targets=", ".join(_describe(b) for b in current))
        if refreshed and self.online is not None:
            try:
                self.online(username)
            except Exception:
                self.log.failure("account_online({username}) failed", username=username)

    def _not_committed(self, failure: Any, request: Request, tx: Any) -> None:
        tx.respond(make_response(request, 500))

    def _is_aor_of(self, username: str, to_user: str | None) -> bool:
        if to_user == username:
            return True
        account = self._account(username)
        if account is None or to_user is None:
            return False
        from appliance.model.errors import ModelError
        from appliance.model.numbers import normalize_e164
        try:
            return normalize_e164(to_user) in tuple(account.dids)
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


class _TooBrief(Exception):
    """A Contact asked for less than min_expires."""


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() and c not in '"\\' else "?" for c in text)[:100]


def _tag() -> str:
    import secrets
    return secrets.token_hex(6)
