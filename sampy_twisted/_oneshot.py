# -*- test-case-name: tests.test_oneshot -*-
"""
One-shot CLI commands without a reactor: ``sampy-twisted ping``,
``sampy-twisted ping TARGET`` and ``sampy-twisted send MTYPE ... --notify``,
served by blocking XML-RPC requests to the hub over :mod:`http.client`.

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
from ._limits import DEFAULT_CONNECT_TIMEOUT, DEFAULT_HUB_TIMEOUT, DEFAULT_MAX_BYTES
from ._mtype import is_mtype

__all__ = ["Command", "NotServed", "Notify", "Ping", "parse", "run"]

CALL_GRACE = 1
"""Seconds the hub's own ``callAndWait`` timeout exceeds ``--wait``, so
that ours runs out first and the outcome reads as it does in the full
command ("no response within ..."), never as a refusal by the hub."""

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


@dataclass(frozen=True)
class Notify:
    """
    A ``send --notify`` command line.

    :ivar mtype: the MType.
    :ivar params: the ``samp.params`` map.
    :ivar to: the recipients' names or ids; empty for every subscriber.
    :ivar name: the ``samp.name`` to register with.
    """

    mtype: str
    params: dict[str, str]
    to: tuple[str, ...]
    name: str


Command = Ping | Notify
"""A command line this module serves."""


def _seconds(value: str) -> float | None:
    # What _options.positive_seconds accepts, without its error.
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds < math.inf else None


def _samp_string(value: str) -> str | None:
    """*value* if it is a SAMP string, else ``None``."""
    try:
        return check_samp_value(value, "value")
    except (TypeError, ValueError):
        return None


def _options(
    arguments: Sequence[str], valued: Sequence[str], flags: Sequence[str] = (), repeatable: Sequence[str] = ()
) -> tuple[dict[str, list[str]], list[str]] | None:
    """
    The options among *arguments* (each ``--name VALUE`` or ``--name=VALUE``
    in *valued*, or a flag in *flags*; only those in *repeatable* more than
    once), and the positional arguments; ``None`` for anything else.
    """
    values: dict[str, list[str]] = {}
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
        if option in values and option not in repeatable:
            return None
        if option in flags and not equals:
            value = ""
        elif option not in valued:
            return None
        elif not equals:
            following = next(rest, None)
            if following is None:
                return None
            value = following
        values.setdefault(option, []).append(value)
    return values, positional


def _ping(arguments: Sequence[str]) -> Ping | None:
    parsed = _options(arguments, ("--wait", "--name"))
    if parsed is None:
        return None
    values, positional = parsed
    if len(positional) > 1:
        return None
    wait = _seconds(values["--wait"][0]) if "--wait" in values else text.DEFAULT_WAIT
    name = _samp_string(values["--name"][0]) if "--name" in values else f"{text.PROGRAM} ping"
    if wait is None or not name:
        return None
    return Ping(positional[0] if positional else None, wait, name)


def _notify(arguments: Sequence[str]) -> Notify | None:
    parsed = _options(arguments, ("--to", "--name"), flags=("--notify",), repeatable=("--to",))
    if parsed is None:
        return None
    values, positional = parsed
    if "--notify" not in values or not positional or not is_mtype(positional[0]):
        return None
    params: dict[str, str] = {}
    for pair in positional[1:]:
        key, sep, value = pair.partition("=")
        checked = _samp_string(value)
        if not sep or not key or key in params or checked is None:
            return None
        params[key] = checked
    to = values.get("--to", [])
    name = _samp_string(values["--name"][0]) if "--name" in values else f"{text.PROGRAM} send"
    if not name or not all(to):
        return None
    return Notify(positional[0], params, tuple(to), name)


def parse(argv: Sequence[str]) -> Command | None:
    """
    Recognise a command line this module serves, strictly: ``ping
    [NAME_OR_ID] [--wait SECONDS] [--name NAME]``, and ``send MTYPE
    [KEY=VALUE ...] --notify [--to NAME_OR_ID ...] [--name NAME]``.

    :param argv: the arguments, without the program name.
    :return: the command, or ``None`` when the full command must run it:
        another command, another option (``-v``, ``--help``, TLS options,
        abbreviations), a repeated option, or a value the full command
        rejects (it then says why).
    """
    if argv[:1] == ["ping"]:
        return _ping(argv[1:])
    if argv[:1] == ["send"]:
        return _notify(argv[1:])
    return None


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

    def call(self, method: str, *args: Any, timeout: float = DEFAULT_HUB_TIMEOUT) -> Any:
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
                self._host, self._port, timeout=min(DEFAULT_CONNECT_TIMEOUT, _left(deadline))
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


@contextmanager
def _registration(params: Mapping[str, str], name: str) -> Iterator[tuple[_Hub, str]]:
    """
    Registered with the hub as *name*, as the full command's client
    registers (a ping first, then metadata), without a callback; always
    unregistered at the end.

    :return: a context giving the hub and the private key.
    """
    hub = _Hub(params["samp.hub.xmlrpc.url"])
    _first_call(hub, "samp.hub.ping")
    key: str | None = None
    try:
        key = _register(hub, params["samp.secret"])
        hub.call("samp.hub.declareMetadata", key, {"samp.name": name})
        yield hub, key
    finally:
        with _signals_ignored():
            _unregister(hub, key)


def _ping_client(command: Ping, params: Mapping[str, str], out: Callable[[str], None]) -> int:
    assert command.target is not None
    with _registration(params, command.name) as (hub, key):
        recipients, names = _resolve(hub, key, [command.target])
        results = [_ping_one(hub, key, recipient, command.wait, names, out) for recipient in recipients]
    return text.EXIT_OK if all(results) else text.EXIT_FAILED


def _send_notification(command: Notify, params: Mapping[str, str], out: Callable[[str], None]) -> int:
    message = message_map(command.mtype, command.params)
    with _registration(params, command.name) as (hub, key):
        if command.to:
            recipients, names = _resolve(hub, key, list(command.to))
            for recipient in recipients:
                hub.call("samp.hub.notify", key, recipient, message)
        else:
            recipients = sorted(hub.call("samp.hub.notifyAll", key, message), key=text.natural)
            names = _names(hub, key, recipients)
        if not recipients:
            raise _UserError(f"no client is subscribed to {command.mtype}")
        for recipient in recipients:
            out(f"{text.label(recipient, names)}: notified")
    return text.EXIT_OK


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


def _resolve(hub: _Hub, key: str, targets: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """The ids *targets* (ids or names) stand for, in order and without
    repeats, as the full command resolves them, and every client's name."""
    ids = list(hub.call("samp.hub.getRegisteredClients", key))
    names = _names(hub, key, ids)
    try:
        return text.match_targets(targets, ids, names), names
    except LookupError as exc:
        raise _UserError(str(exc)) from None


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
    command: Command,
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
            if isinstance(command, Notify):
                return _send_notification(command, params, out)
            if command.target is None:
                return _ping_hub(params, out)
            return _ping_client(command, params, out)
    except (KeyboardInterrupt, _Stopped):
        message = "interrupted"
    except (SAMPHubError, _HubFault, _Unreachable, _UserError) as exc:
        message = str(exc)
    print(text.failed("send" if isinstance(command, Notify) else "ping", message), file=errors, flush=True)
    return text.EXIT_FAILED
