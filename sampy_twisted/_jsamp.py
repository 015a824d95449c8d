# -*- test-case-name: tests.test_testing -*-
"""
Run JSAMP, the reference SAMP implementation in Java, from tests.

JSAMP's hub is the reference hub to test clients against, and its tools
(``hubtester``, ``calcstorm``, ``messagesender``, ``snooper``) exercise hubs
and clients.  Debian and Ubuntu package it as ``jsamp``; the jar is found at
``/usr/share/java/jsamp.jar`` unless ``SAMPY_TWISTED_JSAMP_JAR`` or a ``jar``
argument says otherwise.

Every JSAMP process gets ``-Duser.home=<directory>`` and, when a lockfile is
known, ``SAMP_HUB=std-lockurl:<lockfile URL>``, so it never reads or writes
the real ``~/.samp``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from typing import cast

from twisted.internet import defer
from twisted.internet.interfaces import IReactorProcess, IReactorTime

from ._process import (
    HubProcess,
    ProcessFailed,
    ProcessResult,
    ProcessTimedOut,
    ToolProcess,
    lockfile_environ,
    remove_directory_when_ended,
    spawn,
    start_hub,
    use_directory,
)
from ._reactor import default_reactor

__all__ = [
    "DEFAULT_JAR",
    "JAR_ENV_VAR",
    "JSampNotFound",
    "HubProcess",
    "ProcessFailed",
    "ProcessResult",
    "ProcessTimedOut",
    "ToolProcess",
    "find_jsamp",
    "jsamp_command",
    "run_jsamp_tool",
    "spawn_jsamp_tool",
    "start_jsamp_hub",
]

DEFAULT_JAR = "/usr/share/java/jsamp.jar"
"""Where Debian's ``jsamp`` package installs the jar."""

JAR_ENV_VAR = "SAMPY_TWISTED_JSAMP_JAR"
"""Environment variable naming another JSAMP jar."""

MAIN_CLASS = "org.astrogrid.samp.JSamp"

HUB_ARGS = ("-mode", "no-gui", "-profiles", "std")
"""A headless hub with only the Standard Profile (the Web Profile needs a
display to ask the user's permission)."""


class JSampNotFound(Exception):
    """
    Java or the JSAMP jar is not installed.
    """


def find_jsamp(jar: str | None = None) -> tuple[str, str]:
    """
    Find the ``java`` program and the JSAMP jar.

    :param str jar: the jar's path; by default ``$SAMPY_TWISTED_JSAMP_JAR``
        or :data:`DEFAULT_JAR`.
    :return: ``(java path, jar path)``.
    :rtype: tuple
    :raises JSampNotFound: either is missing.
    """
    java = shutil.which("java")
    if java is None:
        raise JSampNotFound(
            "cannot run JSAMP: no 'java' program on PATH "
            "(install a Java runtime, e.g. Debian's default-jre-headless)"
        )
    jar = jar or os.environ.get(JAR_ENV_VAR) or DEFAULT_JAR
    if not os.path.isfile(jar):
        raise JSampNotFound(
            f"cannot run JSAMP: no jar at {jar} (install Debian's jsamp "
            f"package, or set {JAR_ENV_VAR} to the jar's path)"
        )
    return java, jar


def jsamp_command(directory: str, command: str, args: Sequence[str] = (), jar: str | None = None) -> list[str]:
    """
    The command line running a JSAMP command with *directory* as its home.

    :param str directory: the Java ``user.home``.
    :param str command: a JSAMP command: ``hub``, ``hubtester``,
        ``calcstorm``, ``messagesender``, ``snooper``, ...
    :param args: its arguments.
    :param str jar: the jar (see :func:`find_jsamp`).
    :rtype: list
    :raises JSampNotFound: Java or the jar is missing.
    """
    java, jar = find_jsamp(jar)
    return [
        java,
        f"-Duser.home={directory}",
        # No windows, ever: tests run without a display.
        "-Djava.awt.headless=true",
        "-classpath",
        jar,
        MAIN_CLASS,
        command,
        *args,
    ]


def start_jsamp_hub(
    reactor: IReactorProcess | None = None,
    directory: str | None = None,
    timeout: float = 30.0,
    jar: str | None = None,
    hub_args: Sequence[str] = (),
) -> defer.Deferred[HubProcess]:
    """
    Start a JSAMP hub (Standard Profile only) in a child process.

    The hub's home directory is *directory*; it writes its lockfile
    ``<directory>/.samp`` there (mode 0600).  The Deferred fires once the
    lockfile is written and the hub answers ``samp.hub.ping``.

    :param reactor: the reactor (the global one by default).
    :param str directory: an existing directory for the hub; by default a new
        temporary one, removed when the hub ends.
    :param float timeout: seconds the hub may take to start; then it is
        killed.
    :param str jar: the JSAMP jar (see :func:`find_jsamp`).
    :param hub_args: extra ``hub`` arguments, e.g. ``("-std:secret", "s")``.
    :return: a Deferred firing with a :class:`HubProcess`, or failing with
        :class:`JSampNotFound`, or :class:`ProcessFailed` (including the
        hub's output) if the hub exits or is not ready in time.
    :rtype: Deferred
    """
    try:
        find_jsamp(jar)
    except JSampNotFound:
        return defer.fail()
    directory, owned = use_directory(directory, "sampy-twisted-jsamp-")
    argv = jsamp_command(directory, "hub", (*HUB_ARGS, *hub_args), jar)
    lockfile = os.path.join(directory, ".samp")
    env = lockfile_environ(directory, lockfile)
    d = start_hub(argv, env, directory, lockfile, timeout, reactor, name="JSAMP hub")
    if owned:
        d.addBoth(remove_directory_when_ended, directory)
    return d


def spawn_jsamp_tool(
    tool: str,
    args: Sequence[str] = (),
    lockfile: str | None = None,
    directory: str | None = None,
    reactor: IReactorProcess | None = None,
    jar: str | None = None,
) -> ToolProcess:
    """
    Start a long-running JSAMP tool, such as ``snooper``.

    Wait for its output with :meth:`ToolProcess.wait_for_line` and end it
    with :meth:`ToolProcess.stop`.

    :param str tool: the JSAMP command, e.g. ``"snooper"``.
    :param args: its arguments, e.g. ``("-clientname", "snoop")``.
    :param str lockfile: the hub's lockfile (e.g. ``HubProcess.lockfile``);
        by default the tool looks for ``<directory>/.samp``.
    :param str directory: the tool's home directory; by default a new
        temporary one, removed when the tool ends.
    :param reactor: the reactor (the global one by default).
    :param str jar: the JSAMP jar (see :func:`find_jsamp`).
    :return: the running :class:`ToolProcess`.
    :rtype: ToolProcess
    :raises JSampNotFound: Java or the jar is missing.
    """
    find_jsamp(jar)
    java_home, owned = use_directory(directory, "sampy-twisted-jsamp-")
    argv = jsamp_command(java_home, tool, args, jar)
    process = spawn(
        argv,
        lockfile_environ(java_home, lockfile),
        java_home,
        reactor,
        name=f"JSAMP {tool}",
    )
    if owned:
        remove_directory_when_ended(process, java_home)
    return process


def run_jsamp_tool(
    tool: str,
    args: Sequence[str] = (),
    lockfile: str | None = None,
    directory: str | None = None,
    reactor: IReactorProcess | None = None,
    timeout: float = 120.0,
    jar: str | None = None,
) -> defer.Deferred[ProcessResult]:
    """
    Run a JSAMP tool to completion, e.g. ``hubtester`` or ``calcstorm``.

    A non-zero exit code is not an error here: check
    :attr:`ProcessResult.exit_code` (and show :attr:`ProcessResult.output`
    when it is not 0).

    :param str tool: the JSAMP command, e.g. ``"hubtester"``.
    :param args: its arguments, e.g. ``("-nclient", "4", "-nquery", "20")``.
    :param str lockfile: the hub's lockfile (e.g. ``HubProcess.lockfile``);
        by default the tool looks for ``<directory>/.samp``.
    :param str directory: the tool's home directory; by default a new
        temporary one, removed afterwards.
    :param reactor: the reactor (the global one by default).
    :param float timeout: seconds the tool may run; then it is killed.
    :param str jar: the JSAMP jar (see :func:`find_jsamp`).
    :return: a Deferred firing with a :class:`ProcessResult` (``exit_code``,
        ``signal``, ``output``), or failing with :class:`JSampNotFound`, or
        :class:`ProcessTimedOut` (including the output so far) after the tool
        has been killed.
    :rtype: Deferred
    """
    reactor = default_reactor(reactor)
    try:
        process = spawn_jsamp_tool(tool, args, lockfile, directory, reactor, jar)
    except JSampNotFound:
        return defer.fail()
    return _finish_within(process, timeout, reactor)


def _finish_within(
    process: ToolProcess, timeout: float, reactor: IReactorProcess
) -> defer.Deferred[ProcessResult]:
    """Wait for *process* to end; kill it if it takes over *timeout* s."""
    d = process.ended

    def timed_out(result: object, timeout: float) -> defer.Deferred[ProcessResult]:
        # Cancelling only stopped our wait: end the process and report.
        output = process.output

        def report(_: object) -> ProcessResult:
            raise ProcessTimedOut(
                f"{process.name} did not finish within {timeout:g} s and was killed",
                output,
            )

        return process.kill().addCallback(report)

    # Every reactor that runs processes keeps time too.  onTimeoutCancel
    # runs as a callback, so the Deferred it returns is chained (Twisted's
    # annotation allows only a result).
    return d.addTimeout(
        timeout, cast(IReactorTime, reactor), onTimeoutCancel=timed_out  # type: ignore[arg-type]
    )
