# -*- test-case-name: tests.test_discovery -*-
"""
Where the Standard Profile lockfile is and what it says, without Twisted:
what :mod:`._discovery` builds on, and what the reactor-free one-shot
commands (:mod:`._oneshot`) read the hub's address with.

``SAMP_HUB=std-lockurl:<url>`` names the lockfile (``file:`` or ``http:``);
otherwise it is ``.samp`` in the home directory (``USERPROFILE`` on Windows).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from ._errors import SAMPHubError

__all__ = [
    "MAX_LOCKFILE_BYTES",
    "MULTI_HUB_DIR",
    "STD_LOCKURL",
    "decode_lockfile",
    "default_lockfile_path",
    "lockfile_location",
    "parse_lockfile",
    "read_lockfile",
]

BadLine = Callable[[int, str], None]
"""Told of each lockfile line that is not ``key=value``: its number and the
lockfile's name."""

STD_LOCKURL = "std-lockurl:"
REQUIRED_KEYS = ("samp.secret", "samp.hub.xmlrpc.url")
MULTI_HUB_DIR = ".samp-1"
MAX_LOCKFILE_BYTES = 1024 * 1024


def _home(environ: Mapping[str, str]) -> str:
    if os.name == "nt" and environ.get("USERPROFILE"):
        return environ["USERPROFILE"]
    home = environ.get("HOME")
    if not home:
        raise SAMPHubError(
            "cannot find the SAMP lockfile: neither SAMP_HUB nor HOME is set"
        )
    return home


def default_lockfile_path(environ: Mapping[str, str] | None = None) -> str:
    """
    The standard lockfile path, ``~/.samp``, ignoring ``SAMP_HUB``.

    :param environ: the environment to read (``os.environ`` by default).
    :rtype: str
    """
    environ = os.environ if environ is None else environ
    return os.path.join(_home(environ), ".samp")


def lockfile_location(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """
    Where the Standard Profile lockfile is, following SAMP 1.3 §4.

    :param environ: the environment to read (``os.environ`` by default).
    :return: ``("file", path)`` for a local file, or ``("url", url)`` for a
        lockfile published over ``http:``/``https:``.
    :raises SAMPHubError: ``SAMP_HUB`` is set but is not a ``std-lockurl:``
        with a ``file:`` or ``http(s):`` URL.
    """
    environ = os.environ if environ is None else environ
    value = environ.get("SAMP_HUB", "").strip()
    if not value:
        return "file", default_lockfile_path(environ)
    if not value.startswith(STD_LOCKURL):
        raise SAMPHubError(
            f"SAMP_HUB={value!r} is not supported: only the Standard Profile "
            f"form 'std-lockurl:<url>' is understood"
        )
    url = value[len(STD_LOCKURL):]
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SAMPHubError(
                f"SAMP_HUB={value!r}: file URL names host {parts.netloc!r}; "
                f"only local files can be read"
            )
        return "file", url2pathname(unquote(parts.path))
    if parts.scheme in ("http", "https"):
        return "url", url
    raise SAMPHubError(
        f"SAMP_HUB={value!r}: the lockfile URL must be file:, http: or https:"
    )


def parse_lockfile(text: str, source: str = "lockfile", bad_line: BadLine | None = None) -> dict[str, str]:
    """
    Parse lockfile text into a dict of its entries.

    Lines starting ``#`` and blank lines are skipped; each other line is split
    at its first ``=``, so values may themselves contain ``=``.  Java-style
    ``\\:`` escapes in the hub URL are undone.

    :param str text: the lockfile's content.
    :param str source: the file or URL, named in errors.
    :param bad_line: called with the number of each line that is not
        ``key=value``, and *source*; such lines are skipped.
    :rtype: dict
    :raises SAMPHubError: a required key is missing or the hub URL is not an
        http(s) URL.
    """
    params: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            if bad_line is not None:
                bad_line(number, source)
            continue
        params[key] = value.strip()
    missing = [key for key in REQUIRED_KEYS if not params.get(key)]
    if missing:
        raise SAMPHubError(
            f"SAMP lockfile {source} is incomplete or broken: no "
            f"{' or '.join(missing)} (try deleting it if no hub is running)"
        )
    url = params["samp.hub.xmlrpc.url"].replace("\\", "")
    if not _is_hub_url(url):
        raise SAMPHubError(
            f"SAMP lockfile {source}: samp.hub.xmlrpc.url={url!r} is not a valid "
            f"http or https URL"
        )
    params["samp.hub.xmlrpc.url"] = url
    return params


def _is_hub_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port  # a port out of range raises only when read
    except ValueError:  # an unclosed [ or a bad port
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def decode_lockfile(data: bytes, source: str) -> str:
    """
    A lockfile's bytes as text.

    :param source: the file or URL, named in errors.
    :raises SAMPHubError: they are not ASCII.
    """
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise SAMPHubError(f"SAMP lockfile {source} is not an ASCII text file") from None


def read_lockfile(path: str, bad_line: BadLine | None = None) -> dict[str, str]:
    """
    Read and parse a lockfile on disk.

    :param str path: the lockfile's path.
    :param bad_line: told of lines that are not ``key=value`` (see
        :func:`parse_lockfile`).
    :rtype: dict
    :raises SAMPHubError: the file is missing ("no hub is running"),
        unreadable, too large, or malformed.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LOCKFILE_BYTES + 1)
    except FileNotFoundError:
        raise SAMPHubError(f"no SAMP hub is running: lockfile {path} does not exist") from None
    except OSError as exc:
        raise SAMPHubError(f"cannot read SAMP lockfile {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_LOCKFILE_BYTES:
        raise SAMPHubError(f"SAMP lockfile {path} is too large to be a lockfile")
    return parse_lockfile(decode_lockfile(data, path), path, bad_line)
