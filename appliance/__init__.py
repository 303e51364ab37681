"""The appliance: a messaging node for carriers and apps, on Twisted.

One C{twistd appliance} process hosts an SMPP 3.4 SMSC and client
connections, a SIP registrar and MESSAGE endpoint, the tenants' HTTP send
API, M3UA/SCCP with TCAP/MAP for SMS, billing, an in-process ZODB of
customers, accounts, DIDs, carriers, connections, service policies and
tariffs, and an SSH configuration shell.
"""
__version__ = "0.1.0"
