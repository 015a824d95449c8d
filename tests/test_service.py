# -*- test-case-name: tests.test_service -*-
"""
Tests for L{sampy_twisted._service.SAMPClientService}.

The state machine (finding a hub, backoff, noticing the hub go, stopping)
runs under a L{task.Clock} with a fake client and fake embedded hubs; then
the service runs against real hubs (JSAMP's and ours) that are stopped,
killed and started again.
"""

import os
import shutil
from urllib.parse import urlsplit

from twisted.application.internet import backoffPolicy
from twisted.internet import defer, reactor, task
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import Site
from twisted.web.static import File

from sampy_twisted import (
    SAMPClientError,
    SAMPHubError,
    SAMPIntegratedClient,
    SAMPProxyError,
    read_lockfile,
)
from sampy_twisted import _hub_finder
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted._service import (
    HUB_AUTO,
    HUB_EMBEDDED,
    HUB_RUNNING,
    SAMPClientService,
)
from sampy_twisted.testing import start_jsamp_hub

# -- fakes -----------------------------------------------------------------


def write_lockfile(path, secret, url="http://127.0.0.1:9/xmlrpc"):
    """Write a minimal lockfile naming a hub with *secret*."""
    with open(path, "w") as f:
        f.write(f"samp.secret={secret}\nsamp.hub.xmlrpc.url={url}\nsamp.profile.version=1.3\n")


class FakeClient:
    """
    Stands in for L{SAMPIntegratedClient}: records what the service asks
    and lets the test decide how each request ends.
    """

    def __init__(self):
        self.connects = []
        self.cancelled = []
        self.hub_check_interval = 5.0
        self.hub_check_timeout = 5.0
        self.disconnects = 0
        self.hang_on_disconnect = False
        self.is_connected = False
        self._public_id = None
        self._lost = []
        self._count = 0

    def connect(self, hub_params):
        record = {"params": hub_params, "check": (self.hub_check_interval, self.hub_check_timeout)}

        def cancel(d):
            self.cancelled.append(hub_params)

        record["deferred"] = defer.Deferred(cancel)
        self.connects.append(record)
        return record["deferred"]

    def succeed(self):
        """The last connect() succeeds."""
        self._count += 1
        self.is_connected = True
        self._public_id = f"c{self._count}"
        self.connects[-1]["deferred"].callback(self)

    def fail(self, exc):
        """The last connect() fails with *exc*."""
        self.connects[-1]["deferred"].errback(exc)

    def lose(self, reason):
        """The registration ends: when_disconnected() Deferreds fire."""
        if not self.is_connected:
            return
        self.is_connected = False
        self._public_id = None
        lost, self._lost = self._lost, []
        for d in lost:
            d.callback(reason)

    def when_disconnected(self):
        d = defer.Deferred()
        self._lost.append(d)
        return d

    def disconnect(self):
        self.disconnects += 1
        if self.hang_on_disconnect:
            return defer.Deferred()
        self.lose("the client disconnected")
        return defer.succeed(None)

    def drop_connection(self, reason):
        self.lose(reason)

    def get_public_id(self):
        return self._public_id


class FakeHub:
    """An embedded hub that only writes and removes its lockfile."""

    made = 0

    def __init__(self, lockfile):
        FakeHub.made += 1
        self.lockfile = lockfile
        self.params = None
        self.is_running = False
        self.stops = 0
        self.secret = f"embedded-{FakeHub.made}"
        self.registered_clients = []

    def start(self):
        write_lockfile(self.lockfile, self.secret)
        self.params = read_lockfile(self.lockfile)
        self.is_running = True
        return defer.succeed(self)

    def stop(self):
        self.stops += 1
        if self.is_running and os.path.exists(self.lockfile):
            os.unlink(self.lockfile)
        self.is_running = False
        return defer.succeed(None)


def fixed_policy(attempt):
    """Wait 1, 2, then 4 s between attempts."""
    return [1.0, 2.0, 4.0][min(attempt, 2)]


class ServiceStateTests(SynchronousTestCase):
    """
    The service's state machine under a fake clock, client and hub.
    """

    def setUp(self):
        self.clock = task.Clock()
        self.client = FakeClient()
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        self.lockfile = os.path.join(self.directory, ".samp")
        self.hubs = []
        # The secrets of the hubs that answer samp.hub.ping.
        self.alive = set()
        self.patch(
            _hub_finder, "ping_hub", lambda params, reactor: defer.succeed(params["samp.secret"] in self.alive)
        )

    def make_service(self, hub=HUB_RUNNING, **kwargs):
        def hub_factory(lockfile):
            made = FakeHub(lockfile)
            self.hubs.append(made)
            return made

        kwargs.setdefault("lockfile", self.lockfile)
        kwargs.setdefault("retry_policy", fixed_policy)
        kwargs.setdefault("lockfile_check_interval", 0.5)
        service = SAMPClientService(
            self.client, hub=hub, reactor=self.clock, hub_factory=hub_factory, **kwargs
        )
        self.addCleanup(self.stop_if_running, service)
        return service

    def stop_if_running(self, service):
        if service.running:
            self.successResultOf(service.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def register(self, service, secret="s1"):
        write_lockfile(self.lockfile, secret)
        service.startService()
        self.client.succeed()
        self.assertTrue(service.is_registered)

    def test_registers_with_running_hub(self):
        """The lockfile's hub is used; when_registered fires with the
        client; observers hear of it."""
        write_lockfile(self.lockfile, "s1")
        service = self.make_service()
        events = []
        service.add_connection_observer(lambda event, detail: events.append((event, detail)))
        waiting = service.when_registered()
        service.startService()
        self.assertEqual(self.client.connects[0]["params"]["samp.secret"], "s1")
        self.assertNoResult(waiting)
        self.client.succeed()
        self.assertIs(self.successResultOf(waiting), self.client)
        self.assertIs(self.successResultOf(service.when_registered()), self.client)
        self.assertEqual(events, [("registered", "c1")])

    def test_backoff_while_no_hub(self):
        """Without a lockfile no connection is tried; attempts follow the
        retry policy; when_registered(fail_after_failures) gives up."""
        service = self.make_service()
        give_up = service.when_registered(fail_after_failures=3)
        service.startService()
        self.assertEqual(self.client.connects, [])
        self.clock.advance(1.0)  # second attempt
        self.assertNoResult(give_up)
        self.clock.advance(2.0)  # third attempt
        self.assertIn("does not exist", str(self.failureResultOf(give_up, SAMPHubError).value))
        self.assertFalse(service.is_registered)
        self.assertEqual(self.client.connects, [])

    def test_backoff_on_connect_failures(self):
        """Failed connections are retried after 1, 2, 4, 4 s."""
        write_lockfile(self.lockfile, "s1")
        service = self.make_service(lockfile_check_interval=100.0)
        service.startService()
        times = []
        for _ in range(5):
            times.append(self.clock.seconds())
            self.client.fail(SAMPHubError("connection refused"))
            while len(self.client.connects) == len(times):
                self.clock.advance(0.25)
        self.assertEqual(times, [0.0, 1.0, 3.0, 7.0, 11.0])

    def test_lockfile_appearing_wakes_at_once(self):
        """A lockfile appearing ends the wait before the backoff delay."""
        service = self.make_service(retry_policy=lambda attempt: 30.0)
        service.startService()
        self.clock.advance(5.0)
        self.assertEqual(self.client.connects, [])
        write_lockfile(self.lockfile, "new")
        self.clock.advance(0.5)
        self.assertEqual(len(self.client.connects), 1)

    def test_liveness_check_settings(self):
        """ping_interval and ping_timeout set the client's liveness check
        before it connects; by default the client's own settings stay."""
        service = self.make_service(ping_interval=2.0, ping_timeout=3.0)
        self.register(service)
        self.assertEqual(self.client.connects[0]["check"], (2.0, 3.0))
        self.successResultOf(service.stopService())
        self.client.hub_check_interval = 7.0
        service = self.make_service()
        service.startService()
        self.assertEqual(self.client.connects[1]["check"], (7.0, 3.0))

    def test_client_check_failure_registers_again(self):
        """A registration ended by the client's liveness check is lost and
        registered again after the retry delay."""
        service = self.make_service()
        events = []
        service.add_connection_observer(lambda event, detail: events.append((event, detail)))
        self.register(service)
        self.client.lose("the hub does not answer: connection refused")
        self.assertFalse(service.is_registered)
        self.assertEqual(events[-1], ("lost", "the hub does not answer: connection refused"))
        self.clock.advance(1.0)
        self.assertEqual(len(self.client.connects), 2)
        self.client.succeed()
        self.assertEqual(events[-1], ("registered", "c2"))

    def test_lockfile_removed(self):
        """The hub's lockfile vanishing ends the registration."""
        service = self.make_service()
        events = []
        service.add_connection_observer(lambda event, detail: events.append((event, detail)))
        self.register(service)
        os.unlink(self.lockfile)
        self.clock.advance(0.5)
        self.assertFalse(service.is_registered)
        self.assertIn("was removed", events[-1][1])

    def test_lockfile_replaced_registers_with_new_hub(self):
        """A new hub's lockfile ends the registration and the service
        registers with the new hub at the next look, without waiting for
        the backoff delay."""
        service = self.make_service(retry_policy=lambda attempt: 30.0)
        self.register(service, "old")
        write_lockfile(self.lockfile, "new")
        self.clock.advance(0.5)
        self.assertFalse(service.is_registered)
        self.clock.advance(0.5)
        self.assertEqual(self.client.connects[-1]["params"]["samp.secret"], "new")

    def test_hub_shutdown_noticed_through_client(self):
        """The client's own end of registration (a hub event) is seen."""
        service = self.make_service()
        self.register(service)
        self.client.lose("the hub shut down")
        self.assertFalse(service.is_registered)

    def test_stop_unregisters(self):
        """stopService disconnects the client and leaves no timers."""
        service = self.make_service()
        self.register(service)
        self.successResultOf(service.stopService())
        self.assertEqual(self.client.disconnects, 1)
        self.assertFalse(self.client.is_connected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_unregister_timeout(self):
        """An unregistration the hub never answers is given up after
        unregister_timeout."""
        service = self.make_service(unregister_timeout=2.0)
        self.register(service)
        self.client.hang_on_disconnect = True
        d = service.stopService()
        self.assertNoResult(d)
        self.clock.advance(2.0)
        self.successResultOf(d)

    def test_stop_while_connecting(self):
        """Stopping cancels a connection attempt in progress."""
        write_lockfile(self.lockfile, "s1")
        service = self.make_service()
        service.startService()
        waiting = service.when_registered()
        self.successResultOf(service.stopService())
        self.assertEqual(len(self.client.cancelled), 1)
        self.failureResultOf(waiting, SAMPClientError)

    def test_when_registered_after_stop(self):
        """when_registered() on a stopping or stopped service fails at once
        instead of waiting for ever."""
        service = self.make_service()
        self.register(service)
        self.client.hang_on_disconnect = True
        stopping = service.stopService()
        self.failureResultOf(service.when_registered(), SAMPClientError)
        self.clock.advance(5.0)  # the unregister times out
        self.successResultOf(stopping)
        self.failureResultOf(service.when_registered(), SAMPClientError)

    def test_malformed_lockfile_at_start(self):
        """A lockfile that cannot be parsed is no hub: the service keeps
        trying and registers once a good lockfile is there."""
        with open(self.lockfile, "w") as f:
            f.write("samp.secret=s\nsamp.hub.xmlrpc.url=http://[::1/xmlrpc\n")
        service = self.make_service()
        service.startService()
        self.assertEqual(self.client.connects, [])
        write_lockfile(self.lockfile, "s1")
        self.clock.advance(0.5)
        self.assertEqual(len(self.client.connects), 1)

    def test_malformed_lockfile_while_registered(self):
        """A lockfile turned malformed ends the registration like a removed
        one, and the watch goes on."""
        service = self.make_service()
        self.register(service)
        with open(self.lockfile, "w") as f:
            f.write("samp.secret=s\nsamp.hub.xmlrpc.url=http://127.0.0.1:99999/\n")
        self.clock.advance(0.5)
        self.assertFalse(service.is_registered)
        self.clock.advance(1.0)
        write_lockfile(self.lockfile, "s2")
        self.clock.advance(0.5)
        self.assertEqual(self.client.connects[-1]["params"]["samp.secret"], "s2")

    def test_stop_while_waiting(self):
        """Stopping during the backoff wait ends it."""
        service = self.make_service()
        service.startService()
        self.successResultOf(service.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_restart(self):
        """A stopped service can be started again."""
        service = self.make_service()
        self.register(service)
        self.successResultOf(service.stopService())
        service.startService()
        self.client.succeed()
        self.assertTrue(service.is_registered)

    def test_auto_without_hub_starts_embedded(self):
        """auto mode with no lockfile runs an embedded hub at the lockfile
        path and stops it when the service stops."""
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        [hub] = self.hubs
        self.assertEqual(hub.lockfile, self.lockfile)
        self.assertIs(service.embedded_hub, hub)
        self.assertEqual(self.client.connects[0]["params"]["samp.secret"], hub.secret)
        self.client.succeed()
        self.successResultOf(service.stopService())
        self.assertEqual(hub.stops, 1)
        self.assertFalse(os.path.exists(self.lockfile))
        self.assertIsNone(service.embedded_hub)

    def test_auto_with_dead_hub_starts_embedded(self):
        """auto mode starts an embedded hub when the lockfile's hub does not
        answer."""
        write_lockfile(self.lockfile, "stale")
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        [hub] = self.hubs
        self.assertEqual(self.client.connects[0]["params"]["samp.secret"], hub.secret)

    def test_auto_with_live_hub_refusing(self):
        """A hub that answers but refuses is not replaced."""
        write_lockfile(self.lockfile, "live")
        self.alive.add("live")
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        self.client.fail(SAMPProxyError(1, "Bad password"))
        self.assertEqual(self.hubs, [])
        self.clock.advance(1.0)
        self.assertEqual(self.client.connects[1]["params"]["samp.secret"], "live")

    def test_auto_reuses_own_hub(self):
        """After losing a registration, the embedded hub still named by the
        lockfile is used again rather than replaced."""
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        self.client.succeed()
        self.client.lose("a glitch")
        self.clock.advance(1.0)
        self.assertEqual(len(self.hubs), 1)
        self.assertEqual(self.client.connects[1]["params"]["samp.secret"], self.hubs[0].secret)

    def test_auto_waits_for_lost_hub(self):
        """
        auto mode, after losing a hub it did not start, never starts its
        own: it waits, and registers with the hub that comes back.
        """
        write_lockfile(self.lockfile, "theirs")
        self.alive.add("theirs")
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        self.client.succeed()
        self.alive.clear()
        os.unlink(self.lockfile)  # the hub stopped
        self.clock.advance(0.5)
        self.assertFalse(service.is_registered)
        self.clock.advance(60.0)
        self.assertEqual((self.hubs, len(self.client.connects)), ([], 1))
        write_lockfile(self.lockfile, "back")
        self.clock.advance(0.5)
        self.assertEqual(self.client.connects[1]["params"]["samp.secret"], "back")
        self.client.succeed()
        self.assertTrue(service.is_registered)
        self.assertEqual(self.hubs, [])

    def test_auto_waits_for_silently_dead_hub(self):
        """A lost hub whose stale lockfile stays is not replaced either."""
        write_lockfile(self.lockfile, "theirs")
        self.alive.add("theirs")
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        self.client.succeed()
        self.alive.clear()
        self.client.lose("the hub does not answer: connection refused")
        for _ in range(5):
            self.clock.advance(4.0)
            self.client.fail(SAMPHubError("connection refused"))
        self.assertEqual(self.hubs, [])

    def test_auto_first_start_again_after_restart(self):
        """Stopping and starting the service is a first start again."""
        write_lockfile(self.lockfile, "theirs")
        self.alive.add("theirs")
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        self.client.succeed()
        self.successResultOf(service.stopService())
        os.unlink(self.lockfile)
        service.startService()
        self.assertEqual(len(self.hubs), 1)

    def test_auto_lost_race_uses_other_hub(self):
        """When another hub claims the lockfile while ours starts, ours
        gives way and the other is used."""
        service = self.make_service(hub=HUB_AUTO)

        def factory(lockfile):
            hub = FakeHub(lockfile)
            hub.start = lambda: write_lockfile(lockfile, "winner") or defer.fail(SAMPHubError("already running"))
            self.hubs.append(hub)
            return hub

        service._hub_factory = factory
        service.startService()
        self.assertEqual(self.client.connects[0]["params"]["samp.secret"], "winner")
        self.client.succeed()
        self.assertIsNone(service.embedded_hub)

    def test_stopping_own_hub_used_by_others_warns(self):
        """Stopping the service stops its embedded hub even when others use
        it (a hub cannot outlive its process), with a warning naming them."""
        service = self.make_service(hub=HUB_AUTO)
        service.startService()
        self.client.succeed()
        [hub] = self.hubs
        hub.registered_clients = ["c7", "c8"]
        with capturedLogs() as events:
            self.successResultOf(service.stopService())
        self.assertEqual(hub.stops, 1)
        [warning] = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertIn("2 other client(s) still use (c7, c8)", warning["log_format"].format(**warning))

    def test_embedded_always(self):
        """embedded mode runs its own hub even with a lockfile present; a
        hub whose lockfile was taken over is replaced."""
        service = self.make_service(hub=HUB_EMBEDDED, lockfile=os.path.join(self.directory, "mine"))
        write_lockfile(self.lockfile, "other")
        service.startService()
        [hub] = self.hubs
        self.assertEqual(hub.lockfile, os.path.join(self.directory, "mine"))
        self.client.succeed()
        write_lockfile(hub.lockfile, "intruder")
        self.clock.advance(0.5)
        self.assertFalse(service.is_registered)
        self.clock.advance(0.5)
        self.assertEqual(len(self.hubs), 2)
        self.assertEqual(self.hubs[0].stops, 1)

    def test_discovery_from_environment(self):
        """Without lockfile=, SAMP_HUB in the given environment is used."""
        write_lockfile(self.lockfile, "from-env")
        environ = {"HOME": self.directory, "SAMP_HUB": "std-lockurl:file://" + os.path.abspath(self.lockfile)}
        service = self.make_service(lockfile=None, environ=environ)
        service.startService()
        self.assertEqual(self.client.connects[0]["params"]["samp.secret"], "from-env")

    def test_observer_errors_logged(self):
        """A failing observer is logged and does not stop the others."""
        service = self.make_service()
        events = []

        def broken(event, detail):
            raise RuntimeError("observer broke")

        service.add_connection_observer(broken)
        service.add_connection_observer(lambda event, detail: events.append(event))
        self.register(service)
        self.assertEqual(events, ["registered"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        service.remove_connection_observer(broken)

    def test_cancel_when_registered(self):
        """Cancelling a when_registered Deferred forgets it."""
        service = self.make_service()
        service.startService()
        d = service.when_registered()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)

    def test_bad_arguments(self):
        """Wrong modes and intervals are refused at once."""
        for kwargs in [
            {"hub": "sometimes"},
            {"hub": HUB_EMBEDDED, "lockfile": "http://example.org/lock"},
            {"ping_interval": 0},
            {"ping_timeout": -1},
            {"lockfile_check_interval": 0},
            {"unregister_timeout": 0},
            {"unregister_timeout": None},
            {"ping_interval": "5"},
        ]:
            self.assertRaises(ValueError, SAMPClientService, self.client, reactor=self.clock, **kwargs)
        service = self.make_service()
        self.assertRaises(ValueError, service.when_registered, 0)


# -- against real hubs ------------------------------------------------------


def within(d, seconds=15.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


class Inbox:
    """A handler putting the messages it receives in a queue."""

    def __init__(self):
        self.queue = defer.DeferredQueue()

    def __call__(self, private_key, sender_id, msg_id, mtype, params, extra):
        self.queue.put((mtype, params))
        return {}

    def next(self):
        return within(self.queue.get())


def quick_retries():
    """Retry soon: real tests must not wait long."""
    return backoffPolicy(initialDelay=0.2, maxDelay=1.0, factor=1.5, jitter=lambda: 0.0)


class RealHubServiceMixin:
    """
    The service across a real hub's restart: ``self.start_hub(directory)``
    starts a hub writing ``<directory>/.samp``.
    """

    timeout = 90

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.lockfile = os.path.join(self.directory, ".samp")

    def make_service(self, **kwargs):
        client = SAMPIntegratedClient(name="keeper", metadata={"author.name": "tests"}, reactor=reactor)
        inbox = Inbox()
        client.bind_receive_message("test.*", inbox)
        kwargs.setdefault("ping_interval", 0.5)
        kwargs.setdefault("lockfile_check_interval", 0.2)
        kwargs.setdefault("hub", HUB_RUNNING)
        service = SAMPClientService(
            client, lockfile=self.lockfile, retry_policy=quick_retries(), reactor=reactor, **kwargs
        )
        events = defer.DeferredQueue()
        service.add_connection_observer(lambda event, detail: events.put((event, detail)))
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        return service, inbox, events

    async def other_client(self, params):
        other = SAMPIntegratedClient(name="other", reactor=reactor)
        other.calls = defer.DeferredQueue()
        # Calls are never answered: the handler replies to nobody.
        other.bind_receive_call("test.*", lambda key, sender, msg_id, mtype, *rest: other.calls.put(mtype))
        await within(other.connect(hub_params=params))
        self.addCleanup(other.disconnect)
        return other

    async def next_event(self, events, wanted):
        while True:
            event, detail = await within(events.get())
            if event == wanted:
                return detail

    async def check_seen(self, other, public_id):
        """*other* sees the service's client with its name and subscriptions."""
        metadata = await other.get_metadata(public_id)
        self.assertEqual((metadata["samp.name"], metadata["author.name"]), ("keeper", "tests"))
        self.assertIn("test.*", await other.get_subscriptions(public_id))

    async def test_registers_again_after_restart(self):
        """Across a hub restart on the same lockfile, the service registers
        again with the same metadata and subscriptions; pending waits fail
        on the loss; messages after the restart reach the handler."""
        hub = await self.start_hub(self.directory)
        service, inbox, events = self.make_service()
        client = await within(service.when_registered())
        first_id = client.get_public_id()
        other = await self.other_client(hub.params)
        await self.check_seen(other, first_id)

        pending = client.ecall_and_wait(other.get_public_id(), "test.unanswered", "0")
        self.assertEqual(await within(other.calls.get()), "test.unanswered")
        await client.ping()  # the call's HTTP exchange is over too
        await self.stop_hub(hub)
        reason = await self.next_event(events, "lost")
        self.assertIn("shut down", reason)
        with self.assertRaises(SAMPClientError) as caught:
            await within(pending)
        self.assertIn("shut down", str(caught.exception))
        await other.disconnect()

        started = reactor.seconds()
        hub = await self.start_hub(self.directory)
        await self.next_event(events, "registered")
        self.assertLess(reactor.seconds() - started, 15)
        other = await self.other_client(hub.params)
        public_id = client.get_public_id()
        await self.check_seen(other, public_id)
        await other.enotify(public_id, "test.after", n="1")
        self.assertEqual(await inbox.next(), ("test.after", {"n": "1"}))

        await service.stopService()
        self.assertNotIn(public_id, await other.get_registered_clients())
        self.assertFalse(client.client.is_running)


class JSAMPHubServiceTests(RealHubServiceMixin, TestCase):
    """The service with JSAMP's hub, in a child process."""

    def start_hub(self, directory):
        d = start_jsamp_hub(directory=directory)
        return d.addCallback(self._stop_later)

    def _stop_later(self, hub):
        self.addCleanup(hub.stop)
        return hub

    def stop_hub(self, hub):
        return hub.stop()

    async def test_killed_hub_noticed_by_ping(self):
        """A hub killed without a shutdown message is noticed by ping; the
        service registers with the next hub on the same lockfile."""
        hub = await self.start_hub(self.directory)
        service, inbox, events = self.make_service(ping_interval=0.3)
        await within(service.when_registered())
        await hub.kill()
        reason = await self.next_event(events, "lost")
        self.assertIn("the hub does not answer", reason)
        self.assertTrue(os.path.exists(hub.lockfile))  # no other route told
        hub = await self.start_hub(self.directory)
        await self.next_event(events, "registered")
        other = await self.other_client(hub.params)
        await self.check_seen(other, service.client.get_public_id())


class OurHubServiceTests(RealHubServiceMixin, TestCase):
    """The service with our own hub, in this process."""

    def start_hub(self, directory):
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(directory, ".samp"))
        self.addCleanup(hub.stop)
        return hub.start()

    def stop_hub(self, hub):
        return hub.stop()

    async def test_hub_restarted_at_same_address(self):
        """
        A hub restarted at the same address, found through a lockfile URL
        (which is not watched), answers requests but has forgotten the
        client: the liveness check notices and the service registers again.
        """
        served = os.path.join(self.directory, "served")
        os.makedirs(served)
        site = reactor.listenTCP(0, Site(File(served)), interface="127.0.0.1")
        self.addCleanup(site.stopListening)
        lockfile_url = f"http://127.0.0.1:{site.getHost().port}/lock"
        first = SAMPHubServer(reactor=reactor, lockfile=os.path.join(self.directory, "first.lock"))
        self.addCleanup(first.stop)
        await within(first.start())
        shutil.copy(first.lockfile, os.path.join(served, "lock"))
        self.lockfile = lockfile_url
        service, inbox, events = self.make_service(ping_interval=0.3)
        old_id = (await within(service.when_registered())).get_public_id()
        port = int(urlsplit(first.url).port)
        await first._close_listener()  # gone without telling anyone
        second = SAMPHubServer(reactor=reactor, port=port, lockfile=os.path.join(self.directory, "second.lock"))
        self.addCleanup(second.stop)
        await within(second.start())
        shutil.copy(second.lockfile, os.path.join(served, "lock"))
        reason = await self.next_event(events, "lost")
        self.assertIn("no longer knows this client", reason)
        await self.next_event(events, "registered")
        self.assertIn(service.client.get_public_id(), second.registered_clients)
        self.assertEqual(old_id, service.client.get_public_id())  # both hubs count from c1

    async def test_auto_mode_runs_embedded_hub(self):
        """With no hub, auto mode starts one others can use, and stops it
        (removing its lockfile) when the service stops."""
        service, inbox, events = self.make_service(hub=HUB_AUTO)
        client = await within(service.when_registered())
        self.assertIsNotNone(service.embedded_hub)
        other = await self.other_client(read_lockfile(self.lockfile))
        await self.check_seen(other, client.get_public_id())
        await other.disconnect()
        await service.stopService()
        self.assertFalse(os.path.exists(self.lockfile))
        self.assertIsNone(service.embedded_hub)
