# -*- test-case-name: tests.test_listening -*-
"""
Listening on loopback, for the hub and for clients' callback servers: the
endpoint for an address and port (TCP, TCP over IPv6, or TLS), the URL
peers connect to once it listens, and a tracker of the open connections.
"""

from twisted.internet import defer
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.protocols.policies import WrappingFactory

__all__ = ["ConnectionTracker", "listening_url", "server_endpoint"]

# A wildcard address is no place to connect to: peers are given loopback.
_CONNECTABLE = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def server_endpoint(reactor, addr, port, tls_options=None, backlog=50):
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


def listening_url(address, scheme="http", path="/"):
    """
    The URL of a server listening at *address*: a wildcard address becomes
    loopback, an IPv6 address is bracketed.

    :param address: the listening port's ``getHost()``.
    :param str scheme: ``"http"`` or ``"https"``.
    :param str path: the path, starting with ``/``.
    :raises ValueError: *address* is not a TCP address.
    """
    host = getattr(address, "host", None)
    if host is None:
        raise ValueError(f"not a TCP address: {address}")
    host = _CONNECTABLE.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{address.port}{path}"


class ConnectionTracker(WrappingFactory):
    """Keeps a server's open connections, so stopping can close them."""

    noisy = False

    def __init__(self, wrapped):
        super().__init__(wrapped)
        self._when_idle = []

    def unregisterProtocol(self, p):
        super().unregisterProtocol(p)
        if not self.protocols:
            waiting, self._when_idle = self._when_idle, []
            for d in waiting:
                d.callback(None)

    def close_all(self, reactor, timeout):
        """
        Close every connection, aborting those still open after *timeout*.

        :return: a Deferred firing when none is left.
        """
        if not self.protocols:
            return defer.succeed(None)
        done = defer.Deferred()
        self._when_idle.append(done)
        for p in list(self.protocols):
            p.transport.loseConnection()
        abort = reactor.callLater(timeout, self._abort_all)
        return done.addBoth(_cancel_call, abort)

    def _abort_all(self):
        for p in list(self.protocols):
            p.transport.abortConnection()


def _cancel_call(result, call):
    if call.active():
        call.cancel()
    return result
