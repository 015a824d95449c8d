# -*- test-case-name: tests.test_discovery -*-
"""
Standard Profile hub discovery: where the lockfile is and what it says
(read by :mod:`._hubfile`, which needs no Twisted), lockfiles fetched over
http, and which hubs answer.

``SAMP_HUB=std-lockurl:<url>`` names the lockfile (``file:`` or ``http:``);
otherwise it is ``.samp`` in the home directory (``USERPROFILE`` on Windows).
SAMPy and astropy's multi-hub mode also leave lockfiles in ``~/.samp-1/``.
"""

from __future__ import annotations

import os
import ssl
import xmlrpc.client
from collections.abc import Mapping
from urllib.parse import urlsplit

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from . import _hubfile
from ._errors import SAMPHubError
from ._hubfile import (  # re-exported: the names this module always had
    MAX_LOCKFILE_BYTES as MAX_LOCKFILE_BYTES,
    MULTI_HUB_DIR as MULTI_HUB_DIR,
    REQUIRED_KEYS as REQUIRED_KEYS,
    STD_LOCKURL as STD_LOCKURL,
    _home,
    decode_lockfile,
    default_lockfile_path as default_lockfile_path,
    lockfile_location as lockfile_location,
)
from ._reactor import default_reactor
from ._xmlrpc import XMLRPCProxy, _BoundedBody

__all__ = [
    "default_lockfile_path",
    "get_hub_params",
    "get_running_hubs",
    "lockfile_location",
    "parse_lockfile",
    "read_lockfile",
]

_log = Logger()

def _bad_line(number: int, source: str) -> None:
    _log.warn("Ignoring line {number} of SAMP lockfile {source}: not key=value", number=number, source=source)


def parse_lockfile(text: str, source: str = "lockfile") -> dict[str, str]:
    """
    Parse lockfile text into a dict of its entries.

    Lines starting ``#`` and blank lines are skipped; each other line is split
    at its first ``=``, so values may themselves contain ``=`` (other lines
    are logged and skipped).  Java-style ``\\:`` escapes in the hub URL are
    undone.

    :param str text: the lockfile's content.
    :param str source: the file or URL, named in errors.
    :rtype: dict
    :raises SAMPHubError: a required key is missing or the hub URL is not an
        http(s) URL.
    """
    return _hubfile.parse_lockfile(text, source, _bad_line)


def read_lockfile(path: str) -> dict[str, str]:
    """
    Read and parse a lockfile on disk.

    :param str path: the lockfile's path.
    :rtype: dict
    :raises SAMPHubError: the file is missing ("no hub is running"),
        unreadable, too large, or malformed.
    """
    return _hubfile.read_lockfile(path, _bad_line)


def _fetch_lockfile(url: str, reactor: IReactorTime, timeout: float) -> defer.Deferred[dict[str, str]]:
    from twisted.web.client import Agent

    agent = Agent(reactor, connectTimeout=timeout)
    requested: defer.Deferred[IResponse] = agent.request(b"GET", url.encode("ascii"))

    def got(response: IResponse) -> defer.Deferred[bytes]:
        if response.code != 200:
            raise SAMPHubError(f"SAMP lockfile {url}: HTTP {response.code}")
        # Bounded like a lockfile on disk: a lockfile is a few lines.
        reader = _BoundedBody(MAX_LOCKFILE_BYTES, url)
        response.deliverBody(reader)
        return reader.done

    d = requested.addCallback(got)
    d.addTimeout(timeout, reactor)
    parsed = d.addCallback(lambda data: parse_lockfile(decode_lockfile(data, url), url))

    def failed(failure: Failure) -> Failure:
        if failure.check(SAMPHubError):
            return failure
        raise SAMPHubError(f"cannot fetch SAMP lockfile {url}: {failure.getErrorMessage()}")

    return parsed.addErrback(failed)


def get_hub_params(
    reactor: IReactorTime | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> defer.Deferred[dict[str, str]]:
    """
    Find the running hub's lockfile and read it.

    :param reactor: the reactor, needed for lockfiles fetched over http.
    :param environ: the environment to read (``os.environ`` by default).
    :return: a Deferred firing with the lockfile entries as a dict, or
        failing with :class:`SAMPHubError`.
    """
    try:
        kind, where = lockfile_location(environ)
        if kind == "file":
            return defer.succeed(read_lockfile(where))
    except SAMPHubError:
        return defer.fail()
    return _fetch_lockfile(where, default_reactor(reactor), timeout)


def ping_hub(params: Mapping[str, str], reactor: IReactorTime, timeout: float = 5.0) -> defer.Deferred[bool]:
    """
    Whether the hub described by *params* answers ``samp.hub.ping``.

    Only liveness matters here: an ``https`` hub is pinged without checking
    its certificate, and one that refuses the TLS handshake (it wants a
    client certificate) counts as alive, since a TLS server is there.

    :return: a Deferred firing with ``True`` or ``False``; it never fails.
    """
    try:
        url = params["samp.hub.xmlrpc.url"]
        policy = None
        if urlsplit(url).scheme == "https":
            from ._tls import TLSOptions  # only https hubs need TLS

            policy = TLSOptions(cert_reqs=ssl.CERT_NONE).client_policy()
        proxy = XMLRPCProxy(url, reactor, timeout=timeout, tls_policy=policy)
    except (KeyError, TypeError, ValueError):
        return defer.succeed(False)

    def failed(failure: Failure) -> bool:
        if failure.check(xmlrpc.client.Fault):
            return True  # it answered, if only with a fault
        return "TLS handshake failed" in failure.getErrorMessage()

    d: defer.Deferred[object] = proxy.call("samp.hub.ping")
    answered = d.addCallbacks(lambda _: True, failed)
    return answered.addCallback(
        lambda alive: proxy.close().addCallback(lambda _: alive)
    )


def _candidate_lockfiles(environ: Mapping[str, str]) -> list[str]:
    try:
        kind, where = lockfile_location(environ)
    except SAMPHubError:
        kind, where = "file", default_lockfile_path(environ)
    found = [where] if kind == "file" else []
    multi = os.path.join(_home(environ), MULTI_HUB_DIR)
    try:
        names = sorted(os.listdir(multi))
    except OSError:
        names = []
    found.extend(os.path.join(multi, n) for n in names if n.startswith("samp-hub"))
    return found


def get_running_hubs(
    reactor: IReactorTime | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> defer.Deferred[dict[str, dict[str, str]]]:
    """
    List the live hubs: the standard one and SAMPy/astropy multi-hub ones.

    Each lockfile found (the one ``SAMP_HUB`` or ``~/.samp`` names, and
    ``~/.samp-1/samp-hub*``) is read and its hub pinged; stale or broken
    lockfiles are left out.

    :return: a Deferred firing with ``{lockfile path: hub params}``.
    """
    reactor = default_reactor(reactor)
    environ = os.environ if environ is None else environ
    candidates: list[tuple[str, dict[str, str]]] = []
    for path in _candidate_lockfiles(environ):
        try:
            candidates.append((path, read_lockfile(path)))
        except SAMPHubError:
            continue
    pings = [ping_hub(params, reactor, timeout) for _, params in candidates]
    d = defer.gatherResults(pings)
    return d.addCallback(
        lambda alive: {path: params for (path, params), ok in zip(candidates, alive) if ok}
    )
