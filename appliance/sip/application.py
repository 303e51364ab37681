"""
The transaction user: dispatch requests by method.

REGISTER goes to the registrar, MESSAGE to the intake, OPTIONS gets
C{200} with Allow and Accept, CANCEL is answered per RFC 3261 9.2, an ACK
without a transaction is absorbed, and any other method gets C{405} with
Allow. Requests whose Request-URI names another domain get C{404}; the
configured domain, the node's own addresses, C{localhost}, C{127.0.0.1}
and C{::1} are ours, and so are C{tel:} URIs.
"""
from __future__ import annotations

import functools
import ipaddress
from typing import Any, Callable, Iterable

from twisted.logger import Logger
from zope.interface import implementer

from appliance.sip.interfaces import ITransactionUser
from appliance.sip.tokens import token_hex
from appliance.sip.message import Request, Response, make_response
from appliance.sip.transaction import State

__all__ = ["ALLOW", "DomainCheck", "SIPApplication"]

#: The methods we answer, for Allow.
ALLOW = "REGISTER, MESSAGE, OPTIONS, ACK, CANCEL"


@functools.lru_cache(maxsize=4096)  # the same few hosts on every request
def _norm_host(host: str) -> str:
    host = host.strip("[]").lower().rstrip(".")
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


class DomainCheck:
    """
    Which Request-URI hosts are ours.
    """

    def __init__(self, domain: str, addresses: Iterable[str] = ()) -> None:
        """
        @param domain: the configured SIP domain.
        @param addresses: the node's own addresses and names.
        """
        self._hosts = {_norm_host(h) for h in (domain, "localhost", "127.0.0.1", "::1",
                                                *addresses) if h}

    def add(self, host: str) -> None:
        """
        @param host: another of our addresses (a listener's, a connection's
            local address).
        """
        if host and host not in ("0.0.0.0", "::"):
            self._hosts.add(_norm_host(host))

    def __contains__(self, host: object) -> bool:
        return isinstance(host, str) and _norm_host(host) in self._hosts

    def hosts(self) -> list[str]:
        """
        @return: the hosts that are ours, sorted.
        """
        return sorted(self._hosts)


@implementer(ITransactionUser)
class SIPApplication:
    """
    The node's SIP transaction user.

    @ivar layer: the L{appliance.sip.transaction.TransactionLayer} (set
        once built: the layer needs the user first).
    @ivar counts: requests seen per method (statistics).
    """

    log = Logger()

    def __init__(self, domains: DomainCheck, register: Callable[[Request, Any], None],
                 message: Callable[[Request, Any], None]) -> None:
        """
        @param domains: the hosts that are ours.
        @param register: answers a REGISTER through its transaction.
        @param message: answers a MESSAGE through its transaction.
        """
        self.domains = domains
        self.layer: Any = None
        self._methods = {"REGISTER": register, "MESSAGE": message}
        self.counts: dict[str, int] = {}
        #: C{invite(request, tx) -> bool}: answers the INVITEs it takes
        #: (the missed-call service's service numbers); the others keep
        #: the 405.  Set by the wiring.
        self.invite: Callable[[Request, Any], bool] | None = None

    def request_received(self, request: Request, server_transaction: Any) -> None:
        """
        Dispatch a new request.

        @param request: the request.
        @param server_transaction: its transaction; C{None} for a stray ACK.
        """
        method = request.method
        self.counts[method] = self.counts.get(method, 0) + 1
        tx = server_transaction
        if tx is None or method == "ACK":
            return  # ACK to a 2xx we never send, or absorbed: nothing to do
        if method == "CANCEL":
            self._cancel(request, tx)
            return
        if request.uri.scheme != "tel" and request.uri.host not in self.domains:
            tx.respond(make_response(request, 404, "Not Our Domain", to_tag=_tag()))
            return
        if method == "INVITE" and self.invite is not None:
            try:
                if self.invite(request, tx):
                    return
            except Exception:
                # Broad: the notification service's hook; the INVITE is
                # answered as if it had declined.
                self.log.failure("INVITE hook failed")
        handler = self._methods.get(method)
        if handler is not None:
            handler(request, tx)
        elif method == "OPTIONS":
            tx.respond(self._options(request))
        else:
            response = make_response(request, 405, to_tag=_tag())
            response.headers.add("Allow", ALLOW)
            tx.respond(response)

    def _options(self, request: Request) -> Response:
        response = make_response(request, 200, to_tag=_tag())
        response.headers.add("Allow", ALLOW)
        response.headers.add("Accept", "text/plain")
        response.headers.add("Supported", "outbound")
        return response

    def _cancel(self, request: Request, tx: Any) -> None:
        """
        RFC 3261 9.2: 200 to the CANCEL and 487 to a pending INVITE, or 481.
        """
        target = self.layer.find_server_transaction(request, "INVITE") if self.layer else None
        if target is None:
            tx.respond(make_response(request, 481, to_tag=_tag()))
            return
        tx.respond(make_response(request, 200, to_tag=_tag()))
        if target.state is State.PROCEEDING and (
                target.last_response is None or target.last_response.status < 200):
            target.respond(make_response(target.request, 487, to_tag=_tag()))

    def response_received(self, response: Response, client_transaction: Any) -> None:
        """
        Responses to our MESSAGEs are read from the transaction's C{final}
        Deferred by the delivery agent; nothing to do here.

        @param response: the response.
        @param client_transaction: its transaction.
        """

    def transaction_timed_out(self, server_transaction: Any) -> None:
        """
        No ACK for a final INVITE answer (timer H): log it.

        @param server_transaction: the transaction.
        """
        self.log.info("no ACK for {tx}", tx=server_transaction)


def _tag() -> str:
    return token_hex(6)
