# -*- test-case-name: tests.test_cli -*-
"""
The ``sampy-twisted`` command: run a hub, list clients, send messages,
watch messages and ping, from the shell.

Every command finds the hub the standard way (``SAMP_HUB``, else
``~/.samp``).  User errors (no hub, an unknown client, a bad argument) are
reported as one line on stderr with a non-zero exit status; Twisted's log
goes to stderr only with ``-v``.
"""

from __future__ import annotations

import getopt
import os
import shutil
import sys
import textwrap
import traceback
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn, Optional, Protocol, TypeVar, cast

from twisted.internet import defer, error, task
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.failure import Failure

import sampy_twisted

from . import _cli_text
from ._cli_text import DEFAULT_WAIT, DISCONNECT_TIMEOUT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, PROGRAM
from ._cli_text import as_json as _json, describe as _describe, label as _label, natural as _natural
from ._discovery import get_hub_params
from ._encoding import check_samp_value, message_map
from ._errors import (
    SAMP_STATUS_ERROR,
    SAMP_STATUS_OK,
    SAMP_STATUS_WARNING,
    SAMPCallTimeout,
    SAMPClientError,
    SAMPHubError,
    SAMPProxyError,
)
from ._hub_proxy import SAMPHubProxy
from ._integrated import SAMPIntegratedClient
from ._mtype import check_mtype_pattern, is_mtype
from ._options import ClientTLSOptionsMixin, positive_seconds
from ._tap_hub import HubOptions, make_hub

if TYPE_CHECKING:
    from ._tls import TLSOptions

    # For the type checker, the mixins below are the Options they are mixed into.
    _OptionsBase = usage.Options
else:
    _OptionsBase = object

_T = TypeVar("_T")

#: One row of the ``clients`` table: id, name, subscriptions.
_ClientRow = tuple[str, str, list[str]]

__all__ = ["Options", "main", "run"]

HUB_CHECK_INTERVAL = 5.0
"""Seconds between ``snoop``'s checks that the hub still knows it."""

HUB_CHECK_TIMEOUT = 10.0
"""Seconds the hub may take to answer one of ``snoop``'s checks."""


class UserError(Exception):
    """Something the user can fix: reported as one line, exit status 1."""


def _wait_seconds(text: str) -> float:
    try:
        return positive_seconds("wait")(text)
    except ValueError as exc:
        raise usage.UsageError(str(exc)) from None


# -- options ------------------------------------------------------------------


def _print_version() -> NoReturn:
    print(f"{PROGRAM} {sampy_twisted.__version__}")
    sys.exit(0)


_TLS_OPTIONS = frozenset(
    [option[0] for option in ClientTLSOptionsMixin.optFlags + ClientTLSOptionsMixin.optParameters]
    + ["callback-cert-reqs"]
)
"""The options help lists last, under "TLS options": they matter only
with https hubs or callbacks."""

_METAVARS = {
    "ca-certs": "FILE",
    "callback-hosts": "local|any|HOSTS",
    "callback-cert-reqs": "required|none",
    "cert-file": "FILE",
    "cert-reqs": "none|optional|required",
    "client-timeout": "SECONDS",
    "hub-ca-certs": "FILE",
    "hub-cert-reqs": "required|none",
    "interface": "ADDRESS",
    "key-file": "FILE",
    "key-passphrase-file": "FILE",
    "label": "TEXT",
    "lockfile": "FILE",
    "mtype": "PATTERN",
    "name": "NAME",
    "port": "PORT",
    "reply": "ok|warning|error",
    "tls-min-version": "1.2|1.3",
    "to": "NAME_OR_ID",
    "wait": "SECONDS",
}
"""What help shows after each option taking a value."""

_HELP_WIDTH = 80
_HELP_COLUMN = 26


def _help_rows(rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """Two columns, ``--option VALUE`` and its wrapped description."""
    lines = []
    for flag, doc in rows:
        text = textwrap.wrap(" ".join(doc.split()), max(width - _HELP_COLUMN, 30), break_on_hyphens=False) or [""]
        if len(flag) + 4 > _HELP_COLUMN:
            lines.append(f"  {flag}")
        else:
            lines.append(f"  {flag:<{_HELP_COLUMN - 2}}{text.pop(0)}")
        lines.extend(" " * _HELP_COLUMN + line for line in text)
    return lines


class _Command(_OptionsBase):
    """
    What every command's options share: the synopsis, --version, and help
    that opens with a summary and examples and keeps the TLS options last.
    """

    synopsis: str
    longdesc: str

    summary = ""
    """The command's purpose in one line."""

    examples: tuple[str, ...] = ()
    """Example command lines."""

    order: tuple[str, ...] = ()
    """The command's own options, most useful first (then the others)."""

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        """Parse *options*, which may come before or after the arguments."""
        try:
            found, arguments = getopt.gnu_getopt(options or [], self.shortOpt, self.longOpt)
        except getopt.error as exc:
            raise usage.UsageError(str(exc)) from None
        ordered: list[str] = []
        for name, value in found:
            if name.startswith("--"):
                ordered.append(f"{name}={value}" if f"{name[2:]}=" in self.longOpt else name)
            else:
                ordered.extend([name, value] if f"{name[1:]}:" in self.shortOpt else [name])
        super().parseOptions([*ordered, "--", *arguments])  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def getSynopsis(self) -> str:
        """``Usage: sampy-twisted [-v] COMMAND ...``."""
        parent = cast(usage.Options, self.parent)
        return f"Usage: {PROGRAM} [-v] {parent.subCommand} {self.synopsis}".rstrip()

    def getUsage(self, width: int | None = None) -> str:
        """The help after the synopsis: summary, examples, the command's
        options, a longer description, then the TLS options."""
        width = min(width or shutil.get_terminal_size((_HELP_WIDTH, 24)).columns, 100)
        own: list[tuple[str, str, str]] = []
        tls: list[tuple[str, str, str]] = []
        shorts = {long: short for short, long in self.synonyms.items() if len(short) == 1}
        for option in self.longOpt:
            name = option.rstrip("=")
            flag = f"-{shorts[name]}, --{name}" if name in shorts else f"--{name}"
            if option.endswith("="):
                flag += f" {_METAVARS.get(name, 'VALUE')}"
            doc: str = self.docs.get(name) or ""
            default = self.defaults.get(name)
            if option.endswith("=") and default not in (None, ""):
                doc += f" [default: {default:g}]" if isinstance(default, float) else f" [default: {default}]"
            (tls if name in _TLS_OPTIONS else own).append((name, flag, doc))
        rank = {name: i for i, name in enumerate([*self.order, "help", "version"])}
        own.sort(key=lambda row: (rank.get(row[0], len(self.order)), row[0]))
        lines = [self.summary, ""]
        if self.examples:
            lines += ["Examples:", *(f"  {example}" for example in self.examples), ""]
        lines += ["Options:", *_help_rows([row[1:] for row in own], width), ""]
        if self.longdesc:
            lines += [*textwrap.wrap(self.longdesc, width, break_on_hyphens=False), ""]
        if tls:
            lines += ["TLS options (for https hubs and callbacks; see the TLS guide):"]
            lines += [*_help_rows([row[1:] for row in tls], width), ""]
        return "\n".join(lines)

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        _print_version()


class _Registering(_OptionsBase):
    """The options of a command that registers with the hub."""

    command = ""
    """The command's name, which the default ``samp.name`` ends with."""

    optParameters: list[list[Any]] = [["name", None, None, "The samp.name to register with."]]

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self.docs["name"] = f"The samp.name to register with [default: {self.default_name}]."

    @property
    def default_name(self) -> str:
        """``sampy-twisted COMMAND``, the ``samp.name`` without ``--name``."""
        return f"{PROGRAM} {self.command}"

    def check_name(self) -> None:
        """Check ``--name``: a SAMP string, not empty."""
        if self["name"] is None:
            self["name"] = self.default_name
            return
        if not self["name"]:
            raise usage.UsageError("--name must not be empty")
        try:
            check_samp_value(self["name"], "--name")
        except (TypeError, ValueError) as exc:
            raise usage.UsageError(str(exc)) from None


class HubCommandOptions(_Command, HubOptions):
    """``sampy-twisted hub``: the options of ``twistd samp-hub``."""

    summary = "Run a SAMP hub in the foreground until interrupted."
    examples = (
        f"{PROGRAM} hub",
        f"{PROGRAM} hub --port 21012 --lockfile /tmp/test-hub.samp",
    )
    order = ("lockfile", "port", "interface", "label", "client-timeout", "multi", "monitor")


class SendOptions(_Command, _Registering, ClientTLSOptionsMixin, usage.Options):
    """``sampy-twisted send``: send a message, print the responses."""

    command = "send"

    synopsis = "MTYPE [KEY=VALUE ...] [options]"
    summary = "Send a SAMP message to clients and print their responses."
    examples = (
        f"{PROGRAM} send table.load.votable url=file:///tmp/t.vot --to topcat",
        f"{PROGRAM} send samp.app.ping --wait 2",
        f"{PROGRAM} send script.aladin.send 'script=get DSS' --to aladin --notify",
    )
    order = ("to", "notify", "call", "wait", "name")
    longdesc = (
        "Send MTYPE with the KEY=VALUE parameters (string values) to the --to "
        "clients, by name or id, or to every client subscribed to it. A call "
        "(the default) waits for each response and prints it; the exit status "
        "is 1 if any is not samp.ok or does not arrive in time. A notification "
        "(--notify) prints who it went to."
    )
    optFlags: list[list[str | None]] = [
        ["notify", None, "Send a notification: no responses."],
        ["call", None, f"Send a call and wait {DEFAULT_WAIT:g} s for each response (the default)."],
    ]
    optParameters: list[list[Any]] = [
        ["wait", None, None, "Send a call and wait at most SECONDS for each response."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["to"] = []

    def opt_to(self, target: str) -> None:
        """A recipient: a client's samp.name or its id (repeatable)."""
        if not target:
            raise usage.UsageError("--to needs a client name or id")
        self["to"].append(target)

    def parseArgs(self, *arguments: str) -> None:
        """MTYPE, then KEY=VALUE parameters."""
        if not arguments:
            raise usage.UsageError("no MType given: name one, such as table.load.votable")
        mtype, *pairs = arguments
        if not is_mtype(mtype):
            raise usage.UsageError(f"{mtype!r} is not an MType (such as table.load.votable)")
        self["mtype"] = mtype
        params: dict[str, str] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise usage.UsageError(f"{pair!r} is not KEY=VALUE")
            if key in params:
                raise usage.UsageError(f"parameter {key!r} is given twice: give each KEY once")
            try:
                params[key] = check_samp_value(value, f"parameter {key}")
            except (TypeError, ValueError) as exc:
                raise usage.UsageError(str(exc)) from None
        self["params"] = params

    def postOptions(self) -> None:
        """Check the choice between --notify, --call and --wait, --name and TLS."""
        if self["notify"] and (self["call"] or self["wait"] is not None):
            raise usage.UsageError("--notify cannot be combined with --call or --wait")
        if self["wait"] is None:
            self["wait"] = DEFAULT_WAIT
        else:
            self["wait"] = _wait_seconds(self["wait"])
        self.check_name()
        self.check_tls()


class ClientsOptions(_Command, _Registering, ClientTLSOptionsMixin, usage.Options):
    """``sampy-twisted clients``: list the registered clients."""

    command = "clients"

    synopsis = "[options]"
    summary = "List the registered clients: id, samp.name and subscriptions."
    examples = (
        f"{PROGRAM} clients",
        f"{PROGRAM} clients --long",
    )
    order = ("long", "name")
    longdesc = (
        "Each client is one line, cut to fit the terminal (80 columns when "
        "the output is not a terminal); --long prints every name and "
        "subscription in full."
    )
    optFlags: list[list[str | None]] = [
        ["long", "l", "Print every name and subscription in full, however wide."],
    ]

    def postOptions(self) -> None:
        """Check --name and the TLS options."""
        self.check_name()
        self.check_tls()


SNOOP_REPLIES: dict[str, dict[str, Any]] = {
    "ok": {"samp.status": SAMP_STATUS_OK, "samp.result": {}},
    "warning": {
        "samp.status": SAMP_STATUS_WARNING,
        "samp.result": {},
        "samp.error": {"samp.errortxt": "logged by sampy-twisted snoop, not acted on"},
    },
    "error": {
        "samp.status": SAMP_STATUS_ERROR,
        "samp.error": {"samp.errortxt": "logged by sampy-twisted snoop, not acted on"},
    },
}
"""The responses ``snoop --reply`` chooses between."""


class SnoopOptions(_Command, _Registering, ClientTLSOptionsMixin, usage.Options):
    """``sampy-twisted snoop``: print every message as it arrives."""

    command = "snoop"

    synopsis = "[--mtype PATTERN ...] [options]"
    summary = "Print the SAMP messages sent to this client as they arrive."
    examples = (
        f"{PROGRAM} snoop",
        f"{PROGRAM} snoop --mtype 'table.*' --name 'table watcher' --reply ok",
    )
    order = ("mtype", "reply", "name")
    longdesc = (
        "Register, subscribe to the --mtype patterns (default: every MType, "
        "hub events included) and print each message received, one line "
        "each, with the msg-id of calls. Calls are answered samp.warning "
        "(logged, not acted on) unless --reply says otherwise; samp.app.ping "
        "is always answered samp.ok. Runs until interrupted, or until the hub "
        "goes away (exit status 1)."
    )
    optParameters: list[list[Any]] = [
        ["reply", None, "warning", "How to answer calls: ok, warning or error."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["mtypes"] = []

    def opt_mtype(self, pattern: str) -> None:
        """An MType or pattern to receive, such as table.* (repeatable; default *)."""
        try:
            self["mtypes"].append(check_mtype_pattern(pattern))
        except ValueError as exc:
            raise usage.UsageError(str(exc)) from None

    def postOptions(self) -> None:
        """Default to every MType; check --reply, --name and the TLS options."""
        if not self["mtypes"]:
            self["mtypes"] = ["*"]
        if self["reply"] not in SNOOP_REPLIES:
            raise usage.UsageError(f"--reply must be ok, warning or error, not {self['reply']!r}")
        self.check_name()
        self.check_tls()


class MonitorOptions(_Command, usage.Options):
    """``sampy-twisted monitor``: print (or open) the hub monitor's URL."""

    command = "monitor"

    synopsis = "[options]"
    summary = "Print the URL of the hub's live monitor page."
    examples = (f"{PROGRAM} monitor", f"{PROGRAM} monitor --open")
    order = ("open",)
    longdesc = (
        "Read the lockfile of the running hub (which must have been started with "
        "--monitor) and print the monitor page's URL, which carries a secret "
        "token: share it as you would the lockfile."
    )
    optFlags: list[list[str | None]] = [["open", None, "Open the page in the default web browser."]]


class PingOptions(_Command, _Registering, ClientTLSOptionsMixin, usage.Options):
    """``sampy-twisted ping``: ping the hub or a client."""

    command = "ping"

    synopsis = "[NAME_OR_ID] [options]"
    summary = "Check that the hub, or a client, answers."
    examples = (
        f"{PROGRAM} ping",
        f"{PROGRAM} ping topcat --wait 3",
    )
    order = ("wait", "name")
    longdesc = (
        "Without an argument, check that the hub answers samp.hub.ping. With "
        "one, send samp.app.ping to that client (by samp.name or id) and wait "
        "for its answer."
    )
    optParameters: list[list[Any]] = [
        ["wait", None, str(DEFAULT_WAIT), "Seconds to wait for a client's answer."],
    ]

    def parseArgs(self, *targets: str) -> None:
        """An optional client name or id."""
        if len(targets) > 1:
            raise usage.UsageError(f"ping takes one client name or id, not {len(targets)}")
        self["target"] = targets[0] if targets else None

    def postOptions(self) -> None:
        """Check --wait, --name and the TLS options."""
        self["wait"] = _wait_seconds(self["wait"])
        self.check_name()
        self.check_tls()


class Options(usage.Options):
    """The ``sampy-twisted`` command line."""

    synopsis = f"Usage: {PROGRAM} [-v] COMMAND [options]"
    longdesc = (
        "Every command finds the hub through SAMP_HUB "
        "(std-lockurl:file:///path/to/lockfile), else ~/.samp. "
        f"'{PROGRAM} COMMAND --help' describes each command."
    )
    subCommands: list[list[Any]] = [
        ["clients", None, ClientsOptions, "List the registered clients."],
        ["send", None, SendOptions, "Send a message; print the responses."],
        ["snoop", None, SnoopOptions, "Print messages as they arrive."],
        ["ping", None, PingOptions, "Ping the hub or a client."],
        ["hub", None, HubCommandOptions, "Run a SAMP hub in the foreground."],
        ["monitor", None, MonitorOptions, "Print (or open) the hub monitor's URL."],
    ]
    examples = (
        f"{PROGRAM} clients",
        f"{PROGRAM} send table.load.votable url=file:///tmp/t.vot --to topcat",
        f"{PROGRAM} snoop",
    )

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self["verbosity"] = 0

    def opt_verbose(self) -> None:
        """Log to stderr (-vv: debug messages too)."""
        self["verbosity"] += 1

    opt_v = opt_verbose

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        _print_version()

    def getUsage(self, width: int | None = None) -> str:
        """The help after the synopsis: commands, examples, options."""
        if hasattr(self, "subOptions"):
            sub_usage: str = self.subOptions.getUsage(width)
            return sub_usage
        width = min(width or shutil.get_terminal_size((_HELP_WIDTH, 24)).columns, 100)
        lines = ["SAMP from the shell: list clients, send and receive messages, run a hub.", ""]
        lines += ["Commands:", *_help_rows([(name, doc) for name, _, _, doc in self.subCommands], width), ""]
        lines += ["Examples:", *(f"  {example}" for example in self.examples), ""]
        lines += ["Options:"]
        lines += _help_rows(
            [
                ("-v, --verbose", self.docs["verbose"]),
                ("--version", self.docs["version"]),
                ("--help", self.docs["help"]),
            ],
            width,
        )
        lines += ["", *textwrap.wrap(self.longdesc, width, break_on_hyphens=False), ""]
        return "\n".join(lines)

    def postOptions(self) -> None:
        """A command is required."""
        if self.subCommand is None:
            raise usage.UsageError("no command given (hub, clients, send, snoop or ping)")


# -- running commands --------------------------------------------------------


class Console:
    """
    Where a command writes and what it reads: output streams, the
    environment hub discovery uses, and a Deferred that fires when the
    command should stop (on ``SIGINT`` or ``SIGTERM``): ``hub`` and a
    running ``snoop`` then stop cleanly, any other command is cut short.

    :param stdout: a text stream for results.
    :param stderr: a text stream for errors.
    :param environ: the environment (``os.environ`` by default).
    :param stop: a Deferred fired to stop the command.
    """

    def __init__(
        self,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        environ: Mapping[str, str] | None = None,
        stop: defer.Deferred[None] | None = None,
    ) -> None:
        self.stdout: IO[str] = sys.stdout if stdout is None else stdout
        self.stderr: IO[str] = sys.stderr if stderr is None else stderr
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.stop: defer.Deferred[None] = defer.Deferred() if stop is None else stop

    def out(self, text: str) -> None:
        """Write a line of results."""
        print(text, file=self.stdout, flush=True)

    def err(self, text: str) -> None:
        """Write a line to stderr."""
        print(text, file=self.stderr, flush=True)


class _Output(Protocol):
    """Where :func:`_call_one` writes: a :class:`Console` or :class:`_Timed`."""

    def out(self, text: str) -> None:
        """Write a line of results."""


def _new_client(
    reactor: IReactorTime, options: usage.Options, name: str, callable: bool = True, track_clients: bool = False
) -> SAMPIntegratedClient:
    """A client named by ``--name`` (by default ``sampy-twisted`` and the
    command's *name*), with the callback server the TLS options ask for."""
    tls: TLSOptions | None = options["callback_tls"] if callable else None
    return SAMPIntegratedClient(
        name=options.get("name") or f"{PROGRAM} {name}",
        reactor=reactor,
        callable=callable,
        track_clients=track_clients,
        https=tls is not None,
        tls=tls,
    )


async def _connect(
    reactor: IReactorTime,
    console: Console,
    options: usage.Options,
    name: str,
    callable: bool = False,
    track_clients: bool = False,
) -> SAMPIntegratedClient:
    params = await get_hub_params(reactor, environ=console.environ)
    client = _new_client(reactor, options, name, callable, track_clients)
    await client.connect(hub_params=params, tls=options["hub_tls"])
    return client


def _gather(deferreds: list[defer.Deferred[_T]]) -> defer.Deferred[list[_T]]:
    """
    :func:`defer.gatherResults`, failing with the first failure itself
    rather than a :class:`defer.FirstError` wrapping it, so that ``run``
    recognises user errors.
    """
    def unwrap(failure: Failure) -> Failure:
        if failure.check(defer.FirstError):
            return cast(defer.FirstError, failure.value).subFailure
        return failure

    d = defer.gatherResults(deferreds, consumeErrors=True)
    return d.addErrback(unwrap)


async def _disconnect(reactor: IReactorTime, client: SAMPIntegratedClient) -> None:
    """Disconnect *client*, giving up on a hub that does not answer."""
    # disconnect() goes on closing local resources once the hub call is
    # cancelled, so a timeout only cuts the wait for a frozen hub short.
    try:
        await client.disconnect().addTimeout(DISCONNECT_TIMEOUT, reactor)
    except defer.TimeoutError:
        pass


async def _names(client: SAMPIntegratedClient, ids: list[str]) -> dict[str, str | None]:
    """``{id: samp.name or None}``, asking the hub."""

    async def name_of(client_id: str) -> str | None:
        try:
            name = (await client.get_metadata(client_id)).get("samp.name")
        except SAMPProxyError:
            return None
        return name if isinstance(name, str) else None

    names = await _gather([defer.ensureDeferred(name_of(cid)) for cid in ids])
    return dict(zip(ids, names))


async def _resolve(client: SAMPIntegratedClient, targets: list[str]) -> tuple[list[str], dict[str, str | None]]:
    """The ids of *targets* (ids or names), in order, without repeats."""
    ids = list(await client.get_registered_clients())
    names = await _names(client, ids)
    try:
        return _cli_text.match_targets(targets, ids, names), names
    except LookupError as exc:
        raise UserError(str(exc)) from None


async def _hub_command(reactor: IReactorTime, options: usage.Options, console: Console) -> int:
    hub = make_hub(options, reactor)
    try:
        await hub.start()
    except SAMPHubError as exc:
        raise UserError(str(exc)) from None
    console.out(f"SAMP hub running at {hub.url}, lockfile {hub.lockfile}")
    if hub.web_url is not None:
        console.out(f"SAMP Web Profile at {hub.web_url} (see --web-consent)")
    try:
        await console.stop
    finally:
        await hub.stop()
    return EXIT_OK


async def _clients_command(reactor: IReactorTime, options: usage.Options, console: Console) -> int:
    client = await _connect(reactor, console, options, "clients")
    try:
        ids = sorted(await client.get_registered_clients(), key=_natural)
        rows = await _gather([defer.ensureDeferred(_client_row(client, cid)) for cid in ids])
    finally:
        await _disconnect(reactor, client)
    present = [row for row in rows if row is not None]
    width = None if options["long"] else _columns(console)
    for line in _client_table(present, width):
        console.out(line)
    return EXIT_OK


async def _client_row(client: SAMPIntegratedClient, client_id: str) -> _ClientRow | None:
    try:
        metadata = await client.get_metadata(client_id)
        subscriptions = await client.get_subscriptions(client_id)
    except SAMPProxyError:
        return None  # it left while we asked
    name = metadata.get("samp.name")
    # samp.hub.* last: every client has those, and a cut line drops them first.
    mtypes = sorted(subscriptions, key=lambda mtype: (mtype.startswith("samp.hub."), mtype))
    return client_id, name if isinstance(name, str) else "", mtypes


DEFAULT_COLUMNS = 80
"""The width ``clients`` fits its lines to, unless the terminal's is known."""

_NAME_COLUMN_MAX = 24


def _columns(console: Console) -> int:
    """The output's width: ``COLUMNS``, else the terminal's, else 80."""
    columns = console.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    isatty = getattr(console.stdout, "isatty", None)
    if isatty is not None and isatty():
        try:
            return os.get_terminal_size(console.stdout.fileno()).columns
        except (OSError, ValueError):
            pass
    return DEFAULT_COLUMNS


def _clip(text: str, room: int) -> str:
    """*text*, cut to *room* characters with ``...`` marking the cut."""
    if len(text) <= room:
        return text
    return text[: max(room - 3, 0)] + "..."


def _fit(subscriptions: list[str], room: int) -> str:
    """As many *subscriptions* as fit in *room*, and how many are left out."""
    text = ", ".join(subscriptions)
    if len(text) <= room:
        return text
    for shown in range(len(subscriptions) - 1, 0, -1):
        text = ", ".join(subscriptions[:shown]) + f", ... (+{len(subscriptions) - shown})"
        if len(text) <= room:
            return text
    return _clip(f"... ({len(subscriptions)} MTypes)", room)


def _client_table(rows: list[_ClientRow], width: int | None = None) -> list[str]:
    """
    The ``clients`` table's lines: id, name and subscriptions of each of
    *rows*, each line cut to *width* (``None``: nothing is cut).
    """
    name_room = None if width is None else _NAME_COLUMN_MAX
    rows = [(cid, name if name_room is None else _clip(name, name_room), subs) for cid, name, subs in rows]
    id_width = max([len("ID")] + [len(row[0]) for row in rows])
    name_width = max([len("NAME")] + [len(row[1]) for row in rows])
    lines = [f"{'ID':<{id_width}}  {'NAME':<{name_width}}  SUBSCRIPTIONS"]
    for client_id, name, subscriptions in rows:
        start = f"{client_id:<{id_width}}  {name:<{name_width}}  "
        if width is None:
            line = start + ", ".join(subscriptions)
        else:
            line = _clip(start, width) + _fit(subscriptions, max(width - len(start), 0))
        lines.append(line.rstrip())
    return lines


async def _send_command(reactor: IReactorTime, options: usage.Options, console: Console) -> int:
    message = message_map(options["mtype"], options["params"])
    client = await _connect(reactor, console, options, "send", callable=not options["notify"])
    try:
        if options["notify"]:
            return await _notify(client, options, message, console)
        return await _call(client, options, message, console)
    finally:
        await _disconnect(reactor, client)


async def _notify(
    client: SAMPIntegratedClient, options: usage.Options, message: dict[str, Any], console: Console
) -> int:
    if options["to"]:
        recipients, names = await _resolve(client, options["to"])
        for recipient in recipients:
            await client.notify(recipient, message)
    else:
        recipients = sorted(await client.notify_all(message), key=_natural)
        names = await _names(client, recipients)
    if not recipients:
        raise UserError(f"no client is subscribed to {options['mtype']}")
    for recipient in recipients:
        console.out(f"{_label(recipient, names)}: notified")
    return EXIT_OK


async def _call(
    client: SAMPIntegratedClient, options: usage.Options, message: dict[str, Any], console: Console
) -> int:
    if options["to"]:
        recipients, names = await _resolve(client, options["to"])
    else:
        subscribed = await client.get_subscribed_clients(options["mtype"])
        recipients = sorted((cid for cid in subscribed if cid != client.get_public_id()), key=_natural)
        names = await _names(client, recipients)
    if not recipients:
        raise UserError(f"no client is subscribed to {options['mtype']}")
    results = await _gather(
        [
            defer.ensureDeferred(_call_one(client, recipient, message, options["wait"], names, console))
            for recipient in recipients
        ]
    )
    return EXIT_OK if all(results) else EXIT_FAILED


async def _call_one(
    client: SAMPIntegratedClient,
    recipient: str,
    message: dict[str, Any],
    wait: float,
    names: Mapping[str, str | None],
    console: _Output,
) -> bool:
    """Call one recipient and print the outcome; ``True`` if it is samp.ok."""
    label = _label(recipient, names)
    try:
        response = await client.call_and_wait(recipient, message, wait)
    except SAMPCallTimeout:
        console.out(_cli_text.no_response(label, wait))
        return False
    except SAMPProxyError as exc:
        console.out(_cli_text.refused(label, str(exc)))
        return False
    console.out(f"{label}: {_describe(response)}")
    return response.get("samp.status") == SAMP_STATUS_OK


def _snooped(mtype: str, sender: str, msg_id: str | None, params: dict[str, Any]) -> str:
    """The line ``snoop`` prints for a message."""
    if msg_id is not None:
        return f"call {mtype} from {sender} [msg-id {msg_id}]: {_json(params)}"
    kind = "hub event" if mtype.startswith("samp.hub.") else "notification"
    return f"{kind} {mtype} from {sender}: {_json(params)}"


_STOP = object()


async def _snoop_command(reactor: IReactorTime, options: usage.Options, console: Console) -> int:
    def show(
        private_key: str, sender_id: str, msg_id: str | None, mtype: str, params: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Any] | None:
        tracker = client.clients  # the client tracks clients
        sender = tracker.get(sender_id) if tracker is not None else None
        name = sender.name if sender is not None else None
        who = f"{sender_id} ({name})" if name else sender_id
        console.out(_snooped(mtype, who, msg_id, params))
        if msg_id is None:
            return None
        return dict(SNOOP_REPLIES["ok" if mtype == "samp.app.ping" else options["reply"]])

    params = await get_hub_params(reactor, environ=console.environ)
    client = _new_client(reactor, options, "snoop", track_clients=True)
    # The client checks that the hub is alive: a hub killed without warning,
    # or restarted, sends no shutdown message.
    client.hub_check_interval = HUB_CHECK_INTERVAL
    client.hub_check_timeout = HUB_CHECK_TIMEOUT
    for pattern in options["mtypes"]:
        client.bind_receive_message(pattern, show)
    await client.connect(hub_params=params, tls=options["hub_tls"])
    ended: defer.Deferred[str] = defer.Deferred()  # fires with why the hub went away

    def lost(reason: str) -> None:
        if not ended.called:
            ended.callback(reason)

    client.when_disconnected().addCallback(lost)
    console.err(
        f"Receiving {', '.join(options['mtypes'])} as {client.get_public_id()}; interrupt to stop"
    )
    why: object
    try:
        why = await ended
    except defer.CancelledError:
        why = _STOP  # run() cancels on Console.stop: snoop's normal way to end
    if why is _STOP:
        await _disconnect(reactor, client)
        return EXIT_OK
    raise UserError(f"the hub connection ended: {why}")


async def _ping_command(reactor: IReactorTime, options: usage.Options, console: Console) -> int:
    if options["target"] is None:
        return await _ping_hub(reactor, console, options)
    client = await _connect(reactor, console, options, "ping", callable=True)
    try:
        recipients, names = await _resolve(client, [options["target"]])
        message = message_map("samp.app.ping")
        results: list[bool] = []
        for recipient in recipients:
            started = reactor.seconds()
            ok = await _call_one(client, recipient, message, options["wait"], names, _Timed(console, reactor, started))
            results.append(ok)
    finally:
        await _disconnect(reactor, client)
    return EXIT_OK if all(results) else EXIT_FAILED


class _Timed:
    """A console adding the time taken since *started* to each line."""

    def __init__(self, console: Console, reactor: IReactorTime, started: float) -> None:
        self._console = console
        self._reactor = reactor
        self._started = started

    def out(self, text: str) -> None:
        """Write a line of results, with the time taken."""
        self._console.out(_cli_text.timed(text, self._reactor.seconds() - self._started))


async def _ping_hub(reactor: IReactorTime, console: Console, options: usage.Options) -> int:
    params = await get_hub_params(reactor, environ=console.environ)
    hub = SAMPHubProxy(reactor=reactor)
    started = reactor.seconds()
    await hub.connect(hub_params=params, tls=options["hub_tls"])  # pings it
    elapsed = reactor.seconds() - started
    await hub.disconnect()
    console.out(_cli_text.hub_alive(params["samp.hub.xmlrpc.url"], elapsed))
    return EXIT_OK


async def _monitor_command(reactor: IReactorTime, options: usage.Options, console: Console) -> int:
    from ._monitor_web import MONITOR_URL_KEY  # the hub's modules, loaded for this command only

    params = await get_hub_params(reactor, environ=console.environ)
    url = params.get(MONITOR_URL_KEY)
    if not url:
        raise UserError("the hub serves no monitor page: start it with --monitor")
    console.out(url)
    if options["open"]:
        import webbrowser

        from twisted.internet import threads

        await threads.deferToThread(webbrowser.open, url)
    return EXIT_OK


_COMMANDS: dict[str, Callable[[IReactorTime, usage.Options, Console], Coroutine[Any, Any, int]]] = {
    "hub": _hub_command,
    "clients": _clients_command,
    "send": _send_command,
    "snoop": _snoop_command,
    "ping": _ping_command,
    "monitor": _monitor_command,
}


async def run(reactor: IReactorTime, options: Options, console: Console | None = None) -> int:
    """
    Run the command *options* name.

    :param reactor: the running reactor.
    :param Options options: the parsed command line.
    :param Console console: streams, environment and stop signal (standard
        streams and ``os.environ`` by default).
    :return: the exit status: 1 for a failure, reported as one line on the
        console's stderr; that includes a command cut short by *console*'s
        ``stop``, except ``hub`` and a receiving ``snoop``, whose normal end
        it is (0).
    :rtype: int
    """
    console = Console() if console is None else console
    name = cast(str, options.subCommand)  # postOptions checked there is one
    running = defer.ensureDeferred(_COMMANDS[name](reactor, options.subOptions, console))
    interrupted: list[bool] = []
    if name != "hub":
        # The hub command waits for Console.stop itself; cancelling it while
        # it starts would leave a hub running.  Any other command is
        # cancelled, so none outlives a signal by more than the bounded
        # disconnection in its clean-up.
        def interrupt(result: _T) -> _T:
            if not running.called:
                interrupted.append(True)
                running.cancel()
            return result

        console.stop.addBoth(interrupt)
    try:
        return await running
    except Exception as exc:
        message = _user_error_message(exc)
        if interrupted and (message is not None or isinstance(exc, defer.CancelledError)):
            # The hub proxy reports some cancelled requests as hub errors.
            message = "interrupted"
        if message is None:
            raise
        console.err(_cli_text.failed(name, message))
        return EXIT_FAILED


def _user_error_message(exc: Exception) -> str | None:
    """The one-line message for an expected error, or ``None``."""
    if isinstance(exc, error.CannotListenError):
        # Such as hub --port with a port in use; the callback servers of the
        # other commands listen on a free port.
        return f"cannot listen on {exc.interface or '*'}:{exc.port}: {exc.socketError}"
    if isinstance(exc, (UserError, SAMPHubError, SAMPClientError, SAMPProxyError)):
        return str(exc)
    return None


def parse(argv: Sequence[str]) -> Options:
    """
    Parse a command line.

    :param argv: the arguments, without the program name.
    :rtype: Options
    :raises usage.UsageError: it is wrong.
    """
    options = Options()
    options.parseOptions(argv)  # type: ignore[no-untyped-call]  # not annotated in Twisted
    return options


def _start_logging(verbosity: int) -> None:
    if verbosity <= 0:
        globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)
        return
    level = LogLevel.debug if verbosity > 1 else LogLevel.info
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _usage_error(argv: Sequence[str], error: usage.UsageError) -> None:
    command = next((arg for arg in argv if arg in _COMMANDS), None)
    where = f"{PROGRAM} {command}" if command else PROGRAM
    print(f"{where}: {error} (see '{where} --help')", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The ``sampy-twisted`` console script.

    :param argv: the arguments, without the program name (``sys.argv[1:]``
        by default).
    :raises SystemExit: always, with the exit status: 0 on success, 1 when
        the command failed, 2 for a wrong command line.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse(argv)
    except usage.UsageError as exc:
        _usage_error(argv, exc)
        raise SystemExit(EXIT_USAGE)
    _start_logging(options["verbosity"])
    task.react(_react_main, [options])


def _react_main(reactor: IReactorCore, options: Options) -> defer.Deferred[None]:
    console = Console()
    # task.react calls this before the reactor runs; wait until it does, so
    # that its signal handlers (SIGINT, SIGTERM) are in place first.
    started: defer.Deferred[None] = defer.Deferred()
    reactor.callWhenRunning(started.callback, None)
    done = started.addCallback(
        lambda _: defer.ensureDeferred(_guarded_run(cast(IReactorTime, reactor), options, console))
    )
    finished: list[bool] = []

    def finish(result: _T) -> _T:
        finished.append(True)
        return result

    done.addBoth(finish)

    def before_shutdown() -> Optional[defer.Deferred[None]]:
        # A signal stops the reactor: let the command stop cleanly first.
        if finished:
            return None
        if not console.stop.called:
            console.stop.callback(None)
        waiter: defer.Deferred[None] = defer.Deferred()

        def release(result: _T) -> _T:
            waiter.callback(None)
            return result

        done.addBoth(release)
        return waiter

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
    return done.addCallback(_exit_status)


async def _guarded_run(reactor: IReactorTime, options: Options, console: Console) -> int:
    try:
        return await run(reactor, options, console)
    except Exception:
        console.err(f"{PROGRAM}: internal error:\n{traceback.format_exc().rstrip()}")
        return EXIT_FAILED


def _exit_status(status: int) -> None:
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
