# -*- test-case-name: tests.test_oneshot -*-
"""
One-shot CLI commands without a reactor: ``sampy-twisted ping`` and
``sampy-twisted ping TARGET``, served by blocking XML-RPC requests to the
hub over :mod:`http.client`.

Importing Twisted's reactor, HTTP client and server alone takes longer
than JSAMP's whole ``messagesender`` ping; these commands need none of it.
They print the same lines and exit with the same status as the full
command (:mod:`._cli`), and apply the same limits to what the hub sends:
the same response size bound, DTD refusal and nesting bound
(:func:`~sampy_twisted._codec.safe_loads`), and timeouts on connecting and
reading.  A client registered here sets no callback: it sends
``samp.app.ping`` through the hub's ``samp.hub.callAndWait``.

Anything else (another command, an option not listed in :func:`parse`, an
https hub, a lockfile fetched over http) is left to the full command, with
the same arguments: :func:`run` raises :class:`NotServed` before it has
sent anything to the hub.  This module must not import Twisted.
"""

from __future__ import annotations

import http.client
import math
import signal
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from . import _cli_text as text
from ._codec import dumps_call, safe_loads
from ._encoding import check_samp_value, from_xmlrpc, message_map
from ._errors import SAMPHubError
from ._hubfile import lockfile_location, read_lockfile
from ._limits import DEFAULT_MAX_BYTES

__all__ = ["NotServed", "Ping", "parse", "run"]

HUB_TIMEOUT = 30.0
"""Seconds a hub request may take (the Twisted hub proxy's default)."""

CONNECT_TIMEOUT = 10.0
"""Seconds connecting to the hub may take (the Twisted proxy's)."""

CALL_GRACE = 1
"""Seconds the hub's own ``callAndWait`` timeout exceeds ``--wait``, so
that ours runs out first and the outcome reads as it does in the full
command ("no response within ..."), never as a refusal by the hub."""

_COMMAND = "ping"


class NotServed(Exception):
    """The full command must run this one: nothing was sent to the hub."""


class _HubFault(Exception):
    """The hub answered with a fault; ``str()`` is its text."""


class _Unreachable(Exception):
    """
    A request failed on its way (connection, HTTP, not XML-RPC), worded as
    the full command words it; ``known`` is false when that wording is only
    close to the full command's.
    """

    def __init__(self, message: str, known: bool = True) -> None:
        super().__init__(message)
        self.known = known


class _TimedOut(_Unreachable):
    """A request took longer than its timeout."""


class _UserError(Exception):
    """Something the user can fix (an unknown client), said in one line."""


@dataclass(frozen=True)
class Ping:
    """
    A ``ping`` command line.

    :ivar target: the client name or id to ping, or ``None`` for the hub.
    :ivar wait: seconds to wait for the client's answer.
    :ivar name: the ``samp.name`` to register with.
    """

    target: str | None
    wait: float
    name: str


def _seconds(value: str) -> float | None:
    # What _options.positive_seconds accepts, without its error.
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds < math.inf else None


def _name(value: str) -> str | None:
    if not value:
        return None
    try:
        return check_samp_value(value, "--name")
    except (TypeError, ValueError):
        return None


def _options(arguments: Sequence[str]) -> tuple[dict[str, str], list[str]] | None:
    """``--wait`` and ``--name`` (each at most once) and the positional
    arguments, or ``None`` for anything else."""
    values: dict[str, str] = {}
    positional: list[str] = []
    rest = iter(arguments)
    for argument in rest:
        if argument == "--":
            positional.extend(rest)
            break
        if not argument.startswith("-"):
            positional.append(argument)
            continue
        option, equals, value = argument.partition("=")
        if option not in ("--wait", "--name") or option in values:
            return None
        if not equals:
            following = next(rest, None)
            if following is None:
                return None
            value = following
        values[option] = value
    return values, positional


def parse(argv: Sequence[str]) -> Ping | None:
    """
    Recognise a command line this module serves, strictly.

    :param argv: the arguments, without the program name.
    :return: the command, or ``None`` when the full command must run it:
        another command, another option (``-v``, ``--help``, TLS options,
        abbreviations), a repeated option, or a value the full command
        rejects (it then says why).
    """
    if not argv or argv[0] != _COMMAND:
        return None
    parsed = _options(argv[1:])
    if parsed is None:
        return None
    values, positional = parsed
    if len(positional) > 1:
        return None
    wait = _seconds(values["--wait"]) if "--wait" in values else text.DEFAULT_WAIT
    name = _name(values["--name"]) if "--name" in values else f"{text.PROGRAM} {_COMMAND}"
    if wait is None or name is None:
        return None
    return Ping(positional[0] if positional else None, wait, name)


# -- the hub, over http.client -------------------------------------------------


class _Hub:
    """
    Blocking XML-RPC calls to the hub at *url*, over one connection while
    the hub keeps it (HTTP/1.1 with ``Connection: keep-alive``, as ours
    does), else one connection per request (JSAMP's and astropy's hubs).

    :param url: the hub's ``http://`` URL.
    :param max_bytes: the largest response accepted.
    """

    def __init__(self, url: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise NotServed(f"{url} is not an http URL")
        self.url = url
        self._host = parts.hostname
        self._port = parts.port or 80
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._max_bytes = max_bytes
        self._connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        """Close the connection kept open, if any."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def call(self, method: str, *args: Any, timeout: float = HUB_TIMEOUT) -> Any:
        """
        Call *method*, waiting at most *timeout* seconds.

        :return: the result, in SAMP types.
        :raises _HubFault: the hub answered with a fault.
        :raises _Unreachable: anything else went wrong (:class:`_TimedOut`
            when the time ran out).
        """
        body = dumps_call(method, args)
        deadline = time.monotonic() + timeout
        try:
            data = self._exchange(body, deadline)
        except _Unreachable:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise _TimedOut(f"{method} at {self.url} timed out after {timeout:g} s") from None
        except ConnectionRefusedError:
            self.close()
            raise _Unreachable(f"{method} at {self.url} failed: connection refused") from None
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise _Unreachable(f"{method} at {self.url} failed: {_reason(exc)}", known=False) from None
        except BaseException:
            self.close()  # interrupted: that connection is not ready for another request
            raise
        return self._parse(data)

    def _exchange(self, body: bytes, deadline: float) -> bytes:
        connection = self._connection
        if connection is None:
            connection = http.client.HTTPConnection(
                self._host, self._port, timeout=min(CONNECT_TIMEOUT, _left(deadline))
            )
            connection.connect()
            self._connection = connection
        assert connection.sock is not None  # connected just above, or kept open
        connection.sock.settimeout(_left(deadline))
        connection.request("POST", self._path, body, {"Content-Type": "text/xml; charset=utf-8"})
        response = connection.getresponse()
        if response.status != 200:
            response.read(64 * 1024)
            self.close()
            raise _Unreachable(
                f"{self.url} answered HTTP {response.status} {response.reason}, not an XML-RPC response"
            )
        data = response.read(self._max_bytes + 1)
        if len(data) > self._max_bytes:
            raise _Unreachable(f"response from {self.url} exceeds {self._max_bytes} bytes")
        if not _keeps_alive(response):
            self.close()
        return data

    def _parse(self, data: bytes) -> Any:
        try:
            params, _ = safe_loads(data)
        except xmlrpc.client.Fault as fault:
            raise _HubFault(fault.faultString) from None
        except ValueError as exc:
            raise _Unreachable(f"bad XML-RPC response from {self.url}: {exc}") from None
        if len(params) != 1:
            raise _Unreachable(f"bad XML-RPC response from {self.url}: no value")
        return from_xmlrpc(params[0])


def _left(deadline: float) -> float:
    """Seconds until *deadline*, a little at least (a socket timeout of 0
    would make it non-blocking)."""
    return max(deadline - time.monotonic(), 0.001)


def _keeps_alive(response: http.client.HTTPResponse) -> bool:
    # As the Twisted proxy decides: only a peer that says so keeps the
    # connection, so no request goes down a socket the peer is closing.
    connection = (response.getheader("Connection") or "").lower()
    return response.version == 11 and "keep-alive" in connection and not response.will_close


def _reason(exc: BaseException) -> str:
    """A short text for a transport failure the full command words in
    Twisted's terms: the nearest plain words."""
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)):
        return "connection lost"
    return str(exc).strip() or type(exc).__name__


# -- the commands ---------------------------------------------------------------


class _Stopped(BaseException):
    """SIGTERM: stop as Ctrl-C does."""


@contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM stops the command as Ctrl-C (SIGINT) does."""

    def stop(signum: int, frame: object) -> None:
        raise _Stopped()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    """No signal cuts the bounded clean-up short."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _hub_params(environ: Mapping[str, str]) -> dict[str, str]:
    kind, where = lockfile_location(environ)
    if kind != "file":
        raise NotServed("the lockfile is fetched over http")
    params = read_lockfile(where)  # bad lines are skipped, as -v would log them
    if urlsplit(params["samp.hub.xmlrpc.url"]).scheme != "http":
        raise NotServed("an https hub")
    return params


def _first_call(hub: _Hub, method: str, *args: Any) -> Any:
    """The first request of a command: a failure worded otherwise than
    the full command would word it is left to the full command."""
    try:
        return hub.call(method, *args)
    except _Unreachable as exc:
        if not exc.known:
            raise NotServed(str(exc)) from None
        raise


def _ping_hub(params: Mapping[str, str], out: Callable[[str], None]) -> int:
    hub = _Hub(params["samp.hub.xmlrpc.url"])
    try:
        started = time.monotonic()
        _first_call(hub, "samp.hub.ping")
        elapsed = time.monotonic() - started
    finally:
        hub.close()
    out(text.hub_alive(hub.url, elapsed))
    return text.EXIT_OK


def _ping_client(command: Ping, params: Mapping[str, str], out: Callable[[str], None]) -> int:
    assert command.target is not None
    hub = _Hub(params["samp.hub.xmlrpc.url"])
    _first_call(hub, "samp.hub.ping")  # as the full command's client does first
    key: str | None = None
    try:
        key = _register(hub, params["samp.secret"])
        hub.call("samp.hub.declareMetadata", key, {"samp.name": command.name})
        recipients, names = _resolve(hub, key, command.target)
        results = [_ping_one(hub, key, recipient, command.wait, names, out) for recipient in recipients]
    finally:
        with _signals_ignored():
            _unregister(hub, key)
    return text.EXIT_OK if all(results) else text.EXIT_FAILED


def _register(hub: _Hub, secret: str) -> str:
    info = hub.call("samp.hub.register", secret)
    key = info.get("samp.private-key") if isinstance(info, dict) else None
    self_id = info.get("samp.self-id") if isinstance(info, dict) else None
    if not isinstance(key, str) or not key or not isinstance(self_id, str) or not self_id:
        raise _UserError("the hub's registration answer has no private key or id")
    return key


def _unregister(hub: _Hub, key: str | None) -> None:
    """Unregister, giving up on a hub that does not answer in time."""
    try:
        if key is not None:
            hub.call("samp.hub.unregister", key, timeout=text.DISCONNECT_TIMEOUT)
    except (_Unreachable, _HubFault):
        pass
    finally:
        hub.close()


def _names(hub: _Hub, key: str, ids: list[str]) -> dict[str, str | None]:
    names: dict[str, str | None] = {}
    for client_id in ids:
        try:
            metadata = hub.call("samp.hub.getMetadata", key, client_id)
        except _HubFault:
            names[client_id] = None
            continue
        name = metadata.get("samp.name") if isinstance(metadata, dict) else None
        names[client_id] = name if isinstance(name, str) else None
    return names


def _resolve(hub: _Hub, key: str, target: str) -> tuple[list[str], dict[str, str | None]]:
    """The ids *target* (an id or a name) stands for, as the full command
    resolves them, and the names of every client."""
    ids = list(hub.call("samp.hub.getRegisteredClients", key))
    names = _names(hub, key, ids)
    if target in ids:
        return [target], names
    wanted = target.casefold()
    matches = sorted(
        (cid for cid, name in names.items() if name is not None and name.casefold() == wanted),
        key=text.natural,
    )
    if not matches:
        raise _UserError(text.not_found(target))
    return matches, names


def _ping_one(
    hub: _Hub, key: str, recipient: str, wait: float, names: Mapping[str, str | None], out: Callable[[str], None]
) -> bool:
    """Ping *recipient* through the hub and print the outcome; ``True`` if
    it is samp.ok."""
    who = text.label(recipient, names)
    message = message_map("samp.app.ping")
    hub_timeout = str(math.ceil(wait) + CALL_GRACE)
    started = time.monotonic()
    try:
        response = hub.call("samp.hub.callAndWait", key, recipient, message, hub_timeout, timeout=wait)
    except _TimedOut:
        out(text.timed(text.no_response(who, wait), time.monotonic() - started))
        return False
    except _HubFault as fault:
        out(text.timed(text.refused(who, str(fault)), time.monotonic() - started))
        return False
    if not isinstance(response, dict):
        raise _Unreachable(f"bad XML-RPC response from {hub.url}: the response is not a map")
    out(text.timed(f"{who}: {text.describe(response)}", time.monotonic() - started))
    return response.get("samp.status") == "samp.ok"


def run(
    command: Ping,
    environ: Mapping[str, str],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """
    Run *command* as the full ``sampy-twisted`` command would.

    :param command: what :func:`parse` made of the command line.
    :param environ: the environment hub discovery reads.
    :param stdout: where results go (``sys.stdout`` by default).
    :param stderr: where an error goes, in one line (``sys.stderr``).
    :return: the exit status: 0, or 1 when the command failed or was
        interrupted (Ctrl-C, SIGTERM).
    :raises NotServed: the full command must run it; nothing was sent.
    """
    output = sys.stdout if stdout is None else stdout
    errors = sys.stderr if stderr is None else stderr

    def out(line: str) -> None:
        print(line, file=output, flush=True)

    try:
        with _signals_stop():
            params = _hub_params(environ)
            if command.target is None:
                return _ping_hub(params, out)
            return _ping_client(command, params, out)
    except (KeyboardInterrupt, _Stopped):
        message = "interrupted"
    except (SAMPHubError, _HubFault, _Unreachable, _UserError) as exc:
        message = str(exc)
    print(text.failed(_COMMAND, message), file=errors, flush=True)
    return text.EXIT_FAILED
