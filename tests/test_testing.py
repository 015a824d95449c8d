"""
Tests for sampy_twisted.testing: real hubs and JSAMP tools in child
processes, and the astropy peer used by the interoperability tests.
"""

import os
import stat

from twisted.internet import reactor
from twisted.trial import unittest

from sampy_twisted import _jsamp
from sampy_twisted.testing import (
    HubProcess,
    JSampNotFound,
    ProcessFailed,
    ProcessTimedOut,
    hub_for_test,
    run_jsamp_tool,
    spawn_jsamp_tool,
    start_astropy_hub,
    start_jsamp_hub,
)

from .astropy_peer import AstropyPeer, PeerConnectError, PeerTimeout, error, ok


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class _HubLifecycleMixin:
    """
    Start, stop and kill one kind of hub; subclasses set ``start`` and the
    ``stopped_exit_code`` of a hub stopped by SIGTERM.
    """

    timeout = 60

    def _directory(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        return directory

    async def _started(self):
        hub = await self.start(reactor, directory=self._directory())
        # A failing assertion must not leave the hub running.
        self.addCleanup(hub.stop)
        return hub

    async def test_lockfile(self):
        """
        The hub writes a private, complete lockfile in its own directory, and
        the environment it offers points clients at it.
        """
        hub = await self._started()
        self.assertIsInstance(hub, HubProcess)
        self.assertEqual(hub.lockfile, os.path.join(hub.directory, ".samp"))
        self.assertEqual(stat.S_IMODE(os.stat(hub.lockfile).st_mode), 0o600)
        self.assertTrue(hub.params["samp.hub.xmlrpc.url"].startswith("http://"))
        self.assertTrue(hub.params["samp.secret"])
        self.assertEqual(hub.environ["HOME"], hub.directory)
        self.assertEqual(hub.environ["SAMP_HUB"], "std-lockurl:file://" + hub.lockfile)

    async def test_stop(self):
        """
        stop() ends the process, ``ended`` fires, and the hub removes its
        lockfile.
        """
        hub = await self._started()
        self.assertFalse(hub.ended.called)
        result = await hub.stop()
        self.assertTrue(hub.ended.called)
        self.assertIs(hub.result, result)
        self.assertFalse(_alive(hub.pid))
        self.assertFalse(os.path.exists(hub.lockfile))
        self.assertEqual(result.exit_code, self.stopped_exit_code, result.output)
        # Stopping again is harmless (cleanups may do it).
        self.assertIs(await hub.stop(), result)

    async def test_kill(self):
        """
        kill() ends the hub without notice: its lockfile stays behind.
        """
        hub = await self._started()
        result = await hub.kill()
        self.assertEqual(result.signal, 9)
        self.assertFalse(_alive(hub.pid))
        self.assertTrue(os.path.exists(hub.lockfile))

    async def test_restart_after_kill(self):
        """
        A new hub starts in the directory of a killed one, replacing its
        stale lockfile.
        """
        first = await self._started()
        await first.kill()
        second = await self.start(reactor, directory=first.directory)
        self.addCleanup(second.stop)
        self.assertNotEqual(second.params["samp.secret"], first.params["samp.secret"])

    async def test_own_directory(self):
        """
        Without a directory the hub gets a temporary one, removed when it
        ends.
        """
        hub = await self.start(reactor)
        self.addCleanup(hub.stop)
        self.assertTrue(os.path.isfile(hub.lockfile))
        await hub.stop()
        self.assertFalse(os.path.exists(hub.directory))


class JSampHubTests(_HubLifecycleMixin, unittest.TestCase):
    """JSAMP's hub run by start_jsamp_hub."""

    start = staticmethod(start_jsamp_hub)
    stopped_exit_code = 128 + 15  # the JVM's status after a SIGTERM

    async def test_hubtester(self):
        """
        JSAMP's own hub test suite passes against it: run_jsamp_tool works.
        """
        hub = await self._started()
        result = await run_jsamp_tool(
            "hubtester", lockfile=hub.lockfile, directory=self._directory()
        )
        self.assertEqual(result.exit_code, 0, result.output)

    async def test_hub_exits_at_start(self):
        """
        A hub that exits instead of starting is a clear error with its output.
        """
        failure = await self.assertFailure(
            start_jsamp_hub(directory=self._directory(), hub_args=("-no-such-option",)),
            ProcessFailed,
        )
        self.assertIn("JSAMP hub exited", str(failure))
        self.assertIn("Usage", failure.output)


class AstropyHubTests(_HubLifecycleMixin, unittest.TestCase):
    """astropy's hub run by start_astropy_hub."""

    start = staticmethod(start_astropy_hub)
    stopped_exit_code = 0


class JSampToolTests(unittest.TestCase):
    """run_jsamp_tool and spawn_jsamp_tool."""

    timeout = 60

    async def _hub(self):
        return await hub_for_test(self, "jsamp")

    async def test_timeout(self):
        """
        A tool running past its timeout is killed and reported clearly.
        """
        hub = await self._hub()
        failure = await self.assertFailure(
            run_jsamp_tool("snooper", lockfile=hub.lockfile, timeout=0.5),
            ProcessTimedOut,
        )
        self.assertIn("JSAMP snooper did not finish within 0.5 s and was killed", str(failure))

    async def test_snooper(self):
        """
        A spawned snooper's output can be awaited line by line; stop() ends it.
        """
        hub = await self._hub()
        snooper = spawn_jsamp_tool("snooper", lockfile=hub.lockfile)
        self.addCleanup(snooper.stop)
        await snooper.wait_for_line("samp.hub.event.subscriptions", timeout=30)
        sent = await run_jsamp_tool(
            "messagesender",
            ("-mtype", "test.echo", "-mode", "notify", "-param", "word", "hello"),
            lockfile=hub.lockfile,
        )
        self.assertEqual(sent.exit_code, 0, sent.output)
        await snooper.wait_for_line(r'"samp.mtype": "test.echo"', timeout=30)
        line = await snooper.wait_for_line(r'"word"', timeout=30)
        self.assertIn('"hello"', line)
        await snooper.stop()
        self.assertIsNotNone(snooper.result)
        self.assertFalse(_alive(snooper.pid))

    async def test_wait_for_line_timeout(self):
        """
        Waiting for a line that never comes fails clearly, with the output.
        """
        hub = await self._hub()
        snooper = spawn_jsamp_tool("snooper", lockfile=hub.lockfile)
        self.addCleanup(snooper.stop)
        await snooper.wait_for_line("samp.hub.event.subscriptions", timeout=30)
        failure = await self.assertFailure(
            snooper.wait_for_line("never written", timeout=0.2), ProcessTimedOut
        )
        self.assertIn("wrote no line matching 'never written' within 0.2 s", str(failure))
        self.assertIn("samp.hub.event.subscriptions", failure.output)


class MissingJSampTests(unittest.TestCase):
    """Java or the jar missing."""

    def setUp(self):
        self.jar = os.path.abspath(self.mktemp())

    def test_start_hub(self):
        """
        start_jsamp_hub fails with advice to install the package.
        """
        failure = self.failureResultOf(start_jsamp_hub(jar=self.jar), JSampNotFound)
        self.assertIn(self.jar, str(failure.value))
        self.assertIn("install Debian's jsamp package", str(failure.value))

    def test_run_tool(self):
        """
        run_jsamp_tool fails the same way; spawn_jsamp_tool raises.
        """
        self.failureResultOf(run_jsamp_tool("hubtester", jar=self.jar), JSampNotFound)
        self.assertRaises(JSampNotFound, spawn_jsamp_tool, "snooper", jar=self.jar)

    def test_environment_variable(self):
        """
        SAMPY_TWISTED_JSAMP_JAR names the jar.
        """
        self.patch(os, "environ", {**os.environ, _jsamp.JAR_ENV_VAR: self.jar})
        error = self.assertRaises(JSampNotFound, _jsamp.find_jsamp)
        self.assertIn(self.jar, str(error))

    def test_no_java(self):
        """
        Without java on PATH the error says so.
        """
        self.patch(_jsamp.shutil, "which", lambda name: None)
        error = self.assertRaises(JSampNotFound, _jsamp.find_jsamp)
        self.assertIn("no 'java' program", str(error))

    def test_unknown_hub_kind(self):
        """
        hub_for_test names the hubs it knows.
        """
        error = self.assertRaises(ValueError, hub_for_test, self, "sampy")
        self.assertIn("astropy, jsamp", str(error))


class _PeerMixin:
    """The astropy peer against one kind of hub; subclasses set ``kind``."""

    timeout = 60

    async def _peer(self, hub, name, **kwargs):
        peer = await AstropyPeer.connect(reactor, hub.params, name=name, **kwargs)
        self.addCleanup(peer.disconnect)
        return peer

    async def _two_peers(self, **receiver_options):
        hub = await hub_for_test(self, self.kind)
        sender = await self._peer(hub, "sender")
        receiver = await self._peer(hub, "receiver", subscribe=("test.*",), **receiver_options)
        return sender, receiver

    async def test_registered(self):
        """
        Each peer sees the other registered, with its name.
        """
        sender, receiver = await self._two_peers()
        self.assertIn(receiver.public_id, await sender.get_registered_clients())
        self.assertIn(sender.public_id, await receiver.get_registered_clients())
        metadata = await sender.get_metadata(receiver.public_id)
        self.assertEqual(metadata["samp.name"], "receiver")

    async def test_notification(self):
        """
        A notification from one peer reaches the other.
        """
        sender, receiver = await self._two_peers()
        await sender.notify(receiver.public_id, "test.echo", {"word": "hello"})
        message = await receiver.next_message()
        self.assertEqual(
            (message.kind, message.sender_id, message.msg_id, message.mtype, message.params),
            ("notification", sender.public_id, None, "test.echo", {"word": "hello"}),
        )

    async def test_call_answered(self):
        """
        A call is seen by the receiver and answered with its result map.
        """
        sender, receiver = await self._two_peers(call_reply={"answer": "42"})
        response = await sender.call_and_wait(receiver.public_id, "test.ask", {"q": "?"})
        self.assertEqual(response["samp.status"], "samp.ok")
        self.assertEqual(response["samp.result"], {"answer": "42"})
        message = await receiver.next_message()
        self.assertEqual((message.kind, message.mtype), ("call", "test.ask"))
        self.assertTrue(message.msg_id)

    async def test_call_error(self):
        """
        An asynchronous call answered with an error comes back as a response.
        """
        sender, receiver = await self._two_peers(call_reply=error("no", samp_code="7"))
        tag, _ = await sender.call(receiver.public_id, "test.fail")
        response = await sender.next_response()
        self.assertEqual((response.responder_id, response.msg_tag), (receiver.public_id, tag))
        self.assertEqual(response.response["samp.status"], "samp.error")
        self.assertEqual(response.response["samp.error"]["samp.errortxt"], "no")
        self.assertEqual(response.response["samp.error"]["samp.code"], "7")

    async def test_reply_changed(self):
        """
        call_reply can be changed on a connected peer, to a function.
        """
        sender, receiver = await self._two_peers()
        receiver.call_reply = lambda message: ok({"echo": message.params["word"]})
        response = await sender.call_and_wait(receiver.public_id, "test.echo", {"word": "hi"})
        self.assertEqual(response["samp.result"], {"echo": "hi"})

    async def test_no_message(self):
        """
        Waiting for a message that never comes fails clearly.
        """
        _, receiver = await self._two_peers()
        failure = await self.assertFailure(receiver.next_message(timeout=0.2), PeerTimeout)
        self.assertIn("received no message within 0.2 s", str(failure))


class AstropyPeerNoHubTests(unittest.TestCase):
    """The astropy peer without a hub."""

    timeout = 30

    async def test_connect_fails(self):
        """
        Connecting to a hub that is not there fails, naming the hub.
        """
        params = {"samp.secret": "s", "samp.hub.xmlrpc.url": "http://127.0.0.1:1/xmlrpc"}
        failure = await self.assertFailure(
            AstropyPeer.connect(reactor, params, name="lonely"), PeerConnectError
        )
        self.assertIn(
            "'lonely' could not register with the hub at http://127.0.0.1:1/xmlrpc",
            str(failure),
        )


class AstropyPeerJSampHubTests(_PeerMixin, unittest.TestCase):
    """The astropy peer through JSAMP's hub."""

    kind = "jsamp"


class AstropyPeerAstropyHubTests(_PeerMixin, unittest.TestCase):
    """The astropy peer through astropy's hub."""

    kind = "astropy"
