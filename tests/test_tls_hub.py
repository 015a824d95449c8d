# -*- test-case-name: tests.test_tls_hub -*-
"""
Our hub over TLS: real handshakes on loopback between our hub and our
clients, with certificates made by L{CertificateAuthority}; mutual TLS in
both directions (client to hub, hub to https callbacks); the hub's lockfile;
and ``sampy-twisted hub --https`` in a child process.
"""

import os
import ssl
import sys

from twisted.internet import defer, reactor
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sampy_twisted import SAMPHubServer, SAMPIntegratedClient, TLSOptions, read_lockfile
from sampy_twisted._errors import SAMPHubError, SAMPProxyError
from sampy_twisted._lockfile import format_lockfile, new_lockfile_params, write_lockfile
from sampy_twisted._process import lockfile_environ, spawn
from sampy_twisted._service import HUB_RUNNING, SAMPClientService
from sampy_twisted._tap_client import ClientOptions, make_client_service
from sampy_twisted.testing import CertificateAuthority

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def within(d, seconds=15.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


def issue_for_both_ends(pki, name, hostnames=("127.0.0.1", "localhost")):
    """
    A certificate for a SAMP party that is TLS server and client at once
    (the hub serves clients and calls their callbacks; a client calls the
    hub and serves callbacks).

    :return: ``(cert_file, key_file)``.
    """
    return pki.issue(name, hostnames, both=True)

class Inbox:
    """What a client received, as Deferred queues."""

    def __init__(self, client):
        self.notifications = defer.DeferredQueue()
        self.calls = defer.DeferredQueue()
        client.bind_receive_notification("test.note", self._note)
        client.bind_receive_call("test.ask", self._ask)

    def _note(self, private_key, sender_id, mtype, params, extra):
        self.notifications.put((sender_id, params))

    def _ask(self, private_key, sender_id, msg_id, mtype, params, extra):
        self.calls.put((sender_id, params))
        return {"answer": params.get("question", "") + "!"}


class TLSHubTestsMixin:
    """
    Starting TLS hubs and TLS clients for the tests; everything started is
    stopped when the test ends.
    """

    timeout = 30

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.pki = CertificateAuthority(os.path.join(self.directory, "pki"))
        self.hub_identity = issue_for_both_ends(self.pki, "hub")

    async def start_hub(self, cert_reqs=None, identity=None, lockfile=None, **kwargs):
        tls = TLSOptions(*(identity or self.hub_identity), ca_certs=self.pki.ca_file, cert_reqs=cert_reqs)
        hub = SAMPHubServer(
            reactor=reactor,
            lockfile=lockfile or os.path.join(self.directory, "hub.lock"),
            tls=tls,
            client_timeout=5,
            **kwargs,
        )
        self.addCleanup(hub.stop)
        return await within(hub.start())

    def hub_side(self, identity=None, ca_certs=None, cert_reqs=None):
        """The TLS settings of a client towards the hub."""
        cert_key = identity or (None, None)
        return TLSOptions(*cert_key, ca_certs=ca_certs or self.pki.ca_file, cert_reqs=cert_reqs)

    def new_client(self, name, identity=None, https=False, callback_cert_reqs=None):
        """A client; with *https*, its callback server uses *identity*."""
        tls = None
        if https:
            tls = TLSOptions(*identity, ca_certs=self.pki.ca_file, cert_reqs=callback_cert_reqs)
        client = SAMPIntegratedClient(name=name, reactor=reactor, https=https, tls=tls)
        self.addCleanup(lambda: client.disconnect() if client.is_connected else None)
        return client

    async def connect(self, hub, name, identity=None, https=False, callback_cert_reqs=None, hub_side=None):
        client = self.new_client(name, identity, https, callback_cert_reqs)
        await within(client.connect(hub_params=hub.params, tls=hub_side or self.hub_side(identity)))
        return client

    async def assertRefused(self, hub, fragment, **kwargs):
        """Registering fails with an error containing *fragment*."""
        client = self.new_client("refused")
        with self.assertRaises(SAMPHubError) as caught:
            await within(client.connect(hub_params=hub.params, **kwargs))
        self.assertIn(fragment, str(caught.exception))
        self.assertFalse(client.is_connected)
        return caught.exception


class HubSettingsTests(SynchronousTestCase):
    """
    A hub's TLS settings are checked when it is made.
    """

    def setUp(self):
        self.pki = CertificateAuthority(os.path.abspath(self.mktemp()))

    def test_needs_certificate(self):
        exc = self.assertRaises(ValueError, SAMPHubServer, tls=TLSOptions(ca_certs=self.pki.ca_file))
        self.assertIn("needs cert_file", str(exc))

    def test_client_certificates_need_ca(self):
        tls = TLSOptions(*self.pki.issue("hub"), cert_reqs=ssl.CERT_REQUIRED)
        exc = self.assertRaises(ValueError, SAMPHubServer, tls=tls)
        self.assertIn("needs ca_certs", str(exc))

    def test_lockfile_keys(self):
        """hub.ssl.certificate and hub.ssl.protocol, as SAMPy wrote them."""
        cert_key = self.pki.issue("hub")
        for cert_reqs, version, expected in [
            (None, None, ("NONE", "TLSv1.2")),
            (ssl.CERT_NONE, None, ("NONE", "TLSv1.2")),
            (ssl.CERT_OPTIONAL, "TLSv1.3", ("OPTIONAL", "TLSv1.3")),
            (ssl.CERT_REQUIRED, ssl.PROTOCOL_TLSv1_2, ("REQUIRED", "TLSv1.2")),
        ]:
            tls = TLSOptions(*cert_key, ca_certs=self.pki.ca_file, cert_reqs=cert_reqs, ssl_version=version)
            params = new_lockfile_params("https://127.0.0.1:1/xmlrpc", "s", tls=tls)
            self.assertEqual((params["hub.ssl.certificate"], params["hub.ssl.protocol"]), expected)
        self.assertNotIn("hub.ssl.certificate", new_lockfile_params("http://127.0.0.1:1/xmlrpc", "s"))


class MutualTLSTests(TLSHubTestsMixin, TestCase):
    """
    Our hub and our clients over TLS, certificates checked both ways.
    """

    async def test_lockfile(self):
        """The lockfile names an https URL and says what the hub asks of
        clients."""
        hub = await self.start_hub(cert_reqs=ssl.CERT_REQUIRED)
        params = read_lockfile(hub.lockfile)
        self.assertRegex(params["samp.hub.xmlrpc.url"], r"^https://127\.0\.0\.1:\d+/xmlrpc$")
        self.assertEqual(params["hub.ssl.certificate"], "REQUIRED")
        self.assertEqual(params["hub.ssl.protocol"], "TLSv1.2")

    async def test_mutual_tls_messages(self):
        """Hub requiring client certificates, two clients with certificates
        and https callbacks that require the hub's certificate: notify,
        call and call_and_wait work between them."""
        hub = await self.start_hub(cert_reqs=ssl.CERT_REQUIRED)
        alice_identity = issue_for_both_ends(self.pki, "alice")
        bob_identity = issue_for_both_ends(self.pki, "bob")
        alice = await self.connect(hub, "alice", alice_identity, https=True, callback_cert_reqs=ssl.CERT_REQUIRED)
        bob = self.new_client("bob", bob_identity, https=True, callback_cert_reqs=ssl.CERT_REQUIRED)
        inbox = Inbox(bob)
        await within(bob.connect(hub_params=hub.params, tls=self.hub_side(bob_identity)))
        for client in (alice, bob):
            self.assertTrue(client.client.callback_url.startswith("https://127.0.0.1:"))
        bob_id = bob.get_public_id()

        await alice.enotify(bob_id, "test.note", text="hello")
        self.assertEqual(await within(inbox.notifications.get()), (alice.get_public_id(), {"text": "hello"}))

        response = await within(alice.ecall_and_wait(bob_id, "test.ask", "10", question="why"))
        self.assertEqual(response["samp.status"], "samp.ok")
        self.assertEqual(response["samp.result"], {"answer": "why!"})
        self.assertEqual(await within(inbox.calls.get()), (alice.get_public_id(), {"question": "why"}))

        # The hub's own callAndWait (the caller needs no callback for it).
        response = await within(alice.hub.call_and_wait(alice.get_private_key(), bob_id, {
            "samp.mtype": "test.ask", "samp.params": {"question": "how"}}, "10"))
        self.assertEqual(response["samp.result"], {"answer": "how!"})
        self.assertEqual(await alice.enotify_all("test.note"), [bob_id])

    async def test_plain_callbacks(self):
        """Plain http callbacks keep working with a TLS hub."""
        hub = await self.start_hub()
        sender = await self.connect(hub, "sender")
        receiver = self.new_client("receiver")
        inbox = Inbox(receiver)
        await within(receiver.connect(hub_params=hub.params, tls=self.hub_side()))
        self.assertTrue(receiver.client.callback_url.startswith("http://"))
        await sender.enotify(receiver.get_public_id(), "test.note", n="1")
        self.assertEqual((await within(inbox.notifications.get()))[1], {"n": "1"})
        response = await within(sender.ecall_and_wait(receiver.get_public_id(), "test.ask", "10", question="q"))
        self.assertEqual(response["samp.result"], {"answer": "q!"})

    async def test_client_certificate_required(self):
        """CERT_REQUIRED: a client with a certificate from the CA registers;
        without one, or with a foreign self-signed one, it cannot: the
        handshake fails, with a clear error and no hang."""
        hub = await self.start_hub(cert_reqs=ssl.CERT_REQUIRED)
        me = self.pki.issue("me", client=True)
        client = await self.connect(hub, "me", me)
        self.assertIn(client.get_public_id(), hub.registered_clients)
        await self.assertRefused(hub, "TLS handshake failed", tls=self.hub_side())
        stranger = self.pki.issue("stranger", client=True, self_signed=True)
        await self.assertRefused(hub, "TLS handshake failed", tls=self.hub_side(stranger))
        self.assertEqual(hub.registered_clients, [client.get_public_id()])

    async def test_client_certificate_optional(self):
        """CERT_OPTIONAL: no certificate or one from the CA is fine; a
        foreign one is refused."""
        hub = await self.start_hub(cert_reqs=ssl.CERT_OPTIONAL)
        await self.connect(hub, "anonymous")
        await self.connect(hub, "me", self.pki.issue("me", client=True))
        stranger = self.pki.issue("stranger", client=True, self_signed=True)
        await self.assertRefused(hub, "TLS handshake failed", tls=self.hub_side(stranger))
        self.assertEqual(len(hub.registered_clients), 2)

    async def test_hub_verified(self):
        """Clients verify the hub: a hub whose CA they do not trust, or
        whose certificate does not name its address, is refused; the
        explicit opt-out connects anyway."""
        rogue = CertificateAuthority(os.path.join(self.directory, "rogue"), "rogue CA")
        hub = await self.start_hub(identity=rogue.issue("rogue hub"))
        await self.assertRefused(hub, "not issued by a trusted CA", tls=self.hub_side())
        # Without TLS settings at all: the system's trust does not know it.
        await self.assertRefused(hub, "not issued by a trusted CA")
        await self.connect(hub, "trusting", hub_side=TLSOptions(cert_reqs=ssl.CERT_NONE))

    async def test_hub_hostname_checked(self):
        elsewhere = self.pki.issue("elsewhere", hostnames=("hub.example.org",))
        hub = await self.start_hub(identity=elsewhere, lockfile=os.path.join(self.directory, "other.lock"))
        await self.assertRefused(hub, "does not name 127.0.0.1", tls=self.hub_side())

    async def test_untrusted_https_callback(self):
        """The hub verifies https callback servers: deliveries to one whose
        certificate it cannot trust fail, and a caller gets a samp.error
        response at once saying why."""
        hub = await self.start_hub()
        rogue = CertificateAuthority(os.path.join(self.directory, "rogue"), "rogue CA")
        victim = self.new_client("victim", rogue.issue("victim"), https=True)
        inbox = Inbox(victim)
        await within(victim.connect(hub_params=hub.params, tls=self.hub_side()))
        sender = await self.connect(hub, "sender")
        started = reactor.seconds()
        response = await within(sender.ecall_and_wait(victim.get_public_id(), "test.ask", "20", question="q"))
        self.assertLess(reactor.seconds() - started, 10)
        self.assertEqual(response["samp.status"], "samp.error")
        self.assertIn("not issued by a trusted CA", response["samp.error"]["samp.errortxt"])
        self.assertEqual(len(inbox.calls.pending), 0)

    async def test_callback_hostname_checked(self):
        hub = await self.start_hub()
        elsewhere = self.pki.issue("elsewhere", hostnames=("client.example.org",))
        victim = self.new_client("victim", elsewhere, https=True)
        Inbox(victim)
        await within(victim.connect(hub_params=hub.params, tls=self.hub_side()))
        sender = await self.connect(hub, "sender")
        response = await within(sender.ecall_and_wait(victim.get_public_id(), "test.ask", "20"))
        self.assertIn("does not name 127.0.0.1", response["samp.error"]["samp.errortxt"])

    async def test_callback_opt_out(self):
        """callback_tls=TLSOptions(cert_reqs=CERT_NONE) is the explicit
        opt-out: the hub calls a callback server it cannot verify."""
        rogue = CertificateAuthority(os.path.join(self.directory, "rogue"), "rogue CA")
        hub = await self.start_hub(callback_tls=TLSOptions(cert_reqs=ssl.CERT_NONE))
        receiver = self.new_client("receiver", rogue.issue("receiver"), https=True)
        inbox = Inbox(receiver)
        await within(receiver.connect(hub_params=hub.params, tls=self.hub_side()))
        sender = await self.connect(hub, "sender")
        await sender.enotify(receiver.get_public_id(), "test.note")
        self.assertEqual((await within(inbox.notifications.get()))[1], {})

    async def test_callback_requires_hub_certificate(self):
        """A callback server requiring a client certificate refuses a hub
        that presents none."""
        hub = await self.start_hub(callback_tls=TLSOptions(ca_certs=self.pki.ca_file))
        strict = self.new_client("strict", issue_for_both_ends(self.pki, "strict"), https=True,
                                 callback_cert_reqs=ssl.CERT_REQUIRED)
        Inbox(strict)
        await within(strict.connect(hub_params=hub.params, tls=self.hub_side()))
        sender = await self.connect(hub, "sender")
        response = await within(sender.ecall_and_wait(strict.get_public_id(), "test.ask", "20"))
        self.assertEqual(response["samp.status"], "samp.error")
        self.assertIn("TLS handshake failed", response["samp.error"]["samp.errortxt"])

    async def test_hub_certificate_without_client_usage(self):
        """A hub certificate made for servers only is logged as unfit for
        callback servers that require a client certificate."""
        with capturedLogs() as events:
            await self.start_hub(identity=self.pki.issue("server only"))
        [warning] = [e for e in events if e.get("log_level") == LogLevel.warn and "clientAuth" in e["log_format"]]
        self.assertTrue(warning["cert_file"].endswith("server-only-cert.pem"))


class PlainHubTests(TLSHubTestsMixin, TestCase):
    """
    A hub without TLS settings and https callbacks.
    """

    async def test_refuses_https_callbacks(self):
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(self.directory, "plain.lock"))
        self.addCleanup(hub.stop)
        await within(hub.start())
        client = self.new_client("secure", issue_for_both_ends(self.pki, "secure"), https=True)
        with self.assertRaises(SAMPProxyError) as caught:
            await within(client.connect(hub_params=hub.params))
        self.assertIn("has no TLS settings to call it with", str(caught.exception))
        self.assertEqual(hub.registered_clients, [])


class LockfileClaimTests(TLSHubTestsMixin, TestCase):
    """
    A hub claiming a lockfile that names an https hub.
    """

    async def assertClaimRefused(self, hub):
        second = SAMPHubServer(reactor=reactor, lockfile=hub.lockfile)
        with self.assertRaises(SAMPHubError) as caught:
            await within(second.start())
        self.assertIn("a SAMP hub is already running", str(caught.exception))
        self.assertEqual(read_lockfile(hub.lockfile)["samp.secret"], hub.params["samp.secret"])

    async def test_live_tls_hub_kept(self):
        """A live https hub keeps its lockfile, even one that requires
        client certificates the newcomer lacks."""
        await self.assertClaimRefused(await self.start_hub())
        required = await self.start_hub(cert_reqs=ssl.CERT_REQUIRED, lockfile=os.path.join(self.directory, "r.lock"))
        await self.assertClaimRefused(required)

    async def test_stale_tls_lockfile_replaced(self):
        hub = await self.start_hub()
        url, lockfile = hub.url, hub.lockfile
        await hub.stop()
        write_lockfile(lockfile, format_lockfile(new_lockfile_params(url, "old-secret")))
        newcomer = await self.start_hub(lockfile=lockfile)
        self.assertEqual(read_lockfile(lockfile)["samp.secret"], newcomer.params["samp.secret"])


class ServiceTests(TLSHubTestsMixin, TestCase):
    """
    SAMPClientService keeps a client registered with TLS hubs: its hub-side
    TLS settings are used at every registration.
    """

    async def test_reregisters_over_tls(self):
        lockfile = os.path.join(self.directory, "service.lock")
        hub = await self.start_hub(cert_reqs=ssl.CERT_REQUIRED, lockfile=lockfile)
        identity = issue_for_both_ends(self.pki, "daemon")
        client = SAMPIntegratedClient(
            name="daemon", reactor=reactor, https=True,
            tls=TLSOptions(*identity, ca_certs=self.pki.ca_file, cert_reqs=ssl.CERT_REQUIRED),
        )
        service = SAMPClientService(
            client, hub=HUB_RUNNING, lockfile=lockfile, reactor=reactor, ping_interval=0.5,
            lockfile_check_interval=0.1, retry_policy=lambda attempt: 0.2,
            hub_tls=self.hub_side(identity),
        )
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        await within(service.when_registered())
        first_id = client.get_public_id()
        self.assertIn(first_id, hub.registered_clients)
        await hub.stop()
        hub = await self.start_hub(cert_reqs=ssl.CERT_REQUIRED, lockfile=lockfile)
        self.assertTrue(hub.url.startswith("https://"))
        await within(service.when_registered())
        self.assertIn(client.get_public_id(), hub.registered_clients)
        # The new registration has working https callbacks, hub certificate
        # required.
        sender = await self.connect(hub, "sender", self.pki.issue("sender", client=True))
        response = await within(sender.ecall_and_wait(client.get_public_id(), "samp.app.ping", "10"))
        self.assertEqual(response["samp.status"], "samp.ok")
        await service.stopService()
        self.assertEqual(hub.registered_clients, [sender.get_public_id()])


    async def test_embedded_hub_calls_https_callbacks(self):
        """twistd samp-client --https with an embedded hub: the hub serves
        plain http, for every SAMP tool, and calls the client's https
        callbacks with the client's hub-side settings (its CA verifies the
        callback server, its certificate satisfies --cert-reqs required)."""
        lockfile = os.path.join(self.directory, "embedded.lock")
        self.patch(os, "environ", lockfile_environ(self.directory, lockfile))
        alice = issue_for_both_ends(self.pki, "alice")
        options = ClientOptions()
        options.parseOptions([
            "--hub", "embedded", "--name", "alice", "--subscribe", "test.*", "--https", "--cert-file", alice[0],
            "--key-file", alice[1], "--ca-certs", self.pki.ca_file, "--cert-reqs", "required",
        ])
        service = make_client_service(options, reactor)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        await within(service.when_registered(fail_after_failures=1))
        hub = service.embedded_hub
        self.assertTrue(hub.url.startswith("http://"))
        self.assertTrue(service.client.client.callback_url.startswith("https://"))
        sender = SAMPIntegratedClient(name="sender", reactor=reactor)
        await within(sender.connect(hub_params=hub.params))
        self.addCleanup(sender.disconnect)
        response = await within(sender.ecall_and_wait(service.client.get_public_id(), "test.ask", "10"))
        self.assertEqual(response["samp.status"], "samp.ok")
        await sender.disconnect()
        await service.stopService()
        self.assertFalse(os.path.exists(lockfile))


class ProcessTests(TLSHubTestsMixin, TestCase):
    """
    ``sampy-twisted hub --https`` in a child process, our client connecting
    to it over https with a client certificate.
    """

    timeout = 60

    async def test_cli_hub(self):
        identity = issue_for_both_ends(self.pki, "hub-process")
        lockfile = os.path.join(self.directory, "process.lock")
        env = lockfile_environ(self.directory, lockfile)
        env["PYTHONPATH"] = ROOT
        process = spawn(
            [sys.executable, "-u", "-m", "sampy_twisted._cli", "hub", "--lockfile", lockfile, "--https",
             "--cert-file", identity[0], "--key-file", identity[1], "--ca-certs", self.pki.ca_file,
             "--cert-reqs", "required"],
            env, self.directory, reactor, name="tls hub",
        )
        self.addCleanup(process.stop)
        await process.wait_for_line(r"^SAMP hub running at https://127\.0\.0\.1:\d+/xmlrpc, lockfile ", timeout=30)
        params = read_lockfile(lockfile)
        self.assertEqual(params["hub.ssl.certificate"], "REQUIRED")

        me = issue_for_both_ends(self.pki, "me")
        receiver = SAMPIntegratedClient(name="receiver", reactor=reactor, https=True,
                                        tls=TLSOptions(*me, ca_certs=self.pki.ca_file, cert_reqs=ssl.CERT_REQUIRED))
        inbox = Inbox(receiver)
        await within(receiver.connect(hub_params=params, tls=self.hub_side(me)))
        self.addCleanup(receiver.disconnect)
        sender = SAMPIntegratedClient(name="sender", reactor=reactor)
        await within(sender.connect(hub_params=params, tls=self.hub_side(self.pki.issue("s", client=True))))
        self.addCleanup(sender.disconnect)
        await sender.enotify(receiver.get_public_id(), "test.note", over="tls")
        self.assertEqual((await within(inbox.notifications.get()))[1], {"over": "tls"})

        # No certificate: refused, clearly.
        await self.assertRefused(SimpleHub(params), "TLS handshake failed", tls=self.hub_side())
        await receiver.disconnect()
        await sender.disconnect()
        result = await process.stop()
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertFalse(os.path.exists(lockfile))


class SimpleHub:
    """Lockfile entries in the shape ``connect(hub=...)`` tests use."""

    def __init__(self, params):
        self.params = params
