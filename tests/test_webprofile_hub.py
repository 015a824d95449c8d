# -*- test-case-name: tests.test_webprofile_hub -*-
"""
The Web Profile on a running hub, over real loopback HTTP: the browser
checks as a server answers them, the bad-input limits, a long poll across
the hub's stop, the two profiles' keys kept apart, and ``twistd samp-hub
--web-profile`` in a child process.
"""

import os
import xmlrpc.client

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from sampy_twisted import SAMPHubServer, SAMPIntegratedClient, read_lockfile
from sampy_twisted._process import spawn
from sampy_twisted._codec import dumps_call
from sampy_twisted._xmlrpc import XMLRPCProxy
from tests.test_tap import checkout_environ, twistd_argv

WAIT = 30.0


def within(d, seconds=WAIT):
    return d.addTimeout(seconds, reactor)


class _Body:
    def __init__(self, body):
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return defer.succeed(None)

    def stopProducing(self):
        pass

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass


class WebHubTests(TestCase):
    timeout = 120

    async def start_hub(self, consent=lambda request: True):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.hub = SAMPHubServer(
            reactor=reactor,
            lockfile=os.path.join(directory, ".samp"),
            web_profile=True,
            web_port=0,
            web_consent=consent,
        )
        await self.hub.start()
        self.addCleanup(self.hub.stop)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.web = XMLRPCProxy(self.hub.web_url, reactor)
        self.addCleanup(self.web.close)

    async def request(self, method=b"POST", path=b"/", headers=None, body=b""):
        agent = Agent(reactor, pool=self.pool)
        url = self.hub.web_url.rstrip("/").encode() + path
        response = await within(
            agent.request(method, url, Headers(headers or {}), _Body(body) if body else None)
        )
        return response, await within(readBody(response))

    def header(self, response, name):
        values = response.headers.getRawHeaders(name)
        return None if values is None else values[0]

    async def test_web_url_and_defaults(self):
        await self.start_hub()
        self.assertRegex(self.hub.web_url, r"^http://127\.0\.0\.1:\d+/$")
        plain = SAMPHubServer(reactor=reactor)
        self.assertIsNone(plain._web)

    async def test_host_header_checked(self):
        """DNS rebinding: a Host that is not loopback is refused with 403."""
        await self.start_hub()
        body = dumps_call("samp.webhub.ping", ())
        for host in (b"evil.example.com", b"attacker.test:21012"):
            response, text = await self.request(headers={b"host": [host]}, body=body)
            self.assertEqual(response.code, 403, host)
            self.assertIn(b"Host", text)
        response, text = await self.request(headers={b"host": [b"localhost:21012"]}, body=body)
        self.assertEqual(response.code, 200)
        self.assertEqual(xmlrpc.client.loads(text)[0], ("1",))

    async def test_preflight_and_cors(self):
        await self.start_hub()
        origin = b"https://aladin.example.org"
        response, _ = await self.request(
            b"OPTIONS",
            headers={
                b"origin": [origin],
                b"access-control-request-method": [b"POST"],
                b"access-control-request-private-network": [b"true"],
            },
        )
        self.assertEqual(response.code, 200)
        self.assertEqual(self.header(response, b"access-control-allow-origin"), origin)
        self.assertEqual(self.header(response, b"access-control-allow-private-network"), b"true")
        self.assertEqual(self.header(response, b"access-control-allow-headers"), b"Content-Type")
        response, text = await self.request(
            headers={b"origin": [origin], b"content-type": [b"text/xml"]},
            body=dumps_call("samp.webhub.getRegisteredClients", ("bad key",)),
        )
        self.assertEqual(self.header(response, b"access-control-allow-origin"), origin)
        self.assertRaises(xmlrpc.client.Fault, xmlrpc.client.loads, text)

    async def test_big_register_keeps_origin(self):
        """The consent prompt names the page's origin however big its
        registration request (a padded one is not parsed out of the
        request's context)."""
        asked = []
        await self.start_hub(consent=lambda request: asked.append(request) or True)
        identity = {"samp.name": "page", "padding": "x" * (2 * 1024 * 1024)}
        response, text = await self.request(
            headers={b"origin": [b"https://page.example.org"], b"content-type": [b"text/xml"]},
            body=dumps_call("samp.webhub.register", (identity,)),
        )
        self.assertEqual(response.code, 200)
        self.assertIn("samp.private-key", xmlrpc.client.loads(text)[0][0])
        self.assertEqual([(r.name, r.origin) for r in asked], [("page", "https://page.example.org")])

    async def test_bad_input_limits(self):
        """The Standard Profile's limits hold: a huge body is 413, a DTD a fault."""
        await self.start_hub()
        response, _ = await self.request(body=b"<" * (70 * 1024 * 1024))
        self.assertEqual(response.code, 413)
        dtd = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodCall/>'
        response, text = await self.request(body=dtd)
        self.assertRaises(xmlrpc.client.Fault, xmlrpc.client.loads, text)

    async def test_keys_kept_apart(self):
        """A page's key is refused by the Standard Profile endpoint."""
        await self.start_hub()
        info = await within(self.web.call("samp.webhub.register", {"samp.name": "page"}))
        std = XMLRPCProxy(self.hub.url, reactor)
        self.addCleanup(std.close)
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            await within(std.call("samp.hub.getRegisteredClients", info["samp.private-key"]))
        self.assertIn("not a Standard Profile client", caught.exception.faultString)

    async def test_long_poll_across_stop(self):
        """A waiting pull is answered when the hub stops; nothing is left."""
        await self.start_hub()
        info = await within(self.web.call("samp.webhub.register", {"samp.name": "page"}))
        key = info["samp.private-key"]
        await within(self.web.call("samp.webhub.allowReverseCallbacks", key, "1"))
        await within(self.web.call("samp.webhub.declareSubscriptions", key, {"samp.hub.event.shutdown": {}, "table.*": {}}))
        await within(self.web.call("samp.webhub.pullCallbacks", key, "0"))
        pull = self.web.call("samp.webhub.pullCallbacks", key, "600")
        ours = SAMPIntegratedClient(name="ours", reactor=reactor)
        await within(ours.connect(hub_params=self.hub.params))
        await within(ours.enotify(info["samp.self-id"], "table.load.votable", url="http://x/"))
        # the pull returned the notification; a new one waits for the stop
        [callback] = [c for c in await within(pull) if c["samp.params"][1]["samp.mtype"] == "table.load.votable"]
        self.assertEqual(callback["samp.params"][0], ours.get_public_id())
        self.assertEqual(self.web.url, self.hub.web_url)
        waiting = self.web.call("samp.webhub.pullCallbacks", key, "600")
        await within(ours.disconnect())
        await within(self.hub.stop())
        result = await within(waiting)
        self.assertEqual([c["samp.params"][1]["samp.mtype"] for c in result], ["samp.hub.event.shutdown"])


class TwistdWebTests(TestCase):
    timeout = 120

    async def test_twistd_samp_hub_web_profile(self):
        """twistd samp-hub --web-profile --web-consent accept serves pages."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        lockfile = os.path.join(directory, "hub.lock")
        process = spawn(
            twistd_argv(
                "samp-hub", "--lockfile", lockfile, "--web-profile", "--web-port", "0", "--web-consent", "accept"
            ),
            checkout_environ(directory),
            directory,
            reactor,
            name="twistd",
        )
        self.addCleanup(process.stop)
        line = await process.wait_for_line(r"SAMP Web Profile served at \S+", timeout=WAIT)
        url = line.split("served at ")[1].split()[0]
        await process.wait_for_line(r"SAMP hub running at", timeout=WAIT)
        web = XMLRPCProxy(url, reactor)
        self.addCleanup(web.close)
        info = await within(web.call("samp.webhub.register", {"samp.name": "kiosk page"}))
        ours = SAMPIntegratedClient(name="ours", reactor=reactor)
        await within(ours.connect(hub_params=read_lockfile(lockfile)))
        self.addCleanup(ours.disconnect)
        self.assertIn(info["samp.self-id"], await within(ours.get_registered_clients()))
        await process.wait_for_line(r"Web Profile client \S+ registered: 'kiosk page'", timeout=WAIT)


class TranslatorTests(TestCase):
    timeout = 120
    start_hub = WebHubTests.start_hub
    request = WebHubTests.request
    header = WebHubTests.header

    async def hub_and_page(self):
        """A hub, and a page registered with it, called back and
        subscribed to ``table.*``: its registration map, key and id."""
        await self.start_hub()
        info = await within(self.web.call("samp.webhub.register", {"samp.name": "page"}))
        key, web_id = info["samp.private-key"], info["samp.self-id"]
        await within(self.web.call("samp.webhub.allowReverseCallbacks", key, "1"))
        await within(self.web.call("samp.webhub.declareSubscriptions", key, {"table.*": {}}))
        return info, key, web_id

    async def standard_client(self):
        """A Standard Profile client of ours, connected to the hub."""
        ours = SAMPIntegratedClient(name="ours", reactor=reactor)
        await within(ours.connect(hub_params=self.hub.params))
        self.addCleanup(ours.disconnect)
        return ours

    async def test_file_url_translated_only_when_mentioned(self):
        """A file: URL a Standard Profile client sent is served (read in a
        thread); another file, or a too-large one, is not."""
        info, key, web_id = await self.hub_and_page()
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        paths = {}
        for name, content in (("sent.xml", b"<VOTABLE/>"), ("other.xml", b"secret"), ("big.xml", b"x" * 2000)):
            paths[name] = os.path.join(directory, name)
            with open(paths[name], "wb") as f:
                f.write(content)
        ours = await self.standard_client()
        for name in ("sent.xml", "big.xml"):
            await within(ours.enotify(web_id, "table.load.votable", url=f"file://{paths[name]}"))
        await within(self.web.call("samp.webhub.pullCallbacks", key, "10"))
        self.hub._web.translate_max_bytes = 1000
        prefix = info["samp.url-translator"]
        self.assertTrue(prefix.startswith(self.hub.web_url + "translator/"))
        path = prefix[len(self.hub.web_url) - 1:]
        response, body = await self.request(b"GET", f"{path}file://{paths['sent.xml']}".encode(),
                                            headers={b"origin": [b"null"]})
        self.assertEqual((response.code, body), (200, b"<VOTABLE/>"))
        self.assertEqual(self.header(response, b"access-control-allow-origin"), b"null")
        self.assertEqual(self.header(response, b"access-control-allow-private-network"), b"true")
        response, body = await self.request(b"GET", f"{path}file://{paths['other.xml']}".encode())
        self.assertEqual(response.code, 403)
        response, body = await self.request(b"GET", f"{path}file://{paths['big.xml']}".encode())
        self.assertEqual(response.code, 413)
        response, body = await self.request(b"GET", f"/translator/wrong-key?file://{paths['sent.xml']}".encode())
        self.assertEqual(response.code, 403)

    async def test_long_row_list_to_a_page(self):
        """A long list of strings the hub passes on as received reaches a
        web page whole, and a URL in it may be translated."""
        info, key, web_id = await self.hub_and_page()
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"<VOTABLE/>")
        rows = [str(i) for i in range(5000)] + [f"file://{path}"]
        ours = await self.standard_client()
        await within(ours.enotify(web_id, "table.select.rowList", **{"row-list": rows}))
        callbacks = await within(self.web.call("samp.webhub.pullCallbacks", key, "10"))
        self.assertEqual([c["samp.methodName"] for c in callbacks], ["receiveNotification"])
        self.assertEqual(callbacks[0]["samp.params"][1]["samp.params"], {"row-list": rows})
        translator = info["samp.url-translator"][len(self.hub.web_url) - 1:]
        response, body = await self.request(b"GET", f"{translator}file://{path}".encode())
        self.assertEqual((response.code, body), (200, b"<VOTABLE/>"))


class PortTakenTests(TestCase):
    async def test_web_port_taken(self):
        """A taken Web Profile port is a SAMPHubError saying so; nothing is left listening."""
        from sampy_twisted import SAMPHubError

        blocker = reactor.listenTCP(0, server_factory(), interface="127.0.0.1")
        self.addCleanup(blocker.stopListening)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        hub = SAMPHubServer(
            reactor=reactor,
            lockfile=os.path.join(directory, ".samp"),
            web_profile=True,
            web_port=blocker.getHost().port,
        )
        with self.assertRaises(SAMPHubError) as caught:
            await within(hub.start())
        self.assertIn("Web Profile", str(caught.exception))
        self.assertFalse(hub.is_running)
        self.assertFalse(os.path.exists(os.path.join(directory, ".samp")))


def server_factory():
    from twisted.internet.protocol import Factory, Protocol

    return Factory.forProtocol(Protocol)
