# -*- test-case-name: tests.test_hub_lockfile -*-
"""
Tests for :mod:`sampy_twisted._lockfile` and the hub's use of it: refusing
to start over a live hub, replacing stale lockfiles, 0600 permissions and
removing only our own lockfile.
"""

import os
import socket
import stat

from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import globalLogPublisher
from twisted.internet.testing import EventLoggingObserver
from twisted.trial import unittest

from sampy_twisted._discovery import read_lockfile
from sampy_twisted._errors import SAMPHubError
from sampy_twisted._hub import SAMPHubServer, start_hub
from sampy_twisted._lockfile import (
    claim_lockfile,
    format_lockfile,
    lockfile_path,
    new_lockfile_params,
    remove_lockfile_if_ours,
    write_lockfile,
)


def _closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class LockfileTestCase(unittest.TestCase):
    """Gives each test a fresh directory."""

    timeout = 60

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.path = os.path.join(self.directory, "samp")

    def write_stale(self, secret="old-secret"):
        """Write a lockfile naming a hub that is not running."""
        url = f"http://127.0.0.1:{_closed_port()}/xmlrpc"
        write_lockfile(self.path, format_lockfile(new_lockfile_params(url, secret)))
        return url

    async def hub(self, **options):
        """Start a hub on ``self.path`` and stop it at the end of the test."""
        hub = await start_hub(reactor, lockfile=self.path, **options)
        self.addCleanup(hub.stop)
        return hub


class FormatTests(LockfileTestCase):
    """Lockfile text and where it goes."""

    def test_round_trip(self):
        """What we write, discovery reads back."""
        params = new_lockfile_params("http://127.0.0.1:1234/xmlrpc", "s3cret", "my hub")
        write_lockfile(self.path, format_lockfile(params))
        self.assertEqual(read_lockfile(self.path), params)
        self.assertEqual(params["samp.profile.version"], "1.3")
        self.assertEqual(params["hub.impl"], "sampy_twisted")

    def test_label_cleaned(self):
        """A label cannot break the lockfile with newlines or non-ASCII."""
        params = new_lockfile_params("http://127.0.0.1:1/", "s", "two\nlines \u00e9")
        self.assertEqual(params["hub.label"], "two?lines ?")
        with self.assertRaises(ValueError):
            format_lockfile({"bad name": "x"})

    def test_mode_0600(self):
        """The file is readable by its owner only, and no temporary file remains."""
        write_lockfile(self.path, "samp.secret=x\n")
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(os.listdir(self.directory), ["samp"])

    def test_mode_0600_despite_umask(self):
        """A permissive umask does not widen the lockfile's mode."""
        old = os.umask(0)
        try:
            write_lockfile(self.path, "samp.secret=x\n")
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_exclusive(self):
        """An exclusive write refuses to replace an existing file."""
        write_lockfile(self.path, "samp.secret=first\n")
        with self.assertRaises(FileExistsError):
            write_lockfile(self.path, "samp.secret=second\n", exclusive=True)
        with open(self.path) as f:
            self.assertEqual(f.read(), "samp.secret=first\n")
        self.assertEqual(os.listdir(self.directory), ["samp"])

    def test_path_explicit(self):
        """An explicit path wins over SAMP_HUB."""
        environ = {"HOME": self.directory, "SAMP_HUB": "std-lockurl:file:///elsewhere"}
        self.assertEqual(lockfile_path(self.path, environ=environ), self.path)

    def test_path_from_samp_hub(self):
        """SAMP_HUB=std-lockurl:file:... names the lockfile."""
        environ = {"HOME": "/nonexistent", "SAMP_HUB": f"std-lockurl:file://{self.path}"}
        self.assertEqual(lockfile_path(environ=environ), self.path)

    def test_path_default(self):
        """Without SAMP_HUB the lockfile is ~/.samp."""
        environ = {"HOME": self.directory}
        self.assertEqual(lockfile_path(environ=environ), os.path.join(self.directory, ".samp"))

    def test_path_http_refused(self):
        """A hub cannot write a lockfile named by an http URL."""
        environ = {"HOME": self.directory, "SAMP_HUB": "std-lockurl:http://host/lock"}
        error = self.assertRaises(SAMPHubError, lockfile_path, environ=environ)
        self.assertIn("http://host/lock", str(error))

    def test_path_multi(self):
        """Multi-hub mode makes a new file name in ~/.samp-1 (mode 0700)."""
        environ = {"HOME": self.directory}
        first = lockfile_path(multi=True, environ=environ)
        second = lockfile_path(multi=True, environ=environ)
        multi_dir = os.path.join(self.directory, ".samp-1")
        self.assertEqual(os.path.dirname(first), multi_dir)
        self.assertTrue(os.path.basename(first).startswith("samp-hub-"))
        self.assertNotEqual(first, second)
        self.assertEqual(stat.S_IMODE(os.stat(multi_dir).st_mode), 0o700)


class ClaimTests(LockfileTestCase):
    """claim_lockfile and remove_lockfile_if_ours without a hub."""

    async def test_claim_absent(self):
        """With no lockfile, claiming writes ours."""
        params = new_lockfile_params("http://127.0.0.1:1/", "mine")
        await claim_lockfile(self.path, params, reactor)
        self.assertEqual(read_lockfile(self.path)["samp.secret"], "mine")

    async def test_claim_stale(self):
        """A lockfile whose hub does not answer is replaced, with a warning."""
        url = self.write_stale()
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        params = new_lockfile_params("http://127.0.0.1:1/", "mine")
        await claim_lockfile(self.path, params, reactor, ping_timeout=5.0)
        self.assertEqual(read_lockfile(self.path)["samp.secret"], "mine")
        warnings = [e for e in events if e.get("path") == self.path and e.get("url") == url]
        self.assertEqual(len(warnings), 1)
        self.assertIn("stale", warnings[0]["log_format"])

    async def test_claim_broken(self):
        """A lockfile that cannot be parsed is replaced."""
        with open(self.path, "w") as f:
            f.write("this is not a lockfile\n")
        params = new_lockfile_params("http://127.0.0.1:1/", "mine")
        await claim_lockfile(self.path, params, reactor)
        self.assertEqual(read_lockfile(self.path)["samp.secret"], "mine")

    async def test_claim_unwritable(self):
        """A lockfile in a missing directory is a SAMPHubError naming it."""
        path = os.path.join(self.directory, "missing", "samp")
        params = new_lockfile_params("http://127.0.0.1:1/", "mine")
        with self.assertRaises(SAMPHubError) as caught:
            await claim_lockfile(path, params, reactor)
        self.assertIn(path, str(caught.exception))

    def test_remove_only_ours(self):
        """Only a lockfile with our secret is removed."""
        self.write_stale(secret="theirs")
        self.assertFalse(remove_lockfile_if_ours(self.path, "ours"))
        self.assertTrue(os.path.exists(self.path))
        self.assertTrue(remove_lockfile_if_ours(self.path, "theirs"))
        self.assertFalse(os.path.exists(self.path))
        self.assertFalse(remove_lockfile_if_ours(self.path, "theirs"))


class HubLockfileTests(LockfileTestCase):
    """The hub's lockfile behaviour."""

    async def test_hub_lockfile_mode(self):
        """The hub's lockfile is 0600 and describes the hub."""
        hub = await self.hub()
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        self.assertEqual(read_lockfile(self.path), hub.params)
        self.assertEqual(hub.lockfile, self.path)

    async def test_live_hub_refusal(self):
        """A second hub on a live hub's lockfile refuses to start, naming the file."""
        first = await self.hub()
        with self.assertRaises(SAMPHubError) as caught:
            await self.hub()
        self.assertIn(self.path, str(caught.exception))
        self.assertIn("already running", str(caught.exception))
        self.assertEqual(read_lockfile(self.path), first.params)
        self.assertTrue(first.is_running)

    async def test_refused_hub_stops_listening(self):
        """A hub that refused to start leaves no port open."""
        await self.hub()
        second = SAMPHubServer(reactor=reactor, lockfile=self.path)
        with self.assertRaises(SAMPHubError):
            await second.start()
        self.assertFalse(second.is_running)
        self.assertIsNone(second.url)
        await second.stop()

    async def test_stale_replaced(self):
        """A stale lockfile is replaced by the new hub's."""
        self.write_stale()
        hub = await self.hub()
        self.assertEqual(read_lockfile(self.path)["samp.secret"], hub.params["samp.secret"])

    async def test_stale_naming_our_address(self):
        """
        A stale lockfile naming the address the new hub was given is
        replaced: the hub answering there is the newcomer itself.
        """
        port = _closed_port()
        url = f"http://127.0.0.1:{port}/xmlrpc"
        write_lockfile(self.path, format_lockfile(new_lockfile_params(url, "old-secret")))
        hub = await self.hub(port=port)
        self.assertEqual(hub.url, url)
        self.assertEqual(read_lockfile(self.path)["samp.secret"], hub.params["samp.secret"])

    async def test_two_hubs_racing_for_stale_lockfile(self):
        """
        Two hubs starting at once over a stale lockfile: one replaces it,
        the other sees the newcomer's lockfile and refuses to start, so no
        hub runs without clients being able to find it.
        """
        silent = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        url = f"http://127.0.0.1:{silent.getHost().port}/xmlrpc"  # accepts, never answers
        write_lockfile(self.path, format_lockfile(new_lockfile_params(url, "old-secret")))
        hubs = [SAMPHubServer(reactor=reactor, lockfile=self.path, ping_timeout=0.5) for _ in range(2)]
        for hub in hubs:
            self.addCleanup(hub.stop)
        results = await DeferredList([hub.start() for hub in hubs], consumeErrors=True)
        [winner] = [hub for hub in hubs if hub.is_running]
        [failure] = [result for ok, result in results if not ok]
        failure.trap(SAMPHubError)
        self.assertIn("already running", failure.getErrorMessage())
        self.assertEqual(read_lockfile(self.path)["samp.secret"], winner.params["samp.secret"])

    async def test_stop_keeps_foreign_lockfile(self):
        """A hub whose lockfile was replaced by another's leaves it alone."""
        hub = await self.hub()
        other = new_lockfile_params("http://127.0.0.1:1/", "another-hub")
        write_lockfile(self.path, format_lockfile(other))
        await hub.stop()
        self.assertEqual(read_lockfile(self.path)["samp.secret"], "another-hub")

    async def test_stop_tolerates_missing_lockfile(self):
        """A hub whose lockfile was deleted stops cleanly."""
        hub = await self.hub()
        os.unlink(self.path)
        await hub.stop()
        self.assertFalse(hub.is_running)

    async def test_restart(self):
        """A stopped hub can start again, with a new secret."""
        hub = await self.hub()
        secret = hub.params["samp.secret"]
        await hub.stop()
        self.assertFalse(os.path.exists(self.path))
        await hub.start()
        self.assertNotEqual(hub.params["samp.secret"], secret)
        self.assertEqual(read_lockfile(self.path), hub.params)

    async def test_samp_hub_environment(self):
        """Without lockfile=, the hub writes where SAMP_HUB says."""
        self.patch(os, "environ", {**os.environ, "SAMP_HUB": f"std-lockurl:file://{self.path}"})
        hub = await start_hub(reactor)
        self.addCleanup(hub.stop)
        self.assertEqual(hub.lockfile, self.path)
        self.assertEqual(read_lockfile(self.path), hub.params)

    async def test_multi(self):
        """Multi-hub mode writes ~/.samp-1/samp-hub-<random>."""
        self.patch(os, "environ", {**os.environ, "HOME": self.directory})
        hub = await start_hub(reactor, multi=True)
        self.addCleanup(hub.stop)
        self.assertEqual(os.path.dirname(hub.lockfile), os.path.join(self.directory, ".samp-1"))
        self.assertEqual(read_lockfile(hub.lockfile), hub.params)
        await hub.stop()
        self.assertFalse(os.path.exists(hub.lockfile))
