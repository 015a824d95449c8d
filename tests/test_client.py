# -*- test-case-name: tests.test_client -*-
"""
Unit tests for the callable client and the integrated client, with the hub
replaced by a recording fake at the XML-RPC layer and time by a Clock.
"""

import os
import xmlrpc.client

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted import (
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    SAMPCallTimeout,
    SAMPClient,
    SAMPClientError,
    SAMPHubError,
    SAMPHubProxy,
    SAMPHubServer,
    SAMPIntegratedClient,
    SAMPProxyError,
)
from sampy_twisted.testing import MemoryNetwork, start_memory_hub

KEY = "k:secret-key"
PARAMS = {"samp.secret": "s3cret", "samp.hub.xmlrpc.url": "http://127.0.0.1:1/xmlrpc"}


class RecordingXMLRPC:
    """
    Stands in for the hub proxy's XMLRPCProxy: records calls, answers from
    a table (faults as SAMPProxyError, its fault_class).
    """

    url = PARAMS["samp.hub.xmlrpc.url"]

    def __init__(self):
        self.calls = []
        self.answers = {
            "samp.hub.register": {"samp.hub-id": "hub", "samp.self-id": "c1", "samp.private-key": KEY},
        }

    def call(self, method, *args, timeout=...):
        self.calls.append((method,) + args)
        answer = self.answers.get(method, "")
        if isinstance(answer, defer.Deferred):
            return answer
        if isinstance(answer, Exception):
            return defer.fail(answer)
        return defer.succeed(answer)

    def close(self):
        return defer.succeed(None)

    def named(self, method):
        return [c[1:] for c in self.calls if c[0] == method]


def connected_hub(reactor):
    hub = SAMPHubProxy(reactor=reactor)
    hub._proxy = RecordingXMLRPC()
    hub.lockfile = dict(PARAMS)
    return hub


class ClientTestsMixin:
    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.hub = connected_hub(self.reactor)
        self.wire = self.hub._proxy
        self.client = SAMPClient(self.hub, name="me", reactor=self.reactor)

    def register(self):
        self.successResultOf(self.client.start())
        self.successResultOf(self.client.register())
        del self.wire.calls[:]

    def replies(self):
        return [(msg_id, response) for _, msg_id, response in self.wire.named("samp.hub.reply")]


class RegistrationTests(ClientTestsMixin, SynchronousTestCase):
    """
    Registering declares everything in the order JSAMP needs.
    """

    def test_register_sequence(self):
        self.client.bind_receive_notification("table.*", lambda *a: None, metadata={"x": "1"})
        self.successResultOf(self.client.start())
        self.assertEqual(self.reactor.tcpServers[0][3], "127.0.0.1")
        self.successResultOf(self.client.register())
        methods = [c[0] for c in self.wire.calls]
        self.assertEqual(
            methods,
            ["samp.hub.register", "samp.hub.declareMetadata", "samp.hub.setXmlrpcCallback", "samp.hub.declareSubscriptions"],
        )
        self.assertEqual(self.wire.calls[0][1], "s3cret")
        self.assertEqual(self.wire.named("samp.hub.declareMetadata")[0], (KEY, {"samp.name": "me"}))
        self.assertTrue(self.wire.named("samp.hub.setXmlrpcCallback")[0][1].startswith("http://127.0.0.1:"))
        subscriptions = self.wire.named("samp.hub.declareSubscriptions")[0][1]
        self.assertEqual(
            subscriptions,
            {"samp.app.ping": {}, "samp.hub.event.shutdown": {}, "samp.hub.disconnect": {}, "table.*": {"x": "1"}},
        )
        self.assertEqual((self.client.get_private_key(), self.client.get_public_id()), (KEY, "c1"))
        self.assertEqual(self.client.get_hub_id(), "hub")

    def test_register_needs_start(self):
        self.failureResultOf(self.client.register(), SAMPClientError)

    def test_register_twice(self):
        self.register()
        self.failureResultOf(self.client.register(), SAMPClientError)

    def test_failed_declaration_unregisters(self):
        """A registration that cannot be completed is undone."""
        self.wire.answers["samp.hub.setXmlrpcCallback"] = SAMPProxyError(1, "no")
        self.successResultOf(self.client.start())
        self.failureResultOf(self.client.register(), SAMPProxyError)
        self.assertEqual(self.wire.named("samp.hub.unregister"), [(KEY,)])
        self.assertFalse(self.client.is_registered)

    def test_stopped_while_registering(self):
        """A callback server stopped while the registration is declared
        makes register() fail with a clear error, and undoes it."""
        declared = defer.Deferred()
        self.wire.answers["samp.hub.declareMetadata"] = declared
        self.successResultOf(self.client.start())
        registering = self.client.register()
        self.successResultOf(self.client.stop())
        declared.callback("")
        failure = self.failureResultOf(registering, SAMPClientError)
        self.assertIn("callback server stopped", str(failure.value))
        self.assertEqual(self.wire.named("samp.hub.unregister"), [(KEY,)])
        self.assertFalse(self.client.is_registered)

    def test_hub_shut_down_while_registering(self):
        """A registration ended by the hub while it is declared makes
        register() fail with a clear error, and nothing is unregistered."""
        declared = defer.Deferred()
        self.wire.answers["samp.hub.declareMetadata"] = declared
        self.successResultOf(self.client.start())
        registering = self.client.register()
        self.client.receive_notification(
            KEY, "hub", {"samp.mtype": "samp.hub.event.shutdown", "samp.params": {}}
        )
        declared.callback("")
        failure = self.failureResultOf(registering, SAMPClientError)
        self.assertIn("registration ended", str(failure.value))
        self.assertEqual(self.wire.named("samp.hub.unregister"), [])

    def test_bad_registration_answer(self):
        self.wire.answers["samp.hub.register"] = {"samp.self-id": ""}
        self.successResultOf(self.client.start())
        self.failureResultOf(self.client.register(), SAMPClientError)

    def test_bind_declares_when_registered(self):
        self.register()
        self.successResultOf(self.client.bind_receive_call("calc.*", lambda *a: {}))
        self.assertIn("calc.*", self.wire.named("samp.hub.declareSubscriptions")[0][1])
        self.successResultOf(self.client.unbind_receive_call("calc.*"))
        self.assertNotIn("calc.*", self.wire.named("samp.hub.declareSubscriptions")[1][1])

    def test_bind_without_declare(self):
        """declare=False declares nothing now; the next declaration
        includes the binding, as in astropy."""
        self.register()
        self.successResultOf(self.client.bind_receive_call("calc.*", lambda *a: {}, declare=False))
        self.assertEqual(self.wire.calls, [])
        self.successResultOf(self.client.declare_subscriptions())
        self.assertIn("calc.*", self.wire.named("samp.hub.declareSubscriptions")[0][1])

    def test_declare_metadata_merges(self):
        """declare_metadata adds to the metadata, as in astropy."""
        self.register()
        self.successResultOf(self.client.declare_metadata({"samp.description.text": "more"}))
        [(_, metadata)] = self.wire.named("samp.hub.declareMetadata")
        self.assertEqual(metadata["samp.description.text"], "more")
        self.assertIn("samp.name", metadata)

    def test_bind_needs_callable(self):
        """Handlers cannot be bound on a client nothing is delivered to."""
        client = SAMPClient(self.hub, reactor=self.reactor, callable=False)
        self.assertRaises(SAMPClientError, client.bind_receive_notification, "a.b", lambda *a: None)
        self.assertRaises(SAMPClientError, client.bind_receive_call, "a.b", lambda *a: {})

    def test_bad_bindings(self):
        self.assertRaises(ValueError, self.client.bind_receive_call, "calc*", lambda *a: {})
        self.assertRaises(TypeError, self.client.bind_receive_call, "calc.x", "not callable")
        self.assertRaises(KeyError, self.client.unbind_receive_notification, "nothing.bound")
        self.assertRaises(TypeError, self.client.bind_receive_call, "calc.x", lambda *a: {}, True, {"n": 1})

    def test_stop_and_restart(self):
        self.successResultOf(self.client.start())
        self.assertTrue(self.client.is_running)
        self.successResultOf(self.client.stop())
        self.assertFalse(self.client.is_running)
        self.assertIsNone(self.client.callback_url)


class DispatchTests(ClientTestsMixin, SynchronousTestCase):
    """
    Notifications, calls and responses reach the right handler once, and
    every call is answered.
    """

    def setUp(self):
        super().setUp()
        self.seen = []

    def record(self, *args):
        self.seen.append(args)

    def test_notification_dispatch(self):
        """The most specific binding receives the notification."""
        self.client.bind_receive_notification("*", lambda *a: self.seen.append(("any",) + a))
        self.client.bind_receive_notification("table.*", self.record)
        self.register()
        message = {"samp.mtype": "table.load.votable", "samp.params": {"url": "u"}, "x": "y"}
        self.assertEqual(self.client.receive_notification(KEY, "c2", message), "")
        self.assertEqual(self.seen, [(KEY, "c2", "table.load.votable", {"url": "u"}, {"x": "y"})])
        self.client.receive_notification(KEY, "c2", {"samp.mtype": "image.load.fits", "samp.params": {}})
        self.assertEqual(self.seen[-1][0], "any")

    def test_wrong_key_refused(self):
        """A callback with the wrong private key is a fault and runs nothing."""
        self.client.bind_receive_message("*", self.record)
        self.register()
        message = {"samp.mtype": "a.b", "samp.params": {}}
        for call in [
            lambda: self.client.receive_notification("k:wrong", "c2", message),
            lambda: self.client.receive_call("k:wrong", "c2", "m1", message),
            lambda: self.client.receive_response("k:wrong", "c2", "t", {}),
            lambda: self.client.receive_call(3, "c2", "m1", message),
            lambda: self.client.receive_call("k:\xe9", "c2", "m1", message),
        ]:
            fault = self.assertRaises(xmlrpc.client.Fault, call)
            self.assertIn("wrong private key", fault.faultString)
        self.assertEqual(self.seen, [])
        self.assertEqual(self.wire.calls, [])

    def test_unregistered_refuses(self):
        self.assertRaises(
            xmlrpc.client.Fault, self.client.receive_notification, KEY, "c2", {"samp.mtype": "a"}
        )

    def call(self, mtype, handler, msg_id="m1", params=None):
        self.client.bind_receive_call(mtype, handler)
        self.register()
        message = {"samp.mtype": mtype, "samp.params": params or {}}
        self.assertEqual(self.client.receive_call(KEY, "c2", msg_id, message), "")
        return self.replies()

    def test_map_result(self):
        """A returned map is the samp.result of a samp.ok reply."""
        replies = self.call("calc.add", lambda k, s, m, t, p, e: {"sum": p["a"]}, params={"a": "3"})
        self.assertEqual(replies, [("m1", {"samp.status": SAMP_STATUS_OK, "samp.result": {"sum": "3"}})])

    def test_full_response(self):
        """A returned map with samp.status is sent as the response."""
        response = {"samp.status": "samp.warning", "samp.result": {}, "samp.error": {"samp.errortxt": "meh"}}
        self.assertEqual(self.call("x.y", lambda *a: response), [("m1", response)])

    def test_none_replies_itself(self):
        """None means the handler replies itself: nothing is sent."""
        self.assertEqual(self.call("x.y", lambda *a: None), [])

    def test_exception(self):
        """A handler that raises is answered with samp.error."""

        def broken(*args):
            raise ValueError("no table")

        [(msg_id, response)] = self.call("x.y", broken)
        self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        self.assertEqual(response["samp.error"]["samp.errortxt"], "no table")
        self.assertEqual(response["samp.error"]["samp.code"], "ValueError")
        self.assertIn("Traceback", response["samp.error"]["samp.debugtxt"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_failed_deferred(self):
        [(_, response)] = self.call("x.y", lambda *a: defer.fail(KeyError("gone")))
        self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        self.flushLoggedErrors(KeyError)

    def test_later_deferred(self):
        """A handler's Deferred is replied to when it fires, once."""
        later = defer.Deferred()
        self.assertEqual(self.call("x.y", lambda *a: later), [])
        later.callback({"done": "1"})
        self.assertEqual(self.replies(), [("m1", {"samp.status": SAMP_STATUS_OK, "samp.result": {"done": "1"}})])

    def test_coroutine(self):
        async def handler(key, sender, msg_id, mtype, params, extra):
            return {"who": sender}

        [(_, response)] = self.call("x.y", handler)
        self.assertEqual(response["samp.result"], {"who": "c2"})

    def test_not_a_map(self):
        [(_, response)] = self.call("x.y", lambda *a: ["list"])
        self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        self.assertIn("returned list", response["samp.error"]["samp.errortxt"])

    def test_non_samp_result(self):
        """A result breaking SAMP's rules still gets a (samp.error) reply."""
        [(_, response)] = self.call("x.y", lambda *a: {"n": 1})
        self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        self.assertIn("samp.result['n']", response["samp.error"]["samp.errortxt"])

    def test_non_ascii_error_text(self):
        def broken(*args):
            raise ValueError("caf\xe9")

        [(_, response)] = self.call("x.y", broken)
        self.assertEqual(response["samp.error"]["samp.errortxt"], "caf?")
        self.flushLoggedErrors(ValueError)

    def test_msg_id_seen_again_is_answered(self):
        """
        JSAMP's hub makes a msg-id of the sender and its msg-tag only, so
        two calls reusing a tag arrive with the same msg-id: each is
        handled and answered.
        """
        calls = []
        self.call("x.y", lambda *a: calls.append(a) or {})
        self.client.receive_call(KEY, "c2", "m1", {"samp.mtype": "x.y", "samp.params": {}})
        self.assertEqual(len(calls), 2)
        self.assertEqual([msg_id for msg_id, _ in self.replies()], ["m1", "m1"])

    def test_no_handler(self):
        self.register()
        self.client.receive_call(KEY, "c2", "m9", {"samp.mtype": "un.bound", "samp.params": {}})
        [(msg_id, response)] = self.replies()
        self.assertEqual(msg_id, "m9")
        self.assertIn("no handler for un.bound", response["samp.error"]["samp.errortxt"])

    def test_bad_message(self):
        self.register()
        self.client.receive_call(KEY, "c2", "m9", {"samp.params": {}})
        [(_, response)] = self.replies()
        self.assertEqual(response["samp.status"], SAMP_STATUS_ERROR)
        self.assertEqual(self.client.receive_notification(KEY, "c2", {"samp.mtype": "a", "samp.params": "x"}), "")

    def test_ping_answered(self):
        self.register()
        self.client.receive_call(KEY, "c2", "m2", {"samp.mtype": "samp.app.ping", "samp.params": {}})
        self.assertEqual(self.replies(), [("m2", {"samp.status": SAMP_STATUS_OK, "samp.result": {}})])

    def test_message_binding(self):
        """bind_receive_message gets msg_id None for notifications."""
        self.client.bind_receive_message("a.b", lambda *a: self.seen.append(a) or {})
        self.register()
        message = {"samp.mtype": "a.b", "samp.params": {}}
        self.client.receive_notification(KEY, "c2", message)
        self.client.receive_call(KEY, "c2", "m3", message)
        self.assertEqual([s[2] for s in self.seen], [None, "m3"])
        self.assertEqual(len(self.replies()), 1)

    def test_response_binding(self):
        self.client.bind_receive_response("tag1", self.record)
        self.register()
        self.client.receive_response(KEY, "c2", "tag1", {"samp.status": "samp.ok"})
        self.assertEqual(self.seen, [(KEY, "c2", "tag1", {"samp.status": "samp.ok"})])
        self.client.unbind_receive_response("tag1")
        self.client.receive_response(KEY, "c2", "tag1", {})
        self.assertEqual(len(self.seen), 1)

    def test_notification_handler_failure_logged(self):
        def broken(*args):
            raise RuntimeError("oops")

        self.client.bind_receive_notification("a.b", broken)
        self.register()
        self.assertEqual(self.client.receive_notification(KEY, "c2", {"samp.mtype": "a.b", "samp.params": {}}), "")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class HubEventTests(ClientTestsMixin, SynchronousTestCase):
    """
    Shutdown and disconnection from the hub end the registration.
    """

    def test_shutdown(self):
        self.register()
        ended = self.client.when_unregistered()
        wait = self.client.call_and_wait("c2", {"samp.mtype": "a.b", "samp.params": {}}, "0")
        self.client.receive_notification(KEY, "hub", {"samp.mtype": "samp.hub.event.shutdown", "samp.params": {}})
        self.assertEqual(self.successResultOf(ended), "the hub shut down")
        self.assertFalse(self.client.is_registered)
        failure = self.failureResultOf(wait, SAMPClientError)
        self.assertIn("the hub shut down", str(failure.value))

    def test_disconnect_reason(self):
        self.register()
        ended = self.client.when_unregistered()
        message = {"samp.mtype": "samp.hub.disconnect", "samp.params": {"reason": "idle"}}
        self.client.receive_notification(KEY, "hub", message)
        self.assertIn("idle", self.successResultOf(ended))

    def test_only_from_hub(self):
        """Another client cannot fake a hub shutdown."""
        self.register()
        self.client.receive_notification(KEY, "c2", {"samp.mtype": "samp.hub.event.shutdown", "samp.params": {}})
        self.assertTrue(self.client.is_registered)

    def test_errback_cancelling_another_wait(self):
        """A wait's errback may cancel another wait while the registration
        ends; every wait fails once and the end is still announced."""
        self.register()
        ended = self.client.when_unregistered()
        first = self.client.call_and_wait("c2", {"samp.mtype": "a.b", "samp.params": {}}, "0")
        second = self.client.call_and_wait("c3", {"samp.mtype": "a.b", "samp.params": {}}, "5")
        first.addErrback(lambda failure: second.cancel())
        self.client.receive_notification(KEY, "hub", {"samp.mtype": "samp.hub.event.shutdown", "samp.params": {}})
        self.assertEqual(self.successResultOf(ended), "the hub shut down")
        self.assertIsNone(self.successResultOf(first))
        self.failureResultOf(second, defer.CancelledError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_unregister(self):
        self.register()
        ended = self.client.when_unregistered()
        self.successResultOf(self.client.unregister())
        self.assertEqual(self.wire.named("samp.hub.unregister"), [(KEY,)])
        self.assertEqual(self.successResultOf(ended), "the client unregistered")
        self.successResultOf(self.client.unregister())


class CallAndWaitTests(ClientTestsMixin, SynchronousTestCase):
    """
    call_and_wait is done client-side with a reactor timer.
    """

    message = {"samp.mtype": "calc.add", "samp.params": {}}

    def tag(self):
        return self.wire.named("samp.hub.call")[-1][2]

    def test_response(self):
        self.register()
        d = self.client.call_and_wait("c2", self.message, "5")
        [(key, recipient, tag, message)] = self.wire.named("samp.hub.call")
        self.assertEqual((key, recipient, message), (KEY, "c2", self.message))
        self.assertNoResult(d)
        response = {"samp.status": SAMP_STATUS_OK, "samp.result": {}}
        self.client.receive_response(KEY, "c2", tag, response)
        self.assertEqual(self.successResultOf(d), response)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_timeout_exact(self):
        self.register()
        d = self.client.call_and_wait("c2", self.message, "5")
        self.reactor.advance(4.999)
        self.assertNoResult(d)
        self.reactor.advance(0.001)
        failure = self.failureResultOf(d, SAMPCallTimeout)
        self.assertIsInstance(failure.value, SAMPProxyError)
        self.assertEqual(failure.value.timeout, 5.0)
        # A late response is ignored.
        self.client.receive_response(KEY, "c2", self.tag(), {"samp.status": SAMP_STATUS_OK})

    def test_zero_waits_forever(self):
        self.register()
        d = self.client.call_and_wait("c2", self.message, "0")
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.reactor.advance(86400)
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.client._pending, {})

    def test_wrong_responder_ignored(self):
        self.register()
        d = self.client.call_and_wait("c2", self.message, 10)
        self.client.receive_response(KEY, "c3", self.tag(), {"samp.status": SAMP_STATUS_OK})
        self.assertNoResult(d)
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_call_refused(self):
        """A fault from the hub's call fails the wait at once."""
        self.register()
        self.wire.answers["samp.hub.call"] = SAMPProxyError(1, "not subscribed")
        d = self.client.call_and_wait("c2", self.message, "5")
        self.assertIn("not subscribed", str(self.failureResultOf(d, SAMPProxyError).value))
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_bad_input_raises_before_sending(self):
        self.register()
        self.assertRaises(TypeError, self.client.call_and_wait, "c2", {"samp.mtype": "a", "samp.params": {"n": 1}}, "5")
        self.assertRaises(ValueError, self.client.call_and_wait, "c2", self.message, "soon")
        self.assertEqual(self.wire.calls, [])
        self.assertEqual(self.client._pending, {})

    def test_not_registered(self):
        self.failureResultOf(self.client.call_and_wait("c2", self.message, "5"), SAMPClientError)

    def test_stop_fails_pending(self):
        self.register()
        d = self.client.call_and_wait("c2", self.message, "5")
        self.successResultOf(self.client.stop())
        self.failureResultOf(d, SAMPClientError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_not_callable_uses_hub(self):
        """A client that cannot receive uses the hub's callAndWait."""
        client = SAMPClient(self.hub, reactor=self.reactor, callable=False)
        self.successResultOf(client.register())
        self.wire.answers["samp.hub.callAndWait"] = {"samp.status": SAMP_STATUS_OK, "samp.result": {}}
        result = self.successResultOf(client.call_and_wait("c2", self.message, 7))
        self.assertEqual(result["samp.status"], SAMP_STATUS_OK)
        self.assertEqual(self.wire.named("samp.hub.callAndWait")[0][1:], ("c2", self.message, "7"))


class IntegratedClientTests(SynchronousTestCase):
    """
    The integrated client's own logic (connection is tested over loopback).
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.client = SAMPIntegratedClient(name="me", reactor=self.reactor)

    def test_not_connected(self):
        """Hub methods fail with SAMPClientError before connect()."""
        self.assertFalse(self.client.is_connected)
        for d in [
            self.client.notify("c2", {"samp.mtype": "a", "samp.params": {}}),
            self.client.get_registered_clients(),
            self.client.enotify_all("a.b"),
            self.client.ecall_and_wait("c2", "a.b", "5"),
        ]:
            self.assertIn("connect()", str(self.failureResultOf(d, SAMPClientError).value))

    def connect(self):
        self.client.hub._proxy = RecordingXMLRPC()
        self.client.hub.lockfile = dict(PARAMS)
        self.successResultOf(self.client.client.start())
        self.successResultOf(self.client.client.register())
        wire = self.client.hub._proxy
        del wire.calls[:]
        return wire

    def test_easy_messages(self):
        wire = self.connect()
        self.client.enotify("c2", "samp.msg.progress", txt="half", extra_kws={"my.extra": "x"})
        self.assertEqual(
            wire.named("samp.hub.notify")[0][2],
            {"samp.mtype": "samp.msg.progress", "samp.params": {"txt": "half"}, "my.extra": "x"},
        )
        self.client.ecall_all("tag", "a.b", x="1")
        self.assertEqual(wire.named("samp.hub.callAll")[0][1:], ("tag", {"samp.mtype": "a.b", "samp.params": {"x": "1"}}))
        self.client.ereply("m1", SAMP_STATUS_ERROR, error={"samp.errortxt": "no"})
        self.assertEqual(
            wire.named("samp.hub.reply")[0][1:],
            ("m1", {"samp.status": SAMP_STATUS_ERROR, "samp.error": {"samp.errortxt": "no"}}),
        )

    def test_bad_values_raise(self):
        """Non-SAMP values raise before anything is sent."""
        wire = self.connect()
        for call in [
            lambda: self.client.enotify("c2", "a.b", n=1),
            lambda: self.client.enotify("c2", "a.b", x=None),
            lambda: self.client.enotify("c2", "a.b", x=2.5),
            lambda: self.client.enotify("c2", "a.b", x=True),
            lambda: self.client.enotify("c2", "a.b", x=b"bytes"),
            lambda: self.client.notify(7, {"samp.mtype": "a", "samp.params": {}}),
            lambda: self.client.notify_all({"samp.params": {}}),
            lambda: self.client.declare_metadata({"samp.name": "caf\xe9"}),
            lambda: self.client.declare_subscriptions({"a.b": {"n": 1}}),
            lambda: self.client.reply("m1", {"samp.result": {}}),
            lambda: self.client.get_metadata(None),
        ]:
            self.assertRaises((TypeError, ValueError), call)
        self.assertEqual(wire.calls, [])

    def test_extra_kws_must_be_a_map(self):
        """
        extra_kws that is not a map raises TypeError, rather than being
        read as key-value pairs (["xy"] as {"x": "y"}) or failing obscurely.
        """
        wire = self.connect()
        for extra in (["xy"], [("my.extra", "x")], "xy"):
            exc = self.assertRaises(TypeError, self.client.enotify, "c2", "a.b", extra_kws=extra)
            self.assertIn("extra_kws must be a map", str(exc))
        self.assertEqual(wire.calls, [])

    def test_bad_value_message_names_path(self):
        self.connect()
        exc = self.assertRaises(TypeError, self.client.enotify, "c2", "a.b", n=1)
        self.assertIn("samp.params['n']", str(exc))

    def test_find_clients_via_hub(self):
        wire = self.connect()
        wire.answers["samp.hub.getRegisteredClients"] = ["hub", "c2"]
        wire.answers["samp.hub.getMetadata"] = {"samp.name": "TOPCAT"}
        self.assertEqual(self.successResultOf(self.client.find_client("topcat")), "c2")
        wire.answers["samp.hub.getMetadata"] = {}
        self.failureResultOf(self.client.find_client("topcat"), SAMPClientError)


class IntegratedConnectTests(SynchronousTestCase):
    """
    connect() and disconnect() racing each other or failing half-way, with
    our hub on a memory network.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.hub = start_memory_hub(self.network, os.path.abspath(self.mktemp()))
        self.observer = self.result(SAMPIntegratedClient(name="observer", reactor=self.network).connect(hub=self.hub))

    def result(self, d):
        self.network.run()
        return self.successResultOf(d)

    def registered_names(self):
        ids = self.result(self.observer.get_registered_clients())
        return sorted(self.result(self.observer.get_metadata(i)).get("samp.name") for i in ids)

    def test_second_connect_refused_while_connecting(self):
        """A connect() while one is in progress fails without harming it."""
        client = SAMPIntegratedClient(name="me", reactor=self.network)
        first = client.connect(hub=self.hub)
        second = client.connect(hub=self.hub)
        self.assertIn("in progress", str(self.failureResultOf(second, SAMPClientError).value))
        self.assertIs(self.result(first), client)
        self.assertTrue(client.is_connected)
        self.assertEqual(self.registered_names(), ["Hub", "me"])

    def test_failure_after_registering_undone(self):
        """
        A connect() failing after the registration unregisters, so the hub
        keeps no dead client and the same object can connect again.
        """
        client = SAMPIntegratedClient(name="me", reactor=self.network, track_clients=True)
        populate = client.clients.populate
        client.clients.populate = lambda: defer.fail(SAMPHubError("tracking failed"))
        d = client.connect(hub=self.hub)
        self.network.run()
        self.failureResultOf(d, SAMPHubError)
        self.assertFalse(client.client.is_registered)
        self.assertEqual(self.registered_names(), ["Hub"])
        client.clients.populate = populate
        self.assertIs(self.result(client.connect(hub=self.hub)), client)
        self.assertEqual(self.registered_names(), ["Hub", "me"])

    def test_hub_not_running_refused(self):
        """
        connect(hub=...) with a hub that is not running fails with
        SAMPHubError, rather than connecting to whatever hub discovery finds
        (here the running one, which SAMP_HUB names).
        """
        self.patch(os, "environ", dict(os.environ, SAMP_HUB=f"std-lockurl:file://{self.hub.lockfile}"))
        unstarted = SAMPHubServer(reactor=self.network, lockfile=os.path.abspath(self.mktemp()))
        client = SAMPIntegratedClient(name="me", reactor=self.network)
        d = client.connect(hub=unstarted)
        self.network.run()
        self.assertIn("not running", str(self.failureResultOf(d, SAMPHubError).value))
        self.assertFalse(client.is_connected)
        self.assertEqual(self.registered_names(), ["Hub"])

    def test_disconnect_while_connecting(self):
        """disconnect() during connect() waits for it, then unregisters."""
        client = SAMPIntegratedClient(name="me", reactor=self.network)
        connected = client.connect(hub=self.hub)
        disconnected = client.disconnect()
        self.network.run()
        self.assertIs(self.successResultOf(connected), client)
        self.successResultOf(disconnected)
        self.assertFalse(client.is_connected)
        self.assertIsNone(client.client.callback_url)
        self.assertEqual(self.registered_names(), ["Hub"])


class IntegratedLifecycleTests(SynchronousTestCase):
    """
    The integrated client unregistering at reactor shutdown and checking
    that the hub is alive, with our hub on a memory network.
    """

    def setUp(self):
        self.network = MemoryNetwork()
        self.hub = start_memory_hub(self.network, os.path.abspath(self.mktemp()))
        self.observer = self.connect("observer", hub_check_interval=None)

    def connect(self, name, **kwargs):
        client = SAMPIntegratedClient(name=name, reactor=self.network, **kwargs)
        d = client.connect(hub=self.hub)
        self.network.run()
        self.successResultOf(d)
        client.public_id_at_start = client.get_public_id()
        return client

    def registered(self, client):
        """Whether the hub has *client* (by its id at connection) now."""
        return client.public_id_at_start in self.hub.registered_clients

    def shut_down(self):
        """Fire the reactor's shutdown event; return its Deferred."""
        d = self.network.fireSystemEvent("shutdown")
        self.network.run()
        return d

    def count_unregisters(self, client):
        calls = []
        unregister = client.hub.unregister

        def counting(key):
            calls.append(key)
            return unregister(key)

        client.hub.unregister = counting
        return calls

    def test_unregisters_at_shutdown(self):
        """A connected client unregisters when the reactor shuts down."""
        client = self.connect("me")
        lost = client.when_disconnected()
        self.successResultOf(self.shut_down())
        self.assertEqual(self.successResultOf(lost), "the client disconnected")
        self.assertFalse(client.is_connected)
        self.assertIsNone(client.client.callback_url)
        self.assertFalse(self.registered(client))
        self.assertFalse(self.registered(self.observer))

    def test_shutdown_wait_bounded(self):
        """A hub that never takes the unregistration holds shutdown up for
        shutdown_timeout seconds at most."""
        client = self.connect("me", shutdown_timeout=2.0)
        client.hub.unregister = lambda key: defer.Deferred()
        done = self.shut_down()
        self.network.advance(1.9)
        self.assertNoResult(done)
        self.network.advance(0.1)
        self.successResultOf(done)
        self.assertFalse(client.is_connected)
        self.assertIsNone(client.client.callback_url)
        self.flushLoggedErrors()

    def test_no_second_unregister(self):
        """A disconnect() of the program's own running as the reactor shuts
        down asks the hub once; shutdown and a second disconnect() wait
        for the same clean-up."""
        client = self.connect("me")
        calls = self.count_unregisters(client)
        answer = defer.Deferred()
        unregister = client.hub.unregister
        client.hub.unregister = lambda key: answer.addCallback(lambda _: unregister(key))
        own = client.disconnect()
        shutdown = self.shut_down()
        again = client.disconnect()
        self.assertNoResult(shutdown)
        self.assertNoResult(again)
        answer.callback(None)
        self.network.run()
        self.successResultOf(own)
        self.successResultOf(again)
        self.successResultOf(shutdown)
        self.assertEqual(len(calls), 1)
        self.assertFalse(self.registered(client))

    def test_nothing_at_shutdown_once_disconnected(self):
        """After disconnect() (or a lost hub) the shutdown trigger is gone."""
        client = self.connect("me")
        calls = self.count_unregisters(client)
        d = client.disconnect()
        self.network.run()
        self.successResultOf(d)
        self.assertEqual(len(calls), 1)
        other = self.connect("other")
        other.drop_connection("the hub went away")
        self.network.run()
        triggers = self.network.triggers.get("before", {}).get("shutdown", [])
        self.assertEqual(len(triggers), 1)  # the observer's
        self.successResultOf(self.shut_down())
        self.assertEqual(len(calls), 1)

    def test_forgotten_client_noticed(self):
        """
        A hub that no longer knows the client (here it was unregistered
        behind its back, as a restarted hub would have forgotten it) is
        noticed at the next check: when_disconnected fires with the reason
        and a pending call_and_wait fails at once.
        """
        client = self.connect("me", hub_check_interval=3.0)
        silent = self.connect("silent", hub_check_interval=None)
        silent.bind_receive_call("test.never", lambda *args: None)
        self.network.run()
        pending = client.ecall_and_wait(silent.get_public_id(), "test.never", "0")
        lost = client.when_disconnected()
        self.network.run()
        self.observer.hub.unregister(client.get_private_key())
        self.network.advance(2.9)
        self.assertNoResult(lost)
        self.network.advance(0.1)
        self.assertRegex(self.successResultOf(lost), "^the hub no longer knows this client: ")
        self.failureResultOf(pending, SAMPClientError)
        self.assertFalse(client.is_connected)
        self.assertIsNone(client.client.callback_url)

    def test_check_off(self):
        """hub_check_interval=None asks the hub nothing while idle."""
        client = self.connect("me", hub_check_interval=None)
        calls = []
        client.hub.get_metadata = lambda *args: calls.append(args) or defer.Deferred()
        self.network.advance(60.0)
        self.assertEqual(calls, [])

    def test_bad_check_settings(self):
        """Intervals and timeouts must be positive numbers."""
        for kwargs in [
            {"hub_check_interval": 0},
            {"hub_check_timeout": None},
            {"shutdown_timeout": -1},
            {"hub_check_interval": "5"},
        ]:
            self.assertRaises(ValueError, SAMPIntegratedClient, reactor=self.network, **kwargs)

    def test_drop_connection_when_not_connected(self):
        """drop_connection() on a client that is not connected does
        nothing."""
        client = SAMPIntegratedClient(reactor=self.network)
        client.drop_connection("why not")
        self.assertFalse(client.is_connected)
