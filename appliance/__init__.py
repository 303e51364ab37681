"""The appliance: a carrier-grade messaging node on Twisted.

One C{twistd appliance} process hosts SMPP, SIP and SIGTRAN, an in-process
ZODB of customers, accounts, DIDs, carriers, connections, service policies
and tariffs, and an SSH configuration shell.
"""
__version__ = "0.1.0"
