# -*- test-case-name: tests.test_xmlrpc -*-
"""
Tests for XML-RPC over Agent and the XML-RPC resource in
L{sampy_twisted._xmlrpc}, over loopback.
"""

import threading
import xmlrpc.client

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import server
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource

from sampy_twisted._errors import SAMPHubError, SAMPProxyError
from sampy_twisted._xmlrpc import (
    XMLRPCError,
    XMLRPCProxy,
    XMLRPCResource,
    _BytesProducer,
    _NamedHostEndpoint,
    make_site,
    with_request,
)
from sampy_twisted import _xmlrpc
from sampy_twisted._codec import LazyStrings, dumps_call, encode_call, safe_loads

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>
<methodCall><methodName>echo</methodName><params><param><value>&lol2;</value></param></params></methodCall>
"""


class SafeLoadsTests(SynchronousTestCase):
    """
    Parsing refuses DTDs and non-XML-RPC input.
    """

    def test_doctype_refused(self):
        exc = self.assertRaises(ValueError, safe_loads, BOMB)
        self.assertIn("DTD", str(exc))

    def test_garbage(self):
        self.assertRaises(ValueError, safe_loads, b"<not-closed")

    def test_fault(self):
        body = xmlrpc.client.dumps(xmlrpc.client.Fault(4, "no"), methodresponse=True).encode()
        exc = self.assertRaises(xmlrpc.client.Fault, safe_loads, body)
        self.assertEqual(exc.faultString, "no")


class _Hold(Resource):
    """Never answers; counts requests in flight."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []

    def render_POST(self, request):
        self.requests.append(request)
        return server.NOT_DONE_YET


class _Raw(Resource):
    """Answers every POST with fixed bytes."""

    isLeaf = True

    def __init__(self, body):
        super().__init__()
        self.body = body

    def render_POST(self, request):
        return self.body


class _HTTP10(protocol.Protocol):
    """An HTTP/1.0 server that closes after each response, as JSAMP's."""

    def dataReceived(self, data):
        self.buffer = getattr(self, "buffer", b"") + data
        if b"</methodCall>" in self.buffer:
            body = xmlrpc.client.dumps(("pong",), methodresponse=True).encode()
            self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            self.transport.loseConnection()


class _HTTP10Echo(protocol.Protocol):
    """An HTTP/1.0 server that closes after each response, answering with
    the number of items in the call's first argument and its last item."""

    def connectionMade(self):
        self.buffer = b""

    def dataReceived(self, data):
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) if sep else -1
        if len(body) == length:
            (rows,), _ = safe_loads(body)
            answer = xmlrpc.client.dumps(([str(len(rows)), rows[-1]],), methodresponse=True).encode()
            self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))
            self.transport.loseConnection()


class _Counting(protocol.Factory):
    """Wraps a factory to count connections."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.connections = 0

    def buildProtocol(self, addr):
        self.connections += 1
        return self.wrapped.buildProtocol(addr)

    # Started and stopped with the port, as Twisted's wrapping factories
    # do: a site lets go of what it keeps when it stops.
    def doStart(self):
        self.wrapped.doStart()

    def doStop(self):
        self.wrapped.doStop()


async def _later(value):
    return value


class ProxyTests(TestCase):
    """
    L{XMLRPCProxy} against L{XMLRPCResource} and misbehaving servers.
    """

    timeout = 20

    def serve(self, factory):
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}/"

    def proxy(self, url, **kwargs):
        proxy = XMLRPCProxy(url, reactor, **kwargs)
        self.addCleanup(proxy.close)
        return proxy

    def hub(self, **procedures):
        procedures.setdefault("echo", lambda *args: list(args))
        site = make_site(XMLRPCResource(procedures))
        counting = _Counting(site)
        return counting, self.proxy(self.serve(counting))

    @defer.inlineCallbacks
    def test_round_trip(self):
        """Arguments arrive as SAMP values; results come back decoded."""
        _, proxy = self.hub()
        result = yield proxy.call("echo", "a", ["b", {"c": "d"}])
        self.assertEqual(result, ["a", ["b", {"c": "d"}]])

    @defer.inlineCallbacks
    def test_none_deferred_coroutine(self):
        """None is answered as "", Deferreds and coroutines are awaited."""
        _, proxy = self.hub(none=lambda: None, d=lambda: defer.succeed("x"), co=lambda: _later("y"))
        self.assertEqual((yield proxy.call("none")), "")
        self.assertEqual((yield proxy.call("d")), "x")
        self.assertEqual((yield proxy.call("co")), "y")

    @defer.inlineCallbacks
    def test_faults(self):
        """Unknown methods, wrong arities and raised faults are faults."""

        def refuse():
            raise xmlrpc.client.Fault(7, "refused")

        _, proxy = self.hub(refuse=refuse, one=lambda a: a)
        fault = yield self.assertFailure(proxy.call("nothing"), xmlrpc.client.Fault)
        self.assertIn("unknown method 'nothing'", fault.faultString)
        fault = yield self.assertFailure(proxy.call("one", "a", "b"), xmlrpc.client.Fault)
        self.assertIn("bad arguments for one", fault.faultString)
        fault = yield self.assertFailure(proxy.call("refuse"), xmlrpc.client.Fault)
        self.assertEqual((fault.faultCode, fault.faultString), (7, "refused"))

    @defer.inlineCallbacks
    def test_with_request(self):
        """A procedure marked with_request gets the HTTP request first; the
        call's arguments are counted without it."""

        @with_request
        def peer(request, word):
            return [request.method.decode(), request.getHeader(b"content-type"), word]

        _, proxy = self.hub(peer=peer)
        self.assertEqual((yield proxy.call("peer", "w")), ["POST", "text/xml; charset=utf-8", "w"])
        fault = yield self.assertFailure(proxy.call("peer"), xmlrpc.client.Fault)
        self.assertIn("bad arguments for peer: got 0 argument(s)", fault.faultString)
        fault = yield self.assertFailure(proxy.call("peer", "a", "b"), xmlrpc.client.Fault)
        self.assertIn("got 2 argument(s)", fault.faultString)

    @defer.inlineCallbacks
    def test_error_classes(self):
        """
        A proxy translates every failure once, into its own classes: a
        fault into *fault_class* (code and text kept), anything else into
        *error_class*.
        """

        def refuse():
            raise xmlrpc.client.Fault(7, "refused")

        _, proxy = self.hub(refuse=refuse)
        translating = self.proxy(proxy.url, error_class=SAMPHubError, fault_class=SAMPProxyError)
        fault = yield self.assertFailure(translating.call("refuse"), SAMPProxyError)
        self.assertEqual((fault.faultCode, fault.faultString), (7, "refused"))
        listening = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        closed = f"http://127.0.0.1:{listening.getHost().port}/"
        yield listening.stopListening()
        unreachable = self.proxy(closed, error_class=SAMPHubError, fault_class=SAMPProxyError)
        error = yield self.assertFailure(unreachable.call("refuse"), SAMPHubError)
        self.assertIn("refuse at " + closed, str(error))

    @defer.inlineCallbacks
    def test_not_lenient(self):
        """
        A resource that is not lenient passes arguments as decoded, for its
        procedures to check (the hub core refuses non-SAMP data); a lenient
        one turns them into SAMP strings.
        """
        received = []

        def record(*args):
            received.append(args)
            return ""

        for lenient in (False, True):
            site = make_site(XMLRPCResource({"record": record}, lenient=lenient))
            proxy = self.proxy(self.serve(site))
            yield proxy.call("record", "a", {"n": 3, "b": True})
        self.assertEqual(received, [("a", {"n": 3, "b": True}), ("a", {"n": "3", "b": "1"})])

    @defer.inlineCallbacks
    def test_exception_becomes_fault(self):
        """An unexpected exception is logged and answered with its text."""

        def broken():
            raise RuntimeError("kaput")

        _, proxy = self.hub(broken=broken)
        fault = yield self.assertFailure(proxy.call("broken"), xmlrpc.client.Fault)
        self.assertIn("kaput", fault.faultString)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    @defer.inlineCallbacks
    def test_bad_result_becomes_fault(self):
        """A result XML-RPC cannot carry is a fault, not a broken answer."""
        _, proxy = self.hub(bad=lambda: {"x": object()})
        yield self.assertFailure(proxy.call("bad"), xmlrpc.client.Fault)
        self.flushLoggedErrors(TypeError)

    @defer.inlineCallbacks
    def raw_post(self, url, body):
        pool = HTTPConnectionPool(reactor, persistent=False)
        agent = Agent(reactor, pool=pool)
        response = yield agent.request(
            b"POST", url.encode(), Headers({b"content-type": [b"text/xml"]}), _BytesProducer([body])
        )
        content = yield readBody(response)
        return response.code, content

    @defer.inlineCallbacks
    def test_request_dtd_refused(self):
        """A request with a DTD is a fault and runs nothing."""
        called = []
        counting, proxy = self.hub(echo=lambda *a: called.append(a))
        code, body = yield self.raw_post(proxy.url, BOMB)
        self.assertEqual(code, 200)
        fault = self.assertRaises(xmlrpc.client.Fault, xmlrpc.client.loads, body)
        self.assertIn("DTD", fault.faultString)
        self.assertEqual(called, [])

    @defer.inlineCallbacks
    def test_malformed_request(self):
        _, proxy = self.hub()
        code, body = yield self.raw_post(proxy.url, b"<methodCall><oops")
        fault = self.assertRaises(xmlrpc.client.Fault, xmlrpc.client.loads, body)
        self.assertIn("cannot parse", fault.faultString)

    def parsed_in_threads(self):
        """Record the thread each request is parsed in."""
        where = []

        def recording_loads(data, *options):
            where.append(threading.current_thread() is threading.main_thread())
            return safe_loads(data, *options)

        self.patch(_xmlrpc, "safe_loads", recording_loads)
        return where

    @defer.inlineCallbacks
    def test_big_request_parsed_in_thread(self):
        """A body over THREADED_PARSE_BYTES is parsed in the reactor's
        thread pool, and answered as any other; a small one is parsed at
        once."""
        where = self.parsed_in_threads()
        _, proxy = self.hub()
        rows = [str(i) for i in range(100_000)]
        self.assertEqual((yield proxy.call("echo", rows)), [rows])
        self.assertEqual((yield proxy.call("echo", "small")), ["small"])
        # The big request in a thread; its answer, the small request and
        # its answer in the reactor's.
        self.assertEqual(where, [False, True, True, True])

    @defer.inlineCallbacks
    def test_big_malformed_request(self):
        """A big body that is not XML-RPC is a fault, parsed in a thread."""
        where = self.parsed_in_threads()
        called = []
        _, proxy = self.hub(echo=lambda *a: called.append(a))
        body = dumps_call("echo", [["x"] * 100_000])[:-20]
        code, answer = yield self.raw_post(proxy.url, body)
        fault = self.assertRaises(xmlrpc.client.Fault, xmlrpc.client.loads, answer)
        self.assertIn("cannot parse", fault.faultString)
        self.assertEqual((where, called), ([False], []))

    @defer.inlineCallbacks
    def test_hang_up_while_parsing(self):
        """A call whose caller hangs up while its big body is parsed is
        not made."""
        called, started, release = [], defer.Deferred(), threading.Event()

        def slow_loads(data, *options):
            reactor.callFromThread(started.callback, None)
            release.wait(10)
            return safe_loads(data, *options)

        self.patch(_xmlrpc, "safe_loads", slow_loads)
        resource = XMLRPCResource({"echo": lambda *a: called.append(a)})
        answered = defer.Deferred()
        original = resource._parsed

        def parsed(*args):
            original(*args)
            answered.callback(None)

        resource._parsed = parsed
        site = make_site(resource)
        closed = defer.Deferred()
        site_closed = site.channel_closed

        def channel_closed(channel):
            site_closed(channel)
            closed.callback(None)

        site.channel_closed = channel_closed
        proxy = self.proxy(self.serve(site))
        call = proxy.call("echo", ["x"] * 100_000)
        yield started
        call.cancel()  # the proxy closes the connection
        yield self.assertFailure(call, defer.CancelledError, XMLRPCError)
        yield closed
        release.set()
        yield answered
        self.assertEqual(called, [])

    @defer.inlineCallbacks
    def test_get_refused(self):
        _, proxy = self.hub()
        response = yield Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)).request(
            b"GET", proxy.url.encode()
        )
        yield readBody(response)
        self.assertEqual(response.code, 405)

    @defer.inlineCallbacks
    def test_oversized_request_dropped(self):
        """A body over the site's limit drops the connection."""
        site = make_site(XMLRPCResource({"echo": lambda *a: list(a)}), max_body_bytes=1000)
        proxy = self.proxy(self.serve(site))
        error = yield self.assertFailure(proxy.call("echo", "x" * 5000), XMLRPCError)
        self.assertIn(proxy.url, str(error))
        self.assertEqual((yield proxy.call("echo", "small")), ["small"])

    @defer.inlineCallbacks
    def test_response_dtd_refused(self):
        proxy = self.proxy(self.serve(make_site(_Raw(BOMB.replace(b"methodCall", b"methodResponse")))))
        error = yield self.assertFailure(proxy.call("x"), XMLRPCError)
        self.assertIn("DTD", str(error))

    @defer.inlineCallbacks
    def test_oversized_response(self):
        body = xmlrpc.client.dumps(("x" * 10000,), methodresponse=True).encode()
        proxy = self.proxy(self.serve(make_site(_Raw(body))), max_bytes=1000)
        error = yield self.assertFailure(proxy.call("x"), XMLRPCError)
        self.assertIn("exceeds 1000 bytes", str(error))

    @defer.inlineCallbacks
    def test_not_xmlrpc_response(self):
        proxy = self.proxy(self.serve(make_site(_Raw(b"<html>hello</html>"))))
        error = yield self.assertFailure(proxy.call("x"), XMLRPCError)
        self.assertIn("bad XML-RPC response", str(error))

    @defer.inlineCallbacks
    def test_http_error(self):
        proxy = self.proxy(self.serve(make_site(Resource())))
        error = yield self.assertFailure(proxy.call("x"), XMLRPCError)
        self.assertIn("HTTP 404", str(error))

    @defer.inlineCallbacks
    def test_connection_refused(self):
        port = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        url = f"http://127.0.0.1:{port.getHost().port}/"
        yield port.stopListening()
        error = yield self.assertFailure(self.proxy(url).call("samp.hub.ping"), XMLRPCError)
        self.assertIn(url, str(error))
        self.assertIn("refused", str(error))

    @defer.inlineCallbacks
    def test_timeout(self):
        """A server that never answers gives a timeout error, not a hang."""
        hold = _Hold()
        proxy = self.proxy(self.serve(make_site(hold)), timeout=0.2)
        error = yield self.assertFailure(proxy.call("slow"), XMLRPCError)
        self.assertIn("timed out after 0.2 s", str(error))

    @defer.inlineCallbacks
    def test_concurrency_bounded(self):
        """At most max_concurrent requests are in flight."""
        hold = _Hold()
        proxy = self.proxy(self.serve(make_site(hold)), max_concurrent=2, timeout=5)
        calls = [proxy.call("m") for _ in range(5)]
        while len(hold.requests) < 2:
            yield _next_turn()
        for _ in range(5):
            yield _next_turn()
        self.assertEqual(len(hold.requests), 2)
        body = xmlrpc.client.dumps(("ok",), methodresponse=True).encode()
        while len(hold.requests) < 5 or any(not r.finished for r in hold.requests):
            for request in hold.requests:
                if not request.finished:
                    request.write(body)
                    request.finish()
            yield _next_turn()
        self.assertEqual((yield defer.gatherResults(calls)), ["ok"] * 5)

    @defer.inlineCallbacks
    def test_slots_returned(self):
        """A call cancelled in flight, or timed out waiting for a slot,
        gives its slot back: later calls are not held up."""
        hold = _Hold()
        proxy = self.proxy(self.serve(make_site(hold)), max_concurrent=1, timeout=5)
        first = proxy.call("m")
        while len(hold.requests) < 1:
            yield _next_turn()
        waiting = proxy.call("m", timeout=0.1)
        yield self.assertFailure(waiting, XMLRPCError)
        first.cancel()  # (the Agent reports the cut connection)
        yield self.assertFailure(first, defer.CancelledError, XMLRPCError)
        body = xmlrpc.client.dumps(("ok",), methodresponse=True).encode()
        third = proxy.call("m")
        while len(hold.requests) < 2:
            yield _next_turn()
        hold.requests[-1].write(body)
        hold.requests[-1].finish()
        self.assertEqual((yield third), "ok")
        self.assertEqual(proxy._semaphore.tokens, 1)

    @defer.inlineCallbacks
    def test_keep_alive(self):
        """Against an HTTP/1.1 server, one connection serves many calls."""
        counting, proxy = self.hub()
        for i in range(5):
            yield proxy.call("echo", str(i))
        self.assertEqual(counting.connections, 1)

    @defer.inlineCallbacks
    def test_http10_server(self):
        """Against an HTTP/1.0 server that closes, every call still works."""
        factory = protocol.Factory.forProtocol(_HTTP10)
        proxy = self.proxy(self.serve(factory))
        for _ in range(5):
            self.assertEqual((yield proxy.call("ping")), "pong")

    @defer.inlineCallbacks
    def test_http10_server_big_body(self):
        """A big body to a server that closes each connection (a request
        of its own, written as the connection takes it) arrives whole."""
        proxy = self.proxy(self.serve(protocol.Factory.forProtocol(_HTTP10Echo)))
        for rows in (["a"], [str(i) for i in range(100_000)], ["b"] * 3):
            self.assertEqual((yield proxy.call("count", rows)), [str(len(rows)), rows[-1]])

    @defer.inlineCallbacks
    def test_list_changed_before_sent(self):
        """A long list that changes before its request has been written
        (which the caller must not do) fails the call with an error; the
        server runs nothing, and the next call works."""
        called = []
        _, proxy = self.hub(count=lambda rows: called.append(len(rows)) or "ok")
        # (Once it has seen the server close, the second proxy sends each
        # request on a connection of its own.)
        old = self.proxy(self.serve(protocol.Factory.forProtocol(_HTTP10Echo)))
        for each, answer in ((proxy, "ok"), (old, ["1", "a"])):
            self.assertEqual((yield each.call("count", ["a"])), answer)
            rows = [str(i) for i in range(10_000)]
            call = each.call("count", rows)
            rows[5000] = None
            error = yield self.assertFailure(call, XMLRPCError)
            self.assertIn("NoneType", str(error))
            self.assertEqual((yield each.call("count", ["a"])), answer)
        self.assertEqual(called, [1, 1])

    @defer.inlineCallbacks
    def test_caller_hanging_up_cancels(self):
        """When the caller hangs up, the Deferred a procedure returned is
        cancelled: nobody is left to answer."""
        cancelled = defer.Deferred()

        def wait():
            return defer.Deferred(lambda d: cancelled.callback("cancelled"))

        _, proxy = self.hub(wait=wait)
        yield self.assertFailure(proxy.call("wait", timeout=0.2), XMLRPCError)
        self.assertEqual((yield cancelled.addTimeout(10, reactor)), "cancelled")

    @defer.inlineCallbacks
    def test_cancelled_while_connecting(self):
        """A call cancelled before its connection is up fails with
        CancelledError, not a transport error."""
        _, proxy = self.hub()
        d = proxy.call("echo", "x")
        d.cancel()
        yield self.assertFailure(d, defer.CancelledError)

    def count_lookups(self):
        """Count the reactor's host name lookups until the test ends."""
        lookups = []
        resolver = reactor.nameResolver

        class Counting:
            def resolveHostName(self, receiver, hostName, *args, **kwargs):
                lookups.append(hostName)
                return resolver.resolveHostName(receiver, hostName, *args, **kwargs)

        self.patch(reactor, "_nameResolver", Counting())
        return lookups

    @defer.inlineCallbacks
    def test_host_name_looked_up_once(self):
        """
        A server named by host name that closes every connection is looked
        up once, not per call; an address that refuses is forgotten.
        """
        lookups = self.count_lookups()
        factory = protocol.Factory.forProtocol(_HTTP10)
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        number = port.getHost().port
        proxy = self.proxy(f"http://localhost:{number}/")
        for _ in range(3):
            self.assertEqual((yield proxy.call("ping")), "pong")
        self.assertEqual(lookups, ["localhost"])
        yield port.stopListening()
        yield self.assertFailure(proxy.call("ping"), XMLRPCError)
        port = reactor.listenTCP(number, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.assertEqual((yield proxy.call("ping")), "pong")
        self.assertEqual(lookups, ["localhost", "localhost"])

    @defer.inlineCallbacks
    def test_host_address_expires(self):
        """The address of a host name is looked up again after its time."""
        lookups = self.count_lookups()
        port = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        endpoint = _NamedHostEndpoint(reactor, "localhost", port.getHost().port, timeout=5, ttl=0)
        for _ in range(2):
            connected = yield endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
            connected.transport.loseConnection()
        self.assertEqual(lookups, ["localhost", "localhost"])


def _next_turn():
    d = defer.Deferred()
    reactor.callLater(0, d.callback, None)
    return d


class _PausingConsumer:
    """Pauses its producer after every write, as a full connection does."""

    def __init__(self):
        self.written = []
        self.producer = None

    def write(self, data):
        self.written.append(data)
        self.producer.pauseProducing()


class BytesProducerTests(SynchronousTestCase):
    """
    L{_BytesProducer} writes its parts as the connection takes them.
    """

    def test_pieces_as_taken(self):
        """Big parts go out a piece at a time, each after the connection
        asks for more; small ones whole; the Deferred fires after the
        last."""
        parts = [b"head", bytes(range(256)) * 1000, b"", b"tail"]
        producer = _BytesProducer(parts)
        self.assertEqual(producer.length, sum(map(len, parts)))
        consumer = _PausingConsumer()
        consumer.producer = producer
        done = producer.startProducing(consumer)
        while not done.called:
            producer.resumeProducing()
        self.assertEqual(b"".join(consumer.written), b"".join(parts))
        self.assertLessEqual(max(map(len, consumer.written)), 64 * 1024)
        self.assertEqual(consumer.written[0], b"head")
        self.assertIsNone(self.successResultOf(done))

    def test_lazy_strings(self):
        """A long list of strings is encoded as the connection takes it, a
        thousand strings at a time, to the length the producer gave."""
        rows = [str(i) for i in range(10_000)]
        parts = encode_call("m", [rows], lazy=True)
        self.assertIn(LazyStrings, map(type, parts))
        producer = _BytesProducer(parts)
        consumer = _PausingConsumer()
        consumer.producer = producer
        done = producer.startProducing(consumer)
        self.assertEqual(len(consumer.written), 1)
        while not done.called:
            producer.resumeProducing()
        self.assertEqual(b"".join(consumer.written), dumps_call("m", [rows]))
        self.assertEqual(producer.length, len(dumps_call("m", [rows])))
        self.assertGreater(len(consumer.written), 10)

    def test_lazy_strings_failing(self):
        """A list that cannot be written after all (it changed) fails the
        request's Deferred, and nothing more is written."""
        rows = [str(i) for i in range(10_000)]
        producer = _BytesProducer(encode_call("m", [rows], lazy=True))
        consumer = _PausingConsumer()
        consumer.producer = producer
        done = producer.startProducing(consumer)
        rows[5000] = None
        while not done.called:
            producer.resumeProducing()
        written = len(consumer.written)
        self.failureResultOf(done, TypeError)
        producer.resumeProducing()
        self.assertEqual(len(consumer.written), written)

    def test_stopped(self):
        """After stopProducing nothing more is written and the Deferred
        never fires."""
        producer = _BytesProducer([b"x" * 200_000])
        consumer = _PausingConsumer()
        consumer.producer = producer
        done = producer.startProducing(consumer)
        producer.stopProducing()
        producer.resumeProducing()
        self.assertEqual(len(consumer.written), 1)
        self.assertNoResult(done)
