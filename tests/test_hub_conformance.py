# -*- test-case-name: tests.test_hub_conformance -*-
"""
Conformance of our hub with the reference implementations: JSAMP's
``hubtester`` and ``calcstorm`` run against it, and astropy clients use it.
"""

import os

from twisted.internet import reactor
from twisted.trial import unittest

from sampy_twisted._hub import HUB_ID, start_hub
from sampy_twisted._jsamp import JSampNotFound, find_jsamp, run_jsamp_tool

from .astropy_peer import AstropyPeer, error, ok


class OurHubTestCase(unittest.TestCase):
    """Runs our hub with a lockfile in a temporary directory."""

    timeout = 60

    async def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.hub = await start_hub(reactor, lockfile=os.path.join(directory, "samp"))
        self.addCleanup(self.hub.stop)


class JSAMPToolTests(OurHubTestCase):
    """JSAMP's hub tester and message storms against our hub."""

    def setUp(self):
        try:
            find_jsamp()
        except JSampNotFound as exc:
            raise unittest.SkipTest(str(exc))
        return super().setUp()

    async def run_tool(self, tool, *args, timeout=50.0):
        """Run a JSAMP tool against our hub and check it succeeds."""
        result = await run_jsamp_tool(
            tool, args, lockfile=self.hub.lockfile, reactor=reactor, timeout=timeout
        )
        self.assertEqual(
            result.exit_code, 0, f"JSAMP {tool} {' '.join(args)} failed:\n{result.output}"
        )
        return result

    async def test_hubtester(self):
        """JSAMP's hubtester passes, with no warning about slow calls or
        missing timeouts."""
        result = await self.run_tool("hubtester")
        self.assertNotIn("not completing quickly", result.output)
        self.assertNotIn("did not timeout", result.output)

    async def test_calcstorm_sync(self):
        """calcstorm in sync mode: 10 clients, 100 queries each."""
        await self.run_tool("calcstorm", "-nclient", "10", "-nquery", "100", "-mode", "sync")

    async def test_calcstorm_async(self):
        """calcstorm in async mode: 10 clients, 100 queries each."""
        await self.run_tool("calcstorm", "-nclient", "10", "-nquery", "100", "-mode", "async")

    async def test_calcstorm_notify(self):
        """calcstorm in notify mode: 10 clients, 100 queries each."""
        await self.run_tool("calcstorm", "-nclient", "10", "-nquery", "100", "-mode", "notify")

    async def test_calcstorm_random(self):
        """calcstorm in random mode: 10 clients, 100 queries each."""
        await self.run_tool("calcstorm", "-nclient", "10", "-nquery", "100", "-mode", "random")

    def tearDown(self):
        # Every hub client is gone once the tools have exited.
        self.assertEqual(self.hub.registered_clients, [])


class AstropyClientTests(OurHubTestCase):
    """astropy's SAMPIntegratedClient, in threads, against our hub."""

    async def peer(self, name, **options):
        """An astropy client registered with our hub."""
        peer = await AstropyPeer.connect(reactor, self.hub.params, name=name, **options)
        self.addCleanup(peer.disconnect)
        return peer

    async def test_register(self):
        """astropy registers, pings, sees the hub and other clients."""
        first = await self.peer("first")
        second = await self.peer("second")
        await first.ping()
        clients = await first.get_registered_clients()
        self.assertEqual(sorted(clients), sorted([HUB_ID, second.public_id]))
        meta = await first.get_metadata(second.public_id)
        self.assertEqual(meta["samp.name"], "second")
        self.assertEqual((await first.get_metadata(HUB_ID))["samp.name"], "Hub")

    async def test_notify(self):
        """A notification from one astropy client reaches another."""
        sender = await self.peer("sender")
        receiver = await self.peer("receiver", subscribe=["test.note"])
        await sender.notify(receiver.public_id, "test.note", {"x": "1"}, **{"test.extra": "y"})
        received = await receiver.next_message()
        self.assertEqual(
            (received.kind, received.sender_id, received.mtype, received.params),
            ("notification", sender.public_id, "test.note", {"x": "1"}),
        )
        self.assertEqual(received.extra.get("test.extra"), "y")
        recipients = await sender.notify_all("test.note", {"x": "2"})
        self.assertEqual(recipients, [receiver.public_id])
        received = await receiver.next_message()
        self.assertEqual(received.params, {"x": "2"})

    async def test_call_and_reply(self):
        """An asynchronous call and its reply between astropy clients."""
        sender = await self.peer("sender")
        receiver = await self.peer(
            "receiver", subscribe=["test.echo"], call_reply=lambda r: ok(r.params)
        )
        msg_tag, msg_id = await sender.call(receiver.public_id, "test.echo", {"v": "42"})
        received = await receiver.next_message()
        self.assertEqual((received.kind, received.msg_id), ("call", msg_id))
        response = await sender.next_response()
        self.assertEqual(response.responder_id, receiver.public_id)
        self.assertEqual(response.msg_tag, msg_tag)
        self.assertEqual(response.response, ok({"v": "42"}))

    async def test_call_and_wait(self):
        """call_and_wait between astropy clients, success and error responses."""
        sender = await self.peer("sender")
        receiver = await self.peer(
            "receiver",
            subscribe=["test.*"],
            call_reply=lambda r: ok(r.params) if r.mtype == "test.echo" else error("no", samp_code="7"),
        )
        response = await sender.call_and_wait(receiver.public_id, "test.echo", {"a": ["b"]})
        self.assertEqual(response, ok({"a": ["b"]}))
        response = await sender.call_and_wait(receiver.public_id, "test.fail")
        self.assertEqual(response, error("no", samp_code="7"))
        response = await sender.call_and_wait(HUB_ID, "samp.app.ping")
        self.assertEqual(response["samp.status"], "samp.ok")

    async def test_hub_events(self):
        """astropy clients hear hub events about others."""
        watcher = await self.peer("watcher", subscribe=["samp.hub.event.register"])
        other = await self.peer("other")
        received = await watcher.next_message()
        self.assertEqual(received.sender_id, HUB_ID)
        self.assertEqual(received.mtype, "samp.hub.event.register")
        self.assertEqual(received.params, {"id": other.public_id})
