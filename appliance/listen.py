# -*- test-case-name: tests.test_listen -*-
"""
Listening on a service's configured endpoints: one helper for every
service (SMPP, SIP, HTTP, M3UA, the shell and its manhole).

L{listen_all} binds every listener of a section, records each bound port
in the node's port map under L{appliance.config.port_key}, logs it, and
fires once all are bound (or fails with the first error: a bad key, a
port in use).  TLS listeners (C{ssl:}) get the node's TLS policy
(L{appliance.tls}): minimum version and cipher string.  UDP listeners
(SIP) take a datagram protocol instead of a factory.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from twisted.internet import defer, endpoints
from twisted.logger import Logger

from appliance.config import Listener, port_key, parse_listener

__all__ = ["listen_all", "stop_all", "endpoint_for", "gather", "tls_options"]

log = Logger()


def _as_listener(listener: Listener | str) -> Listener:
    if isinstance(listener, Listener):
        return listener
    kind = listener.partition(":")[0]
    return parse_listener(listener, (kind,))


def endpoint_for(reactor: Any, listener: Listener, tls: Any = None) -> Any:
    """
    The server endpoint of a stream listener.

    @param listener: a C{tcp:} or C{ssl:} listener.
    @param tls: the L{appliance.tls.TLSPolicy} for C{ssl:} (default: its
        defaults).
    @raise ValueError: the TLS key or certificate cannot be loaded.
    """
    if listener.kind != "ssl":
        return endpoints.serverFromString(reactor, listener.description)
    return endpoints.SSL4ServerEndpoint(
        reactor, listener.port, tls_options(listener.description, tls),
        interface=listener.interface)


def tls_options(description: str, tls: Any = None) -> Any:
    """
    The context factory of an C{ssl:} listener (also what an HTTP worker
    wraps its adopted socket with).

    @param description: the listener as the operator wrote it (paths
        resolved).
    @param tls: the L{appliance.tls.TLSPolicy} (default: its defaults).
    @raise ValueError: the TLS key or certificate cannot be loaded.
    """
    from appliance.tls import TLSPolicy, server_options
    parsed = parse_listener(description, ("ssl",))
    return server_options(dict(parsed.options), tls or TLSPolicy())


def listen_all(reactor: Any, section: str,
               listeners: Iterable[Listener | str],
               factory: Any = None, *,
               factory_for: Callable[[Listener], Any] | None = None,
               ports: Any = None, into: list | None = None,
               tls: Any = None,
               on_bound: Callable[[Any, Listener], Any] | None = None,
               udp: Callable[..., Any] | None = None,
               ) -> defer.Deferred:
    """
    Listen on every endpoint of a section.

    @param section: the config section (C{"smpp"}, C{"sip"}, C{"http"},
        C{"m3ua"}, C{"shell"}, C{"manhole"}): names the C{ports.json} key
        with the listener's kind (L{port_key}) and the log line.
    @param listeners: L{Listener}s or endpoint strings.
    @param factory: the protocol factory of every listener, or
    @param factory_for: a function from listener to its factory (for
        C{udp:} listeners: to its datagram protocol).
    @param ports: the node's port map (C{record(key, port)}), or C{None}.
    @param into: a list each port is appended to as soon as it is bound
        (so a service can stop the bound ones even if another failed).
    @param tls: the L{appliance.tls.TLSPolicy} of C{ssl:} listeners.
    @param on_bound: called with C{(port, listener)} once each is bound.
    @param udp: listens on a C{udp:} listener, C{udp(reactor, port,
        protocol, interface=...)}; C{reactor.listenUDP} when C{None}.
    @return: a Deferred firing with the ports in listener order, or
        failing with the first error.
    """
    if factory_for is None:
        def factory_for(_listener: Listener) -> Any:
            return factory

    def one(listener: Listener) -> defer.Deferred:
        def start() -> Any:
            if listener.kind == "udp" and udp is not None:
                return udp(reactor, listener.port, factory_for(listener),
                           interface=listener.interface or "")
            if listener.kind == "udp":
                return reactor.listenUDP(listener.port, factory_for(listener),
                                         interface=listener.interface or "")
            return endpoint_for(reactor, listener, tls).listen(
                factory_for(listener))

        def bound(port: Any) -> Any:
            if into is not None:
                into.append(port)
            address = port.getHost()
            key = port_key(section, listener.kind)
            if ports is not None:
                ports.record(key, address.port)
            if on_bound is not None:
                on_bound(port, listener)
            log.info("{section} listening on {kind} {host} port {port}",
                     section=section, kind=listener.kind,
                     host=getattr(address, "host", ""), port=address.port)
            return port
        # A bad key or certificate raises in start(): it fails the Deferred.
        return defer.maybeDeferred(start).addCallback(bound)

    return gather([one(_as_listener(listener)) for listener in listeners])


def gather(waits: list[defer.Deferred]) -> defer.Deferred:
    """
    @return: a Deferred firing with the results of C{waits}, or failing
        with the first failure itself (not wrapped in C{FirstError}).
    """
    d = defer.gatherResults(waits, consumeErrors=True)
    d.addErrback(lambda f: f.value.subFailure
                 if isinstance(f.value, defer.FirstError) else f)
    return d


def stop_all(ports: list) -> defer.Deferred:
    """
    Stop every port in C{ports} and empty the list.

    @return: a Deferred firing when all are closed.
    """
    stopping, ports[:] = list(ports), []
    return defer.gatherResults(
        [defer.maybeDeferred(p.stopListening) for p in stopping],
        consumeErrors=True)
