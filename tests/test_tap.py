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
import ssl
import sys

from twisted.application.service import IServiceMaker
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.utils import getProcessOutputAndValue
from twisted.plugin import IPlugin, getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from sampy_twisted import SAMPIntegratedClient, read_lockfile
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted._process import lockfile_environ, spawn
from sampy_twisted._service import HUB_AUTO, HUB_EMBEDDED, HUB_RUNNING, SAMPClientService
from sampy_twisted._tap_client import ClientOptions, make_client_service, parse_hub
from sampy_twisted._tap_hub import HubOptions, make_hub, make_hub_service
from sampy_twisted.testing import CertificateAuthority, MemoryNetwork, hub_for_test, start_memory_hub

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

    def test_hub_bare_url_refused(self):
        """A URL without std-lockurl: is not taken for a relative path."""
        for text in ["http://127.0.0.1:8000/lock", "ftp://x", "file:///tmp/samp1"]:
            with self.assertRaises(usage.UsageError, msg=text) as caught:
                parse_hub(text)
            self.assertIn("std-lockurl:", str(caught.exception))

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

        from sampy_twisted._tap_client import log_message

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


class HubRunnerFailureTests(SynchronousTestCase):
    """
    A ``samp-hub`` service whose hub cannot start does not leave the
    process running without one.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.running_hub = start_memory_hub(self.network, os.path.abspath(self.mktemp()))
        self.late_failures = []

    def service(self, *argv):
        options = parse_hub_options(*argv)
        return make_hub_service(options, self.network, lambda: self.late_failures.append(True))

    def test_failure_at_once_raised(self):
        """A port already taken is raised from startService."""
        port = self.running_hub.url.split(":")[-1].split("/")[0]
        service = self.service("--lockfile", os.path.abspath(self.mktemp()), "--port", port)
        with self.assertRaises(CannotListenError):
            service.startService()
        self.assertFalse(service.running)
        self.assertEqual(self.late_failures, [])

    def test_late_failure_stops_reactor(self):
        """A live hub found by ping stops the reactor and calls the
        late-failure hook."""
        service = self.service("--lockfile", self.running_hub.lockfile)
        service.startService()
        self.assertEqual(self.late_failures, [])
        self.network.run()
        self.assertTrue(self.network.hasStopped)
        self.assertEqual(self.late_failures, [True])
        self.assertFalse(service.hub.is_running)


class TLSOptionsTestsMixin:
    """Certificates for the TLS option tests."""

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        self.pki = CertificateAuthority(os.path.join(self.directory, "pki"))
        self.cert, self.key = self.pki.issue("me")
        self.ca = self.pki.ca_file

    def passphrase_file(self, text):
        path = os.path.join(self.directory, f"passphrase-{len(os.listdir(self.directory))}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def assertUsageErrors(self, parse, cases):
        for argv, text in cases:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                parse(*argv)
            self.assertIn(text, str(caught.exception), argv)


class ClientTLSOptionsTests(TLSOptionsTestsMixin, SynchronousTestCase):
    """
    ``twistd samp-client`` TLS options build the hub-side and callback
    server TLS settings.
    """

    def test_none(self):
        """No TLS option: no settings (https hubs are still verified, against
        the system's trust), plain http callbacks."""
        options = parse_client()
        self.assertEqual((options["hub_tls"], options["callback_tls"]), (None, None))

    def test_mutual(self):
        options = parse_client(
            "--https", "--cert-file", self.cert, "--key-file", self.key, "--ca-certs", self.ca,
            "--cert-reqs", "required",
        )
        callback, hub = options["callback_tls"], options["hub_tls"]
        self.assertTrue(callback.has_certificate)
        self.assertEqual((callback.cert_reqs, callback.ca_certs), (ssl.CERT_REQUIRED, self.ca))
        callback.server_options()  # usable as a server
        # The same certificate goes to https hubs, which --ca-certs verifies.
        self.assertTrue(hub.has_certificate)
        self.assertEqual((hub.cert_reqs, hub.ca_certs, hub.verifies_server), (None, self.ca, True))

    def test_hub_side_only(self):
        """Without --https: plain callbacks, but a client certificate and a
        CA for https hubs."""
        other = CertificateAuthority(os.path.join(self.directory, "other"), "other CA").ca_file
        options = parse_client("--cert-file", self.cert, "--key-file", self.key, "--ca-certs", self.ca,
                               "--hub-ca-certs", other)
        self.assertIsNone(options["callback_tls"])
        self.assertEqual(options["hub_tls"].ca_certs, other)
        self.assertTrue(options["hub_tls"].has_certificate)
        options = parse_client("--hub-ca-certs", other)
        self.assertFalse(options["hub_tls"].has_certificate)

    def test_hub_opt_out(self):
        """--hub-cert-reqs none: the hub is not verified."""
        options = parse_client("--hub-cert-reqs", "NONE")
        self.assertEqual(options["hub_tls"].cert_reqs, ssl.CERT_NONE)
        self.assertFalse(options["hub_tls"].verifies_server)
        self.assertTrue(parse_client("--hub-cert-reqs", "required")["hub_tls"].verifies_server)

    def test_min_version(self):
        from twisted.internet.ssl import TLSVersion

        options = parse_client("--tls-min-version", "1.3")
        self.assertEqual(options["hub_tls"].minimum_version, TLSVersion.TLSv1_3)

    def test_passphrase(self):
        """An encrypted key's passphrase comes from a file's first line."""
        cert, key = self.pki.issue("locked", passphrase="open sesame")
        options = parse_client("--https", "--cert-file", cert, "--key-file", key,
                               "--key-passphrase-file", self.passphrase_file("open sesame\nignored\n"))
        self.assertTrue(options["callback_tls"].has_certificate)
        self.assertUsageErrors(parse_client, [
            (["--cert-file", cert, "--key-file", key], "is encrypted: give its passphrase"),
            (["--cert-file", cert, "--key-file", key, "--key-passphrase-file", self.passphrase_file("nope")],
             "wrong passphrase"),
            (["--cert-file", cert, "--key-file", key, "--key-passphrase-file", self.passphrase_file("\n")],
             "its first line is empty"),
        ])

    def test_usage_errors(self):
        missing = os.path.join(self.directory, "missing.pem")
        _, foreign_key = self.pki.issue("foreign")
        self.assertUsageErrors(parse_client, [
            (["--https"], "--https needs --cert-file"),
            (["--https", "--key-file", self.key], "--key-file needs --cert-file"),
            (["--cert-reqs", "required", "--ca-certs", self.ca], "it needs --https"),
            (["--https", "--cert-file", self.cert, "--key-file", self.key, "--cert-reqs", "optional"],
             "--cert-reqs optional needs --ca-certs"),
            (["--https", "--cert-file", self.cert, "--key-file", self.key, "--cert-reqs", "always"],
             "--cert-reqs must be none, optional or required, not 'always'"),
            (["--hub-cert-reqs", "optional"], "--hub-cert-reqs must be required or none"),
            (["--hub-cert-reqs", "none", "--hub-ca-certs", self.ca], "contradicts --hub-ca-certs"),
            (["--cert-file", missing], f"--cert-file {missing}: no such file"),
            (["--ca-certs", missing], "--ca-certs"),
            (["--cert-file", self.cert, "--key-file", foreign_key], "does not match the certificate"),
            (["--cert-file", self.cert], "no private key"),
            (["--ca-certs", self.key], "holds no PEM certificate"),
            (["--tls-min-version", "1.1"], "--tls-min-version must be 1.2 or 1.3"),
            (["--key-passphrase-file", self.ca], "--key-passphrase-file needs --cert-file"),
        ])

    def test_service(self):
        """--https makes the callback server listen with TLS where --listen
        says, and the service registers with the hub-side settings."""
        options = parse_client(
            "--https", "--cert-file", self.cert, "--key-file", self.key, "--ca-certs", self.ca,
            "--listen", "tcp:5124:interface=127.0.0.2",
        )
        memory = MemoryReactorClock()
        service = make_client_service(options, memory)
        self.assertIs(service._hub_tls, options["hub_tls"])
        self.successResultOf(service.client.client.start())
        [(port, factory, backlog, interface)] = memory.tcpServers
        self.assertEqual((port, interface), (5124, "127.0.0.2"))
        self.assertEqual(type(factory).__name__, "TLSMemoryBIOFactory")
        # (The memory reactor's port says 127.0.0.1 whatever it was given.)
        self.assertTrue(service.client.client.callback_url.startswith("https://"))
        self.successResultOf(service.client.client.stop())


class HubTLSOptionsTests(TLSOptionsTestsMixin, SynchronousTestCase):
    """
    ``twistd samp-hub`` TLS options.
    """

    def test_none(self):
        options = parse_hub_options()
        self.assertEqual((options["tls"], options["callback_tls"]), (None, None))

    def test_https(self):
        """The hub listens with TLS and writes an https URL and the
        hub.ssl.* entries; https callbacks are verified with the hub's
        certificate and CAs."""
        lockfile = os.path.join(self.directory, "hub.lock")
        options = parse_hub_options(
            "--https", "--cert-file", self.cert, "--key-file", self.key, "--ca-certs", self.ca,
            "--cert-reqs", "optional", "--tls-min-version", "1.3", "--lockfile", lockfile, "--port", "4456",
        )
        tls = options["tls"]
        self.assertEqual((tls.cert_reqs, tls.ca_certs, tls.cert_file), (ssl.CERT_OPTIONAL, self.ca, self.cert))
        self.assertIsNone(options["callback_tls"])
        memory = MemoryReactorClock()
        hub = make_hub(options, memory)
        self.successResultOf(hub.start())
        self.addCleanup(hub.stop)
        [(port, factory, context_factory, backlog, interface)] = memory.sslServers
        self.assertEqual((port, interface), (4456, "127.0.0.1"))
        self.assertEqual(hub.url, "https://127.0.0.1:4456/xmlrpc")
        params = read_lockfile(lockfile)
        self.assertEqual((params["hub.ssl.certificate"], params["hub.ssl.protocol"]), ("OPTIONAL", "TLSv1.3"))

    def test_callback_opt_out(self):
        options = parse_hub_options("--https", "--cert-file", self.cert, "--key-file", self.key,
                                    "--callback-cert-reqs", "none")
        self.assertEqual(options["callback_tls"].cert_reqs, ssl.CERT_NONE)
        self.assertTrue(options["callback_tls"].has_certificate)

    def test_usage_errors(self):
        _, foreign_key = self.pki.issue("foreign")
        self.assertUsageErrors(parse_hub_options, [
            (["--https"], "--https needs --cert-file"),
            (["--cert-file", self.cert], "--cert-file is a TLS option: it needs --https"),
            (["--cert-reqs", "required"], "--cert-reqs is a TLS option: it needs --https"),
            (["--https", "--cert-file", self.cert, "--key-file", self.key, "--cert-reqs", "required"],
             "--cert-reqs required needs --ca-certs"),
            (["--https", "--cert-file", self.cert, "--key-file", foreign_key], "does not match the certificate"),
            (["--https", "--cert-file", self.cert, "--key-file", self.key, "--callback-cert-reqs", "optional"],
             "--callback-cert-reqs must be required or none"),
            (["--https", "--cert-file", self.cert, "--key-file", self.key, "--tls-min-version", "1.0"],
             "--tls-min-version"),
        ])


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

    async def test_samp_client_waits_for_hub_it_did_not_start(self):
        """
        Started while a hub runs, samp-client (default --hub auto) uses it;
        when that hub stops it waits rather than starting its own, so the
        hub can be started again; it registers with it, and stopping the
        client leaves that hub running.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        lockfile = os.path.join(directory, ".samp")
        hub = SAMPHubServer(reactor=reactor, lockfile=lockfile)
        self.addCleanup(hub.stop)
        await within(hub.start())
        process = self.spawn_twistd(checkout_environ(directory), directory, "samp-client", "--name", "demo")
        await process.wait_for_line(r"Registered with the SAMP hub at \S+ as \S+", timeout=30)
        await within(hub.stop())
        await process.wait_for_line(r"Lost the SAMP hub", timeout=30)
        # Its first attempt after the loss finds no hub and does not start one.
        await process.wait_for_line(r"Cannot register with a SAMP hub \(attempt 1\)", timeout=30)
        self.assertFalse(os.path.exists(lockfile), process.output)
        again = SAMPHubServer(reactor=reactor, lockfile=lockfile)
        self.addCleanup(again.stop)
        await within(again.start())
        line = await process.wait_for_line(r"Registered with the SAMP hub at \S+ as \S+", timeout=30)
        self.assertIn(line.rsplit(" ", 1)[-1], again.registered_clients)
        await self.stop_cleanly(process)
        self.assertTrue(again.is_running)
        self.assertEqual(again.registered_clients, [])

    async def test_samp_client_stopping_own_hub_warns(self):
        """samp-client stopping the hub it started while others use it
        warns, naming them, and they are told the hub shuts down."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        process = self.spawn_twistd(checkout_environ(directory), directory, "samp-client", "--name", "demo")
        await process.wait_for_line(r"Registered with the SAMP hub", timeout=30)
        other = SAMPIntegratedClient(name="other", reactor=reactor)
        await within(other.connect(hub_params=read_lockfile(os.path.join(directory, ".samp"))))
        self.addCleanup(lambda: other.disconnect() if other.is_connected else None)
        lost = other.when_disconnected()
        other_id = other.get_public_id()
        result = await self.stop_cleanly(process)
        self.assertIn(f"1 other client(s) still use ({other_id})", result.output)
        self.assertIn("shut down", await within(lost))

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
        self.assertEqual(result.exit_code, 1, result.output)
        self.assertEqual(read_lockfile(hub.lockfile)["samp.secret"], hub.params["samp.secret"])

    async def test_samp_hub_port_taken(self):
        """samp-hub on a port already in use says why and exits with 1."""
        taken = await within(TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory()))
        self.addCleanup(taken.stopListening)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        lockfile = os.path.join(directory, "hub.lock")
        process = self.spawn_twistd(
            checkout_environ(directory), directory, "samp-hub", "--lockfile", lockfile,
            "--port", str(taken.getHost().port),
        )
        result = await within(process.ended, 30)
        self.assertIn("Address already in use", result.output)
        self.assertEqual(result.exit_code, 1, result.output)
        self.assertFalse(os.path.exists(lockfile))


# -- the installed package ----------------------------------------------------

_SOURCES = ("setup.cfg", "setup.py", "README.md", "MANIFEST.in", "sampy_twisted", "docs")


class TwistdLogTests(TestCase):
    """
    What twistd logs names things in words a user knows, not by private
    classes.
    """

    timeout = 90

    async def test_plain_words(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        process = spawn(twistd_argv("samp-client", "--name", "demo", "--hub", "embedded"), checkout_environ(directory), directory,
                        reactor, name="twistd")
        self.addCleanup(process.stop)
        await process.wait_for_line(r"Registered with the SAMP hub", timeout=30)
        output = (await process.stop()).output
        self.assertRegex(output, r"\[-\] SAMP hub starting on \d+\n")
        self.assertRegex(output, r"\[sampy_twisted\] SAMP callback server starting on \d+\n")
        # Such as "_QuietSite (_ConnectionTracker) starting on 45525" or a
        # "[HTTP11ClientProtocol,client]" prefix.
        self.assertNotRegex(output, r"\b_[A-Z]\w+|Protocol\b|Site\b")


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
