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
import math
import xmlrpc.client
from xml.etree import ElementTree
from urllib.parse import urlsplit

from twisted.internet import defer, error as ierror
from twisted.internet.address import IPv6Address
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from OpenSSL.SSL import Error as SSLError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web._newclient import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.client import Agent, HTTP11ClientProtocol, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from twisted.web.resource import Resource
from zope.interface import implementer

from ._encoding import check_samp_value, from_xmlrpc

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
    # Documents naming a DTD go straight to the strict parser, which stops
    # at the declaration; the fast one also refuses them (its doctype hook)
    # whatever the encoding.
    if b"<!DOCTYPE" not in data:
        try:
            return _fast_loads(data)
        except (xmlrpc.client.Fault, _DTDRefused):
            raise
        except Exception:
            pass  # unusual or broken: the strict parser decides, and words the error
    return _strict_loads(data)


def _strict_loads(data):
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


class _RefusingTreeBuilder(ElementTree.TreeBuilder):
    """ElementTree's C tree builder, refusing any document type declaration."""

    def doctype(self, name, pubid, system):
        _refuse_dtd()


class _Unusual(Exception):
    """Something only the stdlib unmarshaller should judge."""


def _fast_loads(data):
    """
    The common XML-RPC documents, parsed by ElementTree's C parser and tree
    builder: several times faster than :mod:`xmlrpc.client`'s unmarshaller,
    which calls Python for each tag and each piece of text.  Anything but the
    plain shapes of the types SAMP peers send raises :class:`_Unusual` (or
    another error), so :func:`_strict_loads` gives the same results and
    errors as before.
    """
    parser = ElementTree.XMLParser(target=_RefusingTreeBuilder())
    parser.feed(data)
    root = parser.close()
    if root.tag == "methodCall":
        if len(root) != 2:
            raise _Unusual()
        name, params = root
        if name.tag != "methodName" or len(name):
            raise _Unusual()
        method = name.text or ""
    elif root.tag == "methodResponse" and len(root) == 1:
        method = None
        params = root[0]
        if params.tag == "fault":
            if len(params) != 1 or params[0].tag != "value":
                raise _Unusual()
            fault = _fast_value(params[0])
            if not isinstance(fault, dict):
                raise _Unusual()
            raise xmlrpc.client.Fault(**fault)  # a TypeError here: _Unusual
    else:
        raise _Unusual()
    if params.tag != "params":
        raise _Unusual()
    values = []
    for param in params:
        if param.tag != "param" or len(param) != 1 or param[0].tag != "value":
            raise _Unusual()
        values.append(_fast_value(param[0]))
    return tuple(values), method


def _fast_value(value):
    """A ``<value>`` element as xmlrpc.client's unmarshaller decodes it."""
    if not len(value):
        return value.text or ""
    if len(value) != 1:
        raise _Unusual()
    node = value[0]
    tag = node.tag
    if tag == "struct":
        result = {}
        for member in node:
            if member.tag != "member" or len(member) != 2:
                raise _Unusual()
            name, item = member
            if name.tag != "name" or len(name) or item.tag != "value":
                raise _Unusual()
            result[name.text or ""] = _fast_value(item)
        return result
    if tag == "array":
        if len(node) != 1 or node[0].tag != "data":
            raise _Unusual()
        items = []
        for item in node[0]:
            if item.tag != "value":
                raise _Unusual()
            items.append(_fast_value(item))
        return items
    if len(node):
        raise _Unusual()
    text = node.text or ""
    if tag == "string":
        return text
    if tag == "int" or tag == "i4":
        return int(text)
    if tag == "boolean" and text in ("0", "1"):
        return text == "1"
    if tag == "double":
        return float(text)
    if tag == "nil":
        return None
    raise _Unusual()


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
            self.done.callback(self.received())
        else:
            self.done.errback(reason)

    def received(self):
        """The body received so far (nothing once past the limit)."""
        return b"".join(self._parts)


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

    def __init__(self, reactor, host, port, timeout, ttl=60.0):
        self._reactor = reactor
        self._by_name = HostnameEndpoint(reactor, host, port, timeout=timeout)
        self._timeout = timeout
        self._ttl = ttl
        self._by_address = None
        self._expires = 0.0

    def connect(self, protocolFactory):
        if self._by_address is not None and self._reactor.seconds() < self._expires:
            return self._by_address.connect(protocolFactory).addErrback(self._forget)
        return self._by_name.connect(protocolFactory).addCallback(self._remember)

    def _remember(self, protocol):
        peer = protocol.transport.getPeer()
        kind = TCP6ClientEndpoint if isinstance(peer, IPv6Address) else TCP4ClientEndpoint
        self._by_address = kind(self._reactor, peer.host, peer.port, timeout=self._timeout)
        self._expires = self._reactor.seconds() + self._ttl
        return protocol

    def _forget(self, failure):
        self._by_address = None
        return failure


@implementer(IAgentEndpointFactory)
class _EndpointFactory:
    """
    Connects IP literals directly (no resolver thread, so it also works before
    the reactor's threadpool runs) and host names through the address they
    last resolved to (see :class:`_NamedHostEndpoint`).
    """

    def __init__(self, reactor, connect_timeout, tls_policy=None):
        self._reactor = reactor
        self._timeout = connect_timeout
        self._tls_policy = tls_policy
        self._tcp = {}

    def endpointForURI(self, uri):
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

    def _tcp_endpoint(self, host, port):
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return _NamedHostEndpoint(self._reactor, host, port, self._timeout)
        kind = TCP4ClientEndpoint if address.version == 4 else TCP6ClientEndpoint
        return kind(self._reactor, str(address), port, timeout=self._timeout)


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


class _ClientProtocol(HTTP11ClientProtocol):
    """
    Notes on each response whether the server said it keeps the
    connection: Twisted keeps the ``Connection`` header from the response's
    headers, with the other hop-by-hop ones.
    """

    def request(self, request):
        d = super().request(request)
        parser = getattr(self, "_parser", None)
        if parser is not None:
            # Runs first, when the headers are in: before the Agent's
            # callbacks and before the connection can go back to its pool.
            d.addCallback(_note_connection_header, parser)
        return d


def _note_connection_header(response, parser):
    response.sampy_connection = parser.connHeaders.getRawHeaders(b"connection", ())
    return response


def _keeps_alive(response):
    """Whether *response* says its connection stays open for another
    request: HTTP/1.1 with a ``Connection: keep-alive`` header."""
    if response.version < (b"HTTP", 1, 1):
        return False
    values = getattr(response, "sampy_connection", ())
    tokens = b",".join(values).lower().split(b",")
    return b"keep-alive" in (token.strip() for token in tokens)


class _QuietClientFactory(getattr(HTTPConnectionPool, "_factory", object)):
    # Not "Starting factory" and "Stopping factory" log events for every
    # request: HTTP/1.0 hubs make every request a new connection.
    noisy = False

    def buildProtocol(self, addr):
        return _ClientProtocol(self._quiescentCallback)


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
        self._pool = _QuietPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = max_concurrent
        self._pool.cachedConnectionTimeout = 30
        self._pool.retryAutomatically = False
        self._agent = Agent.usingEndpointFactory(reactor, self._endpoints, pool=self._pool)
        self._retired_pools = []
        self._closed = False
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
        d = self._semaphore.run(self._request, method, body)
        d.addBoth(self._settle)
        if timeout is not None:
            # The time counts from the call, waiting for a free slot included.
            d.addTimeout(timeout, self._reactor, onTimeoutCancel=self._timed_out(method))
        return d.addErrback(self._translate, method)

    def _request(self, method, body, retry=True):
        d = self._agent.request(b"POST", self._url_bytes, _CONTENT_TYPE, _BytesProducer(body))
        d.addCallback(self._got_response)
        d.addCallback(self._parse)
        if retry:
            # A cached connection the server had just closed: safe to resend.
            d.addErrback(self._retry_unsent, method, body)
        return d

    def _retry_unsent(self, failure, method, body):
        failure.trap(RequestNotSent)
        return self._request(method, body, retry=False)

    def _got_response(self, response):
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
            done = reader.done.addBoth(lambda _: Failure(error))
        else:
            reader = _BoundedBody(self._max_bytes, self.url)
            response.deliverBody(reader)
            done = reader.done.addErrback(self._cut_short, reader)
        if self._retired_pools:
            # This connection may have gone back to a retired pool: close it.
            done.addBoth(self._close_retired)
        return done

    def _stop_reusing(self):
        # Reuse a connection only when the peer said it keeps it: HTTP/1.1
        # with "Connection: keep-alive", as our own servers answer (see
        # make_site).  HTTP/1.0 servers (JSAMP's and astropy's hubs) and
        # DS9's callback server, which answers HTTP/1.1 and then closes,
        # would otherwise get the next request on a socket they are
        # closing: it fails, and whether it arrived cannot be known, so it
        # cannot be retried without risking a double delivery.  From now on
        # every request of this proxy has its own connection.
        old = self._pool
        self._pool = _QuietPool(self._reactor, persistent=False)
        self._agent = Agent.usingEndpointFactory(self._reactor, self._endpoints, pool=self._pool)
        # Requests still in flight on the old pool return their connections
        # to it later: keep it, to close those too.
        self._retired_pools.append(old)

    def _cut_short(self, failure, reader):
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

    def _close_retired(self, result):
        for pool in self._retired_pools:
            pool.closeCachedConnections()
        return result

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
        if failure.check(ierror.ConnectingCancelledError):
            raise defer.CancelledError(f"{method} at {self.url} was cancelled while connecting")
        if failure.check(XMLRPCError):
            raise self._error_class(str(failure.value))
        raise self._error_class(f"{method} at {self.url} failed: {_reason(failure)}")

    @property
    def keeps_connections(self):
        """Whether the server keeps connections open between calls (false
        once it answered without HTTP/1.1's ``Connection: keep-alive``, as
        JSAMP's, astropy's and DS9's servers do)."""
        return self._pool.persistent

    def _settle(self, result):
        # A request still in flight when close() was called returns its
        # connection to the pool afterwards: close that one too.
        if self._closed:
            self._close_pools()
        return result

    def close(self):
        """
        Close the idle connections this proxy keeps open, and those of
        requests still in flight as they finish.

        :return: a Deferred firing when the idle ones are closed.
        """
        self._closed = True
        return self._close_pools()

    def _close_pools(self):
        pools = [self._pool] + self._retired_pools
        closing = [pool.closeCachedConnections() for pool in pools]
        return defer.gatherResults(closing, consumeErrors=True).addCallback(lambda _: None)


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
    (``POST /xmlrpc HTTP/1.0``, no ``Host``), and that says so when it keeps
    a connection open.

    Only the line mode, which ends at the blank line closing the headers, is
    affected: the body is read raw, byte for byte, as before.  The line and
    header limits are Twisted's.
    """

    delimiter = b"\n"

    def lineReceived(self, line):
        if line.endswith(b"\r"):
            line = line[:-1]
        return super().lineReceived(line)

    def checkPersistence(self, request, version):
        # Our XML-RPC client reuses a connection only when the response
        # says "Connection: keep-alive" (see XMLRPCProxy._stop_reusing).
        keep = super().checkPersistence(request, version)
        if keep:
            request.responseHeaders.setRawHeaders(b"connection", [b"keep-alive"])
        return keep


class _QuietSite(server.Site):
    """A Site writing no access log, reading requests leniently."""

    # The channel itself rather than Twisted's wrapper choosing between
    # HTTP/1.1 and HTTP/2 by TLS negotiation: SAMP peers speak HTTP/1.x.
    protocol = _LenientChannel

    def log(self, request):
        # Formatting one access-log line per call, for the legacy log, is
        # a sizeable part of answering a small XML-RPC request; SAMP
        # traffic is logged, if at all, by the application.
        pass


def make_site(resource, max_body_bytes=DEFAULT_MAX_BYTES, reactor=None):
    """
    A quiet :class:`~twisted.web.server.Site` with a bounded request body
    and no access log, which also reads requests with bare-LF line ends and
    says ``Connection: keep-alive`` on the HTTP/1.1 connections it keeps.

    :param resource: the root resource.
    :param int max_body_bytes: a larger request drops the connection.
    """
    site = _QuietSite(resource, requestFactory=_BoundedRequest, reactor=reactor, **_NO_FORMS)
    site.max_body_bytes = max_body_bytes
    site.noisy = False
    site.displayTracebacks = False
    return site


def _arity(function):
    """
    The fewest and most positional arguments *function* binds, as
    ``inspect.signature(function).bind(*args)`` judges, computed once
    instead of binding on every call.
    """
    fewest, most = 0, 0
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
    :param bool strict: answer arguments that are not SAMP values (XML-RPC
        ints, booleans, doubles, nil...) with a fault, as JSAMP's hub does,
        instead of turning them into strings.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, procedures, strict=False):
        super().__init__()
        self._procedures = dict(procedures)
        self._signatures = {}
        self._strict = strict

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
        try:
            result = self._invoke(method, args)
            if not isinstance(result, defer.Deferred):
                # Answered at once, without Deferred machinery: the usual
                # case for SAMP's receive* and hub methods.
                return self._encode_result(result)
        except Exception:
            return self._encode_failure(Failure(), method)
        gone = []

        def hung_up(reason):
            gone.append(reason)
            result.cancel()  # stop work nobody waits for, such as a callAndWait

        request.notifyFinish().addErrback(hung_up)
        result.addCallback(self._encode_result)
        result.addErrback(self._encode_failure, method)
        result.addCallback(self._write, request, gone)
        return server.NOT_DONE_YET

    def _invoke(self, method, args):
        function = self._procedures.get(method)
        if function is None:
            raise xmlrpc.client.Fault(1, f"unknown method {method!r}")
        if self._strict:
            for number, arg in enumerate(args, 1):
                try:
                    check_samp_value(arg, f"argument {number} of {method}")
                except (TypeError, ValueError) as exc:
                    raise xmlrpc.client.Fault(1, f"not SAMP data: {exc}") from None
        else:
            args = [from_xmlrpc(a) for a in args]
        self._check_arguments(method, function, args)
        result = function(*args)
        if inspect.isawaitable(result):
            return defer.ensureDeferred(result)
        return result

    def _check_arguments(self, method, function, args):
        arity = self._signatures.get(method)
        if arity is None:
            arity = self._signatures[method] = _arity(function)
        fewest, most = arity
        if not fewest <= len(args) <= most:
            raise xmlrpc.client.Fault(
                1, f"bad arguments for {method}: got {len(args)} argument(s)"
            )

    def _encode_result(self, result):
        if result is None:
            result = ""
        return xmlrpc.client.dumps((result,), methodresponse=True, allow_none=False).encode(
            "utf-8"
        )

    def _encode_failure(self, failure, method):
        if failure.check(xmlrpc.client.Fault):
            return _fault_body(failure.value.faultCode, failure.value.faultString)
        if failure.check(defer.CancelledError):
            return _fault_body(1, f"{method} was cancelled")
        self._log.failure("XML-RPC method {method} failed", failure, method=method)
        return _fault_body(1, f"{method} failed: {failure.getErrorMessage()}")

    def _write(self, body, request, gone):
        if gone:  # the caller hung up; nobody to answer
            return
        request.setHeader(b"content-length", b"%d" % len(body))
        request.write(body)
        request.finish()
