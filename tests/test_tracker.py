# -*- test-case-name: tests.test_tracker -*-
"""
Tests for L{sampy_twisted.ClientTracker}, fed by hub events.
"""

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted import ClientTracker, SAMPClient, SAMPClientError

from .test_client import KEY, connected_hub


def event(mtype, **params):
    return {"samp.mtype": mtype, "samp.params": params}


class TrackerTests(SynchronousTestCase):
    """
    The map follows register, unregister, metadata and subscriptions events.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.hub = connected_hub(self.reactor)
        self.wire = self.hub._proxy
        self.client = SAMPClient(self.hub, name="me", reactor=self.reactor)
        self.tracker = ClientTracker(self.client)
        self.changes = []
        self.tracker.add_observer(lambda *change: self.changes.append(change))
        self.successResultOf(self.client.start())
        self.successResultOf(self.client.register())

    def send(self, mtype, sender="hub", **params):
        self.client.receive_notification(KEY, sender, event(mtype, **params))

    def test_subscribes_to_events(self):
        subscriptions = self.wire.named("samp.hub.declareSubscriptions")[-1][1]
        for mtype in ["register", "unregister", "metadata", "subscriptions"]:
            self.assertIn(f"samp.hub.event.{mtype}", subscriptions)

    def test_events(self):
        self.send("samp.hub.event.register", id="c7")
        self.assertEqual(list(self.tracker), ["c7"])
        self.send("samp.hub.event.metadata", id="c7", metadata={"samp.name": "Aladin"})
        self.send("samp.hub.event.subscriptions", id="c7", subscriptions={"image.*": {}})
        tracked = self.tracker["c7"]
        self.assertEqual(tracked.name, "Aladin")
        self.assertTrue(tracked.is_subscribed("image.load.fits"))
        self.assertFalse(tracked.is_subscribed("table.load.votable"))
        self.assertEqual(self.tracker.find_by_name("ALADIN"), ["c7"])
        self.assertEqual(self.tracker.subscribed_to("image.load.fits"), ["c7"])
        self.send("samp.hub.event.unregister", id="c7")
        self.assertEqual(len(self.tracker), 0)
        self.assertEqual(
            self.changes,
            [("register", "c7"), ("metadata", "c7"), ("subscriptions", "c7"), ("unregister", "c7")],
        )

    def test_late_event_after_unregister(self):
        """A metadata or subscriptions event arriving after the client's
        unregistration (events travel on separate connections) does not
        bring it back."""
        self.send("samp.hub.event.register", id="c7")
        self.send("samp.hub.event.unregister", id="c7")
        self.send("samp.hub.event.metadata", id="c7", metadata={"samp.name": "Aladin"})
        self.send("samp.hub.event.subscriptions", id="c7", subscriptions={"image.*": {}})
        self.assertEqual(len(self.tracker), 0)

    def test_events_outside_populate_not_kept(self):
        """What events changed is remembered only while populating, so a
        long session does not grow it."""
        for n in range(3):
            self.send("samp.hub.event.register", id=f"c{n + 10}")
        self.assertIsNone(self.tracker._touched)

    def test_only_hub_events(self):
        """Events from other clients and about ourselves are ignored."""
        self.send("samp.hub.event.register", sender="c9", id="c7")
        self.send("samp.hub.event.register", id="c1")
        self.send("samp.hub.event.metadata", id="c7", metadata="not a map")
        self.assertEqual(len(self.tracker), 0)

    def test_populate_unregistered(self):
        """Populating the tracker of a client that is not registered fails
        with SAMPClientError (not a TypeError raised at the caller)."""
        self.successResultOf(self.client.unregister())
        self.failureResultOf(self.tracker.populate(), SAMPClientError)

    def test_populate(self):
        self.wire.answers["samp.hub.getRegisteredClients"] = ["hub", "c2"]
        self.wire.answers["samp.hub.getMetadata"] = {"samp.name": "X"}
        self.wire.answers["samp.hub.getSubscriptions"] = {"a.b": {}}
        self.successResultOf(self.tracker.populate())
        self.assertEqual(sorted(self.tracker), ["c2", "hub"])
        self.assertEqual(self.tracker["c2"].subscriptions, {"a.b": {}})

    def test_events_win_over_populate(self):
        """An unregistration seen while populating is not undone."""
        self.wire.answers["samp.hub.getRegisteredClients"] = ["c2"]
        late = self.wire.answers["samp.hub.getMetadata"] = defer.Deferred()
        d = self.tracker.populate()
        self.send("samp.hub.event.unregister", id="c2")
        late.callback({"samp.name": "late"})
        self.successResultOf(d)
        self.assertNotIn("c2", self.tracker)

    def test_events_during_populate_kept(self):
        """Metadata announced while populating beats the older answer."""
        self.wire.answers["samp.hub.getRegisteredClients"] = ["c2"]
        self.wire.answers["samp.hub.getSubscriptions"] = {"a.*": {}}
        late = self.wire.answers["samp.hub.getMetadata"] = defer.Deferred()
        d = self.tracker.populate()
        self.send("samp.hub.event.metadata", id="c2", metadata={"samp.name": "new"})
        late.callback({"samp.name": "old"})
        self.successResultOf(d)
        self.assertEqual(self.tracker["c2"].name, "new")
        self.assertEqual(self.tracker["c2"].subscriptions, {"a.*": {}})
