# -*- test-case-name: tests.test_memory -*-
"""
Tests for the in-memory network: our real hub and real clients, with
nothing leaving the process and time under a fake clock.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted import SAMP_STATUS_OK, SAMPCallTimeout, SAMPClientError, SAMPHubError, SAMPIntegratedClient
from sampy_twisted.testing import MemoryNetwork, start_memory_hub


class MemoryNetworkTests(SynchronousTestCase):
    """
    Synchronous, deterministic SAMP conversations.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.hub = start_memory_hub(self.network, os.path.abspath(self.mktemp()))

    def result(self, d):
        self.network.run()
        return self.successResultOf(d)

    def connect(self, name):
        client = SAMPIntegratedClient(name=name, reactor=self.network)
        self.assertIs(self.result(client.connect(hub=self.hub)), client)
        return client

    def test_notify(self):
        seen = []
        receiver = self.connect("receiver")
        receiver.bind_receive_notification("table.*", lambda *args: seen.append(args[1:]))
        sender = self.connect("sender")
        self.result(sender.enotify(receiver.get_public_id(), "table.load.votable", url="u"))
        self.assertEqual(seen, [(sender.get_public_id(), "table.load.votable", {"url": "u"}, {})])

    def test_call_and_wait_and_timeout(self):
        """Replies arrive; a missing reply times out exactly on the clock."""
        receiver = self.connect("receiver")
        receiver.bind_receive_call("calc.add", lambda k, s, m, t, p, e: {"sum": str(int(p["a"]) + int(p["b"]))})
        receiver.bind_receive_call("calc.never", lambda *args: None)
        sender = self.connect("sender")
        response = self.result(sender.ecall_and_wait(receiver.get_public_id(), "calc.add", "5", a="2", b="3"))
        self.assertEqual(response, {"samp.status": SAMP_STATUS_OK, "samp.result": {"sum": "5"}})
        d = sender.ecall_and_wait(receiver.get_public_id(), "calc.never", "5")
        self.network.run()
        self.network.advance(4.9)
        self.assertNoResult(d)
        self.network.advance(0.1)
        self.failureResultOf(d, SAMPCallTimeout)

    def test_hub_shutdown(self):
        client = self.connect("client")
        lost = client.when_disconnected()
        self.hub.stop()
        self.network.advance(10)
        self.assertIn("shut down", self.successResultOf(lost))
        self.assertFalse(client.is_connected)
        self.failureResultOf(client.get_registered_clients(), SAMPClientError)

    def test_refused(self):
        """A hub that stopped listening is unreachable, not a hang."""
        params = dict(self.hub.params)
        self.hub.stop()
        self.network.advance(10)
        client = SAMPIntegratedClient(reactor=self.network)
        d = client.connect(hub_params=params)
        self.network.run()
        self.failureResultOf(d, SAMPHubError)

    def test_clean(self):
        """Disconnecting and stopping leave nothing behind."""
        client = self.connect("client")
        self.result(client.disconnect())
        self.hub.stop()
        self.network.advance(60)
        self.assertEqual(self.network.getDelayedCalls(), [])
