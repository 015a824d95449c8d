# -*- test-case-name: tests.test_liveness -*-
"""
Tests for L{sampy_twisted._liveness.HubLivenessCheck}, under a fake clock
with a fake client whose requests the test answers.
"""

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted import SAMPHubError, SAMPProxyError
from sampy_twisted._liveness import HubLivenessCheck


class FakeClient:
    """Records the liveness requests; the test answers them."""

    def __init__(self):
        self.requests = []

    def get_public_id(self):
        return "c1"

    def get_metadata(self, client_id):
        self.requests.append(client_id)
        d = defer.Deferred()
        self.last = d
        return d


class HubLivenessCheckTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.client = FakeClient()
        self.reasons = []
        self.check = HubLivenessCheck(self.client, 2.0, 3.0, self.clock, self.reasons.append)
        self.check.start()
        self.addCleanup(self.check.stop)

    def test_asks_for_own_metadata_each_interval(self):
        """The first check is one interval after start; an answered check
        keeps checking."""
        self.clock.advance(1.9)
        self.assertEqual(self.client.requests, [])
        self.clock.advance(0.1)
        self.assertEqual(self.client.requests, ["c1"])
        self.client.last.callback({"samp.name": "me"})
        self.clock.advance(2.0)
        self.assertEqual(self.client.requests, ["c1", "c1"])
        self.assertEqual(self.reasons, [])

    def test_refused(self):
        """A hub that does not answer is gone; the check stops."""
        self.clock.advance(2.0)
        self.client.last.errback(SAMPHubError("connection refused"))
        self.assertEqual(self.reasons, ["the hub does not answer: connection refused"])
        self.clock.advance(10.0)
        self.assertEqual(len(self.client.requests), 1)

    def test_fault(self):
        """A fault means the hub has forgotten the client (restarted, or it
        dropped the client)."""
        self.clock.advance(2.0)
        self.client.last.errback(SAMPProxyError(1, "unknown private key"))
        self.assertEqual(self.reasons, ["the hub no longer knows this client: unknown private key"])

    def test_timeout(self):
        """No answer within the timeout: the hub is gone."""
        self.clock.advance(2.0)
        self.clock.advance(2.9)
        self.assertEqual(self.reasons, [])
        self.clock.advance(0.1)
        self.assertEqual(self.reasons, ["the hub did not answer within 3 s"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_slow_answer_not_asked_twice(self):
        """A check still waiting at the next tick is not doubled."""
        check = HubLivenessCheck(self.client, 1.0, 5.0, self.clock, self.reasons.append)
        self.check.stop()
        check.start()
        self.addCleanup(check.stop)
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        self.assertEqual(len(self.client.requests), 1)

    def test_stop(self):
        """stop() cancels the check in progress; its late failure is not
        reported; no timer is left."""
        self.clock.advance(2.0)
        pending = self.client.last
        self.check.stop()
        self.assertEqual(self.reasons, [])
        self.assertTrue(pending.called)  # cancelled
        self.assertEqual(self.clock.getDelayedCalls(), [])
