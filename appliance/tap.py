# -*- test-case-name: tests.test_tap -*-
"""
C{twistd appliance}: command-line options and the service maker.  The
only module that imports the global reactor.
"""
from __future__ import annotations

import gc
import sys
from typing import Any

from twisted.python import usage

from appliance import __version__
from appliance.config import ConfigError, load


class Options(usage.Options):
    """
    C{twistd [-n] appliance --config PATH}.  The configuration is read and
    validated here, before anything binds: any problem is reported with the
    key it concerns and twistd exits non-zero.
    """

    synopsis = "[options]"
    longdesc = ("Run the messaging node (SMPP, SIP, SIGTRAN, SSH shell) "
                "with the configuration file PATH.")
    optParameters = [
        ["config", "c", "etc/appliance.conf", "The node configuration file."],
    ]

    def opt_version(self) -> None:
        """Print the node version and exit."""
        print(f"appliance {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        """Load and validate the configuration file."""
        try:
            self["node_config"] = load(self["config"])
        except ConfigError as e:
            raise usage.UsageError(
                f"configuration {self['config']}:\n  "
                + "\n  ".join(e.errors)) from None


#: The cyclic collector's thresholds once the node is up (CPython's
#: default is 700, 10, 10).  Under an HTTP or SMPP load the default ran
#: the young generation some 30 times a second and a full collection of
#: the database caches every few seconds, some 8 % of the node's CPU
#: (measured with gc.callbacks under wrk); a larger first threshold lets
#: most per-request objects die by reference count before a collection
#: looks at them.
GC_THRESHOLDS = (10_000, 10, 10)


def settle_gc(ports: Any = None) -> Any:
    """
    Once the node is up: move what start-up made (modules, the shell's
    grammar, configuration snapshots) out of the collector's reach
    (C{gc.freeze}) and collect less often (L{GC_THRESHOLDS}).

    @return: C{ports}, so it can sit in the node's C{ready} chain.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    return ports


def makeService(options: Options):
    """Wire the node's service tree (nothing starts or binds here); the
    collector is settled once it is up (L{settle_gc})."""
    from twisted.internet import reactor

    from appliance.application import make_node
    node = make_node(options["node_config"], reactor)
    node.ready.addCallback(settle_gc)
    return node
