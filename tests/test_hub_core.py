# -*- test-case-name: tests.test_hub_core -*-
"""
Tests for :mod:`sampy_twisted._hubcore` and :mod:`sampy_twisted._delivery`:
the hub's rules, driven by method calls on a fake clock, with a fake
delivery recording every callback (no reactor, no sockets).
"""

import os
import xmlrpc.client

from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sampy_twisted import _hubcore
from sampy_twisted._delivery import CLOSING_SERVER_DELIVERIES, PushChannel, PushDelivery
from sampy_twisted._hubcore import HUB_ID, HubCore, IChannel, IDelivery


def message(mtype, params=None):
    """A SAMP message map."""
    return {"samp.mtype": mtype, "samp.params": params if params is not None else {}}


def ok(result=None):
    """A successful SAMP response map."""
    return {"samp.status": "samp.ok", "samp.result": result if result is not None else {}}


@implementer(IChannel)
class FakeChannel:
    """
    Records the callbacks the core hands over.

    :ivar events: ``(kind, args)`` in order: ``notification`` (sender,
        message), ``call`` (sender, msg-id, message), ``response``
        (responder, tag, response).
    :ivar on_error: the *on_error* function of each call, by msg-id.
    :ivar closed: ``"close"`` or ``("disconnect", message)`` once closed.
    :ivar sizes: the size given with each event, in order.
    :ivar queued_bytes: what the core reads as held; tests set it.
    """

    def __init__(self, client, on_drop, callable):
        self.client = client
        self.on_drop = on_drop
        self.callable = callable
        self.queued_bytes = 0
        self.sizes = []
        self.events = []
        self.on_error = {}
        self.finals = []
        self.closed = None

    def notify(self, sender_id, message, size=0):
        self.events.append(("notification", (sender_id, message)))
        self.sizes.append(size)

    def call(self, sender_id, msg_id, message, on_error, size=0):
        self.events.append(("call", (sender_id, msg_id, message)))
        self.on_error[msg_id] = on_error
        self.sizes.append(size)

    def respond(self, responder_id, msg_tag, response, size=0):
        self.events.append(("response", (responder_id, msg_tag, response)))
        self.sizes.append(size)

    def send_final(self, message):
        self.finals.append(message)
        return defer.succeed(None)

    def disconnect(self, message):
        self.closed = ("disconnect", message)

    def close(self):
        self.closed = "close"

    def of(self, kind):
        """The arguments of the events of *kind*."""
        return [args for k, args in self.events if k == kind]

    def mtypes(self):
        """The MTypes of the notifications received."""
        return [msg["samp.mtype"] for _, msg in self.of("notification")]


@implementer(IDelivery)
class FakeDelivery:
    """Opens :class:`FakeChannel` channels, callable or not."""

    def __init__(self, callable=True):
        self.callable = callable

    def open_channel(self, client, on_drop):
        return FakeChannel(client, on_drop, self.callable)



def register_client(core, clock, callable=True, subscriptions=None, metadata=None):
    """
    Register a client with *core* through a :class:`FakeDelivery`, declare
    its subscriptions and metadata, let the outbox run and forget the hub
    events its channel saw so far.
    """
    client = core.register(FakeDelivery(callable))
    if subscriptions is not None:
        core.declare_subscriptions(client, subscriptions)
    if metadata is not None:
        core.declare_metadata(client, metadata)
    clock.advance(0)
    del client.channel.events[:]
    return client

class CoreTestCase(unittest.SynchronousTestCase):
    """A running core on a :class:`task.Clock`."""

    def setUp(self):
        self.clock = task.Clock()
        self.core = HubCore(self.clock, {"samp.name": "Hub"})
        self.core.running = True

    def client(self, callable=True, subscriptions=None, metadata=None):
        """A registered client's record; its channel is ``.channel``."""
        return register_client(self.core, self.clock, callable, subscriptions, metadata)

    def flush(self):
        """Let the core's outbox run."""
        self.clock.advance(0)

    def assertFault(self, function, *args_and_fragments):
        """
        Check that ``function(*args)`` raises a fault whose text has every
        fragment; the fragments are the trailing string arguments after
        a ``...`` separator.
        """
        split = args_and_fragments.index(...)
        args, fragments = args_and_fragments[:split], args_and_fragments[split + 1:]
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            function(*args)
        for fragment in fragments:
            self.assertIn(fragment, caught.exception.faultString)
        return caught.exception

    def assertFailedWith(self, d, *fragments):
        """Check that Deferred *d* has failed with a fault with *fragments*."""
        fault = self.failureResultOf(d, xmlrpc.client.Fault).value
        for fragment in fragments:
            self.assertIn(fragment, fault.faultString)


class InterfaceTests(unittest.SynchronousTestCase):
    """The fakes and the real delivery provide the interfaces."""

    def test_interfaces(self):
        """PushDelivery and its channels, and the fakes, verify."""
        clock = task.Clock()
        delivery = PushDelivery(clock, 1.0, 3, 2, 10, 1.0)
        verifyObject(IDelivery, delivery)
        verifyObject(IDelivery, FakeDelivery())
        core = HubCore(clock, {})
        core.running = True
        verifyObject(IChannel, core.register(delivery).channel)
        verifyObject(IChannel, core.register(FakeDelivery()).channel)


class RegistrationTests(CoreTestCase):
    """register, private keys, unregister and the running state."""

    def test_register(self):
        """Clients get sequential ids, distinct keys, and reg-info."""
        first, second = self.client(), self.client()
        self.assertEqual((first.client_id, second.client_id), ("c1", "c2"))
        self.assertNotEqual(first.private_key, second.private_key)
        self.assertGreaterEqual(len(first.private_key), 24)
        self.assertEqual(
            self.core.reg_info(first),
            {"samp.hub-id": HUB_ID, "samp.self-id": "c1", "samp.private-key": first.private_key},
        )
        self.assertEqual(list(self.core.clients), ["c1", "c2"])
        self.assertIs(self.core.client_for_key(second.private_key), second)

    def test_unknown_keys(self):
        """Unknown, non-string and expired keys are refused."""
        client = self.client()
        self.assertFault(self.core.client_for_key, "nonsense", ..., "unknown private key")
        self.assertFault(self.core.client_for_key, client.private_key[:-1], ..., "unknown private key")
        self.assertFault(self.core.client_for_key, ["x"], ..., "must be a string", "a list")
        self.core.unregister(client)
        self.assertFault(self.core.client_for_key, client.private_key, ..., "unknown private key")

    def test_ids_never_reused(self):
        """Ids and keys stay unique after clients leave."""
        seen = set()
        for _ in range(5):
            client = self.client()
            seen.add((client.client_id, client.private_key))
            self.core.unregister(client)
        self.assertEqual({cid for cid, _ in seen}, {"c1", "c2", "c3", "c4", "c5"})
        self.assertEqual(len({key for _, key in seen}), 5)

    def test_not_running(self):
        """A core that is not running refuses registrations and operations,
        but lets clients unregister."""
        client = self.client()
        self.core.running = False
        self.assertFault(self.core.register, FakeDelivery(), ..., "not accepting registrations")
        self.assertFault(self.core.check_accepting, ..., "not running")
        self.assertFault(self.core.client_for_key, client.private_key, ..., "shutting down")
        self.assertIs(self.core.client_for_key(client.private_key, stopping_ok=True), client)

    def test_unregister_closes_channel(self):
        """unregister closes the client's channel and forgets it."""
        client = self.client()
        self.assertEqual(self.core.unregister(client), "")
        self.assertEqual(client.channel.closed, "close")
        self.assertEqual(self.core.clients, {})
        self.assertFault(self.core.client_by_id, client.client_id, ..., client.client_id)


class MetadataSubscriptionTests(CoreTestCase):
    """Metadata, subscriptions and matching."""

    def test_metadata(self):
        """Metadata comes back as declared and is replaced by redeclaring."""
        client, other = self.client(), self.client()
        self.assertEqual(self.core.get_metadata(other, client.client_id), {})
        meta = {"samp.name": "T", "x.list": ["a", {"b": "c"}], "x.empty": ""}
        self.core.declare_metadata(client, meta)
        self.assertEqual(self.core.get_metadata(other, client.client_id), meta)
        self.core.declare_metadata(client, {"samp.name": "U"})
        self.assertEqual(self.core.get_metadata(other, client.client_id), {"samp.name": "U"})
        self.assertEqual(self.core.get_metadata(other, HUB_ID), {"samp.name": "Hub"})

    def test_bad_metadata(self):
        """Non-maps and strings SAMP forbids are refused."""
        client = self.client()
        self.assertFault(self.core.declare_metadata, client, "name", ..., "must be a map")
        for text in ("snow\u2603", "caf\u00e9", "\x85"):
            self.assertFault(
                self.core.declare_metadata, client, {"samp.name": text}, ..., "not SAMP data"
            )
        self.assertEqual(self.core.get_metadata(client, client.client_id), {})

    def test_unknown_client_id(self):
        """getMetadata and getSubscriptions fault for an unknown id."""
        client = self.client()
        self.assertFault(self.core.get_metadata, client, "c99", ..., "c99")
        self.assertFault(self.core.get_subscriptions, client, "nobody", ..., "nobody")
        self.assertFault(self.core.get_metadata, client, ["c1"], ..., "string")

    def test_subscriptions_exactly_as_declared(self):
        """Annotations survive; redeclaring replaces the whole set."""
        client = self.client()
        subs = {"a.b": {}, "c.*": {"size": "big", "x": ["1"]}, "*": {}}
        self.core.declare_subscriptions(client, subs)
        self.assertEqual(self.core.get_subscriptions(client, client.client_id), subs)
        self.core.declare_subscriptions(client, {"d.e": {}})
        self.assertEqual(self.core.get_subscriptions(client, client.client_id), {"d.e": {}})

    def test_bad_subscriptions(self):
        """Bad patterns, non-map annotations and non-maps are refused."""
        client = self.client()
        for subs, text in [
            ({"a.*.b": {}}, "not an MType pattern"),
            ({"a.b*": {}}, "not an MType pattern"),
            ({"": {}}, "not an MType pattern"),
            ({"a.b": "yes"}, "annotation map"),
            (["a.b"], "must be a map"),
            ({"a.b": {"x": "\x85"}}, "not SAMP data"),
        ]:
            self.assertFault(self.core.declare_subscriptions, client, subs, ..., text)
        self.assertEqual(self.core.get_subscriptions(client, client.client_id), {})

    def test_subscribed_clients(self):
        """getSubscribedClients gives the most specific annotation, never the caller."""
        caller = self.client(subscriptions={"*": {}})
        a = self.client(subscriptions={"*": {"w": "all"}, "a.b.*": {"w": "ab"}, "a.b.c": {"w": "abc"}})
        b = self.client(subscriptions={"a.*": {"w": "a"}})
        got = self.core.get_subscribed_clients(caller, "a.b.c")
        self.assertEqual(got, {a.client_id: {"w": "abc"}, b.client_id: {"w": "a"}})
        got = self.core.get_subscribed_clients(caller, "a.b.d")
        self.assertEqual(got, {a.client_id: {"w": "ab"}, b.client_id: {"w": "a"}})
        got = self.core.get_subscribed_clients(caller, "a.b")
        self.assertEqual(got, {a.client_id: {"w": "all"}, b.client_id: {"w": "a"}})
        self.assertFault(self.core.get_subscribed_clients, caller, "a.*", ..., "not an MType")
        self.assertFault(self.core.get_subscribed_clients, caller, ["a.b"], ..., "string")

    def test_wildcard_prefix_needs_dot(self):
        """a.b.* matches a.b.c and a.b.c.d, but neither a.b nor a.bx."""
        caller = self.client()
        self.client(subscriptions={"a.b.*": {}})
        self.assertEqual(len(self.core.get_subscribed_clients(caller, "a.b.c")), 1)
        self.assertEqual(len(self.core.get_subscribed_clients(caller, "a.b.c.d")), 1)
        self.assertEqual(self.core.get_subscribed_clients(caller, "a.b"), {})
        self.assertEqual(self.core.get_subscribed_clients(caller, "a.bx"), {})

    def test_not_callable_not_subscribed(self):
        """A client that cannot take callbacks is never a recipient."""
        caller = self.client()
        silent = self.client(callable=False, subscriptions={"x.y": {}})
        self.assertEqual(self.core.get_subscribed_clients(caller, "x.y"), {})
        self.assertFault(self.core.notify, caller, silent.client_id, message("x.y"), ..., "not callable")

    def test_registered_clients(self):
        """getRegisteredClients lists the hub and the others, not the caller."""
        first, second = self.client(), self.client()
        self.assertEqual(self.core.get_registered_clients(first), [HUB_ID, second.client_id])
        self.assertEqual(self.core.get_registered_clients(second), [HUB_ID, first.client_id])
        self.core.unregister(second)
        self.assertEqual(self.core.get_registered_clients(first), [HUB_ID])


class EventTests(CoreTestCase):
    """samp.hub.event.* notifications, from the hub, to subscribers."""

    def test_events(self):
        """Register, metadata, subscriptions and unregister reach
        subscribers, including the client they describe."""
        watcher = self.client()
        self.core.declare_subscriptions(watcher, {"samp.hub.event.*": {}})
        self.core.declare_metadata(watcher, {"samp.name": "watcher"})
        other = self.core.register(FakeDelivery(callable=False))
        self.core.declare_metadata(other, {"samp.name": "other"})
        self.core.declare_subscriptions(other, {"x.y": {"a": "b"}})
        self.core.unregister(other)
        self.assertEqual(watcher.channel.events, [])  # not before the request is answered
        self.flush()
        notes = watcher.channel.of("notification")
        self.assertEqual({sender for sender, _ in notes}, {HUB_ID})
        self.assertEqual(
            [(m["samp.mtype"], m["samp.params"]) for _, m in notes],
            [
                ("samp.hub.event.subscriptions", {"id": watcher.client_id, "subscriptions": {"samp.hub.event.*": {}}}),
                ("samp.hub.event.metadata", {"id": watcher.client_id, "metadata": {"samp.name": "watcher"}}),
                ("samp.hub.event.register", {"id": other.client_id}),
                ("samp.hub.event.metadata", {"id": other.client_id, "metadata": {"samp.name": "other"}}),
                ("samp.hub.event.subscriptions", {"id": other.client_id, "subscriptions": {"x.y": {"a": "b"}}}),
                ("samp.hub.event.unregister", {"id": other.client_id}),
            ],
        )

    def test_own_subscriptions_event(self):
        """A client declaring subscriptions to events hears its own."""
        watcher = self.client()
        self.core.declare_subscriptions(watcher, {"samp.hub.event.subscriptions": {}})
        self.flush()
        self.assertEqual(watcher.channel.mtypes(), ["samp.hub.event.subscriptions"])

    def test_one_timer_for_many_deliveries(self):
        """Deliveries queued in one turn share a single delayed call."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.*": {}})
        for _ in range(10):
            self.core.notify(sender, recipient.client_id, message("test.n"))
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.flush()
        self.assertEqual(len(recipient.channel.of("notification")), 10)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class NotifyTests(CoreTestCase):
    """notify and notifyAll."""

    def test_notify(self):
        """A notification arrives unchanged, after the sender is answered."""
        sender = self.client(callable=False)
        recipient = self.client(subscriptions={"test.*": {}})
        msg = dict(message("test.note", {"a": ["1", {"b": ""}]}), **{"test.extra": "kept"})
        self.assertEqual(self.core.notify(sender, recipient.client_id, msg), "")
        self.assertEqual(recipient.channel.events, [])
        self.flush()
        self.assertEqual(recipient.channel.events, [("notification", (sender.client_id, msg))])

    def test_notify_faults(self):
        """Unknown or unsubscribed recipients and bad messages are faults."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.a": {}})
        rid = recipient.client_id
        self.assertFault(self.core.notify, sender, "c99", message("test.a"), ..., "c99")
        self.assertFault(self.core.notify, sender, ["c2"], message("test.a"), ..., "client id")
        self.assertFault(self.core.notify, sender, rid, message("test.b"), ..., "not subscribed")
        self.assertFault(self.core.notify, sender, rid, {"samp.params": {}}, ..., "no samp.mtype")
        self.assertFault(self.core.notify, sender, rid, {"samp.mtype": "bad mtype"}, ..., "not an MType")
        self.assertFault(
            self.core.notify, sender, rid, {"samp.mtype": "test.a", "samp.params": "x"}, ...,
            "samp.params must be a map",
        )
        self.assertFault(self.core.notify, sender, rid, message("test.a", {"t": "\x85"}), ..., "not SAMP data")
        self.assertFault(self.core.notify, sender, rid, "test.a", ..., "must be a map")
        self.assertFault(self.core.notify_all, sender, {"x": "y"}, ..., "no samp.mtype")
        self.flush()
        self.assertEqual(recipient.channel.events, [])

    def test_notify_all(self):
        """notifyAll goes to every subscribed, callable client but the sender."""
        sender = self.client(subscriptions={"test.*": {}})
        first = self.client(subscriptions={"test.note": {}})
        second = self.client(subscriptions={"*": {}})
        third = self.client(subscriptions={"other.*": {}})
        self.client(callable=False, subscriptions={"*": {}})
        recipients = self.core.notify_all(sender, message("test.note"))
        self.assertEqual(recipients, [first.client_id, second.client_id])
        self.assertEqual(
            self.core.notify_all(sender, message("other.x")), [second.client_id, third.client_id]
        )
        self.flush()
        self.assertEqual(first.channel.mtypes(), ["test.note"])
        heard = [m for m in second.channel.mtypes() if not m.startswith("samp.hub.event.")]
        self.assertEqual(heard, ["test.note", "other.x"])
        self.assertEqual(sender.channel.events, [])

    def test_self_messaging(self):
        """A client may notify itself explicitly, but not through notifyAll."""
        client = self.client(subscriptions={"test.echo": {}})
        self.core.notify(client, client.client_id, message("test.echo"))
        self.assertEqual(self.core.notify_all(client, message("test.echo")), [])
        self.flush()
        self.assertEqual(client.channel.mtypes(), ["test.echo"])

    def test_notify_hub(self):
        """Notifications to the hub are accepted and ignored."""
        sender = self.client()
        self.assertEqual(self.core.notify(sender, HUB_ID, message("samp.app.ping")), "")
        self.flush()

    def test_recipient_leaves_before_delivery(self):
        """A notification to a client that left in the same turn is not delivered."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.*": {}})
        self.core.notify(sender, recipient.client_id, message("test.a"))
        self.core.unregister(recipient)
        self.flush()
        self.assertEqual(recipient.channel.events, [])


class CallTests(CoreTestCase):
    """call, callAll, reply, msg-ids and the pending-call table."""

    def test_call_and_reply(self):
        """A call reaches its recipient; the reply reaches the sender with its tag."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.echo": {}})
        msg = message("test.echo", {"x": "1"})
        msg_id = self.core.call(sender, recipient.client_id, "my-tag", msg)
        self.flush()
        self.assertEqual(recipient.channel.of("call"), [(sender.client_id, msg_id, msg)])
        response = dict(ok({"x": "1"}), **{"test.extra": "kept"})
        self.assertEqual(self.core.reply(recipient, msg_id, response), "")
        self.assertEqual(sender.channel.events, [])
        self.flush()
        self.assertEqual(sender.channel.of("response"), [(recipient.client_id, "my-tag", response)])

    def test_call_faults(self):
        """call and callAll need a callable sender, a string tag and a
        deliverable message."""
        sender = self.client()
        silent = self.client(callable=False)
        recipient = self.client(subscriptions={"test.a": {}})
        rid = recipient.client_id
        self.assertFault(self.core.call, silent, rid, "t", message("test.a"), ..., "callable sender")
        self.assertFault(self.core.call_all, silent, "t", message("test.a"), ..., "callable sender")
        self.assertFault(self.core.call, sender, rid, "t", message("test.b"), ..., "not subscribed")
        self.assertFault(self.core.call, sender, "c99", "t", message("test.a"), ..., "c99")
        self.assertFault(self.core.call, sender, rid, ["t"], message("test.a"), ..., "msg-tag")
        self.assertFault(self.core.call, sender, rid, "\x85", message("test.a"), ..., "not SAMP data")
        self.assertFault(self.core.call_all, sender, "tag", {"x": "y"}, ..., "no samp.mtype")
        self.flush()
        self.assertEqual(recipient.channel.events, [])

    def test_call_all(self):
        """callAll gives one msg-id per recipient; each reply comes back."""
        sender = self.client(subscriptions={"test.echo": {}})
        first = self.client(subscriptions={"test.echo": {}})
        second = self.client(subscriptions={"test.*": {}})
        ids = self.core.call_all(sender, "all", message("test.echo"))
        self.assertEqual(set(ids), {first.client_id, second.client_id})
        self.assertNotEqual(ids[first.client_id], ids[second.client_id])
        self.flush()
        for client in (first, second):
            [(_, msg_id, _)] = client.channel.of("call")
            self.assertEqual(msg_id, ids[client.client_id])
            self.core.reply(client, msg_id, ok({"who": client.client_id}))
        self.flush()
        self.assertEqual(
            sorted(sender.channel.of("response")),
            sorted((c.client_id, "all", ok({"who": c.client_id})) for c in (first, second)),
        )
        self.assertEqual(self.core.call_all(sender, "none", message("nobody.listens")), {})

    def test_reply_rules(self):
        """One reply per call, only from its recipient, only a response map."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.echo": {}})
        bystander = self.client(subscriptions={"test.echo": {}})
        msg_id = self.core.call(sender, recipient.client_id, "t", message("test.echo"))
        self.flush()
        self.assertFault(self.core.reply, bystander, msg_id, ok(), ..., "not sent to you")
        self.assertFault(self.core.reply, sender, msg_id, ok(), ..., "not sent to you")
        self.assertFault(self.core.reply, recipient, msg_id, "ok", ..., "must be a map")
        self.assertFault(self.core.reply, recipient, msg_id, {"samp.result": {}}, ..., "samp.status")
        self.assertFault(self.core.reply, recipient, msg_id, {"samp.status": ["x"]}, ..., "samp.status")
        self.assertFault(self.core.reply, recipient, [msg_id], ok(), ..., "msg-id")
        self.core.reply(recipient, msg_id, ok())
        self.assertFault(self.core.reply, recipient, msg_id, ok(), ..., "already been answered")
        self.assertFault(self.core.reply, recipient, "m-nonsense", ok(), ..., "no such call")
        self.flush()
        self.assertEqual(len(sender.channel.of("response")), 1)

    def test_msg_ids_unguessable(self):
        """msg-ids are long, distinct and share nothing but their first letter."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.echo": {}})
        ids = [self.core.call(sender, recipient.client_id, "t", message("test.echo")) for _ in range(20)]
        self.assertEqual(len(set(ids)), 20)
        for msg_id in ids:
            self.assertGreaterEqual(len(msg_id), 16)
        # Neither a counter nor the client ids: no common prefix past "m"
        # (a chance of 64**-19 otherwise).
        self.assertEqual(os.path.commonprefix(ids), "m")

    def test_tags_may_repeat(self):
        """Reusing a msg-tag is legal; each reply comes back with it."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.echo": {}})
        for _ in range(2):
            self.core.call(sender, recipient.client_id, "same", message("test.echo"))
        self.flush()
        for _, msg_id, _ in recipient.channel.of("call"):
            self.core.reply(recipient, msg_id, ok())
        self.flush()
        self.assertEqual([tag for _, tag, _ in sender.channel.of("response")], ["same", "same"])

    def test_unanswered_calls_bounded(self):
        """Past MAX_UNANSWERED_CALLS, the oldest call is answered with
        samp.error and a late reply to it is refused."""
        self.patch(_hubcore, "MAX_UNANSWERED_CALLS", 2)
        sender = self.client()
        recipient = self.client(subscriptions={"test.echo": {}})
        ids = [self.core.call(sender, recipient.client_id, f"tag{n}", message("test.echo")) for n in range(3)]
        self.flush()
        [(responder, tag, response)] = sender.channel.of("response")
        self.assertEqual((responder, tag, response["samp.status"]), (recipient.client_id, "tag0", "samp.error"))
        self.assertIn("2 calls unanswered", response["samp.error"]["samp.errortxt"])
        self.assertFault(self.core.reply, recipient, ids[0], ok(), ..., "sender was told")
        self.assertEqual(self.core.reply(recipient, ids[2], ok()), "")

    def test_call_the_hub(self):
        """The hub answers samp.app.ping and query.by-meta through receiveResponse."""
        client = self.client(metadata={"samp.name": "finder"})
        self.core.call(client, HUB_ID, "ping", message("samp.app.ping"))
        for mtype in ("x-samp.query.by-meta", "samp.query.by-meta"):
            self.core.call(client, HUB_ID, mtype, message(mtype, {"key": "samp.name", "value": "finder"}))
        self.core.call(client, HUB_ID, "bad", message("samp.query.by-meta", {"key": "samp.name"}))
        self.assertEqual(client.channel.events, [])
        self.flush()
        responses = {tag: (who, response) for who, tag, response in client.channel.of("response")}
        self.assertEqual(responses["ping"], (HUB_ID, ok()))
        self.assertEqual(responses["samp.query.by-meta"], (HUB_ID, ok({"ids": [client.client_id]})))
        self.assertEqual(responses["x-samp.query.by-meta"], (HUB_ID, ok({"ids": [client.client_id]})))
        self.assertEqual(responses["bad"][1]["samp.status"], "samp.error")
        self.assertEqual(self.core.get_subscribed_clients(client, "samp.app.ping"), {HUB_ID: {}})


class CallAndWaitTests(CoreTestCase):
    """callAndWait: waiters and their timeouts on the clock."""

    def test_call_and_wait(self):
        """The reply fires the waiter; "0" waits without limit."""
        sender = self.client(callable=False)
        recipient = self.client(subscriptions={"test.echo": {}})
        waiting = self.core.call_and_wait(sender, recipient.client_id, message("test.echo", {"v": "1"}), "0")
        self.flush()
        [(got_sender, msg_id, msg)] = recipient.channel.of("call")
        self.assertEqual(got_sender, sender.client_id)
        self.clock.advance(10_000)
        self.assertNoResult(waiting)
        self.core.reply(recipient, msg_id, ok(msg["samp.params"]))
        self.assertEqual(self.successResultOf(waiting), ok({"v": "1"}))
        self.assertEqual(sender.channel.events, [])

    def test_timeout(self):
        """The waiter faults when its timeout runs out; a late reply is refused."""
        sender = self.client(callable=False)
        recipient = self.client(subscriptions={"test.echo": {}})
        waiting = self.core.call_and_wait(sender, recipient.client_id, message("test.echo"), "2")
        self.flush()
        [(_, msg_id, _)] = recipient.channel.of("call")
        self.clock.advance(1.9)
        self.assertNoResult(waiting)
        self.clock.advance(0.2)
        self.assertFailedWith(waiting, "timed out after 2 s")
        self.assertFault(self.core.reply, recipient, msg_id, ok(), ..., "timed out")

    def test_reply_cancels_timer(self):
        """A reply in time leaves no timer behind."""
        sender = self.client(callable=False)
        recipient = self.client(subscriptions={"test.echo": {}})
        waiting = self.core.call_and_wait(sender, recipient.client_id, message("test.echo"), "5")
        self.flush()
        [(_, msg_id, _)] = recipient.channel.of("call")
        self.core.reply(recipient, msg_id, ok())
        self.assertEqual(self.successResultOf(waiting), ok())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelled(self):
        """Cancelling the waiter (its caller hung up) abandons the call."""
        sender = self.client(callable=False)
        recipient = self.client(subscriptions={"test.echo": {}})
        waiting = self.core.call_and_wait(sender, recipient.client_id, message("test.echo"), "5")
        self.flush()
        [(_, msg_id, _)] = recipient.channel.of("call")
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        self.assertFault(self.core.reply, recipient, msg_id, ok(), ..., "cancelled")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_faults(self):
        """callAndWait faults like call for undeliverable messages and bad timeouts."""
        sender = self.client(callable=False)
        recipient = self.client(subscriptions={"test.a": {}})
        rid = recipient.client_id
        self.assertFault(self.core.call_and_wait, sender, rid, message("test.b"), "0", ..., "not subscribed")
        self.assertFault(self.core.call_and_wait, sender, rid, message("test.a"), "soon", ..., "timeout")
        self.assertFault(self.core.call_and_wait, sender, rid, message("test.a"), ["1"], ..., "timeout")
        self.assertFault(self.core.call_and_wait, sender, rid, {"samp.params": {}}, "0", ..., "samp.mtype")

    def test_hub(self):
        """callAndWait to the hub is answered in the next turn."""
        client = self.client(callable=False)
        waiting = self.core.call_and_wait(client, HUB_ID, message("samp.app.ping"), "5")
        self.assertNoResult(waiting)
        self.flush()
        self.assertEqual(self.successResultOf(waiting), ok())


class LeavingTests(CoreTestCase):
    """Clients leaving or dropped while calls are pending."""

    def test_recipient_leaves(self):
        """Senders of calls a leaving recipient owed get samp.error."""
        sender = self.client()
        waiter = self.client(callable=False)
        recipient = self.client(subscriptions={"test.echo": {}})
        self.core.call(sender, recipient.client_id, "t", message("test.echo"))
        waiting = self.core.call_and_wait(waiter, recipient.client_id, message("test.echo"), "0")
        self.flush()
        self.core.unregister(recipient)
        response = self.successResultOf(waiting)
        self.assertEqual(response["samp.status"], "samp.error")
        self.assertIn("unregistered", response["samp.error"]["samp.errortxt"])
        self.flush()
        [(responder, tag, response)] = sender.channel.of("response")
        self.assertEqual((responder, tag, response["samp.status"]), (recipient.client_id, "t", "samp.error"))
        self.assertIn(f"{recipient.client_id} unregistered before replying", response["samp.error"]["samp.errortxt"])

    def test_sender_leaves(self):
        """A reply to a call whose sender left is refused; its waiter fails."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.echo": {}})
        msg_id = self.core.call(sender, recipient.client_id, "t", message("test.echo"))
        waiting = self.core.call_and_wait(sender, recipient.client_id, message("test.echo"), "0")
        self.flush()
        self.core.unregister(sender)
        self.assertFailedWith(waiting, "abandoned", "you unregistered")
        self.assertFault(self.core.reply, recipient, msg_id, ok(), ..., "its sender unregistered")
        self.flush()
        self.assertEqual(sender.channel.events, [])

    def test_sender_leaves_before_delivery(self):
        """A call whose sender left in the same turn is never delivered."""
        sender = self.client()
        recipient = self.client(subscriptions={"test.echo": {}})
        self.core.call(sender, recipient.client_id, "t", message("test.echo"))
        self.core.unregister(sender)
        self.flush()
        self.assertEqual(recipient.channel.of("call"), [])

    def test_delivery_error(self):
        """A call its channel could not deliver is answered with samp.error,
        through receiveResponse or callAndWait; the text is made legal."""
        sender = self.client()
        waiter = self.client(callable=False)
        recipient = self.client(subscriptions={"test.*": {}})
        msg_id = self.core.call(sender, recipient.client_id, "t", message("test.a"))
        waiting = self.core.call_and_wait(waiter, recipient.client_id, message("test.a"), "0")
        self.flush()
        [(_, first, _), (_, second, _)] = recipient.channel.of("call")
        self.assertEqual(first, msg_id)
        recipient.channel.on_error[first]("refused caf\xe9" + "!" * 10_000)
        recipient.channel.on_error[second]("unreachable")
        response = self.successResultOf(waiting)
        self.assertEqual(response["samp.error"]["samp.errortxt"], "unreachable")
        self.flush()
        [(_, tag, response)] = sender.channel.of("response")
        text = response["samp.error"]["samp.errortxt"]
        self.assertEqual(tag, "t")
        self.assertTrue(text.startswith("refused caf?!!!"))
        self.assertLessEqual(len(text), 4096)
        self.assertTrue(text.endswith("..."))
        self.assertFault(self.core.reply, recipient, msg_id, ok(), ..., "delivery failed")
        self.assertIn(recipient.client_id, self.core.clients)

    def test_drop(self):
        """A client its channel gives up on is forgotten, told
        samp.hub.disconnect (if subscribed), and everyone hears
        samp.hub.event.unregister; its pending calls are settled."""
        watcher = self.client(subscriptions={"samp.hub.event.unregister": {}})
        sender = self.client()
        dead = self.client(subscriptions={"test.*": {}, "samp.hub.disconnect": {}})
        self.core.call(sender, dead.client_id, "t", message("test.a"))
        self.flush()
        dead.channel.on_drop("3 deliveries in a row failed")
        self.assertEqual(dead.channel.closed[0], "disconnect")
        self.assertEqual(
            dead.channel.closed[1],
            message("samp.hub.disconnect", {"reason": "3 deliveries in a row failed"}),
        )
        self.assertNotIn(dead.client_id, self.core.clients)
        self.assertFault(self.core.client_for_key, dead.private_key, ..., "unknown private key")
        self.flush()
        self.assertEqual(
            watcher.channel.of("notification"),
            [(HUB_ID, message("samp.hub.event.unregister", {"id": dead.client_id}))],
        )
        [(_, _, response)] = sender.channel.of("response")
        self.assertIn("disconnected by the hub", response["samp.error"]["samp.errortxt"])
        dead.channel.on_drop("again")  # a late report changes nothing
        self.flush()
        self.assertEqual(len(watcher.channel.events), 1)

    def test_drop_unsubscribed(self):
        """A dropped client not subscribed to samp.hub.disconnect is just closed."""
        dead = self.client(subscriptions={"test.*": {}})
        dead.channel.on_drop("gone")
        self.assertEqual(dead.channel.closed, "close")


class StoppingTests(CoreTestCase):
    """What the service uses when the hub stops."""

    def test_shutdown_recipients(self):
        """The channels of callable clients subscribed to the shutdown event."""
        watcher = self.client(subscriptions={"samp.hub.event.*": {}})
        self.client(subscriptions={"x.y": {}})
        self.client(callable=False, subscriptions={"samp.hub.event.shutdown": {}})
        self.assertEqual(self.core.shutdown_recipients(), [watcher.channel])

    def test_stop(self):
        """Waiting calls fail, channels close, queued deliveries are dropped,
        and reset forgets everyone."""
        sender = self.client(callable=False)
        recipient = self.client(subscriptions={"test.*": {}})
        waiting = self.core.call_and_wait(sender, recipient.client_id, message("test.a"), "10")
        self.core.notify(sender, recipient.client_id, message("test.b"))
        self.core.running = False
        self.core.fail_waiting_calls()
        self.assertFailedWith(waiting, "shutting down")
        self.core.close_channels()
        self.assertEqual(recipient.channel.closed, "close")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.core.reset()
        self.assertEqual(self.core.clients, {})
        self.assertEqual(recipient.channel.events, [])


class FakeProxy:
    """An ``XMLRPCProxy`` stand-in: each call is a Deferred the test settles."""

    def __init__(self, url, keeps_connections=True):
        self.url = url
        self.keeps_connections = keeps_connections
        self.calls = []
        self.closed = False

    def call(self, method, *args, timeout=None):
        d = defer.Deferred()
        self.calls.append((method, args, d))
        return d

    def close(self):
        self.closed = True
        return defer.succeed(None)


class FakeProxyDelivery(PushDelivery):
    """A :class:`PushDelivery` whose proxies are :class:`FakeProxy`."""

    keeps_connections = True

    def make_proxy(self, url):
        return FakeProxy(url, self.keeps_connections)


class PushChannelTests(unittest.SynchronousTestCase):
    """The push channel's queue, cap and failure policy, on fake proxies."""

    def setUp(self):
        self.clock = task.Clock()
        self.delivery = FakeProxyDelivery(
            self.clock, timeout=1.0, max_failures=2, max_concurrent=3, max_queued=2, final_timeout=0.5
        )
        self.drops = []
        self.client = _hubcore._Client("c1", "secret-key")
        self.channel = self.delivery.open_channel(self.client, self.drops.append)
        self.assertIsInstance(self.channel, PushChannel)

    def test_not_callable_until_url(self):
        """Without a URL, a call fails at once and nothing is sent."""
        errors = []
        self.assertFalse(self.channel.callable)
        self.channel.call("c2", "m1", message("a.b"), errors.append)
        self.assertEqual(len(errors), 1)
        self.assertIn("not callable", errors[0])
        self.channel.set_url("http://127.0.0.1:1/")
        self.assertTrue(self.channel.callable)
        self.assertEqual(self.channel.url, "http://127.0.0.1:1/")

    def test_queue_and_cap(self):
        """At most max_concurrent in flight, then max_queued wait; more fail."""
        self.channel.set_url("http://127.0.0.1:1/")
        proxy = self.channel.proxy
        errors = []
        for n in range(6):
            self.channel.call("c2", f"m{n}", message("a.b"), errors.append)
        self.assertEqual([args[2] for _, args, _ in proxy.calls], ["m0", "m1", "m2"])
        self.assertEqual(proxy.calls[0][1][0], "secret-key")
        self.assertEqual(len(self.channel.queue), 2)
        self.assertEqual(len(errors), 1)
        self.assertIn("too many deliveries queued", errors[0])
        proxy.calls[0][2].callback("")
        self.assertEqual(proxy.calls[3][1][2], "m3")

    def test_closing_server_cap(self):
        """A server closing each connection gets a few callbacks at a time."""
        self.delivery.keeps_connections = False
        self.delivery.max_concurrent = 20
        self.delivery.max_queued = 100
        self.channel.set_url("http://127.0.0.1:1/")
        for _ in range(10):
            self.channel.notify("c2", message("a.b"))
        self.assertEqual(len(self.channel.proxy.calls), CLOSING_SERVER_DELIVERIES)

    def test_failures_in_a_row_drop(self):
        """max_failures transport failures in a row drop the client;
        a success or a fault in between resets the count."""
        self.channel.set_url("http://127.0.0.1:1/")
        proxy = self.channel.proxy
        errors = []
        for n in range(5):
            self.channel.call("c2", f"m{n}", message("a.b"), errors.append)
        proxy.calls[0][2].errback(ConnectionRefusedError("refused"))
        proxy.calls[1][2].callback("")
        proxy.calls[2][2].errback(ConnectionRefusedError("refused"))
        proxy.calls[3][2].errback(xmlrpc.client.Fault(1, "no thanks"))
        proxy.calls[4][2].errback(ConnectionRefusedError("refused"))
        self.assertEqual(self.drops, [])
        self.assertEqual(len(errors), 4)
        self.assertIn("c1 refused samp.client.receiveCall: no thanks", errors[2])
        self.assertIn("samp.client.receiveCall to c1 failed", errors[3])
        self.channel.notify("c2", message("a.b"))
        proxy.calls[5][2].errback(ConnectionRefusedError("timed out"))
        self.assertEqual(len(self.drops), 1)
        self.assertIn("2 deliveries in a row failed", self.drops[0])
        self.assertIn("timed out", self.drops[0])
        self.flushLoggedErrors()

    def test_replaced_url_failures_not_counted(self):
        """Failures at a URL the client has replaced neither count nor reset."""
        self.channel.set_url("http://127.0.0.1:1/")
        old = self.channel.proxy
        for n in range(2):
            self.channel.call("c2", f"m{n}", message("a.b"), lambda text: None)
        self.channel.set_url("http://127.0.0.1:2/")
        self.assertFalse(old.closed)  # calls still in flight there
        for _, _, d in old.calls:
            d.errback(ConnectionRefusedError("refused"))
        self.assertEqual(self.drops, [])
        self.assertEqual(self.channel.failures, 0)
        self.assertTrue(old.closed)

    def test_close(self):
        """close cancels what is in flight, drops the queue, closes the proxy."""
        self.channel.set_url("http://127.0.0.1:1/")
        proxy = self.channel.proxy
        errors = []
        for n in range(5):
            self.channel.call("c2", f"m{n}", message("a.b"), errors.append)
        self.channel.close()
        self.assertTrue(all(d.called for _, _, d in proxy.calls))
        self.assertEqual(len(self.channel.queue), 0)
        self.assertTrue(proxy.closed)
        self.channel.notify("c2", message("a.b"))
        self.assertEqual(len(proxy.calls), 3)
        self.assertEqual(errors, [])

    def test_disconnect(self):
        """disconnect sends the notification alone, then closes the proxy;
        stop cancels it if it hangs."""
        self.channel.set_url("http://127.0.0.1:1/")
        proxy = self.channel.proxy
        self.channel.notify("c2", message("a.b"))
        goodbye = message("samp.hub.disconnect", {"reason": "gone"})
        self.channel.disconnect(goodbye)
        method, args, d = proxy.calls[-1]
        self.assertEqual((method, args), ("samp.client.receiveNotification", ("secret-key", HUB_ID, goodbye)))
        self.assertFalse(proxy.closed)
        self.successResultOf(self.delivery.stop())
        self.assertTrue(d.called)
        self.assertTrue(proxy.closed)
