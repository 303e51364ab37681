"""Delivery lanes (L{appliance.messaging.lanes}) and the core's use of
them: a slow or dead destination delays only its own messages."""
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from appliance.application import memory_storage
from appliance.messaging.core import MessagingCore
from appliance.messaging.lanes import Lanes
from appliance.messaging.vocabulary import Submission
from tests.messaging.test_core import FakeAgent


def test_lane_slots_and_queue():
    """A lane takes `limit` deliveries; the next ones wait in order and
    take the slot given back; past queue_limit waiting, park says no."""
    lanes = Lanes(limit=2, queue_limit=2)
    assert lanes.enter("a") and lanes.enter("a")
    assert not lanes.enter("a")
    assert lanes.enter("b")                 # another lane is free
    assert lanes.park("a", 1, "m1") and lanes.park("a", 2, "m2")
    assert not lanes.park("a", 3, "m3")
    assert lanes.holds(1) and lanes.waiting_count() == 2
    assert lanes.leave("a") == "m1" and not lanes.holds(1)
    assert lanes.leave("a") == "m2"
    assert lanes.leave("a") is None and lanes.leave("a") is None
    assert lanes.busy == {"b": 1} and lanes.waiting == {}


def test_total_waiting_bounded():
    """All lanes together hold at most total_waiting messages."""
    lanes = Lanes(limit=0, queue_limit=10, total_waiting=3)
    assert all(lanes.park(k, k, k) for k in "abc")
    assert not lanes.park("d", "d", "d")


class CoreLaneTests(SynchronousTestCase):
    """The core with lanes of 2 per destination on a fake clock."""

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(1_000_000)
        self.storage = memory_storage(reactor=self.clock, batch_delay=0.001)
        self.addCleanup(self.storage.close)
        with self.storage.transaction(note="setup") as root:
            root.add_product("P")
            root.products["P"].messaging = True
            root.add_customer("C")
            for user in ("slow", "quick"):
                root.add_account("C", user)
                root.add_did(user, {"slow": "111", "quick": "222"}[user])
                root.set_account_product(user, "P")
        self.core = MessagingCore(self.storage, self.clock,
                                  local_transport="sip",
                                  retry_schedule=(30,), validity=600,
                                  lanes=Lanes(limit=2, queue_limit=1))
        self.agent = FakeAgent()
        self.core.set_agent("sip", self.agent)
        self.core.startService()
        self.addCleanup(self.core.stopService)

    def submit(self, to):
        d = self.core.submit(Submission("carrier", "C1", "Sender", to, "x"))
        self.clock.advance(0.001)
        self.clock.advance(0)
        return self.successResultOf(d)

    def delivering(self):
        return [v.account for v, _ in self.agent.calls]

    def test_slow_destination_delays_only_its_own(self):
        """With the slow app's lane full (2 unanswered), its third message
        waits in the lane and its fourth is scheduled for a later attempt;
        a message to another app is handed to the agent at once.  When the
        slow app answers, its waiting message takes the slot."""
        ids = [self.submit("111") for _ in range(4)]
        self.assertEqual(self.delivering(), ["slow", "slow"])
        self.assertTrue(self.core.lanes.holds(ids[2]))
        self.clock.advance(0.01)
        later = self.storage.messages().get(ids[3])
        self.assertEqual(later.state, "delivering")
        self.assertIsNotNone(later.next_attempt)
        self.assertIn("too many", later.error)
        self.submit("222")
        self.assertEqual(self.delivering(), ["slow", "slow", "quick"])
        self.agent.answer("delivered")          # the first slow one
        self.clock.advance(0.01)
        self.assertEqual(self.delivering(), ["slow", "quick", "slow"])
        self.assertEqual(self.agent.calls[-1][0].id, ids[2])
        self.assertFalse(self.core.lanes.holds(ids[2]))
        self.assertEqual(self.core.statistics()["waiting_for_destination"],
                         0)
