"""
sip domain: our own SIP stack on Twisted.

Pure layers: L{appliance.sip.uri} (sip/sips/tel URIs), L{appliance.sip.headers}
(Address, Via, CSeq, header names), L{appliance.sip.headermap} (header lines),
L{appliance.sip.message} (parse/serialize, bytes bodies, 400 building),
L{appliance.sip.framing} (TCP/TLS framing, RFC 5626 keep-alives),
L{appliance.sip.digest} (RFC 7616/8760 digest, stateless nonces). On the
clock: L{appliance.sip.transaction} (RFC 3261 section 17). Twisted adapters:
L{appliance.sip.protocol}. Interfaces: L{appliance.sip.interfaces}.
"""
