# -*- test-case-name: tests.test_webprofile -*-
"""
Pull delivery: callbacks queued for a Web Profile client to fetch with
``samp.webhub.pullCallbacks``.

A :class:`PullChannel` turns each callback into the map the Web Profile
defines -- ``{"samp.methodName": "receiveCall", "samp.params": [sender-id,
msg-id, message]}``, the private key left out -- and queues it.  A waiting
``pullCallbacks`` (a real long poll) is answered as soon as something is
queued, or with an empty list when its timeout runs out.

**Bounds.**  A queue holds at most ``max_queued`` callbacks and about
``max_queued_bytes`` bytes of SAMP strings.  Beyond either, a call is
refused through its ``on_error`` (its sender gets ``samp.error``), and a
notification or response is dropped with a warning in the log; other clients
are unaffected.

**Idle clients.**  A browser tab closed without ``unregister`` leaves its
client registered.  A client with reverse callbacks on that has had no
``pullCallbacks`` waiting for ``idle_timeout`` seconds, or one without them
that has made no request for ``quiet_timeout`` seconds, is dropped through
``on_drop`` (the core announces ``samp.hub.event.unregister``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ._hubcore import HUB_ID, IChannel, IDelivery, _Client
from ._limits import message_size

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_PULL_WAIT",
    "DEFAULT_MAX_QUEUED",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_QUIET_TIMEOUT",
    "PullChannel",
    "PullDelivery",
]

#: Seconds a callable web client may go without a waiting pull (samp.js
#: pulls again at once after each answer, so only a closed tab waits).
DEFAULT_IDLE_TIMEOUT = 60.0
#: Seconds a web client without reverse callbacks may stay silent.
DEFAULT_QUIET_TIMEOUT = 1800.0
#: Longest a pull waits, whatever it asks (samp.js asks 600 s).
DEFAULT_MAX_PULL_WAIT = 600.0
#: Callbacks one web client may have queued (as JSAMP).
DEFAULT_MAX_QUEUED = 4096
#: Approximate bytes of SAMP strings one web client may have queued.
DEFAULT_MAX_QUEUED_BYTES = 16 * 1024 * 1024


@implementer(IDelivery)
class PullDelivery:
    """
    Opens a :class:`PullChannel` to each Web Profile client.

    :param clock: an ``IReactorTime`` for long polls and idle checks.
    :param float idle_timeout: seconds a client with reverse callbacks may
        go without a waiting ``pullCallbacks`` before it is dropped.
    :param float quiet_timeout: seconds a client without them may make no
        request before it is dropped.
    :param int max_queued: callbacks queued for one client.
    :param int max_queued_bytes: approximate bytes queued for one client.
    :param float max_pull_wait: longest wait of one ``pullCallbacks``.
    :param on_callback: a function called with the client id and each
        callback map to queue, returning the map to queue instead (the Web
        Profile learns URLs from it, and hides what a page may not see), or
        ``None``.
    """

    def __init__(
        self,
        clock: IReactorTime,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        quiet_timeout: float = DEFAULT_QUIET_TIMEOUT,
        max_queued: int = DEFAULT_MAX_QUEUED,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_pull_wait: float = DEFAULT_MAX_PULL_WAIT,
        on_callback: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.quiet_timeout = quiet_timeout
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self.max_pull_wait = max_pull_wait
        self.on_callback = on_callback

    def open_channel(self, client: _Client, on_drop: Callable[[str], None]) -> PullChannel:
        """
        A channel to *client*, not callable until
        :meth:`PullChannel.allow_callbacks`.

        :return: a :class:`PullChannel`.
        """
        return PullChannel(self, client, on_drop)


@implementer(IChannel)
class PullChannel:
    """
    The queue of one web client's callbacks, and its waiting pull.

    :ivar callable: whether reverse callbacks are on.
    :ivar queue: the callback maps waiting to be pulled.
    :ivar queued_bytes: their approximate size.
    """

    _log = Logger()
    profile_name = "Web"  # as the hub monitor names the profile

    def __init__(self, delivery: PullDelivery, client: _Client, on_drop: Callable[[str], None]) -> None:
        self._delivery = delivery
        self._client = client
        self._on_drop = on_drop
        self.callable = False
        self.active = True
        self.queue: collections.deque[tuple[dict[str, Any], int]] = collections.deque()
        self.queued_bytes = 0
        self._waiter: defer.Deferred[list[dict[str, Any]]] | None = None
        self._wait_timer: IDelayedCall | None = None
        self._last_seen = delivery.clock.seconds()
        self._idle_timer: IDelayedCall | None = None
        self._schedule_idle_check()

    # -- what the Web Profile calls ---------------------------------------

    def seen(self) -> None:
        """The client made a request: it is not idle."""
        self._last_seen = self._delivery.clock.seconds()

    def allow_callbacks(self, allow: bool) -> None:
        """
        Turn reverse callbacks on or off; off drops what is queued and
        answers a waiting pull with an empty list.
        """
        self.seen()
        self.callable = allow
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()  # its limit depends on callable
            self._schedule_idle_check()
        if not allow:
            self.queue.clear()
            self.queued_bytes = 0
            self._answer([])

    def pull(self, timeout: float) -> list[dict[str, Any]] | defer.Deferred[list[dict[str, Any]]]:
        """
        The queued callbacks, at once if there are any or *timeout* is 0;
        else a Deferred firing with them as soon as one is queued, or with
        ``[]`` after *timeout* seconds (at most ``max_pull_wait``; a
        negative *timeout* means that most).  A new pull answers a pull
        still waiting with ``[]``.  Before reverse callbacks are on: ``[]``.
        """
        self.seen()
        self._answer([])  # one waiting pull per client
        if self.queue or not self.callable or timeout == 0:
            return self._take()
        limit = self._delivery.max_pull_wait
        seconds = limit if timeout < 0 else min(timeout, limit)
        waiter: defer.Deferred[list[dict[str, Any]]] = defer.Deferred(lambda d: self._abandoned(d))
        self._waiter = waiter
        self._wait_timer = self._delivery.clock.callLater(seconds, self._answer, [])
        return waiter

    # -- IChannel --------------------------------------------------------

    def notify(self, sender_id: str, message: dict[str, Any], size: int = 0) -> None:
        self._enqueue("receiveNotification", [sender_id, message], size=size)

    def call(
        self,
        sender_id: str,
        msg_id: str,
        message: dict[str, Any],
        on_error: Callable[[str], None],
        size: int = 0,
    ) -> None:
        self._enqueue("receiveCall", [sender_id, msg_id, message], on_error, size=size)

    def respond(self, responder_id: str, msg_tag: str | None, response: dict[str, Any], size: int = 0) -> None:
        self._enqueue("receiveResponse", [responder_id, msg_tag or "", response], size=size)

    def disconnect(self, message: dict[str, Any]) -> None:
        # The notification is queued for a pull that will never be able to
        # authenticate: a web client is simply closed.
        self.close()

    def send_final(self, message: dict[str, Any]) -> defer.Deferred[Any]:
        self._enqueue("receiveNotification", [HUB_ID, message], force=True)
        return defer.succeed(None)

    def close(self) -> None:
        if not self.active:
            return
        self.active = False
        self.callable = False
        if self._idle_timer is not None and self._idle_timer.active():
            self._idle_timer.cancel()
        self._idle_timer = None
        # A waiting pull gets what is queued (a shutdown event, say).
        self._answer(self._take())
        self.queue.clear()

    # -- the queue ---------------------------------------------------------

    def _enqueue(
        self,
        method: str,
        params: list[Any],
        on_error: Callable[[str], None] | None = None,
        force: bool = False,
        size: int = 0,
    ) -> None:
        if not self.active:
            return
        client_id = self._client.client_id
        if not self.callable:
            if on_error is not None:
                on_error(f"{method} to {client_id} not delivered: it is not callable")
            return
        entry = {"samp.methodName": method, "samp.params": params}
        size = size or message_size(params)  # the core's estimate when it gave one
        delivery = self._delivery
        full = len(self.queue) >= delivery.max_queued or self.queued_bytes + size > delivery.max_queued_bytes
        if full and not force:
            text = f"{method} to {client_id} not delivered: its queue of callbacks to pull is full"
            self._log.warn("{text}", text=text)
            if on_error is not None:
                on_error(text)
            return
        if delivery.on_callback is not None:
            entry = delivery.on_callback(client_id, entry)
        self.queue.append((entry, size))
        self.queued_bytes += size
        if self._waiter is not None:
            self._answer(self._take())

    def _take(self) -> list[dict[str, Any]]:
        taken = [entry for entry, _ in self.queue]
        self.queue.clear()
        self.queued_bytes = 0
        return taken

    def _answer(self, callbacks: list[dict[str, Any]]) -> None:
        waiter, self._waiter = self._waiter, None
        timer, self._wait_timer = self._wait_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if waiter is not None:
            self.seen()
            waiter.callback(callbacks)

    def _abandoned(self, waiter: defer.Deferred[list[dict[str, Any]]]) -> None:
        # The browser hung up (its tab closed, say): idle from now on.
        if waiter is self._waiter:
            self._waiter = None
            timer, self._wait_timer = self._wait_timer, None
            if timer is not None and timer.active():
                timer.cancel()
            self.seen()

    # -- idle clients ------------------------------------------------------

    def _limit(self) -> float:
        return self._delivery.idle_timeout if self.callable else self._delivery.quiet_timeout

    def _schedule_idle_check(self, delay: float | None = None) -> None:
        self._idle_timer = self._delivery.clock.callLater(
            self._limit() if delay is None else delay, self._idle_check
        )

    def _idle_check(self) -> None:
        self._idle_timer = None
        if not self.active:
            return
        if self._waiter is not None:
            self._schedule_idle_check()
            return
        idle = self._delivery.clock.seconds() - self._last_seen
        limit = self._limit()
        if idle >= limit:
            self._on_drop(f"web client idle: no pull or request for {idle:.0f} s (limit {limit:g} s)")
            return
        self._schedule_idle_check(limit - idle)
