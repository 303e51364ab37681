"""The core's delivery lanes (L{appliance.messaging.lanes} as the core
uses them): a slot passes on when the agent has its outcome."""
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from appliance.application import memory_storage
from appliance.messaging.core import MessagingCore
from appliance.messaging.lanes import Lanes
from appliance.messaging.vocabulary import MessageView, Outcome, Submission
from tests.messaging.test_core import FakeAgent


class AtOnce:
    """An agent whose every delivery has its outcome at once."""

    def __init__(self):
        self.delivered = []

    def deliver(self, view):
        self.delivered.append(view.id)
        return defer.succeed(Outcome("delivered"))


class LaneTests(SynchronousTestCase):
    """One destination, one slot."""

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(1_000_000)
        self.storage = memory_storage(reactor=self.clock, batch_delay=0.001)
        self.addCleanup(self.storage.close)
        with self.storage.transaction(note="setup") as root:
            root.add_product("Chat")
            root.products["Chat"].messaging = True
            root.add_customer("John Doe")
            root.add_account("John Doe", "111222333")
            root.add_did("111222333", "111222333")
            root.set_account_product("111222333", "Chat")
        self.core = MessagingCore(self.storage, self.clock,
                                  local_transport="sip", validity=600,
                                  lanes=Lanes(limit=1, queue_limit=10_000))
        self.core.startService()
        self.addCleanup(self.core.stopService)

    def accept(self, n):
        ds = [self.core.submit(Submission("carrier", "C", "AsiaCell",
                                          "111222333", f"m{i}"))
              for i in range(n)]
        self.clock.advance(0.001)       # the accept commit
        ids = [self.successResultOf(d) for d in ds]
        self.clock.advance(0)           # dispatch
        return ids

    def test_slot_passes_before_the_outcome_commits(self):
        """The lane's next message goes to the agent as soon as the one
        before has its outcome, not after that outcome's commit; the first
        is not dispatched again while its outcome is being written."""
        agent = FakeAgent()
        self.core.set_agent("sip", agent)
        first, second = self.accept(2)
        assert [v.id for v, _ in agent.calls] == [first]
        agent.answer("delivered")
        assert [v.id for v, _ in agent.calls] == [second]
        assert self.storage.messages().get(first).state == "accepted"
        assert first in self.core.in_flight
        view = self.storage.messages().get(first)
        assert self.core.dispatch(MessageView.of(view)) is None
        self.clock.advance(0.001)       # the outcome's commit
        assert self.storage.messages().get(first).state == "delivered"
        assert first not in self.core.in_flight
        agent.answer("delivered")
        self.clock.advance(0.001)
        assert self.storage.messages().get(second).state == "delivered"
        assert self.core.lanes.busy == {}

    def test_agent_answering_at_once_does_not_recurse(self):
        """A long lane queue behind an agent that answers at once is
        delivered in order without recursing once per message."""
        agent = AtOnce()
        self.core.set_agent("sip", agent)
        ids = self.accept(3000)
        assert agent.delivered == ids
        self.clock.advance(0.01)
        counts = self.storage.messages().counts()
        assert counts["delivered"] == 3000
        assert self.core.lanes.busy == {} and not self.core.in_flight
