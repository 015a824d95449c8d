# -*- test-case-name: tests.test_hub_finder -*-
"""
Tests for L{sampy_twisted._hub_finder}: finding the running hub or starting
one, with fake discovery, pings and hubs.
"""

from twisted.internet import defer
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted import SAMPHubError
from sampy_twisted import _hub_finder
from sampy_twisted._hub_finder import find_or_start_hub, stop_started_hub


class FakeHub:
    def __init__(self, secret="ours"):
        self.params = {"samp.secret": secret}
        self.lockfile = "/tmp/ours.samp"
        self.is_running = True
        self.registered_clients = []
        self.stops = 0

    def stop(self):
        self.stops += 1
        self.is_running = False
        return defer.succeed(None)


class FindOrStartTests(SynchronousTestCase):
    def setUp(self):
        self.alive = set()
        self.patch(_hub_finder, "ping_hub", lambda params, reactor: defer.succeed(params["samp.secret"] in self.alive))
        self.lockfile = None  # the secret the fake lockfile names, if any
        self.started = []

    def locate(self):
        if self.lockfile is None:
            return defer.fail(SAMPHubError("no lockfile"))
        return defer.succeed(("/tmp/.samp", {"samp.secret": self.lockfile}))

    def start_hub(self):
        hub = FakeHub()
        self.started.append(hub)
        return defer.succeed(hub)

    def find(self, start_hub=None):
        return self.successResultOf(
            defer.ensureDeferred(find_or_start_hub(None, self.locate, start_hub or self.start_hub))
        )

    def test_running_hub_used(self):
        """A hub that answers is used; nothing is started."""
        self.lockfile = "theirs"
        self.alive.add("theirs")
        self.assertEqual(self.find(), ("/tmp/.samp", {"samp.secret": "theirs"}, None))
        self.assertEqual(self.started, [])

    def test_no_hub(self):
        """Without a lockfile a hub is started and returned."""
        where, params, hub = self.find()
        self.assertEqual((where, params, hub), ("/tmp/ours.samp", {"samp.secret": "ours"}, self.started[0]))

    def test_dead_hub_replaced(self):
        """A lockfile whose hub does not answer counts as no hub."""
        self.lockfile = "stale"
        self.assertIs(self.find()[2], self.started[0])

    def test_lost_race(self):
        """When another hub wins the lockfile first, that hub is used."""

        def refused():
            self.lockfile = "winner"
            return defer.fail(SAMPHubError("a live hub owns the lockfile"))

        self.assertEqual(self.find(refused), ("/tmp/.samp", {"samp.secret": "winner"}, None))

    def test_start_failure_reported(self):
        """A hub that cannot start, with no other hub there, fails with
        the start's own reason."""
        d = defer.ensureDeferred(
            find_or_start_hub(None, self.locate, lambda: defer.fail(SAMPHubError("cannot write the lockfile")))
        )
        self.assertIn("cannot write", str(self.failureResultOf(d, SAMPHubError).value))


class StopStartedHubTests(SynchronousTestCase):
    def test_quiet_without_others(self):
        """No other client: the hub stops without a warning."""
        hub = FakeHub()
        with capturedLogs() as events:
            self.successResultOf(stop_started_hub(hub))
        self.assertEqual(hub.stops, 1)
        self.assertEqual([e for e in events if e["log_level"] == LogLevel.warn], [])

    def test_warns_with_others(self):
        """Other clients still registered are named in a warning."""
        hub = FakeHub()
        hub.registered_clients = ["c2"]
        with capturedLogs() as events:
            self.successResultOf(stop_started_hub(hub))
        [warning] = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertIn("1 other client(s) still use (c2)", warning["log_format"].format(**warning))
