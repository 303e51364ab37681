"""SIGTRAN: M3UA (RFC 4666) and SCCP connectionless (Q.713) for the node."""
