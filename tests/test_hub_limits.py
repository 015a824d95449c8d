# -*- test-case-name: tests.test_hub_limits -*-
"""
Tests for the hub's callback URL policy
(:mod:`sampy_twisted._callback_policy`) and its byte bounds on what it
holds for each client (:func:`sampy_twisted._limits.message_size`,
``HubCore``'s ``max_queued_bytes``, ``PushChannel.queued_bytes``).

No test delivers anything to a non-loopback address: refused URLs never get
a proxy, and accepted ones are unregistered before any delivery.
"""

import ipaddress
import socket
import time
import xmlrpc.client

from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address
from twisted.trial import unittest

from sampy_twisted._callback_policy import (
    CallbackHostPolicy,
    CallbackURLRefused,
    callback_hosts_option,
    is_local_address,
)
from sampy_twisted._hubcore import HubCore
from sampy_twisted._stdprofile import StandardProfile
from sampy_twisted._limits import DEFAULT_MAX_QUEUED_BYTES, message_size
from sampy_twisted._codec import dumps_call

from .test_hub import HubTestCase, message
from .test_hub_core import FakeProxyDelivery

MB = 1024 * 1024


def big_message(mtype, size=MB):
    """A message of about *size* bytes."""
    return message(mtype, {"data": "x" * size})


def own_network_address():
    """
    A non-loopback address of this machine, or ``None``: the source address
    the system would use towards a TEST-NET host (connecting a UDP socket
    sends nothing).
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if ipaddress.ip_address(address).is_loopback else address


# -- the callback URL policy ----------------------------------------------


class FakeResolver:
    """A ``nameResolver`` answering from a table, recording the names asked."""

    def __init__(self, table):
        self.table = table
        self.asked = []
        self.slow = []

    def resolveHostName(self, receiver, hostname, portNumber=0):
        self.asked.append(hostname)
        receiver.resolutionBegan(None)
        if hostname.startswith("slow"):  # answered by finish_slow, or never
            self.slow.append((receiver, hostname))
            return receiver
        for address in self.table.get(hostname, []):
            receiver.addressResolved(IPv4Address("TCP", address, portNumber))
        receiver.resolutionComplete()
        return receiver

    def finish_slow(self):
        for receiver, hostname in self.slow:
            for address in self.table.get(hostname, []):
                receiver.addressResolved(IPv4Address("TCP", address, 0))
            receiver.resolutionComplete()


class FakeReactor(task.Clock):
    def __init__(self, table):
        super().__init__()
        self.nameResolver = FakeResolver(table)


class PolicyTests(unittest.SynchronousTestCase):
    """:class:`CallbackHostPolicy` on a fake resolver and clock."""

    table = {
        "localhost": ["127.0.0.1"],
        "debian-desktop": ["127.0.1.1"],
        "mixed": ["127.0.0.1", "192.0.2.1"],
        "far": ["10.255.255.1"],
        "nowhere": [],
    }

    def check(self, hosts, url, host):
        self.reactor = FakeReactor(self.table)
        return CallbackHostPolicy(hosts, self.reactor).check(url, host)

    def assertAccepted(self, hosts, url, host):
        self.assertIsNone(self.successResultOf(self.check(hosts, url, host)))

    def assertRefused(self, hosts, url, host, *fragments):
        failure = self.failureResultOf(self.check(hosts, url, host), CallbackURLRefused)
        for fragment in (url, *fragments):
            self.assertIn(fragment, str(failure.value))

    def test_loopback_addresses(self):
        """Loopback addresses, v4 and v6, are accepted without resolving."""
        self.assertAccepted("local", "http://127.0.0.1:5/", "127.0.0.1")
        self.assertAccepted("local", "http://127.1.2.3:5/", "127.1.2.3")
        self.assertAccepted("local", "http://[::1]:5/", "::1")
        self.assertEqual(self.reactor.nameResolver.asked, [])

    def test_names_resolving_to_loopback(self):
        """A name whose every address is loopback is accepted."""
        self.assertAccepted("local", "http://localhost:5/", "localhost")
        self.assertAccepted("local", "http://debian-desktop:5/", "debian-desktop")

    def test_other_hosts_refused(self):
        """Addresses not of this machine are refused, naming URL and rule."""
        self.assertRefused("local", "http://10.255.255.1:1/", "10.255.255.1", "callback_hosts", "this machine")
        self.assertRefused("local", "http://192.0.2.1:1/", "192.0.2.1", "not an address this hub calls back")
        self.assertRefused("local", "http://far:1/", "far", "far is 10.255.255.1")

    def test_every_address_checked(self):
        """A name with one address elsewhere is refused."""
        self.assertRefused("local", "http://mixed:1/", "mixed", "192.0.2.1")

    def test_unresolvable(self):
        """A name without addresses, or taking too long, is refused."""
        self.assertRefused("local", "http://nowhere:1/", "nowhere", "no address")
        d = self.check("local", "http://slow.example:1/", "slow.example")  # never answered
        self.assertNoResult(d)
        self.reactor.advance(11)
        self.assertIn("could not be resolved", str(self.failureResultOf(d, CallbackURLRefused).value))

    def test_no_resolver(self):
        """A reactor without a resolver refuses names, clearly."""
        policy = CallbackHostPolicy("local", task.Clock())
        failure = self.failureResultOf(policy.check("http://x:1/", "x"), CallbackURLRefused)
        self.assertIn("cannot be resolved", str(failure.value))

    def test_any(self):
        """``any`` accepts every host without resolving it."""
        self.assertAccepted("any", "http://10.255.255.1:1/", "10.255.255.1")
        self.assertAccepted("any", "http://far:1/", "far")
        self.assertEqual(self.reactor.nameResolver.asked, [])

    def test_allow_list(self):
        """Listed names and networks are accepted besides this machine's."""
        hosts = ["far", "192.0.2.0/24"]
        self.assertAccepted(hosts, "http://far:1/", "far")
        self.assertAccepted(hosts, "http://192.0.2.1:1/", "192.0.2.1")
        self.assertAccepted(hosts, "http://mixed:1/", "mixed")
        self.assertAccepted(hosts, "http://localhost:1/", "localhost")
        self.assertRefused(hosts, "http://10.255.255.1:1/", "10.255.255.1", "192.0.2.0/24")

    def test_option_parsing(self):
        """``--callback-hosts`` takes local, any, or a list by commas."""
        self.assertEqual(callback_hosts_option("any"), "any")
        self.assertEqual(callback_hosts_option("local"), "local")
        self.assertEqual(callback_hosts_option("a.example, 10.0.0.0/8"), ["a.example", "10.0.0.0/8"])
        self.assertRaises(ValueError, callback_hosts_option, "http://x/")

    def test_local_addresses(self):
        """Loopback and this machine's own addresses are local; others not."""
        self.assertTrue(is_local_address(ipaddress.ip_address("127.0.1.1")))
        self.assertTrue(is_local_address(ipaddress.ip_address("::1")))
        self.assertFalse(is_local_address(ipaddress.ip_address("10.255.255.1")))
        self.assertFalse(is_local_address(ipaddress.ip_address("0.0.0.0")))
        own = own_network_address()
        if own is not None:
            self.assertTrue(is_local_address(ipaddress.ip_address(own)))


class ProfileOrderTests(unittest.SynchronousTestCase):
    """setXmlrpcCallback with names that take their time to resolve."""

    def setUp(self):
        self.reactor = FakeReactor({"slow.local": ["127.0.0.1"]})
        self.core = HubCore(self.reactor, {})
        self.core.running = True
        delivery = FakeProxyDelivery(
            self.reactor, timeout=1.0, max_failures=2, max_concurrent=2, max_queued=10, final_timeout=0.5
        )
        self.profile = StandardProfile(self.core, delivery, self.reactor)
        self.client = self.core.register(delivery)

    def test_later_url_wins(self):
        """A URL set after one still resolving is the one kept."""
        first = self.profile._set_xmlrpc_callback(self.client.private_key, "http://slow.local:1/")
        self.assertNoResult(first)
        second = self.profile._set_xmlrpc_callback(self.client.private_key, "http://127.0.0.1:2/")
        self.assertEqual(self.successResultOf(second), "")
        self.reactor.nameResolver.finish_slow()
        self.assertEqual(self.successResultOf(first), "")
        self.assertEqual(self.client.channel.url, "http://127.0.0.1:2/")

    def test_client_gone_meanwhile(self):
        """A client that left while its URL resolved gets a fault, no channel."""
        d = self.profile._set_xmlrpc_callback(self.client.private_key, "http://slow.local:1/")
        self.core.unregister(self.client)
        self.reactor.nameResolver.finish_slow()
        self.assertIn("no longer registered", self.failureResultOf(d, xmlrpc.client.Fault).value.faultString)
        self.assertIsNone(self.client.channel.proxy)


class CallbackURLTests(HubTestCase):
    """setXmlrpcCallback on a real hub, with the system's resolver."""

    async def set_callback(self, url, hub=None):
        client = await self.client(callable=False, hub=hub)
        try:
            await client.hub_call("setXmlrpcCallback", url)
            channel = (hub or self.hub)._core.clients[client.id].channel
            return channel.url
        finally:
            # Before anything could be delivered there.
            await client.hub_call("unregister")

    async def assertRefusedURL(self, url, hub=None):
        client = await self.client(callable=False, hub=hub)
        channel = (hub or self.hub)._core.clients[client.id].channel
        await self.assertFault(client.hub_call("setXmlrpcCallback", url), url, "callback_hosts")
        self.assertIsNone(channel.proxy)  # nothing could ever connect there
        self.assertEqual(await client.hub_call("unregister"), "")

    async def test_local_urls_accepted(self):
        """Loopback v4 and v6, localhost and this machine's name are accepted."""
        urls = [
            "http://127.0.0.1:1/",
            "http://127.0.1.1:1/",
            "http://[::1]:1/",
            "http://localhost:1/",
            f"http://{socket.gethostname()}:1/",
            f"http://{socket.gethostname()}:1",  # as DS9 gives it
        ]
        own = own_network_address()
        if own is not None:
            urls.append(f"http://{own}:1/")
        for url in urls:
            self.assertEqual(await self.set_callback(url), url)

    async def test_other_hosts_refused(self):
        """Non-local addresses get a fault naming the URL and the rule."""
        await self.assertRefusedURL("http://10.255.255.1:1/")
        await self.assertRefusedURL("http://192.0.2.1:1/")

    async def test_any(self):
        """``callback_hosts="any"`` accepts them (never delivered to here)."""
        hub = await self.start_hub(callback_hosts="any")
        for url in ("http://10.255.255.1:1/", "http://192.0.2.1:1/"):
            self.assertEqual(await self.set_callback(url, hub), url)

    async def test_allow_list(self):
        """An allow-list adds networks to this machine's addresses."""
        hub = await self.start_hub(callback_hosts=["192.0.2.0/24"])
        self.assertEqual(await self.set_callback("http://192.0.2.1:1/", hub), "http://192.0.2.1:1/")
        self.assertEqual(await self.set_callback("http://127.0.0.1:1/", hub), "http://127.0.0.1:1/")
        await self.assertRefusedURL("http://10.255.255.1:1/", hub)

    def test_bad_option(self):
        """A malformed allow-list is refused when the hub is made."""
        from sampy_twisted._hub import SAMPHubServer

        self.assertRaises(ValueError, SAMPHubServer, reactor, callback_hosts=["http://x/"])


# -- bytes held for each client -------------------------------------------


class MessageSizeTests(unittest.SynchronousTestCase):
    """:func:`message_size` estimates the encoded size."""

    def test_close_to_encoding(self):
        """Within a factor of two of the real XML-RPC body, for varied data."""
        samples = [
            message("a.b", {"text": "x" * 500}),
            big_message("a.b", 100_000),
            message("a.b", {"list": [str(n) for n in range(1000)], "map": {f"k{n}": "v" for n in range(500)}}),
        ]
        for sample in samples:
            encoded = len(dumps_call("samp.client.receiveNotification", ("key", "c1", sample)))
            estimate = message_size(sample)
            self.assertLess(encoded / 2, estimate)
            self.assertLess(estimate, encoded * 2)

    def test_deep(self):
        """No recursion: deep data is measured too."""
        value = "x"
        for _ in range(5000):
            value = [value]
        self.assertGreater(message_size(value), 5000)


class StuckRecipientCoreTests(unittest.SynchronousTestCase):
    """
    The core with real push channels on fake proxies that never answer:
    a stuck recipient, a sender of 1 MB messages.
    """

    bound = 8 * MB

    def setUp(self):
        self.clock = task.Clock()
        self.core = HubCore(self.clock, {"samp.name": "Hub"}, max_queued_bytes=self.bound)
        self.core.running = True
        self.delivery = FakeProxyDelivery(
            self.clock, timeout=1.0, max_failures=2, max_concurrent=2, max_queued=10_000, final_timeout=0.5
        )
        self.sender = self.client()
        self.stuck = self.client({"test.*": {}})
        self.other = self.client({"test.*": {}})

    def client(self, subscriptions=None):
        client = self.core.register(self.delivery)
        client.channel.set_url(f"http://127.0.0.1:{client.client_id[1:]}/")
        if subscriptions is not None:
            self.core.declare_subscriptions(client, subscriptions)
        self.clock.advance(0)
        return client

    def answer_all(self, client):
        """Answer every delivery to *client*, those its queue sends next too."""
        calls = client.channel.proxy.calls
        while not all(d.called for _, _, d in calls):
            for _, _, d in list(calls):
                if not d.called:
                    d.callback("")

    def held(self, client):
        return client.outbox_bytes + client.channel.queued_bytes

    def fill(self):
        """Notify the stuck client with 1 MB messages until refused."""
        for n in range(1000):
            try:
                self.core.notify(self.sender, self.stuck.client_id, big_message("test.big"))
            except xmlrpc.client.Fault as fault:
                return n, fault
            self.assertLessEqual(self.held(self.stuck), self.bound)
        self.fail("never refused")

    def test_notify_refused_past_bound(self):
        """Notifications past the bound get a fault; the bound holds."""
        taken, fault = self.fill()
        self.assertEqual(taken, 7)  # 8 MB of 1 MB messages, with their markup
        self.assertIn("max_queued_bytes", fault.faultString)
        self.assertIn(self.stuck.client_id, fault.faultString)
        self.clock.advance(0)
        self.assertLessEqual(self.stuck.channel.queued_bytes, self.bound)
        self.assertEqual(len(self.stuck.channel.in_flight) + len(self.stuck.channel.queue), taken)

    def test_others_unaffected(self):
        """Another client still gets its notifications and calls."""
        self.fill()
        self.assertEqual(self.core.notify(self.sender, self.other.client_id, big_message("test.big")), "")
        msg_id = self.core.call(self.sender, self.other.client_id, "t", message("test.small"))
        self.clock.advance(0)
        sent = [args for method, args, _ in self.other.channel.proxy.calls]
        self.assertEqual([a[1] for a in sent], [self.sender.client_id] * 2)
        self.assertEqual(sent[1][2], msg_id)

    def test_call_answered_with_error(self):
        """A call past the bound is answered with samp.error."""
        self.fill()
        self.sender.channel.queued_bytes = 0
        self.core.call(self.sender, self.stuck.client_id, "t", big_message("test.big"))
        self.clock.advance(0)
        method, args, _ = self.sender.channel.proxy.calls[-1]
        self.assertEqual(method, "samp.client.receiveResponse")
        self.assertEqual(args[1:3], (self.stuck.client_id, "t"))
        self.assertEqual(args[3]["samp.status"], "samp.error")
        self.assertIn("max_queued_bytes", args[3]["samp.error"]["samp.errortxt"])

    def test_call_and_wait_answered_with_error(self):
        """A callAndWait past the bound gets samp.error at once, no timer."""
        self.fill()
        d = self.core.call_and_wait(self.sender, self.stuck.client_id, big_message("test.big"), "30")
        response = self.successResultOf(d)
        self.assertEqual(response["samp.status"], "samp.error")
        self.clock.advance(0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_notify_all_leaves_out_full(self):
        """notifyAll names only the clients it could notify."""
        self.fill()
        self.assertEqual(self.core.notify_all(self.sender, big_message("test.big")), [self.other.client_id])

    def test_reply_refused_until_room(self):
        """A reply to a sender whose queue is full is refused, not lost."""
        msg_id = self.core.call(self.stuck, self.other.client_id, "t", message("test.x"))
        self.clock.advance(0)
        for _ in range(7):
            self.core.notify(self.sender, self.stuck.client_id, big_message("test.big"))
        reply = {"samp.status": "samp.ok", "samp.result": {"x": "y" * MB}}
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            self.core.reply(self.other, msg_id, reply)
        self.assertIn("try again later", caught.exception.faultString)
        # The stuck client wakes up: what it held is delivered, room is made.
        self.clock.advance(0)
        self.answer_all(self.stuck)
        self.assertEqual(self.stuck.channel.queued_bytes, 0)
        self.assertEqual(self.core.reply(self.other, msg_id, reply), "")
        self.clock.advance(0)
        self.assertEqual(self.stuck.channel.proxy.calls[-1][0], "samp.client.receiveResponse")

    def test_bytes_released(self):
        """Delivered, failed or dropped messages give their bytes back."""
        self.fill()
        self.clock.advance(0)
        calls = self.stuck.channel.proxy.calls
        calls[0][2].callback("")
        calls[1][2].errback(xmlrpc.client.Fault(1, "no"))
        held = self.stuck.channel.queued_bytes
        self.assertLess(held, 6 * MB)
        self.assertGreater(held, 5 * MB)
        self.core.unregister(self.stuck)
        self.assertEqual(self.stuck.channel.queued_bytes, 0)

    def test_default_bound(self):
        """The default is 64 MB."""
        self.assertEqual(HubCore(self.clock, {}).max_queued_bytes, DEFAULT_MAX_QUEUED_BYTES)
        self.assertEqual(DEFAULT_MAX_QUEUED_BYTES, 64 * MB)


class StuckRecipientTests(HubTestCase):
    """
    Over loopback: a callback server that never answers, a sender of 1 MB
    notifications, and a third client served meanwhile.
    """

    timeout = 120
    bound = 8 * MB

    async def setUp(self):
        self.hub = await self.start_hub(max_queued_bytes=self.bound, max_concurrent_deliveries=2)

    async def test_stuck_recipient(self):
        sender = await self.client()
        stuck = await self.client(subscriptions={"test.*": {}})
        stuck.hang_mtypes.add("test.big")
        other = await self.client(subscriptions={"test.*": {}})
        record = self.hub._core.clients[stuck.id]
        fault = None
        for n in range(100):
            try:
                await sender.hub_call("notify", stuck.id, big_message("test.big"))
            except xmlrpc.client.Fault as caught:
                fault = caught
                break
            self.assertLessEqual(record.outbox_bytes + record.channel.queued_bytes, self.bound)
        self.assertIsNotNone(fault, "never refused")
        self.assertIn("max_queued_bytes", fault.faultString)
        self.assertLess(n, 9)
        # What the hub holds for the stuck client stays within the bound.
        self.assertLessEqual(record.outbox_bytes + record.channel.queued_bytes, self.bound)
        # The other client is served promptly meanwhile.
        started = time.monotonic()
        self.assertEqual(await other.hub_call("ping"), "1")
        await sender.hub_call("notify", other.id, message("test.small"))
        await other.notification("test.small")
        self.assertLess(time.monotonic() - started, 5.0)
        # A call to the stuck client is answered with samp.error.
        result = await sender.hub_call("callAndWait", stuck.id, big_message("test.big"), "10")
        self.assertEqual(result["samp.status"], "samp.error")


class OptionTests(unittest.SynchronousTestCase):
    """``--callback-hosts`` reaches the hub."""

    def test_callback_hosts_option(self):
        from sampy_twisted._tap_hub import HubOptions, make_hub

        options = HubOptions()
        options.parseOptions(["--callback-hosts", "any"])
        hub = make_hub(options, reactor)
        self.assertTrue(hub._profile._callback_policy.any)
        options = HubOptions()
        options.parseOptions([])
        self.assertFalse(make_hub(options, reactor)._profile._callback_policy.any)


def rss_bytes():
    """This process's resident memory, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise unittest.SkipTest("no VmRSS in /proc/self/status")


class StuckRecipientMemoryTests(HubTestCase):
    """
    The hub's memory with a stuck recipient and 60 MB sent to it: what it
    holds stays near its 8 MB bound (unbounded, it would hold all 60).
    """

    timeout = 120
    bound = 8 * MB
    sent = 60

    async def setUp(self):
        self.hub = await self.start_hub(max_queued_bytes=self.bound, max_concurrent_deliveries=2)

    async def test_memory_stays_bounded(self):
        sender = await self.client()
        stuck = await self.client(subscriptions={"test.*": {}})
        stuck.hang_mtypes.add("test.big")
        payload = big_message("test.big")
        # One message through first, so buffers that are reused exist.
        await sender.hub_call("notify", stuck.id, payload)
        before = rss_bytes()
        refused = 0
        for _ in range(self.sent - 1):
            try:
                await sender.hub_call("notify", stuck.id, payload)
            except xmlrpc.client.Fault:
                refused += 1
        grown = rss_bytes() - before
        self.assertGreater(refused, self.sent - 10)
        self.assertLess(grown, 30 * MB, f"RSS grew by {grown / MB:.1f} MB")
