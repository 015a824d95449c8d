# -*- test-case-name: tests.test_webprofile_browser -*-
"""
The Web Profile in a real browser: headless Chromium runs the project's own
test page (``tests/web/page.html``, XML-RPC over ``fetch``) against our hub,
with a Standard Profile peer -- our ``SAMPIntegratedClient``, then astropy's
-- on the other side.  The page reports each step with a POST to the test's
own loopback server; every wait has a timeout, none sleeps.
"""

import json
import os

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web import resource, server, static

from sampy_twisted import SAMPHubServer, SAMPIntegratedClient
from sampy_twisted._listening import ConnectionTracker
from tests.astropy_peer import AstropyPeer
from tests.chromium import Chromium

PAGE = os.path.join(os.path.dirname(__file__), "web", "page.html")
WAIT = 90.0  # seconds for any one step; Chromium starts slowly on a busy machine


class _Reports(resource.Resource):
    """Takes the page's ``POST /report`` and fires the Deferred of its step."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.steps = {}

    def step(self, name):
        if name not in self.steps:
            self.steps[name] = defer.Deferred()
        return self.steps[name]

    def render_POST(self, request):
        report = json.loads(request.content.read())
        d = self.step(report["step"])
        if not d.called:
            d.callback(report["data"])
        return b"ok"


class _OurPeer:
    """Our SAMPIntegratedClient as the Standard Profile peer."""

    async def start(self, hub):
        self.messages = defer.DeferredQueue()
        self.client = SAMPIntegratedClient(name="std peer", addr="127.0.0.1")
        await self.client.connect(hub_params=hub.params)
        for mtype in ("table.load.votable", "script.aladin.send", "samp.hub.event.unregister"):
            await self.client.bind_receive_notification(mtype, self._got)
        await self.client.bind_receive_call("coord.pointAt.sky", self._called)
        self.id = self.client.get_public_id()

    def _got(self, key, sender, mtype, params, extra):
        self.messages.put((mtype, sender, params))

    def _called(self, key, sender, msg_id, mtype, params, extra):
        self.messages.put((mtype, sender, params))
        return {"pointed": "yes"}

    def next_message(self):
        return self.messages.get().addTimeout(WAIT, reactor)

    def notify(self, recipient, mtype, params):
        return self.client.notify(recipient, {"samp.mtype": mtype, "samp.params": params})

    def get_metadata(self, client_id):
        return self.client.get_metadata(client_id)

    def get_subscribed_clients(self, mtype):
        return self.client.get_subscribed_clients(mtype)

    def stop(self):
        return self.client.disconnect()


class _AstropyPeer:
    """astropy's SAMPIntegratedClient as the Standard Profile peer."""

    async def start(self, hub):
        self.peer = await AstropyPeer.connect(
            reactor,
            hub.params,
            name="astropy peer",
            subscribe=("table.load.votable", "coord.pointAt.sky", "script.aladin.send", "samp.hub.event.unregister"),
            call_reply={"pointed": "yes"},
        )
        self.id = self.peer.public_id

    async def next_message(self):
        received = await self.peer.next_message(timeout=WAIT)
        return received.mtype, received.sender_id, received.params

    def notify(self, recipient, mtype, params):
        return self.peer.notify(recipient, mtype, params)

    def get_metadata(self, client_id):
        return self.peer.get_metadata(client_id)

    def get_subscribed_clients(self, mtype):
        return self.peer.get_subscribed_clients(mtype)

    def stop(self):
        return self.peer.disconnect()


class BrowserTestsMixin:
    peer_class = None

    def consent(self, request):
        self.consent_requests.append(request)
        return request.name != "refuse-me"

    def within(self, d):
        return d.addTimeout(WAIT, reactor)

    async def start_hub(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.hub = SAMPHubServer(
            reactor=reactor,
            lockfile=os.path.join(directory, ".samp"),
            web_profile=True,
            web_port=0,
            web_consent=self.consent,
        )
        await self.hub.start()
        self.addCleanup(self.hub.stop)

    def serve_page(self):
        root = resource.Resource()
        root.putChild(b"page.html", static.File(PAGE))
        root.putChild(b"data.txt", static.Data(b"translated resource", "text/plain"))
        root.putChild(b"secret.txt", static.Data(b"not for web pages", "text/plain"))
        self.reports = _Reports()
        root.putChild(b"report", self.reports)
        # Its connections are tracked: Chromium may leave one open when killed.
        connections = ConnectionTracker(server.Site(root), "test page server")
        port = reactor.listenTCP(0, connections, interface="127.0.0.1")
        self.addCleanup(connections.close_all, reactor, 5.0)
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}"

    async def open_page(self, url):
        """Headless Chromium showing *url*, stopped at the test's end."""
        browser = Chromium(reactor)
        self.addCleanup(browser.stop)
        await self.within(browser.start())
        await self.within(browser.navigate(url))
        return browser

    def watch_long_poll(self, web_id):
        """A Deferred firing when the page's pull starts waiting at the hub."""
        channel = self.hub._core.clients[web_id].channel
        waiting = defer.Deferred()
        pull = channel.pull

        def watched(timeout):
            result = pull(timeout)
            if isinstance(result, defer.Deferred) and not waiting.called:
                waiting.callback(None)
            return result

        channel.pull = watched
        return waiting

    async def test_page_and_standard_client(self):
        """
        The page registers after consent (a refused registration is a fault it
        can read), is seen by the Standard Profile peer, exchanges a
        notification and a call with it, is refused an unsafe MType, reads a
        URL the peer sent through the translator, and unregisters on pagehide.
        """
        self.consent_requests = []
        await self.start_hub()
        site = self.serve_page()
        peer = self.peer_class()
        await peer.start(self.hub)
        self.addCleanup(peer.stop)
        data_url, other_url = f"{site}/data.txt", f"{site}/secret.txt"
        page = (
            f"{site}/page.html?hub={self.hub.web_url}&peer={peer.id}"
            f"&data={data_url}&other={other_url}"
        )
        await self.open_page(page)
        error = self.reports.step("error")
        error.addCallback(lambda e: self.fail(f"the page failed: {e}"))

        refused = await self.within(self.reports.step("refused"))
        self.assertIn("did not allow 'refuse-me'", refused["fault"])

        registered = await self.within(self.reports.step("registered"))
        web_id = registered["id"]
        # Resumed while the page's report is being answered, so before its
        # first pull: the notification below is sent into a waiting long poll.
        long_poll = self.watch_long_poll(web_id)
        self.assertIn(peer.id, registered["clients"])
        self.assertEqual([r.name for r in self.consent_requests], ["refuse-me", "Web test page"])
        self.assertEqual(self.consent_requests[1].origin, site)
        metadata = await self.within(peer.get_metadata(web_id))
        self.assertEqual(metadata["samp.name"], "Web test page")
        self.assertNotIn(web_id, await self.within(peer.get_subscribed_clients("table.load.votable")))

        await self.within(long_poll)
        await self.within(peer.notify(web_id, "x.test.hello", {"url": data_url}))
        hello = await self.within(self.reports.step("hello"))
        self.assertEqual(hello, [peer.id, {"samp.mtype": "x.test.hello", "samp.params": {"url": data_url}}])

        done = await self.within(self.reports.step("done"))
        responder, tag, response = done["response"]
        self.assertEqual((responder, tag), (peer.id, "tag-1"))
        self.assertEqual(response["samp.status"], "samp.ok")
        self.assertEqual(response["samp.result"], {"pointed": "yes"})
        self.assertIn("MType script.aladin.send is blocked", done["unsafe"])
        self.assertEqual(done["subscribed"], {})
        self.assertEqual(done["translated"], {"status": 200, "text": "translated resource"})
        self.assertEqual(done["untranslated"], {"status": 403})

        # What the peer received, in any order (astropy's server runs each
        # request in a thread of its own), ending with pagehide's keep-alive
        # unregister, announced well before the idle drop could be.
        received = {}
        for _ in range(3):
            mtype, sender, params = await peer.next_message()
            received[mtype] = (sender, params)
        self.assertEqual(
            received,
            {
                "table.load.votable": (web_id, {"name": "from page"}),
                "coord.pointAt.sky": (web_id, {"ra": "10", "dec": "20"}),
                "samp.hub.event.unregister": ("hub", {"id": web_id}),
            },
        )
        self.assertNotIn(web_id, self.hub.registered_clients)
        self.assertFalse(error.called)


class OurPeerBrowserTests(BrowserTestsMixin, unittest.TestCase):
    """Our SAMPIntegratedClient as the Standard Profile peer."""

    peer_class = _OurPeer
    timeout = 240


class AstropyPeerBrowserTests(BrowserTestsMixin, unittest.TestCase):
    """astropy's SAMPIntegratedClient as the Standard Profile peer."""

    peer_class = _AstropyPeer
    timeout = 240
