# -*- test-case-name: tests.test_hub_proxy -*-
"""
The hub proxy: every ``samp.hub.*`` method of the Standard Profile as a
method returning a Deferred.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from ._discovery import get_hub_params
from ._encoding import SAMPValue, check_samp_value, timeout_seconds
from ._errors import SAMPHubError, SAMPProxyError
from ._limits import DEFAULT_HUB_TIMEOUT
from ._reactor import default_reactor
from ._xmlrpc import DEFAULT_MAX_BYTES, XMLRPCProxy

if TYPE_CHECKING:
    from twisted.web.iweb import IPolicyForHTTPS

    from ._tls import TLSOptions

#: Extra seconds the HTTP request of ``callAndWait`` may take beyond the SAMP
#: timeout, so that the hub's own timeout fault arrives first.
CALL_AND_WAIT_GRACE = 10.0


class RunningHub(Protocol):
    """A hub running in this process, such as :class:`SAMPHubServer`."""

    @property
    def params(self) -> Mapping[str, str] | None:
        """The hub's lockfile entries; ``None`` while it is not running."""


def _tls_policy(tls: TLSOptions | None, url: str) -> IPolicyForHTTPS | None:
    """The TLS policy for the hub at *url*: *tls*, else the defaults
    (verifying the hub against the system's trust) for an https hub; a
    plain http hub given no TLS settings needs none, and loads no TLS."""
    if tls is None:
        if urlsplit(url).scheme != "https":
            return None
        from ._tls import TLSOptions

        tls = TLSOptions()
    return tls.client_policy()


def _check_string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__} {value!r}")
    return check_samp_value(value, what)


class SAMPHubProxy:
    """
    A proxy for the methods of one SAMP hub, over XML-RPC.

    Call :meth:`connect` first.  Each hub method checks its arguments against
    SAMP's data rules (raising :class:`TypeError` or :class:`ValueError`
    before anything is sent) and returns a Deferred, which fails with
    :class:`SAMPProxyError` when the hub answers with a fault and with
    :class:`SAMPHubError` when the hub cannot be reached.

    :param reactor: the reactor; the global one when ``None``.
    :param float timeout: seconds any hub request may take.
    """

    def __init__(self, reactor: IReactorTime | None = None, timeout: float = DEFAULT_HUB_TIMEOUT) -> None:
        self._reactor: IReactorTime = default_reactor(reactor)
        self._timeout = timeout
        self._proxy: XMLRPCProxy | None = None
        self.lockfile: dict[str, str] | None = None

    @property
    def is_connected(self) -> bool:
        """Whether :meth:`connect` succeeded and :meth:`disconnect` was not
        called since."""
        return self._proxy is not None

    @property
    def url(self) -> str | None:
        """The hub's XML-RPC URL, or ``None`` when not connected."""
        return None if self._proxy is None else self._proxy.url

    def connect(
        self,
        hub: RunningHub | None = None,
        hub_params: Mapping[str, str] | None = None,
        key_file: str | None = None,
        cert_file: str | None = None,
        cert_reqs: int | None = None,
        ca_certs: str | None = None,
        ssl_version: object = None,
        pool_size: int = 20,
        tls: TLSOptions | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> defer.Deferred[SAMPHubProxy]:
        """
        Find the hub and check that it answers.

        The TLS arguments matter for an ``https`` hub only; they may also be
        given as one :class:`TLSOptions` in *tls*.  An https hub's
        certificate is verified (against *ca_certs*, or the system's trust)
        unless *cert_reqs* is :data:`ssl.CERT_NONE`.

        :param hub: a running hub object with a ``params`` dict (such as our
            :class:`SAMPHubServer`), used instead of discovery.
        :param dict hub_params: the hub's lockfile entries, used instead of
            discovery.
        :param str key_file: private key of the client certificate.
        :param str cert_file: client certificate presented to the hub.
        :param cert_reqs: :data:`ssl.CERT_NONE` to skip verifying the hub.
        :param str ca_certs: CA bundle to verify the hub with.
        :param ssl_version: the minimum TLS version.
        :param int pool_size: at most this many concurrent requests.
        :param TLSOptions tls: all TLS settings in one object.
        :param int max_bytes: the largest response accepted from the hub.
        :return: a Deferred firing with this proxy once the hub answered a
            ping, or failing with :class:`SAMPHubError` (no hub, or *hub*
            not running).
        :raises ValueError: bad TLS settings (a missing file, a key that
            does not match its certificate, an obsolete protocol...).
        """
        if tls is None and any(v is not None for v in (key_file, cert_file, cert_reqs, ca_certs, ssl_version)):
            from ._tls import TLSOptions  # only hubs given TLS settings load TLS

            tls = TLSOptions.from_arguments(key_file, cert_file, cert_reqs, ca_certs, ssl_version)
        if self._proxy is not None:
            return defer.fail(SAMPHubError("the hub proxy is already connected"))
        if hub is not None:
            hub_params = hub.params
            if hub_params is None:
                # Not started (or stopped): never fall back to discovery,
                # which would find some other hub.
                return defer.fail(SAMPHubError("cannot connect to the hub given: it is not running"))
        if hub_params is not None:
            d = defer.succeed(dict(hub_params))
        else:
            d = get_hub_params(self._reactor)
        return d.addCallback(self._connect_to, pool_size, max_bytes, tls)

    def _connect_to(
        self, params: dict[str, str], pool_size: int, max_bytes: int, tls: TLSOptions | None
    ) -> defer.Deferred[SAMPHubProxy]:
        url = params.get("samp.hub.xmlrpc.url")
        if not url or not params.get("samp.secret"):
            raise SAMPHubError("hub parameters lack samp.hub.xmlrpc.url or samp.secret")
        try:
            proxy = XMLRPCProxy(
                url,
                self._reactor,
                max_concurrent=pool_size,
                timeout=self._timeout,
                max_bytes=max_bytes,
                tls_policy=_tls_policy(tls, url),
                error_class=SAMPHubError,
                fault_class=SAMPProxyError,
            )
        except ValueError as exc:
            raise SAMPHubError(str(exc)) from None
        self.lockfile = params
        self._proxy = proxy
        d = self.ping()

        def failed(failure: Failure) -> defer.Deferred[SAMPHubProxy]:
            self._proxy = None
            self.lockfile = None
            closed: defer.Deferred[None] = proxy.close()
            return closed.addCallback(lambda _: failure)

        return d.addCallbacks(lambda _: self, failed)

    def disconnect(self) -> defer.Deferred[None]:
        """
        Forget the hub and close idle connections to it.

        :return: a Deferred firing when the connections are closed.
        """
        proxy, self._proxy = self._proxy, None
        if proxy is None:
            return defer.succeed(None)
        closed: defer.Deferred[None] = proxy.close()
        return closed

    def _call(
        self, method: str, *args: SAMPValue, timeout: float | None | EllipsisType = ...
    ) -> defer.Deferred[Any]:
        if self._proxy is None:
            return defer.fail(SAMPHubError(f"cannot call {method}: not connected to a hub"))
        d: defer.Deferred[Any] = self._proxy.call(method, *args, timeout=timeout)
        return d

    def ping(self) -> defer.Deferred[object]:
        """
        ``samp.hub.ping``: check that the hub is alive.

        :return: a Deferred firing with the hub's (meaningless) answer.
        """
        return self._call("samp.hub.ping")

    def register(self, secret: str) -> defer.Deferred[dict[str, Any]]:
        """
        ``samp.hub.register``: register a new client.

        :param str secret: the lockfile's ``samp.secret``.
        :return: a Deferred firing with the registration map
            (``samp.hub-id``, ``samp.self-id``, ``samp.private-key``).
        """
        return self._call("samp.hub.register", _check_string(secret, "secret"))

    def unregister(self, private_key: str) -> defer.Deferred[object]:
        """
        ``samp.hub.unregister``: end a registration.

        :param str private_key: the client's private key.
        """
        return self._call("samp.hub.unregister", _check_string(private_key, "private_key"))

    def set_xmlrpc_callback(self, private_key: str, xmlrpc_addr: str) -> defer.Deferred[object]:
        """
        ``samp.hub.setXmlrpcCallback``: tell the hub where the client listens.

        :param str private_key: the client's private key.
        :param str xmlrpc_addr: the URL of the client's XML-RPC server.
        """
        return self._call(
            "samp.hub.setXmlrpcCallback",
            _check_string(private_key, "private_key"),
            _check_string(xmlrpc_addr, "xmlrpc_addr"),
        )

    def declare_metadata(self, private_key: str, metadata: dict[str, Any]) -> defer.Deferred[object]:
        """
        ``samp.hub.declareMetadata``: replace the client's metadata.

        :param str private_key: the client's private key.
        :param dict metadata: e.g. ``{"samp.name": "myapp"}``.
        """
        return self._call(
            "samp.hub.declareMetadata",
            _check_string(private_key, "private_key"),
            _check_map(metadata, "metadata"),
        )

    def get_metadata(self, private_key: str, client_id: str) -> defer.Deferred[dict[str, Any]]:
        """
        ``samp.hub.getMetadata``: another client's metadata.

        :return: a Deferred firing with the metadata map.
        """
        return self._call(
            "samp.hub.getMetadata",
            _check_string(private_key, "private_key"),
            _check_string(client_id, "client_id"),
        )

    def declare_subscriptions(
        self, private_key: str, subscriptions: dict[str, Any]
    ) -> defer.Deferred[object]:
        """
        ``samp.hub.declareSubscriptions``: replace the client's subscriptions.

        :param dict subscriptions: MType pattern → annotation map.
        """
        return self._call(
            "samp.hub.declareSubscriptions",
            _check_string(private_key, "private_key"),
            _check_map(subscriptions, "subscriptions"),
        )

    def get_subscriptions(self, private_key: str, client_id: str) -> defer.Deferred[dict[str, Any]]:
        """
        ``samp.hub.getSubscriptions``: another client's subscriptions.

        :return: a Deferred firing with the subscriptions map.
        """
        return self._call(
            "samp.hub.getSubscriptions",
            _check_string(private_key, "private_key"),
            _check_string(client_id, "client_id"),
        )

    def get_registered_clients(self, private_key: str) -> defer.Deferred[list[str]]:
        """
        ``samp.hub.getRegisteredClients``: the ids of the other clients,
        the hub's own included.

        :return: a Deferred firing with a list of client ids.
        """
        return self._call("samp.hub.getRegisteredClients", _check_string(private_key, "private_key"))

    def get_subscribed_clients(self, private_key: str, mtype: str) -> defer.Deferred[dict[str, Any]]:
        """
        ``samp.hub.getSubscribedClients``: the clients subscribed to *mtype*.

        :return: a Deferred firing with a map of client id → annotations.
        """
        return self._call(
            "samp.hub.getSubscribedClients",
            _check_string(private_key, "private_key"),
            _check_string(mtype, "mtype"),
        )

    def notify(
        self, private_key: str, recipient_id: str, message: dict[str, Any]
    ) -> defer.Deferred[object]:
        """
        ``samp.hub.notify``: send a notification to one client.

        :param dict message: the message map (``samp.mtype``, ``samp.params``).
        """
        return self._call(
            "samp.hub.notify",
            _check_string(private_key, "private_key"),
            _check_string(recipient_id, "recipient_id"),
            _check_message(message),
        )

    def notify_all(self, private_key: str, message: dict[str, Any]) -> defer.Deferred[list[str]]:
        """
        ``samp.hub.notifyAll``: send a notification to every subscribed client.

        :return: a Deferred firing with the list of recipient ids.
        """
        return self._call(
            "samp.hub.notifyAll",
            _check_string(private_key, "private_key"),
            _check_message(message),
        )

    def call(
        self, private_key: str, recipient_id: str, msg_tag: str, message: dict[str, Any]
    ) -> defer.Deferred[str]:
        """
        ``samp.hub.call``: send a call to one client; the response comes
        back later through the client's ``receiveResponse``.

        :param str msg_tag: the sender's tag, returned with the response.
        :return: a Deferred firing with the hub's msg-id.
        """
        return self._call(
            "samp.hub.call",
            _check_string(private_key, "private_key"),
            _check_string(recipient_id, "recipient_id"),
            _check_string(msg_tag, "msg_tag"),
            _check_message(message),
        )

    def call_all(
        self, private_key: str, msg_tag: str, message: dict[str, Any]
    ) -> defer.Deferred[dict[str, str]]:
        """
        ``samp.hub.callAll``: send a call to every subscribed client.

        :return: a Deferred firing with a map of recipient id → msg-id.
        """
        return self._call(
            "samp.hub.callAll",
            _check_string(private_key, "private_key"),
            _check_string(msg_tag, "msg_tag"),
            _check_message(message),
        )

    def call_and_wait(
        self, private_key: str, recipient_id: str, message: dict[str, Any], timeout: str | float
    ) -> defer.Deferred[dict[str, Any]]:
        """
        ``samp.hub.callAndWait``: a call answered by the hub itself once the
        recipient replies.  The HTTP request stays open for the whole wait.

        :param timeout: seconds, as a SAMP int string or a number; ``"0"``
            waits without limit.
        :return: a Deferred firing with the response map, or failing with
            :class:`SAMPProxyError` when the hub's timeout runs out.
        """
        seconds = timeout_seconds(timeout)
        wire = "0" if seconds is None else str(max(1, int(round(seconds))))
        http_timeout = None if seconds is None else seconds + CALL_AND_WAIT_GRACE
        return self._call(
            "samp.hub.callAndWait",
            _check_string(private_key, "private_key"),
            _check_string(recipient_id, "recipient_id"),
            _check_message(message),
            wire,
            timeout=http_timeout,
        )

    def reply(
        self, private_key: str, msg_id: str, response: dict[str, Any]
    ) -> defer.Deferred[object]:
        """
        ``samp.hub.reply``: answer a call received earlier.

        :param str msg_id: the msg-id the call arrived with.
        :param dict response: the response map (``samp.status`` and
            ``samp.result`` or ``samp.error``).
        """
        return self._call(
            "samp.hub.reply",
            _check_string(private_key, "private_key"),
            _check_string(msg_id, "msg_id"),
            _check_response(response),
        )


def _check_map(value: object, what: str) -> dict[str, SAMPValue]:
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict, not {type(value).__name__} {value!r}")
    return check_samp_value(value, what)


def _check_message(message: object) -> dict[str, SAMPValue]:
    checked = _check_map(message, "message")
    if "samp.mtype" not in checked:
        raise ValueError("message has no samp.mtype")
    return checked


def _check_response(response: object) -> dict[str, SAMPValue]:
    checked = _check_map(response, "response")
    if "samp.status" not in checked:
        raise ValueError("response has no samp.status")
    return checked
