# -*- test-case-name: tests.test_tls -*-
"""
TLS: settings, and real handshakes over loopback with certificates made by
the tests.
"""

import os
import ssl

from twisted.internet import endpoints, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sampy_twisted import SAMPHubError, SAMPHubProxy, SAMPIntegratedClient, TLSOptions
from sampy_twisted._pki import CertificateAuthority
from sampy_twisted._tls import minimum_tls_version
from sampy_twisted._xmlrpc import XMLRPCError, XMLRPCProxy, XMLRPCResource, make_site
from twisted.internet.ssl import TLSVersion


class SettingsTests(SynchronousTestCase):
    """
    Bad TLS settings are clear errors when the options are made.
    """

    def setUp(self):
        self.pki = CertificateAuthority(os.path.abspath(self.mktemp()))

    def assertRefused(self, fragment, *args, **kwargs):
        exc = self.assertRaises(ValueError, TLSOptions, *args, **kwargs)
        self.assertIn(fragment, str(exc))

    def test_missing_files(self):
        cert, key = self.pki.issue("me")
        self.assertRefused("cannot read certificate file /nonexistent", cert_file="/nonexistent")
        self.assertRefused("cannot read key file /nonexistent", cert_file=cert, key_file="/nonexistent")
        self.assertRefused("cannot read CA bundle /nonexistent", ca_certs="/nonexistent")

    def test_not_pem(self):
        cert, key = self.pki.issue("me")
        self.assertRefused("no PEM certificate", cert_file=key)
        self.assertRefused("no private key", cert_file=cert)
        self.assertRefused("no PEM certificate", ca_certs=key)

    def test_passphrases(self):
        cert, key = self.pki.issue("locked", passphrase="open sesame")
        self.assertRefused("is encrypted: give its passphrase", cert, key)
        self.assertRefused("wrong passphrase", cert, key, passphrase="wrong")
        self.assertTrue(TLSOptions(cert, key, passphrase="open sesame").has_certificate)
        plain_cert, plain_key = self.pki.issue("plain")
        self.assertRefused("not encrypted", plain_cert, plain_key, passphrase="x")

    def test_mismatch(self):
        cert, _ = self.pki.issue("one")
        _, key = self.pki.issue("two")
        self.assertRefused("does not match the certificate", cert, key)

    def test_combined_pem(self):
        cert, key = self.pki.issue("both", combined=True)
        self.assertEqual(cert, key)
        self.assertTrue(TLSOptions(cert).has_certificate)

    def test_contradictions(self):
        cert, key = self.pki.issue("me")
        self.assertRefused("key_file needs cert_file", key_file=key)
        self.assertRefused("cert_reqs=7", cert_reqs=7)
        self.assertRaises(ValueError, TLSOptions().server_options)
        options = TLSOptions(cert, key, cert_reqs=ssl.CERT_REQUIRED)
        exc = self.assertRaises(ValueError, options.server_options)
        self.assertIn("needs ca_certs", str(exc))

    def test_versions(self):
        """ssl_version maps to a minimum; obsolete versions are refused."""
        for value in (None, ssl.PROTOCOL_TLS, ssl.PROTOCOL_TLS_CLIENT, ssl.PROTOCOL_TLS_SERVER):
            self.assertIsNone(minimum_tls_version(value))
        self.assertEqual(minimum_tls_version(ssl.PROTOCOL_TLSv1_2), TLSVersion.TLSv1_2)
        self.assertEqual(minimum_tls_version(ssl.TLSVersion.TLSv1_3), TLSVersion.TLSv1_3)
        self.assertEqual(minimum_tls_version("TLSv1.3"), TLSVersion.TLSv1_3)
        self.assertEqual(minimum_tls_version(TLSVersion.TLSv1_2), TLSVersion.TLSv1_2)
        for obsolete in (0, 1, ssl.PROTOCOL_TLSv1, ssl.PROTOCOL_TLSv1_1, "SSLv3", "TLSv1", TLSVersion.SSLv3,
                         TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1):
            exc = self.assertRaises(ValueError, minimum_tls_version, obsolete)
            self.assertIn("obsolete", str(exc))
        self.assertRaises(ValueError, minimum_tls_version, "TLSv9")

    def test_from_arguments(self):
        """Nothing given means no TLS settings; CERT_NONE is a choice."""
        self.assertIsNone(TLSOptions.from_arguments())
        opted_out = TLSOptions.from_arguments(cert_reqs=ssl.CERT_NONE)
        self.assertFalse(opted_out.verifies_server)
        self.assertTrue(TLSOptions.from_arguments(ca_certs=self.pki.ca_file).verifies_server)

    def test_with_cert_reqs(self):
        cert, key = self.pki.issue("me")
        strict = TLSOptions(cert, key, self.pki.ca_file, ssl.CERT_REQUIRED)
        relaxed = strict.with_cert_reqs(ssl.CERT_NONE)
        self.assertEqual((strict.cert_reqs, relaxed.cert_reqs), (ssl.CERT_REQUIRED, ssl.CERT_NONE))
        self.assertTrue(relaxed.has_certificate)
        self.assertIsNot(relaxed.client_policy(), strict.client_policy())
        self.assertRaises(ValueError, strict.with_cert_reqs, 9)

    def test_https_callbacks_need_certificate(self):
        exc = self.assertRaises(ValueError, SAMPIntegratedClient, https=True)
        self.assertIn("cert_file", str(exc))


class HandshakeTests(TestCase):
    """
    Real TLS handshakes between XMLRPCProxy and a TLS XML-RPC server.
    """

    timeout = 30

    def setUp(self):
        self.pki = CertificateAuthority(os.path.abspath(self.mktemp()))
        self.server_cert = self.pki.issue("hub")

    async def serve(self, server_options=None, tls=True):
        site = make_site(XMLRPCResource({"ping": lambda: "pong"}))
        if tls:
            options = server_options or TLSOptions(*self.server_cert)
            endpoint = endpoints.SSL4ServerEndpoint(reactor, 0, options.server_options(), interface="127.0.0.1")
        else:
            endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = await endpoint.listen(site)
        self.addCleanup(port.stopListening)
        return f"{'https' if tls else 'http'}://127.0.0.1:{port.getHost().port}/"

    def proxy(self, url, client_options=None):
        options = client_options or TLSOptions(ca_certs=self.pki.ca_file)
        proxy = XMLRPCProxy(url, reactor, tls_policy=options.client_policy(), timeout=5)
        self.addCleanup(proxy.close)
        return proxy

    async def assertHandshakeFails(self, url, fragment, client_options=None):
        with self.assertRaises(XMLRPCError) as caught:
            await self.proxy(url, client_options).call("ping")
        self.assertIn(fragment, str(caught.exception))
        self.assertIn(url, str(caught.exception))

    async def test_verified(self):
        url = await self.serve()
        self.assertEqual(await self.proxy(url).call("ping"), "pong")

    async def test_ca_bundle_all_certificates(self):
        """Every certificate of a CA bundle is trusted, not only the first."""
        other = CertificateAuthority(os.path.abspath(self.mktemp()), "second CA")
        bundle = os.path.abspath(self.mktemp())
        with open(bundle, "wb") as out:
            for path in (self.pki.ca_file, other.ca_file):
                with open(path, "rb") as f:
                    out.write(f.read())
        url = await self.serve(TLSOptions(*other.issue("hub2")))
        self.assertEqual(await self.proxy(url, TLSOptions(ca_certs=bundle)).call("ping"), "pong")

    async def test_untrusted(self):
        other = CertificateAuthority(os.path.abspath(self.mktemp()), "rogue CA")
        url = await self.serve(TLSOptions(*other.issue("rogue")))
        await self.assertHandshakeFails(url, "not issued by a trusted CA")

    async def test_opt_out(self):
        """cert_reqs=CERT_NONE is the explicit way to skip verification."""
        other = CertificateAuthority(os.path.abspath(self.mktemp()), "rogue CA")
        url = await self.serve(TLSOptions(*other.issue("rogue")))
        self.assertEqual(await self.proxy(url, TLSOptions(cert_reqs=ssl.CERT_NONE)).call("ping"), "pong")

    async def test_hub_proxy_opt_out(self):
        """connect(cert_reqs=ssl.CERT_NONE) skips verifying an https hub;
        by default an untrusted hub is refused."""
        other = CertificateAuthority(os.path.abspath(self.mktemp()), "rogue CA")
        site = make_site(XMLRPCResource({"samp.hub.ping": lambda: "1"}))
        options = TLSOptions(*other.issue("rogue")).server_options()
        port = await endpoints.SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        params = {"samp.secret": "s", "samp.hub.xmlrpc.url": f"https://127.0.0.1:{port.getHost().port}/"}
        hub = SAMPHubProxy(reactor=reactor)
        with self.assertRaises(SAMPHubError) as caught:
            await hub.connect(hub_params=params)
        self.assertIn("not issued by a trusted CA", str(caught.exception))
        await hub.connect(hub_params=params, cert_reqs=ssl.CERT_NONE)
        self.addCleanup(hub.disconnect)
        self.assertEqual(await hub.ping(), "1")

    async def test_hostname_mismatch(self):
        url = await self.serve(TLSOptions(*self.pki.issue("elsewhere", hostnames=("example.org",))))
        await self.assertHandshakeFails(url, "does not name 127.0.0.1")

    async def test_no_subject_alt_name(self):
        url = await self.serve(TLSOptions(*self.pki.issue("nosan", hostnames=())))
        await self.assertHandshakeFails(url, "has no subjectAltName")

    async def test_expired(self):
        url = await self.serve(TLSOptions(*self.pki.issue("old", expired=True)))
        await self.assertHandshakeFails(url, "has expired")

    def mutual(self, cert_reqs):
        return TLSOptions(*self.server_cert, ca_certs=self.pki.ca_file, cert_reqs=cert_reqs)

    def client_with(self, cert_key):
        return TLSOptions(*cert_key, ca_certs=self.pki.ca_file)

    async def test_client_certificate_required(self):
        url = await self.serve(self.mutual(ssl.CERT_REQUIRED))
        self.assertEqual(await self.proxy(url, self.client_with(self.pki.issue("me", client=True))).call("ping"), "pong")
        await self.assertHandshakeFails(url, "TLS handshake failed")
        foreign = self.pki.issue("stranger", client=True, self_signed=True)
        await self.assertHandshakeFails(url, "TLS handshake failed", self.client_with(foreign))

    async def test_client_certificate_optional(self):
        url = await self.serve(self.mutual(ssl.CERT_OPTIONAL))
        self.assertEqual(await self.proxy(url).call("ping"), "pong")
        self.assertEqual(await self.proxy(url, self.client_with(self.pki.issue("me", client=True))).call("ping"), "pong")
        foreign = self.pki.issue("stranger", client=True, self_signed=True)
        await self.assertHandshakeFails(url, "TLS handshake failed", self.client_with(foreign))

    async def test_plain_client_on_tls_port(self):
        url = await self.serve()
        with self.assertRaises(XMLRPCError):
            await self.proxy(url.replace("https:", "http:")).call("ping")

    async def test_tls_client_on_plain_port(self):
        """A plain HTTP server answers a TLS hello with a plain 400 (the hello
        has a LF byte, which ends a line for our lenient server) or not at
        all: the request fails, or times out, rather than hanging."""
        url = (await self.serve(tls=False)).replace("http:", "https:")
        proxy = XMLRPCProxy(url, reactor, tls_policy=TLSOptions(ca_certs=self.pki.ca_file).client_policy(), timeout=1)
        self.addCleanup(proxy.close)
        with self.assertRaises(XMLRPCError) as caught:
            await proxy.call("ping")
        self.assertRegex(str(caught.exception), "timed out|TLS handshake failed")

    async def test_minimum_version(self):
        """A server requiring TLS 1.3 still talks to a default client."""
        options = TLSOptions(*self.server_cert, ssl_version="TLSv1.3")
        url = await self.serve(options)
        self.assertEqual(await self.proxy(url).call("ping"), "pong")


class HTTPSCallbackTests(TestCase):
    """
    An integrated client with https=True serves its callbacks over TLS.
    """

    timeout = 30

    async def test_https_callback(self):
        pki = CertificateAuthority(os.path.abspath(self.mktemp()))
        cert, key = pki.issue("client")
        client = SAMPIntegratedClient(https=True, cert_file=cert, key_file=key, reactor=reactor)
        self.addCleanup(client.client.stop)
        await client.client.start()
        self.assertTrue(client.client.callback_url.startswith("https://127.0.0.1:"))
        proxy = XMLRPCProxy(client.client.callback_url, reactor, tls_policy=TLSOptions(ca_certs=pki.ca_file).client_policy())
        self.addCleanup(proxy.close)
        # Not registered yet: the TLS server answers with a fault.
        with self.assertRaises(Exception) as caught:
            await proxy.call("samp.client.receiveNotification", "k", "hub", {"samp.mtype": "a"})
        self.assertIn("not registered", str(caught.exception))
