"""
The SIP delivery agent: send a stored message to an account's apps.

One MESSAGE per usable binding (forking), each in its own non-INVITE
client transaction: over the TCP/TLS connection the binding registered
on, or from the UDP socket to the binding's target: its Contact, or the
flow (the REGISTER's source) when the registrar chose it (outbound, NAT,
C{[sip] nat}; L{appliance.sip.bindings.delivery_target}). The first
2xx means delivered; when every fork ends with 408, 480, 5xx or a timeout
the core retries later; otherwise the best other final answer fails the
message with its status and reason.

Every MESSAGE of one stored message carries the same C{Message-ID}
header (the id in hex, as SMPP receipts and submit_sm_resp give it), on
every attempt and after a restart: delivery is at least once (a crash
between the app's 2xx and the commit of "delivered" sends it again), so
an app drops a copy by that header.
"""
from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import quote

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from appliance.messaging.vocabulary import Outcome
from appliance.messaging.interfaces import IDeliveryAgent
from appliance.sip.bindings import Binding
from appliance.sip.flows import FlowTable
from appliance.sip.headermap import Headers
from appliance.sip.message import Request, Response
from appliance.sip.tokens import token_hex
from appliance.sip.transaction import new_branch
from appliance.sip.uri import URI

__all__ = ["SIPDeliveryAgent", "from_header", "is_retryable", "message_id"]

_DIGITS = re.compile(r"^\+?[0-9]{1,20}$")


def is_retryable(status: int) -> bool:
    """
    @param status: a final status.
    @return: whether it means "try again later" (408, 480, 5xx).
    """
    return status in (408, 480) or 500 <= status < 600


def message_id(stored_id: int) -> str:
    """
    @param stored_id: a stored message's id.
    @return: the C{Message-ID} header value: the id in lower-case hex,
        the form SMPP gives it to carriers.
    """
    return format(stored_id, "x")


def from_header(sender: str, domain: str, tag: str) -> str:
    """
    The From of a delivered message.

    @param sender: digits (with an optional C{+}) or an alphanumeric sender.
    @param domain: our SIP domain.
    @param tag: the From tag.
    @return: C{<sip:9647501234567@domain>;tag=...} for a number, C{"AsiaCell"
        <sip:AsiaCell@domain>;tag=...} for an alphanumeric sender.
    """
    if _DIGITS.match(sender):
        return f"<sip:{sender.lstrip('+')}@{domain}>;tag={tag}"
    user = quote(sender, safe="-_.!~*'()") or "unknown"
    display = sender.replace("\\", "\\\\").replace('"', '\\"')
    display = "".join(c for c in display if c.isprintable())
    return f'"{display}" <sip:{user}@{domain}>;tag={tag}'


def _rank(status: int) -> tuple[int, int]:
    """Which non-2xx final answer wins (RFC 3261 16.7 in spirit): 6xx, then 4xx, then 3xx."""
    if 600 <= status < 700:
        return (0, status)
    if 400 <= status < 500:
        return (1, status)
    return (2, status)


@implementer(IDeliveryAgent)
class SIPDeliveryAgent:
    """
    Deliver messages to registered apps.

    @ivar delivered: messages delivered (statistics).
    @ivar attempts: MESSAGE requests sent.
    """

    log = Logger()

    def __init__(self, domain: str, bindings: Callable[[str], tuple[Binding, ...]],
                 flows: FlowTable, layer: Any,
                 local_host: Callable[[str], str | None] | None = None) -> None:
        """
        @param domain: our SIP domain (From and To hosts).
        @param bindings: username to its live bindings.
        @param flows: the flow table.
        @param layer: the L{appliance.sip.transaction.TransactionLayer}.
        @param local_host: destination host to the local address to put in
            Via when the UDP socket is bound to a wildcard address.
        """
        self.domain = domain
        self._bindings = bindings
        self.flows = flows
        self.layer = layer
        self._local_host = local_host
        self.delivered = 0
        self.attempts = 0
        self._bound: dict[Any, tuple[str, int]] = {}

    def usable(self, username: str | None) -> list[tuple[Binding, Any]]:
        """
        @param username: the account.
        @return: C{(binding, transport)} for each binding reachable now:
            UDP ones, and stream ones whose connection is up.
        """
        out = []
        for b in self._bindings(username) if username else ():
            if b.stream:
                transport = self.flows.get(b.transport, b.source)
            else:
                transport = self.flows.udp_for(b.target[0])
            if transport is not None:
                out.append((b, transport))
        return out

    def deliver(self, message: Any) -> defer.Deferred:
        """
        Send the message to every usable contact of its account.

        @param message: a L{appliance.messaging.vocabulary.MessageView}.
        @return: a Deferred firing with an L{Outcome}; never errbacks.
        """
        targets = self.usable(message.account)
        if not targets:
            return defer.succeed(Outcome("offline", "no registered contact"))
        finals: list[defer.Deferred] = []
        for binding, transport in targets:
            try:
                request = self._request(message, binding, transport)
                tx = self.layer.send_request(request, transport, binding.target)
            except Exception as e:
                # Broad: one contact's failure (a rendering bug, a closed
                # flow) is its 503; the other contacts are still tried.
                self.log.failure("MESSAGE {id} to {contact} not sent", id=message.id,
                                 contact=binding.contact)
                finals.append(defer.succeed(_synthetic(503, f"Not Sent: {e}")))
                continue
            self.attempts += 1
            finals.append(tx.final)
        return self._first_success(message, finals)

    def _first_success(self, message: Any, finals: list[defer.Deferred]) -> defer.Deferred:
        result: defer.Deferred = defer.Deferred()
        answers: list[Response] = []

        def one(response: Response) -> None:
            if result.called:
                return
            if 200 <= response.status < 300:
                self.delivered += 1
                result.callback(Outcome("delivered", f"{response.status} {response.reason}"))
                return
            answers.append(response)
            if len(answers) == len(finals):
                result.callback(self._verdict(answers))

        for d in finals:
            d.addCallback(one)
            d.addErrback(lambda f: one(_synthetic(500, f.getErrorMessage())))
        return result

    @staticmethod
    def _verdict(answers: list[Response]) -> Outcome:
        if all(is_retryable(r.status) for r in answers):
            worst = answers[0]
            return Outcome("retry", f"{worst.status} {worst.reason}")
        best = min((r for r in answers if not is_retryable(r.status)),
                   key=lambda r: _rank(r.status))
        return Outcome("failed", f"{best.status} {best.reason}")

    def _via_host(self, transport: Any, destination: str) -> tuple[str, int]:
        known = self._bound.get(transport)
        if known is not None:
            return known
        local = transport.transport.getHost()
        host, port = getattr(local, "host", ""), getattr(local, "port", 5060)
        if host not in ("", "0.0.0.0", "::") and transport.name == "UDP":
            # A socket bound to one address: the same Via whatever the
            # destination (getHost makes an address object at each call).
            if len(self._bound) < 64:
                self._bound[transport] = (f"[{host}]" if ":" in host else host, port)
        if host in ("", "0.0.0.0", "::") and self._local_host is not None:
            host = self._local_host(destination) or host
        if host in ("", "0.0.0.0", "::"):
            host = self.domain
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return host, port

    def _request(self, message: Any, binding: Binding, transport: Any) -> Request:
        host, port = self._via_host(transport, binding.target[0])
        headers = Headers()
        headers.add("Via", f"SIP/2.0/{transport.name} {host}:{port};branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        headers.add("From", from_header(message.sender, self.domain, token_hex(6)))
        headers.add("To", f"<sip:{message.account}@{self.domain}>")
        headers.add("Call-ID", f"{token_hex(12)}@{self.domain}")
        headers.add("CSeq", "1 MESSAGE")
        headers.add("Message-ID", message_id(message.id))
        headers.add("Content-Type", "text/plain;charset=UTF-8")
        body = (message.text or "").encode("utf-8")
        return Request(headers=headers, body=body, method="MESSAGE",
                       uri=URI.parse(binding.contact))


def _synthetic(status: int, reason: str) -> Response:
    return Response(status=status, reason=reason)
