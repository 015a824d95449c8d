"""
Tests of the hub monitor over loopback HTTP (token, Host check, the event
stream) and in a real headless chromium (the page's DOM, live).
"""

import json
import os
import stat
import tempfile
from urllib.parse import urlsplit

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from sampy_twisted._discovery import read_lockfile
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted._listening import is_loopback_host
from sampy_twisted._monitor_web import MONITOR_URL_KEY

from .chromium import Chromium
from .test_hub import WAIT, TestClient, message

BROWSER_WAIT = 30.0


class HostTests(unittest.SynchronousTestCase):
    def test_loopback_hosts(self):
        for host in [b"localhost", b"localhost:8080", b"127.0.0.1:1", b"127.3.4.5", b"[::1]:80",
                     b"[::1]", b"app.localhost:9"]:
            self.assertTrue(is_loopback_host(host), host)
        for host in [None, b"", b"evil.example:80", b"10.0.0.1", b"localhost.evil.com",
                     b"[::2]:80", b"[::1]x", b"127.0.0.1.nip.io", b"\xff"]:
            self.assertFalse(is_loopback_host(host), host)


class MonitorHubCase(unittest.TestCase):
    """A hub with its monitor on, in a temporary home."""

    monitor = True

    async def start_hub(self):
        home = tempfile.mkdtemp(prefix="sampy-monitor-")
        self.addCleanup(_rmtree, home)
        self.lockfile = os.path.join(home, ".samp")
        self.hub = SAMPHubServer(reactor=reactor, lockfile=self.lockfile, monitor=self.monitor)
        await self.hub.start()
        self.addCleanup(self.hub.stop)
        self.agent = Agent(reactor)
        return self.hub

    async def get(self, url, host=None):
        headers = Headers({})
        if host is not None:
            headers.addRawHeader(b"Host", host)
        d = self.agent.request(b"GET", url.encode(), headers)
        d.addTimeout(WAIT, reactor)
        response = await d
        body = await readBody(response)
        return response, body


def _rmtree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class HTTPTests(MonitorHubCase):
    async def test_url_in_private_lockfile(self):
        hub = await self.start_hub()
        params = read_lockfile(self.lockfile)
        self.assertEqual(params[MONITOR_URL_KEY], hub.monitor_url)
        self.assertEqual(stat.S_IMODE(os.stat(self.lockfile).st_mode), 0o600)
        response, body = await self.get(hub.monitor_url)
        self.assertEqual(response.code, 200)
        self.assertIn(b"SAMP hub monitor", body)
        self.assertEqual(response.headers.getRawHeaders(b"referrer-policy"), [b"no-referrer"])
        self.assertIsNone(response.headers.getRawHeaders(b"access-control-allow-origin"))

    async def test_token_needed(self):
        hub = await self.start_hub()
        parts = urlsplit(hub.monitor_url)
        base = f"{parts.scheme}://{parts.netloc}"
        token = parts.path.strip("/")
        for path in ["/", "/state", f"/{token[:-1]}/", f"/{token}x/", f"/x{token}/state", "/events"]:
            response, body = await self.get(base + path)
            self.assertEqual(response.code, 403, path)
            self.assertNotIn(token.encode(), body)
        response, body = await self.get(f"{base}/{token}")  # redirect to the slash
        self.assertEqual(response.code, 302)

    async def test_host_checked(self):
        hub = await self.start_hub()
        response, _ = await self.get(hub.monitor_url, host=b"evil.example")
        self.assertEqual(response.code, 403)
        response, _ = await self.get(hub.monitor_url, host=b"localhost:1234")
        self.assertEqual(response.code, 200)

    async def test_state_has_no_secrets(self):
        hub = await self.start_hub()
        client = await TestClient(self, hub).register(metadata={"samp.name": "A"}, subscriptions={"x.y": {}})
        response, body = await self.get(hub.monitor_url + "state")
        state = json.loads(body)
        self.assertIn(client.id, [c["id"] for c in state["clients"]])
        self.assertEqual(state["facts"]["lockfile"], self.lockfile)
        self.assertNotIn(client.key.encode(), body)
        self.assertNotIn(hub.params["samp.secret"].encode(), body)
        response, body = await self.get(hub.monitor_url + "receivers?mtype=x.y")
        self.assertEqual([r["id"] for r in json.loads(body)], [client.id])

    async def test_event_stream(self):
        """A stream sends a snapshot, then each event as it happens."""
        hub = await self.start_hub()
        events = _EventReader()
        response = await self.agent.request(b"GET", (hub.monitor_url + "events").encode())
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"text/event-stream; charset=utf-8"])
        response.deliverBody(events)
        self.addCleanup(events.close)
        await events.wait_for("snapshot")
        a = await TestClient(self, hub).register(metadata={"samp.name": "A"}, subscriptions={"test.x": {}})
        await TestClient(self, hub).register(metadata={"samp.name": "B"})
        sent = await events.wait_for("client", lambda d: d["name"] == "B")
        self.assertTrue(sent)
        await a.proxy.call("samp.hub.notifyAll", a.key, message("test.x"))  # nobody: B is not subscribed
        b_sent = await events.wait_for("message", lambda d: d["mtype"] == "test.x")
        self.assertEqual(b_sent["sender"], a.id)
        self.assertNotIn(a.key, json.dumps(events.all))

    async def test_no_monitor_by_default(self):
        self.monitor = False
        hub = await self.start_hub()
        self.assertIsNone(hub.monitor_url)
        self.assertNotIn(MONITOR_URL_KEY, read_lockfile(self.lockfile))

    async def test_stop_closes_streams(self):
        hub = await self.start_hub()
        events = _EventReader()
        response = await self.agent.request(b"GET", (hub.monitor_url + "events").encode())
        response.deliverBody(events)
        await events.wait_for("snapshot")
        d = hub.stop()
        d.addTimeout(WAIT, reactor)
        await d
        ended = events.when_closed()
        ended.addTimeout(WAIT, reactor)
        await ended


class _EventReader(protocol.Protocol):
    """Parses a text/event-stream body; wait for events by kind."""

    def __init__(self):
        self.buffer = b""
        self.all = []
        self._waiters = []
        self._closed = []
        self.done = False

    def dataReceived(self, data):
        self.buffer += data
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
            if b"event" in fields:
                self.all.append((fields[b"event"].decode(), json.loads(fields[b"data"])))
                self._check()

    def _check(self):
        for waiter in list(self._waiters):
            kind, predicate, d = waiter
            for k, data in self.all:
                if k == kind and predicate(data):
                    self._waiters.remove(waiter)
                    d.callback(data)
                    break

    def wait_for(self, kind, predicate=lambda d: True):
        d = defer.Deferred()
        self._waiters.append((kind, predicate, d))
        self._check()
        return d.addTimeout(WAIT, reactor)

    def connectionLost(self, reason):
        self.done = True
        for d in self._closed:
            d.callback(None)

    def when_closed(self):
        d = defer.Deferred()
        if self.done:
            d.callback(None)
        else:
            self._closed.append(d)
        return d

    def close(self):
        if not self.done and self.transport is not None:
            self.transport.stopProducing()


class BrowserTests(MonitorHubCase):
    """The real page in headless chromium, updated live."""

    async def browser(self):
        chromium = Chromium(reactor)
        self.addCleanup(chromium.stop)
        d = chromium.start()
        d.addTimeout(BROWSER_WAIT, reactor)
        await d
        return chromium

    async def test_page_live(self):
        hub = await self.start_hub()
        chromium = await self.browser()
        await chromium.navigate(hub.monitor_url)
        await chromium.wait_for("document.getElementById('status').textContent === 'live'", BROWSER_WAIT)
        await chromium.evaluate("window.notReloaded = true")

        a = await TestClient(self, hub).register(
            metadata={"samp.name": "Alpha"}, subscriptions={"test.note": {}, "samp.app.*": {}}
        )
        b = await TestClient(self, hub).register(
            metadata={"samp.name": "Beta"}, subscriptions={"test.note": {}, "test.fail": {}}
        )
        b.fault_mtypes.add("test.fail")
        row = "document.querySelector('#clients tr[data-client-id=\"{}\"]')"
        subscriptions = await chromium.wait_for(
            f"{row.format(b.id)} && [...{row.format(b.id)}.querySelectorAll('li[data-mtype]')]"
            ".map(li => li.dataset.mtype).join(' ')"
        )
        self.assertEqual(subscriptions, "test.fail test.note")
        name = await chromium.wait_for(f"{row.format(a.id)} && {row.format(a.id)}.querySelector('.client-name').textContent")
        self.assertEqual(name, "Alpha")

        await a.hub_call("notify", b.id, message("test.note", {"text": "hello"}))
        await a.hub_call("call", b.id, "t1", message("test.fail"))
        failure = await chromium.wait_for(
            "(() => { const r = document.querySelector('#log tr[data-mtype=\"test.fail\"].failed');"
            " return r && r.querySelector('.result').textContent; })()"
        )
        self.assertIn("test client refuses test.fail", failure)
        note = await chromium.wait_for("document.querySelector('#log tr[data-mtype=\"test.note\"][data-kind=\"notification\"]') !== null")
        self.assertTrue(note)
        # From 1251 pixels wide (side by side) down, neither table scrolls
        # sideways.
        for width in (1251, 1000):
            await chromium.send("Emulation.setDeviceMetricsOverride",
                                {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False}, session=True)
            overflow = await chromium.evaluate(
                "[...document.querySelectorAll('main > section')].filter(s => s.scrollWidth > s.clientWidth)"
                ".map(s => s.id)"
            )
            self.assertEqual(overflow, [], width)

        await a.hub_call("unregister")
        gone = await chromium.wait_for(f"{row.format(a.id)} === null && {row.format(b.id)} !== null")
        self.assertTrue(gone)
        self.assertTrue(await chromium.evaluate("window.notReloaded === true"))
        html = await chromium.evaluate("document.documentElement.outerHTML")
        self.assertNotIn(b.key, html)
        self.assertNotIn(hub.params["samp.secret"], html)

    async def test_no_token_forbidden_in_browser(self):
        hub = await self.start_hub()
        chromium = await self.browser()
        parts = urlsplit(hub.monitor_url)
        await chromium.navigate(f"{parts.scheme}://{parts.netloc}/")
        text = await chromium.wait_for("document.body && document.body.innerText.includes('403') && document.body.innerText")
        self.assertIn("403 Forbidden", text)


class CommandTests(MonitorHubCase):
    """``sampy-twisted monitor`` and ``--monitor`` on the hub commands."""

    async def run_cli(self, *argv):
        from sampy_twisted._cli import parse, run
        from sampy_twisted._process import lockfile_environ

        from .test_cli import WatchedConsole

        console = WatchedConsole(lockfile_environ(os.path.dirname(self.lockfile), self.lockfile))
        d = defer.ensureDeferred(run(reactor, parse(list(argv)), console))
        code = await d.addTimeout(WAIT, reactor)
        return code, console.stdout.getvalue(), console.stderr.getvalue()

    async def test_monitor_prints_url(self):
        hub = await self.start_hub()
        self.assertEqual(await self.run_cli("monitor"), (0, hub.monitor_url + "\n", ""))

    async def test_monitor_without_monitor(self):
        self.monitor = False
        await self.start_hub()
        code, out, err = await self.run_cli("monitor")
        self.assertEqual((code, out), (1, ""))
        self.assertIn("start it with --monitor", err)

    def test_monitor_flags(self):
        from sampy_twisted._cli import parse
        from sampy_twisted._tap_hub import HubOptions, make_hub

        for options in [parse(["hub", "--monitor"]).subOptions, HubOptions()]:
            if isinstance(options, HubOptions) and not options.get("monitor"):
                options.parseOptions(["--monitor"])
            hub = make_hub(options, reactor)
            self.assertIsNotNone(hub._monitor)
        options = HubOptions()
        options.parseOptions([])
        self.assertIsNone(make_hub(options, reactor)._monitor)


class CallbackTests(MonitorHubCase):
    async def test_callable_announced(self):
        """Setting a callback after subscribing turns the client callable on the page."""
        hub = await self.start_hub()
        events = _EventReader()
        response = await self.agent.request(b"GET", (hub.monitor_url + "events").encode())
        response.deliverBody(events)
        self.addCleanup(events.close)
        await events.wait_for("snapshot")
        client = await TestClient(self, hub).register(callable=False, subscriptions={"x.y": {}})
        await events.wait_for("client", lambda d: d["id"] == client.id and not d["callable"])
        await client.hub_call("setXmlrpcCallback", client._listen())
        await events.wait_for("client", lambda d: d["id"] == client.id and d["callable"])


class WebProfileTests(MonitorHubCase):
    async def test_web_client_named_web(self):
        """A Web Profile client shows as such, and the hub lists both profiles."""
        from sampy_twisted._xmlrpc import XMLRPCProxy

        home = tempfile.mkdtemp(prefix="sampy-monitor-")
        self.addCleanup(_rmtree, home)
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(home, ".samp"), monitor=True,
                            web_profile=True, web_port=0, web_consent=lambda request: True)
        await hub.start()
        self.addCleanup(hub.stop)
        self.agent = Agent(reactor)
        web = XMLRPCProxy(hub.web_url, reactor)
        self.addCleanup(web.close)
        info = await web.call("samp.webhub.register", {"samp.name": "page"}).addTimeout(WAIT, reactor)
        response, body = await self.get(hub.monitor_url + "state")
        state = json.loads(body)
        profiles = {c["id"]: c["profile"] for c in state["clients"]}
        self.assertEqual(profiles[info["samp.self-id"]], "Web")
        self.assertEqual(state["facts"]["profiles"], ["Standard", "Web"])
        self.assertNotIn(info["samp.private-key"].encode(), body)
