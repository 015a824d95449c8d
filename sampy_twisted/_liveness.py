# -*- test-case-name: tests.test_liveness -*-
"""
The hub liveness check: is the hub this client registered with still there,
and does it still know the client?

A hub killed without warning, or one restarted at the same address, sends no
``samp.hub.event.shutdown``; only asking it tells.  The integrated client
runs this check while connected, so that :class:`SAMPClientService` and
``sampy-twisted snoop`` learn of a lost hub through the client's
``when_disconnected``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from ._errors import SAMPProxyError

__all__ = ["HubLivenessCheck"]


class HubLivenessCheck:
    """
    Every *interval* seconds, ask the hub for the client's own metadata.

    ``samp.hub.ping`` would not do: any hub at that address answers it,
    with or without a key.  ``getMetadata`` needs the private key, so a hub
    that has forgotten the client (restarted, or it dropped the client)
    answers with a fault.  A refused connection, a fault or no answer within
    *timeout* seconds calls ``gone(reason)`` once, and the check stops.

    :param client: the registered client: an object with
        ``get_public_id()`` and ``get_metadata(client_id)``.
    :param float interval: seconds between checks.
    :param float timeout: seconds an answer may take.
    :param reactor: the clock.
    :param gone: called with a reason text when a check fails.
    """

    def __init__(
        self,
        client: Any,
        interval: float,
        timeout: float,
        reactor: IReactorTime,
        gone: Callable[[str], object],
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._reactor = reactor
        self._gone = gone
        self._checking: Optional[defer.Deferred[Any]] = None
        self._loop = task.LoopingCall(self._check)
        self._loop.clock = reactor
        self._interval = interval

    def start(self) -> None:
        """Start checking; the first check is one interval from now."""
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        """Stop checking, cancelling a check in progress; a late answer is
        ignored."""
        if self._loop.running:
            self._loop.stop()
        checking, self._checking = self._checking, None
        if checking is not None:
            checking.cancel()

    def _check(self) -> None:
        if self._checking is not None:
            return None  # the previous check still waits for its answer
        d = self._client.get_metadata(self._client.get_public_id())
        d.addTimeout(self._timeout, self._reactor)
        self._checking = d
        # The loop never waits on the check: a slow answer must not delay
        # the next tick's view of the hub, and stop() must not wait for it.
        d.addCallbacks(self._answered, self._failed, callbackArgs=(d,), errbackArgs=(d,))
        return None

    def _answered(self, _: object, d: defer.Deferred[Any]) -> None:
        if self._checking is d:
            self._checking = None

    def _failed(self, failure: Failure, d: defer.Deferred[Any]) -> None:
        if self._checking is not d:
            return None  # stopped meanwhile: this answer is stale
        self._checking = None
        self.stop()
        self._gone(self._reason(failure))
        return None

    def _reason(self, failure: Failure) -> str:
        if failure.check(defer.TimeoutError):
            return f"the hub did not answer within {self._timeout:g} s"
        why = failure.getErrorMessage() or repr(failure.value)
        if failure.check(SAMPProxyError):
            return f"the hub no longer knows this client: {why}"
        return f"the hub does not answer: {why}"
