"""
smpp.twisted3 and smpp.pdu3 (installed with --no-deps: their metadata pins
Twisted 23.10) import and work on this Twisted: the server and the client
bind to each other over loopback and exchange a submit_sm.
"""
import logging

import pytest
import pytest_twisted
import twisted
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, reactor
from zope.interface import implementer

from smpp.pdu import pdu_types
from smpp.pdu.operations import SubmitSM
from smpp.twisted.client import SMPPClientTransceiver
from smpp.twisted.config import SMPPClientConfig, SMPPServerConfig
from smpp.twisted.protocol import DataHandlerResponse
from smpp.twisted.server import IAuthenticatedSMPP, SMPPServerFactory


# The library logs through the standard logging module at WARNING for
# ordinary events (and once more as the reactor shuts down): keep it quiet.
logging.getLogger("smpp").setLevel(logging.CRITICAL)


@implementer(IRealm)
class Realm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        return IAuthenticatedSMPP, avatarId, lambda: None


def test_twisted_is_26():
    """The library runs against the Twisted this project pins, not 23.10."""
    assert twisted.__version__.startswith("26.")


@pytest_twisted.inlineCallbacks
def test_server_and_client_bind_and_submit():
    """An smpp.twisted3 client binds as transceiver to an smpp.twisted3
    server on Twisted 26 and gets a submit_sm_resp with the message id."""
    received = []

    def on_submit(system_id, *args):
        received.append(args[-1] if args else None)
        return DataHandlerResponse(
            status=pdu_types.CommandStatus.ESME_ROK, message_id="42")

    checker = InMemoryUsernamePasswordDatabaseDontUse()
    checker.addUser("carrierA", "secret")
    server_config = SMPPServerConfig(
        msgHandler=on_submit, systems={"carrierA": {"max_bindings": 2}})
    factory = SMPPServerFactory(server_config, Portal(Realm(), [checker]))
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = None
    try:
        config = SMPPClientConfig(host="127.0.0.1",
                                  port=port.getHost().port,
                                  username="carrierA", password="secret")
        client = yield SMPPClientTransceiver(config, lambda *a: None) \
            .connectAndBind()
        txn = yield client.sendDataRequest(SubmitSM(
            source_addr="AsiaCell", destination_addr="111222333",
            short_message=b"hello"))
        resp = txn.response
        assert resp.status == pdu_types.CommandStatus.ESME_ROK
        assert resp.params["message_id"] == b"42" or \
            resp.params["message_id"] == "42"
        assert len(received) == 1
    finally:
        if client is not None:
            yield client.unbindAndDisconnect()
        yield port.stopListening()
