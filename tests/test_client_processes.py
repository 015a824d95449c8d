# -*- test-case-name: tests.test_client_processes -*-
"""
The integrated client's life with real processes: a receiver program
stopped by SIGINT or SIGTERM unregisters on its way out, and a hub killed
with SIGKILL is noticed within the documented check interval.
"""

import os
import re
import signal
import sys

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

import sampy_twisted
from sampy_twisted import SAMPClientError, SAMPHubError, SAMPIntegratedClient
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted._process import lockfile_environ, spawn, start_hub
from sampy_twisted.testing import start_jsamp_hub

# The checkout this test suite runs from (trial runs tests in _trial_temp).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(sampy_twisted.__file__)))
RECEIVER = os.path.join(ROOT, "docs", "examples", "receiver.py")

UNREGISTERED_WITHIN = 1.0
"""Seconds from the signal to the hub's samp.hub.event.unregister."""


def within(d, seconds=30.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


class SignalledReceiverTests(TestCase):
    """
    ``docs/examples/receiver.py``, a ``task.react`` program waiting on
    ``when_disconnected()``, stopped by a signal while our hub (in this
    process) and a watching client look on.
    """

    timeout = 120

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(self.directory, ".samp"))
        await within(self.hub.start())
        self.addCleanup(self.hub.stop)
        self.unregistered = defer.DeferredQueue()
        watcher = SAMPIntegratedClient(name="watcher", reactor=reactor)
        watcher.bind_receive_notification(
            "samp.hub.event.unregister",
            lambda key, sender, mtype, params, extra: self.unregistered.put(params["id"]),
        )
        await within(watcher.connect(hub=self.hub))
        self.addCleanup(watcher.disconnect)

    async def stop_receiver_with(self, signum):
        env = lockfile_environ(self.directory, self.hub.lockfile)
        env.update(PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        process = spawn([sys.executable, RECEIVER, "signalled"], env, self.directory, reactor, name="receiver.py")
        self.addCleanup(process.stop)
        line = await process.wait_for_line(r"^Registered as \S+;", timeout=30)
        client_id = re.search(r"Registered as (\S+);", line).group(1)
        self.assertIn(client_id, self.hub.registered_clients)
        os.kill(process.pid, signum)
        gone = await within(self.unregistered.get(), UNREGISTERED_WITHIN)
        self.assertEqual(gone, client_id)
        self.assertNotIn(client_id, self.hub.registered_clients)
        result = await within(process.ended)
        self.assertNotIn("Traceback", result.output)
        self.assertNotIn("Could not unregister", result.output)

    def test_sigint(self):
        """Ctrl-C (SIGINT) unregisters the receiver within a second."""
        return defer.ensureDeferred(self.stop_receiver_with(signal.SIGINT))

    def test_sigterm(self):
        """SIGTERM unregisters the receiver within a second."""
        return defer.ensureDeferred(self.stop_receiver_with(signal.SIGTERM))


class KilledHubMixin:
    """
    A client of a hub process killed with SIGKILL (no shutdown event, a
    lockfile left behind) notices within its check interval, and its
    pending call_and_wait fails at once.
    """

    timeout = 120
    interval = 1.0
    margin = 2.0  # beyond the interval: the check's own round trip on a busy machine

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.hub = await self.start_hub()
        self.addCleanup(self.hub.stop)

    async def connect(self, name, **kwargs):
        client = SAMPIntegratedClient(name=name, reactor=reactor, **kwargs)
        await within(client.connect(hub_params=self.hub.params))
        self.addCleanup(client.disconnect)
        return client

    async def test_killed_hub_noticed(self):
        """when_disconnected fires within the interval after SIGKILL."""
        client = await self.connect("checker", hub_check_interval=self.interval)
        silent = await self.connect("silent", hub_check_interval=None)
        received = defer.Deferred()
        silent.bind_receive_call("test.never", lambda *args: received.callback(None))  # never replies
        await within(silent.declare_subscriptions())
        pending = client.ecall_and_wait(silent.get_public_id(), "test.never", "0")
        lost = client.when_disconnected()
        await within(received)
        await client.ping()
        await within(self.hub.kill())
        killed = reactor.seconds()
        reason = await within(lost, self.interval + self.margin)
        self.assertLess(reactor.seconds() - killed, self.interval + self.margin)
        self.assertIn("the hub does not answer", reason)
        self.assertFalse(client.is_connected)
        # The registration's end fails it; or, if the hub died before
        # answering samp.hub.call, that request's failure does.
        with self.assertRaises((SAMPClientError, SAMPHubError)):
            await within(pending, 1.0)


class OurKilledHubTests(KilledHubMixin, TestCase):
    """Our hub, run as ``sampy-twisted hub`` in a child process."""

    def start_hub(self):
        lockfile = os.path.join(self.directory, ".samp")
        env = lockfile_environ(self.directory, lockfile)
        env["PYTHONPATH"] = ROOT
        argv = [sys.executable, "-m", "sampy_twisted._cli", "hub", "--lockfile", lockfile]
        return start_hub(argv, env, self.directory, lockfile, 30.0, name="our hub")


class JSAMPKilledHubTests(KilledHubMixin, TestCase):
    """JSAMP's hub in a child process."""

    def start_hub(self):
        return start_jsamp_hub(directory=self.directory)
