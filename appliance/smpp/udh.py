"""
Kept for compatibility: the codecs moved to L{appliance.sms.udh}.

Branches in flight may still import this path; new code imports
C{appliance.sms.udh}.
"""
from appliance.sms.udh import *  # noqa: F401,F403
from appliance.sms.udh import __all__  # noqa: F401
