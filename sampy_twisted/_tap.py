# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugins: ``twistd samp-client`` and ``twistd samp-hub``.

This module is the edge where strings become objects: the :class:`Options`
classes parse and check the command line, and the ``make*`` functions build
:class:`SAMPClientService` and :class:`SAMPHubServer` from them.  The dropin
``twisted/plugins/sampy_twisted_plugin.py`` names this module (for
``samp-client``) and its :data:`hub` attribute (for ``samp-hub``), so it is
imported only when one of the two is run.
"""

from __future__ import annotations

import atexit
import importlib
import os
import re
import ssl
import sys
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from twisted.application import service
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorCore,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.ssl import CertificateOptions
from twisted.logger import Logger
from twisted.internet.defer import Deferred
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from ._discovery import STD_LOCKURL, lockfile_location
from ._encoding import check_samp_value
from ._errors import SAMPHubError
from ._integrated import SAMPIntegratedClient
from ._mtype import check_mtype_pattern
from ._service import HUB_AUTO, HUB_MODES, HUB_RUNNING, SAMPClientService
from ._tls import TLSOptions

if TYPE_CHECKING:
    from ._hub import SAMPHubServer

    # For the type checker, the mixin below is the Options it is mixed into.
    _OptionsBase = usage.Options
else:
    _OptionsBase = object

__all__ = [
    "CERT_REQS",
    "ClientOptions",
    "ClientTLSOptionsMixin",
    "HubOptions",
    "Options",
    "TLS_VERSIONS",
    "hub",
    "makeService",
    "make_client_service",
    "make_hub",
    "make_hub_service",
    "parse_hub",
    "read_passphrase",
]

DEFAULT_LISTEN = "tcp:0:interface=127.0.0.1"
"""Where the client's callback server listens unless ``--listen`` says."""

_log = Logger(namespace="sampy_twisted.samp_client")


def _positive_seconds(option: str) -> Callable[[str], float]:
    def coerce(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--{option} must be a number of seconds, not {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise ValueError(f"--{option} must be a positive number of seconds, not {text!r}")
        return value

    return coerce


def _port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--port must be a TCP port number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, not {value}")
    return value


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


# -- TLS options ---------------------------------------------------------------

CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
"""What ``--cert-reqs`` values mean."""

TLS_VERSIONS = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
"""What ``--tls-min-version`` values mean."""


def _choice(options: usage.Options, option: str, choices: Mapping[str, object]) -> str | None:
    """The value of ``--option`` among *choices* (``None`` when not given)."""
    given: str | None = options[option]
    if given is None:
        return None
    value = given.lower()
    if value not in choices:
        raise usage.UsageError(f"--{option} must be {_or(list(choices))}, not {options[option]!r}")
    return value


def _or(words: list[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def _file(options: usage.Options, option: str) -> str | None:
    """An existing file's absolute path, for ``--option`` (if given)."""
    given: str | None = options[option]
    if given is None:
        return None
    path = os.path.abspath(os.path.expanduser(given))
    if not os.path.isfile(path):
        raise usage.UsageError(f"--{option} {options[option]}: no such file")
    options[option] = path
    return path


def read_passphrase(path: str) -> str:
    """
    The passphrase of an encrypted private key, read from the first line of
    *path* (the line end is dropped).  Passphrases are never taken on the
    command line, where other users could read them.

    :param str path: the passphrase file.
    :rtype: str
    :raises usage.UsageError: the file cannot be read, or its first line is
        empty.
    """
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise usage.UsageError(f"--key-passphrase-file {path}: cannot read it: {why}") from None
    passphrase = line.rstrip("\r\n")
    if not passphrase:
        raise usage.UsageError(f"--key-passphrase-file {path}: its first line is empty")
    return passphrase


def _tls(**settings: Any) -> TLSOptions:
    """A :class:`TLSOptions`, its errors made usage errors."""
    try:
        return TLSOptions(**settings)
    except ValueError as exc:
        raise usage.UsageError(f"TLS: {exc}") from None


def _identity(options: usage.Options) -> dict[str, Any]:
    """The certificate, key and passphrase options, checked."""
    cert_file, key_file = _file(options, "cert-file"), _file(options, "key-file")
    passphrase_file = _file(options, "key-passphrase-file")
    if key_file is not None and cert_file is None:
        raise usage.UsageError("--key-file needs --cert-file: a key alone identifies nobody")
    if passphrase_file is not None and cert_file is None:
        raise usage.UsageError("--key-passphrase-file needs --cert-file (and --key-file)")
    passphrase = read_passphrase(passphrase_file) if passphrase_file else None
    version = _choice(options, "tls-min-version", TLS_VERSIONS)
    return {
        "cert_file": cert_file,
        "key_file": key_file,
        "passphrase": passphrase,
        "ssl_version": None if version is None else TLS_VERSIONS[version],
    }


_IDENTITY_PARAMETERS = [
    ["key-file", None, None, "PEM private key, when not in --cert-file."],
    [
        "key-passphrase-file",
        None,
        None,
        "A file whose first line is the passphrase of an encrypted key (never give passphrases on the "
        "command line).",
    ],
    ["tls-min-version", None, None, "The oldest TLS version accepted: 1.2 (the default) or 1.3."],
]


class ClientTLSOptionsMixin(_OptionsBase):
    """
    The TLS options of a SAMP client (``twistd samp-client`` and the
    ``sampy-twisted`` client commands).

    After :meth:`check_tls` the options hold ``hub_tls``, the
    :class:`TLSOptions` for https hubs (``None``: the defaults, verifying
    the hub against the system's trust), and ``callback_tls``, those of the
    https callback server (``None`` for plain http callbacks).
    """

    optFlags: list[list[str | None]] = [
        ["https", None, "Serve the callbacks over TLS (https); needs --cert-file."],
    ]
    optParameters: list[list[Any]] = [
        [
            "cert-file",
            None,
            None,
            "PEM certificate of this client (it may hold the key too): its https callback server's, "
            "and presented to https hubs that ask for a client certificate.",
        ],
        *_IDENTITY_PARAMETERS,
        [
            "ca-certs",
            None,
            None,
            "PEM bundle of CAs: checks the hub's certificate when the https callback server asks for "
            "one (--cert-reqs), and verifies https hubs unless --hub-ca-certs is given.",
        ],
        [
            "cert-reqs",
            None,
            None,
            "Whether the https callback server asks the hub for a certificate: none (the default), "
            "optional (verified if sent) or required; optional and required need --ca-certs.",
        ],
        [
            "hub-ca-certs",
            None,
            None,
            "PEM bundle of CAs verifying https hubs (default: --ca-certs, else the system's trust).",
        ],
        [
            "hub-cert-reqs",
            None,
            None,
            "required (the default): verify an https hub's certificate and host name; none: don't "
            "(insecure; the explicit opt-out).",
        ],
    ]

    def check_tls(self) -> None:
        """
        Check the TLS options and build ``hub_tls`` and ``callback_tls``.

        :raises usage.UsageError: a contradiction, a missing file, a key
            that does not match its certificate, a wrong passphrase...
        """
        identity = _identity(self)
        ca_certs, hub_ca_certs = _file(self, "ca-certs"), _file(self, "hub-ca-certs")
        cert_reqs = _choice(self, "cert-reqs", CERT_REQS)
        hub_cert_reqs = _choice(self, "hub-cert-reqs", {"required": None, "none": None})
        if self["https"] and identity["cert_file"] is None:
            raise usage.UsageError("--https needs --cert-file (and --key-file unless the key is in it)")
        if cert_reqs is not None and not self["https"]:
            raise usage.UsageError(
                "--cert-reqs is about the https callback server: it needs --https "
                "(to verify the hub, see --hub-ca-certs and --hub-cert-reqs)"
            )
        if cert_reqs in ("optional", "required") and ca_certs is None:
            raise usage.UsageError(f"--cert-reqs {cert_reqs} needs --ca-certs: the CAs that issue the hub's certificate")
        if hub_cert_reqs == "none" and hub_ca_certs is not None:
            raise usage.UsageError("--hub-cert-reqs none contradicts --hub-ca-certs: the hub is not verified at all")
        self["callback_tls"] = None
        if self["https"]:
            self["callback_tls"] = _tls(ca_certs=ca_certs, cert_reqs=None if cert_reqs is None else CERT_REQS[cert_reqs], **identity)
        self["hub_tls"] = None
        hub_ca_certs = None if hub_cert_reqs == "none" else (hub_ca_certs or ca_certs)
        if identity["cert_file"] or identity["ssl_version"] or hub_ca_certs or hub_cert_reqs:
            self["hub_tls"] = _tls(
                ca_certs=hub_ca_certs,
                cert_reqs=ssl.CERT_NONE if hub_cert_reqs == "none" else None,
                **identity,
            )


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
        ["ping-interval", None, 5.0, "Seconds between checks that the hub is alive.", _positive_seconds("ping-interval")],
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
    from twisted.internet import reactor

    return make_client_service(options, cast(IReactorTime, reactor))


class HubOptions(usage.Options):
    """
    The options of ``twistd samp-hub`` (and ``sampy-twisted hub``): a SAMP
    hub speaking the Standard Profile.
    """

    synopsis = "[options]"
    longdesc = (
        "Run a SAMP hub (Standard Profile). It writes its lockfile where "
        "SAMP_HUB (std-lockurl:file:...) says, else ~/.samp, refusing to start "
        "if a live hub owns it, and removes it when it stops."
    )
    optFlags = [
        ["multi", None, "astropy-style multi-hub mode: write a new ~/.samp-1/samp-hub-* lockfile."],
        ["https", None, "Serve the hub over TLS (https); needs --cert-file."],
        ["monitor", None, "Serve a live monitor page; 'sampy-twisted monitor' prints its URL."],
    ]
    optParameters = [
        ["lockfile", None, None, "Where to write the lockfile."],
        ["port", None, 0, "TCP port of the hub's XML-RPC server (0: any free port).", _port_number],
        ["interface", None, "127.0.0.1", "Interface to listen on."],
        ["label", None, "", "A label for the hub, written to the lockfile as hub.label."],
        [
            "client-timeout",
            None,
            30.0,
            "Seconds each delivery to a client may take.",
            _positive_seconds("client-timeout"),
        ],
        [
            "cert-file",
            None,
            None,
            "PEM certificate of the hub (it may hold the key too); also presented to https callback "
            "servers that ask for a client certificate.",
        ],
        *_IDENTITY_PARAMETERS,
        [
            "ca-certs",
            None,
            None,
            "PEM bundle of CAs: those issuing client certificates (--cert-reqs), and those verifying "
            "https callback servers (default: the system's trust).",
        ],
        [
            "cert-reqs",
            None,
            None,
            "Client certificates: none (not asked for; the default), optional (verified if sent) or "
            "required (a client without one from --ca-certs cannot connect).",
        ],
        [
            "callback-cert-reqs",
            None,
            None,
            "required (the default): verify https callback servers' certificates and host names; none: "
            "don't (insecure; the explicit opt-out).",
        ],
    ]

    def check_tls(self) -> None:
        """
        Check the TLS options and build ``tls`` and ``callback_tls`` (both
        ``None`` without ``--https``).

        :raises usage.UsageError: a contradiction, a missing file, a key
            that does not match its certificate, a wrong passphrase...
        """
        given = [
            option
            for option in ("cert-file", "key-file", "key-passphrase-file", "ca-certs", "cert-reqs",
                           "callback-cert-reqs", "tls-min-version")
            if self[option] is not None
        ]
        self["tls"] = self["callback_tls"] = None
        if not self["https"]:
            if given:
                raise usage.UsageError(f"--{given[0]} is a TLS option: it needs --https")
            return
        identity = _identity(self)
        ca_certs = _file(self, "ca-certs")
        cert_reqs = _choice(self, "cert-reqs", CERT_REQS)
        callback_cert_reqs = _choice(self, "callback-cert-reqs", {"required": None, "none": None})
        if identity["cert_file"] is None:
            raise usage.UsageError("--https needs --cert-file (and --key-file unless the key is in it)")
        if cert_reqs in ("optional", "required") and ca_certs is None:
            raise usage.UsageError(
                f"--cert-reqs {cert_reqs} needs --ca-certs: the CAs that issue client certificates"
            )
        self["tls"] = _tls(ca_certs=ca_certs, cert_reqs=None if cert_reqs is None else CERT_REQS[cert_reqs], **identity)
        if callback_cert_reqs == "none":
            self["callback_tls"] = _tls(cert_reqs=ssl.CERT_NONE, **identity)

    def postOptions(self) -> None:
        """Check the options that are not checked as they are parsed."""
        if self["multi"] and self["lockfile"] is not None:
            raise usage.UsageError("--multi and --lockfile cannot be used together")
        if self["lockfile"] is not None:
            self["lockfile"] = os.path.abspath(os.path.expanduser(self["lockfile"]))
            directory = os.path.dirname(self["lockfile"])
            if not os.path.isdir(directory):
                raise usage.UsageError(f"--lockfile {self['lockfile']}: no directory {directory}")
        if not self["interface"]:
            raise usage.UsageError("--interface must not be empty")
        self.check_tls()


def make_hub(options: usage.Options, reactor: IReactorTime) -> SAMPHubServer:
    """
    A :class:`SAMPHubServer` built from parsed hub options, not started.

    :param HubOptions options: the parsed options.
    :param reactor: the reactor.
    """
    from ._hub import SAMPHubServer

    return SAMPHubServer(
        reactor=reactor,
        lockfile=options["lockfile"],
        addr=options["interface"],
        port=options["port"],
        label=options["label"],
        client_timeout=options["client-timeout"],
        multi=options["multi"],
        tls=options["tls"],
        callback_tls=options["callback_tls"],
        monitor=bool(options["monitor"]),
    )


class _HubRunner(service.Service):
    """
    Runs a hub under twistd, which must not go on running without one.

    A failure known at once (the port is taken, the lockfile cannot be
    written) is raised from ``startService``, so twistd reports it and exits
    with status 1.  One known only later (a live hub answered at the address
    an existing lockfile names) is logged, stops the reactor and calls
    *on_late_failure*.
    """

    _log = Logger()

    def __init__(
        self, hub: SAMPHubServer, reactor: IReactorTime, on_late_failure: Callable[[], object] | None = None
    ) -> None:
        self.hub = hub
        self._reactor = reactor
        self._on_late_failure = on_late_failure

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self._starting: bool = True
        self._failed_at_once: Failure | None = None
        self.hub.start().addErrback(self._failed)
        self._starting = False
        if self._failed_at_once is not None:
            self.running = False
            self._failed_at_once.raiseException()

    def _failed(self, failure: Failure) -> None:
        if self._starting:
            self._failed_at_once = failure
            return
        self._log.error("The SAMP hub could not start: {why}", why=failure.getErrorMessage())
        if self.running:
            cast(IReactorCore, self._reactor).stop()
            if self._on_late_failure is not None:
                self._on_late_failure()

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        stopped: Deferred[None] = self.hub.stop()
        return stopped


def make_hub_service(
    options: usage.Options, reactor: IReactorTime, on_late_failure: Callable[[], object] | None = None
) -> _HubRunner:
    """
    Build the ``samp-hub`` service from parsed options.

    :param HubOptions options: the parsed options.
    :param reactor: the reactor.
    :param on_late_failure: called with no arguments when the hub fails to
        start after ``startService`` has returned (failures known at once
        are raised from ``startService``).
    :return: an ``IService`` whose ``hub`` attribute is the
        :class:`SAMPHubServer`.
    """
    return _HubRunner(make_hub(options, reactor), reactor, on_late_failure)


def _exit_status_1_at_exit() -> None:
    # twistd cannot be given an exit status once its reactor runs, so the
    # process ends with status 1 once twistd has cleaned up and returned.
    def exit_with_status_1() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)

    atexit.register(exit_with_status_1)


def _make_hub_service_on_global_reactor(options: usage.Options) -> _HubRunner:
    from twisted.internet import reactor

    return make_hub_service(options, cast(IReactorTime, reactor), _exit_status_1_at_exit)


hub = SimpleNamespace(Options=HubOptions, makeService=_make_hub_service_on_global_reactor)
"""What the ``samp-hub`` ServiceMaker loads: its ``Options`` and
``makeService``."""
