# -*- test-case-name: tests.test_tap -*-
"""
The ``twistd samp-hub`` plugin (its options are also those of
``sampy-twisted hub``).

:class:`Options` parses and checks the command line, :func:`make_hub`
builds a :class:`SAMPHubServer` from it and :func:`makeService` the service
twistd runs.  The dropin ``twisted/plugins/sampy_twisted_plugin.py`` names
this module, so it is imported only when ``samp-hub`` is run.
"""

from __future__ import annotations

import atexit
import os
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from ._options import (
    CERT_REQS,
    IDENTITY_PARAMETERS,
    checked_tls,
    choice,
    existing_file,
    port_number,
    positive_seconds,
    tls_identity,
)
from ._reactor import default_reactor

if TYPE_CHECKING:
    from ._hub import SAMPHubServer

__all__ = [
    "HubOptions",
    "Options",
    "makeService",
    "make_hub",
    "make_hub_service",
]


def _callback_hosts(value: str) -> Any:
    from ._callback_policy import callback_hosts_option

    try:
        return callback_hosts_option(value)
    except ValueError as exc:
        raise usage.UsageError(f"--callback-hosts: {exc}") from None


def _web_port_number(text: str) -> int:
    try:
        return port_number(text)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--port", "--web-port", 1)) from None


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
        [
            "web-profile",
            None,
            "Also serve the SAMP Web Profile for browser pages, on loopback at --web-port; each page "
            "registers only with consent (--web-consent).",
        ],
    ]
    optParameters = [
        ["lockfile", None, None, "Where to write the lockfile."],
        ["port", None, 0, "TCP port of the hub's XML-RPC server (0: any free port).", port_number],
        ["interface", None, "127.0.0.1", "Interface to listen on."],
        ["label", None, "", "A label for the hub, written to the lockfile as hub.label."],
        ["web-port", None, 21012, "TCP port of the Web Profile (21012, its standard one).", _web_port_number],
        [
            "web-consent",
            None,
            "ask",
            "Whether web pages may register: ask (the default: a prompt on the controlling terminal; "
            "no terminal, no registration), accept (every page, without asking: any web site you "
            "visit can then message your SAMP applications) or deny.",
        ],
        [
            "client-timeout",
            None,
            30.0,
            "Seconds each delivery to a client may take.",
            positive_seconds("client-timeout"),
        ],
        [
            "callback-hosts",
            None,
            "local",
            "Hosts callback URLs may name: local (this machine's own addresses; the default), any, "
            "or host names, addresses and networks (10.1.0.0/16) separated by commas, accepted "
            "besides this machine's.",
            _callback_hosts,
        ],
        [
            "cert-file",
            None,
            None,
            "PEM certificate of the hub (it may hold the key too); also presented to https callback "
            "servers that ask for a client certificate.",
        ],
        *IDENTITY_PARAMETERS,
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
        identity = tls_identity(self)
        ca_certs = existing_file(self, "ca-certs")
        cert_reqs = choice(self, "cert-reqs", CERT_REQS)
        callback_cert_reqs = choice(self, "callback-cert-reqs", {"required": None, "none": None})
        if identity["cert_file"] is None:
            raise usage.UsageError("--https needs --cert-file (and --key-file unless the key is in it)")
        if cert_reqs in ("optional", "required") and ca_certs is None:
            raise usage.UsageError(
                f"--cert-reqs {cert_reqs} needs --ca-certs: the CAs that issue client certificates"
            )
        self["tls"] = checked_tls(ca_certs=ca_certs, cert_reqs=None if cert_reqs is None else CERT_REQS[cert_reqs], **identity)
        if callback_cert_reqs == "none":
            self["callback_tls"] = checked_tls(cert_reqs=ssl.CERT_NONE, **identity)

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
        choice(self, "web-consent", {"ask": None, "accept": None, "deny": None})
        self["web-consent"] = self["web-consent"].lower()
        self.check_tls()


def make_hub(options: usage.Options, reactor: IReactorTime) -> SAMPHubServer:
    """
    A :class:`SAMPHubServer` built from parsed hub options, not started.

    :param HubOptions options: the parsed options.
    :param reactor: the reactor.
    """
    from ._hub import SAMPHubServer
    from ._webconsent import consent_for

    web = bool(options.get("web-profile"))
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
        callback_hosts=options["callback-hosts"],
        web_profile=web,
        monitor=bool(options["monitor"]),
        web_port=options.get("web-port", 21012),
        web_consent=consent_for(options.get("web-consent", "ask"), reactor) if web else None,
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


Options = HubOptions


def makeService(options: usage.Options) -> service.IService:
    """
    The ``samp-hub`` service, on the global reactor; a hub that fails to
    start once twistd runs ends the process with status 1.

    :param HubOptions options: the parsed options.
    """
    return make_hub_service(options, cast(IReactorTime, default_reactor()), _exit_status_1_at_exit)
