# -*- test-case-name: tests.test_application -*-
"""
The node's service tree root and what every service is handed.

L{NodeService} starts its children in order (storage first) and stops them
one at a time in reverse order, waiting for each: network services close
and drain before the storage commits what is queued and closes the
database.  Twisted's C{MultiService} stops children concurrently, which
would let the database close under a service still writing.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application.service import IService, MultiService
from twisted.internet import defer
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized

from appliance.config import NodeConfig
from appliance.store.generations import GenerationError

#: Exit status of a node that refuses its database as newer than its code:
#: EX_CONFIG, which appliance.service names in RestartPreventExitStatus=,
#: since restarting the same software cannot help.
EXIT_DATABASE_NEWER = 78


class PortMap:
    """
    The ports the node's listeners really bound, written to
    C{<data_dir>/ports.json} once every listener is up, so tests and tools
    find ports chosen by the kernel (C{port=0}).
    """

    def __init__(self, path: Path):
        """@param path: where to write the JSON."""
        self.path = path
        self.ports: dict[str, list[int]] = {}

    def record(self, key: str, port: int) -> None:
        """Note that a listener of kind C{key} bound C{port}."""
        self.ports.setdefault(key, []).append(port)

    def write(self) -> None:
        """Write the file atomically (temporary file, then rename)."""
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.ports, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def remove(self) -> None:
        """Remove the file (the node is stopping)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


@dataclass
class NodeContext:
    """
    What every service is handed besides its own collaborators: the
    reactor, the validated configuration, the storage and the port map.
    Other services come through constructors (C{appliance.application}).
    """
    reactor: Any
    config: NodeConfig
    storage: Any
    ports: PortMap


class NodeService(MultiService):
    """
    The root service.  Children start in the order added; stopping waits
    for each child in reverse order.  After all children started, it waits
    for their C{ready} Deferreds (listeners bound) and writes C{ports.json}.

    @ivar ready: fires once every listener is bound and C{ports.json}
        is written.
    """

    log = Logger()
    #: What the shell shows of this node (set by C{appliance.application}).
    live: Any = None

    def __init__(self, context: NodeContext,
                 log_observer: ILogObserver | None = None):
        """
        @param context: the node context handed to services.
        @param log_observer: set on the twistd application as its
            C{ILogObserver}, so the node's own log format and level apply.
        """
        super().__init__()
        self.context = context
        self.ready: defer.Deferred = defer.Deferred()
        self._log_observer = log_observer

    def setServiceParent(self, parent: Any) -> None:
        """
        Attach to the twistd application, and hand it our log observer
        (twistd asks the application for one before it starts logging).
        """
        if self._log_observer is not None and isinstance(parent,
                                                         Componentized):
            parent.setComponent(ILogObserver, self._log_observer)
        super().setServiceParent(parent)

    def startService(self) -> None:
        """
        Start the children in order; when all are listening, write
        C{ports.json}.  If a child cannot start, stop the node.
        """
        try:
            super().startService()
        except GenerationError as e:
            self.log.error(
                "refusing to start: {reason}. The database was not changed.",
                reason=str(e).rstrip("."))
            self._abort(EXIT_DATABASE_NEWER)
            return
        except Exception:
            # Broad: whatever keeps a child from starting stops the node
            # (exit status 1), logged with its traceback.
            self.log.failure("start-up failed; stopping")
            self._abort(1)
            return
        waits = [getattr(s, "ready", None) for s in self]
        d = defer.gatherResults([w for w in waits if w is not None],
                                consumeErrors=True)
        d.addCallback(self._up)
        d.addErrback(self._failed)

    def _up(self, _: Any) -> None:
        self.context.ports.write()
        self.log.info("node {name} ready: {ports}",
                      name=self.context.config.node.name,
                      ports=json.dumps(self.context.ports.ports,
                                       sort_keys=True))
        self.ready.callback(self.context.ports.ports)

    def _failed(self, failure: Any) -> None:
        failure = getattr(failure.value, "subFailure", failure)
        self.log.failure("a listener could not start; stopping", failure)
        self.ready.errback(failure)
        self._abort(1)

    def _abort(self, code: int) -> None:
        """
        Stop the node and make the process exit with C{code}: twistd has no
        exit status of its own, so once shutdown is complete (services
        stopped, database closed) the process ends with C{os._exit}.
        """
        reactor = self.context.reactor

        def leave() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        reactor.addSystemEventTrigger("after", "shutdown", leave)
        if reactor.running:
            reactor.stop()
        else:
            reactor.callWhenRunning(reactor.stop)

    @defer.inlineCallbacks
    def stopService(self):
        """Stop the children one at a time, last started first."""
        self.running = 0
        for child in reversed(list(self)):
            if not child.running:
                continue
            try:
                yield defer.maybeDeferred(child.stopService)
            except Exception:
                # Broad: the children before it (the storage last) still
                # stop and close.
                self.log.failure("stopping {name} failed",
                                 name=child.name)
        self.context.ports.remove()
        self.log.info("node {name} stopped", name=self.context.config.node.name)


def child(parent: MultiService, service: IService, name: str) -> IService:
    """Name C{service} and add it under C{parent}; return it."""
    service.setName(name)
    service.setServiceParent(parent)
    return service
