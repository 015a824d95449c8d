# -*- test-case-name: tests.test_hub_core -*-
"""
Push delivery: the hub calling each client's ``samp.client.*`` XML-RPC
callbacks, the only part of the hub that talks to callback servers.

**Delivery-failure policy.**  Each client gets one :class:`XMLRPCProxy`
(keeping HTTP/1.1 connections open to servers that allow it) and at most
``max_concurrent`` callbacks in flight (:data:`CLOSING_SERVER_DELIVERIES`
when its server closes each connection, as astropy's and JSAMP's do); more
wait in a per-client queue of at most ``max_queued``.  The channel counts
the bytes of what it holds, queued or in flight (:attr:`PushChannel.queued_bytes`,
from the size the core gives with each message); the core refuses messages
past its byte bound before they reach the channel.  A delivery fails when
the client cannot be reached, does not answer within ``timeout`` seconds,
or answers with a fault: a failed call is reported to the core through its
``on_error`` function (the core answers its sender with ``samp.error``);
after ``max_failures`` *consecutive* transport failures (refused,
unreachable, timed out; a fault shows the client is alive and does not
count) the channel asks the core to drop the client (``on_drop``).
"""

from __future__ import annotations

import collections
import xmlrpc.client
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ._codec import CachedMap
from ._hubcore import HUB_ID, IChannel, IDelivery, _Client
from ._xmlrpc import XMLRPCProxy

__all__ = ["CLOSING_SERVER_DELIVERIES", "PushDelivery"]

#: Callbacks in flight to a client whose server closes every connection.
CLOSING_SERVER_DELIVERIES = 4

#: Messages from this size on (as the core estimates it) are encoded in the
#: reactor's thread pool before they are sent.  (A few megabytes take the
#: reactor's thread a few milliseconds; a thread would take more memory.)
ENCODE_IN_THREAD_BYTES = 8 * 1024 * 1024


@implementer(IDelivery)
class PushDelivery:
    """
    Opens a :class:`PushChannel` to each client of the Standard Profile,
    and keeps what must be waited for when the hub stops.

    :param reactor: the reactor the proxies use.
    :param float timeout: seconds each callback may take.
    :param int max_failures: consecutive transport failures after which a
        client is dropped.
    :param int max_concurrent: callbacks in flight to one client.
    :param int max_queued: callbacks queued for one client beyond those.
    :param float final_timeout: seconds the hub's last notifications
        (``samp.hub.disconnect``, ``samp.hub.event.shutdown``) may take.
    :param tls_policy: an ``IPolicyForHTTPS`` for ``https://`` callbacks,
        or ``None``.
    """

    _log = Logger()

    def __init__(
        self,
        reactor: Any,
        timeout: float,
        max_failures: int,
        max_concurrent: int,
        max_queued: int,
        final_timeout: float,
        tls_policy: Any = None,
    ) -> None:
        self._reactor = reactor
        self.timeout = timeout
        self.max_failures = max_failures
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.final_timeout = final_timeout
        self._tls_policy = tls_policy
        self._closing: set[defer.Deferred[Any]] = set()
        self._side_calls: set[defer.Deferred[Any]] = set()
        # id of a CachedMap being encoded in a thread -> (it, who waits)
        self._encoding: dict[int, tuple[CachedMap, list[defer.Deferred[None]]]] = {}

    def open_channel(self, client: _Client, on_drop: Callable[[str], None]) -> PushChannel:
        """
        A channel to *client*, not callable until :meth:`PushChannel.set_url`.

        :return: a :class:`PushChannel`.
        """
        return PushChannel(self, client, on_drop)

    def make_proxy(self, url: str) -> Any:
        """A proxy to the callback server at *url*."""
        return XMLRPCProxy(
            url,
            self._reactor,
            # the channel's queue limits concurrency; a little room for the
            # shutdown and disconnect notifications that bypass it
            max_concurrent=self.max_concurrent + 2,
            timeout=self.timeout,
            connect_timeout=min(10.0, self.timeout),
            tls_policy=self._tls_policy,
        )

    def encoded(self, message: object, size: int) -> defer.Deferred[None] | None:
        """
        For a big message (a :class:`CachedMap` of *size* bytes from
        :data:`ENCODE_IN_THREAD_BYTES` on) not yet encoded: a Deferred
        firing once it is, encoded once in the reactor's thread pool
        however many recipients wait for it, so the reactor goes on serving
        everyone else meanwhile.  Else ``None``: send it at once.
        """
        if (
            size < ENCODE_IN_THREAD_BYTES
            or not isinstance(message, CachedMap)
            or message.is_encoded
            or not IReactorThreads.providedBy(self._reactor)
        ):
            return None
        waiter: defer.Deferred[None] = defer.Deferred()
        key = id(message)  # (the entry holds the message: the id stays its own)
        if key in self._encoding:
            self._encoding[key][1].append(waiter)
            return waiter
        self._encoding[key] = (message, [waiter])
        encoding = threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), message.encoded)
        encoding.addBoth(self._encoding_done, key)
        return waiter

    def _encoding_done(self, result: object, key: int) -> None:
        _, waiters = self._encoding.pop(key)
        for waiter in waiters:
            if not waiter.called:  # (a cancelled one has been)
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)

    def close_proxy(self, proxy: Any) -> None:
        """Close *proxy*; :meth:`stop` waits for it."""
        d: defer.Deferred[Any] = proxy.close()
        if d.called:
            return
        self._closing.add(d)
        d.addBoth(lambda _: self._closing.discard(d))

    def side_call(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """Keep *d*, a call outside any queue, for :meth:`stop` to cancel."""
        self._side_calls.add(d)

        def forget(result: object) -> object:
            self._side_calls.discard(d)
            return result

        d.addBoth(forget)
        return d

    def stop(self) -> defer.Deferred[Any]:
        """
        Cancel the side calls still under way and wait for every proxy to
        close (channels are closed first, by the core).

        :return: a Deferred firing when all are closed.
        """
        for d in list(self._side_calls):
            d.cancel()
        return defer.DeferredList(list(self._closing), consumeErrors=True)


@implementer(IChannel)
class PushChannel:
    """
    Callbacks to one client through its ``samp.client.*`` XML-RPC server:
    a queue, a cap on calls in flight, and a count of failures in a row.

    :ivar proxy: the :class:`XMLRPCProxy` to its callback URL, or ``None``.
    :ivar failures: transport failures in a row at the current URL.
    :ivar in_flight: delivery Deferreds under way, each with its proxy and
        the size of its message.
    :ivar queued_bytes: bytes of the messages queued or in flight.
    """

    _log = Logger()

    def __init__(self, delivery: PushDelivery, client: _Client, on_drop: Callable[[str], None]) -> None:
        self._delivery = delivery
        self._client = client
        self._on_drop = on_drop
        self.proxy: Any = None
        self.active = True
        self.failures = 0
        self.in_flight: dict[defer.Deferred[Any], tuple[Any, int]] = {}
        self.queue: collections.deque[tuple[str, tuple[Any, ...], Callable[[str], None] | None, int]] = (
            collections.deque()
        )
        self.queued_bytes = 0

    @property
    def callable(self) -> bool:
        """Whether the client has set a callback URL."""
        return self.proxy is not None

    @property
    def url(self) -> str | None:
        """The callback URL, or ``None``."""
        return None if self.proxy is None else str(self.proxy.url)

    def set_url(self, url: str) -> None:
        """
        Deliver to *url* from now on (a URL already checked by the profile).
        Callbacks in flight to the old one finish there.
        """
        old = self.proxy
        if old is not None and old.url == url:
            return
        self.proxy = self._delivery.make_proxy(url)
        self.failures = 0
        if old is not None and not self._in_use(old):
            self._delivery.close_proxy(old)

    # -- IChannel --------------------------------------------------------

    def notify(self, sender_id: str, message: dict[str, Any], size: int = 0) -> None:
        self._deliver("samp.client.receiveNotification", (sender_id, message), None, size)

    def call(
        self, sender_id: str, msg_id: str, message: dict[str, Any], on_error: Callable[[str], None], size: int = 0
    ) -> None:
        self._deliver("samp.client.receiveCall", (sender_id, msg_id, message), on_error, size)

    def respond(self, responder_id: str, msg_tag: str | None, response: dict[str, Any], size: int = 0) -> None:
        self._deliver("samp.client.receiveResponse", (responder_id, msg_tag, response), None, size)

    def send_final(self, message: dict[str, Any]) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = self.proxy.call(
            "samp.client.receiveNotification",
            self._client.private_key,
            HUB_ID,
            message,
            timeout=self._delivery.final_timeout,
        )
        return d

    def disconnect(self, message: dict[str, Any]) -> None:
        proxy = self.proxy
        self._stop()
        if proxy is None:
            return
        d = self._delivery.side_call(self.send_final(message))
        d.addErrback(lambda _: None)
        d.addBoth(lambda _: self._delivery.close_proxy(proxy))

    def close(self) -> None:
        self._stop()
        if self.proxy is not None:
            self._delivery.close_proxy(self.proxy)

    # -- queue and failures ----------------------------------------------

    def _stop(self) -> None:
        self.active = False
        self.queue.clear()
        for d in list(self.in_flight):
            d.cancel()
        self.queued_bytes = 0

    def _in_use(self, proxy: Any) -> bool:
        return any(p is proxy for p, _ in self.in_flight.values())

    def _deliver(
        self, method: str, args: tuple[Any, ...], on_error: Callable[[str], None] | None = None, size: int = 0
    ) -> None:
        """Send one callback now, or queue it behind others."""
        if not self.active:
            return
        if self.proxy is None:
            if on_error is not None:
                on_error(f"{method} to {self._client.client_id} not delivered: it is not callable")
            return
        if len(self.in_flight) < self._limit():
            self.queued_bytes += size
            self._send(method, args, on_error, size)
        elif len(self.queue) < self._delivery.max_queued:
            self.queued_bytes += size
            self.queue.append((method, args, on_error, size))
        else:
            text = f"{method} to {self._client.client_id} not delivered: too many deliveries queued"
            self._log.warn("{text}", text=text)
            if on_error is not None:
                on_error(text)

    def _limit(self) -> int:
        # A callback server that closes every connection (astropy's, JSAMP's)
        # gets a few at a time: astropy listens with a queue of 5, and an
        # overflowing queue costs a one-second retry per dropped connection.
        if self.proxy.keeps_connections:
            return self._delivery.max_concurrent
        return min(self._delivery.max_concurrent, CLOSING_SERVER_DELIVERIES)

    def _send(self, method: str, args: tuple[Any, ...], on_error: Callable[[str], None] | None, size: int) -> None:
        proxy = self.proxy
        key = self._client.private_key
        encoding = self._delivery.encoded(args[-1], size)  # the message or response, last
        d: defer.Deferred[Any]
        if encoding is None:
            d = proxy.call(method, key, *args)
        else:
            d = encoding.addCallback(lambda _: proxy.call(method, key, *args))
        self.in_flight[d] = (proxy, size)
        d.addCallbacks(
            self._delivered,
            self._failed,
            callbackArgs=(proxy,),
            errbackArgs=(proxy, method, on_error),
        )
        d.addBoth(self._done, d)

    def _delivered(self, result: object, proxy: Any) -> None:
        if proxy is self.proxy:
            self.failures = 0

    def _failed(
        self, failure: Failure, proxy: Any, method: str, on_error: Callable[[str], None] | None
    ) -> None:
        if failure.check(defer.CancelledError) or not self.active:
            return  # the client left or the hub is stopping
        # A delivery to a callback URL the client has since replaced says
        # nothing about its new one: it neither counts nor resets.
        current = proxy is self.proxy
        transport_failure = not failure.check(xmlrpc.client.Fault)
        if current:
            self.failures = self.failures + 1 if transport_failure else 0
        client_id = self._client.client_id
        if transport_failure:
            text = f"{method} to {client_id} failed: {failure.getErrorMessage()}"
        else:
            fault: Any = failure.value
            text = f"{client_id} refused {method}: {fault.faultString}"
        self._log.warn(
            "SAMP delivery problem ({failures} in a row): {text}", failures=self.failures, text=text
        )
        if on_error is not None:
            on_error(text)
        if transport_failure and current and self.failures >= self._delivery.max_failures:
            self._on_drop(f"{self.failures} deliveries in a row failed; last: {text}")

    def _done(self, result: object, d: defer.Deferred[Any]) -> None:
        entry = self.in_flight.pop(d, None)
        if entry is not None:
            proxy, size = entry
            if self.active:
                self.queued_bytes -= size
            if proxy is not self.proxy and not self._in_use(proxy):
                self._delivery.close_proxy(proxy)  # replaced by set_url, now idle
        if self.active and self.queue:
            method, args, on_error, size = self.queue.popleft()
            self._send(method, args, on_error, size)
