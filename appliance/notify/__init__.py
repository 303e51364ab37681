"""
The missed-call notification service (seed 003): "Who Called" to the
called party and "Notify Me" to the caller, triggered by a SIP INVITE with
Diversion or an ISUP IAM, with the HLR asked where the called party is.
"""
