# -*- test-case-name: tests.test_client -*-
"""
The callable side of a SAMP client: an XML-RPC server that receives
notifications, calls and responses from the hub and dispatches them to
handlers bound by MType or msg-tag.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import xmlrpc.client
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Optional, Protocol, TypeVar, Union

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python import log as legacy_log
from twisted.python.failure import Failure

from ._encoding import SAMPValue, check_samp_value, error_response, ok_response, timeout_seconds
from ._errors import SAMPCallTimeout, SAMPClientError
from ._hub_proxy import SAMPHubProxy
from ._listening import listening_url, server_endpoint
from ._mtype import best_match, check_mtype_pattern
from ._reactor import default_reactor
from ._limits import raise_fd_limit
from ._xmlrpc import XMLRPCResource, make_site

if TYPE_CHECKING:
    from ._tls import TLSOptions

# Twisted's legacy log context, which sets the "[system]" of its own lines;
# not annotated in Twisted.
_call_with_log_context: Callable[..., Any] = legacy_log.callWithContext

#: What a call handler may return: the result map (or whole response),
#: ``None`` when it replies itself, or an awaitable (a Deferred, a coroutine)
#: of either.
CallResult = Union[dict[str, Any], None, Awaitable[Optional[dict[str, Any]]]]


class NotificationHandler(Protocol):
    """
    A notification handler, ``f(private_key, sender_id, mtype, params,
    extra)``; what it returns is waited for if awaitable, then ignored.
    """

    def __call__(
        self, private_key: str, sender_id: str, mtype: str, params: dict[str, Any], extra: dict[str, Any], /
    ) -> object: ...


class CallHandler(Protocol):
    """
    A call handler, ``f(private_key, sender_id, msg_id, mtype, params,
    extra)``, returning the reply (see :data:`CallResult`).
    """

    def __call__(
        self,
        private_key: str,
        sender_id: str,
        msg_id: str,
        mtype: str,
        params: dict[str, Any],
        extra: dict[str, Any],
        /,
    ) -> CallResult: ...


class MessageHandler(Protocol):
    """
    A handler for both notifications and calls: a call handler whose
    *msg_id* is ``None`` for notifications.
    """

    def __call__(
        self,
        private_key: str,
        sender_id: str,
        msg_id: str | None,
        mtype: str,
        params: dict[str, Any],
        extra: dict[str, Any],
        /,
    ) -> CallResult: ...


class ResponseHandler(Protocol):
    """
    A response handler, ``f(private_key, responder_id, msg_tag, response)``;
    what it returns is waited for if awaitable, then ignored.
    """

    def __call__(self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any], /) -> object: ...


_Handler = TypeVar("_Handler", NotificationHandler, CallHandler)


def _split_message(message: object) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if not isinstance(message, dict) or not isinstance(message.get("samp.mtype"), str):
        raise ValueError("message has no samp.mtype")
    params = message.get("samp.params", {})
    if not isinstance(params, dict):
        raise ValueError("samp.params is not a map")
    extra = {k: v for k, v in message.items() if k not in ("samp.mtype", "samp.params")}
    return message["samp.mtype"], params, extra


def _tls_arguments(
    key_file: str | None, cert_file: str | None, cert_reqs: int | None, ca_certs: str | None, ssl_version: object
) -> bool:
    """Whether any TLS argument differs from the defaults, which build no
    TLS settings worth keeping (``cert_reqs`` defaults to ``CERT_NONE``)."""
    return cert_reqs not in (None, 0) or any(v is not None for v in (key_file, cert_file, ca_certs, ssl_version))


class _Binding(Generic[_Handler]):
    __slots__ = ("function", "metadata")

    function: _Handler
    metadata: dict[str, SAMPValue] | None

    def __init__(self, function: _Handler, metadata: dict[str, SAMPValue] | None) -> None:
        self.function = function
        self.metadata = metadata


class _PendingWait:
    """One client-side ``call_and_wait`` awaiting its response."""

    __slots__ = ("recipient_id", "deferred", "timer")

    def __init__(self, recipient_id: str, deferred: defer.Deferred[dict[str, Any]]) -> None:
        self.recipient_id = recipient_id
        self.deferred = deferred
        self.timer: IDelayedCall | None = None


class SAMPClient:
    """
    A callable SAMP client: registration, the callback XML-RPC server and
    the tables binding MTypes and msg-tags to handlers.

    Handlers have the seeds' signatures.  A notification handler is called
    as ``f(private_key, sender_id, mtype, params, extra)``; a call handler as
    ``f(private_key, sender_id, msg_id, mtype, params, extra)``.  Either may
    return a Deferred or be a coroutine function.  What a call handler
    returns decides the reply: a map is sent as ``samp.result`` of a
    ``samp.ok`` response (or as the whole response when it has a
    ``samp.status`` key); ``None`` means the handler replies itself with
    :meth:`SAMPHubProxy.reply`; an exception or failure is answered with a
    ``samp.error`` response.

    :param hub: a :class:`SAMPHubProxy`.
    :param str name: the ``samp.name`` metadata.
    :param str description: the ``samp.description.text`` metadata.
    :param dict metadata: further metadata.
    :param str addr: the address to listen on (``127.0.0.1`` by default).
    :param int port: the port to listen on (0: any free port).
    :param bool callable: whether the client receives messages at all.
    :param reactor: the reactor; the global one when ``None``.
    :param bool https: serve the callbacks over TLS, with the certificate
        of *cert_file*/*key_file* (or *tls*).
    :param str key_file: private key of the callback server.
    :param str cert_file: certificate of the callback server.
    :param cert_reqs: whether the hub must present a client certificate:
        :data:`ssl.CERT_NONE` (the default), :data:`ssl.CERT_OPTIONAL` or
        :data:`ssl.CERT_REQUIRED`, checked against *ca_certs*.
    :param str ca_certs: CA bundle for the hub's client certificates.
    :param ssl_version: the minimum TLS version.
    :param endpoint: an ``IStreamServerEndpoint`` to listen on instead of
        *addr* and *port* (a TLS one when *https* is true).
    :param TLSOptions tls: the TLS settings in one object, instead of the
        separate arguments.
    :raises ValueError: bad TLS settings, or *https* without a certificate.
    """

    _log = Logger()

    def __init__(
        self,
        hub: SAMPHubProxy,
        name: str | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        addr: str | None = None,
        port: int = 0,
        https: bool = False,
        key_file: str | None = None,
        cert_file: str | None = None,
        cert_reqs: int | None = 0,
        ca_certs: str | None = None,
        ssl_version: object = None,
        callable: bool = True,
        reactor: IReactorTime | None = None,
        endpoint: IStreamServerEndpoint | None = None,
        tls: TLSOptions | None = None,
    ) -> None:
        if tls is None and _tls_arguments(key_file, cert_file, cert_reqs, ca_certs, ssl_version):
            from ._tls import TLSOptions  # only clients given TLS settings load TLS

            tls = TLSOptions.from_arguments(key_file, cert_file, cert_reqs, ca_certs, ssl_version)
        if https and (tls is None or not tls.has_certificate):
            raise ValueError("https callbacks need cert_file (and key_file unless the key is in it)")
        self._tls = tls if https else None
        self.hub = hub
        self._reactor = default_reactor(reactor)
        self._metadata = self._initial_metadata(name, description, metadata)
        self._callable = callable
        self._addr = addr or "127.0.0.1"
        self._port_number = port
        self._endpoint = endpoint
        self._port: IListeningPort | None = None
        self._url: str | None = None
        self._notification_bindings: dict[str, _Binding[NotificationHandler]] = {}
        self._call_bindings: dict[str, _Binding[CallHandler]] = {}
        self._response_bindings: dict[str, ResponseHandler] = {}
        self._system: dict[str, Callable[[str, dict[str, Any]], None]] = {}
        self._extra_subscriptions: dict[str, SAMPValue] = {}
        self._pending: dict[str, _PendingWait] = {}
        self._tags: Iterator[str] = (f"sampy_twisted:{secrets.token_hex(4)}:{n}" for n in itertools.count())
        self._private_key: str | None = None
        self._public_id: str | None = None
        self._hub_id: str | None = None
        self._registration_observers: list[defer.Deferred[str]] = []
        self._bind_system("samp.hub.event.shutdown", self._hub_shut_down)
        self._bind_system("samp.hub.disconnect", self._hub_disconnected)

    @staticmethod
    def _initial_metadata(
        name: str | None, description: str | None, metadata: dict[str, Any] | None
    ) -> dict[str, SAMPValue]:
        result = dict(metadata or {})
        if name is not None:
            result["samp.name"] = name
        if description is not None:
            result["samp.description.text"] = description
        checked: dict[str, SAMPValue] = check_samp_value(result, "metadata")
        return checked

    # -- state --------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Whether the callback server is listening (always ``False`` for a
        client that is not callable)."""
        return self._port is not None

    @property
    def is_registered(self) -> bool:
        """Whether the client is registered with a hub."""
        return self._private_key is not None

    @property
    def callback_url(self) -> str | None:
        """The URL of the callback server, or ``None`` when not listening."""
        return self._url

    def get_private_key(self) -> str | None:
        """
        The private key from registration (``samp.private-key``).

        :rtype: str or None
        """
        return self._private_key

    def get_public_id(self) -> str | None:
        """
        The public id from registration (``samp.self-id``).

        :rtype: str or None
        """
        return self._public_id

    def get_hub_id(self) -> str | None:
        """
        The hub's own client id (``samp.hub-id``).

        :rtype: str or None
        """
        return self._hub_id

    # -- listening ------------------------------------------------------------

    def start(self) -> defer.Deferred[None]:
        """
        Start the callback server (nothing for a client that is not callable).

        :return: a Deferred firing when listening.
        """
        if not self._callable or self._port is not None:
            return defer.succeed(None)
        raise_fd_limit()  # idle connections must not exhaust the default 1024
        resource = XMLRPCResource(
            {
                "samp.client.receiveNotification": self.receive_notification,
                "samp.client.receiveCall": self.receive_call,
                "samp.client.receiveResponse": self.receive_response,
            }
        )
        endpoint = self._endpoint or self._default_endpoint()
        site = make_site(resource, reactor=self._reactor)
        site.label = "SAMP callback server"
        # Twisted logs "... starting on PORT" in the context it listens in,
        # often that of the hub's HTTP response ("[HTTP11ClientProtocol,client]").
        d: defer.Deferred[IListeningPort] = _call_with_log_context(
            {"system": "sampy_twisted"}, endpoint.listen, site
        )
        return d.addCallback(self._listening)

    def _default_endpoint(self) -> IStreamServerEndpoint:
        tls_options = None if self._tls is None else self._tls.server_options()
        # A deep accept queue: hubs open a connection per delivery, in bursts.
        return server_endpoint(self._reactor, self._addr, self._port_number, tls_options, backlog=1024)

    def _listening(self, port: IListeningPort) -> None:
        self._port = port
        scheme = "https" if self._tls is not None else "http"
        self._url = listening_url(port.getHost(), scheme)
        self._log.debug("Callback server listening at {url}", url=self._url)

    def stop(self) -> defer.Deferred[None]:
        """
        Stop the callback server.  Waits still pending fail.

        :return: a Deferred firing when the port is closed.
        """
        self._fail_pending(SAMPClientError("the client stopped"))
        port, self._port, self._url = self._port, None, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening).addCallback(lambda _: None)

    # -- registration -------------------------------------------------------

    def register(self) -> defer.Deferred[None]:
        """
        Register with the hub: register, declare metadata, set the callback
        URL and declare subscriptions, in the order JSAMP requires.

        :return: a Deferred firing when all of it is done.
        """
        if self._private_key is not None:
            return defer.fail(SAMPClientError("the client is already registered"))
        lockfile = self.hub.lockfile
        if not self.hub.is_connected or lockfile is None:
            return defer.fail(SAMPClientError("cannot register: the hub proxy is not connected"))
        if self._callable and self._port is None:
            return defer.fail(SAMPClientError("cannot register: call start() first"))
        d = self.hub.register(lockfile["samp.secret"])
        registered = d.addCallback(self._registered)
        return registered.addCallback(lambda _: self._declare_after_registering())

    def _registered(self, info: dict[str, Any]) -> None:
        key, self_id = info.get("samp.private-key"), info.get("samp.self-id")
        if not isinstance(key, str) or not key or not isinstance(self_id, str) or not self_id:
            raise SAMPClientError("the hub's registration answer has no private key or id")
        self._private_key, self._public_id = key, self_id
        self._hub_id = info.get("samp.hub-id")
        self._log.info("Registered with the hub as {client_id}", client_id=self_id)

    def _declare_after_registering(self) -> defer.Deferred[None]:
        key = self._private_key
        assert key is not None  # _registered has just set it
        d: defer.Deferred[object] = (
            self.hub.declare_metadata(key, self._metadata) if self._metadata else defer.succeed(None)
        )

        def set_callback(_: object) -> defer.Deferred[object]:
            key, url = self._private_key, self._url
            if key is None:
                raise SAMPClientError("the registration ended while it was being declared")
            if url is None:
                raise SAMPClientError("the callback server stopped while registering")
            return self.hub.set_xmlrpc_callback(key, url)

        if self._callable:
            d.addCallback(set_callback)
            d.addCallback(lambda _: self.declare_subscriptions())

        def undo(failure: Failure) -> defer.Deferred[None] | Failure:
            # Half-registered clients confuse other applications.
            key, self._private_key = self._private_key, None
            if key is None:
                return failure  # the registration has ended already
            d = self.hub.unregister(key)
            d.addErrback(lambda _: None)
            return d.addCallback(lambda _: failure)

        return d.addCallbacks(lambda _: None, undo)

    def unregister(self) -> defer.Deferred[object]:
        """
        Unregister from the hub.  Waits still pending fail.

        :return: a Deferred firing when the hub has answered; the client
            counts as unregistered afterwards even if the hub could not be
            reached.
        """
        key = self._private_key
        if key is None:
            return defer.succeed(None)
        d = self.hub.unregister(key)

        def ended(result: object) -> object:
            self._lose_registration("the client unregistered")
            return result

        return d.addBoth(ended)

    def when_unregistered(self) -> defer.Deferred[str]:
        """
        A Deferred firing with a reason text when the current registration
        ends, whether by :meth:`unregister`, a hub shutdown
        (``samp.hub.event.shutdown``) or a hub disconnection
        (``samp.hub.disconnect``).
        """
        d: defer.Deferred[str] = defer.Deferred()
        self._registration_observers.append(d)
        return d

    def _lose_registration(self, reason: str) -> None:
        if self._private_key is None:
            return
        self._private_key = None
        self._fail_pending(SAMPClientError(f"no response: {reason}"))
        observers, self._registration_observers = self._registration_observers, []
        for d in observers:
            d.callback(reason)

    # -- metadata and subscriptions ----------------------------------------

    def declare_metadata(self, metadata: dict[str, Any] | None = None) -> defer.Deferred[object]:
        """
        Declare the client's metadata.  As in astropy, *metadata* is merged
        into the client's (a key given again replaces its value), so
        ``samp.name`` given at construction stays.

        :param dict metadata: entries to add; ``None`` declares the current
            metadata again.
        :return: a Deferred firing when the hub has it.
        """
        if metadata is not None:
            self._metadata = dict(self._metadata, **check_samp_value(dict(metadata), "metadata"))
        if self._private_key is None:
            return defer.succeed(None)
        return self.hub.declare_metadata(self._private_key, self._metadata)

    def get_subscriptions_map(self) -> dict[str, SAMPValue]:
        """
        The subscriptions this client declares: its bindings, its own
        administrative MTypes and any extra ones given to
        :meth:`declare_subscriptions`.

        :rtype: dict
        """
        subscriptions: dict[str, SAMPValue] = {"samp.app.ping": {}}
        subscriptions.update((mtype, {}) for mtype in self._system)
        tables: tuple[dict[str, _Binding[Any]], ...] = (self._notification_bindings, self._call_bindings)
        for table in tables:
            for mtype, binding in table.items():
                subscriptions[mtype] = dict(binding.metadata or {})
        subscriptions.update(self._extra_subscriptions)
        return subscriptions

    def declare_subscriptions(self, subscriptions: dict[str, Any] | None = None) -> defer.Deferred[object]:
        """
        Declare the MTypes this client receives: those of its bindings, plus
        *subscriptions*.

        :param dict subscriptions: further MType → annotations entries.
        :return: a Deferred firing when the hub has them.
        """
        if subscriptions is not None:
            for mtype in subscriptions:
                check_mtype_pattern(mtype)
            self._extra_subscriptions = check_samp_value(dict(subscriptions), "subscriptions")
        if self._private_key is None or not self._callable:
            return defer.succeed(None)
        return self.hub.declare_subscriptions(self._private_key, self.get_subscriptions_map())

    # -- bindings -------------------------------------------------------------

    def _bind(
        self,
        table: dict[str, _Binding[_Handler]],
        mtype: str,
        function: _Handler,
        declare: bool,
        metadata: dict[str, Any] | None,
    ) -> defer.Deferred[object]:
        if not self._callable:
            raise SAMPClientError("this client is not callable: nothing can be delivered to its handlers")
        check_mtype_pattern(mtype)
        if not callable(function):
            raise TypeError(f"handler for {mtype} is not callable: {function!r}")
        checked = None if metadata is None else check_samp_value(dict(metadata), "metadata")
        table[mtype] = _Binding(function, checked)
        return self.declare_subscriptions() if declare else defer.succeed(None)

    def _unbind(self, table: dict[str, _Binding[Any]], mtype: str, declare: bool) -> defer.Deferred[object]:
        binding = table.pop(mtype, None)
        if binding is None:
            raise KeyError(f"no handler is bound to {mtype!r}")
        return self.declare_subscriptions() if declare else defer.succeed(None)

    def bind_receive_notification(
        self, mtype: str, function: NotificationHandler, declare: bool = True, metadata: dict[str, Any] | None = None
    ) -> defer.Deferred[object]:
        """
        Bind an MType (or pattern such as ``table.*``) of notifications to
        ``function(private_key, sender_id, mtype, params, extra)``.

        :param bool declare: subscribe to the MType at the hub.
        :param dict metadata: annotations of the subscription.
        :return: a Deferred firing when the subscriptions are declared.
        """
        return self._bind(self._notification_bindings, mtype, function, declare, metadata)

    def bind_receive_call(
        self, mtype: str, function: CallHandler, declare: bool = True, metadata: dict[str, Any] | None = None
    ) -> defer.Deferred[object]:
        """
        Bind an MType (or pattern) of calls to
        ``function(private_key, sender_id, msg_id, mtype, params, extra)``.

        :param bool declare: subscribe to the MType at the hub.
        :param dict metadata: annotations of the subscription.
        :return: a Deferred firing when the subscriptions are declared.
        """
        return self._bind(self._call_bindings, mtype, function, declare, metadata)

    def bind_receive_message(
        self, mtype: str, function: MessageHandler, declare: bool = True, metadata: dict[str, Any] | None = None
    ) -> defer.Deferred[object]:
        """
        Bind an MType for both notifications and calls to
        ``function(private_key, sender_id, msg_id, mtype, params, extra)``;
        *msg_id* is ``None`` for notifications.

        :return: a Deferred firing when the subscriptions are declared.
        """
        def as_notification(
            private_key: str, sender_id: str, mtype: str, params: dict[str, Any], extra: dict[str, Any]
        ) -> CallResult:
            return function(private_key, sender_id, None, mtype, params, extra)

        self._bind(self._notification_bindings, mtype, as_notification, False, metadata)
        return self._bind(self._call_bindings, mtype, function, declare, metadata)

    def bind_receive_response(self, msg_tag: str, function: ResponseHandler) -> None:
        """
        Bind a msg-tag to ``function(private_key, responder_id, msg_tag,
        response)``, called for each response to calls sent with that tag.
        """
        if not callable(function):
            raise TypeError(f"handler for {msg_tag} is not callable: {function!r}")
        self._response_bindings[msg_tag] = function

    def unbind_receive_notification(self, mtype: str, declare: bool = True) -> defer.Deferred[object]:
        """
        Remove a notification binding and, with *declare*, the subscription.

        :raises KeyError: nothing is bound to *mtype*.
        """
        return self._unbind(self._notification_bindings, mtype, declare)

    def unbind_receive_call(self, mtype: str, declare: bool = True) -> defer.Deferred[object]:
        """
        Remove a call binding and, with *declare*, the subscription.

        :raises KeyError: nothing is bound to *mtype*.
        """
        return self._unbind(self._call_bindings, mtype, declare)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """
        Remove a msg-tag binding.

        :raises KeyError: nothing is bound to *msg_tag*.
        """
        del self._response_bindings[msg_tag]

    def _bind_system(self, mtype: str, function: Callable[[str, dict[str, Any]], None]) -> None:
        """Bind ``function(sender_id, params)`` for a notification MType the
        library handles itself (hub events)."""
        self._system[mtype] = function

    # -- receiving ------------------------------------------------------------

    def _check_key(self, private_key: object) -> None:
        expected = self._private_key
        if expected is None:
            raise xmlrpc.client.Fault(1, "this client is not registered")
        if not isinstance(private_key, str) or not hmac.compare_digest(
            private_key.encode("utf-8"), expected.encode("utf-8")
        ):
            raise xmlrpc.client.Fault(1, "wrong private key")

    def receive_notification(self, private_key: str, sender_id: str, message: dict[str, Any]) -> str:
        """
        ``samp.client.receiveNotification``: dispatch a notification.

        :raises xmlrpc.client.Fault: the private key is wrong.
        :return: ``""``.
        """
        self._check_key(private_key)
        try:
            mtype, params, extra = _split_message(message)
        except ValueError as exc:
            self._log.warn("Ignoring a bad notification from {sender}: {why}", sender=sender_id, why=str(exc))
            return ""
        system = self._system.get(mtype)
        if system is not None:
            with self._log.failuresHandled("Handling {mtype} failed", mtype=mtype):
                system(sender_id, params)
        binding = self._lookup(self._notification_bindings, mtype)
        if binding is not None:
            d = defer.maybeDeferred(binding.function, private_key, sender_id, mtype, params, extra)
            d.addErrback(self._handler_failed, mtype)
        elif system is None and mtype != "samp.app.ping":
            self._log.warn("No handler for notification {mtype} from {sender}", mtype=mtype, sender=sender_id)
        return ""

    def receive_call(self, private_key: str, sender_id: str, msg_id: str, message: dict[str, Any]) -> str:
        """
        ``samp.client.receiveCall``: dispatch a call; the reply goes later
        through the hub.

        :raises xmlrpc.client.Fault: the private key is wrong.
        :return: ``""``.
        """
        self._check_key(private_key)
        try:
            mtype, params, extra = _split_message(message)
        except ValueError as exc:
            self._send_reply(msg_id, "?", error_response(f"bad message: {exc}"))
            return ""
        binding = self._lookup(self._call_bindings, mtype)
        if binding is None:
            if mtype == "samp.app.ping":
                self._send_reply(msg_id, mtype, ok_response({}))
            else:
                self._send_reply(msg_id, mtype, error_response(f"no handler for {mtype}"))
            return ""
        d = defer.maybeDeferred(binding.function, private_key, sender_id, msg_id, mtype, params, extra)
        d.addCallbacks(self._call_returned, self._call_failed, callbackArgs=(msg_id, mtype), errbackArgs=(msg_id, mtype))
        return ""

    def receive_response(
        self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any]
    ) -> str:
        """
        ``samp.client.receiveResponse``: deliver a response to the waiting
        ``call_and_wait`` or to the handler bound to its msg-tag.

        :raises xmlrpc.client.Fault: the private key is wrong.
        :return: ``""``.
        """
        self._check_key(private_key)
        pending = self._pending.get(msg_tag)
        if pending is not None and pending.recipient_id == responder_id:
            del self._pending[msg_tag]
            if pending.timer is not None and pending.timer.active():
                pending.timer.cancel()
            pending.deferred.callback(response)
            return ""
        function = self._response_bindings.get(msg_tag)
        if function is None:
            self._log.debug("Unexpected response with tag {tag} from {responder}", tag=msg_tag, responder=responder_id)
            return ""
        d = defer.maybeDeferred(function, private_key, responder_id, msg_tag, response)
        d.addErrback(self._handler_failed, msg_tag)
        return ""

    @staticmethod
    def _lookup(table: dict[str, _Binding[_Handler]], mtype: str) -> _Binding[_Handler] | None:
        if mtype in table:
            return table[mtype]
        pattern = best_match(table, mtype)
        return None if pattern is None else table[pattern]

    def _call_returned(self, result: object, msg_id: str, mtype: str) -> None:
        if result is None:
            return  # the handler replies itself
        if not isinstance(result, dict):
            response = error_response(
                f"the handler for {mtype} returned {type(result).__name__}, not a map"
            )
        elif "samp.status" in result:
            response = result
        else:
            response = ok_response(result)
        self._send_reply(msg_id, mtype, response)

    def _call_failed(self, failure: Failure, msg_id: str, mtype: str) -> None:
        self._log.failure("Handler for call {mtype} failed", failure, mtype=mtype)
        self._send_reply(msg_id, mtype, error_response(failure.getErrorMessage(), failure.value))

    def _send_reply(self, msg_id: str, mtype: str, response: dict[str, Any]) -> None:
        key = self._private_key
        if key is None:
            self._log.warn("Not replying to {mtype}: no longer registered", mtype=mtype)
            return
        try:
            d = self.hub.reply(key, msg_id, response)
        except (TypeError, ValueError) as exc:
            # A handler's result that breaks SAMP's rules still gets an answer.
            d = self.hub.reply(key, msg_id, error_response(f"the handler for {mtype} returned a bad result: {exc}"))
        d.addErrback(self._reply_failed, mtype)

    def _reply_failed(self, failure: Failure, mtype: str) -> None:
        self._log.error("Could not send the reply to {mtype}: {why}", mtype=mtype, why=failure.getErrorMessage())

    def _handler_failed(self, failure: Failure, what: str) -> None:
        self._log.failure("Handler for {what} failed", failure, what=what)

    # -- administrative messages ----------------------------------------------

    def _from_hub(self, sender_id: str, mtype: str) -> bool:
        if sender_id != self._hub_id:
            self._log.warn("Ignoring {mtype} from {sender}, which is not the hub", mtype=mtype, sender=sender_id)
            return False
        return True

    def _hub_shut_down(self, sender_id: str, params: dict[str, Any]) -> None:
        if self._from_hub(sender_id, "samp.hub.event.shutdown"):
            self._log.info("The hub is shutting down")
            self._lose_registration("the hub shut down")

    def _hub_disconnected(self, sender_id: str, params: dict[str, Any]) -> None:
        if self._from_hub(sender_id, "samp.hub.disconnect"):
            reason = params.get("reason") or "no reason given"
            self._log.info("The hub disconnected this client: {reason}", reason=reason)
            self._lose_registration(f"the hub disconnected this client ({reason})")

    # -- client-side call and wait ----------------------------------------------

    def call_and_wait(
        self, recipient_id: str, message: dict[str, Any], timeout: str | float
    ) -> defer.Deferred[dict[str, Any]]:
        """
        Send a call and wait for its response, without holding a request
        open: the response arrives through ``receiveResponse``.  A client
        that is not callable uses the hub's ``callAndWait`` instead.

        :param str recipient_id: the recipient's public id.
        :param dict message: the message map.
        :param timeout: seconds, as a SAMP int string or a number; ``"0"``
            waits without limit.
        :return: a Deferred firing with the response map, or failing with
            :class:`SAMPCallTimeout` when the time runs out, or
            :class:`SAMPClientError` when the registration ends first.
        """
        seconds = timeout_seconds(timeout)
        key = self._private_key
        if key is None:
            return defer.fail(SAMPClientError("not registered with a hub: call connect() first"))
        if not self._callable:
            return self.hub.call_and_wait(key, recipient_id, message, timeout)
        tag = next(self._tags)
        sent = self.hub.call(key, recipient_id, tag, message)
        def cancel(_: defer.Deferred[dict[str, Any]]) -> None:
            self._forget(tag)

        pending = _PendingWait(recipient_id, defer.Deferred(cancel))
        self._pending[tag] = pending
        if seconds is not None:
            pending.timer = self._reactor.callLater(seconds, self._timed_out, tag, seconds)
        sent.addErrback(self._send_failed, tag)
        return pending.deferred

    def _forget(self, tag: str) -> _PendingWait | None:
        pending = self._pending.pop(tag, None)
        if pending is not None and pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        return pending

    def _timed_out(self, tag: str, seconds: float) -> None:
        pending = self._pending.pop(tag, None)
        if pending is not None:
            pending.deferred.errback(SAMPCallTimeout(seconds, pending.recipient_id))

    def _send_failed(self, failure: Failure, tag: str) -> None:
        pending = self._forget(tag)
        if pending is not None:
            pending.deferred.errback(failure)

    def _fail_pending(self, exc: Exception) -> None:
        # Take them all first: an errback may cancel another wait.
        waits, self._pending = self._pending, {}
        for pending in waits.values():
            if pending.timer is not None and pending.timer.active():
                pending.timer.cancel()
        for pending in waits.values():
            if not pending.deferred.called:
                pending.deferred.errback(exc)
