# -*- test-case-name: tests.test_tap -*-
"""
Options shared by the twistd plugins and the ``sampy-twisted`` commands.

The coercions of ``usage.Options`` parameters (seconds, port numbers), the
TLS identity options and :class:`ClientTLSOptionsMixin` live here, so that
``_tap_client``, ``_tap_hub`` and ``_cli`` each import them from one place.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.python import usage

if TYPE_CHECKING:
    from ._tls import TLSOptions

    # For the type checker, the mixin below is the Options it is mixed into.
    _OptionsBase = usage.Options
else:
    _OptionsBase = object

__all__ = [
    "CERT_REQS",
    "ClientTLSOptionsMixin",
    "IDENTITY_PARAMETERS",
    "TLS_VERSIONS",
    "checked_tls",
    "choice",
    "existing_file",
    "port_number",
    "positive_seconds",
    "read_passphrase",
    "tls_identity",
]


def positive_seconds(option: str) -> Callable[[str], float]:
    """
    A coercion of ``--option`` values to a positive, finite number of
    seconds.

    :param str option: the option's name, for the error message.
    :return: a callable turning the option's text into a ``float``.
    """

    def coerce(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--{option} must be a number of seconds, not {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise ValueError(f"--{option} must be a positive number of seconds, not {text!r}")
        return value

    return coerce


def port_number(text: str) -> int:
    """
    The coercion of ``--port`` values to a TCP port number (0 to 65535).

    :param str text: the option's text.
    :rtype: int
    """
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--port must be a TCP port number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, not {value}")
    return value


# -- TLS options ---------------------------------------------------------------

CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}
"""What ``--cert-reqs`` values mean."""

TLS_VERSIONS = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}
"""What ``--tls-min-version`` values mean."""


def choice(options: usage.Options, option: str, choices: Mapping[str, object]) -> str | None:
    """
    The value of ``--option`` among *choices* (``None`` when not given).

    :raises usage.UsageError: the value is none of *choices*.
    """
    given: str | None = options[option]
    if given is None:
        return None
    value = given.lower()
    if value not in choices:
        raise usage.UsageError(f"--{option} must be {_or(list(choices))}, not {options[option]!r}")
    return value


def _or(words: list[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]


def existing_file(options: usage.Options, option: str) -> str | None:
    """
    An existing file's absolute path, for ``--option`` (if given); the
    option is set to it.

    :raises usage.UsageError: there is no such file.
    """
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


def checked_tls(**settings: Any) -> TLSOptions:
    """
    A :class:`TLSOptions`, its errors made usage errors.

    :raises usage.UsageError: *settings* are refused.
    """
    from ._tls import TLSOptions  # only commands given TLS options load TLS

    try:
        return TLSOptions(**settings)
    except ValueError as exc:
        raise usage.UsageError(f"TLS: {exc}") from None


def tls_identity(options: usage.Options) -> dict[str, Any]:
    """
    The certificate, key and passphrase options, checked.

    :return: ``cert_file``, ``key_file``, ``passphrase`` and
        ``ssl_version`` settings for :class:`TLSOptions`.
    :raises usage.UsageError: a key or passphrase without a certificate.
    """
    cert_file, key_file = existing_file(options, "cert-file"), existing_file(options, "key-file")
    passphrase_file = existing_file(options, "key-passphrase-file")
    if key_file is not None and cert_file is None:
        raise usage.UsageError("--key-file needs --cert-file: a key alone identifies nobody")
    if passphrase_file is not None and cert_file is None:
        raise usage.UsageError("--key-passphrase-file needs --cert-file (and --key-file)")
    passphrase = read_passphrase(passphrase_file) if passphrase_file else None
    version = choice(options, "tls-min-version", TLS_VERSIONS)
    return {
        "cert_file": cert_file,
        "key_file": key_file,
        "passphrase": passphrase,
        "ssl_version": None if version is None else TLS_VERSIONS[version],
    }


IDENTITY_PARAMETERS: list[list[Any]] = [
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
        *IDENTITY_PARAMETERS,
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
        identity = tls_identity(self)
        ca_certs, hub_ca_certs = existing_file(self, "ca-certs"), existing_file(self, "hub-ca-certs")
        cert_reqs = choice(self, "cert-reqs", CERT_REQS)
        hub_cert_reqs = choice(self, "hub-cert-reqs", {"required": None, "none": None})
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
            self["callback_tls"] = checked_tls(ca_certs=ca_certs, cert_reqs=None if cert_reqs is None else CERT_REQS[cert_reqs], **identity)
        self["hub_tls"] = None
        hub_ca_certs = None if hub_cert_reqs == "none" else (hub_ca_certs or ca_certs)
        if identity["cert_file"] or identity["ssl_version"] or hub_ca_certs or hub_cert_reqs:
            self["hub_tls"] = checked_tls(
                ca_certs=hub_ca_certs,
                cert_reqs=ssl.CERT_NONE if hub_cert_reqs == "none" else None,
                **identity,
            )
