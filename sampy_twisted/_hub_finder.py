# -*- test-case-name: tests.test_hub_finder -*-
"""
Find the running hub, or start one in this process, as TOPCAT does; and stop
a hub started that way without surprising the clients that use it.

Used by ``SAMPIntegratedClient.connect(hub="auto")`` and by
:class:`SAMPClientService` in ``"auto"`` mode.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Optional

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ._discovery import ping_hub
from ._errors import SAMPHubError

__all__ = ["find_or_start_hub", "stop_started_hub"]

_log = Logger(namespace="sampy_twisted.hub")


async def find_or_start_hub(
    reactor: IReactorTime,
    locate: Callable[[], Awaitable[tuple[Optional[str], dict[str, str]]]],
    start_hub: Callable[[], Awaitable[Any]],
) -> tuple[Optional[str], dict[str, str], Any]:
    """
    The running hub if one answers, else a hub started here.

    :param reactor: the reactor pinging the hub.
    :param locate: ``locate()`` returning (a Deferred or coroutine firing
        with) ``(where, params)``: the lockfile's location (or ``None``)
        and its entries; it fails with :class:`SAMPHubError` when there is
        no lockfile.
    :param start_hub: ``start_hub()`` returning (a Deferred or coroutine
        firing with) a started hub with ``params`` and ``lockfile``; it
        fails with :class:`SAMPHubError` when a live hub holds the lockfile.
    :return: ``(where, params, hub)``: *hub* is the hub started here, or
        ``None`` when a running hub was found.
    """
    try:
        where, params = await locate()
    except SAMPHubError as exc:
        _log.info("No SAMP hub found ({why}): starting one in this process", why=str(exc))
    else:
        if await ping_hub(params, reactor):
            return where, params, None
        _log.info(
            "The SAMP hub at {url} does not answer: starting one in this process",
            url=params.get("samp.hub.xmlrpc.url"),
        )
    try:
        hub = await start_hub()
    except SAMPHubError as refused:
        # Another program may have started a hub meanwhile: use that one.
        try:
            where, params = await locate()
        except SAMPHubError:
            raise refused from None  # no: the start's own failure says why
        return where, params, None
    return hub.lockfile, hub.params, hub


def stop_started_hub(hub: Any) -> defer.Deferred[Any]:
    """
    Stop a hub started by :func:`find_or_start_hub`.  A hub cannot outlive
    its process: when other clients still use it, say so in the log; the
    hub tells them ``samp.hub.event.shutdown`` as it stops.

    :return: a Deferred firing when the hub has stopped.
    """
    others = hub.registered_clients if hub.is_running else []
    if others:
        _log.warn(
            "Stopping the SAMP hub started in this process, which {count} other "
            "client(s) still use ({ids}); they are told it shuts down",
            count=len(others),
            ids=", ".join(others),
        )
    return defer.maybeDeferred(hub.stop)
