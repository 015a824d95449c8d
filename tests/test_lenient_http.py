# -*- test-case-name: tests.test_lenient_http -*-
"""
Tests for HTTP as real SAMP peers speak it, DS9's xmlrpc.tcl above all:
requests with bare-LF line ends, HTTP/1.0 without ``Host``, and callback
servers that answer ``HTTP/1.1 200 OK`` and then close the connection.
"""

import os
import xmlrpc.client
from urllib.parse import urlsplit

from twisted.internet import defer, error, protocol, reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from sampy_twisted import SAMPIntegratedClient
from sampy_twisted._hub import start_hub
from sampy_twisted._codec import dumps_call, safe_loads
from sampy_twisted._xmlrpc import XMLRPCError, XMLRPCProxy, XMLRPCResource, make_site

WAIT = 30.0
"""Seconds a test waits for what should happen at once (generous: shared CI)."""


def ds9_request(method, args, path=b"/xmlrpc"):
    """A request as DS9's xmlrpc::buildRequest writes it: HTTP/1.0, bare LF
    line ends, no Host, ``Content-length`` spelt so."""
    body = dumps_call(method, args)
    head = b"POST %s HTTP/1.0\nContent-Type: text/xml\nContent-length: %d\n\n" % (path, len(body))
    return head + body


def split_head(data):
    """``(head, rest)`` at the first blank line, CRLF or bare LF; ``None``
    while the head is incomplete."""
    ends = [(data.find(sep), len(sep)) for sep in (b"\r\n\r\n", b"\n\n") if data.find(sep) >= 0]
    if not ends:
        return None
    index, size = min(ends)
    return data[:index], data[index + size :]


def header(head, name):
    """The value of header *name* in *head*, or ``None``."""
    for line in head.split(b"\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def parse_response(raw):
    """The status line, headers and decoded value of one raw response."""
    head, body = split_head(raw)
    length = int(header(head, b"content-length"))
    params, _ = safe_loads(body[:length])
    return head, params[0]


class _RawEcho(Resource):
    """Answers the exact bytes of the request body."""

    isLeaf = True

    def render_POST(self, request):
        return request.content.read()


def _site(resource, **kwargs):
    """make_site on a fake clock: the channels' idle timeouts stay off the
    global reactor."""
    return make_site(resource, reactor=task.Clock(), **kwargs)


def _serve_bytes(site, *chunks):
    """Feed *chunks* to a new channel of *site*; return its transport."""
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    for chunk in chunks:
        channel.dataReceived(chunk)
    return transport


class LenientServerTests(SynchronousTestCase):
    """
    make_site's channel reads bare-LF request heads and keeps Twisted's
    limits; the body is never touched.
    """

    def test_ds9_request(self):
        """DS9's bytes (HTTP/1.0, bare LF, no Host) get an XML-RPC answer,
        and the connection is closed after it, as HTTP/1.0 wants."""
        site = _site(XMLRPCResource({"samp.hub.ping": lambda: "1"}))
        transport = _serve_bytes(site, ds9_request("samp.hub.ping", []))
        head, value = parse_response(transport.value())
        self.assertTrue(head.startswith(b"HTTP/1.0 200 "), head)
        self.assertEqual(value, "1")
        self.assertIsNone(header(head, b"connection"))
        self.assertTrue(transport.disconnecting)

    def test_byte_by_byte(self):
        """The same request arriving one byte at a time."""
        site = _site(XMLRPCResource({"echo": lambda *args: list(args)}))
        data = ds9_request("echo", ["a\nb"])
        transport = _serve_bytes(site, *(data[i : i + 1] for i in range(len(data))))
        self.assertEqual(parse_response(transport.value())[1], ["a\nb"])

    def test_body_exact(self):
        """LFs, CRs and blank lines in the body reach the resource as sent,
        whole, with the head's line ends bare LF or CRLF."""
        body = b"one\ntwo\r\n\r\nthree\n\nfour\r\r\n"
        for eol in (b"\n", b"\r\n"):
            head = eol.join([b"POST / HTTP/1.0", b"Content-Length: %d" % len(body), b"", b""])
            transport = _serve_bytes(_site(_RawEcho()), head + body)
            self.assertTrue(transport.value().endswith(b"\r\n\r\n" + body), transport.value())

    def test_pipelined(self):
        """Two HTTP/1.1 requests with bare-LF heads in one chunk, the second
        right after the first body: both answered, in order, bodies exact."""
        first, second = b"a\n\nb\n", b"\nPOST / HTTP/1.1\n"
        data = b"".join(
            b"POST / HTTP/1.1\nHost: x\nContent-Length: %d\n\n%s" % (len(body), body)
            for body in (first, second)
        )
        transport = _serve_bytes(_site(_RawEcho()), data)
        raw = transport.value()
        head, rest = split_head(raw)
        self.assertEqual(rest[: len(first)], first)
        head2, rest2 = split_head(rest[len(first) :])
        self.assertEqual(rest2, second)
        for each in (head, head2):
            self.assertTrue(each.startswith(b"HTTP/1.1 200 "), each)
        self.assertFalse(transport.disconnecting)

    def test_keep_alive_said(self):
        """HTTP/1.1 responses on a connection kept open say
        ``Connection: keep-alive``; one asked to close says ``close``."""
        site = _site(XMLRPCResource({"samp.hub.ping": lambda: "1"}))
        body = dumps_call("samp.hub.ping", [])
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n" + body
        kept = _serve_bytes(site, request % (len(body), b""))
        self.assertEqual(header(parse_response(kept.value())[0], b"connection"), b"keep-alive")
        self.assertFalse(kept.disconnecting)
        closed = _serve_bytes(site, request % (len(body), b"Connection: close\r\n"))
        self.assertEqual(header(parse_response(closed.value())[0], b"connection"), b"close")
        self.assertTrue(closed.disconnecting)

    def test_long_header_line_refused(self):
        """A header line over Twisted's limit is answered 431 and the
        connection closed."""
        data = b"POST / HTTP/1.0\nX-Long: " + b"x" * 20000 + b"\n\n"
        transport = _serve_bytes(_site(_RawEcho()), data)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 431 "), transport.value())
        self.assertTrue(transport.disconnecting)

    def test_large_header_section_refused(self):
        """Headers over 16 kB in all are answered 431."""
        lines = b"".join(b"X-%d: %s\n" % (i, b"y" * 1000) for i in range(20))
        transport = _serve_bytes(_site(_RawEcho()), b"POST / HTTP/1.0\n" + lines + b"\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 431 "), transport.value())
        self.assertTrue(transport.disconnecting)

    def test_large_body_refused(self):
        """A bare-LF request announcing a body over the limit is answered
        413, and nothing runs."""
        called = []
        site = _site(XMLRPCResource({"echo": lambda *args: called.append(args)}), max_body_bytes=1000)
        transport = _serve_bytes(site, ds9_request("echo", ["x" * 5000]))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "), transport.value())
        self.assertIn(b"\r\nConnection: close\r\n", transport.value())
        self.assertTrue(transport.disconnecting)
        self.assertEqual(called, [])

    def test_dtd_refused(self):
        """The XML-RPC checks apply as before: no DTD."""
        body = b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]>\n<methodCall/>'
        data = b"POST / HTTP/1.0\nContent-Length: %d\n\n" % len(body) + body
        site = _site(XMLRPCResource({"echo": lambda *args: list(args)}))
        raw = _serve_bytes(site, data).value()
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            parse_response(raw)
        self.assertIn("DTD", caught.exception.faultString)


class _OneShot(protocol.Protocol):
    """Sends bytes, collects everything until the server closes."""

    def __init__(self, data):
        self._data = data
        self._parts = []
        self.done = defer.Deferred()

    def connectionMade(self):
        self.transport.write(self._data)

    def dataReceived(self, data):
        self._parts.append(data)

    def connectionLost(self, reason):
        self.done.callback(b"".join(self._parts))


async def raw_exchange(port, data):
    """Send *data* to 127.0.0.1:*port* on a new connection; the bytes
    answered, once the server closed."""
    one = _OneShot(data)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=WAIT)
    await connectProtocol(endpoint, one)
    return await one.done.addTimeout(WAIT, reactor)


class _Addresses(Resource):
    """Records, for each request, the addresses it was given and those of
    its transport."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render_POST(self, request):
        transport = request.transport
        self.seen.append((request.getHost(), request.getClientAddress(), transport.getHost(), transport.getPeer()))
        return b"ok"


class LenientLoopbackTests(TestCase):
    """DS9's request over a real loopback socket."""

    timeout = 60

    async def test_addresses_per_request(self):
        """Each request of a connection is given the connection's addresses
        (which the channel asks its transport for once)."""
        resource = _Addresses()
        port = reactor.listenTCP(0, make_site(resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n%s\r\nx"
        raw = await raw_exchange(port.getHost().port, request % b"" + request % b"Connection: close\r\n")
        self.assertEqual(raw.count(b"HTTP/1.1 200 "), 2)
        self.assertEqual(len(resource.seen), 2)
        for host, peer, transport_host, transport_peer in resource.seen:
            self.assertEqual((host, peer), (transport_host, transport_peer))
            self.assertEqual((host.host, host.port), ("127.0.0.1", port.getHost().port))
        self.assertEqual(resource.seen[0][:2], resource.seen[1][:2])

    async def test_ds9_request(self):
        site = make_site(XMLRPCResource({"echo": lambda *args: list(args)}))
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        raw = await raw_exchange(port.getHost().port, ds9_request("echo", ["x\ny", "z"]))
        head, value = parse_response(raw)
        self.assertTrue(head.startswith(b"HTTP/1.0 200 "), head)
        self.assertEqual(value, ["x\ny", "z"])


class _DS9Server(protocol.Protocol):
    """
    One XML-RPC exchange as DS9's callback server (xmlrpc::doRequest) has it:
    it reads one request, answers ``HTTP/1.1 200 OK`` with bare-LF lines and
    no ``Connection`` header, and closes.
    """

    def connectionMade(self):
        self._buffer = b""
        self._answered = False
        self.factory.connections += 1

    def dataReceived(self, data):
        if self._answered:
            # A second request on a socket this server closes: it is lost.
            self.factory.after_answer.append(data)
            return
        self._buffer += data
        parts = split_head(self._buffer)
        if parts is None:
            return
        head, body = parts
        length = int(header(head, b"content-length"))
        if len(body) < length:
            return
        self._answered = True
        self.factory.request_lines.append(head.split(b"\n")[0].rstrip(b"\r"))
        params, method = safe_loads(body[:length])
        self.factory.requests.append((method, params))
        d = defer.maybeDeferred(self.factory.handle, method, *params)
        d.addCallbacks(self._answer, self._answer_fault)

    def _answer(self, value):
        body = xmlrpc.client.dumps((value,), methodresponse=True).encode()
        head = b"HTTP/1.1 200 OK\nContent-Type: text/xml\nContent-length: %d\n\n" % len(body)
        self.transport.write(head + body)
        self.transport.loseConnection()

    def _answer_fault(self, failure):
        # xmlrpc::doRequest answers a failed handler with buildFault, which
        # measures the body, then trims its final newline.
        body = xmlrpc.client.dumps(xmlrpc.client.Fault(100, "eval() failed"), methodresponse=True)
        body = body.encode()
        if not body.endswith(b"\n"):
            body += b"\n"
        head = b"HTTP/1.1 200 OK\nContent-Type: text/xml\nContent-length: %d\n\n" % len(body)
        self.transport.write((head + body).strip())
        self.transport.loseConnection()


class _DS9ServerFactory(protocol.Factory):
    protocol = _DS9Server
    noisy = False

    def __init__(self, handle):
        self.handle = handle
        self.connections = 0
        self.requests = []
        self.request_lines = []
        self.after_answer = []


class ClosingPeerProxyTests(TestCase):
    """
    XMLRPCProxy against a peer that answers HTTP/1.1 and closes (DS9's
    callback server) and against one that keeps connections (our own).
    """

    timeout = 60

    def listen(self, factory, interface="127.0.0.1"):
        port = reactor.listenTCP(0, factory, interface=interface)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def proxy(self, url, **kwargs):
        proxy = XMLRPCProxy(url, reactor, timeout=WAIT, **kwargs)
        self.addCleanup(proxy.close)
        return proxy

    def ds9(self):
        return _DS9ServerFactory(lambda method, *args: list(args))

    def assert_each_once(self, server, count):
        self.assertEqual(sorted(int(params[0]) for _, params in server.requests), list(range(count)))
        self.assertEqual(server.connections, count)
        self.assertEqual(server.after_answer, [])

    async def test_in_a_row(self):
        """100 calls in a row all succeed, each arriving once, each on its
        own connection; the proxy learns the peer does not keep them."""
        server = self.ds9()
        proxy = self.proxy(f"http://127.0.0.1:{self.listen(server)}/")
        for i in range(100):
            self.assertEqual(await proxy.call("echo", str(i)), [str(i)])
        self.assert_each_once(server, 100)
        self.assertFalse(proxy.keeps_connections)

    async def test_concurrent(self):
        """Calls in flight together when the first answer arrives: none is
        sent on a connection the peer closes."""
        server = self.ds9()
        proxy = self.proxy(f"http://127.0.0.1:{self.listen(server)}/", max_concurrent=20)
        results = await defer.gatherResults([proxy.call("echo", str(i)) for i in range(100)])
        self.assertEqual(results, [[str(i)] for i in range(100)])
        self.assert_each_once(server, 100)
        # and in a row after that
        for i in range(100, 110):
            self.assertEqual(await proxy.call("echo", str(i)), [str(i)])
        self.assert_each_once(server, 110)

    async def test_fault_one_byte_short(self):
        """DS9's faults end one byte short of their Content-Length: the
        fault is still what the caller gets, and calls go on."""

        def handle(method, *args):
            if args == ("bad",):
                raise ValueError("a Tcl error")
            return list(args)

        server = _DS9ServerFactory(handle)
        proxy = self.proxy(f"http://127.0.0.1:{self.listen(server)}/")
        for i in range(3):
            with self.assertRaises(xmlrpc.client.Fault) as caught:
                await proxy.call("echo", "bad")
            self.assertEqual(caught.exception.faultString, "eval() failed")
            self.assertEqual(await proxy.call("echo", str(i)), [str(i)])

    async def test_cut_short_not_complete(self):
        """A body cut short that is not a complete document is an error."""
        body = xmlrpc.client.dumps(("ok",), methodresponse=True).encode()

        class Cut(protocol.Protocol):
            def dataReceived(self, data):
                if b"</methodCall>" in data:
                    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
                    self.transport.write(head + body[:-20])
                    self.transport.loseConnection()

        proxy = self.proxy(f"http://127.0.0.1:{self.listen(protocol.Factory.forProtocol(Cut))}/")
        with self.assertRaises(XMLRPCError) as caught:
            await proxy.call("x")
        self.assertIn(proxy.url, str(caught.exception))

    async def test_host_name_without_path(self):
        """A callback URL as DS9 gives it, ``http://HOST:PORT``: the request
        goes to ``POST /``."""
        server = self.ds9()
        proxy = self.proxy(f"http://localhost:{self.listen(server)}")
        for i in range(3):
            self.assertEqual(await proxy.call("echo", str(i)), [str(i)])
        self.assertEqual(server.request_lines, [b"POST / HTTP/1.1"] * 3)

    async def test_ipv6_literal(self):
        """``http://[::1]:PORT/`` reaches a server on IPv6 loopback."""
        server = self.ds9()
        try:
            port = self.listen(server, interface="::1")
        except error.CannotListenError as exc:
            self.skipTest(f"no IPv6 loopback here: {exc}")
        proxy = self.proxy(f"http://[::1]:{port}/")
        for i in range(3):
            self.assertEqual(await proxy.call("echo", str(i)), [str(i)])
        self.assert_each_once(server, 3)

    async def test_http11_without_keep_alive(self):
        """An HTTP/1.1 answer without ``Connection: keep-alive`` is taken to
        mean the connection may close, even if the peer keeps it."""
        body = xmlrpc.client.dumps(("ok",), methodresponse=True).encode()

        class Silent(protocol.Protocol):
            def dataReceived(self, data):
                if b"</methodCall>" in data:  # our requests come in one piece
                    self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

        factory = protocol.Factory.forProtocol(Silent)
        factory.connections = []
        build = factory.buildProtocol

        def counted(addr):
            built = build(addr)
            factory.connections.append(built)
            return built

        factory.buildProtocol = counted
        proxy = self.proxy(f"http://127.0.0.1:{self.listen(factory)}/")
        for _ in range(3):
            self.assertEqual(await proxy.call("x"), "ok")
        self.assertEqual(len(factory.connections), 3)
        self.assertFalse(proxy.keeps_connections)
        for each in factory.connections:
            each.transport.loseConnection()

    async def test_keep_alive_peer_reused(self):
        """Our own server says keep-alive: one connection serves calls in a
        row, and concurrent ones take at most max_concurrent."""
        site = make_site(XMLRPCResource({"echo": lambda *args: list(args)}))
        connections = []
        build = site.buildProtocol

        def counted(addr):
            connections.append(addr)
            return build(addr)

        site.buildProtocol = counted
        proxy = self.proxy(f"http://127.0.0.1:{self.listen(site)}/", max_concurrent=5)
        for i in range(50):
            self.assertEqual(await proxy.call("echo", str(i)), [str(i)])
        self.assertEqual(len(connections), 1)
        results = await defer.gatherResults([proxy.call("echo", str(i)) for i in range(50)])
        self.assertEqual(results, [[str(i)] for i in range(50)])
        self.assertLessEqual(len(connections), 5)
        self.assertTrue(proxy.keeps_connections)


class FakeDS9:
    """
    A SAMP client speaking to the hub exactly as DS9 8.4 does: each hub call
    a new connection with DS9's request bytes; a callback server
    (:class:`_DS9Server`) reached by ``http://localhost:PORT`` (a host name,
    no path) whose receiveCall handler calls ``samp.hub.reply`` and waits
    for it before it answers.
    """

    def __init__(self, testcase, hub, interface="127.0.0.1", host="localhost"):
        parts = urlsplit(hub.url)
        self._hub_port = parts.port
        self._hub_path = parts.path.encode("ascii") or b"/"
        self._secret = hub.params["samp.secret"]
        self.server = _DS9ServerFactory(self._handle)
        port = reactor.listenTCP(0, self.server, interface=interface)
        testcase.addCleanup(port.stopListening)
        self.url = f"http://{host}:{port.getHost().port}"
        self.notifications = []
        self.calls = []
        self._waiters = []

    async def hub_call(self, method, *args):
        raw = await raw_exchange(self._hub_port, ds9_request(method, args, self._hub_path))
        head, value = parse_response(raw)
        assert head.startswith(b"HTTP/1.0 200 "), head
        return value

    async def register(self):
        info = await self.hub_call("samp.hub.register", self._secret)
        self.key, self.id = info["samp.private-key"], info["samp.self-id"]
        await self.hub_call("samp.hub.declareMetadata", self.key, {"samp.name": "ds9"})
        await self.hub_call("samp.hub.setXmlrpcCallback", self.key, self.url)
        await self.hub_call(
            "samp.hub.declareSubscriptions", self.key, {"test.notify": {}, "test.call": {}}
        )
        return self

    async def _handle(self, method, key, *args):
        assert key == self.key, (method, key)
        if method == "samp.client.receiveNotification":
            self.notifications.append(args[1])
        elif method == "samp.client.receiveCall":
            _, msg_id, msg = args
            self.calls.append(msg)
            result = {"i": msg["samp.params"]["i"]}
            await self.hub_call(
                "samp.hub.reply", self.key, msg_id, {"samp.status": "samp.ok", "samp.result": result}
            )
        self._check_waiters()
        return ""

    def notified(self, count):
        """A Deferred firing once *count* notifications arrived."""
        d = defer.Deferred()
        self._waiters.append((count, d))
        self._check_waiters()
        return d.addTimeout(WAIT, reactor)

    def _check_waiters(self):
        for waiter in list(self._waiters):
            count, d = waiter
            if len(self.notifications) >= count:
                self._waiters.remove(waiter)
                if not d.called:
                    d.callback(None)


class DS9ThroughHubTests(TestCase):
    """A DS9-like client registers with our hub and gets every message once."""

    timeout = 120

    async def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.hub = await start_hub(reactor, lockfile=os.path.join(directory, "samp"))
        self.addCleanup(self.hub.stop)

    async def test_registers(self):
        """DS9's bytes register it, declare its metadata, callback URL (a
        host name without path) and subscriptions, and unregister it."""
        ds9 = await FakeDS9(self, self.hub).register()
        metadata = await ds9.hub_call("samp.hub.getMetadata", ds9.key, ds9.id)
        self.assertEqual(metadata, {"samp.name": "ds9"})
        await ds9.hub_call("samp.hub.unregister", ds9.key)

    async def test_messages_each_once(self):
        """100 notifications and 100 calls in a row from our client reach it
        exactly once each; every call's reply comes back."""
        ds9 = await FakeDS9(self, self.hub).register()
        sender = SAMPIntegratedClient(name="sender", reactor=reactor)
        await sender.connect(hub=self.hub)
        self.addCleanup(sender.disconnect)
        for i in range(100):
            await sender.notify(ds9.id, {"samp.mtype": "test.notify", "samp.params": {"i": str(i)}})
        await ds9.notified(100)
        for i in range(100):
            message = {"samp.mtype": "test.call", "samp.params": {"i": str(i)}}
            response = await sender.call_and_wait(ds9.id, message, "30")
            self.assertEqual(response["samp.status"], "samp.ok")
            self.assertEqual(response["samp.result"], {"i": str(i)})
        self.assertEqual(sorted(int(m["samp.params"]["i"]) for m in ds9.notifications), list(range(100)))
        self.assertEqual([int(m["samp.params"]["i"]) for m in ds9.calls], list(range(100)))
        self.assertEqual(ds9.server.after_answer, [])
        self.assertEqual(ds9.server.connections, 200)
        self.assertEqual(set(ds9.server.request_lines), {b"POST / HTTP/1.1"})
        await ds9.hub_call("samp.hub.unregister", ds9.key)

    async def test_ipv6_callback(self):
        """A callback URL with an IPv6 literal gets its messages."""
        try:
            ds9 = FakeDS9(self, self.hub, interface="::1", host="[::1]")
        except error.CannotListenError as exc:
            self.skipTest(f"no IPv6 loopback here: {exc}")
        await ds9.register()
        sender = SAMPIntegratedClient(name="sender", reactor=reactor)
        await sender.connect(hub=self.hub)
        self.addCleanup(sender.disconnect)
        for i in range(5):
            await sender.notify(ds9.id, {"samp.mtype": "test.notify", "samp.params": {"i": str(i)}})
        await ds9.notified(5)
        response = await sender.call_and_wait(ds9.id, {"samp.mtype": "test.call", "samp.params": {"i": "x"}}, "30")
        self.assertEqual(response["samp.result"], {"i": "x"})
        self.assertEqual(sorted(int(m["samp.params"]["i"]) for m in ds9.notifications), list(range(5)))
        self.assertEqual(ds9.server.after_answer, [])


_OK_BODY = xmlrpc.client.dumps(("ok",), methodresponse=True).encode()


class _Scripted(protocol.Protocol):
    """
    A callback server that reads one request and answers the method
    ``"ok"`` plainly (HTTP/1.0, then closes), and any other method with
    ``factory.script``: a list of byte strings to write, each in a turn of
    its own, then ``None`` to close (or nothing: stay open).
    """

    def connectionMade(self):
        self._buffer = b""
        self.factory.open.append(self)

    def connectionLost(self, reason):
        self.factory.open.remove(self)
        self.factory.closed.append(reason)

    def dataReceived(self, data):
        self._buffer += data
        parts = split_head(self._buffer)
        if parts is None or b"</methodCall>" not in parts[1]:
            return
        _, method = safe_loads(parts[1])
        self._buffer = b""
        if method == "ok":
            self.transport.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(_OK_BODY) + _OK_BODY)
            self.transport.loseConnection()
        else:
            self._write(list(self.factory.script))

    def _write(self, pieces):
        if not pieces or self.transport.disconnecting:
            return
        piece = pieces.pop(0)
        if piece is None:
            self.transport.loseConnection()
            return
        self.transport.write(piece)
        if pieces:
            task.deferLater(reactor, 0, self._write, pieces)


class OneShotResponseTests(TestCase):
    """
    A proxy to a server that closes its connections sends each request on
    a connection of its own, read without the Agent: the same answers and
    errors as the Agent's (a fresh proxy's first call), for each kind of
    response.
    """

    timeout = 60

    def serve(self, script):
        factory = protocol.Factory.forProtocol(_Scripted)
        factory.script, factory.open, factory.closed = script, [], []
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(lambda: [p.transport.abortConnection() for p in list(factory.open)])
        return factory, f"http://127.0.0.1:{port.getHost().port}/"

    def proxy(self, url, **kwargs):
        proxy = XMLRPCProxy(url, reactor, timeout=WAIT, **kwargs)
        self.addCleanup(proxy.close)
        return proxy

    async def outcome(self, proxy):
        try:
            return "value", await proxy.call("case")
        except Exception as exc:
            return type(exc), str(exc)

    async def both(self, script, **kwargs):
        """The outcome of the scripted answer through the Agent and through
        a one-shot request, which must agree; returns the latter's."""
        _, url = self.serve(script)
        plain = await self.outcome(self.proxy(url, **kwargs))
        proxy = self.proxy(url, **kwargs)
        self.assertEqual(await proxy.call("ok"), "ok")
        self.assertFalse(proxy.keeps_connections)
        one_shot = await self.outcome(proxy)
        self.assertEqual(plain[0], one_shot[0], (plain, one_shot))
        if plain[0] == "value":
            self.assertEqual(plain, one_shot)
        return one_shot

    def ok(self, body=_OK_BODY, head=b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"):
        return [head % len(body) + body, None]

    async def test_plain(self):
        self.assertEqual(await self.both(self.ok()), ("value", "ok"))

    async def test_bare_lf_and_continuation(self):
        head = b"HTTP/1.1 200 OK\nX-Long: a\n  b\nContent-length: %d\n\n"
        self.assertEqual(await self.both(self.ok(head=head)), ("value", "ok"))

    async def test_byte_by_byte(self):
        whole = self.ok()[0]
        self.assertEqual(await self.both([whole[i : i + 1] for i in range(len(whole))] + [None]), ("value", "ok"))

    async def test_interim_answer(self):
        script = [b"HTTP/1.1 100 Continue\r\n\r\n", *self.ok()]
        self.assertEqual(await self.both(script), ("value", "ok"))

    async def test_until_close(self):
        """A body without a length, ended by the connection, may be cut
        short: refused."""
        script = [b"HTTP/1.0 200 OK\r\n\r\n", _OK_BODY[:30], _OK_BODY[30:], None]
        kind, _ = await self.both(script)
        self.assertIs(kind, XMLRPCError)

    async def test_chunked(self):
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (_OK_BODY[:10], _OK_BODY[10:]))
        script = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunks, b"0\r\n\r\n"]
        self.assertEqual(await self.both(script), ("value", "ok"))

    async def test_stays_open(self):
        """A server that answers and keeps the connection: the answer is
        whole at its Content-Length, and the connection closed by us."""
        factory, url = self.serve(self.ok()[:1])
        proxy = self.proxy(url)
        await proxy.call("ok")
        self.assertEqual(await proxy.call("case"), "ok")
        while factory.open:
            await task.deferLater(reactor, 0.01, lambda: None)

    async def test_error_status(self):
        body = b"<html>no</html>"
        kind, text = await self.both(self.ok(body, b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n"))
        self.assertIs(kind, XMLRPCError)
        self.assertIn("answered HTTP 500 Oops", text)

    async def test_too_long_declared(self):
        kind, text = await self.both(self.ok(_OK_BODY + b" " * 200), max_bytes=200)
        self.assertIs(kind, XMLRPCError)
        self.assertIn("exceeds 200 bytes", text)

    async def test_too_long_streamed(self):
        script = [b"HTTP/1.0 200 OK\r\n\r\n", _OK_BODY, b" " * 300]
        kind, text = await self.both(script, max_bytes=200)
        self.assertIs(kind, XMLRPCError)
        self.assertIn("exceeds 200 bytes", text)

    async def test_closed_unanswered(self):
        kind, text = await self.both([None])
        self.assertIs(kind, XMLRPCError)
        self.assertIn("failed", text)

    async def test_closed_mid_head(self):
        kind, _ = await self.both([b"HTTP/1.1 200 OK\r\nContent-Le", None])
        self.assertIs(kind, XMLRPCError)

    async def test_garbage(self):
        kind, _ = await self.both([b"SMTP ready\r\n\r\n", None])
        self.assertIs(kind, XMLRPCError)

    async def test_bad_chunks(self):
        kind, _ = await self.both([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", None])
        self.assertIs(kind, XMLRPCError)

    async def test_timeout_closes(self):
        """No answer within the timeout: an error, and the connection is
        closed."""
        factory, url = self.serve([])
        proxy = self.proxy(url)
        await proxy.call("ok")
        proxy.timeout = 0.2
        with self.assertRaises(XMLRPCError) as caught:
            await proxy.call("case")
        self.assertIn("timed out", str(caught.exception))
        while factory.open:
            await task.deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(factory.closed), 2)

    async def switched(self, host="127.0.0.1"):
        """A proxy to a scripted server that sends one-shot requests now,
        and that server's factory and listening port."""
        factory = protocol.Factory.forProtocol(_Scripted)
        factory.script, factory.open, factory.closed = [], [], []
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(lambda: [p.transport.abortConnection() for p in list(factory.open)])
        proxy = self.proxy(f"http://{host}:{port.getHost().port}/")
        self.assertEqual(await proxy.call("ok"), "ok")
        self.assertFalse(proxy.keeps_connections)
        return proxy, factory, port

    async def test_cancelled_while_connecting(self):
        """A call cancelled before its connection is made fails with
        CancelledError, and no connection reaches the server (by address
        and by host name)."""
        for host in ("127.0.0.1", "localhost"):
            proxy, factory, port = await self.switched(host)
            self.addCleanup(port.stopListening)
            d = proxy.call("case")
            d.cancel()
            with self.assertRaises(defer.CancelledError):
                await d
            self.assertEqual(await proxy.call("ok"), "ok")
            self.assertEqual(len(factory.closed) + len(factory.open), 2)

    async def test_connection_refused(self):
        """A server gone: the call fails with "connection refused"."""
        proxy, _, port = await self.switched()
        await port.stopListening()
        with self.assertRaises(XMLRPCError) as caught:
            await proxy.call("case")
        self.assertIn("connection refused", str(caught.exception))
