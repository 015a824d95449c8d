# -*- test-case-name: tests.test_listening -*-
"""
Listening on loopback, for the hub and for clients' callback servers: the
endpoint for an address and port (TCP, TCP over IPv6, or TLS), the URL
peers connect to once it listens, and a tracker of the open connections.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, IStreamServerEndpoint
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.protocols.policies import WrappingFactory

__all__ = ["ConnectionTracker", "is_loopback_host", "listening_url", "server_endpoint"]

# A wildcard address is no place to connect to: peers are given loopback.
_CONNECTABLE = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def server_endpoint(
    reactor: Any, addr: str, port: int, tls_options: Any = None, backlog: int = 50
) -> IStreamServerEndpoint:
    """
    An endpoint listening on interface *addr*, port *port*.

    :param reactor: the reactor.
    :param str addr: an IPv4 or IPv6 address.
    :param int port: the port, 0 for any free one.
    :param tls_options: a TLS context factory (such as
        ``TLSOptions.server_options()``) to listen with TLS, or ``None``.
    :param int backlog: the accept queue's length.
    :return: an ``IStreamServerEndpoint``.
    """
    if tls_options is not None:
        return SSL4ServerEndpoint(reactor, port, tls_options, backlog=backlog, interface=addr)
    kind = TCP6ServerEndpoint if ":" in addr else TCP4ServerEndpoint
    return kind(reactor, port, backlog=backlog, interface=addr)


def listening_url(address: IAddress, scheme: str = "http", path: str = "/") -> str:
    """
    The URL of a server listening at *address*: a wildcard address becomes
    loopback, an IPv6 address is bracketed.

    :param address: the listening port's ``getHost()``.
    :param str scheme: ``"http"`` or ``"https"``.
    :param str path: the path, starting with ``/``.
    :raises ValueError: *address* is not a TCP address.
    """
    host: str | None = getattr(address, "host", None)
    port: int | None = getattr(address, "port", None)
    if host is None or port is None:
        raise ValueError(f"not a TCP address: {address}")
    host = _CONNECTABLE.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{path}"


class ConnectionTracker(WrappingFactory):
    """Keeps a server's open connections, so stopping can close them."""

    noisy = False

    def __init__(self, wrapped: Any, log_prefix: str | None = None) -> None:
        super().__init__(wrapped)  # type: ignore[no-untyped-call]
        self._log_prefix = log_prefix
        self._when_idle: list[defer.Deferred[None]] = []

    def logPrefix(self) -> str:
        # What twistd's log calls the port ("SAMP hub starting on 41017"),
        # rather than "_QuietSite (ConnectionTracker)".
        prefix: str = self._log_prefix or super().logPrefix()  # type: ignore[no-untyped-call]
        return prefix

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)  # type: ignore[no-untyped-call]
        if not self.protocols:
            waiting, self._when_idle = self._when_idle, []
            for d in waiting:
                d.callback(None)

    def close_all(self, reactor: IReactorTime, timeout: float) -> defer.Deferred[None]:
        """
        Close every connection, aborting those still open after *timeout*.

        :return: a Deferred firing when none is left.
        """
        if not self.protocols:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        self._when_idle.append(done)
        for p in list(self.protocols):
            p.transport.loseConnection()
        abort = reactor.callLater(timeout, self._abort_all)
        return done.addBoth(_cancel_call, abort)

    def _abort_all(self) -> None:
        for p in list(self.protocols):
            p.transport.abortConnection()


def _cancel_call(result: Any, call: IDelayedCall) -> Any:
    if call.active():
        call.cancel()
    return result


def is_loopback_host(host: bytes | None) -> bool:
    """
    Whether an HTTP ``Host`` header names this machine's loopback:
    ``localhost`` or a ``*.localhost`` name (which browsers resolve to
    loopback themselves), a ``127.x.y.z`` address or ``[::1]``, with or
    without a port.  Servers a browser can reach check it, so that a page
    on a DNS-rebinding name is refused.
    """
    if not host:
        return False
    try:
        text = host.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return False
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return False
    else:
        name, _, port = text.partition(":")
        if port and not re.fullmatch(r"\d{1,5}", port):
            return False
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
