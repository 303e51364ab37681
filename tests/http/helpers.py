"""A messaging core with billing and a fake SMPP agent, for the HTTP
API's unit tests, provisioned with tenant acme and policies 351%/44%."""
from __future__ import annotations

from appliance.billing.service import BillingService
from appliance.http.callbacks import queue_hook
from appliance.http import model as http_model
from appliance.http.model import http_of
from appliance.messaging.core import MessagingCore
from appliance.shell.script import run_script
from tests.billing.helpers import FakeAgent

SCRIPT = '''configure terminal
 tariff T
  currency USD
  prefix 351 0.01
  prefix 44 0.02
 exit
 tenant acme
  password s3cret-pw
  tariff T
  dlr-secret 0123456789abcdef0123
 exit
 connection carrier1
  host 127.0.0.1
 exit
 connection carrier2
  host 127.0.0.1
 exit
 service-policy pt
  recipient-pattern 351%
  transport smpp connection carrier1
  fallback-connection carrier2
 exit
 service-policy uk
  recipient-pattern 44%
  origin tenant acme
  transport smpp connection carrier2
 exit
end
'''


class Core:
    """The core, billing and agent on C{storage} and C{clock}."""

    def __init__(self, storage, clock, script: str = SCRIPT):
        assert run_script(storage, script).ok
        self.storage, self.clock = storage, clock
        self.core = MessagingCore(storage, clock, local_transport="sip",
                                  validity=600)
        self.agent = FakeAgent()
        self.core.set_agent("smpp", self.agent)
        self.billing = BillingService(storage, clock, tenants=http_model.tenant_of)
        self.core.set_charger(self.billing.charger)
        self.billing.startService()
        self.core.startService()
        self.kicks = 0
        self.core.add_transaction_hook(queue_hook(clock, self._kick))

    def _kick(self):
        self.kicks += 1

    def tenant(self, name: str = "acme"):
        return http_of(self.storage.root()).tenants[name]

    def commit(self):
        """Run the queued batched commits (and the dispatch timers)."""
        self.storage.flush()
        self.clock.advance(0)
        self.storage.flush()

    def stop(self):
        self.core.stopService()
        self.billing.stopService()
