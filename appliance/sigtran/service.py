# -*- test-case-name: tests.sigtran.test_service -*-
"""
The C{[m3ua]} node service: the node's signalling point on SIGTRAN.

It owns the M3UA layer (L{mtp}, the node's L{IMTPProvider}) and SCCP
(L{sccp}, the L{ISCCPProvider}); upper layers are wired to them in
C{appliance.application} (C{service.sccp.register_ssn(ssn, tcap)},
C{service.mtp.register_user(SI_ISUP, isup)}) and read the C{ss7}
settings through L{ISS7Settings}.  The peers and routes come from the
database (C{ss7} in the shell); after each configuration commit the
service reconciles: new peers get an association (an initiator peer a
C{ClientService} that reconnects with backoff), removed ones are closed,
changed ones are rebuilt.  The C{[m3ua] listen} endpoints accept the
peers whose role is C{sg}.
"""
from __future__ import annotations

from typing import Any, Callable

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from zope.interface import implementer

from appliance.listen import listen_all, stop_all
from appliance.sigtran import asp as asp_
from appliance.sigtran.asp import Association, PeerSettings, Timers
from appliance.sigtran.interfaces import SI_SCCP, ISS7Settings, SS7Settings
from appliance.sigtran.model import SS7Root, format_point_code
from appliance.sigtran.mtp import M3UALayer
from appliance.sigtran.scrc import SCCPRouter
from appliance.sigtran.transport import (
    AssociationFactory, ListenerFactory, SCTPClientEndpoint)


@implementer(ISS7Settings)
class SigtranService(MultiService):
    """
    The M3UA associations, SCCP, and the live view of both.

    @ivar mtp: the L{M3UALayer}.
    @ivar sccp: the L{SCCPRouter} (MTP user for SI 3).
    @ivar associations: name to L{Association}.
    @ivar ready: fires once the listeners are bound.
    """

    log = Logger()

    def __init__(self, storage: Any, reactor: Any, listen: tuple = (),
                 ports: Any = None, timers: Timers = Timers(),
                 retry: Callable[[int], float] | None = None,
                 endpoint_for: Callable[[PeerSettings], Any] | None = None):
        """
        @param storage: the storage (configuration and change events).
        @param reactor: the reactor (connections, timers).
        @param listen: the C{[m3ua] listen} listeners.
        @param ports: the node's L{PortMap}, or None.
        @param timers: the associations' timers.
        @param retry: reconnection delay by failed attempts.
        @param endpoint_for: peer settings to a client endpoint (default:
            TCP or SCTP to the peer's address and port).
        """
        super().__init__()
        self.storage = storage
        self.reactor = reactor
        self.listen = listen
        self.ports = ports
        self.timers = timers
        self.retry = retry or backoffPolicy(initialDelay=0.5, maxDelay=30.0)
        self.endpoint_for = endpoint_for or self._endpoint
        self.mtp = M3UALayer()
        self.sccp = SCCPRouter(self.mtp, reactor)
        self.mtp.register_user(SI_SCCP, self.sccp)
        self.associations: dict[str, Association] = {}
        self._clients: dict[str, ClientService] = {}
        self._settings = SS7Settings()
        self._listeners: list[Callable[[SS7Settings], Any]] = []
        self._ports: list = []
        self.ready: defer.Deferred = defer.Deferred()

    # ISS7Settings

    def settings(self) -> SS7Settings:
        """@return: the current C{ss7} settings."""
        return self._settings

    def add_settings_listener(self, listener: Callable) -> None:
        """Call C{listener(settings)} after each change of them."""
        self._listeners.append(listener)

    # life cycle

    def startService(self) -> None:
        """Reconcile with the database, listen, follow changes."""
        self.reconcile()
        super().startService()
        self.storage.add_change_listener(self._changed)
        d = listen_all(self.reactor, "m3ua", self.listen,
                       ListenerFactory(self._accept), ports=self.ports,
                       into=self._ports)
        d.addCallbacks(lambda _: self.ready.callback(None), self.ready.errback)

    @defer.inlineCallbacks
    def stopService(self):
        """Stop following changes, close the associations and listeners."""
        try:
            self.storage.remove_change_listener(self._changed)
        except ValueError:
            pass
        for a in self.associations.values():
            a.stop()
        yield super().stopService()
        yield stop_all(self._ports)
        self.sccp.stop()

    def _changed(self, note: str) -> None:
        self.reconcile()

    # reconciling

    def _endpoint(self, s: PeerSettings) -> Any:
        if s.transport == "sctp":
            return SCTPClientEndpoint(self.reactor, s.address, s.port)
        return endpoints.TCP4ClientEndpoint(self.reactor, s.address, s.port,
                                            timeout=5)

    def reconcile(self) -> None:
        """Bring the associations and snapshots in line with the database."""
        ss7 = self.storage.domain_get("ss7") or SS7Root()
        settings = ss7.settings()
        self.mtp.point_code = settings.point_code
        self.mtp.network_indicator = settings.network_indicator
        routes = ss7.route_table()
        self.sccp.configure(settings, routes)
        wanted = {name: PeerSettings.of(p) for name, p in ss7.peers.items()}
        for name in list(self.associations):
            a = self.associations[name]
            if wanted.get(name) != a.settings \
                    or a.point_code != settings.point_code:
                self._remove(name)
        for name, s in wanted.items():
            if name not in self.associations:
                self._add(s, settings.point_code)
        self.mtp.watch(r.pc for r in routes if r.pc is not None)
        if settings != self._settings:
            self._settings = settings
            for listener in list(self._listeners):
                try:
                    listener(settings)
                except Exception:
                    # Broad: a listener (TCAP/MAP, ISUP) is a callback;
                    # the others still get the new settings.
                    self.log.failure("ss7 settings listener failed")

    def _add(self, s: PeerSettings, point_code: int) -> None:
        a = Association(s, self.mtp, self.reactor, point_code, self.timers)
        self.associations[s.name] = a
        self.mtp.associations[s.name] = a
        if s.initiator and s.address is not None:
            client = ClientService(self.endpoint_for(s),
                                   AssociationFactory(a),
                                   retryPolicy=self.retry, clock=self.reactor)
            client.setName("m3ua-peer " + s.name)
            self._clients[s.name] = client
            client.setServiceParent(self)
        self.log.info("m3ua-peer {name}: {role} over {transport} to "
                      "{address}:{port}", name=s.name, role=s.role,
                      transport=s.transport, address=s.address, port=s.port)

    def _remove(self, name: str) -> None:
        a = self.associations.pop(name)
        self.mtp.associations.pop(name, None)
        client = self._clients.pop(name, None)
        if client is not None:
            client.disownServiceParent()
        a.stop()
        self.mtp.association_down(a)

    def _accept(self, host: str) -> Association | None:
        """The association for an incoming connection from C{host}."""
        for a in self.associations.values():
            if not a.settings.initiator or a.settings.role == "ipsp":
                if a.settings.address in (None, host) \
                        and a.connected_since is None:
                    return a
        return None

    # shell

    def show(self) -> str:
        """The text of C{show ss7}."""
        from appliance.text_table import table
        s = self._settings
        out = [f"point code {format_point_code(s.point_code)} "
               f"({s.point_code}), network indicator {s.network_indicator}, "
               f"global title {s.global_title or '-'}, SMSC SSN "
               f"{s.smsc_ssn}, HLR GT {s.hlr_gt or '-'}", "",
               "Associations"]
        rows = []
        for a in self.associations.values():
            st = a.settings
            rows.append((a.name, st.role, st.transport,
                         f"{st.address}:{st.port}",
                         "up" if a.connected_since is not None else "down",
                         a.state, a.as_state, a.rc, st.traffic_mode))
        out.append(table(("Peer", "Role", "Transport", "Address", "Link",
                          "ASP state", "AS state", "RC", "Mode"), rows))
        out += ["", "Destinations"]
        out.append(table(("Point code", "Available", "Via"), [
            (f"{format_point_code(pc)} ({pc})", "yes" if up else "no",
             ", ".join(a.name for a in self.mtp.carriers(pc)) or "-")
            for pc, up in self.mtp.destination_table()]))
        out += ["", "Messages"]
        rows = []
        for a in self.associations.values():
            for key in sorted(a.counters):
                rows.append((a.name, key, a.counters[key]))
        for key in sorted(self.sccp.counters):
            rows.append(("sccp", key, self.sccp.counters[key]))
        for key in sorted(self.mtp.counters):
            rows.append(("m3ua", key, self.mtp.counters[key]))
        out.append(table(("Peer", "Message", "Count"), rows))
        return "\n".join(out) + "\n"

    def statistics(self) -> dict[str, int]:
        """Counters for C{show statistics} (C{<peer>.<message>})."""
        out: dict[str, int] = {}
        for a in self.associations.values():
            for key, value in a.counters.items():
                out[f"{a.name}.{key.replace(' ', '_')}"] = value
        for key, value in self.sccp.counters.items():
            out[f"sccp.{key.replace(' ', '_')}"] = value
        out["associations_active"] = sum(
            a.state == asp_.ACTIVE for a in self.associations.values())
        return out


def make_service(section: Any, node: Any) -> SigtranService:
    """
    Build the service for C{[m3ua]} (the application's factory).

    @param section: the C{[m3ua]} L{ServiceSection}.
    @param node: the L{appliance.node.NodeContext}.
    """
    beat = section.option("beat_interval", 10)
    if isinstance(beat, bool) or not isinstance(beat, (int, float)) \
            or not 0 <= beat <= 3600:
        raise ValueError("[m3ua] beat_interval: 0 (no BEAT) to 3600 seconds")
    return SigtranService(node.storage, node.reactor, section.listen,
                          node.ports, timers=Timers(beat=float(beat)))
