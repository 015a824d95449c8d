"""
A real astropy SAMP client for interoperability tests, driven from the
reactor.

astropy's client blocks: each of its calls is an XML-RPC request made with
blocking sockets, and it receives messages on a server thread of its own.
:class:`AstropyPeer` therefore runs every call in the reactor's thread pool
and returns a Deferred, and hands each message it receives to the reactor
thread (``reactor.callFromThread``) where tests can await it with
:meth:`AstropyPeer.next_message`.
"""

import itertools
import warnings
from dataclasses import dataclass, field

from astropy.utils.exceptions import AstropyDeprecationWarning
from twisted.internet import defer, threads
from twisted.logger import Logger

with warnings.catch_warnings():
    # astropy.samp is deprecated in favour of pyvo.samp since astropy 8.
    warnings.simplefilter("ignore", AstropyDeprecationWarning)
    from astropy.samp import SAMPIntegratedClient, conf as samp_conf

# Otherwise every connect tries to reach google.com to choose a host name
# (slow or hanging without a network); the peer always uses 127.0.0.1.
samp_conf.use_internet = False

__all__ = [
    "AstropyPeer",
    "NO_REPLY",
    "PeerConnectError",
    "PeerTimeout",
    "Received",
    "ResponseReceived",
    "error",
    "ok",
]

NO_REPLY = object()
"""A ``call_reply`` meaning: leave calls unanswered."""


def ok(result=None):
    """
    A ``samp.ok`` response map.

    :param dict result: the ``samp.result`` map (empty by default).
    :rtype: dict
    """
    return {"samp.status": "samp.ok", "samp.result": dict(result or {})}


def error(text, **details):
    """
    A ``samp.error`` response map.

    :param str text: the ``samp.errortxt``.
    :param details: more ``samp.error`` entries, with ``_`` for ``.`` in
        names (``samp_code="42"`` gives ``samp.code``).
    :rtype: dict
    """
    error_map = {"samp.errortxt": text}
    error_map.update({key.replace("_", "."): value for key, value in details.items()})
    return {"samp.status": "samp.error", "samp.error": error_map}


class PeerTimeout(Exception):
    """Nothing arrived at the peer in time."""


class PeerConnectError(Exception):
    """The peer could not register with the hub."""


@dataclass(frozen=True)
class Received:
    """
    A message the peer received.

    :ivar kind: ``"notification"`` or ``"call"``.
    :ivar sender_id: the sender's public id.
    :ivar msg_id: the hub's message id for a call; ``None`` for a
        notification.
    :ivar mtype: the MType.
    :ivar params: the ``samp.params`` map.
    :ivar extra: the other keys of the message map.
    """

    kind: str
    sender_id: str
    msg_id: str | None
    mtype: str
    params: dict
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ResponseReceived:
    """
    A response to one of the peer's asynchronous calls.

    :ivar responder_id: who answered.
    :ivar msg_tag: the tag the call was made with.
    :ivar response: the response map.
    """

    responder_id: str
    msg_tag: str
    response: dict


class AstropyPeer:
    """
    An astropy SAMP client registered with a hub, for tests.

    Make one with :meth:`connect`; end with :meth:`disconnect`.  Everything
    returning a Deferred runs astropy's blocking code in a thread.

    :ivar client: the :class:`astropy.samp.SAMPIntegratedClient`; use it only
        through :meth:`run`.
    :ivar public_id: the peer's public id at the hub.
    :ivar call_reply: how calls are answered: a response map (see :func:`ok`
        and :func:`error`), a plain map (sent as the ``samp.result`` of
        ``samp.ok``), :data:`NO_REPLY`, or a function of the
        :class:`Received` call returning one of those (run in the reactor
        thread).
    """

    _log = Logger()
    _tags = itertools.count(1)

    def __init__(self, reactor, client, call_reply):
        self._reactor = reactor
        self.client = client
        self.call_reply = call_reply
        self.public_id = None
        self._messages = defer.DeferredQueue()
        self._responses = defer.DeferredQueue()
        self._pending = set()

    @classmethod
    def connect(
        cls,
        reactor,
        hub_params,
        name="astropy-peer",
        subscribe=(),
        call_reply=None,
        metadata=None,
    ):
        """
        Register a new astropy client with the hub described by *hub_params*.

        :param reactor: the running reactor.
        :param dict hub_params: the hub's lockfile entries (for example
            ``HubProcess.params``); astropy never reads a lockfile itself.
        :param str name: the ``samp.name`` to declare.
        :param subscribe: MTypes (patterns allowed) to receive, both as
            notifications and as calls.
        :param call_reply: how to answer calls (see :attr:`call_reply`);
            ``samp.ok`` with an empty result by default.
        :param dict metadata: more metadata to declare.
        :return: a Deferred firing with the connected :class:`AstropyPeer`,
            or failing with :class:`PeerConnectError`.
        :rtype: Deferred
        """
        client = _make_client(name, metadata)
        peer = cls(reactor, client, ok() if call_reply is None else call_reply)
        d = peer.run(peer._register, dict(hub_params), tuple(subscribe))
        d.addCallback(lambda public_id: setattr(peer, "public_id", public_id))

        def failed(failure):
            # astropy's own errors do not say which hub ("Connection refused").
            url = hub_params.get("samp.hub.xmlrpc.url")
            raise PeerConnectError(
                f"astropy peer {name!r} could not register with the hub at {url}: "
                f"{failure.getErrorMessage()}"
            )

        return d.addCallbacks(lambda _: peer, failed)

    def _register(self, hub_params, subscribe):
        """In a thread: register, then subscribe (astropy only makes its
        receiving client on connect, so bindings must come after)."""
        try:
            self.client.connect(hub_params=hub_params)
        except Exception:
            # Registration failed after astropy started its server thread.
            if self.client.client is not None and self.client.client.is_running:
                self.client.client.stop()
            raise
        for mtype in subscribe:
            self.client.bind_receive_notification(mtype, self._got_notification, declare=False)
            self.client.bind_receive_call(mtype, self._got_call, declare=False)
        if subscribe:
            self.client.client.declare_subscriptions()
        return self.client.get_public_id()

    # -- running astropy code -------------------------------------------

    def run(self, function, *args, **kwargs):
        """
        Run *function* in the reactor's thread pool.

        :return: a Deferred firing with its result.
        :rtype: Deferred
        """
        d = threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), function, *args, **kwargs
        )
        # Kept so that disconnect waits for calls still running.
        self._pending.add(d)

        def done(result):
            self._pending.discard(d)
            return result

        return d.addBoth(done)

    def _client_call(self, method, *args, **kwargs):
        return self.run(getattr(self.client, method), *args, **kwargs)

    # -- receiving ------------------------------------------------------

    def _got_notification(self, private_key, sender_id, mtype, params, extra):
        """In astropy's server thread."""
        record = Received("notification", sender_id, None, mtype, params, dict(extra))
        self._reactor.callFromThread(self._deliver, record)

    def _got_call(self, private_key, sender_id, msg_id, mtype, params, extra):
        """In astropy's server thread."""
        record = Received("call", sender_id, msg_id, mtype, params, dict(extra))
        self._reactor.callFromThread(self._deliver, record)

    def _got_response(self, private_key, responder_id, msg_tag, response):
        """In astropy's server thread."""
        record = ResponseReceived(responder_id, msg_tag, response)
        self._reactor.callFromThread(self._responses.put, record)

    def _deliver(self, record):
        self._messages.put(record)
        if record.kind == "call":
            self._answer(record)

    def _answer(self, record):
        # Replying from the reactor side, not inside astropy's server thread,
        # keeps that thread free to receive while the reply is sent.
        response = self.call_reply
        if callable(response):
            response = response(record)
        if response is NO_REPLY:
            return
        if "samp.status" not in response:
            response = ok(response)
        d = self._client_call("reply", record.msg_id, response)
        d.addErrback(
            lambda f: self._log.failure("reply to {msg_id} failed", f, msg_id=record.msg_id)
        )

    def next_message(self, timeout=10.0):
        """
        The next message received (notification or call), in arrival order.

        :param float timeout: seconds to wait.
        :return: a Deferred firing with a :class:`Received`, or failing with
            :class:`PeerTimeout`.
        :rtype: Deferred
        """
        return self._next(self._messages, timeout, "message")

    def next_response(self, timeout=10.0):
        """
        The next response to one of the peer's :meth:`call` requests.

        :param float timeout: seconds to wait.
        :return: a Deferred firing with a :class:`ResponseReceived`, or
            failing with :class:`PeerTimeout`.
        :rtype: Deferred
        """
        return self._next(self._responses, timeout, "response")

    def _next(self, queue, timeout, what):
        def timed_out(result, timeout):
            raise PeerTimeout(
                f"{self.public_id or 'astropy peer'} received no {what} within {timeout:g} s"
            )

        return queue.get().addTimeout(timeout, self._reactor, onTimeoutCancel=timed_out)

    # -- sending --------------------------------------------------------

    def notify(self, recipient_id, mtype, params=None, **extra):
        """
        Send a notification to one client.

        :return: a Deferred firing when the hub has accepted it.
        :rtype: Deferred
        """
        return self._client_call("notify", recipient_id, _message(mtype, params, extra))

    def notify_all(self, mtype, params=None, **extra):
        """
        Send a notification to every subscribed client.

        :return: a Deferred firing with the list of recipient ids.
        :rtype: Deferred
        """
        return self._client_call("notify_all", _message(mtype, params, extra))

    def call(self, recipient_id, mtype, params=None, msg_tag=None, **extra):
        """
        Call a client asynchronously; the response comes through
        :meth:`next_response`.

        :param str msg_tag: the tag (a new unique one by default).
        :return: a Deferred firing with ``(msg_tag, msg_id)``.
        :rtype: Deferred
        """
        msg_tag = msg_tag or f"peer-tag-{next(self._tags)}"
        self.client.bind_receive_response(msg_tag, self._got_response)
        d = self._client_call("call", recipient_id, msg_tag, _message(mtype, params, extra))
        return d.addCallback(lambda msg_id: (msg_tag, msg_id))

    def call_and_wait(self, recipient_id, mtype, params=None, timeout=10, **extra):
        """
        Call a client synchronously through the hub's ``callAndWait``.

        :param timeout: seconds the hub waits (``0`` for no limit).
        :return: a Deferred firing with the response map.
        :rtype: Deferred
        """
        message = _message(mtype, params, extra)
        return self._client_call("call_and_wait", recipient_id, message, str(int(timeout)))

    # -- hub queries ----------------------------------------------------

    def get_registered_clients(self):
        """
        :return: a Deferred firing with the other clients' public ids.
        :rtype: Deferred
        """
        return self._client_call("get_registered_clients")

    def get_subscribed_clients(self, mtype):
        """
        :return: a Deferred firing with ``{client id: annotations}``.
        :rtype: Deferred
        """
        return self._client_call("get_subscribed_clients", mtype)

    def get_metadata(self, client_id):
        """
        :return: a Deferred firing with the client's metadata map.
        :rtype: Deferred
        """
        return self._client_call("get_metadata", client_id)

    def get_subscriptions(self, client_id):
        """
        :return: a Deferred firing with the client's subscriptions map.
        :rtype: Deferred
        """
        return self._client_call("get_subscriptions", client_id)

    def ping(self):
        """
        :return: a Deferred firing when the hub has answered ``ping``.
        :rtype: Deferred
        """
        return self._client_call("ping")

    def disconnect(self):
        """
        Unregister from the hub and stop the client's server thread, after
        the calls still running have finished.

        A hub that has already gone is no error here: the client is stopped
        all the same.

        :return: a Deferred firing with ``True`` if the hub took the
            unregistration, ``False`` if it could not be reached.
        :rtype: Deferred
        """
        pending = defer.DeferredList(list(self._pending), consumeErrors=True)
        return pending.addCallback(lambda _: self.run(self._disconnect))

    def _disconnect(self):
        """In a thread."""
        if self.client.client is None or not self.client.is_connected:
            return False
        try:
            # It stops the client's server thread even when unregister fails.
            self.client.disconnect()
        except Exception as exc:
            self._log.info(
                "{public_id} could not unregister: {error}", public_id=self.public_id, error=exc
            )
            return False
        return True


def _message(mtype, params, extra):
    message = {"samp.mtype": mtype, "samp.params": dict(params or {})}
    message.update(extra)
    return message


def _make_client(name, metadata):
    return SAMPIntegratedClient(name=name, metadata=dict(metadata or {}), addr="127.0.0.1")
