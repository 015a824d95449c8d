# -*- test-case-name: tests.test_hub_limits -*-
"""
Which callback URLs a hub accepts at ``samp.hub.setXmlrpcCallback``.

A client holding the secret could otherwise make the hub send requests to
any host.  By default (``"local"``) a callback URL must name this machine:
a loopback address (``127.0.0.0/8``, ``::1``), another address of one of
its own interfaces, or a host name all of whose addresses are such.  That
covers the URLs real applications give: ``http://127.0.0.1:port/``,
``http://localhost:port/``, and DS9's ``http://HOSTNAME:port/``, which
resolves to ``127.0.1.1`` on Debian and to the machine's network address
elsewhere.  ``"any"`` accepts every host (a hub deliberately serving other
hosts); a list of host names, addresses and networks (``"10.0.0.0/8"``)
accepts those besides this machine's.

Names are resolved by the reactor's resolver (in its thread pool, never
blocking the reactor), and *every* address a name resolves to must pass.
Whether an address belongs to this machine is found by binding a UDP socket
to it: the system allows that only for its own addresses, and nothing is
sent.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from typing import Any, Union

from twisted.internet import defer
from twisted.internet.interfaces import IHostResolution, IResolutionReceiver
from zope.interface import implementer

__all__ = ["CallbackHostPolicy", "CallbackURLRefused", "DEFAULT_CALLBACK_HOSTS", "callback_hosts_option"]

DEFAULT_CALLBACK_HOSTS = "local"
"""The default policy: callback URLs must name this machine."""

RESOLVE_TIMEOUT = 10.0
"""Seconds a callback URL's host name may take to resolve."""

CallbackHosts = Union[str, Sequence[str]]
_Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class CallbackURLRefused(Exception):
    """A callback URL the policy refuses; the text says why."""


class CallbackHostPolicy:
    """
    The rule for the hosts of callback URLs.

    :param hosts: ``"local"`` (this machine's addresses only), ``"any"``,
        or a list of host names, IP addresses and networks accepted besides
        this machine's (a string of them separated by commas will do).
    :param reactor: the reactor whose ``nameResolver`` resolves host names.
    :raises ValueError: *hosts* is not one of these.
    """

    def __init__(self, hosts: CallbackHosts, reactor: Any) -> None:
        self._reactor = reactor
        self.any = hosts == "any"
        if isinstance(hosts, str):
            hosts = [] if hosts in ("local", "any") else hosts.split(",")
        self._names: set[str] = set()
        self._networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in (h.strip() for h in hosts):
            if not entry:
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if any(c in entry for c in "/:@ "):
                    raise ValueError(
                        f"callback host {entry!r} is not a host name, an address or a network"
                    ) from None
                self._names.add(entry.lower().rstrip("."))

    def describe(self) -> str:
        """The rule in words, for fault texts."""
        if self.any:
            return "any host"
        extra = sorted(self._names) + [str(n) for n in self._networks]
        local = "this machine's own addresses (loopback or its interfaces)"
        return local if not extra else f"{local} or {', '.join(extra)}"

    def check(self, url: str, host: str) -> defer.Deferred[None]:
        """
        Check the host of callback URL *url*.

        :param host: the URL's host name or address (brackets removed).
        :return: a Deferred firing with ``None`` if the host is accepted,
            or failing with :class:`CallbackURLRefused`.
        """
        if self.any or host.lower().rstrip(".") in self._names:
            return defer.succeed(None)
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            pass
        else:
            return self._verdict(url, host, [address])
        resolved = self._resolve(host)
        verdict: defer.Deferred[None] = resolved.addCallback(lambda addresses: self._verdict(url, host, addresses))
        return verdict

    def _verdict(self, url: str, host: str, addresses: Sequence[_Address]) -> defer.Deferred[None]:
        if not addresses:
            return defer.fail(CallbackURLRefused(f"callback URL {url!r} refused: {host!r} has no address"))
        for address in addresses:
            if not (self._listed(address) or is_local_address(address)):
                where = "" if str(address) == host else f" ({host} is {address})"
                return defer.fail(
                    CallbackURLRefused(
                        f"callback URL {url!r} refused: {address}{where} is not an address this "
                        f"hub calls back; it accepts {self.describe()} (the hub option "
                        f"callback_hosts)"
                    )
                )
        return defer.succeed(None)

    def _listed(self, address: _Address) -> bool:
        return any(address in network for network in self._networks)

    def _resolve(self, host: str) -> defer.Deferred[list[_Address]]:
        receiver = _Addresses()
        resolver = getattr(self._reactor, "nameResolver", None)
        if resolver is None:  # a test reactor without one
            return defer.fail(CallbackURLRefused(f"callback URL host {host!r} cannot be resolved here"))
        resolver.resolveHostName(receiver, host, 0)
        d = receiver.done
        d.addTimeout(RESOLVE_TIMEOUT, self._reactor)

        def failed(failure: Any) -> None:
            raise CallbackURLRefused(
                f"callback URL host {host!r} could not be resolved: {failure.getErrorMessage()}"
            )

        d.addErrback(failed)
        return d


@implementer(IResolutionReceiver)
class _Addresses:
    """Collects every address a name resolves to."""

    def __init__(self) -> None:
        self.addresses: list[_Address] = []
        self.done: defer.Deferred[list[_Address]] = defer.Deferred()

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        try:
            self.addresses.append(ipaddress.ip_address(address.host.split("%", 1)[0]))
        except (AttributeError, ValueError):
            pass

    def resolutionComplete(self) -> None:
        if not self.done.called:
            self.done.callback(self.addresses)


def is_local_address(address: _Address) -> bool:
    """
    Whether *address* is loopback or belongs to one of this machine's
    interfaces.  Binding a socket to it is instant, sends nothing, and
    succeeds only for the machine's own addresses.
    """
    if address.is_loopback:
        return True
    if address.is_unspecified or address.is_multicast:
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    if address.version == 6 and address.is_link_local:
        return False  # needs a scope to test; callback URLs do not use these
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    except OSError:
        return False
    return True


def callback_hosts_option(value: str) -> CallbackHosts:
    """A ``--callback-hosts`` value: ``local``, ``any`` or a list by commas."""
    value = value.strip()
    if value in ("local", "any"):
        return value
    hosts: list[str] = [h.strip() for h in value.split(",") if h.strip()]
    CallbackHostPolicy(hosts, None)  # raises ValueError for a bad entry
    return hosts
