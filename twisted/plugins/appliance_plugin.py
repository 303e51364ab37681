"""The C{twistd appliance} plugin: the messaging node."""
from twisted.application.service import ServiceMaker

Appliance = ServiceMaker(
    "Appliance messaging node", "appliance.tap",
    "Messaging node: SMPP, SIP MESSAGE, HTTP API, M3UA/MAP; SSH shell.",
    "appliance")
