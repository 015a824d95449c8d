# -*- test-case-name: tests.test_hub -*-
"""
A SAMP hub (Standard Profile) as a Twisted service.

:class:`SAMPHubServer` assembles the hub and runs it: it listens (on TCP or
TLS), tracks the open connections, and starts and stops everything in
order.  The parts it assembles:

* :class:`~._hubcore.HubCore`: the clients, routing, calls and events, with
  no I/O;
* :class:`~._stdprofile.StandardProfile`: the ``samp.hub.*`` XML-RPC
  methods on that core, the secret and the lockfile;
* :class:`~._delivery.PushDelivery`: the ``samp.client.*`` callbacks to
  each client, with its queue and the delivery-failure policy.

Every sender's request is answered first; deliveries happen afterwards,
each one a Deferred with a timeout, so a slow, hanging or vanished client
never holds up the hub or anyone else.  A failed ``receiveCall`` is answered
to its sender with ``samp.error``; a client that cannot be reached
``max_delivery_failures`` times in a row is dropped (told
``samp.hub.disconnect`` if it subscribed, announced with
``samp.hub.event.unregister``); a client with
:data:`~._hubcore.MAX_UNANSWERED_CALLS` calls unanswered gets ``samp.error``
for the oldest; when a client leaves, the calls it owed a reply are answered
with ``samp.error`` and its own ``callAndWait`` calls fail.  Message ids are
random and unguessable, and one reply per call is accepted, only from its
recipient.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IAddress, IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._delivery import PushDelivery
from ._errors import SAMPHubError
from ._hubcore import HUB_ID, HubCore
from ._listening import ConnectionTracker, listening_url, server_endpoint
from ._reactor import default_reactor
from ._stdprofile import StandardProfile
from ._tls import TLSOptions, usable_as_client_certificate, verifying_copy
from ._callback_policy import DEFAULT_CALLBACK_HOSTS, CallbackHosts
from ._limits import DEFAULT_MAX_QUEUED_BYTES, raise_fd_limit
from ._webprofile import DEFAULT_WEB_PORT, WEB_SAFE_MTYPES, Consent, WebProfile
from ._monitor import HubMonitor
from ._monitor_web import MONITOR_URL_KEY, make_monitor_site
from ._xmlrpc import make_site

__all__ = ["HUB_ID", "SAMPHubServer", "start_hub"]

_CLOSE_CONNECTIONS_TIMEOUT = 2.0


class SAMPHubServer(service.Service):
    """
    A SAMP 1.3 hub speaking the Standard Profile.

    :param reactor: the reactor (the global one when ``None``).
    :param str lockfile: where to write the lockfile; by default the file
        ``SAMP_HUB=std-lockurl:file:...`` names, or ``~/.samp``.
    :param str addr: the interface to listen on (loopback by default).
    :param int port: the TCP port, 0 for any free one.
    :param str label: a label for the hub, written as ``hub.label``.
    :param float client_timeout: seconds each delivery to a client may take.
    :param bool multi: astropy-style multi-hub mode: write a new lockfile
        ``~/.samp-1/samp-hub-<random>`` (clients find it through ``SAMP_HUB``).
    :param endpoint: an ``IStreamServerEndpoint`` to listen on instead of
        *addr* and *port* (it must give TCP addresses).
    :param int max_delivery_failures: consecutive transport failures after
        which a client is dropped.
    :param int max_concurrent_deliveries: callbacks in flight to one client
        (at most 4 to a client whose server closes each connection).
    :param int max_queued_deliveries: callbacks queued for one client beyond
        those in flight; more fail at once.
    :param float shutdown_timeout: seconds to wait for clients to take the
        ``samp.hub.event.shutdown`` notification when stopping.
    :param float ping_timeout: seconds to wait for the hub an existing
        lockfile names before declaring it stale.
    :param TLSOptions tls: serve the hub over TLS (``https``) with these
        settings: its certificate and key, and, through *cert_reqs*, whether
        clients must present a certificate issued by a CA of its *ca_certs*
        (``CERT_REQUIRED``: a client without one cannot even connect),
        may (``CERT_OPTIONAL``: verified if sent) or are not asked for one
        (``None``, ``CERT_NONE``).  The lockfile then names an ``https://``
        URL and carries ``hub.ssl.certificate`` and ``hub.ssl.protocol``.
        With *endpoint*, the endpoint must do the TLS itself (such as an
        ``SSL4ServerEndpoint`` with ``tls.server_options()``); *tls* then
        only makes the URL ``https://``.
    :param bool web_profile: also serve the SAMP Web Profile (for browser
        pages) on loopback at *web_port*; off by default.
    :param int web_port: the Web Profile's port (21012, its standard one;
        0 for any free one).
    :param web_consent: asked whether each web page may register: a
        function of a :class:`WebConsentRequest` (the declared
        name, the page's origin, its referer, the request's address)
        returning a bool or a Deferred of one.  ``None`` refuses every
        page.
    :param web_safe_mtypes: the MType patterns web clients may send
        (JSAMP's list by default).
    :param TLSOptions callback_tls: the settings used to call ``https://``
        callback URLs.  By default, with *tls*: the hub's certificate (sent
        as a client certificate, so callback servers requiring one accept
        it) and its *ca_certs* (else the system's trust) to verify each
        callback server's certificate, chain and host name, whatever
        *tls*'s *cert_reqs* says.  ``TLSOptions(cert_reqs=ssl.CERT_NONE)``
        is the explicit opt-out of that verification.  A hub with neither
        refuses ``https://`` callback URLs.
    :param callback_hosts: the hosts callback URLs may name.  By default
        (``"local"``) this machine's own addresses: loopback, or an address
        of one of its interfaces, or a host name resolving only to such
        addresses (``localhost``, the machine's host name).  ``"any"``
        accepts every host; a list of host names, addresses and networks
        (``["10.1.0.0/16", "ws7.example.org"]``) accepts those besides.
    :param int max_queued_bytes: bytes of messages (as their encoded size)
        waiting to be delivered to one client, queued or in flight; a
        message that would go past it is refused: a fault for a
        notification, ``samp.error`` for a call.
    :raises ValueError: *tls* has no certificate, or asks for client
        certificates without *ca_certs*; *callback_hosts* is malformed.

    :param bool monitor: serve the live monitor page (:mod:`._monitor_web`)
        on a loopback port of its own; its URL, with its secret token, is
        the lockfile entry ``sampy_twisted.monitor.url``.

    :ivar monitor_url: the monitor's URL (``None`` unless it runs).
    :ivar params: the lockfile entries (``None`` until started).
    :ivar lockfile: the lockfile path (``None`` until started).
    :ivar url: the hub's XML-RPC URL (``None`` until started).
    :ivar hub_id: the hub's own client id.
    :ivar web_url: the Web Profile's URL (``None`` unless it is served and
        the hub started).
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any = None,
        lockfile: str | None = None,
        addr: str = "127.0.0.1",
        port: int = 0,
        label: str = "",
        client_timeout: float = 30.0,
        multi: bool = False,
        endpoint: IStreamServerEndpoint | None = None,
        max_delivery_failures: int = 3,
        max_concurrent_deliveries: int = 20,
        max_queued_deliveries: int = 10_000,
        shutdown_timeout: float = 5.0,
        ping_timeout: float = 5.0,
        tls: TLSOptions | None = None,
        callback_tls: TLSOptions | None = None,
        callback_hosts: CallbackHosts = DEFAULT_CALLBACK_HOSTS,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        web_profile: bool = False,
        web_port: int = DEFAULT_WEB_PORT,
        web_consent: Consent | None = None,
        web_safe_mtypes: Iterable[str] = WEB_SAFE_MTYPES,
        monitor: bool = False,
    ) -> None:
        self._reactor = reactor = default_reactor(reactor)
        self._tls = tls
        self._server_options: Any = None
        if tls is not None:
            # Checked now: a TLS hub without a certificate, or checking
            # client certificates without CAs, is a mistake to report early.
            self._server_options = tls.server_options()
        if callback_tls is None and tls is not None:
            callback_tls = verifying_copy(tls)
        self._callback_tls = callback_tls
        self._addr = addr
        self._port_number = port
        self._endpoint = endpoint
        self._shutdown_timeout = min(client_timeout, shutdown_timeout)

        self.params: dict[str, str] | None = None
        self.lockfile: str | None = None
        self.url: str | None = None
        self.hub_id = HUB_ID
        self._state = "stopped"
        self._listening: IListeningPort | None = None
        self._connections: ConnectionTracker | None = None
        self._start_waiters: list[defer.Deferred[Any]] = []
        self._stop_waiters: list[defer.Deferred[Any]] = []

        self._core = HubCore(reactor, _hub_metadata(label), max_queued_bytes=max_queued_bytes)
        self._delivery = PushDelivery(
            reactor,
            timeout=client_timeout,
            max_failures=max_delivery_failures,
            max_concurrent=max_concurrent_deliveries,
            max_queued=max_queued_deliveries,
            final_timeout=self._shutdown_timeout,
            tls_policy=None if callback_tls is None else callback_tls.client_policy(),
        )
        self._profile = StandardProfile(
            self._core,
            self._delivery,
            reactor,
            lockfile=lockfile,
            multi=multi,
            label=label,
            tls=tls,
            ping_timeout=ping_timeout,
            https_callbacks=callback_tls is not None,
            callback_hosts=callback_hosts,
        )
        self.web_url: str | None = None
        self._web_port = web_port
        self._web_listening: IListeningPort | None = None
        self._web_connections: ConnectionTracker | None = None
        self._web: WebProfile | None = None
        if web_profile:
            self._web = WebProfile(self._core, reactor, web_consent, web_safe_mtypes)
        self.monitor_url: str | None = None
        self._monitor: HubMonitor | None = None
        self._monitor_port: IListeningPort | None = None
        self._monitor_connections: ConnectionTracker | None = None
        if monitor:
            self._monitor = HubMonitor(self._core, reactor, self._monitor_facts)

    # -- lifecycle -----------------------------------------------------

    @property
    def is_running(self) -> bool:
        """Whether the hub is listening and its lockfile is written."""
        return self._state == "running"

    @property
    def registered_clients(self) -> list[str]:
        """
        The ids of the registered clients, the hub's own excluded.

        :rtype: list of str
        """
        return list(self._core.clients)

    def startService(self) -> None:
        """
        Start the hub as part of a service hierarchy; failures are logged.
        """
        super().startService()  # type: ignore[no-untyped-call]
        self.start().addErrback(
            lambda failure: self._log.failure("The SAMP hub could not start", failure)
        )

    def stopService(self) -> defer.Deferred[None]:
        """
        Stop the hub as part of a service hierarchy.

        :return: a Deferred firing when the hub has stopped.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        return self.stop()

    def start(self) -> defer.Deferred[SAMPHubServer]:
        """
        Start listening and publish the lockfile.

        :return: a Deferred firing with this hub once clients can find it.
        :raises SAMPHubError: (as the Deferred's failure) a live hub owns the
            lockfile, it cannot be written, or the hub is stopping.
        """
        if self._state == "running":
            return defer.succeed(self)
        if self._state == "stopping":
            return defer.fail(SAMPHubError("the SAMP hub is stopping"))
        waiter: defer.Deferred[SAMPHubServer] = defer.Deferred()
        self._start_waiters.append(waiter)
        if self._state == "stopped":
            self._state = "starting"
            d = defer.ensureDeferred(self._start())
            d.addBoth(self._started)
        return waiter

    async def _start(self) -> SAMPHubServer:
        path = self._profile.lockfile_path()
        raise_fd_limit()  # room for many idle connections besides the clients'
        site = make_site(self._profile.resource, reactor=self._reactor)
        self._connections = ConnectionTracker(site, "SAMP hub")
        try:
            self._listening = await self._server_endpoint().listen(self._connections)
            self.url = self._url_for(self._listening.getHost(), "https" if self._tls is not None else "http")
            await self._listen_web()
            if self._monitor is not None:
                await self._start_monitor(self._monitor)
            await self._profile.publish(path, self.url)
        except BaseException:
            await self._close_listener()
            self.url = None
            raise
        self._profile.extra_params = {}
        self.lockfile = self._profile.lockfile
        self.params = self._profile.params
        self._core.running = True
        return self

    async def _listen_web(self) -> None:
        if self._web is None:
            return
        site = make_site(self._web.resource, reactor=self._reactor)
        self._web_connections = ConnectionTracker(site, "SAMP Web Profile")
        # Loopback only, whatever the Standard Profile's address.
        endpoint = server_endpoint(self._reactor, "127.0.0.1", self._web_port, None)
        try:
            self._web_listening = await endpoint.listen(self._web_connections)
        except CannotListenError as exc:
            raise SAMPHubError(
                f"cannot serve the Web Profile on port {self._web_port}: {exc.socketError} "
                f"(another hub's Web Profile, such as TOPCAT's, may be using it)"
            ) from None
        self.web_url = self._url_for(self._web_listening.getHost(), "http", "/")
        self._web.base_url = self.web_url
        self._log.info("SAMP Web Profile served at {url}", url=self.web_url)

    def _started(self, result: object) -> None:
        if isinstance(result, Failure):
            self._state = "stopped"
            self._profile.secret = None
        else:
            self._state = "running"
            self._log.info(
                "SAMP hub running at {url}, lockfile {lockfile}", url=self.url, lockfile=self.lockfile
            )
            self._check_callback_identity()
        waiters, self._start_waiters = self._start_waiters, []
        _fire_all(waiters, result)

    def _check_callback_identity(self) -> None:
        tls = self._callback_tls
        if tls is not None and tls.has_certificate and not usable_as_client_certificate(tls):
            self._log.warn(
                "The SAMP hub's certificate {cert_file} is not for TLS clients (its extended key "
                "usage lacks clientAuth): https callback servers that require a client "
                "certificate will refuse the hub",
                cert_file=tls.cert_file,
            )

    def _server_endpoint(self) -> IStreamServerEndpoint:
        if self._endpoint is not None:
            return self._endpoint
        return server_endpoint(self._reactor, self._addr, self._port_number, self._server_options)

    @staticmethod
    def _url_for(address: IAddress, scheme: str = "http", path: str = "/xmlrpc") -> str:
        try:
            return listening_url(address, scheme, path)
        except ValueError:
            raise SAMPHubError(f"the hub must listen on TCP, not {address}") from None

    def stop(self) -> defer.Deferred[None]:
        """
        Stop the hub: tell subscribed clients ``samp.hub.event.shutdown``
        (waiting at most ``shutdown_timeout``), fail pending ``callAndWait``
        calls, stop listening, remove the lockfile if it is still ours and
        close every connection.

        :return: a Deferred firing with ``None`` when the hub has stopped.
        """
        if self._state == "stopped":
            return defer.succeed(None)
        if self._state == "starting":
            started: defer.Deferred[Any] = defer.Deferred()
            self._start_waiters.append(started)
            return started.addBoth(lambda _: self.stop())
        waiter: defer.Deferred[None] = defer.Deferred()
        self._stop_waiters.append(waiter)
        if self._state == "running":
            self._state = "stopping"
            defer.ensureDeferred(self._stop()).addBoth(self._stopped)
        return waiter

    async def _stop(self) -> None:
        self._log.info("SAMP hub at {url} shutting down", url=self.url)
        self._core.running = False
        try:
            self._profile.withdraw()
            await self._broadcast_shutdown()
            self._core.fail_waiting_calls()
            await self._close_listener()
        finally:
            self._core.close_channels()
            await self._delivery.stop()
            self._core.fail_waiting_calls()  # any made while the listener closed

    def _stopped(self, result: object) -> None:
        self._state = "stopped"
        self._profile.secret = None
        self.url = None
        self._core.reset()
        waiters, self._stop_waiters = self._stop_waiters, []
        _fire_all(waiters, None if not isinstance(result, Failure) else result)

    async def _broadcast_shutdown(self) -> None:
        message = {"samp.mtype": "samp.hub.event.shutdown", "samp.params": {}}
        calls = [channel.send_final(message) for channel in self._core.shutdown_recipients()]
        # Each call has its own timeout once sent, but may first wait behind
        # deliveries already in flight to the same client: bound the whole.
        everyone = defer.DeferredList(calls, consumeErrors=True)
        everyone.addTimeout(self._shutdown_timeout, self._reactor)
        try:
            await everyone
        except defer.TimeoutError:
            self._log.info("Some SAMP clients did not take the shutdown notification in time")

    async def _start_monitor(self, monitor: HubMonitor) -> None:
        token = secrets.token_urlsafe(24)
        site = make_monitor_site(monitor, token, self._reactor)
        self._monitor_connections = ConnectionTracker(site, "SAMP hub monitor")
        endpoint = server_endpoint(self._reactor, "127.0.0.1", 0, None)
        self._monitor_port = await endpoint.listen(self._monitor_connections)
        self.monitor_url = listening_url(self._monitor_port.getHost(), "http", f"/{token}/")
        self._profile.extra_params = {MONITOR_URL_KEY: self.monitor_url}

    def _monitor_facts(self) -> dict[str, Any]:
        in_flight = 0
        for client in self._core.clients.values():
            in_flight += len(getattr(client.channel, "in_flight", ()))
        return {
            "url": self.url,
            "lockfile": self.lockfile,
            "profiles": ["Standard", "Web"] if self._web is not None else ["Standard"],
            "tls": self._tls is not None,
            "in_flight": in_flight,
        }

    async def _close_listener(self) -> None:
        port, self._monitor_port = self._monitor_port, None
        if port is not None:
            await defer.maybeDeferred(port.stopListening)
        monitor_connections, self._monitor_connections = self._monitor_connections, None
        if monitor_connections is not None:
            await monitor_connections.close_all(self._reactor, _CLOSE_CONNECTIONS_TIMEOUT)
        self.monitor_url = None
        listening, self._listening = self._listening, None
        if listening is not None:
            await defer.maybeDeferred(listening.stopListening)
        connections, self._connections = self._connections, None
        if connections is not None:
            await connections.close_all(self._reactor, _CLOSE_CONNECTIONS_TIMEOUT)
        web, self._web_listening = self._web_listening, None
        if web is not None:
            await defer.maybeDeferred(web.stopListening)
        web_connections, self._web_connections = self._web_connections, None
        if web_connections is not None:
            await web_connections.close_all(self._reactor, _CLOSE_CONNECTIONS_TIMEOUT)
        self.web_url = None


def _hub_metadata(label: str) -> dict[str, str]:
    description = "SAMP hub (sampy_twisted, Standard Profile)"
    if label:
        description = f"{description}: {label}"
    return {"samp.name": "Hub", "samp.description.text": description, "hub.impl": "sampy_twisted"}


def _fire_all(waiters: list[defer.Deferred[Any]], result: object) -> None:
    for waiter in waiters:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)


def start_hub(reactor: Any = None, **kwargs: Any) -> defer.Deferred[SAMPHubServer]:
    """
    Create a :class:`SAMPHubServer` and start it.

    :param reactor: the reactor (the global one when ``None``).
    :param kwargs: further arguments for :class:`SAMPHubServer`.
    :return: a Deferred firing with the running hub.
    """
    hub = SAMPHubServer(reactor=reactor, **kwargs)
    return hub.start()
