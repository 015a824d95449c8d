# -*- test-case-name: tests.test_tap -*-
"""
The ``twistd samp-client`` plugin.

This module is the edge where strings become objects: :class:`Options`
parses and checks the command line, and :func:`makeService` builds a
:class:`SAMPClientService` from it.  The dropin
``twisted/plugins/sampy_twisted_plugin.py`` names this module, so it is
imported only when ``samp-client`` is run.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorTime, IStreamServerEndpoint
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from zope.interface import implementer

from ._discovery import STD_LOCKURL, lockfile_location
from ._encoding import check_samp_value
from ._errors import SAMPHubError
from ._integrated import SAMPIntegratedClient
from ._mtype import check_mtype_pattern
from ._options import ClientTLSOptionsMixin, positive_seconds
from ._reactor import default_reactor
from ._service import HUB_AUTO, HUB_MODES, HUB_RUNNING, SAMPClientService
from ._tls import TLSOptions

__all__ = [
    "ClientOptions",
    "Options",
    "log_message",
    "makeService",
    "make_client",
    "make_client_service",
    "parse_hub",
]

DEFAULT_LISTEN = "tcp:0:interface=127.0.0.1"
"""Where the client's callback server listens unless ``--listen`` says."""

_log = Logger(namespace="sampy_twisted.samp_client")


def parse_hub(text: str) -> tuple[str, str | None]:
    """
    Parse a ``--hub`` value.

    :param str text: ``auto``, ``running``, ``embedded``, a
        ``std-lockurl:`` URL (as ``SAMP_HUB`` takes) or a lockfile path
        (which must contain a ``/`` or exist).
    :return: ``(mode, lockfile)``: a hub mode for
        :class:`SAMPClientService` and a lockfile path, URL or ``None``.
        An explicit lockfile means a running hub.
    :rtype: tuple
    :raises usage.UsageError: *text* is none of these.
    """
    if text in HUB_MODES:
        return text, None
    if text.startswith(STD_LOCKURL):
        try:
            kind, where = lockfile_location({"SAMP_HUB": text})
        except SAMPHubError as exc:
            raise usage.UsageError(f"--hub {text}: {exc}") from None
        return HUB_RUNNING, where
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text):
        # A bare URL would otherwise pass for a relative path.
        raise usage.UsageError(
            f"--hub {text}: not a lockfile path; give a lockfile URL as "
            f"std-lockurl:<url>, with a file: or http: URL"
        )
    if os.sep in text or "/" in text or os.path.exists(text):
        return HUB_RUNNING, os.path.abspath(os.path.expanduser(text))
    raise usage.UsageError(
        f"--hub must be auto, running, embedded, a std-lockurl: URL or a "
        f"lockfile path, not {text!r}"
    )


def _key_value(text: str, option: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise usage.UsageError(f"--{option} needs KEY=VALUE, not {text!r}")
    try:
        check_samp_value(value, f"--{option} {key}")
    except (TypeError, ValueError) as exc:
        raise usage.UsageError(str(exc)) from None
    return key, value


def _load_handler(spec: str) -> Callable[..., object]:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise usage.UsageError(f"--handler needs module:callable, not {spec!r}")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise usage.UsageError(f"--handler {spec}: cannot import {module_name}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise usage.UsageError(f"--handler {spec}: {module_name} has no {attribute}") from None
    if not callable(target):
        raise usage.UsageError(f"--handler {spec}: {attribute} is not callable")
    return target


@implementer(IStreamServerEndpoint)
class _TLSServerEndpoint:
    """
    TLS over another stream server endpoint (Twisted 26.4 has
    ``wrapServerTLS``; this works from our floor up).
    """

    def __init__(self, server_options: CertificateOptions, inner: IStreamServerEndpoint) -> None:
        self._server_options = server_options
        self._inner = inner

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """Listen on the inner endpoint, speaking TLS to every connection."""
        return self._inner.listen(TLSMemoryBIOFactory(self._server_options, False, protocolFactory))


def _callback_endpoint(
    reactor: IReactorTime | None, description: str, tls: TLSOptions | None = None
) -> IStreamServerEndpoint:
    endpoint = serverFromString(reactor, description)
    if not isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
        raise ValueError("the callback server must listen on TCP (a tcp: or tcp6: endpoint)")
    if tls is not None:
        return _TLSServerEndpoint(tls.server_options(), endpoint)
    return endpoint


class ClientOptions(ClientTLSOptionsMixin, usage.Options):
    """
    The options of ``twistd samp-client``: a SAMP client kept registered
    with a hub, logging the messages it subscribes to.
    """

    synopsis = "[options]"
    longdesc = (
        "Run a SAMP client that stays registered with a hub: it finds or "
        "starts a hub, registers, and registers again whenever the hub comes "
        "back after going away. Messages of the --subscribe MTypes are logged; "
        "calls are answered samp.ok."
    )
    optParameters = [
        ["name", None, "samp-client", "The samp.name metadata."],
        ["description", None, None, "The samp.description.text metadata."],
        [
            "hub",
            None,
            HUB_AUTO,
            "auto (the running hub; an embedded one only if none runs at start), "
            "running (wait for a hub), embedded (always our own), a std-lockurl: "
            "URL or a lockfile path.",
        ],
        ["ping-interval", None, 5.0, "Seconds between checks that the hub is alive.", positive_seconds("ping-interval")],
        ["listen", None, DEFAULT_LISTEN, "Endpoint of the callback server (TCP)."],
    ]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self["metadata"] = {}
        self["subscribe"] = []
        self["handlers"] = []

    def opt_metadata(self, text: str) -> None:
        """More metadata, as KEY=VALUE (repeatable)."""
        key, value = _key_value(text, "metadata")
        self["metadata"][key] = value

    def opt_subscribe(self, mtype: str) -> None:
        """Subscribe to an MType or pattern (table.*), logging what arrives (repeatable)."""
        try:
            check_mtype_pattern(mtype)
        except ValueError as exc:
            raise usage.UsageError(f"--subscribe: {exc}") from None
        self["subscribe"].append(mtype)

    def opt_handler(self, spec: str) -> None:
        """module:callable, called with the client to bind its own handlers (repeatable)."""
        self["handlers"].append(_load_handler(spec))

    def postOptions(self) -> None:
        """Check the options that are not checked as they are parsed."""
        self["hub_mode"], self["lockfile"] = parse_hub(self["hub"])
        for option in ("name", "description"):
            if self[option] is not None:
                try:
                    check_samp_value(self[option], f"--{option}")
                except ValueError as exc:
                    raise usage.UsageError(str(exc)) from None
        try:
            # Only parsed here, for the error message; makeService builds it
            # again on the real reactor.
            _callback_endpoint(None, self["listen"])
        except (ValueError, KeyError, TypeError) as exc:
            raise usage.UsageError(f"--listen {self['listen']}: {exc}") from None
        self.check_tls()


Options = ClientOptions


def log_message(
    private_key: str, sender_id: str, msg_id: str | None, mtype: str, params: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """
    A handler for ``bind_receive_message`` that logs each message and
    answers calls ``samp.ok`` with an empty result.
    """
    _log.info(
        "Received {kind} {mtype} from {sender}: {params}",
        kind="notification" if msg_id is None else "call",
        mtype=mtype,
        sender=sender_id,
        params=params,
    )
    return {}


def make_client(
    reactor: IReactorTime,
    name: str | None = None,
    description: str | None = None,
    metadata: dict[str, Any] | None = None,
    endpoint: IStreamServerEndpoint | None = None,
    tls: TLSOptions | None = None,
) -> SAMPIntegratedClient:
    """
    An integrated client whose callback server listens on *endpoint*.

    :param reactor: the reactor.
    :param endpoint: an ``IStreamServerEndpoint`` (TCP; a TLS one with
        *tls*), or ``None`` for the client's default (127.0.0.1, any port).
    :param TLSOptions tls: serve the callbacks over https with these
        settings.
    :rtype: SAMPIntegratedClient
    """
    return SAMPIntegratedClient(
        name=name,
        description=description,
        metadata=metadata,
        reactor=reactor,
        endpoint=endpoint,
        https=tls is not None,
        tls=tls,
    )


def make_client_service(options: usage.Options, reactor: IReactorTime) -> SAMPClientService:
    """
    Build the ``samp-client`` service from parsed options.

    :param ClientOptions options: the parsed options.
    :param reactor: the reactor.
    :rtype: SAMPClientService
    """
    client = make_client(
        reactor,
        name=options["name"],
        description=options["description"],
        metadata=options["metadata"],
        endpoint=_callback_endpoint(reactor, options["listen"], options["callback_tls"]),
        tls=options["callback_tls"],
    )
    for mtype in options["subscribe"]:
        client.bind_receive_message(mtype, log_message)
    for handler in options["handlers"]:
        handler(client)
    return SAMPClientService(
        client,
        hub=options["hub_mode"],
        lockfile=options["lockfile"],
        ping_interval=options["ping-interval"],
        reactor=reactor,
        hub_tls=options["hub_tls"],
    )


def makeService(options: usage.Options) -> SAMPClientService:
    """
    The ``samp-client`` service, on the global reactor.

    :param ClientOptions options: the parsed options.
    :rtype: SAMPClientService
    """
    return make_client_service(options, cast(IReactorTime, default_reactor()))
