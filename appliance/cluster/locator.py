# -*- test-case-name: tests.cluster.test_service -*-
"""
Where an account's app is registered, across nodes: this node's own
bindings (the SIP registrar's memory), and the node the app last
registered on, kept in C{root["cluster"].presence} (one small batched
write when an app registers on a node other than the one recorded, or its
registration outlives the recorded time).

This is the cluster's own narrow view until the registrar's bindings
carry the node that holds them; then L{PresenceLocator.holders} reads
those instead.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from appliance.cluster.interfaces import IRegistrationLocator
from appliance.cluster.model import KEY

#: Seconds a presence lasts when the bindings do not say (no registrar).
DEFAULT_TTL = 3600.0


def _present(raw: Any, username: str, node: str, until: float) -> None:
    """Batched write: C{username} is registered on C{node} until C{until}."""
    raw[KEY].presence[username] = (node, until)


@implementer(IRegistrationLocator)
class PresenceLocator:
    """
    @ivar local: username to this node's live bindings of it (the SIP
        registrar's C{get}); the wiring sets it once SIP is built.
    """

    def __init__(self, storage: Any, clock: IReactorTime, node: str,
                 local: Callable[[str], tuple] | None = None) -> None:
        """
        @param storage: the L{appliance.store.interfaces.IStorage}.
        @param clock: the reactor's time.
        @param node: this node's name.
        @param local: see L{local}.
        """
        self._storage = storage
        self._clock = clock
        self.node = node
        self.local = local

    def _local(self, username: str) -> tuple:
        return tuple(self.local(username)) if self.local is not None else ()

    def holders(self, username: str) -> tuple[str, ...]:
        """
        @return: the node the app last registered on (if that has not
            lapsed), then this node if it holds bindings of it.
        """
        now = self._clock.seconds()
        out: list[str] = []
        entry = self._storage.domain(KEY).presence.get(username)
        if entry is not None and entry[1] > now:
            out.append(entry[0])
        if self.node not in out and self._local(username):
            out.append(self.node)
        return tuple(out)

    def registered(self, username: str) -> None:
        """Record that C{username} registered here, if the database does
        not say so already for long enough."""
        now = self._clock.seconds()
        bindings = self._local(username)
        until = max((b.expires_at for b in bindings), default=now + DEFAULT_TTL)
        entry = self._storage.domain(KEY).presence.get(username)
        if entry is not None and entry[0] == self.node and \
                entry[1] >= until - (until - now) / 2:
            return
        self._storage.batch(_present, username, self.node, until)
