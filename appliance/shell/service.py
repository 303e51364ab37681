"""
The shell as a service of the node: the SSH listeners and, if enabled, the
debug manhole (a Python REPL over SSH, bootstrap admin keys only).

L{make_service} is what C{appliance.application} calls for C{[shell]}.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.conch import manhole, manhole_ssh
from twisted.conch.ssh import keys
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.logger import Logger

from appliance.listen import gather, listen_all, stop_all
from appliance.shell.live import LiveState
from appliance.shell.session import AuditLog
from appliance.shell.ssh import (
    BOOTSTRAP_OPERATOR, OperatorIdentity, OperatorKeyChecker, ShellContext,
    load_host_key, make_factory, read_authorized_keys)


class _BootstrapKeyChecker(OperatorKeyChecker):
    """Only the bootstrap C{admin_keys} file, never database operators."""

    def _identity(self, name, blob):
        if name == BOOTSTRAP_OPERATOR and any(
                k.blob() == blob for k in read_authorized_keys(self.admin_keys)):
            return OperatorIdentity(name, "admin")
        return None


def _manhole_factory(host_key: keys.Key, admin_keys: Path | None,
                     namespace: dict) -> manhole_ssh.ConchFactory:
    realm = manhole_ssh.TerminalRealm()

    def chained(*a, **kw):
        from twisted.conch.insults import insults
        return insults.ServerProtocol(manhole.ColoredManhole, namespace)
    realm.chainedProtocolFactory = chained
    factory = manhole_ssh.ConchFactory(
        Portal(realm, [_BootstrapKeyChecker(None, admin_keys)]))
    factory.privateKeys = {b"ssh-ed25519": host_key}
    factory.publicKeys = {b"ssh-ed25519": host_key.public()}
    return factory


class ShellService(Service):
    """
    Listens for SSH operators (and the manhole, if enabled) on the
    configured endpoints.

    @ivar ready: fires when every listener is bound (ports recorded in
        C{node.ports} under C{shell} and C{manhole}).
    @ivar factory: the SSH factory (built at start).
    @ivar ports: the listening ports.
    """

    log = Logger()

    def __init__(self, section: Any, node: Any, live: Any = None) -> None:
        """
        @param section: the C{[shell]} section (C{ShellSection}).
        @param node: the C{NodeContext} (reactor, storage, ports, config).
        @param live: the L{appliance.shell.live.LiveState} live commands
            ask (default: an empty one).
        """
        self.section = section
        self.node = node
        self.live = live if live is not None else LiveState()
        self.ready: defer.Deferred = defer.Deferred()
        self.factory: Any = None
        self.ports: list[Any] = []
        config = getattr(node, "config", None)
        self.hostname = getattr(getattr(config, "node", None), "name",
                                "appliance")
        self.audit = AuditLog(Path(section.audit_log),
                              now=getattr(node.reactor, "seconds", None))

    def _realm(self) -> str:
        config = getattr(self.node, "config", None)
        return config.sip.realm if config is not None else self.hostname

    def startService(self) -> None:
        """Load or create the host key and listen on every endpoint."""
        super().startService()
        host_key = load_host_key(Path(self.section.host_key))
        context = ShellContext(self.node.storage, live=self.live,
                               audit=self.audit, hostname=self.hostname,
                               realm=self._realm(),
                               clock=getattr(self.node, "reactor", None))
        self.factory = make_factory(context, host_key,
                                    self.section.admin_keys)
        waits = [listen_all(self.node.reactor, "shell", self.section.listen,
                            self.factory, ports=self.node.ports,
                            into=self.ports)]
        if getattr(self.section, "manhole", False):
            namespace = {"node": self.node, "storage": self.node.storage,
                         "live": self.live}
            mfactory = _manhole_factory(host_key, self.section.admin_keys,
                                        namespace)
            waits.append(listen_all(
                self.node.reactor, "manhole", self.section.manhole_listen,
                mfactory, ports=self.node.ports, into=self.ports))
        d = gather(waits)
        d.addCallbacks(lambda _: self.ready.callback(None), self.ready.errback)

    def stopService(self) -> defer.Deferred:
        """Stop listening; the Deferred fires when every port is closed."""
        super().stopService()
        return stop_all(self.ports)


def make_service(section: Any, node: Any, live: Any = None) -> ShellService:
    """
    @param section: the C{[shell]} section.
    @param node: the C{NodeContext}.
    @param live: the L{appliance.shell.live.LiveState}.
    @return: the unstarted shell service.
    """
    return ShellService(section, node, live)
