# -*- test-case-name: tests.test_tap -*-
"""
C{twistd appliance}: command-line options and the service maker.  The
only module that imports the global reactor.
"""
from __future__ import annotations

import sys

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


def makeService(options: Options):
    """Wire the node's service tree (nothing starts or binds here)."""
    from twisted.internet import reactor

    from appliance.application import make_node
    return make_node(options["node_config"], reactor)
