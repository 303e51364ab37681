"""
SMS text: the GSM 03.38 and UCS-2 codecs, user data headers and splitting.

A neutral package, pure (no Twisted, no ZODB), shared by SMPP, the SIGTRAN
TPDUs and the HTTP API, so that none of them imports another's internals.
"""
