# -*- test-case-name: tests.test_examples -*-
"""
The complete programs the docs show, ``docs/examples/*.py`` (besides the
quick start, the TLS guide and the desktop applications' examples, tested on
their own: the last in tests/test_desktop_apps.py), run as scripts against
real hubs, as a reader would run them.
"""

import os
import sys

from twisted.internet import reactor
from twisted.trial import unittest

from sampy_twisted import SAMPIntegratedClient, read_lockfile
from sampy_twisted._process import lockfile_environ, spawn
from sampy_twisted.testing import hub_for_test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "docs", "examples")


def within(d, seconds=30.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


class ExampleTests(unittest.TestCase):
    """
    Each example runs as ``python <example>.py`` in a child process whose
    ``HOME`` and ``SAMP_HUB`` point into the test's directory.
    """

    timeout = 120

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def run_example(self, name, environ, *args):
        """Start ``docs/examples/<name>``; it is stopped when the test ends."""
        env = dict(environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1")
        process = spawn([sys.executable, os.path.join(EXAMPLES, name), *args], env, self.directory, reactor, name=name)
        self.addCleanup(process.stop)
        return process

    async def connect(self, hub_params, name):
        client = SAMPIntegratedClient(name=name, reactor=reactor)
        await within(client.connect(hub_params=hub_params))
        self.addCleanup(lambda: client.disconnect() if client.is_connected else None)
        return client

    def assertEndedCleanly(self, result):
        self.assertEqual((result.exit_code, result.signal), (0, None), result.output)
        self.assertNotIn("Traceback", result.output)

    async def test_asyncio_client(self):
        """The asyncio example registers, lists the clients (the hub among
        them) from an asyncio task, unregisters and exits 0."""
        hub = await hub_for_test(self, "jsamp")
        process = self.run_example("asyncio_client.py", hub.environ)
        result = await within(process.ended)
        self.assertEndedCleanly(result)
        self.assertIn("registered clients: ['hub'", result.output)

    async def test_run_hub(self):
        """
        The hub example writes the lockfile it is given, serves clients,
        and on SIGTERM tells them it is shutting down and removes the
        lockfile.
        """
        lockfile = os.path.join(self.directory, "samp1")
        process = self.run_example("run_hub.py", lockfile_environ(self.directory), lockfile)
        await within(process.wait_for_line(r"^hub at http://127\.0\.0\.1:\d+/xmlrpc lockfile " + lockfile))
        params = read_lockfile(lockfile)
        self.assertEqual(params["hub.label"], "test hub")
        client = await self.connect(params, "listener")
        [hub_id] = await client.get_registered_clients()  # the hub is its own client
        self.assertEqual((await client.get_metadata(hub_id))["samp.name"], "Hub")
        disconnected = client.when_disconnected()
        self.assertEndedCleanly(await within(process.stop()))
        await within(disconnected)
        self.assertFalse(os.path.exists(lockfile))

    async def test_watch_tables(self):
        """
        The service example registers with the running hub, prints the
        ``table.*`` notifications it is sent, and unregisters on SIGTERM.
        """
        hub = await hub_for_test(self, "jsamp")
        process = self.run_example("watch_tables.py", hub.environ)
        line = await within(process.wait_for_line(r"^registered as \S+$"))
        watcher_id = line.split()[-1]
        sender = await self.connect(hub.params, "sender")
        await sender.enotify(watcher_id, "table.load.votable", url="file:///data/t.xml")
        line = await within(process.wait_for_line(r" sent table\.load\.votable: "))
        self.assertEqual(
            line, f"{sender.get_public_id()} sent table.load.votable: {{'url': 'file:///data/t.xml'}}"
        )
        self.assertEndedCleanly(await within(process.stop()))
        self.assertNotIn(watcher_id, await sender.get_registered_clients())

    async def test_receiver(self):
        """
        The receiver prints the tables sent to it, answers calls samp.ok,
        and ends by itself (exit 0) when the hub shuts down.
        """
        hub = await hub_for_test(self, "jsamp")
        process = self.run_example("receiver.py", hub.environ, "recipe")
        await within(process.wait_for_line(r"^Registered as \S+; press Ctrl-C to stop"))
        sender = await self.connect(hub.params, "sender")
        receiver_id = await sender.find_client("recipe")
        await sender.enotify(receiver_id, "table.load.votable", url="http://x/t.xml", name="t1")
        await within(process.wait_for_line(r"^table\.load\.votable from \S+: t1 http://x/t\.xml$"))
        response = await within(sender.ecall_and_wait(receiver_id, "table.load.votable", "20", url="http://x/u.xml"))
        self.assertEqual(response["samp.status"], "samp.ok")
        await within(hub.stop())
        result = await within(process.ended)
        self.assertEndedCleanly(result)
        self.assertIn("Disconnected: the hub shut down", result.output)
