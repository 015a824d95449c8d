# -*- test-case-name: tests.test_hub -*-
"""
A SAMP hub (Standard Profile) as a Twisted service.

The hub answers ``samp.hub.*`` XML-RPC calls and delivers messages to the
clients' ``samp.client.*`` callbacks.  Every sender's request is answered
first; deliveries happen afterwards, each one a Deferred with a timeout, so a
slow, hanging or vanished client never holds up the hub or anyone else.

**Delivery-failure policy.**  Each client gets one :class:`XMLRPCProxy`
(keeping HTTP/1.1 connections open to servers that allow it) and at most
``max_concurrent_deliveries`` callbacks in flight (4 when its server closes
each connection, as astropy's and JSAMP's do); more wait in a per-client
queue.  A delivery fails when the client cannot be reached, does not answer
within ``client_timeout`` seconds, or answers with a fault:

* a failed ``receiveCall`` is answered to the sender at once with a
  ``samp.error`` response (through ``receiveResponse``, or as the result of
  its ``callAndWait``), so no sender waits for a reply that cannot come;
* after ``max_delivery_failures`` *consecutive* transport failures (refused,
  unreachable, timed out; a fault shows the client is alive and does not
  count) the client is dropped: the hub tries ``samp.hub.disconnect`` on it,
  forgets it, and broadcasts ``samp.hub.event.unregister``;
* a client with ``MAX_UNANSWERED_CALLS`` (10,000) calls still unanswered
  gets a ``samp.error`` response for the oldest when it makes another, so
  calls nobody answers cannot pile up without bound;
* when a client leaves or is dropped, calls it still owed a reply are
  answered to their senders with ``samp.error``, and its own pending
  ``callAndWait`` calls fail.

Message ids are random and unguessable; the hub keeps a table of pending
calls and accepts one reply per call, only from the intended recipient.
"""

import collections
import functools
import hashlib
import hmac
import itertools
import secrets
import xmlrpc.client
from urllib.parse import urlsplit

from twisted.application import service
from twisted.internet import defer
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure

from ._encoding import check_samp_value, legal_text, timeout_seconds
from ._errors import SAMP_STATUS_ERROR, SAMP_STATUS_OK, SAMPHubError
from ._lockfile import (
    claim_lockfile,
    lockfile_path,
    new_lockfile_params,
    remove_lockfile_if_ours,
)
from ._mtype import best_match, is_mtype, is_mtype_pattern
from ._xmlrpc import XMLRPCProxy, XMLRPCResource, make_site

__all__ = ["HUB_ID", "SAMPHubServer", "start_hub"]

HUB_ID = "hub"
"""The public id of the hub's own client (``samp.hub-id``)."""

#: Callbacks in flight to a client whose server closes every connection.
CLOSING_SERVER_DELIVERIES = 4

#: Unanswered calls one client may have; beyond, the oldest gets samp.error.
MAX_UNANSWERED_CALLS = 10_000

_QUERY_BY_META = ("x-samp.query.by-meta", "samp.query.by-meta")
_HUB_SUBSCRIPTIONS = {"samp.app.ping": {}, "x-samp.query.by-meta": {}, "samp.query.by-meta": {}}
_FORGOTTEN_IDS_KEPT = 10_000
_ERROR_TEXT_LIMIT = 4096  # characters of a samp.errortxt the hub composes
_CLOSE_CONNECTIONS_TIMEOUT = 2.0


def _fault(text):
    # SAMP gives fault codes no meaning; JSAMP always uses 1.
    return xmlrpc.client.Fault(1, text)


def _key_bytes(text):
    return text.encode("utf-8", "surrogatepass")


def _error_response(text):
    # The text may carry a peer's fault or error message: keep it legal SAMP
    # data, and short.
    error = {"samp.errortxt": legal_text(text, _ERROR_TEXT_LIMIT)}
    return {"samp.status": SAMP_STATUS_ERROR, "samp.error": error}


def _ok_response(result):
    return {"samp.status": SAMP_STATUS_OK, "samp.result": result}


def _checked(value, what):
    """Check SAMP data strictly, turning a violation into a fault."""
    try:
        return check_samp_value(value, what)
    except (TypeError, ValueError) as exc:
        raise _fault(f"not SAMP data: {exc}") from None


def _check_map(value, what):
    if not isinstance(value, dict):
        raise _fault(f"{what} must be a map, not {_kind(value)}")
    return _checked(value, what)


def _check_string(value, what):
    if not isinstance(value, str):
        raise _fault(f"{what} must be a string, not {_kind(value)}")
    return value


def _kind(value):
    return {dict: "a map", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


class _Client:
    """
    A registered client as the hub sees it.

    :ivar awaiting: msg-ids of calls this client has received and must answer.
    :ivar outstanding: msg-ids of calls this client made that await a reply.
    :ivar in_flight: delivery Deferreds under way, each with its proxy.
    """

    def __init__(self, client_id, private_key=None):
        self.client_id = client_id
        self.private_key = private_key
        self.key_bytes = None if private_key is None else _key_bytes(private_key)
        self.metadata = {}
        self.subscriptions = {}
        self.proxy = None
        self.active = True
        self.failures = 0
        self.in_flight = {}
        self.queue = collections.deque()
        self.awaiting = set()
        self.outstanding = set()
        self._matches = {}

    @property
    def is_hub(self):
        return self.private_key is None

    @property
    def callable(self):
        return self.is_hub or self.proxy is not None

    def set_subscriptions(self, subscriptions):
        self.subscriptions = subscriptions
        self._matches = {}

    def annotation_for(self, mtype):
        """The annotation of the most specific subscription to *mtype*, or None."""
        try:
            pattern = self._matches[mtype]
        except KeyError:
            if len(self._matches) > 1000:  # bound the cache, not the traffic
                self._matches = {}
            pattern = self._matches[mtype] = best_match(self.subscriptions, mtype)
        return None if pattern is None else self.subscriptions[pattern]


class _PendingCall:
    """A call awaiting its reply: who sent it, with which tag, to whom."""

    __slots__ = ("msg_id", "sender", "tag", "recipient", "waiter", "timer", "timeout")

    def __init__(self, msg_id, sender, tag, recipient, waiter=None):
        self.msg_id = msg_id
        self.sender = sender
        self.tag = tag
        self.recipient = recipient
        self.waiter = waiter
        self.timer = None
        self.timeout = None


class _ConnectionTracker(WrappingFactory):
    """Keeps the hub's open HTTP connections, so stopping can close them."""

    noisy = False

    def __init__(self, wrapped):
        super().__init__(wrapped)
        self._when_idle = []

    def logPrefix(self):
        # What twistd's log calls the hub's port ("SAMP hub starting on
        # 41017"), rather than "_QuietSite (_ConnectionTracker)".
        return "SAMP hub"

    def unregisterProtocol(self, p):
        super().unregisterProtocol(p)
        if not self.protocols:
            waiting, self._when_idle = self._when_idle, []
            for d in waiting:
                d.callback(None)

    def close_all(self, reactor, timeout):
        """
        Close every connection, aborting those still open after *timeout*.

        :return: a Deferred firing when none is left.
        """
        if not self.protocols:
            return defer.succeed(None)
        done = defer.Deferred()
        self._when_idle.append(done)
        for p in list(self.protocols):
            p.transport.loseConnection()
        abort = reactor.callLater(timeout, self._abort_all)
        return done.addBoth(_cancel_call, abort)

    def _abort_all(self):
        for p in list(self.protocols):
            p.transport.abortConnection()


def _cancel_call(result, call):
    if call.active():
        call.cancel()
    return result


def _verifying_copy(tls):
    """
    *tls* as the hub uses it to call https callbacks: the same certificate
    (presented as a client certificate), CA bundle and minimum version, but
    always verifying the callback server, whatever *tls* asks of the hub's
    own clients.
    """
    if tls.cert_reqs is None:
        return tls
    return tls.with_cert_reqs(None)


def _usable_as_client_certificate(tls):
    """
    Whether *tls*'s certificate may identify a TLS client: OpenSSL refuses a
    certificate whose extended key usage lacks ``clientAuth``.
    """
    identity = tls.private_certificate()
    if identity is None:
        return False
    certificate = identity.original.to_cryptography()
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usage


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
    :param TLSOptions callback_tls: the settings used to call ``https://``
        callback URLs.  By default, with *tls*: the hub's certificate (sent
        as a client certificate, so callback servers requiring one accept
        it) and its *ca_certs* (else the system's trust) to verify each
        callback server's certificate, chain and host name, whatever
        *tls*'s *cert_reqs* says.  ``TLSOptions(cert_reqs=ssl.CERT_NONE)``
        is the explicit opt-out of that verification.  A hub with neither
        refuses ``https://`` callback URLs.
    :raises ValueError: *tls* has no certificate, or asks for client
        certificates without *ca_certs*.

    :ivar params: the lockfile entries (``None`` until started).
    :ivar lockfile: the lockfile path (``None`` until started).
    :ivar url: the hub's XML-RPC URL (``None`` until started).
    :ivar hub_id: the hub's own client id.
    """

    _log = Logger()

    def __init__(
        self,
        reactor=None,
        lockfile=None,
        addr="127.0.0.1",
        port=0,
        label="",
        client_timeout=30.0,
        multi=False,
        endpoint=None,
        max_delivery_failures=3,
        max_concurrent_deliveries=20,
        max_queued_deliveries=10_000,
        shutdown_timeout=5.0,
        ping_timeout=5.0,
        tls=None,
        callback_tls=None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self._reactor = reactor
        self._tls = tls
        self._server_options = None
        if tls is not None:
            # Checked now: a TLS hub without a certificate, or checking
            # client certificates without CAs, is a mistake to report early.
            self._server_options = tls.server_options()
        if callback_tls is None and tls is not None:
            callback_tls = _verifying_copy(tls)
        self._callback_tls = callback_tls
        self._lockfile_option = lockfile
        self._addr = addr
        self._port_number = port
        self._endpoint = endpoint
        self._label = label
        self._multi = multi
        self._client_timeout = client_timeout
        self._max_failures = max_delivery_failures
        self._max_concurrent = max_concurrent_deliveries
        self._max_queued = max_queued_deliveries
        self._shutdown_timeout = shutdown_timeout
        self._ping_timeout = ping_timeout

        self.params = None
        self.lockfile = None
        self.url = None
        self.hub_id = HUB_ID
        self._state = "stopped"
        self._secret = None
        self._listening = None
        self._connections = None
        self._start_waiters = []
        self._stop_waiters = []

        self._ids = itertools.count(1)
        self._hub = self._make_hub_client()
        self._clients = {}
        self._by_key = {}
        self._pending = {}
        self._answered = collections.OrderedDict()
        self._ready = []
        self._flush_call = None
        self._closing = set()
        self._side_calls = set()
        self._resource = XMLRPCResource(self._procedures(), strict=True)

    # -- lifecycle -----------------------------------------------------

    @property
    def is_running(self):
        """Whether the hub is listening and its lockfile is written."""
        return self._state == "running"

    @property
    def registered_clients(self):
        """
        The ids of the registered clients, the hub's own excluded.

        :rtype: list of str
        """
        return list(self._clients)

    def startService(self):
        """
        Start the hub as part of a service hierarchy; failures are logged.
        """
        super().startService()
        self.start().addErrback(
            lambda failure: self._log.failure("The SAMP hub could not start", failure)
        )

    def stopService(self):
        """
        Stop the hub as part of a service hierarchy.

        :return: a Deferred firing when the hub has stopped.
        """
        super().stopService()
        return self.stop()

    def start(self):
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
        waiter = defer.Deferred()
        self._start_waiters.append(waiter)
        if self._state == "stopped":
            self._state = "starting"
            d = defer.ensureDeferred(self._start())
            d.addBoth(self._started)
        return waiter

    async def _start(self):
        path = lockfile_path(self._lockfile_option, self._multi)
        self._secret = secrets.token_urlsafe(32)
        site = make_site(self._resource, reactor=self._reactor)
        self._connections = _ConnectionTracker(site)
        try:
            self._listening = await self._server_endpoint().listen(self._connections)
            self.url = self._url_for(self._listening.getHost(), "https" if self._tls is not None else "http")
            params = new_lockfile_params(self.url, self._secret, self._label, tls=self._tls)
            await claim_lockfile(path, params, self._reactor, self._ping_timeout)
        except BaseException:
            await self._close_listener()
            self.url = None
            raise
        self.lockfile = path
        self.params = params
        return self

    def _started(self, result):
        if isinstance(result, Failure):
            self._state = "stopped"
            self._secret = None
        else:
            self._state = "running"
            self._log.info(
                "SAMP hub running at {url}, lockfile {lockfile}", url=self.url, lockfile=self.lockfile
            )
            self._check_callback_identity()
        waiters, self._start_waiters = self._start_waiters, []
        _fire_all(waiters, result)

    def _check_callback_identity(self):
        tls = self._callback_tls
        if tls is not None and tls.has_certificate and not _usable_as_client_certificate(tls):
            self._log.warn(
                "The SAMP hub's certificate {cert_file} is not for TLS clients (its extended key "
                "usage lacks clientAuth): https callback servers that require a client "
                "certificate will refuse the hub",
                cert_file=tls.cert_file,
            )

    def _server_endpoint(self):
        if self._endpoint is not None:
            return self._endpoint
        if self._tls is not None:
            return SSL4ServerEndpoint(
                self._reactor, self._port_number, self._server_options, interface=self._addr
            )
        kind = TCP6ServerEndpoint if ":" in self._addr else TCP4ServerEndpoint
        return kind(self._reactor, self._port_number, interface=self._addr)

    @staticmethod
    def _url_for(address, scheme="http"):
        host = getattr(address, "host", None)
        if host is None:
            raise SAMPHubError(f"the hub must listen on TCP, not {address}")
        # A wildcard address is no place to connect to: name loopback.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{address.port}/xmlrpc"

    def stop(self):
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
            waiter = defer.Deferred()
            self._start_waiters.append(waiter)
            return waiter.addBoth(lambda _: self.stop())
        waiter = defer.Deferred()
        self._stop_waiters.append(waiter)
        if self._state == "running":
            self._state = "stopping"
            defer.ensureDeferred(self._stop()).addBoth(self._stopped)
        return waiter

    async def _stop(self):
        self._log.info("SAMP hub at {url} shutting down", url=self.url)
        try:
            if self.lockfile is not None:
                remove_lockfile_if_ours(self.lockfile, self._secret)
            await self._broadcast_shutdown()
            self._fail_waiting_calls()
            await self._close_listener()
        finally:
            await self._close_deliveries()
            self._fail_waiting_calls()  # any made while the listener closed

    def _fail_waiting_calls(self):
        for pending in list(self._pending.values()):
            if pending.waiter is not None and not pending.waiter.called:
                self._finish(pending, "the hub shut down before it was answered")
                pending.waiter.errback(_fault("the SAMP hub is shutting down"))

    def _stopped(self, result):
        self._state = "stopped"
        self._secret = None
        self.url = None
        self._clients = {}
        self._by_key = {}
        self._pending = {}
        self._answered.clear()
        waiters, self._stop_waiters = self._stop_waiters, []
        _fire_all(waiters, None if not isinstance(result, Failure) else result)

    async def _broadcast_shutdown(self):
        message = {"samp.mtype": "samp.hub.event.shutdown", "samp.params": {}}
        timeout = min(self._client_timeout, self._shutdown_timeout)
        calls = [
            client.proxy.call(
                "samp.client.receiveNotification",
                client.private_key,
                HUB_ID,
                message,
                timeout=timeout,
            )
            for client in self._recipients(message["samp.mtype"], None)
            if not client.is_hub
        ]
        # Each call has its own timeout once sent, but may first wait behind
        # deliveries already in flight to the same client: bound the whole.
        everyone = defer.DeferredList(calls, consumeErrors=True)
        everyone.addTimeout(timeout, self._reactor)
        try:
            await everyone
        except defer.TimeoutError:
            self._log.info("Some SAMP clients did not take the shutdown notification in time")

    async def _close_listener(self):
        listening, self._listening = self._listening, None
        if listening is not None:
            await defer.maybeDeferred(listening.stopListening)
        connections, self._connections = self._connections, None
        if connections is not None:
            await connections.close_all(self._reactor, _CLOSE_CONNECTIONS_TIMEOUT)

    async def _close_deliveries(self):
        if self._flush_call is not None:
            self._flush_call.cancel()
            self._flush_call = None
        self._ready = []
        for client in list(self._clients.values()):
            client.active = False
            client.queue.clear()
            self._cancel_deliveries(client)
            if client.proxy is not None:
                self._close_proxy(client.proxy)
        for d in list(self._side_calls):
            d.cancel()
        await defer.DeferredList(list(self._closing), consumeErrors=True)

    # -- the XML-RPC interface ----------------------------------------

    def _procedures(self):
        methods = {
            "ping": self._ping,
            "register": self._register,
            "unregister": self._unregister,
            "setXmlrpcCallback": self._set_xmlrpc_callback,
            "declareMetadata": self._declare_metadata,
            "getMetadata": self._get_metadata,
            "declareSubscriptions": self._declare_subscriptions,
            "getSubscriptions": self._get_subscriptions,
            "getRegisteredClients": self._get_registered_clients,
            "getSubscribedClients": self._get_subscribed_clients,
            "notify": self._notify,
            "notifyAll": self._notify_all,
            "call": self._call,
            "callAll": self._call_all,
            "callAndWait": self._call_and_wait,
            "reply": self._reply,
        }
        return {f"samp.hub.{name}": method for name, method in methods.items()}

    def _ping(self, private_key=None):
        # Accepted with or without a key, valid or not, as JSAMP does:
        # ping only says the hub is alive.
        return "1"

    def _register(self, secret):
        if self._state != "running":
            raise _fault("the SAMP hub is not accepting registrations: it is not running")
        if not isinstance(secret, str) or not hmac.compare_digest(
            _key_bytes(secret), _key_bytes(self._secret)
        ):
            raise _fault("registration refused: wrong samp.secret")
        client = self._new_client()
        self._log.info("Registered SAMP client {client_id}", client_id=client.client_id)
        self._broadcast_event("samp.hub.event.register", {"id": client.client_id})
        return {
            "samp.hub-id": HUB_ID,
            "samp.self-id": client.client_id,
            "samp.private-key": client.private_key,
        }

    def _unregister(self, private_key):
        client = self._registered_client(private_key)  # allowed while stopping
        self._remove_client(client, "unregistered")
        self._log.info("Unregistered SAMP client {client_id}", client_id=client.client_id)
        return ""

    def _set_xmlrpc_callback(self, private_key, url):
        client = self._caller(private_key)
        _check_string(url, "the callback URL")
        _checked(url, "the callback URL")
        try:
            parts = urlsplit(url)
            hostname, _ = parts.hostname, parts.port
        except ValueError:
            raise _fault(f"callback URL {url!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not hostname:
            raise _fault(f"callback URL {url!r} is not an http:// or https:// URL")
        if parts.scheme == "https" and self._callback_tls is None:
            raise _fault(
                f"callback URL {url!r} is https, but this hub has no TLS settings to call "
                f"it with: use an http:// callback URL, or a hub run with TLS"
            )
        old = client.proxy
        if old is not None and old.url == url:
            return ""
        client.proxy = XMLRPCProxy(
            url,
            self._reactor,
            # our own queue limits concurrency; a little room for the
            # shutdown and disconnect notifications that bypass it
            max_concurrent=self._max_concurrent + 2,
            timeout=self._client_timeout,
            connect_timeout=min(10.0, self._client_timeout),
            tls_policy=None if self._callback_tls is None else self._callback_tls.client_policy(),
        )
        client.failures = 0
        if old is not None and old not in client.in_flight.values():
            self._close_proxy(old)
        return ""

    def _declare_metadata(self, private_key, metadata):
        client = self._caller(private_key)
        client.metadata = _check_map(metadata, "metadata")
        self._broadcast_event(
            "samp.hub.event.metadata", {"id": client.client_id, "metadata": client.metadata}
        )
        return ""

    def _get_metadata(self, private_key, client_id):
        self._caller(private_key)
        return self._client_by_id(client_id).metadata

    def _declare_subscriptions(self, private_key, subscriptions):
        client = self._caller(private_key)
        if not isinstance(subscriptions, dict):
            raise _fault(f"subscriptions must be a map, not {_kind(subscriptions)}")
        for pattern, annotation in subscriptions.items():
            if not is_mtype_pattern(pattern):
                raise _fault(
                    f"subscription key {pattern!r} is not an MType pattern "
                    f"(such as 'table.load.votable', 'table.*' or '*')"
                )
            if not isinstance(annotation, dict):
                raise _fault(
                    f"the subscription to {pattern!r} must map to an annotation "
                    f"map, not {_kind(annotation)}"
                )
        client.set_subscriptions(_checked(subscriptions, "subscriptions"))
        self._broadcast_event(
            "samp.hub.event.subscriptions",
            {"id": client.client_id, "subscriptions": client.subscriptions},
        )
        return ""

    def _get_subscriptions(self, private_key, client_id):
        self._caller(private_key)
        return self._client_by_id(client_id).subscriptions

    def _get_registered_clients(self, private_key):
        caller = self._caller(private_key)
        return [c.client_id for c in self._all_clients() if c is not caller]

    def _get_subscribed_clients(self, private_key, mtype):
        caller = self._caller(private_key)
        _check_string(mtype, "the MType")
        if not is_mtype(mtype):
            raise _fault(f"{mtype!r} is not an MType")
        return {c.client_id: c.annotation_for(mtype) for c in self._recipients(mtype, caller)}

    def _notify(self, private_key, recipient_id, message):
        sender = self._caller(private_key)
        mtype, message = self._check_message(message)
        recipient = self._recipient(recipient_id, mtype)
        self._later(self._deliver_notification, sender, recipient, message)
        return ""

    def _notify_all(self, private_key, message):
        sender = self._caller(private_key)
        mtype, message = self._check_message(message)
        recipients = self._recipients(mtype, sender)
        for recipient in recipients:
            self._later(self._deliver_notification, sender, recipient, message)
        return [r.client_id for r in recipients]

    def _call(self, private_key, recipient_id, msg_tag, message):
        sender = self._callable_sender(private_key)
        _check_string(msg_tag, "msg-tag")
        _checked(msg_tag, "msg-tag")
        mtype, message = self._check_message(message)
        recipient = self._recipient(recipient_id, mtype)
        return self._start_call(sender, msg_tag, recipient, message).msg_id

    def _call_all(self, private_key, msg_tag, message):
        sender = self._callable_sender(private_key)
        _check_string(msg_tag, "msg-tag")
        _checked(msg_tag, "msg-tag")
        mtype, message = self._check_message(message)
        return {
            recipient.client_id: self._start_call(sender, msg_tag, recipient, message).msg_id
            for recipient in self._recipients(mtype, sender)
        }

    def _call_and_wait(self, private_key, recipient_id, message, timeout):
        sender = self._caller(private_key)
        mtype, message = self._check_message(message)
        recipient = self._recipient(recipient_id, mtype)
        _check_string(timeout, "the timeout")
        try:
            seconds = timeout_seconds(timeout)
        except ValueError:
            raise _fault(f"timeout {timeout!r} is not a SAMP int (seconds; 0 for none)") from None
        msg_id = self._new_msg_id()
        waiter = defer.Deferred(lambda _: self._cancel_wait(msg_id))
        pending = self._start_call(sender, None, recipient, message, waiter, msg_id)
        if seconds is not None:
            pending.timeout = seconds
            pending.timer = self._reactor.callLater(seconds, self._expire, pending.msg_id)
        return waiter

    def _reply(self, private_key, msg_id, response):
        replier = self._caller(private_key)
        _check_string(msg_id, "msg-id")
        pending = self._pending.get(msg_id)
        if pending is None:
            why = self._answered.get(msg_id, "no such call is awaiting a reply")
            raise _fault(f"reply to {msg_id!r} ignored: {why}")
        if pending.recipient is not replier:
            raise _fault(f"reply to {msg_id!r} refused: that call was not sent to you")
        response = _check_map(response, "response")
        if not isinstance(response.get("samp.status"), str):
            raise _fault("the response has no samp.status string")
        self._finish(pending, "it has already been answered")
        self._answer(pending, response)
        return ""

    # -- checking arguments ---------------------------------------------

    def _caller(self, private_key):
        """The client whose private key this is, while the hub runs."""
        if self._state != "running":
            # Requests on open connections may still arrive while stopping;
            # what they would start could never finish.
            raise _fault("the SAMP hub is shutting down")
        return self._registered_client(private_key)

    def _registered_client(self, private_key):
        """The client whose private key this is."""
        if not isinstance(private_key, str):
            raise _fault(f"the private key must be a string, not {_kind(private_key)}")
        key = _key_bytes(private_key)
        # Index by a digest so the lookup reveals nothing about the key, then
        # compare in constant time.
        client = self._by_key.get(hashlib.sha256(key).digest())
        if client is None or not hmac.compare_digest(client.key_bytes, key):
            raise _fault("unknown private key: not registered, or no longer registered")
        return client

    def _callable_sender(self, private_key):
        sender = self._caller(private_key)
        if sender.proxy is None:
            raise _fault(
                "call needs a callable sender to receive the response: call "
                "setXmlrpcCallback first, or use callAndWait"
            )
        return sender

    def _client_by_id(self, client_id):
        _check_string(client_id, "the client id")
        if client_id == HUB_ID:
            return self._hub
        client = self._clients.get(client_id)
        if client is None:
            raise _fault(f"no registered client has the id {client_id!r}")
        return client

    def _check_message(self, message):
        if not isinstance(message, dict):
            raise _fault(f"the message must be a map, not {_kind(message)}")
        mtype = message.get("samp.mtype")
        if mtype is None:
            raise _fault("the message has no samp.mtype")
        if not is_mtype(mtype):
            raise _fault(f"samp.mtype {mtype!r} is not an MType")
        params = message.get("samp.params")
        if params is not None and not isinstance(params, dict):
            raise _fault(f"samp.params must be a map, not {_kind(params)}")
        return mtype, _checked(message, "message")

    def _recipient(self, recipient_id, mtype):
        """The client *recipient_id*, if it can receive *mtype*."""
        recipient = self._client_by_id(recipient_id)
        if recipient.annotation_for(mtype) is None:
            raise _fault(f"client {recipient_id} is not subscribed to {mtype}")
        if not recipient.callable:
            raise _fault(f"client {recipient_id} is not callable (it has set no XML-RPC callback)")
        return recipient

    def _recipients(self, mtype, sender):
        """Every callable client but *sender* subscribed to *mtype*."""
        return [
            client
            for client in self._all_clients()
            if client is not sender and client.callable and client.annotation_for(mtype) is not None
        ]

    def _all_clients(self):
        return [self._hub, *self._clients.values()]

    # -- clients ---------------------------------------------------------

    def _make_hub_client(self):
        hub = _Client(HUB_ID)
        description = "SAMP hub (sampy_twisted, Standard Profile)"
        if self._label:
            description = f"{description}: {self._label}"
        hub.metadata = _checked(
            {
                "samp.name": "Hub",
                "samp.description.text": description,
                "hub.impl": "sampy_twisted",
            },
            "metadata",
        )
        hub.set_subscriptions({k: dict(v) for k, v in _HUB_SUBSCRIPTIONS.items()})
        return hub

    def _new_client(self):
        client_id = f"c{next(self._ids)}"
        while True:
            # 192 random bits never collide in practice; checking is cheap.
            private_key = secrets.token_urlsafe(24)
            digest = hashlib.sha256(_key_bytes(private_key)).digest()
            if digest not in self._by_key:
                break
        client = _Client(client_id, private_key)
        self._clients[client_id] = client
        self._by_key[digest] = client
        return client

    def _forget(self, client, why):
        """
        Remove *client* from every table, settle the calls it is part of and
        stop delivering to it.  Its current proxy is left open.
        """
        client.active = False
        self._clients.pop(client.client_id, None)
        self._by_key.pop(hashlib.sha256(client.key_bytes).digest(), None)
        client.queue.clear()
        self._cancel_deliveries(client)
        for msg_id in list(client.awaiting):
            pending = self._pending[msg_id]
            self._finish(pending, f"its recipient {why}")
            self._answer(pending, _error_response(f"{client.client_id} {why} before replying"))
        for msg_id in list(client.outstanding):
            pending = self._pending[msg_id]
            self._finish(pending, f"its sender {why}")
            if pending.waiter is not None:
                pending.waiter.errback(_fault(f"callAndWait abandoned: you {why}"))

    def _remove_client(self, client, why):
        self._forget(client, why)
        if client.proxy is not None:
            self._close_proxy(client.proxy)
        self._broadcast_event("samp.hub.event.unregister", {"id": client.client_id})

    def _drop(self, client, reason):
        """Forcibly unregister a client that cannot be reached."""
        self._log.warn(
            "Dropping SAMP client {client_id}: {reason}", client_id=client.client_id, reason=reason
        )
        proxy = client.proxy
        subscribed = client.annotation_for("samp.hub.disconnect") is not None
        self._forget(client, "was disconnected by the hub")
        if subscribed:
            message = {"samp.mtype": "samp.hub.disconnect", "samp.params": {"reason": reason}}
            d = proxy.call(
                "samp.client.receiveNotification",
                client.private_key,
                HUB_ID,
                message,
                timeout=min(self._client_timeout, self._shutdown_timeout),
            )
            self._side_calls.add(d)
            d.addErrback(lambda _: None)
            d.addBoth(lambda _: (self._side_calls.discard(d), self._close_proxy(proxy)))
        else:
            self._close_proxy(proxy)
        self._broadcast_event("samp.hub.event.unregister", {"id": client.client_id})

    # -- calls -----------------------------------------------------------

    @staticmethod
    def _new_msg_id():
        # Unguessable, so nobody can reply to (or forge) someone else's call.
        return f"m{secrets.token_urlsafe(12)}"

    def _start_call(self, sender, tag, recipient, message, waiter=None, msg_id=None):
        if len(sender.outstanding) >= MAX_UNANSWERED_CALLS:
            self._give_up_oldest(sender)
        msg_id = msg_id or self._new_msg_id()
        pending = _PendingCall(msg_id, sender, tag, recipient, waiter)
        self._pending[msg_id] = pending
        sender.outstanding.add(msg_id)
        recipient.awaiting.add(msg_id)
        self._later(self._deliver_call, pending, message)
        return pending

    def _give_up_oldest(self, sender):
        # Calls nobody answers would otherwise pile up for as long as both
        # clients stay registered; the oldest is answered with an error.
        oldest = next(p for p in self._pending.values() if p.sender is sender)
        self._fail_call(
            oldest.msg_id,
            f"no reply from {oldest.recipient.client_id}: given up, as "
            f"{sender.client_id} has {MAX_UNANSWERED_CALLS} calls unanswered",
        )

    def _finish(self, pending, why_closed):
        """Take *pending* out of the tables; later replies get *why_closed*."""
        msg_id = pending.msg_id
        del self._pending[msg_id]
        pending.sender.outstanding.discard(msg_id)
        pending.recipient.awaiting.discard(msg_id)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        self._answered[msg_id] = why_closed
        if len(self._answered) > _FORGOTTEN_IDS_KEPT:
            self._answered.popitem(last=False)

    def _answer(self, pending, response):
        """Give a finished call's *response* to its sender."""
        if pending.waiter is not None:
            if not pending.waiter.called:
                pending.waiter.callback(response)
        elif pending.sender.active:
            self._later(
                self._deliver,
                pending.sender,
                "samp.client.receiveResponse",
                (pending.recipient.client_id, pending.tag, response),
            )

    def _fail_call(self, msg_id, text):
        pending = self._pending.get(msg_id)
        if pending is not None:
            self._finish(pending, "delivery failed and the sender was told")
            self._answer(pending, _error_response(text))

    def _expire(self, msg_id):
        pending = self._pending.get(msg_id)
        if pending is None:
            return
        pending.timer = None
        self._finish(pending, "the callAndWait timed out")
        pending.waiter.errback(
            _fault(
                f"callAndWait to {pending.recipient.client_id} timed out after "
                f"{pending.timeout:g} s with no reply"
            )
        )

    def _cancel_wait(self, msg_id):
        pending = self._pending.get(msg_id)
        if pending is not None:
            self._finish(pending, "the callAndWait was cancelled")

    def _hub_answer(self, message):
        """The hub's own response to a call addressed to it."""
        mtype = message["samp.mtype"]
        params = message.get("samp.params") or {}
        if mtype == "samp.app.ping":
            return _ok_response({})
        if mtype in _QUERY_BY_META:
            key, value = params.get("key"), params.get("value")
            if not isinstance(key, str) or value is None:
                return _error_response(f"{mtype} needs the parameters key and value")
            ids = [c.client_id for c in self._all_clients() if c.metadata.get(key) == value]
            return _ok_response({"ids": ids})
        return _error_response(f"the hub does not handle {mtype}")

    # -- delivery ----------------------------------------------------------

    def _later(self, function, *args):
        """
        Run *function* in a later reactor turn, after the current request
        has been answered; one timer serves every step queued meanwhile.
        """
        self._ready.append((function, args))
        if self._flush_call is None:
            self._flush_call = self._reactor.callLater(0, self._flush)

    def _flush(self):
        self._flush_call = None
        ready, self._ready = self._ready, []
        for function, args in ready:
            try:
                function(*args)
            except Exception:
                self._log.failure("SAMP hub delivery step {step} failed", step=function.__name__)

    def _deliver_notification(self, sender, recipient, message):
        if recipient.is_hub or not recipient.active:
            return  # the hub acts on no notification
        self._deliver(recipient, "samp.client.receiveNotification", (sender.client_id, message))

    def _deliver_call(self, pending, message):
        if pending.msg_id not in self._pending:
            return  # settled meanwhile (a party left)
        if pending.recipient.is_hub:
            self._finish(pending, "it has already been answered")
            self._answer(pending, self._hub_answer(message))
            return
        self._deliver(
            pending.recipient,
            "samp.client.receiveCall",
            (pending.sender.client_id, pending.msg_id, message),
            functools.partial(self._fail_call, pending.msg_id),
        )

    def _broadcast_event(self, mtype, params):
        message = {"samp.mtype": mtype, "samp.params": params}
        for recipient in self._recipients(mtype, self._hub):
            self._later(self._deliver_notification, self._hub, recipient, message)

    def _deliver(self, client, method, args, on_error=None):
        """Send one callback to *client* now, or queue it behind others."""
        if not client.active:
            return
        if client.proxy is None:
            if on_error is not None:
                on_error(f"{method} to {client.client_id} not delivered: it is not callable")
            return
        if len(client.in_flight) < self._delivery_limit(client):
            self._send(client, method, args, on_error)
        elif len(client.queue) < self._max_queued:
            client.queue.append((method, args, on_error))
        else:
            text = f"{method} to {client.client_id} not delivered: too many deliveries queued"
            self._log.warn("{text}", text=text)
            if on_error is not None:
                on_error(text)

    def _delivery_limit(self, client):
        # A callback server that closes every connection (astropy's, JSAMP's)
        # gets a few at a time: astropy listens with a queue of 5, and an
        # overflowing queue costs a one-second retry per dropped connection.
        if client.proxy.keeps_connections:
            return self._max_concurrent
        return min(self._max_concurrent, CLOSING_SERVER_DELIVERIES)

    def _send(self, client, method, args, on_error):
        proxy = client.proxy
        d = proxy.call(method, client.private_key, *args)
        client.in_flight[d] = proxy
        d.addCallbacks(
            self._delivered,
            self._delivery_failed,
            callbackArgs=(client, proxy),
            errbackArgs=(client, proxy, method, on_error),
        )
        d.addBoth(self._delivery_done, client, d)

    def _delivered(self, result, client, proxy):
        if proxy is client.proxy:
            client.failures = 0

    def _delivery_failed(self, failure, client, proxy, method, on_error):
        if failure.check(defer.CancelledError) or not client.active:
            return  # the client left or the hub is stopping
        # A delivery to a callback URL the client has since replaced says
        # nothing about its new one: it neither counts nor resets.
        current = proxy is client.proxy
        transport_failure = not failure.check(xmlrpc.client.Fault)
        if current:
            client.failures = client.failures + 1 if transport_failure else 0
        if transport_failure:
            text = f"{method} to {client.client_id} failed: {failure.getErrorMessage()}"
        else:
            text = f"{client.client_id} refused {method}: {failure.value.faultString}"
        self._log.warn(
            "SAMP delivery problem ({failures} in a row): {text}", failures=client.failures, text=text
        )
        if on_error is not None:
            on_error(text)
        if transport_failure and current and client.failures >= self._max_failures:
            self._drop(client, f"{client.failures} deliveries in a row failed; last: {text}")

    def _delivery_done(self, result, client, d):
        proxy = client.in_flight.pop(d, None)
        if proxy is not None and proxy is not client.proxy and proxy not in client.in_flight.values():
            self._close_proxy(proxy)  # replaced by setXmlrpcCallback, now idle
        if client.active and client.queue:
            method, args, on_error = client.queue.popleft()
            self._send(client, method, args, on_error)

    def _cancel_deliveries(self, client):
        for d in list(client.in_flight):
            d.cancel()

    def _close_proxy(self, proxy):
        d = proxy.close()
        if d.called:
            return
        self._closing.add(d)
        d.addBoth(lambda _: self._closing.discard(d))


def _fire_all(waiters, result):
    for waiter in waiters:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(result)


def start_hub(reactor=None, **kwargs):
    """
    Create a :class:`SAMPHubServer` and start it.

    :param reactor: the reactor (the global one when ``None``).
    :param kwargs: further arguments for :class:`SAMPHubServer`.
    :return: a Deferred firing with the running hub.
    """
    hub = SAMPHubServer(reactor=reactor, **kwargs)
    return hub.start()
