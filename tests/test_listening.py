# -*- test-case-name: tests.test_listening -*-
"""
Tests for :mod:`sampy_twisted._listening` and :mod:`sampy_twisted._reactor`.
"""

from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.trial import unittest

from sampy_twisted._listening import listening_url, server_endpoint
from sampy_twisted._reactor import default_reactor


class ListeningURLTests(unittest.SynchronousTestCase):
    """listening_url names a place peers can connect to."""

    def test_loopback(self):
        """A loopback address is used as it is."""
        self.assertEqual(listening_url(IPv4Address("TCP", "127.0.0.1", 8001)), "http://127.0.0.1:8001/")

    def test_wildcards(self):
        """Wildcard addresses become loopback."""
        self.assertEqual(listening_url(IPv4Address("TCP", "0.0.0.0", 1), "https"), "https://127.0.0.1:1/")
        self.assertEqual(listening_url(IPv6Address("TCP", "::", 2), path="/x"), "http://[::1]:2/x")

    def test_ipv6_bracketed(self):
        """IPv6 hosts are bracketed."""
        self.assertEqual(listening_url(IPv6Address("TCP", "::1", 3)), "http://[::1]:3/")

    def test_not_tcp(self):
        """A non-TCP address is a ValueError."""
        self.assertRaises(ValueError, listening_url, UNIXAddress(b"/tmp/x"))


class ServerEndpointTests(unittest.SynchronousTestCase):
    """server_endpoint picks the endpoint for the address."""

    def test_kinds(self):
        """IPv4, IPv6 and TLS endpoints, with the given interface and backlog."""
        clock = task.Clock()
        endpoint = server_endpoint(clock, "127.0.0.1", 0, backlog=7)
        self.assertIsInstance(endpoint, TCP4ServerEndpoint)
        self.assertEqual((endpoint._interface, endpoint._backlog), ("127.0.0.1", 7))
        self.assertIsInstance(server_endpoint(clock, "::1", 0), TCP6ServerEndpoint)
        self.assertIsInstance(server_endpoint(clock, "127.0.0.1", 0, tls_options=object()), SSL4ServerEndpoint)


class DefaultReactorTests(unittest.SynchronousTestCase):
    """default_reactor falls back to the global reactor only for None."""

    def test_given(self):
        """A given reactor is returned."""
        clock = task.Clock()
        self.assertIs(default_reactor(clock), clock)

    def test_none(self):
        """None gives the global reactor."""
        from twisted.internet import reactor

        self.assertIs(default_reactor(None), reactor)
