"""The C{twistd appliance} plugin: the messaging node."""
from twisted.application.service import ServiceMaker

Appliance = ServiceMaker(
    "Appliance messaging node", "appliance.tap",
    "Carrier-grade SMS/SIP/SIGTRAN messaging node.", "appliance")
