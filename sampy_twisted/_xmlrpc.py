# -*- test-case-name: tests.test_xmlrpc -*-
"""
XML-RPC over Twisted's HTTP client and server, with SAMP's safety limits.

The client side is built on :class:`twisted.web.client.Agent` rather than
:class:`twisted.web.xmlrpc.Proxy`: it keeps HTTP/1.1 connections open where
the server allows it, bounds concurrency, response size and time, and can
carry client certificates.  The server side is a small resource that maps
full dotted method names to callables, refuses DTDs and oversized bodies, and
never answers ``nil``.
"""

import inspect
import ipaddress
import xmlrpc.client
from urllib.parse import urlsplit

from twisted.internet import defer, error as ierror
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from OpenSSL.SSL import Error as SSLError
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web._newclient import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from twisted.web.resource import Resource
from zope.interface import implementer

from ._encoding import from_xmlrpc

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
"""Largest XML-RPC body, request or response, accepted by default."""

_ERROR_BODY_BYTES = 64 * 1024
_CONTENT_TYPE = Headers({b"content-type": [b"text/xml; charset=utf-8"]})


class XMLRPCError(Exception):
    """
    A request could not be completed: the server was unreachable, timed out,
    answered something that is not XML-RPC, or answered too much.

    :ivar url: the server's URL.
    """

    def __init__(self, message, url=None):
        super().__init__(message)
        self.url = url


class _DTDRefused(ValueError):
    pass


def _refuse_dtd(*args):
    raise _DTDRefused("XML-RPC payloads may not contain a DTD or entities")


def safe_loads(data):
    """
    Parse an XML-RPC request or response, refusing DTDs and entities.

    :param bytes data: the XML document.
    :return: ``(params, methodname)`` as :func:`xmlrpc.client.loads`.
    :raises xmlrpc.client.Fault: the document is a fault response.
    :raises ValueError: the document has a DTD or is not XML-RPC.
    """
    parser, unmarshaller = xmlrpc.client.getparser()
    expat = getattr(parser, "_parser", None)
    if expat is None:  # pragma: no cover - the stdlib always uses expat
        raise ValueError("no expat parser available to parse XML-RPC safely")
    expat.StartDoctypeDeclHandler = _refuse_dtd
    expat.EntityDeclHandler = _refuse_dtd
    try:
        parser.feed(data)
        parser.close()
        return unmarshaller.close(), unmarshaller.getmethodname()
    except xmlrpc.client.Fault:
        raise
    except _DTDRefused:
        raise
    except Exception as exc:
        raise ValueError(f"not an XML-RPC document: {exc}") from None


def dumps_call(method, args):
    """Encode a method call; values must already be SAMP-checked."""
    return xmlrpc.client.dumps(
        tuple(args), methodname=method, allow_none=False, encoding="utf-8"
    ).encode("utf-8")


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body of known length (never chunked: HTTP/1.0 hubs)."""

    def __init__(self, body):
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self._body)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _BoundedBody(Protocol):
    """Collects a response body, dropping the connection past a limit."""

    def __init__(self, limit, url):
        self._limit = limit
        self._url = url
        self._parts = []
        self._size = 0
        self.done = defer.Deferred(self._cancel)

    def _cancel(self, _):
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data):
        if self._size > self._limit:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._parts = []
            self.transport.stopProducing()
        else:
            self._parts.append(data)

    def connectionLost(self, reason=None):
        # Results are given only here, once the connection is settled (back
        # in the pool or closed), so that closing the pool finds it.
        if self.done.called:
            return
        if self._size > self._limit:
            self.done.errback(
                XMLRPCError(f"response from {self._url} exceeds {self._limit} bytes", self._url)
            )
        elif reason is None or reason.check(ResponseDone):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(reason)


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    """
    Connects IP literals directly (no resolver thread, so it also works before
    the reactor's threadpool runs) and names through HostnameEndpoint.
    """

    def __init__(self, reactor, connect_timeout, tls_policy=None):
        self._reactor = reactor
        self._timeout = connect_timeout
        self._tls_policy = tls_policy

    def endpointForURI(self, uri):
        host = uri.host.decode("ascii")
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            endpoint = HostnameEndpoint(
                self._reactor, host, uri.port, timeout=self._timeout
            )
        else:
            kind = TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
            endpoint = kind(
                self._reactor, str(address), uri.port, timeout=self._timeout
            )
        if uri.scheme == b"https":
            if self._tls_policy is None:
                raise XMLRPCError(
                    f"no TLS settings for https URL {uri.toBytes().decode()}",
                    uri.toBytes().decode(),
                )
            creator = self._tls_policy.creatorForNetloc(uri.host, uri.port)
            endpoint = wrapClientTLS(creator, endpoint)
        return endpoint


def _reason(failure):
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
    """

    def __init__(
        self,
        url,
        reactor,
        max_concurrent=20,
        timeout=60.0,
        connect_timeout=10.0,
        max_bytes=DEFAULT_MAX_BYTES,
        tls_policy=None,
        error_class=XMLRPCError,
    ):
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"XML-RPC URL {url!r} is not http or https")
        self.url = url
        self._url_bytes = url.encode("ascii")
        self._reactor = reactor
        self._endpoints = _EndpointFactory(reactor, connect_timeout, tls_policy)
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = max_concurrent
        self._pool.cachedConnectionTimeout = 30
        self._pool.retryAutomatically = False
        self._agent = Agent.usingEndpointFactory(reactor, self._endpoints, pool=self._pool)
        self._semaphore = defer.DeferredSemaphore(max_concurrent)
        self.timeout = timeout
        self._max_bytes = max_bytes
        self._error_class = error_class

    def call(self, method, *args, timeout=...):
        """
        Call *method* with *args* (already SAMP-checked).

        :param timeout: seconds for this call, ``None`` for none, or the
            proxy's default when not given.
        :return: a Deferred firing with the decoded result, or failing with
            :class:`xmlrpc.client.Fault` for a fault answer and
            *error_class* for everything else.
        """
        body = dumps_call(method, args)
        if timeout is ...:
            timeout = self.timeout
        return self._semaphore.run(self._request, method, body, timeout)

    def _request(self, method, body, timeout, retry=True):
        d = self._agent.request(b"POST", self._url_bytes, _CONTENT_TYPE, _BytesProducer(body))
        d.addCallback(self._got_response)
        d.addCallback(self._parse)
        if timeout is not None:
            d.addTimeout(timeout, self._reactor, onTimeoutCancel=self._timed_out(method))
        if retry:
            # A cached connection the server had just closed: safe to resend.
            d.addErrback(self._retry_unsent, method, body, timeout)
        d.addErrback(self._translate, method)
        return d

    def _retry_unsent(self, failure, method, body, timeout):
        failure.trap(RequestNotSent)
        return self._request(method, body, timeout, retry=False)

    def _got_response(self, response):
        if response.code != 200:
            # Read (a bounded amount of) the body so the connection is
            # settled before the caller sees the error.
            reader = _BoundedBody(_ERROR_BODY_BYTES, self.url)
            response.deliverBody(reader)
            error = self._error_class(
                f"{self.url} answered HTTP {response.code} "
                f"{response.phrase.decode('latin-1')}, not an XML-RPC response"
            )
            return reader.done.addBoth(lambda _: Failure(error))
        reader = _BoundedBody(self._max_bytes, self.url)
        response.deliverBody(reader)
        if response.version < (b"HTTP", 1, 1) and self._pool.persistent:
            reader.done.addCallback(self._stop_reusing)
        return reader.done

    def _stop_reusing(self, body):
        # Twisted keeps HTTP/1.0 connections without "Connection: close" for
        # reuse, but HTTP/1.0 servers (JSAMP's and astropy's hubs) close
        # them; a pooled dead connection would fail the next call.
        old = self._pool
        self._pool = HTTPConnectionPool(self._reactor, persistent=False)
        self._agent = Agent.usingEndpointFactory(self._reactor, self._endpoints, pool=self._pool)
        old.closeCachedConnections()
        return body

    def _parse(self, data):
        try:
            params, _ = safe_loads(data)
        except ValueError as exc:
            raise self._error_class(f"bad XML-RPC response from {self.url}: {exc}")
        if len(params) != 1:
            raise self._error_class(f"bad XML-RPC response from {self.url}: no value")
        return from_xmlrpc(params[0])

    def _timed_out(self, method):
        def timed_out(result, timeout):
            raise self._error_class(f"{method} at {self.url} timed out after {timeout:g} s")

        return timed_out

    def _translate(self, failure, method):
        if failure.check(xmlrpc.client.Fault, self._error_class, defer.CancelledError):
            return failure
        if failure.check(XMLRPCError):
            raise self._error_class(str(failure.value))
        raise self._error_class(f"{method} at {self.url} failed: {_reason(failure)}")

    def close(self):
        """
        Close the idle connections this proxy keeps open.

        :return: a Deferred firing when they are closed.
        """
        return self._pool.closeCachedConnections()


class _BoundedRequest(server.Request):
    """A request whose body may not exceed ``channel.site.max_body_bytes``."""

    def _limit(self):
        return getattr(self.channel.site, "max_body_bytes", DEFAULT_MAX_BYTES)

    def gotLength(self, length):
        super().gotLength(length)
        if length is not None and length > self._limit():
            self.channel.forceAbortClient()

    def handleContentChunk(self, data):
        if self.content.tell() + len(data) > self._limit():
            self.channel.forceAbortClient()
            return
        super().handleContentChunk(data)


def make_site(resource, max_body_bytes=DEFAULT_MAX_BYTES, reactor=None):
    """
    A quiet :class:`~twisted.web.server.Site` with a bounded request body.

    :param resource: the root resource.
    :param int max_body_bytes: a larger request drops the connection.
    """
    site = server.Site(resource, requestFactory=_BoundedRequest, reactor=reactor)
    site.max_body_bytes = max_body_bytes
    site.noisy = False
    site.displayTracebacks = False
    return site


def _fault_body(code, text):
    return xmlrpc.client.dumps(
        xmlrpc.client.Fault(code, text), methodresponse=True, allow_none=False
    ).encode("utf-8")


class XMLRPCResource(Resource):
    """
    An XML-RPC endpoint serving full dotted method names.

    Arguments arrive converted to SAMP types; a method may return a value, a
    Deferred or a coroutine.  ``None`` is answered as ``""`` (SAMP has no
    nil).  A method raises :class:`xmlrpc.client.Fault` for an error the
    caller should see; any other exception is logged and answered with a
    fault carrying its text.

    :param procedures: a mapping of method name to callable.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, procedures):
        super().__init__()
        self._procedures = dict(procedures)
        self._signatures = {}

    def render_GET(self, request):
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST")
        return b"XML-RPC endpoint: POST only\n"

    def render_POST(self, request):
        request.setHeader(b"content-type", b"text/xml; charset=utf-8")
        request.content.seek(0, 0)
        try:
            args, method = safe_loads(request.content.read())
        except (ValueError, xmlrpc.client.Fault) as exc:
            return _fault_body(1, f"cannot parse XML-RPC request: {exc}")
        gone = []
        request.notifyFinish().addErrback(gone.append)
        d = defer.maybeDeferred(self._invoke, method, args)
        d.addCallback(self._encode_result)
        d.addErrback(self._encode_failure, method)
        d.addCallback(self._write, request, gone)
        return server.NOT_DONE_YET

    def _invoke(self, method, args):
        function = self._procedures.get(method)
        if function is None:
            raise xmlrpc.client.Fault(1, f"unknown method {method!r}")
        args = [from_xmlrpc(a) for a in args]
        self._check_arguments(method, function, args)
        result = function(*args)
        if inspect.isawaitable(result):
            return defer.ensureDeferred(result)
        return result

    def _check_arguments(self, method, function, args):
        signature = self._signatures.get(method)
        if signature is None:
            signature = self._signatures[method] = inspect.signature(function)
        try:
            signature.bind(*args)
        except TypeError:
            raise xmlrpc.client.Fault(
                1, f"bad arguments for {method}: got {len(args)} argument(s)"
            ) from None

    def _encode_result(self, result):
        if result is None:
            result = ""
        return xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False).encode(
            "utf-8"
        )

    def _encode_failure(self, failure, method):
        if failure.check(xmlrpc.client.Fault):
            return _fault_body(failure.value.faultCode, failure.value.faultString)
        self._log.failure("XML-RPC method {method} failed", failure, method=method)
        return _fault_body(1, f"{method} failed: {failure.getErrorMessage()}")

    def _write(self, body, request, gone):
        if gone:  # the caller hung up; nobody to answer
            return
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()
