"""
Kept for compatibility: the codecs moved to L{appliance.sms.segment}.

Branches in flight may still import this path; new code imports
C{appliance.sms.segment}.
"""
from appliance.sms.segment import *  # noqa: F401,F403
from appliance.sms.segment import __all__  # noqa: F401
