"""
The flow table: live TCP/TLS connections from apps, and the UDP sockets.

An app behind NAT is reachable only over the connection it registered on
(RFC 5626), so every stream connection is kept here by its transport name
and peer address, which is also what its bindings record. When one
closes, the callbacks given to L{FlowTable.on_lost} run (the registrar
drops the bindings learnt over it). UDP has no flows: a request to a UDP
contact goes out of the UDP socket of the destination's address family.
"""
from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Any, Callable

from twisted.logger import Logger

from appliance.sip.interfaces import ISIPTransport

__all__ = ["FlowTable", "is_ipv6", "probe_local_host"]

Address = tuple[str, int]


@functools.lru_cache(maxsize=4096)  # the same few hosts on every delivery
def is_ipv6(host: str) -> bool:
    """
    @param host: an address or name (IPv6 with or without brackets).
    @return: whether it is an IPv6 address.
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).version == 6
    except ValueError:
        return False


def probe_local_host(destination: str) -> str | None:
    """
    The local address the kernel would send from to reach C{destination}
    (a UDP socket is connected, nothing is sent).

    @param destination: an IP address.
    @return: the local address, or C{None} when there is no route.
    """
    family = socket.AF_INET6 if is_ipv6(destination) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((destination.strip("[]"), 9))
            return s.getsockname()[0]
    except OSError:
        return None


class FlowTable:
    """
    Live connections by C{(transport, peer host, peer port)}, plus the UDP
    protocols.

    @ivar udp: the bound UDP protocols.
    """

    log = Logger()

    def __init__(self) -> None:
        self.udp: list[Any] = []
        self._udp_v6: dict[Any, bool] = {}
        self._flows: dict[tuple[str, str, int], Any] = {}
        self._lost: list[Callable[[str, Address], None]] = []

    def on_lost(self, callback: Callable[[str, Address], None]) -> None:
        """
        @param callback: called with C{(transport, peer)} when a flow closes.
        """
        self._lost.append(callback)

    def made(self, protocol: Any) -> None:
        """
        A connection came up: remember it.

        @param protocol: the L{appliance.sip.protocol.SIPStreamProtocol}.
        """
        host, port = protocol.peer
        self._flows[(protocol.name, host, port)] = protocol

    def lost(self, protocol: Any) -> None:
        """
        A connection went: forget it and tell the callbacks.

        @param protocol: the protocol whose connection closed.
        """
        host, port = protocol.peer
        key = (protocol.name, host, port)
        if self._flows.get(key) is protocol:
            del self._flows[key]
        for callback in self._lost:
            try:
                callback(protocol.name, (host, port))
            except Exception:
                # Broad: a callback; the other callbacks still run.
                self.log.failure("flow loss callback failed")

    def get(self, transport: str, peer: Address) -> Any | None:
        """
        @param transport: C{"TCP"} or C{"TLS"}.
        @param peer: the app's address as the connection sees it.
        @return: the live protocol, or C{None}.
        """
        protocol = self._flows.get((transport, peer[0], int(peer[1])))
        if protocol is None or not getattr(protocol, "connected", True):
            return None
        return protocol

    def udp_for(self, host: str) -> ISIPTransport | None:
        """
        @param host: the destination address.
        @return: a UDP protocol of that address family, or C{None}.
        """
        want6 = is_ipv6(host)
        for protocol in self.udp:
            if self._local_is_ipv6(protocol) == want6:
                return protocol
        return None

    def _local_is_ipv6(self, protocol: Any) -> bool:
        """Whether a UDP protocol's socket is IPv6, asked of its port once
        (getHost makes an address object at each call)."""
        found = self._udp_v6.get(protocol)
        if found is None:
            local = getattr(protocol.transport, "getHost", lambda: None)()
            if local is None:
                return False        # not listening yet: ask again next time
            found = self._udp_v6[protocol] = is_ipv6(getattr(local, "host", ""))
        return found

    def connections(self) -> list[Any]:
        """
        @return: every live stream protocol.
        """
        return list(self._flows.values())

    def __len__(self) -> int:
        return len(self._flows)
