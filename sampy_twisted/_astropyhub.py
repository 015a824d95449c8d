# -*- test-case-name: tests.test_testing -*-
"""
Run astropy's SAMP hub in a child process, for interoperability tests.

astropy's :class:`~astropy.samp.SAMPHubServer` runs on blocking sockets and
threads, so it gets a process of its own: ``python -m
sampy_twisted._astropyhub --lockfile PATH``.  That process writes the
lockfile, serves until SIGTERM (or SIGINT), then stops the hub, which tells
its clients and removes the lockfile.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorProcess

import sampy_twisted

from ._process import (
    HubProcess,
    lockfile_environ,
    remove_directory_when_ended,
    start_hub,
    use_directory,
)

__all__ = ["main", "start_astropy_hub"]

_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(sampy_twisted.__file__)))


def _child_environ(directory: str, lockfile: str) -> dict[str, str]:
    env = lockfile_environ(directory, lockfile)
    # The child must import this copy of sampy_twisted, checkout or not.
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + path if path else "")
    return env


def start_astropy_hub(
    reactor: IReactorProcess | None = None, directory: str | None = None, timeout: float = 30.0
) -> defer.Deferred[HubProcess]:
    """
    Start astropy's SAMP hub (Standard Profile only) in a child process.

    The hub's home directory is *directory*; it writes its lockfile
    ``<directory>/.samp`` there (mode 0600).  The Deferred fires once the
    lockfile is written and the hub answers ``samp.hub.ping``.

    :param reactor: the reactor (the global one by default).
    :param str directory: an existing directory for the hub; by default a new
        temporary one, removed when the hub ends.
    :param float timeout: seconds the hub may take to start; then it is
        killed.
    :return: a Deferred firing with a :class:`HubProcess`, or failing with
        :class:`ProcessFailed` (including the hub's output) if the hub exits
        or is not ready in time.
    :rtype: Deferred
    """
    directory, owned = use_directory(directory, "sampy-twisted-astropy-")
    lockfile = os.path.join(directory, ".samp")
    argv = [sys.executable, "-u", "-m", __name__, "--lockfile", lockfile]
    env = _child_environ(directory, lockfile)
    d = start_hub(argv, env, directory, lockfile, timeout, reactor, name="astropy hub")
    if owned:
        d.addBoth(remove_directory_when_ended, directory)
    return d


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=f"python -m {__name__}",
        description="Run astropy's SAMP hub until SIGTERM or SIGINT.",
    )
    parser.add_argument("--lockfile", required=True, help="where to write the lockfile")
    parser.add_argument("--addr", default="127.0.0.1", help="address to listen on")
    return parser.parse_args(argv)


def _make_hub(lockfile: str, addr: str) -> Any:  # astropy is not annotated
    from astropy.utils.exceptions import AstropyDeprecationWarning

    with warnings.catch_warnings():
        # astropy.samp is deprecated in favour of pyvo.samp since astropy 8.
        warnings.simplefilter("ignore", AstropyDeprecationWarning)
        from astropy.samp import SAMPHubServer, conf

    # Otherwise astropy tries to reach google.com to pick its host name.
    conf.use_internet = False
    return SAMPHubServer(web_profile=False, lockfile=lockfile, addr=addr)


def _wrote_our_lockfile(hub: Any, lockfile: str) -> bool:
    from ._discovery import read_lockfile
    from ._errors import SAMPHubError

    try:
        return bool(read_lockfile(lockfile)["samp.secret"] == hub.params["samp.secret"])
    except SAMPHubError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run astropy's hub until SIGTERM or SIGINT, then stop it cleanly.

    astropy reads ``SAMP_HUB`` before its ``lockfile`` argument, so it is
    set to match.

    :param argv: the arguments (``sys.argv[1:]`` by default).
    :return: the exit status: 0 after a clean stop, 1 if the hub could not
        write its lockfile (another hub is running there).
    :rtype: int
    """
    args = _parse_args(argv)
    lockfile = os.path.abspath(args.lockfile)
    os.environ.update(lockfile_environ(os.path.dirname(lockfile), lockfile, {}))
    # Block the signals before the hub starts its threads (they inherit the
    # mask), so only sigwait below sees them.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    hub = _make_hub(lockfile, args.addr)
    hub.start(wait=False)
    if not _wrote_our_lockfile(hub, lockfile):
        print(f"astropy hub could not write lockfile {lockfile}", file=sys.stderr)
        hub.stop()
        return 1
    print(f"astropy hub running, lockfile {lockfile}", flush=True)
    received = signal.sigwait(stop_signals)
    print(f"astropy hub stopping on signal {received}", flush=True)
    hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
