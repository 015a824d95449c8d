# -*- test-case-name: tests.test_interop -*-
"""
Interoperability of our client with real hubs over loopback: JSAMP's
reference hub and astropy's hub, each with a real astropy client as the
peer.  Each test class runs the same tests against one kind of hub.
"""

import os
import xmlrpc.client

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase

from sampy_twisted import (
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    SAMPCallTimeout,
    SAMPClientError,
    SAMPHubError,
    SAMPIntegratedClient,
    SAMPProxyError,
)
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted.testing import hub_for_test
from sampy_twisted._xmlrpc import XMLRPCProxy

from .astropy_peer import NO_REPLY, AstropyPeer, error, ok


def within(d, seconds=10.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


class Inbox:
    """Handlers that put what they receive into a queue a test can await."""

    def __init__(self):
        self.queue = defer.DeferredQueue()

    def notification(self, private_key, sender_id, mtype, params, extra):
        self.queue.put(("notification", sender_id, mtype, params, extra))

    def call(self, private_key, sender_id, msg_id, mtype, params, extra):
        self.queue.put(("call", sender_id, mtype, params, extra))
        return {"echo": params.get("text", "")}

    def response(self, private_key, responder_id, msg_tag, response):
        self.queue.put(("response", responder_id, msg_tag, response))

    def next(self, seconds=10.0):
        return within(self.queue.get(), seconds)


class InteropTestsMixin:
    """
    The message set in both directions against ``self.hub_kind``.
    """

    timeout = 60
    hub_kind = None

    async def setUp(self):
        self.hub = await hub_for_test(self, self.hub_kind)
        self.params = self.hub.params

    async def our_client(self, name="ours", **kwargs):
        client = SAMPIntegratedClient(name=name, reactor=reactor, **kwargs)
        inbox = Inbox()
        client.bind_receive_notification("test.*", inbox.notification)
        client.bind_receive_call("test.*", inbox.call)
        await within(client.connect(hub_params=self.params))
        self.addCleanup(client.disconnect)
        return client, inbox

    async def peer(self, name="astropy-peer", subscribe=("test.*",), call_reply=None):
        peer = await within(
            AstropyPeer.connect(reactor, self.params, name=name, subscribe=subscribe, call_reply=call_reply), 30
        )
        self.addCleanup(peer.disconnect)
        return peer

    async def peer_calls(self, peer, recipient_id, mtype, params=None):
        """
        The response to the peer's call of *mtype* to *recipient_id*: through
        the hub's callAndWait, except on astropy's hub.

        astropy's hub sends a callAndWait's call before it records the
        msg-id it waits for, and drops a response that arrives in between
        (``SAMPHubServer._call_and_wait``): a client that answers at once,
        as ours does, makes the peer wait for a response that never comes.
        On that hub the peer makes an asynchronous call instead, whose
        response the hub forwards whenever it arrives; a response our
        client fails to send still fails the test, by timeout.
        """
        if self.hub_kind != "astropy":
            return await peer.call_and_wait(recipient_id, mtype, params)
        tag, _ = await peer.call(recipient_id, mtype, params)
        answer = await peer.next_response()
        self.assertEqual((answer.responder_id, answer.msg_tag), (recipient_id, tag))
        return answer.response

    async def test_register_metadata_subscriptions(self):
        """The peer sees us registered, with our metadata and subscriptions,
        and sees us go when we disconnect."""
        client, _ = await self.our_client(metadata={"author.name": "tester"})
        peer = await self.peer()
        me = client.get_public_id()
        self.assertIn(me, await peer.get_registered_clients())
        metadata = await peer.get_metadata(me)
        self.assertEqual((metadata["samp.name"], metadata["author.name"]), ("ours", "tester"))
        subscriptions = await peer.get_subscriptions(me)
        self.assertIn("test.*", subscriptions)
        self.assertIn("samp.app.ping", subscriptions)
        self.assertIn(me, await peer.get_subscribed_clients("test.echo"))
        self.assertIn(peer.public_id, await client.get_registered_clients())
        self.assertEqual((await client.get_metadata(peer.public_id))["samp.name"], "astropy-peer")
        self.assertIn("test.*", await client.get_subscriptions(peer.public_id))
        self.assertIn(peer.public_id, await client.get_subscribed_clients("test.echo"))
        await client.ping()
        await client.disconnect()
        self.assertFalse(client.is_connected)
        self.assertNotIn(me, await peer.get_registered_clients())

    async def test_reconnect(self):
        """The same client object connects again after disconnecting."""
        client, _ = await self.our_client()
        first = client.get_public_id()
        await client.disconnect()
        await within(client.connect(hub_params=self.params))
        self.assertNotEqual(client.get_public_id(), first)
        self.assertTrue(client.is_connected)

    async def test_notify_both_ways(self):
        client, inbox = await self.our_client()
        peer = await self.peer()
        await client.enotify(peer.public_id, "test.note", text="hello", extra_kws={"x.extra": "e"})
        received = await peer.next_message()
        self.assertEqual((received.kind, received.sender_id, received.mtype), ("notification", client.get_public_id(), "test.note"))
        self.assertEqual(received.params, {"text": "hello"})
        self.assertEqual(received.extra.get("x.extra"), "e")
        await peer.notify(client.get_public_id(), "test.back", {"n": "1"})
        kind, sender, mtype, params, _ = await inbox.next()
        self.assertEqual((kind, sender, mtype, params), ("notification", peer.public_id, "test.back", {"n": "1"}))

    async def test_notify_all_both_ways(self):
        client, inbox = await self.our_client()
        peer = await self.peer()
        recipients = await client.enotify_all("test.all", text="x")
        self.assertIn(peer.public_id, recipients)
        self.assertEqual((await peer.next_message()).mtype, "test.all")
        recipients = await peer.notify_all("test.all2")
        self.assertIn(client.get_public_id(), recipients)
        self.assertEqual((await inbox.next())[2], "test.all2")

    async def test_async_call_to_peer(self):
        """call/call_all responses come back through bind_receive_response."""
        client, inbox = await self.our_client()
        peer = await self.peer(call_reply=ok({"answer": "42"}))
        client.bind_receive_response("my-tag", inbox.response)
        msg_id = await client.ecall(peer.public_id, "my-tag", "test.ask", q="?")
        self.assertIsInstance(msg_id, str)
        kind, responder, tag, response = await inbox.next()
        self.assertEqual((kind, responder, tag), ("response", peer.public_id, "my-tag"))
        self.assertEqual(response["samp.result"], {"answer": "42"})
        ids = await client.ecall_all("my-tag", "test.ask")
        self.assertIn(peer.public_id, ids)
        self.assertIsInstance(ids[peer.public_id], str)
        self.assertEqual((await inbox.next())[1], peer.public_id)

    async def test_call_and_wait_to_peer(self):
        client, _ = await self.our_client()
        peer = await self.peer(call_reply=lambda r: ok({"got": r.params["text"]}))
        response = await within(client.ecall_and_wait(peer.public_id, "test.ask", "10", text="hi"))
        self.assertEqual(response["samp.status"], SAMP_STATUS_OK)
        self.assertEqual(response["samp.result"], {"got": "hi"})
        self.assertEqual(client.client._pending, {})

    async def test_peer_calls_us(self):
        """Our handler's returned map is the peer's result, through the
        hub's callAndWait (but on astropy's hub, see peer_calls) and through
        an async call."""
        client, inbox = await self.our_client()
        peer = await self.peer()
        response = await self.peer_calls(peer, client.get_public_id(), "test.echo", {"text": "ping"})
        self.assertEqual(response["samp.status"], SAMP_STATUS_OK)
        self.assertEqual(response["samp.result"], {"echo": "ping"})
        tag, _ = await peer.call(client.get_public_id(), "test.echo", {"text": "async"})
        answer = await peer.next_response()
        self.assertEqual((answer.msg_tag, answer.response["samp.result"]), (tag, {"echo": "async"}))

    async def test_app_ping_both_ways(self):
        client, _ = await self.our_client()
        peer = await self.peer(subscribe=("test.*", "samp.app.ping"))
        response = await self.peer_calls(peer, client.get_public_id(), "samp.app.ping")
        self.assertEqual(response["samp.status"], SAMP_STATUS_OK)
        response = await client.ecall_and_wait(peer.public_id, "samp.app.ping", "10")
        self.assertEqual(response["samp.status"], SAMP_STATUS_OK)
        response = await client.ecall_and_wait(client.get_hub_id(), "samp.app.ping", "10")
        self.assertEqual(response["samp.status"], SAMP_STATUS_OK)

    async def test_error_responses(self):
        """Errors come back as samp.error responses, in both directions."""
        client, _ = await self.our_client()
        peer = await self.peer(call_reply=error("no such table", samp_code="E42"))
        response = await client.ecall_and_wait(peer.public_id, "test.fail", "10")
        self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        self.assertEqual(response["samp.error"]["samp.errortxt"], "no such table")

        def broken(*args):
            raise LookupError("handler broke")

        client.bind_receive_call("test.broken", broken, declare=False)
        response = await self.peer_calls(peer, client.get_public_id(), "test.broken")
        self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        self.assertEqual(response["samp.error"]["samp.errortxt"], "handler broke")
        self.assertEqual(len(self.flushLoggedErrors(LookupError)), 1)

    async def test_hub_faults(self):
        """Hub faults become SAMPProxyError with the hub's text."""
        client, _ = await self.our_client()
        peer = await self.peer(subscribe=("test.*",))
        with self.assertRaises(SAMPProxyError):
            await client.enotify(peer.public_id, "other.mtype")
        with self.assertRaises(SAMPProxyError):
            await client.get_metadata("no-such-client")
        with self.assertRaises(SAMPProxyError):
            await client.ecall_and_wait(peer.public_id, "other.mtype", "5")
        self.assertEqual(client.client._pending, {})

    async def test_timeout(self):
        """A call nobody answers fails with SAMPCallTimeout, leaving nothing
        pending."""
        client, _ = await self.our_client()
        peer = await self.peer(call_reply=NO_REPLY)
        started = reactor.seconds()
        with self.assertRaises(SAMPCallTimeout) as caught:
            await client.ecall_and_wait(peer.public_id, "test.slow", "1")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertEqual(caught.exception.timeout, 1.0)
        self.assertEqual(client.client._pending, {})
        self.assertEqual((await peer.next_message()).mtype, "test.slow")

    async def test_bad_input_sends_nothing(self):
        """Every non-SAMP value raises before anything reaches the peer."""
        client, _ = await self.our_client()
        peer = await self.peer()
        for value, error_type in [
            (1, TypeError), (2.5, TypeError), (True, TypeError), (None, TypeError),
            (b"bytes", TypeError), ("caf\xe9", ValueError), ("bell\x07", ValueError),
            ({"k": 3}, TypeError), ([None], TypeError),
        ]:
            with self.assertRaises(error_type) as caught:
                client.enotify(peer.public_id, "test.bad", value=value)
            self.assertIn("samp.params['value']", str(caught.exception))
        with self.assertRaises(TypeError):
            client.ecall_and_wait(peer.public_id, "test.bad", None)
        await client.enotify(peer.public_id, "test.good")
        self.assertEqual((await peer.next_message()).mtype, "test.good")

    async def test_wrong_private_key_refused(self):
        """A callback with a wrong key is a fault and reaches no handler."""
        client, inbox = await self.our_client()
        proxy = XMLRPCProxy(client.client.callback_url, reactor)
        self.addCleanup(proxy.close)
        message = {"samp.mtype": "test.forged", "samp.params": {}}
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            await proxy.call("samp.client.receiveNotification", "k:forged", "hub", message)
        self.assertIn("wrong private key", caught.exception.faultString)
        with self.assertRaises(xmlrpc.client.Fault):
            await proxy.call("samp.client.receiveCall", "k:forged", "hub", "m1", message)
        self.assertEqual(len(inbox.queue.pending), 0)

    async def test_find_client_and_tracking(self):
        """Clients are found by name; the tracker follows hub events."""
        client, _ = await self.our_client(track_clients=True)
        changes = defer.DeferredQueue()
        client.clients.add_observer(lambda event, cid: changes.put((event, cid)))
        peer = await self.peer(name="TOPCAT")
        self.assertEqual(await client.find_client("topcat"), peer.public_id)

        def known():
            tracked = client.clients.get(peer.public_id)
            return tracked is not None and tracked.name == "TOPCAT" and tracked.is_subscribed("test.anything")

        while not known():
            await within(changes.get())
        self.assertIn(client.get_hub_id(), client.clients)
        other = SAMPIntegratedClient(name="second", reactor=reactor)
        await within(other.connect(hub_params=self.params))
        await other.disconnect()
        await peer.disconnect()
        while peer.public_id in client.clients:
            await within(changes.get())
        with self.assertRaises(SAMPClientError):
            await client.find_client("nobody-by-this-name")

    async def test_not_callable(self):
        """A client that cannot receive still sends and call_and_waits."""
        client = SAMPIntegratedClient(name="mute", reactor=reactor, callable=False)
        await within(client.connect(hub_params=self.params))
        self.addCleanup(client.disconnect)
        self.assertIsNone(client.client.callback_url)
        peer = await self.peer(call_reply=ok({"x": "y"}))
        response = await within(client.ecall_and_wait(peer.public_id, "test.q", "10"))
        self.assertEqual(response["samp.result"], {"x": "y"})

    async def test_discovery_through_environment(self):
        """connect() with no arguments finds the hub through SAMP_HUB."""
        self.patch(os, "environ", dict(os.environ, **self.hub.environ))
        client = SAMPIntegratedClient(name="env", reactor=reactor)
        await within(client.connect())
        self.addCleanup(client.disconnect)
        self.assertTrue(client.is_connected)

    async def test_hub_shutdown_noticed(self):
        """When the hub stops, the client is told, pending waits fail and
        the callback server stops."""
        client, _ = await self.our_client()
        peer = await self.peer(call_reply=NO_REPLY)
        lost = client.when_disconnected()
        wait = client.ecall_and_wait(peer.public_id, "test.forever", "0")
        await peer.next_message()
        await peer.disconnect()
        await self.hub.stop()
        reason = await within(lost, 20)
        self.assertIn("shut down", reason)
        self.assertFalse(client.is_connected)
        self.assertFalse(client.client.is_running)
        try:
            response = await wait
        except SAMPClientError:
            pass  # JSAMP's and astropy's hubs: the wait ended with the registration
        else:
            # Our hub answers calls a departing client still owed.
            self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        await client.disconnect()


class JSAMPHubTests(InteropTestsMixin, TestCase):
    """Against JSAMP's reference hub."""

    hub_kind = "jsamp"


class AstropyHubTests(InteropTestsMixin, TestCase):
    """Against astropy's hub."""

    hub_kind = "astropy"


class _InProcessHub:
    """Our hub started in the test's reactor, shaped like a HubProcess."""

    def __init__(self, hub):
        self.hub = hub
        self.params = hub.params
        self.lockfile = hub.lockfile
        self.environ = {"SAMP_HUB": f"std-lockurl:file://{hub.lockfile}"}

    def stop(self):
        return self.hub.stop()


class OurHubTests(InteropTestsMixin, TestCase):
    """Against our own hub, running in the test's reactor."""

    hub_kind = "ours"

    async def setUp(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(directory, ".samp"))
        await hub.start()
        self.addCleanup(hub.stop)
        self.hub = _InProcessHub(hub)
        self.params = hub.params


class UnreachableHubTests(TestCase):
    """
    Connecting where no hub answers is a clear error, not a hang.
    """

    timeout = 20

    async def test_dead_url(self):
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        url = f"http://127.0.0.1:{port.getHost().port}/xmlrpc"
        await port.stopListening()
        client = SAMPIntegratedClient(reactor=reactor)
        with self.assertRaises(SAMPHubError) as caught:
            await within(client.connect(hub_params={"samp.secret": "x", "samp.hub.xmlrpc.url": url}))
        self.assertIn(url, str(caught.exception))
        self.assertFalse(client.client.is_running)

    async def test_no_lockfile(self):
        client = SAMPIntegratedClient(reactor=reactor)
        with self.assertRaises(SAMPHubError) as caught:
            await within(client.connect())
        self.assertIn("no SAMP hub is running", str(caught.exception))


class AutoHubTests(TestCase):
    """
    ``connect(hub="auto")`` uses a running hub, else embeds our own.
    """

    timeout = 60

    def use_lockfile(self, path):
        self.patch(os, "environ", dict(os.environ, SAMP_HUB=f"std-lockurl:file://{path}"))

    async def test_embeds_when_no_hub(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        lockfile = os.path.join(directory, ".samp")
        self.use_lockfile(lockfile)
        client = SAMPIntegratedClient(name="embedder", reactor=reactor)
        await within(client.connect(hub="auto"))
        self.addCleanup(client.disconnect)
        self.assertIsNotNone(client.embedded_hub)
        self.assertTrue(os.path.exists(lockfile))
        self.assertEqual(os.stat(lockfile).st_mode & 0o777, 0o600)
        peer = await within(AstropyPeer.connect(reactor, client.embedded_hub.params, subscribe=("test.*",)), 30)
        self.addCleanup(peer.disconnect)
        await client.enotify(peer.public_id, "test.embedded")
        self.assertEqual((await peer.next_message()).mtype, "test.embedded")
        await peer.disconnect()
        await client.disconnect()
        self.assertIsNone(client.embedded_hub)
        self.assertFalse(os.path.exists(lockfile))

    async def test_uses_running_hub(self):
        hub = await hub_for_test(self, "jsamp")
        self.use_lockfile(hub.lockfile)
        client = SAMPIntegratedClient(name="joiner", reactor=reactor)
        await within(client.connect(hub="auto"))
        self.addCleanup(client.disconnect)
        self.assertIsNone(client.embedded_hub)
        self.assertEqual(client.hub.lockfile["samp.secret"], hub.params["samp.secret"])
