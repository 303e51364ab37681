"""
Kept for compatibility: the codecs moved to L{appliance.sms.text}.

Branches in flight may still import this path; new code imports
C{appliance.sms.text}.
"""
from appliance.sms.text import *  # noqa: F401,F403
from appliance.sms.text import __all__  # noqa: F401
