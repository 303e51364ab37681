"""Tests for L{appliance.messaging.core}: accept, route, deliver, retry."""
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from appliance.application import memory_storage
from appliance.messaging.core import MessagingCore, retry_delay
from appliance.messaging.vocabulary import MessageView, NoRoute, Outcome, Submission
from appliance.messaging.interfaces import (IDeliveryAgent, IMessagingCore,
                                            IStateWriter)
from appliance.model.errors import ModelError
from appliance.store.database import Storage


@implementer(IDeliveryAgent)
class FakeAgent:
    """Records deliveries; each returns a Deferred the test fires."""

    def __init__(self):
        self.calls: list[tuple[MessageView, defer.Deferred]] = []

    def deliver(self, message):
        d = defer.Deferred()
        self.calls.append((message, d))
        return d

    def answer(self, kind, reason=""):
        view, d = self.calls.pop(0)
        d.callback(Outcome(kind, reason))
        return view


class CoreTests(SynchronousTestCase):
    """The core on an in-memory database and a fake clock."""

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.clock.advance(1_000_000)
        self.storage = memory_storage(reactor=self.clock,
                                           batch_delay=0.001)
        self.addCleanup(self.storage.close)
        with self.storage.transaction(note="setup") as root:
            root.add_product("Call & Chat")
            root.products["Call & Chat"].messaging = True
            root.add_product("Voice only")
            root.add_customer("John Doe")
            root.add_account("John Doe", "111222333")
            root.add_did("111222333", "111222333")
            root.set_account_product("111222333", "Call & Chat")
            root.add_account("John Doe", "1111")
            root.add_account("John Doe", "4444")
            root.set_account_product("4444", "Voice only")
        self.core = MessagingCore(self.storage, self.clock,
                                  local_transport="sip",
                                  retry_schedule=(30, 120), validity=600,
                                  scan_interval=1)
        self.agent = FakeAgent()
        self.core.set_agent("sip", self.agent)
        self.core.startService()
        self.addCleanup(self.core.stopService)
        self.finals = []
        self.core.add_outcome_listener(
            lambda view, state: self.finals.append((view.id, state)))

    def submit(self, to="111222333", text="hello"):
        d = self.core.submit(Submission("carrier", "Carrier1", "AsiaCell",
                                        to, text))
        self.clock.advance(0.001)
        return self.successResultOf(d)

    def stored(self, id):
        return self.storage.messages().get(id)

    def test_interfaces(self):
        """The core and the fake agent provide their interfaces."""
        verifyObject(IMessagingCore, self.core)
        verifyObject(IDeliveryAgent, self.agent)

    def test_accept_after_commit_then_deliver(self):
        """submit() fires the id only after the commit; delivery follows,
        and a delivered outcome is recorded and heard by listeners."""
        d = self.core.submit(Submission("carrier", "Carrier1", "AsiaCell",
                                        "111222333", "promo"))
        self.assertNoResult(d)
        self.assertEqual(self.storage.messages().counts()["accepted"], 0)
        self.clock.advance(0.001)
        id = self.successResultOf(d)
        self.assertEqual(self.stored(id).state, "accepted")
        self.assertEqual(self.stored(id).account, "111222333")
        self.clock.advance(0)
        view = self.agent.answer("delivered")
        self.assertEqual((view.id, view.text, view.sender),
                         (id, "promo", "AsiaCell"))
        self.assertEqual(self.finals, [])
        self.clock.advance(0.001)
        self.assertEqual(self.stored(id).state, "delivered")
        self.assertEqual(self.finals, [(id, "delivered")])

    def test_route_by_username(self):
        """An account without a DID is reached by its username."""
        id = self.submit(to="1111")
        self.assertEqual(self.stored(id).account, "1111")

    def test_no_route_stores_nothing(self):
        """An unknown recipient raises NoRoute and nothing is stored."""
        with self.assertRaises(NoRoute):
            self.core.submit(Submission("account", "1111", "1111",
                                        "999888", "x"))
        self.assertEqual(sum(self.storage.messages().counts().values()), 0)

    def test_messaging_disabled_product(self):
        """An account whose product has messaging off is not a route."""
        with self.assertRaises(NoRoute):
            self.core.submit(Submission("account", "1111", "1111",
                                        "4444", "x"))

    def test_disabled_account(self):
        """A disabled account is not a route."""
        with self.storage.transaction() as root:
            root.accounts["1111"].enabled = False
        with self.assertRaises(NoRoute):
            self.core.submit(Submission("account", "x", "x", "1111", "x"))

    def test_bad_recipient(self):
        """A recipient that is no number is a ModelError, nothing stored."""
        with self.assertRaises(ModelError):
            self.core.submit(Submission("account", "1111", "1111",
                                        "john", "x"))

    def test_policy_without_agent_is_no_route(self):
        """A policy routing to SMPP with no SMPP agent is refused."""
        with self.storage.transaction() as root:
            root.add_connection("env4")
            root.add_policy("to-env4")
            root.policies["to-env4"].recipient_pattern = "222%"
            root.policies["to-env4"].transport = "smpp"
            root.set_policy_connections("to-env4", ("env4",))
        with self.assertRaises(NoRoute) as e:
            self.core.submit(Submission("account", "1111", "1111",
                                        "2222123", "x"))
        self.assertIn("to-env4", str(e.exception))

    def test_retry_schedule_then_expiry(self):
        """Temporary failures are retried by the schedule (last value
        repeating) until the validity ends, then the message expires."""
        id = self.submit()
        self.clock.advance(0)
        self.agent.answer("retry", "480 Temporarily Unavailable")
        self.clock.advance(0.001)
        m = self.stored(id)
        self.assertEqual((m.state, m.attempts), ("delivering", 1))
        self.assertEqual(m.next_attempt, self.clock.seconds() - 0.001 + 30)
        self.clock.advance(29)
        self.assertEqual(self.agent.calls, [])
        self.clock.advance(1)
        self.agent.answer("retry", "408 Request Timeout")
        self.clock.advance(0.001)
        self.assertEqual(self.stored(id).attempts, 2)
        for _ in range(120):
            self.clock.advance(1)
        self.agent.answer("retry", "503")
        for _ in range(700):
            self.clock.advance(1)
            while self.agent.calls:
                self.agent.answer("retry", "503")
        self.assertEqual(self.stored(id).state, "expired")
        self.assertEqual(self.finals, [(id, "expired")])

    def test_failed_is_final(self):
        """A permanent failure is final, with its reason."""
        id = self.submit()
        self.clock.advance(0)
        self.agent.answer("failed", "415 Unsupported Media Type")
        self.clock.advance(0.001)
        m = self.stored(id)
        self.assertEqual((m.state, m.error),
                         ("failed", "415 Unsupported Media Type"))
        self.assertEqual(self.finals, [(id, "failed")])

    def test_offline_waits_for_register_in_order(self):
        """Messages for an offline app wait, and a REGISTER delivers them
        one after another in acceptance order."""
        ids = [self.submit(text=f"m{i}") for i in range(3)]
        self.clock.advance(0)
        for _ in ids:
            self.agent.answer("offline")
        self.clock.advance(0.001)
        self.assertEqual([self.stored(i).state for i in ids],
                         ["accepted"] * 3)
        self.clock.advance(100)
        self.assertEqual(self.agent.calls, [])
        self.core.account_online("111222333")
        self.assertEqual([v.text for v, _ in self.agent.calls], ["m0"])
        self.agent.answer("delivered")
        self.clock.advance(0.001)
        self.assertEqual([v.text for v, _ in self.agent.calls], ["m1"])
        self.agent.answer("delivered")
        self.clock.advance(0.001)
        self.agent.answer("delivered")
        self.clock.advance(0.001)
        self.assertEqual([self.stored(i).state for i in ids],
                         ["delivered"] * 3)

    def test_offline_expires(self):
        """A message whose app never registers expires at its validity."""
        id = self.submit()
        self.clock.advance(0)
        self.agent.answer("offline")
        for _ in range(601):
            self.clock.advance(1)
        self.assertEqual(self.stored(id).state, "expired")

    def test_agent_error_is_retry(self):
        """An agent that raises does not lose the message: it is retried;
        the error is logged with its traceback and counted
        (C{agent_errors} in show statistics)."""
        class Broken:
            def deliver(self, view):
                raise RuntimeError("bug")
        self.core.set_agent("sip", Broken())
        id = self.submit()
        self.clock.advance(0)
        self.clock.advance(0.001)
        self.assertEqual(self.stored(id).state, "delivering")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.core.statistics()["agent_errors"], 1)

    def test_listener_error_counted_others_told(self):
        """An outcome listener that raises is logged and counted
        (C{listener_errors}); the listeners after it still hear of the
        final state."""
        heard = []

        def broken(view, state):
            raise RuntimeError("bug")
        self.core.add_outcome_listener(broken)
        self.core.add_outcome_listener(
            lambda view, state: heard.append(state))
        id = self.submit()
        self.clock.advance(0)
        self.agent.answer("delivered")
        self.clock.advance(0.001)
        self.assertEqual(self.stored(id).state, "delivered")
        self.assertEqual(heard, ["delivered"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.core.statistics()["listener_errors"], 1)

    def test_resume_after_restart(self):
        """Messages accepted but never tried are dispatched at start."""
        id = self.submit()
        self.agent.calls.clear()
        self.core.in_flight.clear()
        core = MessagingCore(self.storage, self.clock, local_transport="sip")
        agent = FakeAgent()
        core.set_agent("sip", agent)
        core.startService()
        self.addCleanup(core.stopService)
        self.clock.advance(0)
        self.assertEqual([v.id for v, _ in agent.calls], [id])

    def test_resume_in_slices_skips_the_scheduled(self):
        """At start only messages without an outcome are dispatched again,
        read a slice (scan_limit) per reactor turn; messages waiting for an
        offline app (scheduled) are not read."""
        ids = [self.submit() for _ in range(5)]
        self.agent.calls.clear()
        self.core.in_flight.clear()
        waiting = self.submit()
        self.agent.answer("offline")
        self.clock.advance(0.001)
        self.assertIsNotNone(self.stored(waiting).next_attempt)
        core = MessagingCore(self.storage, self.clock, local_transport="sip",
                             scan_limit=2)
        agent = FakeAgent()
        core.set_agent("sip", agent)
        from appliance.messaging.store import MessageStore
        slices = []
        real = MessageStore.unscheduled_ids

        def unscheduled_ids(store, after=0, limit=1000):
            slices.append(real(store, after, limit))
            return slices[-1]
        self.patch(MessageStore, "unscheduled_ids", unscheduled_ids)
        core.startService()
        self.addCleanup(core.stopService)
        self.clock.advance(0)
        self.assertEqual(slices, [ids[:2], ids[2:4], ids[4:]])
        self.assertEqual([v.id for v, _ in agent.calls], ids)

    def test_ids_unique_across_restarts(self):
        """A new core takes a new epoch: its ids never repeat."""
        first = self.submit()
        core = MessagingCore(self.storage, self.clock, local_transport="sip")
        core.set_agent("sip", FakeAgent())
        core.startService()
        self.addCleanup(core.stopService)
        d = core.submit(Submission("carrier", "c", "s", "111222333", "t"))
        self.clock.advance(0.001)
        self.assertGreater(self.successResultOf(d) >> 32, first >> 32)

    def test_retry_delay(self):
        """The schedule is followed, its last value repeating."""
        self.assertEqual([retry_delay((30, 120, 600), n) for n in
                          range(1, 6)], [30, 120, 600, 600, 600])


class ForwardingTests(CoreTests):
    """Messages handed to another node wait for its receipt."""

    def forward(self, remote_id="0000A1F"):
        id = self.submit()
        self.clock.advance(0)
        view, d = self.agent.calls.pop(0)
        d.callback(Outcome("forwarded", "submit_sm_resp OK",
                           remote_id=remote_id, connection="env4"))
        self.clock.advance(0.001)
        return id

    def test_forwarded_waits_for_receipt(self):
        """A forwarded message stays delivering until its receipt, which
        is matched in hex or decimal, with or without leading zeros."""
        for given, receipt in (("0000A1F", "a1f"), ("a1f", "2591"),
                               ("2591", "A1F"), ("00042", "42")):
            id = self.forward(given)
            self.assertEqual(self.stored(id).state, "delivering")
            d = self.core.receipt_received("env4", receipt, "delivered")
            self.clock.advance(0.001)
            self.assertTrue(self.successResultOf(d), (given, receipt))
            self.assertEqual(self.stored(id).state, "delivered")
            self.assertIn((id, "delivered"), self.finals)

    def test_receipt_wrong_connection_or_unknown(self):
        """A receipt from another connection, or for no message, matches
        nothing and changes nothing."""
        id = self.forward("77")
        self.assertFalse(self.successResultOf(
            self.core.receipt_received("env9", "77", "delivered")))
        self.assertFalse(self.successResultOf(
            self.core.receipt_received("env4", "78", "delivered")))
        self.assertEqual(self.stored(id).state, "delivering")

    def test_failed_and_expired_receipts(self):
        """UNDELIV and EXPIRED receipts give failed and expired."""
        a, b = self.forward("1"), self.forward("2")
        self.core.receipt_received("env4", "1", "failed", "UNDELIV")
        self.core.receipt_received("env4", "2", "expired")
        self.clock.advance(0.001)
        self.assertEqual((self.stored(a).state, self.stored(a).error),
                         ("failed", "UNDELIV"))
        self.assertEqual(self.stored(b).state, "expired")

    def test_no_receipt_expires_at_validity(self):
        """A forwarded message with no receipt expires at its validity."""
        id = self.forward("5")
        for _ in range(601):
            self.clock.advance(1)
        self.assertEqual(self.stored(id).state, "expired")
        self.assertFalse(self.successResultOf(
            self.core.receipt_received("env4", "5", "delivered")))

    def test_loop_refused(self):
        """A message that passed too many nodes is refused as a loop."""
        from appliance.messaging.core import MAX_HOPS
        with self.assertRaises(NoRoute) as e:
            self.core.submit(Submission("carrier", "env1", "1111",
                                        "111222333", "x",
                                        hops=MAX_HOPS + 1))
        self.assertIn("loop", str(e.exception))

    def test_purge_final_messages(self):
        """Final messages older than the retention are deleted; waiting
        ones stay."""
        done = self.submit()
        self.clock.advance(0)
        self.agent.answer("delivered")
        d = self.core.submit(Submission("carrier", "c", "s", "111222333",
                                        "t", validity=30 * 86400))
        self.clock.advance(0.001)
        waiting = self.successResultOf(d)
        self.clock.advance(0)
        self.agent.answer("offline")
        self.clock.advance(0.001)
        for _ in range(int(self.core.retention // 3600) + 2):
            self.clock.advance(3600)
        self.assertIsNone(self.stored(done))
        self.assertIsNotNone(self.stored(waiting))
        self.assertEqual(self.storage.messages().counts()["delivered"], 0)


class ChargerTests(CoreTests):
    """The billing seam: authorize before storing, record in the same
    transactions as the changes."""

    def test_refused_stores_nothing(self):
        """A charger that refuses stops the message before it is stored."""
        from appliance.messaging.vocabulary import Refused

        class Broke:
            def authorize(self, *a):
                raise Refused("Insufficient funds")
        self.core.set_charger(Broke())
        with self.assertRaises(Refused) as e:
            self.core.submit(Submission("account", "1111", "1111",
                                        "111222333", "x"))
        self.assertEqual(str(e.exception), "Insufficient funds")
        self.assertEqual(sum(self.storage.messages().counts().values()), 0)

    def test_calls_inside_transactions(self):
        """accepted() and state_changed() run inside the batched writes
        that store the message and change its state."""
        calls = []
        storage = self.storage

        class Recorder:
            def authorize(self, submission, transport, account, route, now):
                calls.append(("authorize", account, route))
                return "charge-1"

            def accepted(self, raw, message, charge):
                calls.append(("accepted", message.id, charge,
                              storage._in_transaction or True))
                raw["billing-test"] = message.id

            def state_changed(self, raw, message, state):
                calls.append(("state", message.id, state))
        self.core.set_charger(Recorder())
        id = self.submit()
        self.clock.advance(0)
        self.agent.answer("delivered")
        self.clock.advance(0.001)
        self.assertEqual(calls, [("authorize", "111222333", "local"),
                                 ("accepted", id, "charge-1", True),
                                 ("state", id, "delivered")])
        self.assertEqual(self.storage._root()["billing-test"], id)


    def test_message_records_its_transport(self):
        """A message records the transport it was accepted for, and the
        agent of that transport gets it: here one named by the wiring, not
        by the core."""
        core = MessagingCore(self.storage, self.clock, local_transport="apps")
        agent = FakeAgent()
        core.set_agent("apps", agent)
        core.startService()
        self.addCleanup(core.stopService)
        d = core.submit(Submission("carrier", "c", "s", "111222333", "t"))
        self.clock.advance(0.001)
        id = self.successResultOf(d)
        self.assertEqual(self.stored(id).transport, "apps")
        self.clock.advance(0)
        self.assertEqual([(v.id, v.transport) for v, _ in agent.calls],
                         [(id, "apps")])

    def test_message_stored_without_transport(self):
        """A message stored before messages recorded their transport reads
        as before: to an account, the local transport; else its policy's."""
        from appliance.messaging.store import Message
        with self.storage.transaction() as root:
            root.add_connection("env4")
            root.add_policy("out")
            root.policies["out"].transport = "smpp"
            root.set_policy_connections("out", ["env4"])
        self.core._rebuild_routes()
        old = Message(1, "carrier", "c", "s", "111222333", now=0,
                      validity=10)
        old.account = "111222333"
        self.assertIsNone(old.transport)
        self.assertEqual(self.core._transport_of(old), "sip")
        away = Message(2, "carrier", "c", "s", "999", now=0, validity=10)
        away.route = "out"
        self.assertEqual(self.core._transport_of(away), "smpp")

    def test_authorize_then_submit(self):
        """authorize() routes and charges without storing; submit() with
        that authorization stores without asking the charger again."""
        calls = []

        class Recorder:
            def authorize(self, submission, transport, account, route, now):
                calls.append(("authorize", submission.parts))
                return "charge"

            def accepted(self, raw, message, charge):
                calls.append(("accepted", charge))

            def state_changed(self, raw, message, state):
                pass
        self.core.set_charger(Recorder())
        sub = Submission("carrier", "c", "s", "111222333", None, parts=3)
        auth = self.core.authorize(sub)
        self.assertEqual(tuple(auth.decision), ("sip", "111222333", "local"))
        self.assertEqual(sum(self.storage.messages().counts().values()), 0)
        d = self.core.submit(Submission("carrier", "c", "s", "111222333",
                                        "whole", parts=3), auth)
        self.clock.advance(0.001)
        self.successResultOf(d)
        self.assertEqual(calls, [("authorize", 3), ("accepted", "charge")])

    def test_state_writer_in_the_final_commit(self):
        """A state writer writes inside the very commit that makes a
        message final (one commit holds both), and hears after it with
        what it wrote; states that are not final do not call it."""
        seen = []
        storage = self.storage

        @implementer(IStateWriter)
        class Writer:
            def final_state(self, raw, message, state):
                raw["writer-test"] = (message.id, state)
                return ("wrote", message.id)

            def committed(self, view, state, written):
                seen.append((view.id, state, written,
                             storage._root().get("writer-test")))
        verifyObject(IStateWriter, Writer())
        self.core.add_state_writer(Writer())
        id = self.submit()
        self.clock.advance(0)
        self.agent.answer("retry")
        self.clock.advance(0.001)
        self.assertEqual(seen, [])
        self.clock.advance(30)
        self.clock.advance(0)
        commits = self.storage.commits
        self.agent.answer("delivered")
        self.clock.advance(0.001)
        self.assertEqual(self.storage.commits, commits + 1)
        self.assertEqual(seen, [(id, "delivered", ("wrote", id),
                                 (id, "delivered"))])


class ReRegisterTests(CoreTests):
    """A REGISTER during a failing attempt brings the retry forward."""

    def test_register_during_attempt_retries_at_once(self):
        """An attempt to a stale contact that fails after the app registered
        again is retried at the next scan, not by the schedule."""
        id = self.submit()
        self.clock.advance(0)
        self.clock.advance(10)            # the attempt hangs on a stale contact
        self.core.account_online("111222333")   # in flight: not re-sent now
        self.assertEqual(len(self.agent.calls), 1)
        self.agent.answer("retry", "408 Request Timeout")
        self.clock.advance(0.001)
        self.assertEqual(self.stored(id).next_attempt, self.clock.seconds()
                         - 0.001)
        self.clock.advance(1)
        self.assertEqual(len(self.agent.calls), 1)
        self.agent.answer("delivered")
        self.clock.advance(0.001)
        self.assertEqual(self.stored(id).state, "delivered")
