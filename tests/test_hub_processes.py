# -*- test-case-name: tests.test_hub_processes -*-
"""
Our hub as users run it, in a child process (``twistd -n samp-hub`` and
``sampy-twisted hub``), used by JSAMP's own clients: hubtester, snooper and
messagesender.
"""

import os
import sys

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

import sampy_twisted
from sampy_twisted import SAMPIntegratedClient
from sampy_twisted._process import lockfile_environ, start_hub
from sampy_twisted.testing import run_jsamp_tool, spawn_jsamp_tool

from .test_tap import TWISTD


# The checkout this test suite runs from (trial runs tests in _trial_temp).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(sampy_twisted.__file__)))


def _within(d, seconds=30.0):
    return d.addTimeout(seconds, reactor)


class HubProcessTestsMixin:
    """
    JSAMP's tools against our hub started by ``self.command``.
    """

    timeout = 120
    command = None

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        lockfile = os.path.join(self.directory, ".samp")
        argv = [sys.executable] + self.command + ["--lockfile", lockfile]
        env = lockfile_environ(self.directory, lockfile)
        # The child imports this checkout, as the tests do.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        self.hub = await start_hub(argv, env, ROOT, lockfile, 30.0, name="our hub")
        self.addCleanup(self.hub.stop)

    async def client(self, name, **kwargs):
        client = SAMPIntegratedClient(name=name, reactor=reactor, **kwargs)
        await _within(client.connect(hub_params=self.hub.params))
        self.addCleanup(client.disconnect)
        return client

    async def test_hubtester(self):
        """JSAMP's hubtester passes against the hub process."""
        result = await run_jsamp_tool("hubtester", lockfile=self.hub.lockfile, timeout=90)
        self.assertEqual(result.exit_code, 0, result.output)

    async def test_snooper_and_messagesender(self):
        """JSAMP's snooper sees our client's message; JSAMP's messagesender
        calls our client and prints its answer."""
        snooper = spawn_jsamp_tool("snooper", ["-mtype", "test.*"], lockfile=self.hub.lockfile)
        self.addCleanup(snooper.stop)
        client = await self.client("ours", track_clients=True)
        client.bind_receive_call("test.echo", lambda k, s, m, t, params, e: {"echo": params["text"]})
        arrivals = defer.DeferredQueue()
        client.clients.add_observer(lambda event, client_id: arrivals.put(event))
        while not any("snoop" in (c.name or "").lower() and c.subscriptions for c in client.clients.values()):
            await _within(arrivals.get())
        await client.enotify_all("test.seen", word="hello-snooper")
        await snooper.wait_for_line(r"hello-snooper", timeout=20)
        result = await run_jsamp_tool(
            "messagesender",
            ["-mtype", "test.echo", "-param", "text", "hi-jsamp", "-mode", "sync", "-targetname", "ours"],
            lockfile=self.hub.lockfile,
            timeout=60,
        )
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertIn("hi-jsamp", result.output)
        self.assertIn("samp.ok", result.output)



class TwistdHubTests(HubProcessTestsMixin, TestCase):
    """``twistd -n samp-hub``."""

    command = ["-c", TWISTD, "--pidfile=", "-n", "samp-hub"]


class CommandLineHubTests(HubProcessTestsMixin, TestCase):
    """``sampy-twisted hub``."""

    command = ["-m", "sampy_twisted._cli", "hub"]
