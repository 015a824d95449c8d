# -*- test-case-name: tests.test_xmlrpc -*-
"""
XML-RPC over Twisted's HTTP client and server, with SAMP's safety limits.

The client side is built on :class:`twisted.web.client.Agent` rather than
:class:`twisted.web.xmlrpc.Proxy`: it keeps HTTP/1.1 connections open where
the server allows it, bounds concurrency, response size and time, and can
carry client certificates.  To a server that closes every connection, each
request goes on a connection of its own, without the Agent's pool.  The
server side is a small resource that maps full dotted method names to
callables, refuses DTDs and oversized bodies, and never answers ``nil``.
"""

from __future__ import annotations

import inspect
import io
import ipaddress
import math
import xmlrpc.client
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from types import EllipsisType
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar, cast
from urllib.parse import urlsplit

from twisted.internet import defer, error as ierror, threads
from twisted.internet.address import IPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from OpenSSL.SSL import Error as SSLError
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IConsumer,
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import ClientFactory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web._newclient import (
    HTTP11ClientProtocol,
    HTTPClientParser,
    Request as ClientRequest,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.client import (
    URI,
    Agent,
    HTTPConnectionPool,
    ResponseDone,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS, IResponse
from twisted.web.resource import IResource, Resource
from zope.interface import implementer

from ._bodies import BigBody, BodyBuffers
from ._codec import LazyStrings, Part, dumps_fault, dumps_response, encode_call, safe_loads
from ._encoding import SAMPValue, from_xmlrpc
from . import _limits
from ._limits import (
    DEFAULT_MAX_BYTES as DEFAULT_MAX_BYTES,
    RejectionLog,
    connection_cap,
)
from ._reactor import default_reactor

THREADED_PARSE_BYTES = 1024 * 1024
"""Request bodies from this size on are parsed in the reactor's thread pool."""

_ERROR_BODY_BYTES = 64 * 1024
_BODY_PIECE = 64 * 1024
_Procedure = TypeVar("_Procedure", bound=Callable[..., object])
_CONTENT_TYPE = Headers({b"content-type": [b"text/xml; charset=utf-8"]})


class XMLRPCError(Exception):
    """
    A request could not be completed: the server was unreachable, timed out,
    answered something that is not XML-RPC, or answered too much.

    :ivar url: the server's URL.
    """

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


@implementer(IBodyProducer)
class _BytesProducer:
    """
    A request body of known length (never chunked: HTTP/1.0 hubs), written
    from its parts as the connection takes it: a message shared by many
    requests is neither copied into each nor, a big one, whole into each
    connection's buffer, and a long list of strings is encoded as it goes
    (:class:`~._codec.LazyStrings`).
    """

    def __init__(self, parts: list[Part]) -> None:
        self.length = sum(map(len, parts))
        self._chunks = _chunks(parts)
        self._paused = self._stopped = False

    def startProducing(self, consumer: IConsumer) -> defer.Deferred[None]:
        self._consumer = consumer
        self._done: defer.Deferred[None] = defer.Deferred()
        self._write()
        return self._done

    def _write(self) -> None:
        # The connection (a streaming consumer) pauses us, from within
        # write(), once it holds more than its buffer's worth.
        while not self._paused:
            try:
                chunk = next(self._chunks, None)
            except Exception:
                self._stopped = self._paused = True
                self._done.errback()  # the request fails, with this
                return
            if chunk is None:
                if not self._done.called:
                    self._done.callback(None)
                return
            self._consumer.write(chunk)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if self._stopped:
            return
        self._paused = False
        if not self._done.called:
            self._write()

    def stopProducing(self) -> None:
        # The request failed; its Deferred never fires (as Twisted's own
        # FileBodyProducer does).
        self._stopped = self._paused = True
        self._chunks = iter(())


def _chunks(parts: list[Part]) -> Iterator[bytes]:
    """*parts* as byte strings of at most about :data:`_BODY_PIECE`."""
    for part in parts:
        if isinstance(part, LazyStrings):
            yield from part.pieces()
        elif isinstance(part, bytes) and len(part) <= _BODY_PIECE:
            yield part
        else:
            # A list the hub passes on as received is a view of its body.
            for start in range(0, len(part), _BODY_PIECE):
                yield bytes(part[start : start + _BODY_PIECE])


class _BoundedBody(Protocol):
    """Collects a response body, dropping the connection past a limit."""

    def __init__(self, limit: int, url: str) -> None:
        self._limit = limit
        self._url = url
        self._parts: list[bytes] = []
        self._size = 0
        self.done: defer.Deferred[bytes] = defer.Deferred(self._cancel)

    def _cancel(self, _: object) -> None:
        if self.transport is not None:
            # Agent's body transport is also a producer.
            cast(IPushProducer, self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self._size > self._limit:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._parts = []
            cast(IPushProducer, self.transport).stopProducing()
        else:
            self._parts.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        # Results are given only here, once the connection is settled (back
        # in the pool or closed), so that closing the pool finds it.
        if self.done.called:
            return
        if self._size > self._limit:
            self.done.errback(
                XMLRPCError(f"response from {self._url} exceeds {self._limit} bytes", self._url)
            )
        elif reason is None or reason.check(ResponseDone):
            self.done.callback(self.received())
        else:
            self.done.errback(reason)

    def received(self) -> bytes:
        """The body received so far (nothing once past the limit)."""
        return b"".join(self._parts)


_MAX_RESPONSE_HEAD = 64 * 1024


class _ResponseHead:
    """The status line and the headers of a response, as far as one request
    on its own connection needs them."""

    def __init__(self, head: bytes) -> None:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
        status = lines[0].split(b" ", 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/"):
            raise ValueError(f"bad status line {lines[0][:80]!r}")
        self.code = int(status[1])
        self.phrase = status[2] if len(status) > 2 else b""
        self.length: int | None = None
        self.chunked = False
        for line in lines[1:]:
            if not line:
                continue
            if line[0] in b" \t":  # continues the previous header
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError(f"bad header line {line[:80]!r}")
            name, value = name.strip().lower(), value.strip()
            if name == b"content-length":
                length = int(value)
                if length < 0 or (self.length is not None and self.length != length):
                    raise ValueError("bad Content-Length")
                self.length = length
            elif name == b"transfer-encoding":
                if value.lower() != b"chunked":
                    raise ValueError(f"unknown Transfer-Encoding {value[:40]!r}")
                self.chunked = True


class _OneShotRequest(Protocol):
    """
    One XML-RPC request on a connection of its own, which the server closes
    after answering (as JSAMP's, astropy's and DS9's callback servers do):
    the request is written whole on connecting, and the response read with
    no more machinery than that needs.  Twisted's Agent and its connection
    pool cost several times more per request, for a connection they cannot
    keep anyway.

    Its limits are those of :class:`_BoundedBody`: a body past ``limit``
    bytes (``_ERROR_BODY_BYTES`` for an answer that is not 200) fails the
    request and drops the connection.  Nothing is ever sent twice.

    :ivar done: fires with the body of a 200 answer; fails with
        :class:`XMLRPCError` for another status or too long a body, and with
        ``ResponseNeverReceived`` or ``ResponseFailed`` when the connection
        ends first (the latter carrying the bytes received, in
        :meth:`received`, as the Agent's do for DS9's short bodies);
        cancelled, it stops the connection and fails with
        ``CancelledError``.
    :ivar stop_connecting: what stops the connection attempt, set by whoever
        makes it.
    """

    def __init__(self, head: bytes, body: list[Part], limit: int, url: str, eager: bool = False) -> None:
        self._request_head = head
        self._request_body = body
        self._eager = eager
        self._limit = limit
        self._url = url
        self._buffer = b""
        self._head: _ResponseHead | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._chunks: Any = None  # Twisted's chunked decoder, for a chunked body
        self.stop_connecting: Callable[[], object] = lambda: None
        self._cancelling = False
        # Cancelled, it fails with CancelledError, not with what stopping
        # causes: a connection attempt stopped fails at once (ignored while
        # cancelling), a connection cut is lost later (done is called then).
        self.done: defer.Deferred[bytes] = defer.Deferred(self._cancelled)

    def _cancelled(self, _: object) -> None:
        self._cancelling = True
        self.stop_connecting()
        self.cancel()

    def connectionMade(self) -> None:
        assert self.transport is not None
        body, self._request_body = self._request_body, []
        if sum(map(len, body)) > _BODY_PIECE:
            self._stream(self._request_head, body)
            return
        data = b"".join([self._request_head, *_chunks(body)])
        if self._eager:
            # A plain TCP connection (the proxy says so), just made, with
            # nothing buffered: the request goes to the socket now rather
            # than on the reactor's next turn, which saves that turn and two
            # changes to the poller's set per request.  What the socket does
            # not take, the transport sends; it also finds any error.
            try:
                sent = cast(Any, self.transport).getHandle().send(data)  # (ISystemHandle)
            except OSError:
                sent = 0
            data = data[sent:]
        if data:
            self.transport.write(data)

    def _stream(self, head: bytes, body: list[Part]) -> None:
        # A big message: written as the connection takes it, rather than
        # copied whole into the connection's buffer.
        transport = cast(IConsumer, self.transport)  # a TCP or TLS transport
        producer = _BytesProducer(body)
        transport.write(head)
        transport.registerProducer(producer, True)
        writing = producer.startProducing(transport)
        writing.addCallback(lambda _: transport.unregisterProducer())
        writing.addErrback(self._unwritable)

    def _unwritable(self, failure: Failure) -> None:
        # The body could not be made (a list that changed): the request is
        # cut short, and fails with why.
        self._fail(XMLRPCError(f"cannot write the request: {failure.getErrorMessage()}", self._url))

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        if self._head is None:
            self._buffer += data
            self._read_head()
        elif self._chunks is not None:
            self._feed_chunks(data)
        else:
            self._body(data)

    def _read_head(self) -> None:
        while self._head is None:
            end = _head_end(self._buffer)
            if end is None:
                if len(self._buffer) > _MAX_RESPONSE_HEAD:
                    self._fail(XMLRPCError(f"response headers from {self._url} are too long", self._url))
                return
            head, rest = self._buffer[: end[0]], self._buffer[end[1] :]
            try:
                parsed = _ResponseHead(head)
            except ValueError as exc:
                self._fail(XMLRPCError(f"bad HTTP response from {self._url}: {exc}", self._url))
                return
            self._buffer = rest
            if 100 <= parsed.code < 200:
                continue  # an interim answer: the real one follows
            self._start_body(parsed)
        rest, self._buffer = self._buffer, b""
        if self._chunks is not None:
            if rest:
                self._feed_chunks(rest)
        elif rest or self._head.length == 0:
            self._body(rest)

    def _start_body(self, head: _ResponseHead) -> None:
        self._head = head
        if head.code != 200:
            self._limit = _ERROR_BODY_BYTES
        if head.chunked:
            self._chunks = http._ChunkedTransferDecoder(self._chunk, self._chunks_done)
        elif head.length is not None and head.length > self._limit:
            self._too_long()

    def _feed_chunks(self, data: bytes) -> None:
        try:
            self._chunks.dataReceived(data)
        except Exception as exc:
            self._fail(XMLRPCError(f"bad chunked body from {self._url}: {exc}", self._url))

    def _chunk(self, data: bytes) -> None:
        self._body(data, chunked=True)

    def _chunks_done(self, rest: bytes) -> None:
        self._finish()

    def _body(self, data: bytes, chunked: bool = False) -> None:
        if self.done.called:
            return
        head = self._head
        assert head is not None
        if not chunked and head.length is not None:
            data = data[: head.length - self._size]
        self._size += len(data)
        if self._size > self._limit:
            self._too_long()
            return
        self._parts.append(data)
        if not chunked and self._size == head.length:
            self._finish()

    def _too_long(self) -> None:
        self._parts = []
        self._fail(XMLRPCError(f"response from {self._url} exceeds {self._limit} bytes", self._url))

    def _finish(self) -> None:
        head = self._head
        if self.done.called or head is None:
            return
        if self.transport is not None:
            self.transport.loseConnection()
        if head.code == 200:
            self.done.callback(self.received())
        else:
            self.done.errback(self._not_ok(head))

    def _not_ok(self, head: _ResponseHead) -> XMLRPCError:
        return XMLRPCError(
            f"{self._url} answered HTTP {head.code} "
            f"{head.phrase.decode('latin-1')}, not an XML-RPC response",
            self._url,
        )

    def _fail(self, error: Exception) -> None:
        if self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()
        if not self.done.called:
            self.done.errback(error)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        head = self._head
        if head is None:
            # As the Agent says it: whether any of the response arrived.
            kind = ResponseFailed if self._buffer else ResponseNeverReceived
            self.done.errback(kind([reason]))  # type: ignore[no-untyped-call]  # not annotated in Twisted
        elif head.code != 200:
            self.done.errback(self._not_ok(head))
        elif head.length is None and self._chunks is None:
            # A body ended by its connection may be cut short: refused, as
            # the Agent refuses it.
            self.done.errback(http.PotentialDataLoss())
        else:
            self.done.errback(ResponseFailed([reason]))  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def received(self) -> bytes:
        """The body received so far (nothing once past the limit)."""
        return b"".join(self._parts)

    def connection_failed(self, reason: Failure) -> None:
        """Fail: the connection could not be made."""
        if not (self.done.called or self._cancelling):
            self.done.errback(reason)

    def cancel(self) -> None:
        """Drop the connection: nobody waits for the answer any more."""
        if self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()


def _head_end(data: bytes) -> tuple[int, int] | None:
    """Where the header section in *data* ends and its body begins, with
    lines ended by CRLF or a bare LF; ``None`` while incomplete."""
    crlf, lf = data.find(b"\n\r\n"), data.find(b"\n\n")
    if crlf < 0 and lf < 0:
        return None
    if lf < 0 or 0 <= crlf < lf:
        return crlf, crlf + 3
    return lf, lf + 2


class _OneShotFactory(ClientFactory):
    """Builds the one :class:`_OneShotRequest` it was given, quietly (no
    log line per connection), and tells it when connecting fails."""

    noisy = False

    def __init__(self, request: _OneShotRequest) -> None:
        self._request = request

    def buildProtocol(self, addr: IAddress | None) -> _OneShotRequest:
        return self._request

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self._request.connection_failed(reason)


@implementer(IStreamClientEndpoint)
class _NamedHostEndpoint:
    """
    Connects to a host name through the address it last connected to.

    astropy's hub names itself by its fully qualified host name when it
    finds the internet reachable, and a hub that closes every connection
    would otherwise cost a host name lookup in a thread per request.  The
    address is kept for ``ttl`` seconds and forgotten when connecting to it
    fails, so a hub that moved is looked up again.
    """

    def __init__(
        self, reactor: IReactorTime, host: str, port: int, timeout: float, ttl: float = 60.0
    ) -> None:
        self._reactor = reactor
        self._by_name = HostnameEndpoint(reactor, host, port, timeout=timeout)
        self._timeout = timeout
        self._ttl = ttl
        self._by_address: IStreamClientEndpoint | None = None
        self._expires = 0.0

    def connect(self, protocolFactory: IProtocolFactory) -> defer.Deferred[IProtocol]:
        if self._by_address is not None and self._reactor.seconds() < self._expires:
            return self._by_address.connect(protocolFactory).addErrback(self._forget)
        return self._by_name.connect(protocolFactory).addCallback(self._remember)

    def _remember(self, protocol: IProtocol) -> IProtocol:
        peer = cast(Any, protocol).transport.getPeer()  # connected: has a transport
        kind = TCP6ClientEndpoint if isinstance(peer, IPv6Address) else TCP4ClientEndpoint
        self._by_address = kind(self._reactor, peer.host, peer.port, timeout=self._timeout)
        self._expires = self._reactor.seconds() + self._ttl
        return protocol

    def _forget(self, failure: Failure) -> Failure:
        self._by_address = None
        return failure


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    """
    Connects IP literals directly (no resolver thread, so it also works before
    the reactor's threadpool runs) and host names through the address they
    last resolved to (see :class:`_NamedHostEndpoint`).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        connect_timeout: float,
        tls_policy: IPolicyForHTTPS | None = None,
    ) -> None:
        self._reactor = reactor
        self._timeout = connect_timeout
        self._tls_policy = tls_policy
        self._tcp: dict[tuple[bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        # A proxy calls one URL: its TCP endpoint is built once, not per call.
        key = (uri.host, uri.port)
        endpoint = self._tcp.get(key)
        if endpoint is None:
            endpoint = self._tcp[key] = self._tcp_endpoint(uri.host.decode("ascii"), uri.port)
        if uri.scheme == b"https":
            if self._tls_policy is None:
                raise XMLRPCError(
                    f"no TLS settings for https URL {uri.toBytes().decode()}",
                    uri.toBytes().decode(),
                )
            creator = self._tls_policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint

    def _tcp_endpoint(self, host: str, port: int) -> IStreamClientEndpoint:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return _NamedHostEndpoint(self._reactor, host, port, self._timeout)
        kind = TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
        return kind(self._reactor, str(address), port, timeout=self._timeout)


def _one_shot_head(uri: URI) -> bytes:
    """The head of a request for :class:`_OneShotRequest` to *uri*, as the
    Agent writes it, with ``%d`` for the body's length."""
    host: bytes = uri.host
    path: bytes = uri.originForm
    if b":" in host:  # an IPv6 address
        host = b"[" + host + b"]"
    if (uri.scheme, uri.port) not in ((b"http", 80), (b"https", 443)):
        host = b"%b:%d" % (host, uri.port)
    return (
        b"POST " + path.replace(b"%", b"%%") + b" HTTP/1.1\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n"
        b"Content-Type: text/xml; charset=utf-8\r\nHost: " + host.replace(b"%", b"%%") + b"\r\n\r\n"
    )


def _ip_literal(uri: URI) -> tuple[str, int] | None:
    """The address and port of a plain ``http`` *uri* naming an IP
    address, else ``None``."""
    if uri.scheme != b"http":
        return None
    host = uri.host.decode("ascii").strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    return host, uri.port


def _reason(failure: Failure) -> str:
    """A short human text for a transport failure."""
    value = failure.value
    if isinstance(value, (ResponseNeverReceived, RequestTransmissionFailed, ResponseFailed)):
        inner = [r for r in value.reasons if not r.check(defer.CancelledError)]
        if inner:
            return _reason(inner[0])
        return "connection closed"
    if isinstance(value, ierror.ConnectionRefusedError):
        return "connection refused"
    if isinstance(value, ierror.ConnectionLost):
        return "connection lost"
    if isinstance(value, SSLError):
        details = [reason for *_, reason in value.args[0] if reason] if value.args and isinstance(value.args[0], list) else []
        return f"TLS handshake failed: {'; '.join(details) or value}"
    text = str(value).strip()
    return text or type(value).__name__


class _ClientProtocol(HTTP11ClientProtocol):
    """
    Notes on each response whether the server said it keeps the
    connection: Twisted keeps the ``Connection`` header from the response's
    headers, with the other hop-by-hop ones.
    """

    def request(self, request: ClientRequest) -> defer.Deferred[IResponse]:
        d = super().request(request)
        parser = getattr(self, "_parser", None)
        if parser is not None:
            # Runs first, when the headers are in: before the Agent's
            # callbacks and before the connection can go back to its pool.
            d.addCallback(_note_connection_header, parser)
        return d


def _note_connection_header(response: IResponse, parser: HTTPClientParser) -> IResponse:
    # Agent's Response takes new attributes; IResponse does not declare one.
    cast(Any, response).sampy_connection = parser.connHeaders.getRawHeaders(b"connection", ())
    return response


def _keeps_alive(response: IResponse) -> bool:
    """Whether *response* says its connection stays open for another
    request: HTTP/1.1 with a ``Connection: keep-alive`` header."""
    if response.version < (b"HTTP", 1, 1):
        return False
    values = getattr(response, "sampy_connection", ())
    tokens = b",".join(values).lower().split(b",")
    return b"keep-alive" in (token.strip() for token in tokens)


if TYPE_CHECKING:
    from twisted.web.client import _HTTP11ClientFactory as _ClientFactoryBase
else:
    _ClientFactoryBase = getattr(HTTPConnectionPool, "_factory", object)


class _QuietClientFactory(_ClientFactoryBase):
    # Not "Starting factory" and "Stopping factory" log events for every
    # request: HTTP/1.0 hubs make every request a new connection.
    noisy = False

    def buildProtocol(self, addr: object) -> _ClientProtocol:
        # (HTTP11ClientProtocol's __init__ is not annotated.)
        return _ClientProtocol(self._quiescentCallback)  # type: ignore[no-untyped-call]


class _QuietPool(HTTPConnectionPool):
    if hasattr(HTTPConnectionPool, "_factory"):
        _factory = _QuietClientFactory


class XMLRPCProxy:
    """
    Calls XML-RPC methods at one URL, returning Deferreds.

    :param url: the server URL, ``http://`` or ``https://``.
    :param reactor: the reactor to use (``IReactorTCP`` and ``IReactorTime``).
    :param int max_concurrent: at most this many requests in flight.
    :param float timeout: seconds each request may take, or ``None``.
    :param int max_bytes: largest response accepted.
    :param tls_policy: an ``IPolicyForHTTPS`` for ``https`` URLs.
    :param error_class: exception type raised for transport failures; it is
        called as ``error_class(text)``.
    :param fault_class: exception type raised for fault answers, a subclass
        of :class:`xmlrpc.client.Fault` called as ``fault_class(code,
        text)``.  Every failure of :meth:`call` is translated here, once.
    """

    def __init__(
        self,
        url: str,
        reactor: IReactorTime,
        max_concurrent: int = 20,
        timeout: float | None = 60.0,
        connect_timeout: float = _limits.DEFAULT_CONNECT_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        tls_policy: IPolicyForHTTPS | None = None,
        error_class: type[Exception] = XMLRPCError,
        fault_class: type[xmlrpc.client.Fault] = xmlrpc.client.Fault,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"XML-RPC URL {url!r} is not http or https")
        self.url = url
        self._url_bytes = url.encode("ascii")
        self._uri = URI.fromBytes(self._url_bytes)
        self._one_shot_head = _one_shot_head(self._uri)
        self._address = _ip_literal(self._uri)
        self._connect_timeout = connect_timeout
        self._reactor = reactor
        self._endpoints = _EndpointFactory(reactor, connect_timeout, tls_policy)
        # (HTTPConnectionPool's __init__ is not annotated.)
        self._pool: HTTPConnectionPool = _QuietPool(  # type: ignore[no-untyped-call]
            reactor, persistent=True
        )
        self._pool.maxPersistentPerHost = max_concurrent
        self._pool.cachedConnectionTimeout = 30
        self._pool.retryAutomatically = False
        self._agent = Agent.usingEndpointFactory(reactor, self._endpoints, pool=self._pool)
        self._retired_pools: list[HTTPConnectionPool] = []
        self._closed = False
        self._semaphore = defer.DeferredSemaphore(max_concurrent)
        self.timeout = timeout
        self._max_bytes = max_bytes
        self._error_class = error_class
        self._fault_class = fault_class

    def call(
        self, method: str, *args: SAMPValue, timeout: float | None | EllipsisType = ...
    ) -> defer.Deferred[Any]:
        """
        Call *method* with *args* (already SAMP-checked; a long list of
        strings among them is encoded as the request is sent, and must not
        change until the call is done).

        :param timeout: seconds for this call, ``None`` for none, or the
            proxy's default when not given.
        :return: a Deferred firing with the decoded result, or failing with
            *fault_class* for a fault answer and *error_class* for
            everything else (but cancellation).
        """
        body = encode_call(method, args, lazy=True)
        if timeout is ...:
            timeout = self.timeout
        d = self._start(method, body)
        d.addBoth(self._settle)
        if timeout is not None:
            # The time counts from the call, waiting for a free slot included.
            d.addTimeout(timeout, self._reactor, onTimeoutCancel=self._timed_out(method))
        return d.addErrback(self._translate, method)

    def _start(self, method: str, body: list[Part]) -> defer.Deferred[Any]:
        """The request, in a slot of the semaphore: taken at once when one
        is free and nobody waits (the usual case), without the Deferreds
        of ``DeferredSemaphore.run``; else in turn."""
        semaphore = self._semaphore
        if semaphore.tokens <= 0 or semaphore.waiting:
            return semaphore.run(self._request, method, body)
        semaphore.tokens -= 1
        try:
            d = self._request(method, body)
        except Exception:
            d = defer.fail()
        return d.addBoth(self._release)

    def _release(self, result: object) -> object:
        self._semaphore.release()
        return result

    def _request(self, method: str, body: list[Part], retry: bool = True) -> defer.Deferred[Any]:
        if not self._pool.persistent:
            return self._one_shot(body)
        d: defer.Deferred[Any] = self._agent.request(
            b"POST", self._url_bytes, _CONTENT_TYPE, _BytesProducer(body)
        )
        d.addCallback(self._got_response)
        d.addCallback(self._parse)
        if retry:
            # A cached connection the server had just closed: safe to resend.
            d.addErrback(self._retry_unsent, method, body)
        return d

    def _one_shot(self, body: list[Part]) -> defer.Deferred[Any]:
        """
        Send *body* on a new connection of its own: for a server that closes
        each one (see :meth:`_stop_reusing`), without the Agent's pool.
        """
        head = self._one_shot_head % sum(map(len, body))
        request = _OneShotRequest(head, body, self._max_bytes, self.url, eager=self._address is not None)
        factory = _OneShotFactory(request)
        if self._address is not None:
            # An address over plain HTTP: the reactor's connector alone,
            # without an endpoint's wrappers and Deferreds.
            host, port = self._address
            connector = cast(IReactorTCP, self._reactor).connectTCP(
                host, port, factory, timeout=self._connect_timeout
            )

            def stop_connecting() -> None:
                if getattr(connector, "state", None) == "connecting":
                    connector.stopConnecting()

            request.stop_connecting = stop_connecting
        else:
            try:
                endpoint = self._endpoints.endpointForURI(self._uri)
            except XMLRPCError:
                return defer.fail()
            connecting = endpoint.connect(factory)
            connecting.addErrback(request.connection_failed)
            request.stop_connecting = connecting.cancel  # (nothing once connected)
        # (A Failure _cut_short returns is the Deferred's failure, not its result.)
        request.done.addErrback(self._cut_short, request)
        return request.done.addCallback(self._parse)

    def _retry_unsent(self, failure: Failure, method: str, body: list[Part]) -> defer.Deferred[Any]:
        failure.trap(RequestNotSent)
        return self._request(method, body, retry=False)

    def _got_response(self, response: IResponse) -> defer.Deferred[bytes]:
        # Decided on the headers, before the connection can go back to the
        # pool: no later request can be sent down a connection this peer
        # may be closing.
        if self._pool.persistent and not _keeps_alive(response):
            self._stop_reusing()
        if response.code != 200:
            # Read (a bounded amount of) the body so the connection is
            # settled before the caller sees the error.
            reader = _BoundedBody(_ERROR_BODY_BYTES, self.url)
            response.deliverBody(reader)
            error = self._error_class(
                f"{self.url} answered HTTP {response.code} "
                f"{response.phrase.decode('latin-1')}, not an XML-RPC response"
            )
            done: defer.Deferred[bytes] = reader.done.addBoth(lambda _: Failure(error))
        else:
            reader = _BoundedBody(self._max_bytes, self.url)
            response.deliverBody(reader)
            # (A Failure _cut_short returns is the Deferred's failure, not its result.)
            done = cast("defer.Deferred[bytes]", reader.done.addErrback(self._cut_short, reader))
        if self._retired_pools:
            # This connection may have gone back to a retired pool: close it.
            done.addBoth(self._close_retired)
        return done

    def _stop_reusing(self) -> None:
        # Reuse a connection only when the peer said it keeps it: HTTP/1.1
        # with "Connection: keep-alive", as our own servers answer (see
        # make_site).  HTTP/1.0 servers (JSAMP's and astropy's hubs) and
        # DS9's callback server, which answers HTTP/1.1 and then closes,
        # would otherwise get the next request on a socket they are
        # closing: it fails, and whether it arrived cannot be known, so it
        # cannot be retried without risking a double delivery.  From now on
        # every request of this proxy has its own connection.
        old = self._pool
        self._pool = _QuietPool(self._reactor, persistent=False)  # type: ignore[no-untyped-call]
        self._agent = Agent.usingEndpointFactory(self._reactor, self._endpoints, pool=self._pool)
        # Requests still in flight on the old pool return their connections
        # to it later: keep it, to close those too.
        self._retired_pools.append(old)

    def _cut_short(self, failure: Failure, reader: _BoundedBody | _OneShotRequest) -> Failure | bytes:
        # DS9's xmlrpc.tcl measures a fault response, then trims its last
        # newline and closes: the body ends one byte short of its
        # Content-Length.  What arrived is the whole answer when it is a
        # complete XML document (only white space can follow its root).
        if not failure.check(ResponseFailed):
            return failure
        body = reader.received()
        try:
            safe_loads(body)
        except xmlrpc.client.Fault:
            return body
        except ValueError:
            return failure
        return body

    def _close_retired(self, result: object) -> object:
        for pool in self._retired_pools:
            pool.closeCachedConnections()
        return result

    def _parse(self, data: bytes) -> SAMPValue:
        try:
            params, _ = safe_loads(data)
        except ValueError as exc:
            raise self._error_class(f"bad XML-RPC response from {self.url}: {exc}")
        if len(params) != 1:
            raise self._error_class(f"bad XML-RPC response from {self.url}: no value")
        return from_xmlrpc(params[0])

    def _timed_out(self, method: str) -> Callable[[object, float], NoReturn]:
        def timed_out(result: object, timeout: float) -> NoReturn:
            raise self._error_class(f"{method} at {self.url} timed out after {timeout:g} s")

        return timed_out

    def _translate(self, failure: Failure, method: str) -> Failure:
        if failure.check(self._fault_class, self._error_class, defer.CancelledError):
            return failure
        fault = failure.value
        if isinstance(fault, xmlrpc.client.Fault):
            raise self._fault_class(fault.faultCode, fault.faultString)
        if failure.check(ierror.ConnectingCancelledError):
            raise defer.CancelledError(f"{method} at {self.url} was cancelled while connecting")
        if failure.check(XMLRPCError):
            raise self._error_class(str(failure.value))
        raise self._error_class(f"{method} at {self.url} failed: {_reason(failure)}")

    @property
    def keeps_connections(self) -> bool:
        """Whether the server keeps connections open between calls (false
        once it answered without HTTP/1.1's ``Connection: keep-alive``, as
        JSAMP's, astropy's and DS9's servers do)."""
        persistent: bool = self._pool.persistent
        return persistent

    def _settle(self, result: object) -> object:
        # A request still in flight when close() was called returns its
        # connection to the pool afterwards: close that one too.
        if self._closed:
            self._close_pools()
        return result

    def close(self) -> defer.Deferred[None]:
        """
        Close the idle connections this proxy keeps open, and those of
        requests still in flight as they finish.

        :return: a Deferred firing when the idle ones are closed.
        """
        self._closed = True
        return self._close_pools()

    def _close_pools(self) -> defer.Deferred[None]:
        pools = [self._pool] + self._retired_pools
        closing = [pool.closeCachedConnections() for pool in pools]
        return defer.gatherResults(closing, consumeErrors=True).addCallback(lambda _: None)


def _peer(channel: object) -> str:
    """The peer of *channel* as short text, for log lines."""
    transport = getattr(channel, "transport", None)
    peer = transport.getPeer() if transport is not None else None
    host, port = getattr(peer, "host", None), getattr(peer, "port", None)
    return f"{host}:{port}" if host is not None else str(peer)


def _rejections(channel: object) -> RejectionLog:
    """The site's rate-limited log of refused requests."""
    site = getattr(channel, "site", None)
    log: RejectionLog | None = getattr(site, "rejections", None)
    return log if log is not None else _FALLBACK_REJECTIONS


class _FallbackClock:
    def seconds(self) -> float:
        seconds: float = cast(IReactorTime, default_reactor()).seconds()
        return seconds


# (RejectionLog reads only the clock's seconds().)
_FALLBACK_REJECTIONS = RejectionLog(cast(IReactorTime, _FallbackClock()))


class _BoundedRequest(server.Request):
    """
    A request whose body may not exceed ``channel.site.max_body_bytes``:
    a larger one is answered 413 at once, and its connection closed without
    reading the rest.
    """

    _refused = False
    channel: _LenientChannel  # a _QuietSite's, as make_site pairs them

    def _limit(self) -> int:
        limit: int = getattr(self.channel.site, "max_body_bytes", DEFAULT_MAX_BYTES)
        return limit

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self._refuse(length)
            return
        # In memory, however long (Twisted writes bodies from 100 kB on to
        # a temporary file): the body is bounded, and is parsed from bytes.
        # A big one goes into the buffer the site keeps for them (_bodies).
        bodies: BodyBuffers | None = getattr(self.channel.site, "bodies", None)
        self.content = io.BytesIO() if length is None or bodies is None else bodies.body(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        if cast(IO[bytes], self.content).tell() + len(data) > self._limit():
            self._refuse(None)
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if not self._refused:  # the rest of a refused body arrived with its head
            super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def _refuse(self, length: int | None) -> None:
        self._refused = True
        self.content = None
        size = "" if length is None else f" of {length} bytes"
        _rejections(self.channel).refused(
            _peer(self.channel), f"body{size} over the limit of {self._limit()} bytes"
        )
        self.channel.refuse(b"413 Content Too Large")


# XML-RPC bodies are never HTML forms: where Twisted allows it, skip its
# check for one, which parses the content type with the email package and
# costs more than parsing the XML-RPC itself.
_NO_FORMS = (
    {"parsePOSTFormSubmission": False}
    if "parsePOSTFormSubmission" in inspect.signature(server.Site.__init__).parameters
    else {}
)


class _LenientChannel(http.HTTPChannel):
    """
    An HTTP channel that also reads the request line and headers of SAMP
    peers that end lines with a bare LF, as DS9's Tcl XML-RPC client does
    (``POST /xmlrpc HTTP/1.0``, no ``Host``), that says so when it keeps a
    connection open, and that holds peers to the site's limits.

    Only the line mode, which ends at the blank line closing the headers, is
    affected: the body is read raw, byte for byte, as before.  The line and
    header limits are Twisted's, answered 431.

    Timeouts: a request must arrive whole within the site's
    ``request_timeout`` of the connection's opening or of its own first byte
    (slow senders cannot hold a connection); between requests, a connection
    may stay silent for the channel's ``timeOut`` (the site's idle timeout,
    longer than our clients keep idle connections in their pools).
    """

    delimiter = b"\n"
    _deadline: IDelayedCall | None = None
    _addresses: tuple[IAddress, IAddress] | None = None
    site: _QuietSite  # set by the site's buildProtocol

    turn_away = False  # set by the site when it is full of busy connections

    def connectionMade(self) -> None:
        super().connectionMade()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        if self.turn_away:
            self.refuse(b"503 Service Unavailable", f"{self.site.max_connections} connections open, all busy")
            return
        self._start_deadline()

    def dataReceived(self, data: bytes) -> None:
        if self._deadline is None and not self._handlingRequest:
            self._start_deadline()  # the first byte of the next request
        super().dataReceived(data)  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def lineReceived(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            self._refuse_head("header section")
            return
        super().lineReceived(line)  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def lineLengthExceeded(self, line: bytes) -> None:
        self._refuse_head("header line")

    def headerReceived(self, line: bytes) -> bool:
        if self._receivedHeaderCount >= self.maxHeaders:
            self._refuse_head("header count")
            return False
        received: bool = super().headerReceived(line)  # type: ignore[no-untyped-call]  # not annotated in Twisted
        return received

    def allContentReceived(self) -> None:
        self._stop_deadline()
        super().allContentReceived()  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any) -> None:
        # One piece for the transport rather than four per header, each
        # checked, counted and joined again by it.  (Headers sanitize what
        # they hold; anything else goes Twisted's way.)
        if not isinstance(headers, Headers) or self.transport is None:
            super().writeHeaders(version, code, reason, headers)  # type: ignore[no-untyped-call]  # not annotated in Twisted
            return
        lines = [b"%s %s %s\r\n" % (version, code, reason)]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        self.transport.write(b"".join(lines))

    def getHost(self) -> IAddress:
        # Each request asks (Twisted's Request keeps both addresses): the
        # connection's, asked once rather than a system call per request.
        return self._own_addresses()[0]

    def getPeer(self) -> IAddress:
        return self._own_addresses()[1]

    def _own_addresses(self) -> tuple[IAddress, IAddress]:
        addresses = self._addresses
        if addresses is None:
            assert self.transport is not None
            addresses = self._addresses = (self.transport.getHost(), self.transport.getPeer())
        return addresses

    def checkPersistence(self, request: http.Request, version: bytes) -> bool:
        # Our XML-RPC client reuses a connection only when the response
        # says "Connection: keep-alive" (see XMLRPCProxy._stop_reusing).
        keep: bool = super().checkPersistence(request, version)  # type: ignore[no-untyped-call]  # not annotated in Twisted
        if keep:
            request.responseHeaders.setRawHeaders(b"connection", [b"keep-alive"])
        return keep

    def timeoutConnection(self) -> None:
        # Silent for the whole idle timeout between requests: nothing to
        # log (Twisted's line for each would be one per idle connection).
        if self.abortTimeout is not None:
            self._abortingCall = self.callLater(self.abortTimeout, self.forceAbortClient)  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self.loseConnection()  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_deadline()
        site = getattr(self, "site", None)
        if site is not None:
            site.channel_closed(self)
        super().connectionLost(reason)  # type: ignore[no-untyped-call]  # not annotated in Twisted

    @property
    def busy(self) -> bool:
        """Whether a request of this channel is being answered."""
        handling: bool = self._handlingRequest
        return handling

    @property
    def waiting_for_request(self) -> bool:
        """Whether this channel is receiving a request, or has not sent one
        yet: the first to go when the site is full."""
        return self._deadline is not None

    def refuse(self, status: bytes, reason: str | None = None) -> None:
        """
        Answer *status* (``b"413 Content Too Large"``) and close, reading
        nothing more.
        """
        if reason is not None:
            _rejections(self).refused(_peer(self), reason)
        self._stop_deadline()
        self.setTimeout(None)  # type: ignore[no-untyped-call]  # not annotated in Twisted
        # (Twisted's transports have "disconnecting"; no interface says so.)
        if self.transport is None or self.transport.disconnecting:  # type: ignore[attr-defined]
            return
        self.transport.write(
            b"HTTP/1.1 %s\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" % status
        )
        # Replaced on this instance: whatever else arrives is dropped.
        self.dataReceived = self.lineReceived = self.rawDataReceived = (  # type: ignore[method-assign,assignment]
            lambda *args: None
        )
        self.transport.loseConnection()

    def _refuse_head(self, what: str) -> None:
        self.refuse(
            b"431 Request Header Fields Too Large", f"{what} over the limit"
        )

    def _start_deadline(self) -> None:
        timeout = getattr(getattr(self, "site", None), "request_timeout", None)
        if timeout is not None and self._deadline is None:
            self._deadline = self.callLater(timeout, self._too_slow)  # type: ignore[no-untyped-call]  # not annotated in Twisted

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        timeout = getattr(self.site, "request_timeout", None)
        _rejections(self).refused(_peer(self), f"no complete request within {timeout:g} s")
        if self.transport is not None:
            cast(ITCPTransport, self.transport).abortConnection()


class _QuietSite(server.Site):
    """
    A Site writing no access log, reading requests leniently, and holding
    at most ``max_connections`` connections: when full, a new connection
    closes the oldest one that has not sent a complete request, or else the
    oldest one idle between requests; connections whose request is being
    answered stay; when all are, the new one is answered 503 and closed.  A
    peer that uses its connections (a registered client calling or
    answering the hub) is served while idle ones wait outside.
    """

    # The channel itself rather than Twisted's wrapper choosing between
    # HTTP/1.1 and HTTP/2 by TLS negotiation: SAMP peers speak HTTP/1.x.
    # (HTTPFactory declares its HTTP/1.1-or-2 wrapper; buildProtocol only
    # calls this.)
    protocol = _LenientChannel  # type: ignore[assignment]
    max_connections = _limits.DEFAULT_MAX_CONNECTIONS
    request_timeout: float = _limits.DEFAULT_REQUEST_TIMEOUT
    max_body_bytes: int  # set by make_site

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self._channels: dict[_LenientChannel, None] = {}  # oldest first
        self.rejections = RejectionLog(self.reactor)
        self.bodies = BodyBuffers(self.reactor)

    def stopFactory(self) -> None:
        # Not listening any more: the buffer for big bodies goes too.
        self.bodies.stop()
        super().stopFactory()

    def buildProtocol(self, addr: IAddress | None) -> _LenientChannel:  # type: ignore[override]  # see protocol
        channel = cast(_LenientChannel, super().buildProtocol(addr))  # type: ignore[no-untyped-call]  # not annotated in Twisted
        if len(self._channels) >= self.max_connections and not self._make_room():
            # Answered 503 and closed at once, rather than refused with no
            # protocol: a wrapping factory (the hub's) expects one.
            channel.turn_away = True
        else:
            self._channels[channel] = None
        return channel

    def _make_room(self) -> bool:
        victim = next((c for c in self._channels if c.waiting_for_request), None)
        if victim is None:
            victim = next((c for c in self._channels if not c.busy), None)
        if victim is None:
            return False
        del self._channels[victim]
        self.rejections.refused(_peer(victim), "closed to make room for a new connection")
        cast(ITCPTransport, victim.transport).abortConnection()
        return True

    def channel_closed(self, channel: _LenientChannel) -> None:
        """Forget *channel*, which is closed."""
        self._channels.pop(channel, None)

    @property
    def connections(self) -> int:
        """How many connections are open."""
        return len(self._channels)

    label = "SAMP XML-RPC server"
    """What the log calls this server, as in "SAMP hub starting on 41017"."""

    def logPrefix(self) -> str:
        # Twisted's log lines about the port name the factory by this, or
        # else by its class name, meaningless to users.
        return self.label

    def log(self, request: http.Request) -> None:
        # Formatting one access-log line per call, for the legacy log, is
        # a sizeable part of answering a small XML-RPC request; SAMP
        # traffic is logged, if at all, by the application.
        pass


def make_site(
    resource: IResource,
    max_body_bytes: int = DEFAULT_MAX_BYTES,
    reactor: IReactorTime | None = None,
    max_connections: int | None = None,
    request_timeout: float | None = None,
    idle_timeout: float | None = None,
) -> _QuietSite:
    """
    A quiet :class:`~twisted.web.server.Site` with the limits of
    :mod:`sampy_twisted._limits` and no access log, which also reads
    requests with bare-LF line ends and says ``Connection: keep-alive`` on
    the HTTP/1.1 connections it keeps.

    :param resource: the root resource.
    :param int max_body_bytes: a larger request body is answered 413.
    :param reactor: the reactor (``IReactorTime``), for the timeouts.
    :param int max_connections: most connections open at once, or ``None``
        for :func:`~sampy_twisted._limits.connection_cap`'s default.
    :param float request_timeout: seconds a connection has to send a whole
        request, from its opening or the request's first byte (``None``:
        :data:`~sampy_twisted._limits.DEFAULT_REQUEST_TIMEOUT`).
    :param float idle_timeout: seconds a connection may stay silent between
        requests (``None``:
        :data:`~sampy_twisted._limits.DEFAULT_IDLE_TIMEOUT`).
    """
    if request_timeout is None:
        request_timeout = _limits.DEFAULT_REQUEST_TIMEOUT
    if idle_timeout is None:
        idle_timeout = _limits.DEFAULT_IDLE_TIMEOUT
    site = _QuietSite(
        resource,
        requestFactory=_BoundedRequest,
        reactor=reactor,
        timeout=idle_timeout,
        **_NO_FORMS,
    )
    site.max_body_bytes = max_body_bytes
    site.max_connections = connection_cap(max_connections)
    site.request_timeout = request_timeout
    site.noisy = False
    site.displayTracebacks = False
    return site


def _arity(function: Callable[..., object]) -> tuple[float, float]:
    """
    The fewest and most positional arguments *function* binds, as
    ``inspect.signature(function).bind(*args)`` judges, computed once
    instead of binding on every call.
    """
    fewest: float = 0
    most: float = 0
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            most += 1
            if parameter.default is parameter.empty:
                fewest += 1
        elif parameter.kind is parameter.VAR_POSITIONAL:
            most = math.inf
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return math.inf, math.inf  # never callable with positional arguments only
    return fewest, most


def _take_body(request: server.Request) -> bytes | bytearray:
    """The request's whole body, which the request no longer keeps: a big
    message would otherwise be held twice while it is handled."""
    content = cast(IO[bytes], request.content)
    request.content = None
    if isinstance(content, (io.BytesIO, BigBody)):
        return content.getvalue()  # the buffer itself, not a copy
    content.seek(0, 0)
    return content.read()


def with_request(function: _Procedure) -> _Procedure:
    """
    Mark *function*, an :class:`XMLRPCResource` procedure, to be given the
    HTTP request it answers as its first argument, before the call's: for
    what only the request says (the page's origin, the peer's address).

    :return: *function*.
    """
    setattr(function, "with_request", True)
    return function


class XMLRPCResource(Resource):
    """
    An XML-RPC endpoint serving full dotted method names.

    Arguments arrive converted to SAMP types (or, not *lenient*, as
    decoded); a method may return a value, a Deferred or a coroutine.  ``None`` is answered as ``""`` (SAMP has no
    nil).  A method raises :class:`xmlrpc.client.Fault` for an error the
    caller should see; any other exception is logged and answered with a
    fault carrying its text.

    :param procedures: a mapping of method name to callable.
    :param bool lenient: turn arguments that are not SAMP values (XML-RPC
        ints, booleans, doubles, nil...) into strings, as a client's
        callbacks accept them; with ``False`` they are passed as decoded, to
        procedures that check SAMP data themselves and refuse what breaks it
        (the hub core, as JSAMP's hub does).
    :param bool verbatim: keep long lists of plain strings as they came
        (:class:`~._verbatim.VerbatimStrings`), for procedures that pass
        them on (the hub core).

    Bodies from :data:`THREADED_PARSE_BYTES` on are parsed in the reactor's
    thread pool (the site's reactor).  A procedure marked with
    :func:`with_request` is given the HTTP request as its first argument.
    """

    isLeaf = True
    _log = Logger()

    def __init__(
        self,
        procedures: Mapping[str, Callable[..., object]],
        lenient: bool = True,
        verbatim: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self._procedures = dict(procedures)
        self._signatures: dict[str, tuple[float, float, bool]] = {}
        self._lenient = lenient
        self._verbatim = verbatim

    def render_GET(self, request: server.Request) -> bytes:
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST")
        return b"XML-RPC endpoint: POST only\n"

    def render_POST(self, request: server.Request) -> bytes | int:
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        body = _take_body(request)
        reactor = getattr(getattr(getattr(request, "channel", None), "site", None), "reactor", None)
        if len(body) < THREADED_PARSE_BYTES or not IReactorThreads.providedBy(reactor):
            try:
                args, method = self._read(body)
            except (ValueError, xmlrpc.client.Fault) as exc:
                return self._unparsable(request, exc)
            return self._answer(request, args, method)
        # A big body (a long row list) is parsed in a thread, the reactor
        # serving everyone else meanwhile; the call is then made on the
        # reactor's thread as any other.  Requests on one connection still
        # come one after the other.
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)
        parsing = threads.deferToThreadPool(reactor, reactor.getThreadPool(), self._read, body)
        parsing.addBoth(self._parsed, request, gone)
        return server.NOT_DONE_YET

    def _read(self, body: bytes | bytearray) -> tuple[Sequence[Any], str | None]:
        """The arguments and the method name of a request (in a thread, for
        a big one: with the arguments converted, which for a long list
        costs a pass over it too)."""
        args, method = safe_loads(body, self._verbatim)
        if self._lenient:
            return [from_xmlrpc(arg) for arg in args], method
        return args, method

    def _unparsable(self, request: server.Request, exc: Exception) -> bytes:
        # Expected from hostile or broken peers: one short line (rate
        # limited by the site), no traceback, nothing of the request kept.
        reason = f"cannot parse XML-RPC request: {exc}"
        _rejections(request.channel).refused(_peer(request.channel), reason)
        return dumps_fault(1, reason)

    def _parsed(
        self,
        parsed: tuple[Sequence[Any], str | None] | Failure,
        request: server.Request,
        gone: list[Failure],
    ) -> None:
        """The call of a request parsed in a thread, answered."""
        if isinstance(parsed, Failure):
            if parsed.check(ValueError, xmlrpc.client.Fault):
                rendered: bytes | int = self._unparsable(request, cast(Exception, parsed.value))
            else:
                rendered = self._encode_failure(parsed, None)
        elif gone:  # the caller hung up meanwhile: nobody waits for the call
            return
        else:
            rendered = self._answer(request, *parsed)
        if isinstance(rendered, bytes):
            self._write(rendered, request, gone)

    def _answer(self, request: server.Request, args: Sequence[Any], method: str | None) -> bytes | int:
        """Make the call, answering at once (bytes) or later (NOT_DONE_YET)."""
        try:
            result = self._invoke(method, args, request)
            if not isinstance(result, defer.Deferred):
                # Answered at once, without Deferred machinery: the usual
                # case for SAMP's receive* and hub methods.
                return self._encode_result(result)
        except Exception:
            return self._encode_failure(Failure(), method)
        gone: list[Failure] = []

        def hung_up(reason: Failure) -> None:
            gone.append(reason)
            result.cancel()  # stop work nobody waits for, such as a callAndWait

        request.notifyFinish().addErrback(hung_up)
        result.addCallback(self._encode_result)
        result.addErrback(self._encode_failure, method)
        result.addCallback(self._write, request, gone)
        return server.NOT_DONE_YET

    def _invoke(self, method: str | None, args: Sequence[Any], request: server.Request) -> object:
        function = self._procedures.get(method) if method is not None else None
        if method is None or function is None:
            raise xmlrpc.client.Fault(1, f"unknown method {method!r}")
        fewest, most, wants_request = self._signature(method, function)
        if not fewest <= len(args) <= most:
            raise xmlrpc.client.Fault(1, f"bad arguments for {method}: got {len(args)} argument(s)")
        result = function(request, *args) if wants_request else function(*args)
        if inspect.isawaitable(result):
            # A coroutine, or a Deferred: the kinds of awaitable documented.
            return defer.ensureDeferred(cast("Coroutine[Any, Any, Any]", result))
        return result

    def _signature(self, method: str, function: Callable[..., object]) -> tuple[float, float, bool]:
        """How many arguments a call of *method* may have, fewest and most,
        and whether the HTTP request goes first: worked out once."""
        signature = self._signatures.get(method)
        if signature is None:
            fewest, most = _arity(function)
            wants_request = bool(getattr(function, "with_request", False))
            if wants_request:
                fewest, most = fewest - 1, most - 1
            signature = self._signatures[method] = (fewest, most, wants_request)
        return signature

    def _encode_result(self, result: Any) -> bytes:
        if result is None:
            result = ""
        return dumps_response(result)

    def _encode_failure(self, failure: Failure, method: str | None) -> bytes:
        if failure.check(xmlrpc.client.Fault):
            fault = cast(xmlrpc.client.Fault, failure.value)
            return dumps_fault(fault.faultCode, fault.faultString)
        if failure.check(defer.CancelledError):
            return dumps_fault(1, f"{method} was cancelled")
        # Unexpected: logged with its traceback as text, but without the
        # frames, whose variables would keep the request alive in Twisted's
        # buffer of early log events.
        failure.cleanFailure()
        self._log.failure("XML-RPC method {method} failed", failure, method=method)
        return dumps_fault(1, f"{method} failed: {failure.getErrorMessage()}")

    def _write(self, body: bytes, request: server.Request, gone: list[Failure]) -> None:
        if gone:  # the caller hung up; nobody to answer
            return
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()
