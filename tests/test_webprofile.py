# -*- test-case-name: tests.test_webprofile -*-
"""
Tests for :mod:`sampy_twisted._webprofile` and
:mod:`sampy_twisted._pulldelivery`: the Web Profile on a hub core, on a
fake clock, with Standard Profile peers recorded by the core tests' fake
delivery (no sockets), and its browser checks through fake requests.
"""

import io
import os
import xmlrpc.client

from twisted.internet import defer, task
from twisted.trial import unittest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from sampy_twisted._hubcore import HubCore, IChannel
from sampy_twisted._listening import is_loopback_host
from sampy_twisted._pulldelivery import PullChannel
from sampy_twisted._codec import dumps_call
from sampy_twisted._verbatim import find_verbatim
from sampy_twisted._webprofile import (
    WEB_SAFE_MTYPES,
    URLControl,
    WebConsentRequest,
    WebProfile,
    mtype_allowed,
    origin_allowed,
)
from tests.test_hub_core import message, ok, register_client


def procedure(profile, method):
    """``samp.webhub.<method>`` as the XML-RPC resource calls it: one that
    asks for the HTTP request gets a page's, from origin https://page.example."""
    function = profile.xmlrpc._procedures[f"samp.webhub.{method}"]
    if not getattr(function, "with_request", False):
        return function
    request = DummyRequest([b""])
    request.requestHeaders.setRawHeaders(b"origin", [b"https://page.example"])
    return lambda *args: function(request, *args)


class WebTestCase(unittest.SynchronousTestCase):
    """A running core with a Web Profile on a :class:`task.Clock`."""

    consent_answer = True

    def setUp(self):
        self.clock = task.Clock()
        self.core = HubCore(self.clock, {"samp.name": "Hub"})
        self.core.running = True
        self.asked = []
        self.profile = WebProfile(self.core, self.clock, consent=self.consent)

    def consent(self, request):
        self.asked.append(request)
        return self.consent_answer

    def web(self, method, *args):
        """Call ``samp.webhub.<method>`` as the XML-RPC resource would."""
        return procedure(self.profile, method)(*args)

    def register(self, name="page", callable=True, subscriptions=None):
        """A registered web client's private key and id."""
        info = self.successResultOf(self.web("register", {"samp.name": name}))
        key = info["samp.private-key"]
        if callable:
            self.web("allowReverseCallbacks", key, "1")
        if subscriptions is not None:
            self.web("declareSubscriptions", key, subscriptions)
        self.flush()
        self.web("pullCallbacks", key, "0")  # drop the hub events so far
        return key, info["samp.self-id"]

    def std_client(self, subscriptions=None, metadata=None):
        return register_client(self.core, self.clock, True, subscriptions, metadata)

    def flush(self):
        self.clock.advance(0)

    def assertFault(self, function, *args, fragment):
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            function(*args)
        self.assertIn(fragment, caught.exception.faultString)


class RegistrationTests(WebTestCase):
    def test_register_result(self):
        d = self.web("register", {"samp.name": "Aladin Lite"})
        info = self.successResultOf(d)
        self.assertEqual(
            set(info), {"samp.hub-id", "samp.self-id", "samp.private-key", "samp.url-translator"}
        )
        self.assertEqual(info["samp.hub-id"], "hub")
        self.assertEqual(
            info["samp.url-translator"],
            f"http://127.0.0.1:21012/translator/{info['samp.private-key']}?",
        )
        self.assertEqual((self.asked[0].name, self.asked[0].origin), ("Aladin Lite", "https://page.example"))
        self.assertIsInstance(self.core.clients[info["samp.self-id"]].channel, PullChannel)

    def test_legacy_string_form(self):
        info = self.successResultOf(self.web("register", "old page"))
        self.assertIn("samp.private-key", info)

    def test_refused(self):
        self.consent_answer = False
        failure = self.failureResultOf(self.web("register", {"samp.name": "page"}), xmlrpc.client.Fault)
        self.assertIn("did not allow 'page'", failure.value.faultString)
        self.assertEqual(self.core.clients, {})

    def test_no_consent_function_refuses(self):
        profile = WebProfile(self.core, self.clock)
        register = procedure(profile, "register")
        self.failureResultOf(register({"samp.name": "page"}), xmlrpc.client.Fault)
        self.assertEqual(self.core.clients, {})

    def test_consent_raising_refuses(self):
        def broken(request):
            raise RuntimeError("no terminal")

        profile = WebProfile(self.core, self.clock, consent=broken)
        register = procedure(profile, "register")
        self.failureResultOf(register({"samp.name": "page"}), xmlrpc.client.Fault)
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.core.clients, {})

    def test_bad_identity(self):
        self.assertFault(self.web, "register", {"x": "y"}, fragment="samp.name")
        self.assertFault(self.web, "register", ["page"], fragment="identity map")
        self.assertEqual(self.asked, [])

    def test_deferred_consent_one_at_a_time(self):
        """A Deferred consent: one prompt at a time, a bounded number waiting."""
        answers = []

        def slow(request):
            answers.append(defer.Deferred())
            return answers[-1]

        profile = WebProfile(self.core, self.clock, consent=slow, max_waiting_consents=2)
        register = procedure(profile, "register")
        pending = [register({"samp.name": f"page{n}"}) for n in range(3)]
        self.assertEqual(len(answers), 1)  # one prompt, two waiting
        flood = register({"samp.name": "one too many"})
        self.assertIn("too many", self.failureResultOf(flood, xmlrpc.client.Fault).value.faultString)
        answers[0].callback(True)
        self.assertIn("samp.private-key", self.successResultOf(pending[0]))
        self.assertEqual(len(answers), 2)
        answers[1].callback(False)
        self.failureResultOf(pending[1], xmlrpc.client.Fault)
        answers[2].callback(True)
        self.successResultOf(pending[2])
        self.assertEqual(len(self.core.clients), 2)

    def test_abandoned_request_not_registered(self):
        """A page that hangs up while asked is not registered when the user says yes."""
        answer = defer.Deferred()
        profile = WebProfile(self.core, self.clock, consent=lambda r: answer)
        d = procedure(profile, "register")({"samp.name": "page"})
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        answer.callback(True)
        self.assertEqual(self.core.clients, {})

    def test_unregister(self):
        key, web_id = self.register()
        std = self.std_client({"samp.hub.event.unregister": {}})
        self.assertEqual(self.web("unregister", key), "")
        self.flush()
        self.assertEqual(std.channel.of("notification")[0][1]["samp.params"], {"id": web_id})
        self.assertFault(self.web, "unregister", key, fragment="unknown private key")

    def test_ping(self):
        self.assertEqual(self.web("ping"), "1")
        self.assertEqual(self.web("ping", "whatever"), "1")

    def test_keys_not_shared_between_profiles(self):
        std = self.std_client()
        self.assertFault(self.web, "getRegisteredClients", std.private_key, fragment="not a Web Profile")


class PullTests(WebTestCase):
    def test_interface(self):
        key, web_id = self.register()
        verifyObject(IChannel, self.core.clients[web_id].channel)

    def test_pull_before_allow_is_empty(self):
        key, _ = self.register(callable=False)
        self.assertEqual(self.web("pullCallbacks", key, "10"), [])

    def test_long_poll_woken(self):
        key, web_id = self.register(subscriptions={"table.load.votable": {}})
        std = self.std_client()
        d = self.web("pullCallbacks", key, "600")
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertNoResult(d)
        self.core.notify(std, web_id, message("table.load.votable", {"url": "http://x/t.xml"}))
        self.flush()
        callbacks = self.successResultOf(d)
        self.assertEqual(
            callbacks,
            [
                {
                    "samp.methodName": "receiveNotification",
                    "samp.params": [std.client_id, message("table.load.votable", {"url": "http://x/t.xml"})],
                }
            ],
        )

    def test_long_poll_timeout(self):
        key, _ = self.register()
        d = self.web("pullCallbacks", key, "10")
        self.clock.advance(9.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        self.assertEqual(self.successResultOf(d), [])

    def test_queued_returned_at_once(self):
        key, web_id = self.register(subscriptions={"samp.app.*": {}})
        std = self.std_client({"*": {}})
        msg_id = self.core.call(std, web_id, "tag", message("samp.app.ping"))
        self.flush()
        [callback] = self.web("pullCallbacks", key, "600")
        self.assertEqual(callback["samp.methodName"], "receiveCall")
        self.assertEqual(callback["samp.params"], [std.client_id, msg_id, message("samp.app.ping")])
        self.web("reply", key, msg_id, ok())
        self.flush()
        self.assertEqual(std.channel.of("response"), [(web_id, "tag", ok())])

    def test_response_pulled(self):
        key, web_id = self.register()
        std = self.std_client({"table.load.votable": {}})
        msg_id = self.web("call", key, std.client_id, "t1", message("table.load.votable"))
        self.flush()
        self.core.reply(std, msg_id, ok())
        self.flush()
        [callback] = self.web("pullCallbacks", key, "0")
        self.assertEqual(callback, {"samp.methodName": "receiveResponse", "samp.params": [std.client_id, "t1", ok()]})

    def test_abandoned_pull(self):
        key, _ = self.register()
        d = self.web("pullCallbacks", key, "600")
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.clock.advance(600)  # no timer left behind to fire a cancelled Deferred

    def test_new_pull_answers_old(self):
        key, _ = self.register()
        first = self.web("pullCallbacks", key, "600")
        second = self.web("pullCallbacks", key, "600")
        self.assertEqual(self.successResultOf(first), [])
        self.assertNoResult(second)
        self.web("allowReverseCallbacks", key, "0")
        self.assertEqual(self.successResultOf(second), [])

    def test_queue_bound(self):
        key, web_id = self.register(subscriptions={"samp.app.*": {}})
        self.profile.delivery.max_queued = 2
        std = self.std_client({"*": {}})
        ids = [self.core.call(std, web_id, "t", message("samp.app.ping")) for _ in range(3)]
        self.flush()
        self.assertEqual(len(self.web("pullCallbacks", key, "0")), 2)
        self.flush()
        [(responder, tag, response)] = std.channel.of("response")
        self.assertEqual(response["samp.status"], "samp.error")
        self.assertIn("queue", response["samp.error"]["samp.errortxt"])
        self.assertEqual(len(ids), 3)

    def test_byte_bound(self):
        key, web_id = self.register(subscriptions={"table.*": {}})
        self.profile.delivery.max_queued_bytes = 10_000
        std = self.std_client({"*": {}})
        self.core.call(std, web_id, "t", message("table.load.votable", {"x": "y" * 20_000}))
        self.flush()
        self.assertEqual(self.web("pullCallbacks", key, "0"), [])
        self.flush()
        self.assertEqual(std.channel.of("response")[0][2]["samp.status"], "samp.error")

    def test_idle_client_dropped(self):
        key, web_id = self.register()
        std = self.std_client({"samp.hub.event.unregister": {}})
        self.clock.advance(59)
        self.assertIn(web_id, self.core.clients)
        self.clock.advance(2)
        self.assertNotIn(web_id, self.core.clients)
        self.flush()
        self.assertEqual(std.channel.mtypes(), ["samp.hub.event.unregister"])

    def test_pulling_client_kept(self):
        key, web_id = self.register()
        for _ in range(5):
            d = self.web("pullCallbacks", key, "600")
            self.clock.advance(600)
            self.assertEqual(self.successResultOf(d), [])
        self.assertIn(web_id, self.core.clients)

    def test_quiet_uncallable_client(self):
        key, web_id = self.register(callable=False)
        self.clock.advance(1000)
        self.web("getRegisteredClients", key)
        self.clock.advance(1000)
        self.assertIn(web_id, self.core.clients)
        self.clock.advance(900)
        self.assertNotIn(web_id, self.core.clients)

    def test_bad_timeout(self):
        key, _ = self.register()
        self.assertFault(self.web, "pullCallbacks", key, "soon", fragment="not a SAMP int")


class MessagingTests(WebTestCase):
    def test_metadata_and_subscriptions_seen(self):
        key, web_id = self.register()
        self.web("declareMetadata", key, {"samp.name": "page"})
        self.web("declareSubscriptions", key, {"table.load.votable": {}})
        std = self.std_client()
        self.assertEqual(self.core.get_metadata(std, web_id), {"samp.name": "page"})
        self.assertEqual(self.core.get_subscribed_clients(std, "table.load.votable"), {web_id: {}})
        self.assertIn(std.client_id, self.web("getRegisteredClients", key))

    def test_unsafe_mtype_refused(self):
        key, _ = self.register()
        std = self.std_client({"script.aladin.send": {}, "table.load.votable": {}})
        for method, args in [
            ("notify", (std.client_id, message("script.aladin.send"))),
            ("call", (std.client_id, "t", message("script.aladin.send"))),
            ("callAndWait", (std.client_id, message("script.aladin.send"), "10")),
            ("notifyAll", (message("script.aladin.send"),)),
            ("callAll", ("t", message("script.aladin.send"))),
        ]:
            self.assertFault(self.web, method, key, *args, fragment="MType script.aladin.send is blocked")
        self.flush()
        self.assertEqual(std.channel.events, [])
        self.web("notify", key, std.client_id, message("table.load.votable"))
        self.assertEqual(self.web("notifyAll", key, message("table.load.votable")), [std.client_id])
        self.flush()
        self.assertEqual(len(std.channel.of("notification")), 2)

    def test_unsafe_recipients_hidden(self):
        key, _ = self.register()
        std = self.std_client({"script.aladin.send": {}})
        self.assertEqual(self.web("getSubscribedClients", key, "script.aladin.send"), {})
        self.assertEqual(self.core.get_subscribed_clients(std, "script.aladin.send"), {})

    def test_unsafe_subscriptions_hidden(self):
        key, _ = self.register()
        std = self.std_client(
            {"*": {}, "script.aladin.send": {}, "table.*": {}, "coord.pointAt.sky": {}, "x.y": {"x-samp.mostly-harmless": "1"}}
        )
        self.assertEqual(
            self.web("getSubscriptions", key, std.client_id),
            {"table.*": {}, "coord.pointAt.sky": {}, "x.y": {"x-samp.mostly-harmless": "1"}},
        )
        self.assertEqual(len(self.core.get_subscriptions(std, std.client_id)), 5)

    def test_unsafe_subscriptions_hidden_in_events(self):
        """The hub's event about a client's subscriptions shows a page what
        getSubscriptions would; other clients get the whole map."""
        key, _ = self.register(subscriptions={"samp.hub.event.subscriptions": {}})
        watcher = self.std_client({"samp.hub.event.subscriptions": {}})
        std = self.std_client()
        subscriptions = {"*": {}, "script.aladin.send": {}, "table.*": {}, "x.y": {"x-samp.mostly-harmless": "1"}}
        self.core.declare_subscriptions(std, subscriptions)
        self.flush()
        sender, event = self.web("pullCallbacks", key, "0")[-1]["samp.params"]
        self.assertEqual((sender, event["samp.mtype"]), ("hub", "samp.hub.event.subscriptions"))
        self.assertEqual(event["samp.params"], {"id": std.client_id, "subscriptions": {
            "table.*": {}, "x.y": {"x-samp.mostly-harmless": "1"}}})
        seen = [m for _, m in watcher.channel.of("notification") if m["samp.params"].get("id") == std.client_id]
        self.assertEqual(seen[-1]["samp.params"]["subscriptions"], subscriptions)

    def test_mostly_harmless_override(self):
        key, _ = self.register()
        yes = self.std_client({"x.custom": {"x-samp.mostly-harmless": "1"}})
        no = self.std_client({"table.load.votable": {"x-samp.mostly-harmless": "0"}})
        self.assertEqual(list(self.web("getSubscribedClients", key, "x.custom")), [yes.client_id])
        self.web("notify", key, yes.client_id, message("x.custom"))
        self.assertFault(self.web, "notify", key, no.client_id, message("table.load.votable"), fragment="blocked")

    def test_configurable_list(self):
        profile = WebProfile(self.core, self.clock, consent=lambda r: True, safe_mtypes=["x.*"])
        self.assertEqual(profile.safe_mtypes, ("x.*",))
        self.assertTrue(mtype_allowed("x.y", {}, profile.safe_mtypes))
        self.assertFalse(mtype_allowed("table.load.votable", {}, profile.safe_mtypes))
        self.assertTrue(mtype_allowed("table.load.votable", {}, WEB_SAFE_MTYPES))

    def test_call_and_wait(self):
        key, web_id = self.register()
        std = self.std_client({"coord.pointAt.sky": {}})
        d = self.web("callAndWait", key, std.client_id, message("coord.pointAt.sky"), "10")
        self.flush()
        [(_, msg_id, _)] = std.channel.of("call")
        self.core.reply(std, msg_id, ok())
        self.assertEqual(self.successResultOf(d), ok())

    def test_web_to_web(self):
        key1, id1 = self.register("a")
        key2, id2 = self.register("b", subscriptions={"table.*": {}})
        self.web("notify", key1, id2, message("table.load.votable"))
        self.flush()
        [callback] = self.web("pullCallbacks", key2, "0")
        self.assertEqual(callback["samp.params"][0], id1)


class URLControlTests(WebTestCase):
    def test_mentioned_by_standard_client(self):
        key, web_id = self.register(subscriptions={"table.*": {}})
        std = self.std_client()
        url = "http://127.0.0.1:9/table.xml"
        self.assertFalse(self.profile.urls.allows(url))
        self.core.notify(std, web_id, message("table.load.votable", {"url": url}))
        self.flush()
        self.assertTrue(self.profile.urls.allows(url))

    def test_metadata_mentions(self):
        key, _ = self.register()
        std = self.std_client(metadata={"samp.icon.url": "http://127.0.0.1:9/icon.png"})
        self.web("getMetadata", key, std.client_id)
        self.assertTrue(self.profile.urls.allows("http://127.0.0.1:9/icon.png"))

    def test_web_mentions_ignored(self):
        key1, id1 = self.register("a")
        key2, id2 = self.register("b", subscriptions={"table.*": {}})
        self.web("notify", key1, id2, message("table.load.votable", {"url": "file:///etc/passwd"}))
        self.web("declareMetadata", key1, {"samp.icon.url": "file:///etc/shadow"})
        self.flush()
        self.web("getMetadata", key2, id1)
        self.assertFalse(self.profile.urls.allows("file:///etc/passwd"))
        self.assertFalse(self.profile.urls.allows("file:///etc/shadow"))

    def test_translate_file(self):
        key, web_id = self.register(subscriptions={"table.*": {}})
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"<VOTABLE/>")
        url = f"file://{path}"
        refused = self.failureResultOf(self.profile.translate(key, url))
        self.assertEqual(refused.value.status, 403)
        std = self.std_client()
        self.core.notify(std, web_id, message("table.load.votable", {"url": url}))
        self.flush()
        bad_key = self.failureResultOf(self.profile.translate("nope", url))
        self.assertEqual(bad_key.value.status, 403)


class URLLearningTests(unittest.SynchronousTestCase):
    """
    URLControl keeps the most recent URLs, looking for them from the end of
    what it is told, and no further back than it needs.
    """

    def test_most_recent_kept(self):
        """Of more URLs than it keeps, the last ones mentioned stay, in
        lists, maps and texts alike; one mentioned again is recent again."""
        control = URLControl(max_urls=3)
        control.learn({"a": "http://x/1 and file:///2", "b": ["https://x/3", "text", "http://x/4"]})
        self.assertEqual([control.allows(f) for f in ("http://x/1", "file:///2", "https://x/3", "http://x/4")],
                         [False, True, True, True])
        control.learn(["file:///2", "http://x/5"])
        self.assertEqual([control.allows(f) for f in ("file:///2", "https://x/3", "http://x/4", "http://x/5")],
                         [True, False, True, True])

    def test_long_lists_bounded(self):
        """A long list is looked at from its end, four times as many
        strings as URLs are kept, whether decoded or kept as received."""
        rows = ["http://x/early"] + [str(i) for i in range(100)] + [f"http://x/{i}" for i in range(5)]
        document = dumps_call("m", [rows])
        start = document.index(b"<data>\n") + len(b"<data>\n")
        kept = find_verbatim(document, start, document.index(b"</data>"))
        for value in (rows, kept):
            control = URLControl(max_urls=3)
            control.learn({"row-list": value})
            self.assertEqual([control.allows(f"http://x/{i}") for i in range(5)], [False, False, True, True, True])
            control = URLControl(max_urls=20)
            control.learn({"row-list": value})
            self.assertTrue(control.allows("http://x/0"))
            self.assertFalse(control.allows("http://x/early"))  # 106 strings back: past 4 x 20
            control = URLControl(max_urls=30)
            control.learn({"row-list": value})
            self.assertTrue(control.allows("http://x/early"))


class BrowserCheckTests(WebTestCase):
    def request(self, method=b"POST", path=b"/", host=b"127.0.0.1:21012", origin=None, body=b"", peer="127.0.0.1"):
        request = DummyRequest(path.split(b"/")[1:])
        request.method = method
        request.path = request.uri = path
        request.content = io.BytesIO(body)
        request.client = type("A", (), {"host": peer, "port": 5})()
        request.getClientAddress = lambda: request.client
        if host is not None:
            request.requestHeaders.setRawHeaders(b"host", [host])
        if origin is not None:
            request.requestHeaders.setRawHeaders(b"origin", [origin])
        return request

    def render(self, request):
        result = self.profile.resource.render(request)
        if result is not NOT_DONE_YET:
            request.write(result)
        return request

    def header(self, request, name):
        values = request.responseHeaders.getRawHeaders(name)
        return None if values is None else values[0]

    def test_host_check(self):
        for host in (b"evil.example.com", b"evil.example.com:21012", b"127.0.0.1.nip.io", None, b"[::2]"):
            request = self.render(self.request(host=host))
            self.assertEqual(request.responseCode, 403, host)
        for host in (b"localhost:21012", b"127.0.0.1", b"127.1.2.3:80", b"[::1]:21012", b"LOCALHOST"):
            self.assertTrue(is_loopback_host(host), host)

    def test_remote_peer_refused(self):
        request = self.render(self.request(peer="192.168.1.5"))
        self.assertEqual(request.responseCode, 403)

    def test_origin_policy(self):
        for origin in (None, "null", "https://aladin.cds.unistra.fr", "http://localhost:8000", "chrome-extension://abc"):
            self.assertTrue(origin_allowed(origin), origin)
        for origin in ("", "aladin", "https://x/path", "https://a b"):
            self.assertFalse(origin_allowed(origin), origin)
        request = self.render(self.request(origin=b"https://x/path"))
        self.assertEqual(request.responseCode, 403)

    def test_preflight(self):
        request = self.render(self.request(method=b"OPTIONS", origin=b"https://example.org"))
        self.assertIn(request.responseCode, (None, 200))  # DummyRequest's default is None
        self.assertEqual(self.header(request, b"access-control-allow-origin"), b"https://example.org")
        self.assertIn(b"POST", self.header(request, b"access-control-allow-methods"))
        self.assertEqual(self.header(request, b"access-control-allow-headers"), b"Content-Type")
        self.assertEqual(self.header(request, b"access-control-allow-private-network"), b"true")

    def test_fault_has_cors_headers(self):
        body = xmlrpc.client.dumps(({"samp.name": "page"},), "samp.webhub.register").encode()
        self.consent_answer = False
        request = self.render(self.request(origin=b"null", body=body))
        self.assertEqual(self.header(request, b"access-control-allow-origin"), b"null")
        self.assertEqual(self.header(request, b"access-control-allow-private-network"), b"true")
        with self.assertRaises(xmlrpc.client.Fault):
            xmlrpc.client.loads(b"".join(request.written))
        self.assertEqual(self.asked, [WebConsentRequest("page", "null", None, "127.0.0.1")])

    def test_get_root_refused(self):
        request = self.render(self.request(method=b"GET"))
        self.assertEqual(request.responseCode, 405)


class BadMessageTests(WebTestCase):
    def test_bad_messages_fault_as_in_the_core(self):
        key, _ = self.register()
        self.assertFault(self.web, "notifyAll", key, {"samp.params": {}}, fragment="no samp.mtype")
        self.assertFault(self.web, "callAll", key, "t", ["x"], fragment="must be a map")
        self.assertFault(self.web, "notify", key, "c9", message("table.load.votable"), fragment="no registered client")

    def test_call_all_needs_callable_sender(self):
        key, _ = self.register(callable=False)
        self.std_client({"table.*": {}})
        self.assertFault(self.web, "callAll", key, "t", message("table.load.votable"), fragment="callable")
