# -*- test-case-name: tests.test_integrated -*-
"""
The integrated client: astropy's ``SAMPIntegratedClient`` API, with every
method that talks to the hub returning a Deferred.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Literal, Optional, ParamSpec, TypeVar, Union, cast

from twisted.internet import defer
from twisted.internet.interfaces import IReactorCore, IReactorTime, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._client import CallHandler, MessageHandler, NotificationHandler, ResponseHandler, SAMPClient
from ._discovery import get_hub_params
from ._encoding import message_map
from ._errors import SAMPClientError, SAMPHubError
from ._hub_finder import find_or_start_hub, stop_started_hub
from ._encoding import SAMPValue
from ._hub_proxy import RunningHub, SAMPHubProxy
from ._liveness import HubLivenessCheck
from ._reactor import default_reactor
from ._tracker import ClientTracker

if TYPE_CHECKING:
    from ._hub import SAMPHubServer
    from ._tls import TLSOptions

_P = ParamSpec("_P")
_T = TypeVar("_T")
_R = TypeVar("_R")
# A keyword argument of the easy methods (enotify and the others): a message
# parameter, or extra_kws, a map of further message keys.  The items are
# checked against SAMP's rules when the message is built; a number, a bool or
# None is refused there, and already here.
_EasyParam = Union[str, Sequence[Any], Mapping[str, Any]]
# The hub to connect to: a running hub object, or its lockfile entries.
_HubAndParams = tuple[Optional[RunningHub], Optional[Mapping[str, str]]]
_Seconds = TypeVar("_Seconds", float, Optional[float])

HUB_CHECK_INTERVAL = 5.0
"""Default seconds between two checks that the hub is alive."""

HUB_CHECK_TIMEOUT = 5.0
"""Default seconds the hub may take to answer a liveness check."""

SHUTDOWN_TIMEOUT = 3.0
"""Default seconds reactor shutdown waits for the hub to take the
unregistration."""


def _easy_message(mtype: str, params: dict[str, _EasyParam]) -> dict[str, SAMPValue]:
    params = dict(params)
    extra = params.pop("extra_kws", None)
    if extra is not None and not isinstance(extra, Mapping):
        # dict() would take a list of pairs, even ["xy"] as {"x": "y"}.
        raise TypeError(
            f"extra_kws must be a map of further message keys, not {type(extra).__name__} {extra!r}"
        )
    # Checked once, by the hub proxy, before it is encoded.
    return message_map(mtype, params, extra)


def _check_seconds(name: str, value: _Seconds, optional: bool = False) -> _Seconds:
    if value is None and optional:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return value


class SAMPIntegratedClient:
    """
    A SAMP client: hub proxy and callable client in one object, with the
    names, arguments and defaults of astropy's ``SAMPIntegratedClient``.

    Every method that talks to the hub returns a
    :class:`~twisted.internet.defer.Deferred`.  Arguments that break SAMP's
    data rules raise :class:`TypeError` or :class:`ValueError` at once,
    before anything is sent; calling such a method while not connected gives
    a Deferred failing with :class:`SAMPClientError`.

    :param str name: the ``samp.name`` metadata.
    :param str description: the ``samp.description.text`` metadata.
    :param dict metadata: further metadata.
    :param str addr: the callback server's address (``127.0.0.1``).
    :param int port: the callback server's port (0: any free port).
    :param bool callable: whether the client receives messages.
    :param reactor: the reactor; the global one when ``None``.
    :param bool https: serve callbacks over TLS (see :class:`SAMPClient` for
        *https*, *key_file*, *cert_file*, *cert_reqs*, *ca_certs* and
        *ssl_version*, which configure the callback server).
    :param bool track_clients: keep :attr:`clients`, a live map of the other
        registered clients.
    :param TLSOptions tls: the callback server's TLS settings in one object.
    :param endpoint: an ``IStreamServerEndpoint`` for the callback server
        instead of *addr* and *port*.
    :param float hub_check_interval: while connected, check every this many
        seconds that the hub is alive and still knows this client (see
        :attr:`hub_check_interval`); ``None`` turns the check off.
    :param float hub_check_timeout: seconds the hub may take to answer a
        check.
    :param float shutdown_timeout: seconds the reactor's shutdown waits for
        the hub to take the unregistration.

    :ivar float hub_check_interval: A hub killed without a word, or
        restarted at the same address, sends no shutdown event, so while
        connected the client asks the hub for its own metadata every
        *hub_check_interval* seconds (5 by default).  A hub whose process is
        gone refuses the connection at once, so it is noticed within
        *hub_check_interval* seconds; a hub that stops answering, within
        *hub_check_interval* + *hub_check_timeout*.  Then the connection
        ends as if the hub had shut down: pending :meth:`call_and_wait`
        calls fail with :class:`SAMPClientError` and
        :meth:`when_disconnected` fires with the reason.  Changes take
        effect at the next :meth:`connect`.
    :ivar float hub_check_timeout: seconds the hub may take to answer.
    :ivar float shutdown_timeout: While connected, the client unregisters
        when its reactor shuts down (Ctrl-C, SIGTERM, ``reactor.stop()``):
        shutdown waits at most this many seconds for that, so a dead hub
        cannot hold it up.
    """

    _log = Logger()

    def __init__(
        self,
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
        track_clients: bool = False,
        tls: TLSOptions | None = None,
        endpoint: IStreamServerEndpoint | None = None,
        hub_check_interval: float | None = HUB_CHECK_INTERVAL,
        hub_check_timeout: float = HUB_CHECK_TIMEOUT,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
    ) -> None:
        self.hub_check_interval = _check_seconds("hub_check_interval", hub_check_interval, optional=True)
        self.hub_check_timeout = _check_seconds("hub_check_timeout", hub_check_timeout)
        self.shutdown_timeout = _check_seconds("shutdown_timeout", shutdown_timeout)
        reactor = cast(IReactorTime, default_reactor(reactor))
        self._reactor = reactor
        self.hub = SAMPHubProxy(reactor=reactor)
        self.client = SAMPClient(
            self.hub,
            name=name,
            description=description,
            metadata=metadata,
            addr=addr,
            port=port,
            https=https,
            key_file=key_file,
            cert_file=cert_file,
            cert_reqs=cert_reqs,
            ca_certs=ca_certs,
            ssl_version=ssl_version,
            callable=callable,
            reactor=reactor,
            tls=tls,
            endpoint=endpoint,
        )
        self.clients: ClientTracker | None = ClientTracker(self.client) if track_clients and callable else None
        self._lost: list[defer.Deferred[str]] = []
        self._closing = False
        self._connecting = False
        self._connect_waiters: list[defer.Deferred[None]] = []
        # A list while disconnect() runs.
        self._disconnect_waiters: list[defer.Deferred[None]] | None = None
        self._liveness: HubLivenessCheck | None = None
        self._shutdown_trigger: object = None
        #: The hub this client started with ``connect(hub="auto")``, if any.
        self.embedded_hub: SAMPHubServer | None = None

    # -- connection -----------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """``True`` when registered with a running hub."""
        return self.hub.is_connected and self.client.is_registered

    def connect(
        self,
        hub: RunningHub | Literal["auto"] | None = None,
        hub_params: Mapping[str, str] | None = None,
        key_file: str | None = None,
        cert_file: str | None = None,
        cert_reqs: int | None = None,
        ca_certs: str | None = None,
        ssl_version: object = None,
        pool_size: int = 20,
        tls: TLSOptions | None = None,
    ) -> defer.Deferred[SAMPIntegratedClient]:
        """
        Find the hub, start the callback server and register: metadata,
        callback and subscriptions are declared before the Deferred fires.

        The TLS arguments apply to an ``https`` hub, whose certificate is
        verified (against *ca_certs*, or the system's trust) unless
        *cert_reqs* is :data:`ssl.CERT_NONE`; *cert_file*/*key_file* give
        a client certificate.  (astropy's default ``cert_reqs=0`` meant no
        verification; here verification is the default.)

        :param hub: a running hub object with a ``params`` dict (such as
            :class:`SAMPHubServer`) to connect to instead of discovery; or
            ``"auto"``: use the running hub, and when none answers start
            our own hub in this process (as TOPCAT does), which
            :attr:`embedded_hub` then holds and :meth:`disconnect` stops.
        :param dict hub_params: the hub's lockfile entries, instead of
            discovery.
        :param int pool_size: at most this many concurrent hub requests.
        :param TLSOptions tls: the TLS settings for the hub in one object.
        :return: a Deferred firing with this client, or failing with
            :class:`SAMPHubError` (no hub, hub unreachable) or
            :class:`SAMPProxyError` (the hub refused).
        """
        if self._connecting:
            return defer.fail(SAMPClientError("connect() is already in progress"))
        if self.is_connected:
            return defer.fail(SAMPClientError("already connected; disconnect() first"))
        self._connecting = True
        located: defer.Deferred[_HubAndParams]
        if hub == "auto":
            located = defer.ensureDeferred(self._running_or_embedded_hub())
        else:
            located = defer.succeed((hub, hub_params))
        d = located.addCallback(self._connect_to_hub, key_file, cert_file, cert_reqs, ca_certs,
                                ssl_version, pool_size, tls)
        registered = d.addCallback(lambda _: self.client.start()).addCallback(lambda _: self.client.register())
        clients = self.clients
        if clients is not None:
            registered.addCallback(lambda _: clients.populate())
        connected = registered.addCallback(self._connected)
        connected.addErrback(self._connect_failed)
        return connected.addBoth(self._connect_ended)

    def _connect_ended(self, result: _R) -> _R:
        self._connecting = False
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            waiter.callback(None)
        return result

    def _connect_to_hub(
        self,
        hub_and_params: _HubAndParams,
        key_file: str | None,
        cert_file: str | None,
        cert_reqs: int | None,
        ca_certs: str | None,
        ssl_version: object,
        pool_size: int,
        tls: TLSOptions | None,
    ) -> defer.Deferred[SAMPHubProxy]:
        hub, hub_params = hub_and_params
        return self.hub.connect(
            hub=hub,
            hub_params=hub_params,
            key_file=key_file,
            cert_file=cert_file,
            cert_reqs=cert_reqs,
            ca_certs=ca_certs,
            ssl_version=ssl_version,
            pool_size=pool_size,
            tls=tls,
        )

    async def _running_or_embedded_hub(self) -> _HubAndParams:
        def locate() -> defer.Deferred[tuple[str | None, dict[str, str]]]:
            return get_hub_params(self._reactor).addCallback(lambda params: (None, params))

        def start_hub() -> defer.Deferred[SAMPHubServer]:
            from ._hub import SAMPHubServer  # the hub is only loaded when needed

            started: defer.Deferred[SAMPHubServer] = SAMPHubServer(reactor=self._reactor).start()
            return started

        _, params, self.embedded_hub = await find_or_start_hub(self._reactor, locate, start_hub)
        return None, params

    def _connected(self, _: object) -> SAMPIntegratedClient:
        if not self.client.is_registered:
            raise SAMPHubError("the hub ended the registration while connecting")
        self.client.when_unregistered().addCallback(self._registration_ended)
        self._watch()
        return self

    def _watch(self) -> None:
        """While connected: check the hub, and unregister at shutdown."""
        if self.hub_check_interval is not None:
            self._liveness = HubLivenessCheck(
                self, self.hub_check_interval, self.hub_check_timeout, self._reactor, self.drop_connection
            )
            self._liveness.start()
        self._shutdown_trigger = cast(IReactorCore, self._reactor).addSystemEventTrigger(
            "before", "shutdown", self._reactor_shutting_down
        )

    def _unwatch(self) -> None:
        self._stop_checking()
        trigger, self._shutdown_trigger = self._shutdown_trigger, None
        if trigger is not None:
            cast(IReactorCore, self._reactor).removeSystemEventTrigger(trigger)

    def _stop_checking(self) -> None:
        check, self._liveness = self._liveness, None
        if check is not None:
            check.stop()

    def _reactor_shutting_down(self) -> defer.Deferred[None] | None:
        self._shutdown_trigger = None  # fired: it must not be removed again
        if not self.is_connected:
            return None
        self._log.info("The reactor is stopping: unregistering from the SAMP hub")
        d = self.disconnect()
        d.addTimeout(self.shutdown_timeout, self._reactor)
        d.addErrback(
            lambda failure: self._log.warn(
                "Could not unregister before the reactor stopped: {why}", why=failure.getErrorMessage()
            )
        )
        return d

    def drop_connection(self, reason: str) -> None:
        """
        End the connection without telling the hub, which is known to be
        gone (a failed liveness check, a removed lockfile): as with a hub
        shutdown, pending waits fail with :class:`SAMPClientError`, the
        callback server stops and :meth:`when_disconnected` fires with
        *reason*.  Does nothing when not connected.

        :param str reason: why, for the log and :meth:`when_disconnected`.
        """
        if self.client.get_private_key() is not None:
            self.client._lose_registration(reason)

    def _connect_failed(self, failure: Failure) -> defer.Deferred[Failure]:
        # A registration made before the failure is undone, or this object
        # could never register again and the hub would keep a dead client.
        d = self.client.unregister()
        d.addErrback(lambda _: None)
        d.addCallback(lambda _: self._shut_down())
        return d.addCallback(lambda _: failure)

    def _registration_ended(self, reason: str) -> None:
        if self._closing:
            return  # disconnect() is cleaning up itself
        self._log.info("Disconnected from the hub: {reason}", reason=reason)
        self._shut_down().addCallback(lambda _: self._announce_lost(reason))

    def _announce_lost(self, reason: str) -> None:
        observers, self._lost = self._lost, []
        for d in observers:
            d.callback(reason)

    def _shut_down(self) -> defer.Deferred[None]:
        self._unwatch()
        if self.clients is not None:
            self.clients.clear()
        d = self.client.stop()
        d.addCallback(lambda _: self.hub.disconnect())
        d.addCallback(lambda _: self._stop_embedded_hub())
        return d

    def _stop_embedded_hub(self) -> defer.Deferred[Any] | None:
        hub, self.embedded_hub = self.embedded_hub, None
        if hub is None:
            return None
        return stop_started_hub(hub)

    def disconnect(self) -> defer.Deferred[None]:
        """
        Unregister, stop the callback server and close the connections to
        the hub.  Waits still pending fail with :class:`SAMPClientError`.
        An unreachable hub does not stop the rest of the clean-up.
        Calling it again while it runs waits for the same clean-up, so the
        hub is never asked twice.

        :return: a Deferred firing when everything is closed.
        """
        if self._connecting:
            # Let the connection finish (or fail) first, then undo it.
            waiter: defer.Deferred[None] = defer.Deferred()
            self._connect_waiters.append(waiter)
            return waiter.addCallback(lambda _: self.disconnect())
        if self._disconnect_waiters is not None:
            waiter = defer.Deferred()
            self._disconnect_waiters.append(waiter)
            return waiter
        self._closing = True
        self._disconnect_waiters = []
        # The shutdown trigger stays until the hub has answered, so that a
        # shutdown starting meanwhile waits for this unregistration.
        self._stop_checking()
        d = self.client.unregister()

        def unreachable(failure: Failure) -> None:
            self._log.warn("Could not unregister cleanly: {why}", why=failure.getErrorMessage())

        def done(result: _R) -> _R:
            self._closing = False
            waiters, self._disconnect_waiters = self._disconnect_waiters or [], None
            for waiter in waiters:
                waiter.callback(None)
            return result

        closed = d.addErrback(unreachable).addCallback(lambda _: self._shut_down())
        closed.addCallback(lambda _: self._announce_lost("the client disconnected"))
        return closed.addBoth(done)

    def when_disconnected(self) -> defer.Deferred[str]:
        """
        A Deferred firing with a reason text once the connection ends: by
        :meth:`disconnect`, a hub shutdown or the hub dropping this client.
        Fires after the callback server has stopped.
        """
        d: defer.Deferred[str] = defer.Deferred()
        self._lost.append(d)
        return d

    def _key(self) -> str:
        key = self.client.get_private_key()
        if key is None:
            raise SAMPClientError("not connected to a hub: call connect() first")
        return key

    def _hub_call(
        self, method: Callable[Concatenate[str, _P], defer.Deferred[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> defer.Deferred[_T]:
        try:
            key = self._key()
        except SAMPClientError:
            return defer.fail()
        return method(key, *args, **kwargs)

    # -- identity --------------------------------------------------------------

    def get_private_key(self) -> str | None:
        """
        The private key from registration (``samp.private-key``).

        :rtype: str or None
        """
        return self.client.get_private_key()

    def get_public_id(self) -> str | None:
        """
        The public id from registration (``samp.self-id``).

        :rtype: str or None
        """
        return self.client.get_public_id()

    def get_hub_id(self) -> str | None:
        """
        The hub's own client id (``samp.hub-id``).

        :rtype: str or None
        """
        return self.client.get_hub_id()

    # -- hub methods -----------------------------------------------------------

    def ping(self) -> defer.Deferred[object]:
        """Ping the hub.  :return: a Deferred firing when it answered."""
        return self.hub.ping()

    def declare_metadata(self, metadata: dict[str, Any]) -> defer.Deferred[object]:
        """
        Declare this client's metadata: *metadata* is merged into it, as in
        astropy.

        :param dict metadata: the entries to add or replace.
        """
        return self.client.declare_metadata(metadata)

    def declare_subscriptions(self, subscriptions: dict[str, Any] | None = None) -> defer.Deferred[object]:
        """
        Declare the subscriptions of the bound MTypes plus *subscriptions*.

        :param dict subscriptions: further MType → annotations entries.
        """
        return self.client.declare_subscriptions(subscriptions)

    def get_metadata(self, client_id: str) -> defer.Deferred[dict[str, Any]]:
        """
        Another client's metadata.

        :return: a Deferred firing with the metadata map.
        """
        return self._hub_call(self.hub.get_metadata, client_id)

    def get_subscriptions(self, client_id: str) -> defer.Deferred[dict[str, Any]]:
        """
        Another client's subscriptions.

        :return: a Deferred firing with the subscriptions map.
        """
        return self._hub_call(self.hub.get_subscriptions, client_id)

    def get_registered_clients(self) -> defer.Deferred[list[str]]:
        """
        The ids of all other registered clients, the hub's included.

        :return: a Deferred firing with a list of ids.
        """
        return self._hub_call(self.hub.get_registered_clients)

    def get_subscribed_clients(self, mtype: str) -> defer.Deferred[dict[str, Any]]:
        """
        The clients subscribed to *mtype*.

        :return: a Deferred firing with a map of id → annotations.
        """
        return self._hub_call(self.hub.get_subscribed_clients, mtype)

    def notify(self, recipient_id: str, message: dict[str, Any]) -> defer.Deferred[object]:
        """
        Send a notification to one client.

        :param dict message: ``{"samp.mtype": ..., "samp.params": {...}}``.
        """
        return self._hub_call(self.hub.notify, recipient_id, message)

    def notify_all(self, message: dict[str, Any]) -> defer.Deferred[list[str]]:
        """
        Send a notification to every subscribed client.

        :return: a Deferred firing with the list of recipient ids.
        """
        return self._hub_call(self.hub.notify_all, message)

    def call(self, recipient_id: str, msg_tag: str, message: dict[str, Any]) -> defer.Deferred[str]:
        """
        Send a call; the response goes to the handler bound to *msg_tag*
        with :meth:`bind_receive_response`.

        :return: a Deferred firing with the msg-id.
        """
        return self._hub_call(self.hub.call, recipient_id, msg_tag, message)

    def call_all(self, msg_tag: str, message: dict[str, Any]) -> defer.Deferred[dict[str, str]]:
        """
        Send a call to every subscribed client.

        :return: a Deferred firing with a map of recipient id → msg-id.
        """
        return self._hub_call(self.hub.call_all, msg_tag, message)

    def call_and_wait(
        self, recipient_id: str, message: dict[str, Any], timeout: str | float
    ) -> defer.Deferred[dict[str, Any]]:
        """
        Send a call and wait for the response.

        The wait happens here, not in the hub: the call goes out with
        ``samp.hub.call`` and the response is matched by its msg-tag, with a
        reactor timer for the timeout.  (A client that is not callable uses
        the hub's ``callAndWait``; :attr:`hub` reaches it too.)

        :param str recipient_id: the recipient's id.
        :param dict message: the message map.
        :param timeout: seconds, as a SAMP int string (``"10"``) or a number;
            ``"0"`` waits without limit.
        :return: a Deferred firing with the response map, or failing with
            :class:`SAMPCallTimeout` (a :class:`SAMPProxyError`) or, if the
            connection ends first, :class:`SAMPClientError`.
        """
        return self.client.call_and_wait(recipient_id, message, timeout)

    def reply(self, msg_id: str, response: dict[str, Any]) -> defer.Deferred[object]:
        """
        Reply to a call received earlier.

        :param str msg_id: the call's msg-id.
        :param dict response: the response map.
        """
        return self._hub_call(self.hub.reply, msg_id, response)

    # -- easy versions ----------------------------------------------------------

    def enotify(self, recipient_id: str, mtype: str, **params: _EasyParam) -> defer.Deferred[object]:
        """
        :meth:`notify` with the message given as an MType and keyword
        parameters; ``extra_kws={...}`` adds top-level message keys.
        """
        return self.notify(recipient_id, _easy_message(mtype, params))

    def enotify_all(self, mtype: str, **params: _EasyParam) -> defer.Deferred[list[str]]:
        """:meth:`notify_all` with the message as MType and keywords."""
        return self.notify_all(_easy_message(mtype, params))

    def ecall(self, recipient_id: str, msg_tag: str, mtype: str, **params: _EasyParam) -> defer.Deferred[str]:
        """:meth:`call` with the message as MType and keywords."""
        return self.call(recipient_id, msg_tag, _easy_message(mtype, params))

    def ecall_all(self, msg_tag: str, mtype: str, **params: _EasyParam) -> defer.Deferred[dict[str, str]]:
        """
        :meth:`call_all` with the message as MType and keywords.

        :return: a Deferred firing with the hub's map of recipient id →
            msg-id.
        """
        return self.call_all(msg_tag, _easy_message(mtype, params))

    def ecall_and_wait(
        self, recipient_id: str, mtype: str, timeout: str | float, **params: _EasyParam
    ) -> defer.Deferred[dict[str, Any]]:
        """:meth:`call_and_wait` with the message as MType and keywords."""
        return self.call_and_wait(recipient_id, _easy_message(mtype, params), timeout)

    def ereply(
        self, msg_id: str, status: str, result: dict[str, Any] | None = None, error: dict[str, Any] | None = None
    ) -> defer.Deferred[object]:
        """
        :meth:`reply` with the response given by its parts.

        :param str status: ``SAMP_STATUS_OK``, ``SAMP_STATUS_WARNING`` or
            ``SAMP_STATUS_ERROR``.
        :param dict result: the ``samp.result`` map.
        :param dict error: the ``samp.error`` map.
        """
        response: dict[str, Any] = {"samp.status": status}
        if result is not None:
            response["samp.result"] = result
        if error is not None:
            response["samp.error"] = error
        return self.reply(msg_id, response)

    # -- finding clients ---------------------------------------------------------

    def find_clients(self, name: str) -> defer.Deferred[list[str]]:
        """
        The ids of the clients whose ``samp.name`` is *name*, ignoring case.
        Uses :attr:`clients` when tracking, else asks the hub.

        :return: a Deferred firing with a sorted list of ids.
        """
        if self.clients is not None and self.is_connected:
            return defer.succeed(self.clients.find_by_name(name))
        wanted = name.casefold()

        def names(ids: list[str]) -> defer.Deferred[list[tuple[str, object]]]:
            return defer.gatherResults([self._name_of(cid) for cid in ids])

        def named(pairs: list[tuple[str, object]]) -> list[str]:
            return sorted(cid for cid, n in pairs if isinstance(n, str) and n.casefold() == wanted)

        return self.get_registered_clients().addCallback(names).addCallback(named)

    def _name_of(self, client_id: str) -> defer.Deferred[tuple[str, object]]:
        d = self.get_metadata(client_id)
        return d.addCallbacks(lambda m: (client_id, m.get("samp.name")), lambda _: (client_id, None))

    def find_client(self, name: str) -> defer.Deferred[str]:
        """
        The id of the client named *name* (ignoring case); the first by id
        when several share it.

        :return: a Deferred firing with the id, or failing with
            :class:`SAMPClientError` when no client has that name.
        """
        def first(ids: list[str]) -> str:
            if not ids:
                raise SAMPClientError(f"no registered client is named {name!r}")
            return ids[0]

        return self.find_clients(name).addCallback(first)

    # -- receiving (see SAMPClient) ---------------------------------------------

    def bind_receive_notification(
        self, mtype: str, function: NotificationHandler, declare: bool = True, metadata: dict[str, Any] | None = None
    ) -> defer.Deferred[object]:
        """
        Bind notifications of *mtype* (or a pattern such as ``table.*``) to
        ``function(private_key, sender_id, mtype, params, extra)``.

        :return: a Deferred firing when the subscriptions are declared.
        """
        return self.client.bind_receive_notification(mtype, function, declare, metadata)

    def bind_receive_call(
        self, mtype: str, function: CallHandler, declare: bool = True, metadata: dict[str, Any] | None = None
    ) -> defer.Deferred[object]:
        """
        Bind calls of *mtype* to
        ``function(private_key, sender_id, msg_id, mtype, params, extra)``.
        Its return value is the reply: a map is the ``samp.result`` of a
        ``samp.ok`` response, ``None`` means it replies itself, an exception
        becomes a ``samp.error`` response.

        :return: a Deferred firing when the subscriptions are declared.
        """
        return self.client.bind_receive_call(mtype, function, declare, metadata)

    def bind_receive_message(
        self, mtype: str, function: MessageHandler, declare: bool = True, metadata: dict[str, Any] | None = None
    ) -> defer.Deferred[object]:
        """
        Bind both notifications and calls of *mtype* to
        ``function(private_key, sender_id, msg_id, mtype, params, extra)``
        (*msg_id* is ``None`` for notifications).
        """
        return self.client.bind_receive_message(mtype, function, declare, metadata)

    def bind_receive_response(self, msg_tag: str, function: ResponseHandler) -> None:
        """
        Bind responses to calls sent with *msg_tag* to
        ``function(private_key, responder_id, msg_tag, response)``.
        """
        return self.client.bind_receive_response(msg_tag, function)

    def unbind_receive_notification(self, mtype: str, declare: bool = True) -> defer.Deferred[object]:
        """Remove a notification binding (and its subscription)."""
        return self.client.unbind_receive_notification(mtype, declare)

    def unbind_receive_call(self, mtype: str, declare: bool = True) -> defer.Deferred[object]:
        """Remove a call binding (and its subscription)."""
        return self.client.unbind_receive_call(mtype, declare)

    def unbind_receive_response(self, msg_tag: str) -> None:
        """Remove a msg-tag binding."""
        return self.client.unbind_receive_response(msg_tag)

    def receive_notification(self, private_key: str, sender_id: str, message: dict[str, Any]) -> str:
        """The ``samp.client.receiveNotification`` callback; see
        :meth:`SAMPClient.receive_notification`."""
        return self.client.receive_notification(private_key, sender_id, message)

    def receive_call(self, private_key: str, sender_id: str, msg_id: str, message: dict[str, Any]) -> str:
        """The ``samp.client.receiveCall`` callback; see
        :meth:`SAMPClient.receive_call`."""
        return self.client.receive_call(private_key, sender_id, msg_id, message)

    def receive_response(
        self, private_key: str, responder_id: str, msg_tag: str, response: dict[str, Any]
    ) -> str:
        """The ``samp.client.receiveResponse`` callback; see
        :meth:`SAMPClient.receive_response`."""
        return self.client.receive_response(private_key, responder_id, msg_tag, response)
