# -*- test-case-name: tests.test_discovery -*-
"""
Standard Profile hub discovery: where the lockfile is and what it says.

``SAMP_HUB=std-lockurl:<url>`` names the lockfile (``file:`` or ``http:``);
otherwise it is ``.samp`` in the home directory (``USERPROFILE`` on Windows).
SAMPy and astropy's multi-hub mode also leave lockfiles in ``~/.samp-1/``.
"""

from __future__ import annotations

import os
import ssl
import xmlrpc.client
from urllib.parse import unquote, urlsplit
from collections.abc import Mapping
from urllib.request import url2pathname

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IResponse

from ._errors import SAMPHubError
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


def parse_lockfile(text: str, source: str = "lockfile") -> dict[str, str]:
    """
    Parse lockfile text into a dict of its entries.

    Lines starting ``#`` and blank lines are skipped; each other line is split
    at its first ``=``, so values may themselves contain ``=``.  Java-style
    ``\\:`` escapes in the hub URL are undone.

    :param str text: the lockfile's content.
    :param str source: the file or URL, named in errors.
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
            _log.warn(
                "Ignoring line {number} of SAMP lockfile {source}: not key=value",
                number=number,
                source=source,
            )
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


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise SAMPHubError(f"SAMP lockfile {source} is not an ASCII text file") from None


def read_lockfile(path: str) -> dict[str, str]:
    """
    Read and parse a lockfile on disk.

    :param str path: the lockfile's path.
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
    return parse_lockfile(_decode(data, path), path)


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
    parsed = d.addCallback(lambda data: parse_lockfile(_decode(data, url), url))

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
