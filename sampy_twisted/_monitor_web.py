# -*- test-case-name: tests.test_monitor_web -*-
"""
The hub monitor's web page and its live event stream.

The monitor listens on a loopback port of its own, not on the hub's
XML-RPC listener: its event streams stay open for as long as a page does,
which the hub's request limits rightly forbid; a browser cannot present
the client certificate a TLS hub may require; and the two never compete
for connections.

Every URL starts with a token (:func:`secrets.token_urlsafe`) that the
hub writes to its lockfile (mode 0600) as ``sampy_twisted.monitor.url``:
``http://127.0.0.1:PORT/TOKEN/``.  A wrong or missing token, or a ``Host``
header that is not a loopback name or address (DNS rebinding), gets 403.
No CORS headers are sent; the page may not be framed, and it sends no
referrer (which would carry the token).

``TOKEN/events`` is a ``text/event-stream``: a ``snapshot`` event, then
each event of the :class:`~._monitor.HubMonitor`.  Each page's stream is a
push producer: while the browser does not read, events wait in a buffer of
``max_buffered`` bytes, and a page that falls further behind has its stream
closed (the browser reconnects and starts again from a snapshot), so a slow
page never slows the hub.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.web import resource, server
from zope.interface import implementer

from ._listening import is_loopback_host
from ._monitor import HubMonitor
from ._monitor_page import PAGE_CSS, PAGE_HTML, PAGE_JS

__all__ = ["MONITOR_URL_KEY", "make_monitor_site"]

MONITOR_URL_KEY = "sampy_twisted.monitor.url"
"""The lockfile entry holding the monitor's URL, token included."""

_KEEPALIVE = 5.0  # seconds between facts (and keep-alive) events
_MAX_PAGES = 32
_SECURITY_HEADERS = {
    b"Cache-Control": b"no-store",
    b"X-Content-Type-Options": b"nosniff",
    b"X-Frame-Options": b"DENY",
    b"Referrer-Policy": b"no-referrer",
    b"Content-Security-Policy": (
        b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        b"img-src * data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}




def _forbidden(request: server.Request, why: str) -> bytes:
    request.setResponseCode(403)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return f"403 Forbidden: {why}\n".encode()


class _Forbidden(resource.Resource):
    isLeaf = True

    def __init__(self, why: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._why = why

    def render(self, request: server.Request) -> bytes:
        return _forbidden(request, self._why)


class _Root(resource.Resource):
    """``/``: checks the Host header and the token, then hands over."""

    def __init__(self, token: str, pages: resource.Resource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._token = token.encode("ascii")
        self._pages = pages

    def getChildWithDefault(self, path: bytes, request: server.Request) -> resource.Resource:
        for name, value in _SECURITY_HEADERS.items():
            request.setHeader(name, value)
        if not is_loopback_host(request.getHeader(b"host")):
            return _Forbidden("the Host header must name this machine (localhost)")
        if not hmac.compare_digest(path, self._token):
            return _Forbidden("the monitor's URL needs its token (sampy-twisted monitor prints it)")
        return self._pages

    def render(self, request: server.Request) -> bytes:
        return _forbidden(request, "the monitor's URL needs its token (sampy-twisted monitor prints it)")


class _Static(resource.Resource):
    isLeaf = True

    def __init__(self, body: str, content_type: bytes) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._body = body.encode("utf-8")
        self._type = content_type

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Content-Type", self._type)
        return self._body


class _Json(resource.Resource):
    isLeaf = True

    def __init__(self, monitor: HubMonitor, what: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._monitor = monitor
        self._what = what

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"Content-Type", b"application/json")
        if self._what == "receivers":
            raw = (request.args or {}).get(b"mtype", [b""])[0]
            data: Any = self._monitor.receivers(raw.decode("utf-8", "replace")[:256])
        else:
            data = self._monitor.snapshot()
        return _encode(data)


def _encode(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=repr).encode("utf-8")


class _Pages(resource.Resource):
    """``/TOKEN/``: the page, its script and style, the streams."""

    def __init__(self, monitor: HubMonitor, clock: IReactorTime, max_buffered: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._monitor = monitor
        self._clock = clock
        self._max_buffered = max_buffered
        self.streams: set[EventStream] = set()
        self.putChild(b"", _Static(PAGE_HTML, b"text/html; charset=utf-8"))
        self.putChild(b"monitor.js", _Static(PAGE_JS, b"text/javascript; charset=utf-8"))
        self.putChild(b"monitor.css", _Static(PAGE_CSS, b"text/css; charset=utf-8"))
        self.putChild(b"state", _Json(monitor, "state"))
        self.putChild(b"receivers", _Json(monitor, "receivers"))
        self.putChild(b"events", _Events(self))

    def render(self, request: server.Request) -> bytes:
        # /TOKEN without the slash: the page's relative URLs need it.
        request.redirect(request.uri + b"/")
        return b""


class _Events(resource.Resource):
    isLeaf = True

    def __init__(self, pages: _Pages) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._pages = pages

    def render_GET(self, request: server.Request) -> bytes | int:
        pages = self._pages
        if len(pages.streams) >= _MAX_PAGES:
            request.setResponseCode(503)
            return b"too many monitor pages open\n"
        stream = EventStream(request, pages._monitor, pages._clock, pages._max_buffered)
        pages.streams.add(stream)
        request.notifyFinish().addBoth(lambda _: pages.streams.discard(stream))
        return server.NOT_DONE_YET


@implementer(IPushProducer)
class EventStream:
    """
    One page's ``text/event-stream``, bounded: see the module's docstring.

    :ivar dropped: whether it was closed for falling behind.
    """

    def __init__(self, request: server.Request, monitor: HubMonitor, clock: IReactorTime, max_buffered: int) -> None:
        self._request = request
        self._monitor = monitor
        self._clock = clock
        self._max_buffered = max_buffered
        self._paused = False
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._open = True
        self.dropped = False
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(lambda _: self._close())
        self._stop_listening = monitor.listen(self._event)
        self._timer: IDelayedCall | None = clock.callLater(_KEEPALIVE, self._keepalive)
        self._send(b"retry: 2000\n\n" + _frame("snapshot", monitor.snapshot()))

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self._send(_frame(kind, data))

    def _keepalive(self) -> None:
        self._timer = self._clock.callLater(_KEEPALIVE, self._keepalive)
        self._send(_frame("facts", self._monitor.facts()))

    def _send(self, frame: bytes) -> None:
        if not self._open:
            return
        if not self._paused:
            self._request.write(frame)
            return
        self._buffer.append(frame)
        self._buffered += len(frame)
        if self._buffered > self._max_buffered:
            self.dropped = True
            self._close()
            transport = getattr(self._request.channel, "transport", None)
            if transport is not None:
                transport.abortConnection()

    def pauseProducing(self) -> None:
        """The browser reads no more for now: buffer."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The browser reads again: send what waited."""
        self._paused = False
        waiting, self._buffer, self._buffered = self._buffer, [], 0
        if waiting and self._open:
            self._request.write(b"".join(waiting))

    def stopProducing(self) -> None:
        """The connection is going away."""
        self._close()

    def _close(self) -> None:
        if not self._open:
            return
        self._open = False
        self._buffer, self._buffered = [], 0
        self._stop_listening()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


def _frame(kind: str, data: Any) -> bytes:
    return b"event: " + kind.encode("ascii") + b"\ndata: " + _encode(data) + b"\n\n"


def make_monitor_site(
    monitor: HubMonitor, token: str, clock: IReactorTime, max_buffered: int = 1_000_000
) -> server.Site:
    """
    The monitor's web site.

    :param HubMonitor monitor: what to show.
    :param str token: the secret first segment of every URL.
    :param clock: an ``IReactorTime`` for the streams' periodic facts.
    :param int max_buffered: bytes a page's stream may hold back while the
        browser does not read before it is closed.
    """
    root = _Root(token, _Pages(monitor, clock, max_buffered))
    site = server.Site(root)  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    site.noisy = False
    return site
