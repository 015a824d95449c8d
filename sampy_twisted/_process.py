# -*- test-case-name: tests.test_testing -*-
"""
Child processes for tests: SAMP hubs and client tools run under the reactor.

Everything here uses ``reactor.spawnProcess`` and Deferreds, so it can run
inside trial tests without blocking the reactor.  A process's stdout and
stderr are collected together (for error messages) and split into lines (so
a test can wait for a line it expects).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from twisted.internet import defer, error as ierror, task
from twisted.internet.interfaces import IProcessTransport, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._discovery import ping_hub, read_lockfile
from ._errors import SAMPHubError
from ._reactor import default_reactor

__all__ = [
    "HubProcess",
    "ProcessFailed",
    "ProcessResult",
    "ProcessTimedOut",
    "ToolProcess",
    "lockfile_environ",
    "remove_directory_when_ended",
    "spawn",
    "start_hub",
    "use_directory",
]

POLL_INTERVAL = 0.05
"""Seconds between looks at the lockfile while a hub starts."""

KILL_AFTER = 10.0
"""Seconds :meth:`ToolProcess.stop` waits after SIGTERM before SIGKILL."""

MAX_OUTPUT_CHARS = 1024 * 1024
"""Output kept per process; older output is dropped past this."""

_T = TypeVar("_T")


def _clock(reactor: IReactorProcess) -> IReactorTime:
    """The time side of *reactor*: every reactor that runs processes keeps
    time too."""
    return cast(IReactorTime, reactor)


class ProcessFailed(Exception):
    """
    A child process did not do what was expected: it exited too early, or
    failed to start a hub.

    :ivar output: the process's stdout and stderr so far, as text.
    """

    def __init__(self, message: str, output: str = "") -> None:
        if output.strip():
            message = f"{message}\n--- process output ---\n{output.rstrip()}\n---"
        else:
            message = f"{message} (the process wrote no output)"
        super().__init__(message)
        self.output = output


class ProcessTimedOut(ProcessFailed):
    """
    A child process, or something awaited from it, took longer than allowed.

    :ivar output: the process's stdout and stderr so far, as text.
    """


@dataclass(frozen=True)
class ProcessResult:
    """
    How a child process ended.

    :ivar exit_code: its exit status, or ``None`` if a signal ended it.
    :ivar signal: the signal number that ended it, or ``None``.
    :ivar output: its stdout and stderr, as text.
    """

    exit_code: int | None
    signal: int | None
    output: str


class _Collector(ProcessProtocol):
    """Collects output, splits it into lines and reports the end."""

    def __init__(self, on_line: Callable[[str], None], on_end: Callable[[ProcessResult], None]) -> None:
        self._on_line = on_line
        self._on_end = on_end
        self._chunks: list[str] = []
        self._size = 0
        # Lines are split per stream so stdout and stderr never mix mid-line.
        self._partial = {1: "", 2: ""}

    def connectionMade(self) -> None:
        # Nothing we run reads stdin; an open pipe would only leak.
        assert self.transport is not None  # connected
        self.transport.closeStdin()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        text = data.decode("utf-8", errors="replace")
        self._keep(text)
        lines = (self._partial.get(fd, "") + text).split("\n")
        self._partial[fd] = lines.pop()
        for line in lines:
            self._on_line(line.rstrip("\r"))

    def _keep(self, text: str) -> None:
        self._chunks.append(text)
        self._size += len(text)
        if self._size > MAX_OUTPUT_CHARS:
            joined = "".join(self._chunks)[-MAX_OUTPUT_CHARS // 2:]
            self._chunks = [joined]
            self._size = len(joined)

    @property
    def output(self) -> str:
        return "".join(self._chunks)

    def processEnded(self, reason: Failure) -> None:
        for fd, rest in self._partial.items():
            if rest:
                self._on_line(rest.rstrip("\r"))
            self._partial[fd] = ""
        value = reason.value
        self._on_end(
            ProcessResult(
                exit_code=getattr(value, "exitCode", None),
                signal=getattr(value, "signal", None),
                output=self.output,
            )
        )


class _LineWaiter:
    """One pending :meth:`ToolProcess.wait_for_line`."""

    def __init__(self, pattern: re.Pattern[str], deferred: defer.Deferred[str]) -> None:
        self.pattern = pattern
        self.deferred = deferred


class ToolProcess:
    """
    A running child process whose output lines can be awaited.

    Made by :func:`spawn`; use :meth:`stop` or :meth:`kill` to end it.

    :ivar pid: the process id.
    :ivar name: a short name for it, used in messages.
    :ivar lines: every complete output line so far, stdout and stderr mixed.
    :ivar result: the :class:`ProcessResult` once it has ended, else ``None``.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: IReactorProcess,
        argv: Sequence[str],
        env: Mapping[str, str],
        path: str,
        name: str | None = None,
    ) -> None:
        self._reactor = reactor
        self._argv = list(argv)
        self.name = name or os.path.basename(self._argv[0])
        self.lines: list[str] = []
        self._cursor = 0
        self._line_waiters: list[_LineWaiter] = []
        self._end_waiters: list[defer.Deferred[ProcessResult]] = []
        self.result: ProcessResult | None = None
        self._collector = _Collector(self._line_received, self._ended)
        self._transport: IProcessTransport = reactor.spawnProcess(
            self._collector, self._argv[0], self._argv, env=env, path=path
        )
        self.pid = self._transport.pid
        self._log.debug("Started {argv} as pid {pid}", argv=self._argv, pid=self.pid)

    @property
    def output(self) -> str:
        """
        Everything the process wrote so far, stdout and stderr mixed.

        :rtype: str
        """
        return self._collector.output

    @property
    def ended(self) -> defer.Deferred[ProcessResult]:
        """
        A new Deferred firing with the :class:`ProcessResult` when the
        process has ended (at once if it already has).  It never fails.

        :rtype: Deferred
        """
        if self.result is not None:
            return defer.succeed(self.result)

        def cancel(d: defer.Deferred[ProcessResult]) -> None:
            self._end_waiters.remove(d)

        d: defer.Deferred[ProcessResult] = defer.Deferred(cancel)
        self._end_waiters.append(d)
        return d

    def _line_received(self, line: str) -> None:
        self.lines.append(line)
        for waiter in list(self._line_waiters):
            if waiter.pattern.search(line):
                self._cursor = len(self.lines)
                self._line_waiters.remove(waiter)
                waiter.deferred.callback(line)

    def _ended(self, result: ProcessResult) -> None:
        self.result = result
        self._log.debug(
            "pid {pid} ended: exit code {code}, signal {signal}",
            pid=self.pid,
            code=result.exit_code,
            signal=result.signal,
        )
        waiters, self._line_waiters = self._line_waiters, []
        for waiter in waiters:
            waiter.deferred.errback(
                ProcessFailed(
                    f"{self.name} ended (exit code {result.exit_code}, signal "
                    f"{result.signal}) before writing a line matching "
                    f"{waiter.pattern.pattern!r}",
                    result.output,
                )
            )
        enders, self._end_waiters = self._end_waiters, []
        for d in enders:
            d.callback(result)

    def wait_for_line(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> defer.Deferred[str]:
        """
        Wait for an output line matching *pattern*.

        Lines already written count, except those up to the last line an
        earlier wait matched, so successive waits move forward through the
        output.

        :param pattern: a regular expression (``str`` or compiled), searched
            for anywhere in each line.
        :param float timeout: seconds to wait.
        :return: a Deferred firing with the matching line, or failing with
            :class:`ProcessTimedOut`, or :class:`ProcessFailed` if the process
            ends first.
        :rtype: Deferred
        """
        compiled = re.compile(pattern)
        for index in range(self._cursor, len(self.lines)):
            if compiled.search(self.lines[index]):
                self._cursor = index + 1
                return defer.succeed(self.lines[index])
        if self.result is not None:
            return defer.fail(
                ProcessFailed(
                    f"{self.name} has ended without writing a line matching "
                    f"{compiled.pattern!r}",
                    self.output,
                )
            )
        def cancel(d: defer.Deferred[str]) -> None:
            if waiter in self._line_waiters:
                self._line_waiters.remove(waiter)

        waiter = _LineWaiter(compiled, defer.Deferred(cancel))
        self._line_waiters.append(waiter)

        def timed_out(result: object, timeout: float) -> str:
            raise ProcessTimedOut(
                f"{self.name} wrote no line matching {compiled.pattern!r} "
                f"within {timeout:g} s",
                self.output,
            )

        return waiter.deferred.addTimeout(timeout, _clock(self._reactor), onTimeoutCancel=timed_out)

    def _signal(self, name: str) -> None:
        try:
            self._transport.signalProcess(name)
        except ierror.ProcessExitedAlready:
            pass

    def stop(self, kill_after: float = KILL_AFTER) -> defer.Deferred[ProcessResult]:
        """
        End the process politely: SIGTERM, then SIGKILL if it is still
        running *kill_after* seconds later.

        :param float kill_after: seconds to wait before SIGKILL.
        :return: a Deferred firing with the :class:`ProcessResult` once the
            process has ended.
        :rtype: Deferred
        """
        if self.result is not None:
            return defer.succeed(self.result)
        self._signal("TERM")
        killer = _clock(self._reactor).callLater(kill_after, self._kill_late, kill_after)
        d = self.ended

        def ended(result: ProcessResult) -> ProcessResult:
            if killer.active():
                killer.cancel()
            return result

        return d.addCallback(ended)

    def _kill_late(self, waited: float) -> None:
        self._log.warn(
            "{name} (pid {pid}) ignored SIGTERM for {waited} s; killing it",
            name=self.name,
            pid=self.pid,
            waited=waited,
        )
        self._signal("KILL")

    def kill(self) -> defer.Deferred[ProcessResult]:
        """
        End the process at once with SIGKILL, giving it no chance to clean
        up (for a hub: its lockfile stays behind and clients get no
        shutdown message).

        :return: a Deferred firing with the :class:`ProcessResult` once the
            process has ended.
        :rtype: Deferred
        """
        if self.result is not None:
            return defer.succeed(self.result)
        self._signal("KILL")
        return self.ended


class HubProcess(ToolProcess):
    """
    A SAMP hub running in a child process, with its Standard Profile lockfile.

    Made by the ``start_*_hub`` functions once the hub answers
    ``samp.hub.ping``.  :meth:`stop` lets the hub shut down cleanly (it
    tells its clients and removes its lockfile); :meth:`kill` makes it vanish
    without notice.

    :ivar params: the lockfile's entries (``samp.secret``,
        ``samp.hub.xmlrpc.url``, ...), as read when the hub started.
    :ivar lockfile: the lockfile's path.
    :ivar directory: the directory the hub runs in; its home directory.
    :ivar environ: a copy of ``os.environ`` with ``HOME`` and ``SAMP_HUB``
        pointing at this hub, to run clients against it.
    :ivar pid: the process id.
    """

    def __init__(
        self,
        reactor: IReactorProcess,
        argv: Sequence[str],
        env: Mapping[str, str],
        path: str,
        lockfile: str,
        name: str | None = None,
    ) -> None:
        super().__init__(reactor, argv, env, path, name)
        self.lockfile = lockfile
        self.directory = path
        self.environ = dict(env)
        self.params: dict[str, str] | None = None


def lockfile_environ(
    directory: str | os.PathLike[str],
    lockfile: str | os.PathLike[str] | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """
    An environment whose hub discovery points at *lockfile*.

    :param str directory: the home directory to set.
    :param str lockfile: the lockfile ``SAMP_HUB`` names; when ``None``,
        ``SAMP_HUB`` is removed so ``<directory>/.samp`` is used.
    :param dict base: the environment to start from (``os.environ``).
    :rtype: dict
    """
    env = dict(os.environ if base is None else base)
    env["HOME"] = str(directory)
    if lockfile is None:
        env.pop("SAMP_HUB", None)
    else:
        env["SAMP_HUB"] = "std-lockurl:" + Path(lockfile).absolute().as_uri()
    return env


def use_directory(directory: str | os.PathLike[str] | None, prefix: str) -> tuple[str, bool]:
    """
    The directory a process should run in.

    :param directory: the caller's choice, or ``None`` for a new temporary
        directory named ``<prefix>...``.
    :return: ``(absolute path, whether it was made here)``; a directory made
        here should be passed to :func:`remove_directory_when_ended`.
    :rtype: tuple
    """
    if directory is not None:
        return os.path.abspath(str(directory)), False
    return tempfile.mkdtemp(prefix=prefix), True


def remove_directory_when_ended(result: _T, directory: str) -> _T:
    """
    Remove *directory* once the process in *result* has ended.

    :param result: a :class:`ToolProcess`; anything else (a failure to start
        one, whose process has already ended) removes the directory at once.
    :param str directory: the directory to remove.
    :return: *result*, so this can be used as a callback.
    """

    def remove(ended: object) -> object:
        shutil.rmtree(directory, ignore_errors=True)
        return ended

    if isinstance(result, ToolProcess):
        result.ended.addCallback(remove)
    else:
        remove(None)
    return result


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    directory: str,
    reactor: IReactorProcess | None = None,
    name: str | None = None,
) -> ToolProcess:
    """
    Start a child process collecting its output.

    :param argv: the program (a full path) and its arguments.
    :param dict env: its whole environment.
    :param str directory: its working directory.
    :param str name: what to call it in messages.
    :return: the running :class:`ToolProcess`.
    """
    reactor = default_reactor(reactor)
    return ToolProcess(reactor, argv, env, directory, name)


def _secret_of(path: str) -> str | None:
    try:
        return read_lockfile(path)["samp.secret"]
    except SAMPHubError:
        return None


async def _wait_for_hub(
    hub: HubProcess, reactor: IReactorProcess, old_secret: str | None, deadline: float
) -> dict[str, str]:
    """Poll the lockfile until a new hub writes it and answers a ping."""
    while True:
        if hub.result is not None:
            raise ProcessFailed(
                f"{hub.name} exited (exit code {hub.result.exit_code}, "
                f"signal {hub.result.signal}) before it was ready",
                hub.output,
            )
        remaining = deadline - _clock(reactor).seconds()
        if remaining <= 0:
            raise ProcessTimedOut(
                f"{hub.name} wrote no working lockfile at {hub.lockfile} in time",
                hub.output,
            )
        try:
            params = read_lockfile(hub.lockfile)
        except SAMPHubError:
            # Not written yet, or half written: hubs write it in steps.
            params = None
        if params is not None and params["samp.secret"] != old_secret:
            if await ping_hub(params, _clock(reactor), timeout=max(0.5, min(remaining, 5.0))):
                return params
        await task.deferLater(_clock(reactor), POLL_INTERVAL, lambda: None)


def start_hub(
    argv: Sequence[str],
    env: Mapping[str, str],
    directory: str,
    lockfile: str,
    timeout: float,
    reactor: IReactorProcess | None = None,
    name: str = "hub",
) -> defer.Deferred[HubProcess]:
    """
    Start a hub process and wait until it answers through *lockfile*.

    A lockfile already at that path (a hub killed earlier in the same
    directory) is fine: the wait is for one with a new secret.

    :param float timeout: seconds for the hub to become ready; after that the
        process is killed.
    :return: a Deferred firing with the :class:`HubProcess`, or failing with
        :class:`ProcessFailed` (or :class:`ProcessTimedOut`) carrying the
        process's output, after the process has been ended.
    """
    reactor = default_reactor(reactor)
    old_secret = _secret_of(lockfile)
    try:
        hub = HubProcess(reactor, argv, env, directory, lockfile, name)
    except Exception:
        return defer.fail()
    deadline = _clock(reactor).seconds() + timeout
    d = defer.Deferred.fromCoroutine(_wait_for_hub(hub, reactor, old_secret, deadline))

    def ready(params: dict[str, str]) -> HubProcess:
        hub.params = params
        return hub

    def failed(failure: Failure) -> defer.Deferred[HubProcess]:
        # Never leave a half-started hub behind.
        return hub.kill().addCallback(lambda _: failure)

    return d.addCallbacks(ready, failed)
