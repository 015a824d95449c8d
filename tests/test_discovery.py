# -*- test-case-name: tests.test_discovery -*-
"""
Tests for hub discovery in L{sampy_twisted._discovery}.
"""

import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.static import Data

from sampy_twisted import (
    SAMPHubError,
    default_lockfile_path,
    get_hub_params,
    get_running_hubs,
    lockfile_location,
    parse_lockfile,
    read_lockfile,
)
from sampy_twisted._xmlrpc import XMLRPCResource, make_site

GOOD = """\
# SAMP Standard Profile lockfile
samp.secret=abc=def
samp.hub.xmlrpc.url=http\\://127.0.0.1\\:1234/xmlrpc
samp.profile.version=1.3
  hub.label = spaced  \r
"""


class LocationTests(SynchronousTestCase):
    """
    Where the lockfile is, from SAMP_HUB or the home directory.
    """

    def test_default_home(self):
        env = {"HOME": "/home/me"}
        self.assertEqual(lockfile_location(env), ("file", os.path.join("/home/me", ".samp")))
        self.assertEqual(default_lockfile_path(env), os.path.join("/home/me", ".samp"))

    def test_std_lockurl_file(self):
        env = {"HOME": "/h", "SAMP_HUB": "std-lockurl:file:///tmp/some%20dir/lock"}
        self.assertEqual(lockfile_location(env), ("file", "/tmp/some dir/lock"))
        env["SAMP_HUB"] = "std-lockurl:file://localhost/tmp/lock"
        self.assertEqual(lockfile_location(env), ("file", "/tmp/lock"))

    def test_std_lockurl_http(self):
        env = {"SAMP_HUB": "std-lockurl:http://127.0.0.1:8000/lock"}
        self.assertEqual(lockfile_location(env), ("url", "http://127.0.0.1:8000/lock"))

    def test_unsupported_prefix(self):
        """Another profile's SAMP_HUB is an error that names the variable."""
        exc = self.assertRaises(SAMPHubError, lockfile_location, {"SAMP_HUB": "web-appname:foo"})
        self.assertIn("SAMP_HUB='web-appname:foo'", str(exc))

    def test_unsupported_scheme(self):
        exc = self.assertRaises(SAMPHubError, lockfile_location, {"SAMP_HUB": "std-lockurl:ftp://x/y"})
        self.assertIn("SAMP_HUB", str(exc))
        exc = self.assertRaises(SAMPHubError, lockfile_location, {"SAMP_HUB": "std-lockurl:file://far/y"})
        self.assertIn("far", str(exc))

    def test_no_home(self):
        exc = self.assertRaises(SAMPHubError, lockfile_location, {})
        self.assertIn("HOME", str(exc))


class ParseTests(SynchronousTestCase):
    """
    Lockfile text.
    """

    def test_parse(self):
        """Comments are skipped, values split at the first =, escapes undone."""
        params = parse_lockfile(GOOD, "lock")
        self.assertEqual(params["samp.secret"], "abc=def")
        self.assertEqual(params["samp.hub.xmlrpc.url"], "http://127.0.0.1:1234/xmlrpc")
        self.assertEqual(params["hub.label"], "spaced")
        self.assertEqual(params["samp.profile.version"], "1.3")

    def test_missing_keys(self):
        """A missing secret or URL names the file and the key."""
        exc = self.assertRaises(SAMPHubError, parse_lockfile, "samp.secret=x\n", "/tmp/lock")
        self.assertIn("/tmp/lock", str(exc))
        self.assertIn("samp.hub.xmlrpc.url", str(exc))
        exc = self.assertRaises(SAMPHubError, parse_lockfile, "", "/tmp/lock")
        self.assertIn("samp.secret", str(exc))

    def test_garbage_lines_skipped(self):
        text = "nonsense\n=novalue\n" + GOOD
        self.assertEqual(parse_lockfile(text)["samp.secret"], "abc=def")

    def test_bad_url(self):
        exc = self.assertRaises(
            SAMPHubError, parse_lockfile, "samp.secret=x\nsamp.hub.xmlrpc.url=ftp://h/\n", "f"
        )
        self.assertIn("ftp://h/", str(exc))


class ReadTests(SynchronousTestCase):
    """
    Reading lockfiles from disk.
    """

    def write(self, content, mode="w"):
        path = self.mktemp()
        with open(path, mode) as f:
            f.write(content)
        return path

    def test_read(self):
        self.assertEqual(read_lockfile(self.write(GOOD))["samp.secret"], "abc=def")

    def test_missing(self):
        path = self.mktemp()
        exc = self.assertRaises(SAMPHubError, read_lockfile, path)
        self.assertIn(path, str(exc))
        self.assertIn("no SAMP hub is running", str(exc))

    def test_unreadable(self):
        """A directory where the lockfile should be is a clear error."""
        path = self.mktemp()
        os.mkdir(path)
        exc = self.assertRaises(SAMPHubError, read_lockfile, path)
        self.assertIn(path, str(exc))

    def test_binary(self):
        path = self.write(b"samp.secret=\xff\n", "wb")
        exc = self.assertRaises(SAMPHubError, read_lockfile, path)
        self.assertIn("ASCII", str(exc))

    def test_huge(self):
        path = self.write("#" * (2 * 1024 * 1024))
        exc = self.assertRaises(SAMPHubError, read_lockfile, path)
        self.assertIn("too large", str(exc))


def _ping_site():
    return make_site(XMLRPCResource({"samp.hub.ping": lambda: "1"}))


class NetworkDiscoveryTests(TestCase):
    """
    Lockfiles published over http, and the list of running hubs.
    """

    timeout = 30

    def listen(self, site):
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}"

    @defer.inlineCallbacks
    def test_http_lockfile(self):
        root = Resource()
        root.putChild(b"lock", Data(GOOD.encode("ascii"), "text/plain"))
        url = self.listen(make_site(root))
        params = yield get_hub_params(reactor, {"SAMP_HUB": f"std-lockurl:{url}/lock"})
        self.assertEqual(params["samp.secret"], "abc=def")

    @defer.inlineCallbacks
    def test_http_lockfile_too_large(self):
        """A lockfile URL answering megabytes is refused, not read whole."""
        root = Resource()
        root.putChild(b"lock", Data(b"#" * (2 * 1024 * 1024), "text/plain"))
        url = self.listen(make_site(root))
        error = yield self.assertFailure(
            get_hub_params(reactor, {"SAMP_HUB": f"std-lockurl:{url}/lock"}), SAMPHubError
        )
        self.assertIn("exceeds", str(error))
        self.assertIn(f"{url}/lock", str(error))

    @defer.inlineCallbacks
    def test_http_lockfile_missing(self):
        url = self.listen(make_site(Resource()))
        error = yield self.assertFailure(
            get_hub_params(reactor, {"SAMP_HUB": f"std-lockurl:{url}/nothing"}), SAMPHubError
        )
        self.assertIn("404", str(error))

    @defer.inlineCallbacks
    def test_bad_environment_fails_deferred(self):
        yield self.assertFailure(get_hub_params(reactor, {"SAMP_HUB": "bogus"}), SAMPHubError)

    @defer.inlineCallbacks
    def test_running_hubs(self):
        """Live hubs are listed; stale and broken lockfiles are left out."""
        home = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(home, ".samp-1"))
        live = self.listen(_ping_site())
        dead = self.listen(make_site(Resource()))  # answers 404: not a hub

        def lock(path, url):
            with open(path, "w") as f:
                f.write(f"samp.secret=s\nsamp.hub.xmlrpc.url={url}/\n")

        lock(os.path.join(home, ".samp"), live)
        lock(os.path.join(home, ".samp-1", "samp-hub-live"), live)
        lock(os.path.join(home, ".samp-1", "samp-hub-dead"), dead)
        with open(os.path.join(home, ".samp-1", "samp-hub-broken"), "w") as f:
            f.write("junk\n")
        hubs = yield get_running_hubs(reactor, {"HOME": home})
        self.assertEqual(
            sorted(hubs),
            sorted([os.path.join(home, ".samp"), os.path.join(home, ".samp-1", "samp-hub-live")]),
        )
