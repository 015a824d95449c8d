# -*- test-case-name: tests.test_bodies -*-
"""
Tests for L{sampy_twisted._bodies}: the buffer a site reads big request
bodies into, used again only when nothing holds what was read into it.
"""

import io
import types
import xmlrpc.client

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody

from sampy_twisted import _bodies
from sampy_twisted._bodies import BigBody, BodyBuffers
from sampy_twisted._codec import dumps_call
from sampy_twisted._xmlrpc import XMLRPCProxy, XMLRPCResource, make_site

BIG = BodyBuffers.big_from


def read(buffers, data, pieces=3):
    """What a request would: *data* written into a body of *buffers* in
    *pieces* writes, and the body taken."""
    body = buffers.body(len(data))
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        body.write(data[start : start + step])
    return body.getvalue()


def count_buffers(case):
    """The buffers made by BodyBuffers from now on in *case*."""
    made = []

    def counted():
        made.append(None)
        return bytearray()

    case.patch(_bodies, "_new_buffer", counted)
    return made


class BodyBuffersTests(SynchronousTestCase):
    """Which buffer a body goes into, and when the kept one is let go."""

    def setUp(self):
        self.clock = task.Clock()
        self.buffers = BodyBuffers(self.clock)

    def test_small_bodies(self):
        """A body under big_from is an ordinary BytesIO; nothing is kept
        and no timer runs."""
        body = self.buffers.body(BIG - 1)
        self.assertIsInstance(body, io.BytesIO)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_big_body(self):
        """A big body reads as it was written."""
        data = bytes(range(256)) * (BIG // 256 + 1)
        value = read(self.buffers, data)
        self.assertIsInstance(value, bytearray)
        self.assertEqual(value, data)

    def test_used_again(self):
        """Once nothing holds a body, the next big body goes into the same
        buffer, whether shorter (down to half) or longer."""
        made = count_buffers(self)
        self.assertTrue(read(self.buffers, b"a" * (BIG * 3 // 2)) == b"a" * (BIG * 3 // 2))
        self.assertTrue(read(self.buffers, b"b" * BIG) == b"b" * BIG)
        self.assertTrue(read(self.buffers, b"c" * BIG * 2) == b"c" * BIG * 2)
        self.assertEqual(len(made), 1)

    def test_held_body_kept_apart(self):
        """A body still held, itself or through a view of it, is never
        written again: the next one gets a buffer of its own."""
        made = count_buffers(self)
        held = read(self.buffers, b"a" * BIG)
        view = memoryview(read(self.buffers, b"b" * BIG))
        third = read(self.buffers, b"c" * BIG)
        self.assertEqual(len(made), 3)
        self.assertTrue((held, bytes(view), third) == (b"a" * BIG, b"b" * BIG, b"c" * BIG))

    def test_much_smaller_body(self):
        """A body under half the kept buffer gets a new one, rather than
        hold memory it does not use."""
        made = count_buffers(self)
        read(self.buffers, b"a" * BIG * 3)
        read(self.buffers, b"b" * BIG)
        self.assertEqual(len(made), 2)

    def test_without_reference_counts(self):
        """Where the interpreter counts no references, no buffer is used
        twice."""
        self.patch(_bodies, "sys", types.SimpleNamespace())
        buffers = BodyBuffers(self.clock)
        made = count_buffers(self)
        read(buffers, b"a" * BIG)
        read(buffers, b"b" * BIG)
        self.assertEqual(len(made), 2)
        self.assertEqual((buffers._spare, self.clock.getDelayedCalls()), (None, []))  # nothing kept

    def test_let_go_when_idle(self):
        """The buffer is let go once no big body has come for idle
        seconds; a body meanwhile puts that off."""
        made = count_buffers(self)
        read(self.buffers, b"a" * BIG)
        self.clock.advance(self.buffers.idle - 1)
        read(self.buffers, b"b" * BIG)
        self.clock.advance(self.buffers.idle - 1)  # idle since the second body: not long enough
        self.assertIsNotNone(self.buffers._spare)
        self.clock.advance(1)
        self.assertIsNone(self.buffers._spare)
        self.assertEqual((len(made), self.clock.getDelayedCalls()), (1, []))

    def test_stop(self):
        """stop lets go of the buffer and of the timer."""
        read(self.buffers, b"a" * BIG)
        self.buffers.stop()
        self.assertIsNone(self.buffers._spare)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_file(self):
        """A BigBody is the file Twisted's request uses: tell after writes,
        seek back, read."""
        body = BigBody(bytearray(b"old contents, longer"))
        body.write(b"abc")
        body.write(b"def")
        self.assertEqual(body.tell(), 6)
        self.assertEqual(body.seek(0, 0), 0)
        self.assertEqual((body.read(2), body.read(), body.read()), (b"ab", b"cdef", b""))
        self.assertEqual(body.seek(-1, 2), 5)
        self.assertEqual(body.read(), b"f")
        self.assertRaises(ValueError, body.seek, 0, 3)
        body.close()
        self.assertEqual(body.getvalue(), b"abcdef")


class SiteTests(TestCase):
    """A site reading big requests into its kept buffer."""

    timeout = 30

    def setUp(self):
        self.patch(BodyBuffers, "big_from", 64 * 1024)
        self.kept = []
        # The hub's way of reading: long lists of plain strings kept as a
        # view of the body (a VerbatimStrings), for as long as it holds them.
        resource = XMLRPCResource({"keep": self.keep}, lenient=False, verbatim=True)
        self.site = make_site(resource, reactor=reactor)
        port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.proxy = XMLRPCProxy(f"http://127.0.0.1:{port.getHost().port}/", reactor)
        self.addCleanup(self.proxy.close)

    def keep(self, rows):
        self.kept.append(rows)
        return len(rows)

    @defer.inlineCallbacks
    def test_held_lists_stay_whole(self):
        """The lists of big requests still held are intact after the next
        big requests, which are read into buffers of their own."""
        made = count_buffers(self)
        sent = [[f"{name}{i}" for i in range(40_000)] for name in "abc"]
        for rows in sent:
            self.assertEqual((yield self.proxy.call("keep", rows)), "40000")
        self.assertEqual(len(made), 3)
        self.assertTrue([list(rows) for rows in self.kept] == sent)

    @defer.inlineCallbacks
    def test_used_again(self):
        """Once what was read from a big request is let go, the next is
        read into the same buffer."""
        made = count_buffers(self)
        # Parsed on the reactor's thread (under THREADED_PARSE_BYTES), where
        # nothing of the first request is left once it is answered.
        for name in "ab":
            rows = [f"{name}{i}" for i in range(20_000)]
            self.assertEqual((yield self.proxy.call("keep", rows)), "20000")
            self.assertTrue(list(self.kept.pop()) == rows)
        self.assertEqual(len(made), 1)

    @defer.inlineCallbacks
    def test_malformed_big_request(self):
        """A big body that is not XML-RPC is a fault, and leaves the buffer
        fit for the next."""
        agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        body = dumps_call("keep", [["x"] * 40_000])[:-20]
        response = yield agent.request(b"POST", self.proxy.url.encode(), None, FileBodyProducer(io.BytesIO(body)))
        answer = yield readBody(response)
        fault = self.assertRaises(xmlrpc.client.Fault, xmlrpc.client.loads, answer)
        self.assertIn("cannot parse", fault.faultString)
        rows = [str(i) for i in range(40_000)]
        self.assertEqual((yield self.proxy.call("keep", rows)), "40000")
        self.assertEqual(list(self.kept[-1]), rows)

    def test_stopped_with_its_port(self):
        """A site lets go of its buffer, and of the timer, when it stops."""
        site = make_site(XMLRPCResource({}), reactor=reactor)
        site.doStart()
        site.bodies.body(BodyBuffers.big_from)
        self.assertIsNotNone(site.bodies._release)
        site.doStop()
        self.assertEqual((site.bodies._release, site.bodies._spare), (None, None))
