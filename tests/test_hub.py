# -*- test-case-name: tests.test_hub -*-
"""
Tests for :mod:`sampy_twisted._hub` and :mod:`sampy_twisted._stdprofile`
over the wire: the hub runs on loopback port 0 and is driven over XML-RPC by
test clients with real callback servers.  Only what needs the wire is here
(starting and stopping, the secret and keys, argument decoding, real
deliveries and their failures); the hub's rules are tested on the core, in
milliseconds, by :mod:`tests.test_hub_core`.
"""

import os
import threading
import xmlrpc.client

from twisted.internet import defer, reactor
from twisted.trial import unittest

from sampy_twisted._codec import CachedMap
from sampy_twisted import _codec, _delivery
from sampy_twisted._delivery import ENCODE_IN_THREAD_BYTES, PushDelivery
from sampy_twisted._hub import HUB_ID, SAMPHubServer, start_hub
from sampy_twisted._listening import ConnectionTracker
from sampy_twisted._verbatim import VerbatimStrings
from sampy_twisted._xmlrpc import XMLRPCProxy, XMLRPCResource, make_site

WAIT = 10.0
"""Seconds a test waits for something that should happen at once."""


def message(mtype, params=None, **extra):
    """A SAMP message map."""
    built = {"samp.mtype": mtype, "samp.params": params if params is not None else {}}
    built.update(extra)
    return built


def ok(result=None):
    """A successful SAMP response map."""
    return {"samp.status": "samp.ok", "samp.result": result if result is not None else {}}


class TestClient:
    """
    A SAMP client for tests: an XML-RPC proxy to the hub and, when callable,
    a callback server recording everything the hub delivers.

    :ivar events: ``(kind, args)`` tuples in arrival order, where *kind* is
        ``"notification"``, ``"call"`` or ``"response"``.
    """

    def __init__(self, testcase, hub):
        self._testcase = testcase
        self.hub = hub
        self.proxy = XMLRPCProxy(hub.url, reactor, timeout=WAIT)
        testcase.addCleanup(self.proxy.close)
        self.events = []
        self._waiters = []
        self._hanging = []
        self.hang_mtypes = set()
        self.fault_mtypes = set()
        self.fault_suffix = ""
        self.keys_seen = []
        self.key = None
        self.id = None
        self.url = None

    async def register(self, callable=True, metadata=None, subscriptions=None):
        """
        Register, and optionally set a callback, metadata and subscriptions.

        :return: this client.
        """
        info = await self.proxy.call("samp.hub.register", self.hub.params["samp.secret"])
        self.reg_info = info
        self.key = info["samp.private-key"]
        self.id = info["samp.self-id"]
        if callable:
            self.url = self._listen()
            await self.hub_call("setXmlrpcCallback", self.url)
        if metadata is not None:
            await self.hub_call("declareMetadata", metadata)
        if subscriptions is not None:
            await self.hub_call("declareSubscriptions", subscriptions)
        return self

    def hub_call(self, method, *args):
        """Call ``samp.hub.<method>`` with our private key first."""
        return self.proxy.call(f"samp.hub.{method}", self.key, *args)

    def _listen(self):
        procedures = {
            "samp.client.receiveNotification": self._receive_notification,
            "samp.client.receiveCall": self._receive_call,
            "samp.client.receiveResponse": self._receive_response,
        }
        tracker = ConnectionTracker(make_site(XMLRPCResource(procedures)))
        port = reactor.listenTCP(0, tracker, interface="127.0.0.1")
        self._testcase.addCleanup(tracker.close_all, reactor, 2.0)
        self._testcase.addCleanup(port.stopListening)
        self._testcase.addCleanup(self._release_hanging)
        self.port = port
        return f"http://127.0.0.1:{port.getHost().port}/"

    def _release_hanging(self):
        for d in self._hanging:
            if not d.called:
                d.callback("")

    def _handle(self, key, kind, args, mtype):
        self.keys_seen.append(key)
        if mtype in self.fault_mtypes:
            raise xmlrpc.client.Fault(1, f"test client refuses {mtype}{self.fault_suffix}")
        self._record((kind, args))
        if mtype in self.hang_mtypes:
            d = defer.Deferred()
            self._hanging.append(d)
            return d
        return ""

    def _receive_notification(self, key, sender_id, msg):
        return self._handle(key, "notification", (sender_id, msg), msg.get("samp.mtype"))

    def _receive_call(self, key, sender_id, msg_id, msg):
        return self._handle(key, "call", (sender_id, msg_id, msg), msg.get("samp.mtype"))

    def _receive_response(self, key, responder_id, msg_tag, response):
        return self._handle(key, "response", (responder_id, msg_tag, response), None)

    def _record(self, event):
        self.events.append(event)
        for waiter in list(self._waiters):
            predicate, d = waiter
            if d.called:
                self._waiters.remove(waiter)
            elif predicate(event):
                self._waiters.remove(waiter)
                d.callback(event)

    def wait_for(self, predicate, timeout=WAIT):
        """
        The first event, past or future, for which *predicate* is true.

        :return: a Deferred firing with ``(kind, args)``.
        """
        for event in self.events:
            if predicate(event):
                return defer.succeed(event)
        d = defer.Deferred()
        self._waiters.append((predicate, d))
        return d.addTimeout(timeout, reactor)

    def notification(self, mtype, timeout=WAIT):
        """Wait for a notification of *mtype*; fires with (sender, message)."""
        d = self.wait_for(
            lambda e: e[0] == "notification" and e[1][1]["samp.mtype"] == mtype, timeout
        )
        return d.addCallback(lambda e: e[1])

    def event_about(self, mtype, client_id, timeout=WAIT):
        """Wait for the hub event *mtype* about *client_id*; fires with its params."""
        d = self.wait_for(
            lambda e: e[0] == "notification"
            and e[1][1]["samp.mtype"] == mtype
            and e[1][1]["samp.params"].get("id") == client_id,
            timeout,
        )
        return d.addCallback(lambda e: e[1][1]["samp.params"])

    def call_received(self, mtype, timeout=WAIT):
        """Wait for a call of *mtype*; fires with (sender, msg-id, message)."""
        d = self.wait_for(lambda e: e[0] == "call" and e[1][2]["samp.mtype"] == mtype, timeout)
        return d.addCallback(lambda e: e[1])

    def response(self, tag, timeout=WAIT):
        """Wait for a response with *tag*; fires with (responder, tag, response)."""
        d = self.wait_for(lambda e: e[0] == "response" and e[1][1] == tag, timeout)
        return d.addCallback(lambda e: e[1])

    def count(self, kind):
        """How many events of *kind* arrived."""
        return sum(1 for e in self.events if e[0] == kind)


class HubTestCase(unittest.TestCase):
    """Runs a hub on loopback for each test."""

    timeout = 60
    hub_options = {}

    async def start_hub(self, **options):
        """Start a hub with a lockfile in a temporary directory."""
        directory = self.mktemp()
        os.makedirs(directory)
        options = {**self.hub_options, **options}
        hub = await start_hub(reactor, lockfile=os.path.join(directory, "samp"), **options)
        self.addCleanup(hub.stop)
        return hub

    async def setUp(self):
        self.hub = await self.start_hub()

    async def client(self, callable=True, metadata=None, subscriptions=None, hub=None):
        """A registered test client."""
        client = TestClient(self, hub or self.hub)
        return await client.register(callable, metadata, subscriptions)

    async def assertFault(self, d, *fragments):
        """Check that *d* fails with a fault whose text has *fragments*."""
        try:
            result = await d
        except xmlrpc.client.Fault as fault:
            for fragment in fragments:
                self.assertIn(fragment, fault.faultString)
            return fault
        self.fail(f"expected a fault, got {result!r}")


class LifecycleTests(HubTestCase):
    """Starting, stopping and the lockfile as clients see it."""

    def test_lockfile_content(self):
        """The lockfile names the hub's URL, secret and profile version."""
        params = self.hub.params
        self.assertEqual(params["samp.hub.xmlrpc.url"], self.hub.url)
        self.assertEqual(params["samp.profile.version"], "1.3")
        self.assertTrue(self.hub.url.startswith("http://127.0.0.1:"))
        self.assertGreaterEqual(len(params["samp.secret"]), 32)
        for key in ("hub.impl", "hub.label", "hub.start.date"):
            self.assertIn(key, params)
        with open(self.hub.lockfile) as f:
            text = f.read()
        self.assertIn(f"samp.secret={params['samp.secret']}\n", text)
        self.assertTrue(self.hub.is_running)

    async def test_stop_removes_lockfile(self):
        """Stopping removes our lockfile and stops listening."""
        hub = await self.start_hub()
        proxy = XMLRPCProxy(hub.url, reactor, timeout=WAIT)
        self.addCleanup(proxy.close)
        self.assertEqual(await proxy.call("samp.hub.ping"), "1")
        await hub.stop()
        self.assertFalse(hub.is_running)
        self.assertFalse(os.path.exists(hub.lockfile))
        with self.assertRaises(Exception):
            await proxy.call("samp.hub.ping")
        # stopping twice is harmless
        await hub.stop()

    async def test_service(self):
        """startService starts the hub, stopService stops it."""
        directory = self.mktemp()
        os.makedirs(directory)
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(directory, "samp"))
        started = hub.start()
        hub.startService()
        self.assertIs(await started, hub)
        self.assertTrue(hub.running)
        self.assertTrue(hub.is_running)
        await hub.stopService()
        self.assertFalse(hub.is_running)
        self.assertFalse(os.path.exists(os.path.join(directory, "samp")))

    async def test_shutdown_event(self):
        """Subscribed clients hear samp.hub.event.shutdown when the hub stops."""
        hub = await self.start_hub()
        watcher = await self.client(subscriptions={"samp.hub.event.*": {}}, hub=hub)
        other = await self.client(subscriptions={"x.y": {}}, hub=hub)
        await hub.stop()
        sender, msg = await watcher.notification("samp.hub.event.shutdown")
        self.assertEqual(sender, HUB_ID)
        self.assertEqual(other.count("notification"), 0)

    async def test_stop_does_not_wait_for_hanging_clients(self):
        """Stopping waits at most shutdown_timeout for clients to take the
        shutdown notification, and cancels deliveries still in flight."""
        hub = await self.start_hub(shutdown_timeout=0.5, client_timeout=30.0)
        sender = await self.client(callable=False, hub=hub)
        stuck = await self.client(subscriptions={"samp.hub.event.*": {}, "test.*": {}}, hub=hub)
        stuck.hang_mtypes.update({"samp.hub.event.shutdown", "test.hang"})
        for _ in range(25):  # more than the deliveries allowed in flight
            await sender.hub_call("notify", stuck.id, message("test.hang"))
        await stuck.wait_for(lambda e: stuck.count("notification") >= 20)
        started = reactor.seconds()
        await hub.stop()
        self.assertLess(reactor.seconds() - started, 5.0)

    async def test_stop_fails_waiting_calls(self):
        """A callAndWait still waiting when the hub stops gets a fault."""
        hub = await self.start_hub()
        sender = await self.client(callable=False, hub=hub)
        recipient = await self.client(subscriptions={"test.echo": {}}, hub=hub)
        waiting = sender.hub_call("callAndWait", recipient.id, message("test.echo"), "0")
        await recipient.call_received("test.echo")
        await hub.stop()
        await self.assertFault(waiting, "shutting down")

    async def test_requests_while_stopping_refused(self):
        """
        While the hub stops (here waiting for a client to take the shutdown
        notification), messages are refused with a fault, so no call is
        left that could never be answered; unregistering still works.
        """
        hub = await self.start_hub(shutdown_timeout=5.0, client_timeout=30.0)
        sender = await self.client(callable=False, hub=hub)
        slow = await self.client(subscriptions={"samp.hub.event.*": {}, "test.*": {}}, hub=hub)
        slow.hang_mtypes.add("samp.hub.event.shutdown")
        stopped = hub.stop()
        await slow.wait_for(lambda e: slow.count("notification") >= 1)
        await self.assertFault(sender.hub_call("callAndWait", slow.id, message("test.echo"), "0"), "shutting down")
        await self.assertFault(sender.hub_call("notify", slow.id, message("test.echo")), "shutting down")
        self.assertEqual(await sender.hub_call("unregister"), "")
        slow._release_hanging()
        await stopped

    async def test_register_refused_while_stopped(self):
        """Nobody can register once the hub has stopped."""
        hub = await self.start_hub()
        secret = hub.params["samp.secret"]
        self.assertEqual(hub._profile._register(secret)["samp.hub-id"], HUB_ID)
        await hub.stop()
        self.assertRaises(xmlrpc.client.Fault, hub._profile._register, secret)


class RegistrationTests(HubTestCase):
    """register, unregister, ping and private keys."""

    async def test_register(self):
        """reg-info names the hub, the client and a private key."""
        client = await self.client(callable=False)
        info = client.reg_info
        self.assertEqual(set(info), {"samp.hub-id", "samp.self-id", "samp.private-key"})
        self.assertEqual(info["samp.hub-id"], HUB_ID)
        self.assertEqual(info["samp.self-id"], "c1")
        self.assertEqual(await client.hub_call("getMetadata", client.id), {})
        self.assertEqual(await client.hub_call("getSubscriptions", client.id), {})
        self.assertEqual(self.hub.registered_clients, ["c1"])

    async def test_bad_secret(self):
        """A wrong or non-string secret is refused."""
        proxy = XMLRPCProxy(self.hub.url, reactor, timeout=WAIT)
        self.addCleanup(proxy.close)
        await self.assertFault(proxy.call("samp.hub.register", "not the secret"), "secret")
        await self.assertFault(proxy.call("samp.hub.register", ["x"]), "secret")
        await self.assertFault(proxy.call("samp.hub.register", "\u00e9t\u00e9"), "not SAMP data")

    async def test_non_samp_arguments(self):
        """XML-RPC ints, booleans, doubles and nil are refused, as JSAMP does."""
        proxy = XMLRPCProxy(self.hub.url, reactor, timeout=WAIT)
        self.addCleanup(proxy.close)
        for value in (3, True, 1.5, {"samp.mtype": "a.b", "samp.params": {"n": 3}}):
            await self.assertFault(proxy.call("samp.hub.register", value), "not SAMP data")

    async def test_non_samp_arguments_of_operations(self):
        """
        The hub operations refuse non-SAMP data as it arrives over the wire
        (the resource passes it through unconverted, the core checks it),
        and ping refuses it too.
        """
        sender = await self.client(callable=False)
        receiver = await self.client(subscriptions={"test.a": {}})
        bad = {"samp.mtype": "test.a", "samp.params": {"n": 3}}
        await self.assertFault(sender.hub_call("notifyAll", bad), "not SAMP data", "samp.params['n'] is int 3")
        await self.assertFault(sender.hub_call("declareMetadata", {"samp.name": True}), "not SAMP data")
        await self.assertFault(sender.proxy.call("samp.hub.ping", 1.5), "not SAMP data")
        self.assertEqual(await sender.hub_call("notifyAll", {"samp.mtype": "test.a", "samp.params": {"n": "3"}}), [receiver.id])

    async def test_unknown_private_key(self):
        """Every keyed method refuses an unknown or expired private key."""
        client = await self.client(callable=False)
        proxy = client.proxy
        await self.assertFault(
            proxy.call("samp.hub.getRegisteredClients", "nonsense"), "unknown private key"
        )
        await self.assertFault(proxy.call("samp.hub.declareMetadata", ["x"], {}), "private key")
        await client.hub_call("unregister")
        for method, args in [
            ("unregister", ()),
            ("declareMetadata", ({},)),
            ("getMetadata", (HUB_ID,)),
            ("notifyAll", (message("x.y"),)),
            ("reply", ("m1", ok())),
        ]:
            await self.assertFault(client.hub_call(method, *args), "unknown private key")

    async def test_ping(self):
        """ping works with no argument and with a private key."""
        client = await self.client(callable=False)
        self.assertEqual(await client.proxy.call("samp.hub.ping"), "1")
        self.assertEqual(await client.hub_call("ping"), "1")
        await self.assertFault(client.proxy.call("samp.hub.ping", "a", "b"), "bad arguments")

    async def test_unknown_method_and_argument_counts(self):
        """Unknown methods and wrong argument counts are faults."""
        client = await self.client(callable=False)
        await self.assertFault(client.hub_call("noSuchMethod"), "unknown method")
        await self.assertFault(client.proxy.call("samp.hub.register"), "bad arguments")
        await self.assertFault(client.hub_call("notify", "c1"), "bad arguments")
        await self.assertFault(client.hub_call("getMetadata", "a", "b"), "bad arguments")

    async def test_callback_url_checked(self):
        """setXmlrpcCallback needs an http URL."""
        client = await self.client(callable=False)
        await self.assertFault(client.hub_call("setXmlrpcCallback", "ftp://x/"), "http")
        await self.assertFault(client.hub_call("setXmlrpcCallback", ["x"]), "string")

    async def test_every_method_reaches_the_core(self):
        """The keyed samp.hub.* methods not used elsewhere here answer with
        the core's results."""
        caller = await self.client(subscriptions={"test.*": {}})
        other = await self.client(subscriptions={"test.echo": {"x": "y"}})
        self.assertEqual(await caller.hub_call("getSubscriptions", other.id), {"test.echo": {"x": "y"}})
        self.assertEqual(await caller.hub_call("getSubscribedClients", "test.echo"), {other.id: {"x": "y"}})
        self.assertEqual(await caller.hub_call("notifyAll", message("test.echo")), [other.id])
        ids = await caller.hub_call("callAll", "t", message("test.echo"))
        self.assertEqual(list(ids), [other.id])
        _, msg_id, _ = await other.call_received("test.echo")
        self.assertEqual(msg_id, ids[other.id])

    async def test_async_call_to_hub(self):
        """An asynchronous ping to the hub is answered through receiveResponse."""
        client = await self.client()
        msg_id = await client.hub_call("call", HUB_ID, "t1", message("samp.app.ping"))
        self.assertIsInstance(msg_id, str)
        responder, tag, response = await client.response("t1")
        self.assertEqual((responder, response), (HUB_ID, ok()))
        self.assertEqual(client.keys_seen, [client.key])


class EventTests(HubTestCase):
    """samp.hub.event.* notifications."""

    async def test_events(self):
        """Register, metadata, subscriptions and unregister events reach
        subscribers, including the client they describe."""
        watcher = await self.client()
        await watcher.hub_call("declareSubscriptions", {"samp.hub.event.*": {}})
        await watcher.hub_call("declareMetadata", {"samp.name": "watcher"})
        params = await watcher.event_about("samp.hub.event.metadata", watcher.id)
        self.assertEqual(params["metadata"], {"samp.name": "watcher"})
        params = await watcher.event_about("samp.hub.event.subscriptions", watcher.id)
        self.assertEqual(params["subscriptions"], {"samp.hub.event.*": {}})

        other = await self.client(metadata={"samp.name": "other"}, subscriptions={"x.y": {"a": "b"}})
        await watcher.event_about("samp.hub.event.register", other.id)
        params = await watcher.event_about("samp.hub.event.metadata", other.id)
        self.assertEqual(params["metadata"], {"samp.name": "other"})
        params = await watcher.event_about("samp.hub.event.subscriptions", other.id)
        self.assertEqual(params["subscriptions"], {"x.y": {"a": "b"}})
        await other.hub_call("unregister")
        await watcher.event_about("samp.hub.event.unregister", other.id)
        for kind, (sender, msg) in watcher.events:
            self.assertEqual(sender, HUB_ID)
        self.assertEqual(set(watcher.keys_seen), {watcher.key})


class RoutingTests(HubTestCase):
    """notify, notifyAll, call, callAll, reply and callAndWait."""

    async def test_notify(self):
        """A notification arrives unchanged, extra keys included."""
        sender = await self.client(callable=False)
        recipient = await self.client(subscriptions={"test.*": {}})
        msg = message("test.note", {"a": ["1", {"b": ""}]}, **{"test.extra": "kept"})
        self.assertEqual(await sender.hub_call("notify", recipient.id, msg), "")
        self.assertEqual(await recipient.notification("test.note"), (sender.id, msg))
        self.assertEqual(recipient.keys_seen, [recipient.key])

    async def test_big_message_encoded_once_in_thread(self):
        """A big notification to several recipients is encoded once, in the
        reactor's thread pool, and arrives whole at each."""
        threads_used = []
        encoded = CachedMap.encoded

        def recording(cached):
            if not cached.is_encoded:
                threads_used.append(threading.current_thread() is threading.main_thread())
            return encoded(cached)

        self.patch(CachedMap, "encoded", recording)
        self.patch(_delivery, "ENCODE_IN_THREAD_BYTES", 1024 * 1024)  # (a smaller message: a faster test)
        sender = await self.client(callable=False)
        recipients = [await self.client(subscriptions={"test.*": {}}) for _ in range(3)]
        msg = message("test.rows", {"row-list": [str(i) for i in range(60_000)]})
        notified = await sender.hub_call("notifyAll", msg)
        self.assertEqual(sorted(notified), sorted(r.id for r in recipients))
        for recipient in recipients:
            self.assertEqual(await recipient.notification("test.rows"), (sender.id, msg))
        self.assertEqual(threads_used, [False])

    async def test_long_list_passed_on_as_received(self):
        """A long list of plain strings is checked and passed on as the hub
        received it, without a string made of it; one with a row SAMP
        forbids is refused, naming the row; one with a row to unescape is
        read and passed on as any other."""
        kept, made = [], []
        find = _codec.find_verbatim
        self.patch(_codec, "find_verbatim", lambda *a: kept.append(find(*a)) or kept[-1])
        self.patch(VerbatimStrings, "strings", lambda self: made.append(self) or [])
        sender = await self.client(callable=False)
        recipient = await self.client(subscriptions={"test.*": {}})
        rows = [str(i) for i in range(5000)]
        msg = message("test.rows", {"row-list": rows, "other": {"more": rows}})
        await sender.hub_call("notify", recipient.id, msg)
        self.assertEqual(await recipient.notification("test.rows"), (sender.id, msg))
        # (The first list's end is guessed wrong once: the other follows it.)
        self.assertEqual([type(k) for k in kept if k is not None], [VerbatimStrings, VerbatimStrings])
        self.assertEqual(made, [])

        escaped = message("test.escaped", {"row-list": rows[:2500] + ["a&b<c>"] + rows[2500:]})
        await sender.hub_call("notify", recipient.id, escaped)
        self.assertEqual(await recipient.notification("test.escaped"), (sender.id, escaped))

        forbidden = message("test.rows", {"row-list": rows[:2500] + ["\xe9"] + rows[2500:]})
        await self.assertFault(sender.hub_call("notify", recipient.id, forbidden), "row-list'][2500]")

    async def test_encoding_waiter_cancelled(self):
        """A recipient that leaves while a big message is encoded for it
        (its wait cancelled) does not disturb the others."""
        delivery = PushDelivery(reactor, 10.0, 3, 8, 100, 5.0)
        big = CachedMap({"samp.mtype": "x.y", "samp.params": {"rows": ["1"] * 200_000}})
        first, second = (delivery.encoded(big, ENCODE_IN_THREAD_BYTES) for _ in range(2))
        first.cancel()
        self.failureResultOf(first, defer.CancelledError)
        await second
        self.assertTrue(big.is_encoded)
        self.assertIsNone(delivery.encoded(big, ENCODE_IN_THREAD_BYTES))  # done: sent at once
        self.assertIsNone(delivery.encoded(CachedMap(big), ENCODE_IN_THREAD_BYTES - 1))  # small

    async def test_call_and_reply(self):
        """A call reaches the recipient; the reply reaches the sender's
        receiveResponse with the sender's tag."""
        sender = await self.client()
        recipient = await self.client(subscriptions={"test.echo": {}})
        msg = message("test.echo", {"x": "1"})
        msg_id = await sender.hub_call("call", recipient.id, "my-tag", msg)
        got_sender, got_id, got_msg = await recipient.call_received("test.echo")
        self.assertEqual((got_sender, got_id, got_msg), (sender.id, msg_id, msg))
        response = dict(ok({"x": "1"}), **{"test.extra": "kept"})
        self.assertEqual(await recipient.hub_call("reply", msg_id, response), "")
        self.assertEqual(await sender.response("my-tag"), (recipient.id, "my-tag", response))

    async def test_call_and_wait(self):
        """callAndWait returns the recipient's response; "0" waits without limit."""
        sender = await self.client(callable=False)
        recipient = await self.client(subscriptions={"test.echo": {}})
        waiting = sender.hub_call("callAndWait", recipient.id, message("test.echo", {"v": "1"}), "0")
        got_sender, msg_id, msg = await recipient.call_received("test.echo")
        self.assertEqual(got_sender, sender.id)
        self.assertNoResult(waiting)
        response = ok(msg["samp.params"])
        await recipient.hub_call("reply", msg_id, response)
        self.assertEqual(await waiting, response)

    async def test_answered_before_delivery(self):
        """notify and call answer at once even if the recipient never returns."""
        sender = await self.client()
        recipient = await self.client(subscriptions={"test.*": {}})
        recipient.hang_mtypes.add("test.hang")
        for _ in range(3):
            self.assertEqual(await sender.hub_call("notify", recipient.id, message("test.hang")), "")
            await sender.hub_call("call", recipient.id, "t", message("test.hang"))
        await recipient.wait_for(lambda e: e[0] == "call")

class DeliveryFailureTests(HubTestCase):
    """Slow, hanging, refusing and vanished clients."""

    # Deliveries that should succeed get WAIT seconds, as on a busy machine
    # they may need; the tests of hanging clients start a hub with 1 s.
    hub_options = {"client_timeout": WAIT, "max_delivery_failures": 2}

    async def dead_client(self, subscriptions):
        """A registered client whose callback URL refuses connections."""
        client = await self.client(subscriptions=subscriptions)
        await client.port.stopListening()
        return client

    async def test_unreachable_call(self):
        """A call that cannot be delivered is answered with samp.error."""
        sender = await self.client()
        dead = await self.dead_client({"test.echo": {}})
        await sender.hub_call("call", dead.id, "t", message("test.echo"))
        responder, tag, response = await sender.response("t")
        self.assertEqual(responder, dead.id)
        self.assertEqual(response["samp.status"], "samp.error")
        self.assertIn("samp.client.receiveCall", response["samp.error"]["samp.errortxt"])

    async def test_unreachable_call_and_wait(self):
        """callAndWait to an unreachable client returns a samp.error response."""
        sender = await self.client(callable=False)
        dead = await self.dead_client({"test.echo": {}})
        response = await sender.hub_call("callAndWait", dead.id, message("test.echo"), "0")
        self.assertEqual(response["samp.status"], "samp.error")

    async def test_dropped_after_failures(self):
        """After max_delivery_failures failures in a row the client is
        dropped and everyone hears samp.hub.event.unregister."""
        watcher = await self.client(subscriptions={"samp.hub.event.unregister": {}})
        sender = await self.client(callable=False)
        dead = await self.dead_client({"test.*": {}})
        await sender.hub_call("notify", dead.id, message("test.a"))
        await sender.hub_call("notify", dead.id, message("test.b"))
        await watcher.event_about("samp.hub.event.unregister", dead.id)
        self.assertNotIn(dead.id, self.hub.registered_clients)
        await self.assertFault(dead.hub_call("getRegisteredClients"), "unknown private key")
        await self.assertFault(sender.hub_call("notify", dead.id, message("test.a")), dead.id)

    async def test_failures_at_replaced_callback_not_counted(self):
        """
        Deliveries failing at a callback URL the client has since replaced
        do not count against it: it is not dropped, and its new URL is used.
        """
        hub = await self.start_hub(client_timeout=1.0)
        sender = await self.client(hub=hub)
        moving = await self.client(subscriptions={"test.*": {}}, hub=hub)
        moving.hang_mtypes.add("test.hang")
        for tag in ("a", "b"):
            await sender.hub_call("call", moving.id, tag, message("test.hang"))
        await moving.wait_for(lambda e: moving.count("call") == 2)
        moving.url = moving._listen()
        await moving.hub_call("setXmlrpcCallback", moving.url)
        for tag in ("a", "b"):
            _, _, response = await sender.response(tag)
            self.assertIn("timed out", response["samp.error"]["samp.errortxt"])
        self.assertIn(moving.id, hub.registered_clients)
        await sender.hub_call("notify", moving.id, message("test.after"))
        await moving.notification("test.after")

    async def test_hanging_client_does_not_stall_others(self):
        """A callback that does not return delays nobody else: on a hub that
        would wait a minute for it, another client gets its notification at
        once, while the hung call is still unanswered.  (That it then times
        out: test_failures_at_replaced_callback_not_counted.)"""
        hub = await self.start_hub(client_timeout=60.0)
        sender = await self.client(hub=hub)
        hanging = await self.client(subscriptions={"test.*": {}}, hub=hub)
        hanging.hang_mtypes.update({"test.hang"})
        healthy = await self.client(subscriptions={"test.*": {}}, hub=hub)
        await sender.hub_call("call", hanging.id, "h", message("test.hang"))
        await hanging.call_received("test.hang")
        await sender.hub_call("notify", healthy.id, message("test.quick"))
        await healthy.notification("test.quick")
        self.assertEqual(sender.count("response"), 0)
        self.assertIn(hanging.id, hub.registered_clients)

    async def test_disconnect_sent_when_dropped(self):
        """A client dropped for timing out is told samp.hub.disconnect."""
        hub = await self.start_hub(client_timeout=1.0)
        sender = await self.client(hub=hub)
        slow = await self.client(subscriptions={"test.*": {}, "samp.hub.disconnect": {}}, hub=hub)
        slow.hang_mtypes.add("test.hang")
        await sender.hub_call("notify", slow.id, message("test.hang"))
        await sender.hub_call("notify", slow.id, message("test.hang"))
        hub_id, msg = await slow.notification("samp.hub.disconnect")
        self.assertEqual(hub_id, HUB_ID)
        self.assertIn("reason", msg["samp.params"])
        self.assertNotIn(slow.id, hub.registered_clients)

    async def test_refusal_text_made_legal(self):
        """A recipient's fault text that SAMP could not carry (non-ASCII,
        very long) reaches the sender cleaned and cut."""
        sender = await self.client()
        picky = await self.client(subscriptions={"test.*": {}})
        picky.fault_mtypes.add("test.refused")
        picky.fault_suffix = " caf\xe9" + "!" * 10_000
        await sender.hub_call("call", picky.id, "t", message("test.refused"))
        _, _, response = await sender.response("t")
        text = response["samp.error"]["samp.errortxt"]
        self.assertIn("test.refused caf?!!!", text)
        self.assertLessEqual(len(text), 4096)
        self.assertTrue(text.endswith("..."))

    async def test_fault_is_not_a_transport_failure(self):
        """A client answering with a fault stays registered; a refused call
        gets a samp.error response."""
        sender = await self.client()
        picky = await self.client(subscriptions={"test.*": {}})
        picky.fault_mtypes.add("test.refused")
        for i in range(4):
            await sender.hub_call("call", picky.id, f"t{i}", message("test.refused"))
        for i in range(4):
            _, _, response = await sender.response(f"t{i}")
            self.assertIn("refused", response["samp.error"]["samp.errortxt"])
        self.assertIn(picky.id, self.hub.registered_clients)
        await sender.hub_call("notify", picky.id, message("test.fine"))
        await picky.notification("test.fine")

    async def test_queue_beyond_concurrency(self):
        """More deliveries than the concurrency limit wait and all arrive."""
        hub = await self.start_hub(max_concurrent_deliveries=2)
        sender = await self.client(callable=False, hub=hub)
        recipient = await self.client(subscriptions={"test.*": {}}, hub=hub)
        for i in range(30):
            await sender.hub_call("notify", recipient.id, message("test.n", {"i": str(i)}))
        await recipient.wait_for(lambda e: recipient.count("notification") == 30)
        received = sorted(int(msg["samp.params"]["i"]) for _, (_, msg) in recipient.events)
        self.assertEqual(received, list(range(30)))

    async def test_queue_overflow(self):
        """Past max_queued_deliveries, a call fails at once with samp.error."""
        hub = await self.start_hub(max_concurrent_deliveries=1, max_queued_deliveries=1)
        sender = await self.client(hub=hub)
        recipient = await self.client(subscriptions={"test.*": {}}, hub=hub)
        recipient.hang_mtypes.add("test.hang")
        await sender.hub_call("notify", recipient.id, message("test.hang"))
        await recipient.notification("test.hang")
        await sender.hub_call("notify", recipient.id, message("test.queued"))
        await sender.hub_call("call", recipient.id, "over", message("test.over"))
        _, _, response = await sender.response("over")
        self.assertIn("too many", response["samp.error"]["samp.errortxt"])

    async def test_new_callback_url(self):
        """setXmlrpcCallback again moves delivery to the new URL."""
        sender = await self.client(callable=False)
        client = await self.client(subscriptions={"test.*": {}})
        replacement = TestClient(self, self.hub)
        url = replacement._listen()
        await client.hub_call("setXmlrpcCallback", url)
        await sender.hub_call("notify", client.id, message("test.moved"))
        sender_id, _ = await replacement.notification("test.moved")
        self.assertEqual(sender_id, sender.id)
        self.assertEqual(replacement.keys_seen, [client.key])
