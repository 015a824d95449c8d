# -*- test-case-name: tests.test_quickstart -*-
"""
The quick start example, ``docs/examples/quickstart.py``, run against a real
JSAMP hub with an astropy client standing in for TOPCAT: imported and
awaited in the test, and run as a script in a child process.
"""

import importlib.util
import io
import os
import sys

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from sampy_twisted import SAMPClientError
from sampy_twisted.testing import hub_for_test

from .astropy_peer import AstropyPeer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "quickstart.py")
TABLE_URL = "file:///data/quickstart-test.xml"


def load_example():
    """Import ``docs/examples/quickstart.py`` by path, as a fresh module."""
    spec = importlib.util.spec_from_file_location("quickstart_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class QuickstartTests(unittest.TestCase):
    """
    The example sends its table to the target, pings it and unregisters.
    """

    timeout = 120

    async def setUp(self):
        # Never skipped: without JSAMP this fails, as every interop test does.
        self.hub = await hub_for_test(self, "jsamp")
        self.peer = await AstropyPeer.connect(
            reactor, self.hub.params, name="topcat", subscribe=("table.load.votable",)
        )
        self.addCleanup(self.peer.disconnect)

    def use_hub(self):
        """Point this process's hub discovery (``SAMP_HUB``) at the test's
        hub until the test ends."""
        old = os.environ.get("SAMP_HUB")
        os.environ["SAMP_HUB"] = self.hub.environ["SAMP_HUB"]

        def restore():
            if old is None:
                os.environ.pop("SAMP_HUB", None)
            else:
                os.environ["SAMP_HUB"] = old

        self.addCleanup(restore)

    async def assert_unregistered(self):
        """No client named "quickstart" is left registered with the hub."""
        names = []
        for client_id in await self.peer.get_registered_clients():
            metadata = await self.peer.get_metadata(client_id)
            names.append(metadata.get("samp.name"))
        self.assertNotIn("quickstart", names)

    async def test_main(self):
        """
        ``main`` finds the hub through ``SAMP_HUB``, delivers
        ``table.load.votable`` with its URL to the client named "topcat",
        prints the status of the ping and disconnects.
        """
        self.use_hub()
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)
        example = load_example()

        await example.main(reactor, "topcat", votable_url=TABLE_URL)

        message = await self.peer.next_message(timeout=10)
        self.assertEqual(
            (message.kind, message.mtype, message.params),
            ("notification", "table.load.votable", {"url": TABLE_URL, "name": "quickstart table"}),
        )
        self.assertEqual(
            stdout.getvalue(),
            f"Sent table.load.votable to topcat ({self.peer.public_id}), named 'topcat'\n"
            f"topcat ({self.peer.public_id}) answered samp.app.ping: samp.ok\n",
        )
        await self.assert_unregistered()

    async def test_main_any_loader(self):
        """
        Without a target, ``main`` sends the table to the first client
        subscribed to ``table.load.votable``, and says so.
        """
        other = await AstropyPeer.connect(reactor, self.hub.params, name="no tables", subscribe=("test.*",))
        self.addCleanup(other.disconnect)
        self.use_hub()
        stdout = io.StringIO()
        self.patch(sys, "stdout", stdout)

        await load_example().main(reactor, votable_url=TABLE_URL)

        message = await self.peer.next_message(timeout=10)
        self.assertEqual((message.mtype, message.params["url"]), ("table.load.votable", TABLE_URL))
        self.assertEqual(
            stdout.getvalue().splitlines()[0],
            f"Sent table.load.votable to topcat ({self.peer.public_id}), "
            "the first client subscribed to table.load.votable",
        )
        await self.assert_unregistered()

    async def test_main_unknown_target(self):
        """
        With no client of the target's name, ``main`` fails with
        :class:`SAMPClientError` and still disconnects.
        """
        self.use_hub()
        example = load_example()

        with self.assertRaises(SAMPClientError):
            await example.main(reactor, "no-such-application")

        await self.assert_unregistered()

    async def run_script(self, environ, *args):
        env = dict(environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [EXAMPLE, *args], env=env, path=ROOT, reactor=reactor
        )
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), code

    async def test_script_nobody_loads_tables(self):
        """
        Run without a target where no client loads tables, the script
        explains in one line and exits 1: no traceback.
        """
        await self.peer.disconnect()
        out, err, code = await self.run_script(self.hub.environ)
        self.assertEqual((out, code), ("", 1))
        self.assertEqual(
            err,
            "quickstart: no registered application loads tables (table.load.votable): "
            "start TOPCAT or Aladin, or name a client to send to\n",
        )

    async def test_script_no_hub(self):
        """With no hub, the script says so in one line and exits 1."""
        lockfile = os.path.join(os.path.abspath(self.mktemp()), ".samp")
        out, err, code = await self.run_script({"SAMP_HUB": f"std-lockurl:file://{lockfile}"}, "topcat")
        self.assertEqual((out, code), ("", 1))
        self.assertRegex(err, r"^quickstart: no SAMP hub is running: .* \(start TOPCAT, Aladin or another hub first\)\n$")

    async def test_script(self):
        """
        ``python docs/examples/quickstart.py topcat`` with ``SAMP_HUB`` set
        exits with 0 after the ping, having sent its default table URL.
        """
        example = load_example()
        env = dict(self.hub.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))

        out, err, code = await getProcessOutputAndValue(
            sys.executable, [EXAMPLE, "topcat"], env=env, path=ROOT, reactor=reactor
        )

        output = (out + err).decode("utf-8", "replace")
        self.assertEqual(code, 0, f"the example failed:\n{output}")
        self.assertEqual(
            out.decode("utf-8").splitlines()[-1], f"topcat ({self.peer.public_id}) answered samp.app.ping: samp.ok"
        )
        message = await self.peer.next_message(timeout=10)
        self.assertEqual((message.mtype, message.params["url"]), ("table.load.votable", example.VOTABLE_URL))
        await self.assert_unregistered()
