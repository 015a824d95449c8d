# -*- test-case-name: tests.test_hub -*-
"""
The SAMP Standard Profile of the hub: how desktop clients find it and reach
the :class:`~._hubcore.HubCore`.

:class:`StandardProfile` owns the hub's secret, publishes the lockfile that
holds it (through :mod:`._lockfile`), and serves the ``samp.hub.*`` XML-RPC
methods: it checks the secret (``register``) or the private key (every other
method) and hands the decoded arguments to the core.  Its clients are
delivered to by push (:class:`~._delivery.PushDelivery`): ``register``
opens their channel, ``setXmlrpcCallback`` points it at a URL.
"""

from __future__ import annotations

import hmac
import inspect
import secrets
import weakref
import xmlrpc.client
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer

from ._callback_policy import DEFAULT_CALLBACK_HOSTS, CallbackHostPolicy, CallbackHosts, CallbackURLRefused
from ._delivery import PushChannel, PushDelivery
from ._hubcore import HubCore, _Client, check_string, checked, key_bytes
from ._lockfile import claim_lockfile, lockfile_path, new_lockfile_params, remove_lockfile_if_ours
from ._xmlrpc import XMLRPCResource

__all__ = ["StandardProfile"]


def _fault(text: str) -> xmlrpc.client.Fault:
    return xmlrpc.client.Fault(1, text)


class StandardProfile:
    """
    The Standard Profile endpoint on a hub core.

    :param HubCore core: the hub's state and rules.
    :param PushDelivery delivery: how its clients get their callbacks.
    :param reactor: the reactor (for the lockfile's ping of an older hub).
    :param str lockfile: the lockfile path option, as ``SAMPHubServer``'s.
    :param bool multi: astropy-style multi-hub lockfile.
    :param str label: the ``hub.label`` lockfile entry.
    :param TLSOptions tls: the hub's TLS settings (written to the
        lockfile), or ``None``.
    :param float ping_timeout: seconds to wait for an older hub's ping.
    :param bool https_callbacks: whether ``https://`` callback URLs can be
        called.
    :param callback_hosts: the hosts callback URLs may name: ``"local"``
        (this machine's addresses), ``"any"``, or a list of host names,
        addresses and networks accepted besides (see
        :class:`~._callback_policy.CallbackHostPolicy`).

    :ivar resource: the ``samp.hub.*`` XML-RPC resource to serve.
    :ivar secret: the ``samp.secret`` while published, else ``None``.
    :ivar lockfile: the lockfile path, once published.
    :ivar params: the lockfile entries, once published.
    """

    def __init__(
        self,
        core: HubCore,
        delivery: PushDelivery,
        reactor: Any,
        lockfile: str | None = None,
        multi: bool = False,
        label: str = "",
        tls: Any = None,
        ping_timeout: float = 5.0,
        https_callbacks: bool = False,
        callback_hosts: CallbackHosts = DEFAULT_CALLBACK_HOSTS,
    ) -> None:
        self._core = core
        self._delivery = delivery
        self._reactor = reactor
        self._lockfile_option = lockfile
        self._multi = multi
        self._label = label
        self._tls = tls
        self._ping_timeout = ping_timeout
        self._https_callbacks = https_callbacks
        self._callback_policy = CallbackHostPolicy(callback_hosts, reactor)
        self._callback_turns: weakref.WeakKeyDictionary[_Client, int] = weakref.WeakKeyDictionary()
        self.secret: str | None = None
        self.lockfile: str | None = None
        self.params: dict[str, str] | None = None
        self.extra_params: dict[str, str] = {}  # implementation-specific lockfile entries
        self.resource = XMLRPCResource(self._procedures(), lenient=False, verbatim=True)

    # -- the lockfile ------------------------------------------------------

    def lockfile_path(self) -> str:
        """Where the lockfile goes; a new secret is drawn for it."""
        self.secret = secrets.token_urlsafe(32)
        return lockfile_path(self._lockfile_option, self._multi)

    async def publish(self, path: str, url: str) -> None:
        """
        Claim the lockfile at *path* for the hub at *url*.

        :raises SAMPHubError: a live hub owns it, or it cannot be written.
        """
        assert self.secret is not None  # drawn by lockfile_path
        params = new_lockfile_params(url, self.secret, self._label, tls=self._tls)
        params.update(self.extra_params)
        await claim_lockfile(path, params, self._reactor, self._ping_timeout)
        self.lockfile = path
        self.params = params

    def withdraw(self) -> None:
        """Remove the lockfile if it is still ours."""
        if self.lockfile is not None and self.secret is not None:
            remove_lockfile_if_ours(self.lockfile, self.secret)

    # -- samp.hub.* ----------------------------------------------------------

    def _procedures(self) -> dict[str, Callable[..., Any]]:
        core = self._core
        caller = self._client_for_key
        keyed: dict[str, Callable[..., Any]] = {
            "declareMetadata": core.declare_metadata,
            "getMetadata": core.get_metadata,
            "declareSubscriptions": core.declare_subscriptions,
            "getSubscriptions": core.get_subscriptions,
            "getRegisteredClients": core.get_registered_clients,
            "getSubscribedClients": core.get_subscribed_clients,
            "notify": core.notify,
            "notifyAll": core.notify_all,
            "call": core.call,
            "callAll": core.call_all,
            "callAndWait": core.call_and_wait,
            "reply": core.reply,
        }
        methods: dict[str, Callable[..., Any]] = {name: _with_caller(caller, operation) for name, operation in keyed.items()}
        methods.update(
            ping=self._ping,
            register=self._register,
            unregister=self._unregister,
            setXmlrpcCallback=self._set_xmlrpc_callback,
        )
        return {f"samp.hub.{name}": method for name, method in methods.items()}

    def _client_for_key(self, private_key: object, stopping_ok: bool = False) -> _Client:
        # A web client's key is refused here: its MType restrictions hold
        # only on the Web Profile.
        client = self._core.client_for_key(private_key, stopping_ok)
        if not isinstance(client.channel, PushChannel):
            raise _fault("unknown private key: not a Standard Profile client")
        return client

    def _ping(self, private_key: object = None) -> str:
        # Accepted with or without a key, valid or not, as JSAMP does:
        # ping only says the hub is alive.  Still, only SAMP data.
        if private_key is not None:
            checked(private_key, "the private key")
        return "1"

    def _register(self, secret: object) -> dict[str, Any]:
        self._core.check_accepting()
        checked(secret, "samp.secret")
        if not isinstance(secret, str) or self.secret is None or not hmac.compare_digest(
            key_bytes(secret), key_bytes(self.secret)
        ):
            raise _fault("registration refused: wrong samp.secret")
        return self._core.reg_info(self._core.register(self._delivery))

    def _unregister(self, private_key: object) -> str:
        client = self._client_for_key(private_key, stopping_ok=True)
        return self._core.unregister(client)

    def _set_xmlrpc_callback(self, private_key: object, url: object) -> defer.Deferred[str]:
        client = self._client_for_key(private_key)
        url = check_string(url, "the callback URL")
        checked(url, "the callback URL")
        try:
            parts = urlsplit(url)
            hostname, _ = parts.hostname, parts.port
        except ValueError:
            raise _fault(f"callback URL {url!r} is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not hostname:
            raise _fault(f"callback URL {url!r} is not an http:// or https:// URL")
        if parts.scheme == "https" and not self._https_callbacks:
            raise _fault(
                f"callback URL {url!r} is https, but this hub has no TLS settings to call "
                f"it with: use an http:// callback URL, or a hub run with TLS"
            )
        checked_url = url
        # Names resolve in their own time: of two URLs set in a row, the
        # later one wins even if the earlier one is checked last.
        turn = self._callback_turns[client] = self._callback_turns.get(client, 0) + 1
        d = self._callback_policy.check(url, hostname)

        def accepted(_: None) -> str:
            # The client may have left meanwhile, or the hub be stopping.
            if not client.active:
                raise _fault("the callback URL was not set: the client is no longer registered")
            if self._callback_turns.get(client) == turn:
                client.channel.set_url(checked_url)
                self._core.client_changed(client, "callback")
            return ""

        def refused(failure: Any) -> str:
            failure.trap(CallbackURLRefused)
            raise _fault(str(failure.value))

        result: defer.Deferred[str] = d.addCallbacks(accepted, refused)
        return result


def _with_caller(caller: Callable[[object], _Client], operation: Callable[..., Any]) -> Callable[..., Any]:
    """``operation(caller(private_key), *args)``, as an XML-RPC method."""

    def method(private_key: object, *args: object) -> Any:
        return operation(caller(private_key), *args)

    # The resource checks argument counts against the operation's own.
    method.__signature__ = _keyed_signature(operation)  # type: ignore[attr-defined]
    return method


def _keyed_signature(operation: Callable[..., Any]) -> inspect.Signature:
    parameters = list(inspect.signature(operation).parameters.values())
    key = inspect.Parameter("private_key", inspect.Parameter.POSITIONAL_ONLY)
    return inspect.Signature([key, *parameters[1:]])
