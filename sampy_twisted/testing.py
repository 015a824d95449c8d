# -*- test-case-name: tests.test_testing -*-
"""
Tools for testing SAMP applications built on sampy_twisted.

Real hubs in child processes, started and stopped with Deferreds so they fit
:class:`twisted.trial.unittest.TestCase`:

- :func:`start_jsamp_hub` runs JSAMP's reference hub (needs Java and the
  JSAMP jar: Debian's ``jsamp`` package);
- :func:`start_astropy_hub` runs astropy's hub (needs astropy);
- :func:`hub_for_test` starts either in a trial test's temporary directory
  and stops it when the test ends.

For fast, deterministic unit tests, :class:`MemoryNetwork` is a reactor on
which our own hub (:func:`start_memory_hub`) and real clients talk without
leaving the process, under a fake clock.  :class:`CertificateAuthority`
makes throw-away certificates for TLS tests.

JSAMP's command-line tools exercise hubs and clients:
:func:`run_jsamp_tool` runs one to completion (``hubtester``,
``calcstorm``, ``messagesender``) and :func:`spawn_jsamp_tool` starts a
long-running one (``snooper``) whose output lines a test can wait for.

No hub or tool started here reads or writes the real ``~/.samp``: each runs
with its home directory (and ``SAMP_HUB``) pointing into a directory of the
test's own.  Example::

    from twisted.trial import unittest
    from sampy_twisted.testing import hub_for_test

    class MyAppTests(unittest.TestCase):
        timeout = 60

        async def test_talks_to_jsamp(self):
            hub = await hub_for_test(self, "jsamp")
            ...  # connect with hub.params, or run code with hub.environ
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._astropyhub import start_astropy_hub
from ._memory import MemoryNetwork, start_memory_hub
from ._pki import CertificateAuthority
from ._jsamp import JSampNotFound, run_jsamp_tool, spawn_jsamp_tool, start_jsamp_hub
from ._process import HubProcess, ProcessFailed, ProcessResult, ProcessTimedOut, ToolProcess

if TYPE_CHECKING:
    from twisted.internet import defer
    from twisted.trial import unittest

__all__ = [
    # Real hubs in child processes.
    "HubProcess",
    "hub_for_test",
    "start_astropy_hub",
    "start_jsamp_hub",
    # JSAMP's tools.
    "ProcessResult",
    "ToolProcess",
    "run_jsamp_tool",
    "spawn_jsamp_tool",
    # Our hub and clients in memory, under a fake clock.
    "MemoryNetwork",
    "start_memory_hub",
    # Certificates for TLS tests.
    "CertificateAuthority",
    # Errors.
    "JSampNotFound",
    "ProcessFailed",
    "ProcessTimedOut",
]

_HUB_STARTERS = {
    "jsamp": start_jsamp_hub,
    "astropy": start_astropy_hub,
}


def hub_for_test(testcase: unittest.TestCase, kind: str = "jsamp", timeout: float = 30.0) -> defer.Deferred[HubProcess]:
    """
    Start a hub for one trial test and stop it when the test ends.

    The hub runs in a new directory from ``testcase.mktemp()``, and
    ``testcase.addCleanup(hub.stop)`` is registered once it has started, so
    the test leaves no process behind.

    :param testcase: the running :class:`twisted.trial.unittest.TestCase`.
    :param str kind: ``"jsamp"`` for JSAMP's hub or ``"astropy"`` for
        astropy's.
    :param float timeout: seconds the hub may take to start.
    :return: a Deferred firing with the :class:`HubProcess`, or failing as
        :func:`start_jsamp_hub` or :func:`start_astropy_hub` do.
    :rtype: Deferred
    :raises ValueError: *kind* is not a known hub.
    """
    try:
        start = _HUB_STARTERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown hub kind {kind!r}: use one of {', '.join(sorted(_HUB_STARTERS))}"
        ) from None
    directory = os.path.abspath(testcase.mktemp())
    os.makedirs(directory)
    d = start(directory=directory, timeout=timeout)

    def started(hub: HubProcess) -> HubProcess:
        testcase.addCleanup(hub.stop)
        return hub

    return d.addCallback(started)
