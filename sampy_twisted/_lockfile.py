# -*- test-case-name: tests.test_hub_lockfile -*-
"""
Writing, claiming and removing the hub's Standard Profile lockfile.

The lockfile holds the hub's secret, so it is created with mode 0600 before
anything is written to it, and it appears atomically: it is written to a
temporary file in the same directory and then linked or renamed into place,
so a client never reads half a lockfile.

A hub claims the lockfile path before publishing: if the file is absent it is
created exclusively; if it names a hub that still answers ``samp.hub.ping``
the new hub refuses to start; if its hub is dead (or the file is broken) it
is replaced with a logged warning.  On shutdown the file is removed only if
it still carries our secret, so a newer hub's lockfile is never deleted.
"""

from __future__ import annotations

import datetime
import hmac
import os
import re
import secrets
import ssl
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ._discovery import (
    MULTI_HUB_DIR,
    default_lockfile_path,
    lockfile_location,
    ping_hub,
    read_lockfile,
)
from ._errors import SAMPHubError

if TYPE_CHECKING:
    from ._tls import TLSOptions

__all__ = [
    "claim_lockfile",
    "format_lockfile",
    "lockfile_path",
    "new_lockfile_params",
    "remove_lockfile_if_ours",
    "tls_lockfile_params",
    "write_lockfile",
]

_log = Logger(namespace="sampy_twisted.lockfile")

PROFILE_VERSION = "1.3"
HUB_IMPL = "sampy_twisted"

# Lockfile values may hold only printable ASCII (SAMP 1.3 §4.3 grammar).
_NOT_LOCKFILE_CHAR = re.compile(r"[^\x20-\x7e]")
_LOCKFILE_NAME = re.compile(r"[a-zA-Z0-9\-_.]+\Z")


def lockfile_path(
    lockfile: str | os.PathLike[str] | None = None,
    multi: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    """
    Decide where the hub's lockfile goes.

    :param str lockfile: an explicit path, which wins over everything else.
    :param bool multi: astropy-style multi-hub mode: a new
        ``~/.samp-1/samp-hub-<random>`` file (the directory is created with
        mode 0700 when missing); clients find it only through ``SAMP_HUB``.
    :param environ: the environment to read (``os.environ`` by default).
    :return: the lockfile path: *lockfile*, else the ``file:`` URL of
        ``SAMP_HUB=std-lockurl:...``, else ``~/.samp``.
    :rtype: str
    :raises SAMPHubError: ``SAMP_HUB`` names a lockfile that is not a local
        file (a hub cannot write to an ``http:`` URL), or is not understood.
    """
    environ = os.environ if environ is None else environ
    if lockfile is not None:
        return os.fspath(lockfile)
    if multi:
        directory = os.path.join(
            os.path.dirname(default_lockfile_path(environ)), MULTI_HUB_DIR
        )
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.path.join(directory, f"samp-hub-{secrets.token_hex(16)}")
    kind, where = lockfile_location(environ)
    if kind != "file":
        raise SAMPHubError(
            f"SAMP_HUB names the lockfile URL {where}; a hub can only write "
            f"a local file (use a std-lockurl:file: URL or pass lockfile=)"
        )
    return where


def _clean(value: object) -> str:
    return _NOT_LOCKFILE_CHAR.sub("?", str(value))


_CERTIFICATE_REQUIREMENTS: dict[int | None, str] = {
    None: "NONE",
    ssl.CERT_NONE: "NONE",
    ssl.CERT_OPTIONAL: "OPTIONAL",
    ssl.CERT_REQUIRED: "REQUIRED",
}


def tls_lockfile_params(tls: TLSOptions) -> dict[str, str]:
    """
    The informative ``hub.ssl.*`` lockfile entries of a hub served over TLS,
    with the names and values SAMPy (astropy 1.x) wrote.

    ``hub.ssl.certificate``
        whether clients must present a certificate: ``NONE`` (none is asked
        for), ``OPTIONAL`` (verified if sent) or ``REQUIRED``.
    ``hub.ssl.protocol``
        the oldest TLS version the hub accepts: ``TLSv1.2`` (the default)
        or ``TLSv1.3``.

    Clients need not read them: a handshake tells them the same.

    :param TLSOptions tls: the hub's TLS settings.
    :rtype: dict
    """
    minimum = tls.minimum_version
    protocol = "TLSv1.3" if minimum is not None and minimum.name == "TLSv1_3" else "TLSv1.2"
    return {
        "hub.ssl.certificate": _CERTIFICATE_REQUIREMENTS[tls.cert_reqs],
        "hub.ssl.protocol": protocol,
    }


def new_lockfile_params(
    url: str, secret: str, label: str = "", tls: TLSOptions | None = None
) -> dict[str, str]:
    """
    The entries of a new hub's lockfile.

    :param str url: the hub's XML-RPC URL.
    :param str secret: the registration secret.
    :param str label: a free-text label for the hub (``hub.label``).
    :param TLSOptions tls: the hub's TLS settings, for an ``https`` hub:
        adds the entries of :func:`tls_lockfile_params`.
    :rtype: dict
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    params = {
        "samp.secret": secret,
        "samp.hub.xmlrpc.url": url,
        "samp.profile.version": PROFILE_VERSION,
        "hub.impl": HUB_IMPL,
        "hub.label": _clean(label),
        "hub.start.date": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if tls is not None:
        params.update(tls_lockfile_params(tls))
    return params


def format_lockfile(params: Mapping[str, object]) -> str:
    """
    Render lockfile entries as lockfile text.

    :param dict params: names and values; characters a lockfile cannot hold
        in a value are replaced by ``?``.
    :rtype: str
    :raises ValueError: an entry name a lockfile cannot hold.
    """
    lines = [f"# SAMP Standard Profile lockfile written by {HUB_IMPL}"]
    for name, value in params.items():
        if not _LOCKFILE_NAME.match(name):
            raise ValueError(f"{name!r} cannot be a lockfile entry name")
        lines.append(f"{name}={_clean(value)}")
    return "\n".join(lines) + "\n"


def _write_private_temp(path: str, text: str) -> str:
    """Write *text* to a new 0600 file beside *path* and return its name."""
    directory, name = os.path.split(os.path.abspath(path))
    temp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if hasattr(os, "fchmod"):
            # The umask can only clear bits, but be explicit about 0600.
            os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
    except BaseException:
        os.close(fd)
        os.unlink(temp)
        raise
    os.close(fd)
    return temp


def write_lockfile(path: str, text: str, exclusive: bool = False) -> None:
    """
    Put a lockfile in place atomically, readable only by its owner.

    :param str path: the lockfile path.
    :param str text: the lockfile text (ASCII).
    :param bool exclusive: fail if *path* already exists, instead of
        replacing it.
    :raises FileExistsError: *exclusive* and the file exists.
    :raises OSError: the file cannot be written.
    """
    temp = _write_private_temp(path, text)
    try:
        if exclusive:
            _link_exclusive(temp, path)
        else:
            os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)


def _link_exclusive(temp: str, path: str) -> None:
    try:
        # A hard link appears complete and fails if the name is taken: an
        # exclusive create that never exposes a partly written file.
        os.link(temp, path)
    except FileExistsError:
        raise
    except OSError:
        # No hard links on this filesystem: check, then rename (a small race
        # with another hub starting at the very same moment).
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(temp, path)


_CLAIM_ATTEMPTS = 5


@defer.inlineCallbacks
def claim_lockfile(
    path: str, params: Mapping[str, str], reactor: IReactorTime, ping_timeout: float = 5.0
) -> Generator[defer.Deferred[None], object, None]:
    """
    Publish a new hub's lockfile, unless a live hub already owns the path.

    :param str path: the lockfile path.
    :param dict params: the entries to write (see :func:`new_lockfile_params`).
    :param reactor: the reactor used to ping an existing hub.
    :param float ping_timeout: seconds to wait for an existing hub's answer.
    :return: a Deferred firing with ``None`` once the lockfile is written.
    :raises SAMPHubError: (as the Deferred's failure) a hub answering
        ``samp.hub.ping`` owns the lockfile, or the file cannot be written.

    A lockfile naming the host and port in ``params`` is stale without a
    ping: the new hub already listens there, so only it could answer.
    """
    text = format_lockfile(params)
    for _ in range(_CLAIM_ATTEMPTS):
        try:
            write_lockfile(path, text, exclusive=True)
            return
        except FileExistsError:
            pass
        except OSError as exc:
            raise _write_error(path, exc)
        seen = _file_identity(path)
        if seen is None:
            continue  # removed meanwhile: try the exclusive create again
        yield _refuse_if_alive(path, params, reactor, ping_timeout)
        # Remove only the file judged stale: another hub starting at the
        # same time may have replaced it while we pinged, and keeps it.
        if _file_identity(path) == seen:
            _remove_stale(path)
    raise SAMPHubError(f"cannot claim SAMP lockfile {path}: other hubs keep replacing it")


@defer.inlineCallbacks
def _refuse_if_alive(
    path: str, params: Mapping[str, str], reactor: IReactorTime, ping_timeout: float
) -> Generator[defer.Deferred[bool], bool, None]:
    try:
        existing = read_lockfile(path)
    except SAMPHubError as exc:
        _log.warn("Replacing unreadable SAMP lockfile {path}: {reason}", path=path, reason=str(exc))
        return
    url = existing["samp.hub.xmlrpc.url"]
    # The new hub already listens on its own address, so a lockfile naming
    # that address is stale; pinging it would reach ourselves.
    if not _same_address(url, params["samp.hub.xmlrpc.url"]):
        alive = yield ping_hub(existing, reactor, ping_timeout)
        if alive:
            raise SAMPHubError(
                f"a SAMP hub is already running: lockfile {path} names the hub "
                f"at {url}, which answers; stop it or choose another lockfile"
            )
    _log.warn("Replacing stale SAMP lockfile {path}: its hub at {url} does not answer", path=path, url=url)


def _file_identity(path: str) -> tuple[int, int, int] | None:
    """What tells one version of the file from another, or ``None``."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _remove_stale(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _write_error(path, exc)


def _same_address(url: str, other: str) -> bool:
    """Whether two hub URLs name the same host and port."""
    try:
        a, b = urlsplit(url), urlsplit(other)
        return (a.hostname, a.port) == (b.hostname, b.port) and a.port is not None
    except ValueError:  # a port out of range, say: not an address of ours
        return False


def _write_error(path: str, exc: OSError) -> SAMPHubError:
    return SAMPHubError(f"cannot write SAMP lockfile {path}: {exc.strerror or exc}")


def remove_lockfile_if_ours(path: str, secret: str) -> bool:
    """
    Delete the lockfile if it still carries *secret*.

    :param str path: the lockfile path.
    :param str secret: our hub's ``samp.secret``.
    :return: whether the file was removed.
    :rtype: bool
    """
    try:
        params = read_lockfile(path)
    except SAMPHubError:
        return False  # gone or unreadable: not ours to touch
    theirs = params.get("samp.secret", "").encode("utf-8")
    if not hmac.compare_digest(theirs, secret.encode("utf-8")):
        _log.warn("Not removing SAMP lockfile {path}: it now belongs to another hub", path=path)
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        _log.warn("Cannot remove SAMP lockfile {path}: {reason}", path=path, reason=str(exc))
        return False
    return True
