"""
Tests for the hub monitor's model (``_monitor.HubMonitor``) and its event
stream, on a fake clock with the core's fake channels.
"""

from twisted.internet import task
from twisted.trial import unittest
from twisted.web.test.requesthelper import DummyRequest

from sampy_twisted._hubcore import HubCore
from sampy_twisted._monitor import HubMonitor, collapse
from sampy_twisted._monitor_web import EventStream

from .test_hub_core import FakeDelivery, message, ok


class MonitorTestCase(unittest.SynchronousTestCase):
    """A running core with a monitor, on a :class:`task.Clock`."""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000)
        self.core = HubCore(self.clock, {"samp.name": "Hub"})
        self.core.running = True
        self.monitor = HubMonitor(self.core, self.clock, lambda: {"url": "http://x/"}, max_messages=5)
        self.events = []
        self.monitor.listen(lambda kind, data: self.events.append((kind, data)))

    def client(self, name, subscriptions=None, callable=True):
        client = self.core.register(FakeDelivery(callable))
        self.core.declare_metadata(client, {"samp.name": name, "samp.icon.url": "http://i/x.png",
                                            "x.secret.thing": "hidden"})
        self.core.declare_subscriptions(client, subscriptions or {"test.*": {}, "samp.app.ping": {}})
        self.clock.advance(0)
        return client

    def messages(self):
        return self.monitor.snapshot()["messages"]

    def user_messages(self):
        return [m for m in self.messages() if m["kind"] != "event"]


class ClientsTests(MonitorTestCase):
    def test_clients_described_without_secrets(self):
        """Clients show id, name, icon, subscriptions; never a private key."""
        a = self.client("Alpha")
        clients = {c["id"]: c for c in self.monitor.clients()}
        self.assertEqual(set(clients), {"hub", a.client_id})
        described = clients[a.client_id]
        self.assertEqual(described["name"], "Alpha")
        self.assertEqual(described["icon"], "http://i/x.png")
        self.assertEqual(set(described["subscriptions"]), {"test.*", "samp.app.ping"})
        self.assertTrue(described["callable"])
        self.assertEqual(described["profile"], "Standard")
        self.assertNotIn("x.secret.thing", described["metadata"])
        self.assertNotIn(a.private_key, repr(self.monitor.snapshot()))
        self.assertNotIn(a.private_key, repr(self.events))

    def test_client_events(self):
        """Registration, metadata and subscriptions are announced; leaving too."""
        a = self.client("Alpha")
        kinds = [(k, d["id"]) for k, d in self.events if k == "client"]
        self.assertEqual(kinds, [("client", a.client_id)] * 3)
        self.core.unregister(a)
        self.assertIn(("left", {"id": a.client_id, "why": "unregistered"}), self.events)
        self.assertEqual([c["id"] for c in self.monitor.clients()], ["hub"])
        self.assertEqual(self.user_messages()[-1]["kind"], "left")

    def test_dropped_client_marked(self):
        """A client the hub drops appears as dropped in the log."""
        a = self.client("Alpha")
        self.core.drop(a, "unreachable")
        last = self.user_messages()[-1]
        self.assertEqual(last["kind"], "dropped")
        self.assertIn("disconnected", last["result"])

    def test_receivers(self):
        """Who would receive an MType, wildcards included, the hub too."""
        a = self.client("Alpha")
        b = self.client("Beta", {"other.thing": {"x": "1"}})
        self.assertEqual([r["id"] for r in self.monitor.receivers("test.load")], [a.client_id])
        self.assertEqual([r["id"] for r in self.monitor.receivers("other.thing")], [b.client_id])
        self.assertEqual(
            [r["id"] for r in self.monitor.receivers("samp.app.ping")], ["hub", a.client_id]
        )


class MessageLogTests(MonitorTestCase):
    def test_notification_logged(self):
        a = self.client("Alpha")
        b = self.client("Beta")
        self.clock.advance(2)
        self.core.notify(a, b.client_id, message("test.echo", {"x": "1"}))
        (m,) = self.user_messages()
        self.assertEqual(
            (m["kind"], m["sender"], m["recipients"], m["mtype"], m["params"], m["time"]),
            ("notification", a.client_id, [b.client_id], "test.echo", {"x": "1"}, 1002),
        )
        self.assertEqual(self.events[-1], ("message", m))
        self.assertEqual(self.monitor.facts()["messages"], 1 + self.monitor.messages_total - 1)

    def test_call_answered_with_round_trip(self):
        a = self.client("Alpha")
        b = self.client("Beta")
        msg_id = self.core.call(a, b.client_id, "tag", message("test.echo"))
        self.assertEqual(self.user_messages()[0]["status"], "pending")
        self.assertEqual(self.monitor.facts()["calls_pending"], 1)
        self.clock.advance(0.25)
        self.core.reply(b, msg_id, ok({"answer": "42"}))
        (m,) = self.user_messages()
        self.assertEqual((m["status"], m["result"], m["rtt"]), ("samp.ok", {"answer": "42"}, 0.25))
        self.assertEqual(self.events[-1], ("update", m))
        self.assertNotIn(msg_id, repr(self.monitor.snapshot()))
        self.assertNotIn(msg_id, repr(self.events))

    def test_failed_delivery(self):
        """A call that could not be delivered shows samp.error and the text."""
        a = self.client("Alpha")
        b = self.client("Beta")
        msg_id = self.core.call(a, b.client_id, "tag", message("test.echo"))
        self.clock.advance(0)
        b.channel.on_error[msg_id]("connection refused")
        (m,) = self.user_messages()
        self.assertEqual(m["status"], "samp.error")
        self.assertIn("connection refused", m["result"])
        self.assertIn("delivery failed", m["closed"])

    def test_call_and_wait_timeout(self):
        a = self.client("Alpha")
        b = self.client("Beta")
        d = self.core.call_and_wait(a, b.client_id, message("test.echo"), "3")
        self.clock.advance(3)
        self.failureResultOf(d)
        (m,) = self.user_messages()
        self.assertEqual((m["status"], m["rtt"]), ("closed", 3))
        self.assertIn("timed out", m["closed"])

    def test_hub_answers_ping(self):
        a = self.client("Alpha")
        self.core.call(a, "hub", "t", message("samp.app.ping"))
        self.clock.advance(0)
        (m,) = self.user_messages()
        self.assertEqual((m["recipients"], m["status"]), (["hub"], "samp.ok"))

    def test_hub_events_logged_as_events(self):
        a = self.client("Alpha", {"samp.hub.event.*": {}})
        self.client("Beta")
        kinds = {m["mtype"]: m["kind"] for m in self.messages() if m["sender"] == "hub"}
        self.assertEqual(kinds.get("samp.hub.event.register"), "event")
        self.assertIn(a.client_id, self.messages()[-1]["recipients"])

    def test_bounded_by_count(self):
        a = self.client("Alpha")
        b = self.client("Beta")
        for i in range(12):
            self.core.notify(a, b.client_id, message("test.echo", {"i": str(i)}))
        kept = self.messages()
        self.assertEqual(len(kept), 5)
        self.assertEqual([m["params"]["i"] for m in kept], ["7", "8", "9", "10", "11"])

    def test_bounded_by_bytes_and_values_cut(self):
        monitor = HubMonitor(self.core, self.clock, max_messages=1000, max_bytes=5000)
        a = self.client("Alpha")
        b = self.client("Beta")
        for i in range(50):
            self.core.notify(a, b.client_id, message("test.echo", {"big": "x" * 100_000}))
        kept = monitor.snapshot()["messages"]
        self.assertLess(len(kept), 50)
        self.assertLessEqual(monitor.facts()["kept_bytes"], 5000)
        self.assertLess(len(kept[-1]["params"]["big"]), 300)
        self.assertIn("100000 characters", kept[-1]["params"]["big"])

    def test_pending_call_evicted_then_answered(self):
        """An answer to a call no longer in the log is ignored, not an error."""
        a = self.client("Alpha")
        b = self.client("Beta")
        msg_id = self.core.call(a, b.client_id, "tag", message("test.echo"))
        for i in range(10):
            self.core.notify(a, b.client_id, message("test.echo"))
        self.core.reply(b, msg_id, ok())
        self.assertNotIn("samp.ok", [m["status"] for m in self.messages()])


class CollapseTests(unittest.SynchronousTestCase):
    def test_collapse(self):
        value, size = collapse({"l": [str(i) for i in range(30)], "d": {"a": {"b": {"c": {"d": "e"}}}}})
        self.assertEqual(len(value["l"]), 21)
        self.assertEqual(value["l"][-1], "… 10 more")
        self.assertEqual(value["d"]["a"]["b"], "…")
        self.assertGreater(size, 0)


class QuietTests(unittest.SynchronousTestCase):
    def test_no_listener_no_encoding(self):
        """With no page open, events are recorded but nobody is called."""
        clock = task.Clock()
        core = HubCore(clock, {"samp.name": "Hub"})
        core.running = True
        monitor = HubMonitor(core, clock)
        calls = []
        stop = monitor.listen(lambda kind, data: calls.append(kind))
        stop()
        a = core.register(FakeDelivery())
        core.declare_subscriptions(a, {"test.*": {}})
        core.notify(a, a.client_id, message("test.x"))
        self.assertEqual(calls, [])
        self.assertEqual(monitor.messages_total, 1)


class _Channel:
    transport = None


class _Request(DummyRequest):
    # DummyRequest's registerProducer pulls in a loop until unregistered.
    def registerProducer(self, producer, streaming):
        self.producer = producer


class StreamTests(MonitorTestCase):
    """The per-page stream: events flow, a stuck page is cut off."""

    def stream(self, max_buffered=2000):
        request = _Request([b"events"])
        request.channel = _Channel()
        stream = EventStream(request, self.monitor, self.clock, max_buffered)
        self.addCleanup(stream.stopProducing)
        return request, stream

    def test_snapshot_then_events(self):
        request, stream = self.stream()
        a = self.client("Alpha")
        body = b"".join(request.written)
        self.assertTrue(body.startswith(b"retry: 2000\n\nevent: snapshot\ndata: {"))
        self.assertIn(b"event: client\ndata: {\"id\":\"" + a.client_id.encode(), body)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"),
                         [b"text/event-stream; charset=utf-8"])

    def test_facts_periodically(self):
        request, stream = self.stream()
        self.clock.advance(5)
        self.assertTrue(request.written[-1].startswith(b"event: facts\n"))

    def test_paused_page_buffers_then_resumes(self):
        request, stream = self.stream()
        a = self.client("Alpha")
        before = len(request.written)
        stream.pauseProducing()
        self.core.notify(a, a.client_id, message("test.x"))
        self.assertEqual(len(request.written), before)
        stream.resumeProducing()
        self.assertIn(b"event: message", request.written[-1])

    def test_stuck_page_dropped(self):
        """A page that stops reading is cut off; the hub goes on unhindered."""
        request, stream = self.stream(max_buffered=2000)
        a = self.client("Alpha")
        stream.pauseProducing()
        for i in range(50):
            self.core.notify(a, a.client_id, message("test.x", {"i": "y" * 100}))
        self.assertTrue(stream.dropped)
        self.assertEqual(self.monitor._listeners, [self.monitor._listeners[0]])  # only the test's
        self.assertEqual(self.monitor.messages_total, 50)
