# -*- test-case-name: tests.test_tap -*-
"""
Tests for the twistd plugins ``samp-client`` and ``samp-hub``: their options,
the services they build, the installed dropin, and twistd running them
against real hubs in child processes.
"""

import importlib.util
import os
import shutil
import signal
import sys

from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from sampy_twisted import SAMPIntegratedClient, read_lockfile
from sampy_twisted._process import lockfile_environ, spawn
from sampy_twisted._service import HUB_AUTO, HUB_EMBEDDED, HUB_RUNNING, SAMPClientService
from sampy_twisted._tap import (
    ClientOptions,
    HubOptions,
    make_client_service,
    make_hub_service,
    parse_hub,
)
from sampy_twisted.testing import hub_for_test

from .astropy_peer import AstropyPeer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
"""The body of the ``twistd`` console script, for ``python -c``."""


def bind_extra(client):
    """A --handler: binds a handler of its own."""
    client.bind_receive_notification("extra.thing", lambda *args: None)


NOT_CALLABLE = "a string"


def parse_client(*argv):
    options = ClientOptions()
    options.parseOptions(list(argv))
    return options


def parse_hub_options(*argv):
    options = HubOptions()
    options.parseOptions(list(argv))
    return options


class PluginTests(SynchronousTestCase):
    """
    The dropin offers both service makers (found here through the checkout;
    L{InstalledPluginTests} checks an installed copy).
    """

    def test_both_plugins(self):
        makers = {p.tapname: p for p in getPlugins(IServiceMaker) if p.tapname.startswith("samp-")}
        self.assertEqual(set(makers), {"samp-client", "samp-hub"})
        for maker in makers.values():
            self.assertTrue(verifyObject(IServiceMaker, maker))
            self.assertTrue(verifyObject(IPlugin, maker))
        self.assertIs(makers["samp-client"].options, ClientOptions)
        self.assertIs(makers["samp-hub"].options, HubOptions)


class ClientOptionsTests(SynchronousTestCase):
    """
    ``twistd samp-client`` options.
    """

    def test_defaults(self):
        options = parse_client()
        self.assertEqual((options["hub_mode"], options["lockfile"]), (HUB_AUTO, None))
        self.assertEqual(options["name"], "samp-client")
        self.assertEqual(options["listen"], "tcp:0:interface=127.0.0.1")
        self.assertEqual(options["ping-interval"], 5.0)
        self.assertEqual((options["metadata"], options["subscribe"], options["handlers"]), ({}, [], []))

    def test_repeatable(self):
        options = parse_client(
            "--metadata", "author.name=Me", "--metadata", "x.eq=a=b",
            "--subscribe", "table.*", "--subscribe", "image.load.fits",
            "--handler", "tests.test_tap:bind_extra",
        )
        self.assertEqual(options["metadata"], {"author.name": "Me", "x.eq": "a=b"})
        self.assertEqual(options["subscribe"], ["table.*", "image.load.fits"])
        self.assertEqual(options["handlers"], [bind_extra])

    def test_hub_values(self):
        lockfile = os.path.abspath(self.mktemp())
        self.assertEqual(parse_hub("running"), (HUB_RUNNING, None))
        self.assertEqual(parse_hub("embedded"), (HUB_EMBEDDED, None))
        self.assertEqual(parse_hub("std-lockurl:file://" + lockfile), (HUB_RUNNING, lockfile))
        self.assertEqual(
            parse_hub("std-lockurl:http://example.org/lock"), (HUB_RUNNING, "http://example.org/lock")
        )
        self.assertEqual(parse_hub(lockfile), (HUB_RUNNING, lockfile))
        self.assertEqual(parse_hub("./x/lock"), (HUB_RUNNING, os.path.abspath("x/lock")))

    def test_usage_errors(self):
        """Each bad option is a usage error naming the option."""
        for argv, text in [
            (["--hub", "atuo"], "--hub"),
            (["--hub", "std-lockurl:ftp://x/y"], "--hub"),
            (["--metadata", "novalue"], "KEY=VALUE"),
            (["--metadata", "=v"], "KEY=VALUE"),
            (["--metadata", "k=caf\xe9"], "--metadata k"),
            (["--subscribe", "table..x"], "--subscribe"),
            (["--ping-interval", "0"], "--ping-interval"),
            (["--ping-interval", "soon"], "--ping-interval"),
            (["--listen", "unix:/tmp/x"], "--listen"),
            (["--listen", "nonsense:1"], "--listen"),
            (["--handler", "no-colon"], "--handler"),
            (["--handler", "tests.no_such_module:f"], "cannot import"),
            (["--handler", "tests.test_tap:missing"], "has no missing"),
            (["--handler", "tests.test_tap:NOT_CALLABLE"], "not callable"),
            (["--name", "caf\xe9"], "--name"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                parse_client(*argv)
            self.assertIn(text, str(caught.exception), argv)


class ClientServiceTests(SynchronousTestCase):
    """
    The ``samp-client`` service built from options.
    """

    def test_service(self):
        """The client has the metadata, subscriptions, handlers and hub mode
        asked for; its callback server listens where --listen says."""
        lockfile = os.path.abspath(self.mktemp())
        options = parse_client(
            "--name", "demo", "--description", "A demo", "--metadata", "author.name=Me",
            "--subscribe", "table.*", "--handler", "tests.test_tap:bind_extra",
            "--hub", lockfile, "--ping-interval", "2.5", "--listen", "tcp:5123:interface=127.0.0.2",
        )
        memory = MemoryReactorClock()
        service = make_client_service(options, memory)
        self.assertIsInstance(service, SAMPClientService)
        self.assertEqual(service.hub_mode, HUB_RUNNING)
        subscriptions = service.client.client.get_subscriptions_map()
        self.assertIn("table.*", subscriptions)
        self.assertIn("extra.thing", subscriptions)
        self.successResultOf(service.client.client.start())
        [(port, factory, backlog, interface)] = memory.tcpServers
        self.assertEqual((port, interface), (5123, "127.0.0.2"))
        self.successResultOf(service.client.client.stop())

    def test_logging_handler(self):
        """Subscribed messages are logged; calls are answered samp.ok."""
        from twisted.logger import capturedLogs

        from sampy_twisted._tap import log_message

        with capturedLogs() as events:
            self.assertEqual(log_message("k", "c9", "m1", "table.load.votable", {"url": "u"}, {}), {})
            log_message("k", "c9", None, "table.highlight.row", {"row": "3"}, {})
        self.assertEqual(
            [(e["kind"], e["mtype"], e["sender"]) for e in events],
            [("call", "table.load.votable", "c9"), ("notification", "table.highlight.row", "c9")],
        )


class HubOptionsTests(SynchronousTestCase):
    """
    ``twistd samp-hub`` options and service.
    """

    def test_defaults(self):
        options = parse_hub_options()
        self.assertEqual(
            (options["lockfile"], options["port"], options["interface"], options["label"]),
            (None, 0, "127.0.0.1", ""),
        )
        self.assertEqual((options["client-timeout"], options["multi"]), (30.0, False))

    def test_usage_errors(self):
        directory = self.mktemp()
        for argv, text in [
            (["--port", "http"], "--port"),
            (["--port", "70000"], "--port"),
            (["--client-timeout", "-1"], "--client-timeout"),
            (["--multi", "--lockfile", "x"], "--multi"),
            (["--lockfile", os.path.join(directory, "missing", "lock")], "no directory"),
            (["--interface", ""], "--interface"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                parse_hub_options(*argv)
            self.assertIn(text, str(caught.exception), argv)

    def test_service_options(self):
        """The hub is built with the options given (it runs on a memory
        reactor, so nothing really listens)."""
        lockfile = os.path.abspath(self.mktemp())
        options = parse_hub_options("--lockfile", lockfile, "--port", "4455", "--interface", "127.0.0.3")
        memory = MemoryReactorClock()
        service = make_hub_service(options, memory)
        service.startService()
        [(port, factory, backlog, interface)] = memory.tcpServers
        self.assertEqual((port, interface), (4455, "127.0.0.3"))
        self.assertTrue(service.hub.is_running)
        self.assertEqual(service.hub.lockfile, lockfile)


class HubServiceTests(TestCase):
    """
    The ``samp-hub`` service on the real reactor.
    """

    timeout = 20

    async def test_service(self):
        """The hub writes the lockfile asked for, labelled; stopping the
        service stops it and removes the lockfile."""
        lockfile = os.path.abspath(self.mktemp())
        options = parse_hub_options("--lockfile", lockfile, "--label", "tests", "--client-timeout", "7")
        service = make_hub_service(options, reactor)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        await within(service.hub.start())
        params = read_lockfile(lockfile)
        self.assertEqual(params["hub.label"], "tests")
        self.assertTrue(params["samp.hub.xmlrpc.url"].startswith("http://127.0.0.1:"))
        await service.stopService()
        self.assertFalse(os.path.exists(lockfile))


# -- real processes ----------------------------------------------------------


def within(d, seconds=20.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


def twistd_argv(*args):
    """twistd in the foreground, without a pid file."""
    return [sys.executable, "-c", TWISTD, "-n", "--pidfile=", *args]


def checkout_environ(directory, lockfile=None):
    """Home in *directory*, SAMP_HUB at *lockfile*, this checkout first on
    the path (so twistd finds its plugins)."""
    env = lockfile_environ(directory, lockfile)
    env["PYTHONPATH"] = ROOT
    return env


class TwistdTests(TestCase):
    """
    ``twistd -n samp-client`` and ``twistd -n samp-hub`` in child processes.
    """

    timeout = 90

    def spawn_twistd(self, env, directory, *args):
        process = spawn(twistd_argv(*args), env, directory, reactor, name="twistd")
        self.addCleanup(process.stop)
        return process

    async def stop_cleanly(self, process):
        """SIGTERM: twistd shuts down and ends itself with that signal."""
        result = await process.stop()
        self.assertIn("Server Shut Down.", result.output)
        self.assertIn((result.exit_code, result.signal), [(0, None), (None, signal.SIGTERM)], result.output)
        return result

    async def test_samp_client_with_jsamp_hub(self):
        """twistd samp-client registers with a running hub, logs what it is
        sent, and unregisters on SIGTERM."""
        hub = await hub_for_test(self, "jsamp")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        process = self.spawn_twistd(
            checkout_environ(directory, hub.lockfile), directory,
            "samp-client", "--name", "demo", "--subscribe", "test.*", "--hub", "running",
            "--metadata", "author.name=tests",
        )
        line = await process.wait_for_line(r"Registered with the SAMP hub at \S+ as \S+", timeout=30)
        client_id = line.rsplit(" ", 1)[-1]
        other = SAMPIntegratedClient(name="sender", reactor=reactor)
        await within(other.connect(hub_params=hub.params))
        self.addCleanup(other.disconnect)
        self.assertEqual(await other.find_client("demo"), client_id)
        self.assertEqual((await other.get_metadata(client_id))["author.name"], "tests")
        await other.enotify(client_id, "test.note", text="hello")
        await process.wait_for_line(r"Received notification test\.note from \S+: .*hello")
        response = await within(other.ecall_and_wait(client_id, "test.ask", "10"))
        self.assertEqual(response["samp.status"], "samp.ok")
        result = await self.stop_cleanly(process)
        self.assertIn("Unregistered from the SAMP hub", result.output)
        self.assertNotIn(client_id, await other.get_registered_clients())

    async def test_samp_client_embedded_hub(self):
        """On a machine with no hub, samp-client starts an embedded hub,
        registers and logs the table messages sent to it; SIGTERM removes
        the hub's lockfile."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        env = checkout_environ(directory)
        process = self.spawn_twistd(env, directory, "samp-client", "--name", "demo", "--subscribe", "table.*")
        await process.wait_for_line(r"Registered with the SAMP hub", timeout=30)
        lockfile = os.path.join(directory, ".samp")
        peer = await within(AstropyPeer.connect(reactor, read_lockfile(lockfile), name="sender"), 30)
        self.addCleanup(peer.disconnect)
        recipients = await peer.notify_all("table.load.votable", {"url": "http://x/t.xml"})
        self.assertEqual(len(recipients), 1, recipients)
        await process.wait_for_line(r"Received notification table\.load\.votable .*http://x/t\.xml")
        await peer.disconnect()
        await self.stop_cleanly(process)
        self.assertFalse(os.path.exists(lockfile))

    async def test_samp_hub(self):
        """twistd samp-hub runs a hub an astropy client can use, and removes
        its lockfile on SIGTERM."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        lockfile = os.path.join(directory, "hub.lock")
        process = self.spawn_twistd(
            checkout_environ(directory), directory, "samp-hub", "--lockfile", lockfile, "--label", "twistd"
        )
        await process.wait_for_line(r"SAMP hub running at", timeout=30)
        params = read_lockfile(lockfile)
        self.assertEqual(params["hub.label"], "twistd")
        peer = await within(AstropyPeer.connect(reactor, params, name="astropy", subscribe=("test.*",)), 30)
        self.addCleanup(peer.disconnect)
        await peer.ping()
        ours = SAMPIntegratedClient(name="ours", reactor=reactor)
        await within(ours.connect(hub_params=params))
        self.assertEqual(await ours.enotify_all("test.hello"), [peer.public_id])
        self.assertEqual((await peer.next_message()).mtype, "test.hello")
        await ours.disconnect()
        await peer.disconnect()
        await self.stop_cleanly(process)
        self.assertFalse(os.path.exists(lockfile))

    async def test_samp_hub_refuses_second(self):
        """A second samp-hub on a live hub's lockfile says why and exits."""
        hub = await hub_for_test(self, "jsamp")
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        process = self.spawn_twistd(
            checkout_environ(directory), directory, "samp-hub", "--lockfile", hub.lockfile
        )
        result = await within(process.ended, 30)
        self.assertIn("a SAMP hub is already running", result.output)
        self.assertEqual(read_lockfile(hub.lockfile)["samp.secret"], hub.params["samp.secret"])


# -- the installed package ----------------------------------------------------

_SOURCES = ("setup.cfg", "setup.py", "README.md", "MANIFEST.in", "sampy_twisted", "docs")


def _copy_sources(destination):
    """Copy what ``pip install .`` needs from the checkout, without caches."""
    ignore = shutil.ignore_patterns("__pycache__", "*.py[co]", "_build", "dropin.cache")
    for name in _SOURCES:
        source = os.path.join(ROOT, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(destination, name), ignore=ignore)
        elif os.path.exists(source):
            shutil.copy2(source, destination)
    plugins = os.path.join(destination, "twisted", "plugins")
    os.makedirs(plugins)
    shutil.copy2(os.path.join(ROOT, "twisted", "plugins", "sampy_twisted_plugin.py"), plugins)


class InstalledPluginTests(TestCase):
    """
    After the README's ``pip install .`` into a fresh virtualenv, twistd run
    from outside the checkout lists both plugins, and the console script
    works.
    """

    timeout = 300

    async def run_ok(self, argv, env, path):
        out, err, code = await getProcessOutputAndValue(argv[0], argv[1:], env=env, path=path, reactor=reactor)
        text = (out + err).decode("utf-8", "replace")
        self.assertEqual(code, 0, f"{' '.join(argv)} failed:\n{text}")
        return text

    async def test_installed_plugins(self):
        work = os.path.abspath(self.mktemp())
        source, venv, elsewhere = (os.path.join(work, name) for name in ("src", "venv", "elsewhere"))
        os.makedirs(source)
        os.makedirs(elsewhere)
        _copy_sources(source)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(HOME=work, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        await self.run_ok([sys.executable, "-m", "venv", "--system-site-packages", venv], env, work)
        python = os.path.join(venv, "bin", "python")
        # With wheel at hand no build environment is needed; else pip makes one.
        isolation = ["--no-build-isolation"] if importlib.util.find_spec("wheel") else []
        await self.run_ok([python, "-m", "pip", "install", "--no-deps", *isolation, "."], env, source)

        listing = await self.run_ok([python, "-c", TWISTD, "--help"], env, elsewhere)
        self.assertRegex(listing, r"(?m)^\s+samp-client\s")
        self.assertRegex(listing, r"(?m)^\s+samp-hub\s")
        where = await self.run_ok(
            [python, "-c", "import sampy_twisted, os; print(os.path.dirname(sampy_twisted.__file__))"],
            env,
            elsewhere,
        )
        self.assertTrue(where.strip().startswith(venv), where)
        self.assertFalse(os.path.exists(os.path.join(venv, "lib", "python%d.%d" % sys.version_info[:2],
                                                     "site-packages", "twisted", "plugins", "__init__.py")))
        help_text = await self.run_ok([os.path.join(venv, "bin", "sampy-twisted"), "--help"], env, elsewhere)
        self.assertIn("snoop", help_text)
        client_help = await self.run_ok([python, "-c", TWISTD, "samp-client", "--help"], env, elsewhere)
        self.assertIn("--subscribe", client_help)
