"""
Interfaces of the SIP domain: the transport seen by transactions, and the
transaction user (registrar, MESSAGE service, notification) seen by the
transaction layer.
"""
from zope.interface import Attribute, Interface

__all__ = ["ISIPTransport", "ITransactionUser"]


class ISIPTransport(Interface):
    """
    Something SIP messages can be sent over: the UDP listener (one for all
    peers) or one TCP/TLS connection (one peer).
    """

    reliable = Attribute(
        "C{bool}: C{True} for TCP/TLS (no retransmissions, timers K/J/I are 0),"
        " C{False} for UDP."
    )
    name = Attribute('C{str}: the transport name for Via, C{"UDP"}, C{"TCP"} or C{"TLS"}.')

    def send(data, address):
        """
        Send one serialized message.

        @param data: the message bytes.
        @type data: C{bytes}
        @param address: C{(host, port)}; ignored by connection-oriented
            transports, which always send to their peer.
        @raise Exception: when the message cannot be sent; the transaction
            reports a transport error to its user.
        """


class ITransactionUser(Interface):
    """
    The TU (RFC 3261 section 17): receives new requests and the outcome of
    client transactions.
    """

    def request_received(request, server_transaction):
        """
        A new request arrived (retransmissions are absorbed by the layer).

        @param request: the L{appliance.sip.message.Request}.
        @param server_transaction: the server transaction to answer through
            (its C{respond(response)}), or C{None} for an ACK that matches no
            transaction (the ACK to a 2xx).
        """

    def response_received(response, client_transaction):
        """
        A response to one of our requests: provisional ones, then exactly
        one final one. A timeout (timer F) is reported as a synthesized
        C{408}, a transport failure as a synthesized C{503}.

        @param response: the L{appliance.sip.message.Response}.
        @param client_transaction: the client transaction.
        """

    def transaction_timed_out(server_transaction):
        """
        An INVITE server transaction sent a final non-2xx response and no
        ACK came before timer H.

        @param server_transaction: the transaction.
        """
