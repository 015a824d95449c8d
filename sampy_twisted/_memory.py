# -*- test-case-name: tests.test_memory -*-
"""
An in-memory network for unit tests: a reactor whose TCP connections never
leave the process, so a real hub and real clients (with their real HTTP and
XML-RPC code) talk to each other deterministically, under a fake clock.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IConnector, IListeningPort
from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer

if TYPE_CHECKING:
    from ._hub import SAMPHubServer

__all__ = ["MemoryNetwork", "start_memory_hub"]


@implementer(IListeningPort)
class _Port:
    def __init__(self, network: MemoryNetwork, port: int, factory: ServerFactory, interface: str) -> None:
        self._network = network
        self._address = IPv4Address("TCP", interface or "0.0.0.0", port)
        self.factory = factory

    def startListening(self) -> None:
        pass

    def stopListening(self) -> defer.Deferred[None]:
        self._network._stop_listening(self._address.port, self.factory)
        return defer.succeed(None)

    loseConnection = stopListening

    def getHost(self) -> IPv4Address:
        return self._address


@implementer(IConnector)
class _Connector:
    def __init__(self, factory: ClientFactory, destination: IPv4Address) -> None:
        self.factory = factory
        self._destination = destination

    def connect(self) -> None:
        pass

    def disconnect(self) -> None:
        pass

    def stopConnecting(self) -> None:
        pass

    def getDestination(self) -> IPv4Address:
        return self._destination


class MemoryNetwork(MemoryReactorClock):
    """
    A reactor (with a :class:`~twisted.internet.task.Clock`) on which
    ``listenTCP`` and ``connectTCP`` are joined in memory.

    Give it as ``reactor=`` to :class:`SAMPIntegratedClient` and to our hub,
    then drive it: :meth:`run` moves bytes and zero-delay calls until
    nothing more happens, :meth:`advance` moves time and then runs.  Only
    TCP on IPv4 is joined; TLS is not.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._listening: dict[int, ServerFactory] = {}
        self._pumps: list[iosim.IOPump] = []
        self._ports: Iterator[int] = itertools.count(20000)
        self._client_ports: Iterator[int] = itertools.count(50000)

    def listenTCP(
        self, port: int, factory: ServerFactory, backlog: int = 50, interface: str = ""
    ) -> _Port:
        """Listen in memory; port 0 picks a free one."""
        if port == 0:
            port = next(p for p in self._ports if p not in self._listening)
        if port in self._listening:
            raise error.CannotListenError(interface, port, OSError("address in use"))
        self._listening[port] = factory
        factory.doStart()
        return _Port(self, port, factory, interface)

    def _stop_listening(self, port: int, factory: ServerFactory) -> None:
        if self._listening.get(port) is factory:
            del self._listening[port]
            factory.doStop()

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: ClientFactory,
        timeout: float = 30,
        bindAddress: tuple[str, int] | None = None,
    ) -> _Connector:
        """Connect in memory to a listening factory, or be refused."""
        destination = IPv4Address("TCP", host, port)
        connector = _Connector(factory, destination)
        server_factory = self._listening.get(port)
        if server_factory is None:
            reason = Failure(error.ConnectionRefusedError(f"nothing listens on {host}:{port}"))
            self.callLater(0, factory.clientConnectionFailed, connector, reason)
            return connector
        source = IPv4Address("TCP", "127.0.0.1", next(self._client_ports))
        server = server_factory.buildProtocol(source)
        client = factory.buildProtocol(destination)
        server_transport = iosim.FakeTransport(server, True, destination, source)
        client_transport = iosim.FakeTransport(client, False, source, destination)
        self._pumps.append(iosim.connect(server, server_transport, client, client_transport, greet=False, clock=self))
        return connector

    def addSystemEventTrigger(  # type: ignore[override]
        self, phase: str, eventType: str, callable: Callable[..., Any], *args: Any, **kw: Any
    ) -> tuple[str, str, tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
        """Keep a trigger, as ``MemoryReactor`` does, and return an id that
        :meth:`removeSystemEventTrigger` takes."""
        entry = (callable, args, kw)
        self.triggers.setdefault(phase, {}).setdefault(eventType, []).append(entry)
        return (phase, eventType, entry)

    def removeSystemEventTrigger(self, triggerID: Any) -> None:
        """Forget a trigger added by :meth:`addSystemEventTrigger`."""
        phase, event_type, entry = triggerID
        entries = self.triggers.get(phase, {}).get(event_type, [])
        for index, kept in enumerate(entries):
            if kept is entry:
                del entries[index]
                return
        raise ValueError(f"no such trigger: {triggerID!r}")

    def fireSystemEvent(self, eventType: str) -> "defer.Deferred[None]":
        """
        Run *eventType*'s triggers as a reactor does: the ``before`` ones,
        then, once the Deferreds they returned have fired, the ``during``
        and ``after`` ones.  Drive the network (:meth:`run`,
        :meth:`advance`) to let them finish.

        :return: a Deferred firing when every phase has run.
        """

        def run_phase(phase: str) -> "defer.Deferred[Any]":
            entries = self.triggers.setdefault(phase, {}).pop(eventType, [])
            results = [defer.maybeDeferred(f, *args, **kw) for f, args, kw in entries]
            return defer.DeferredList(results, consumeErrors=True)

        d = run_phase("before")
        d.addCallback(lambda _: run_phase("during"))
        d.addCallback(lambda _: run_phase("after"))
        return d.addCallback(lambda _: None)

    def run(self, limit: int = 10_000) -> None:
        """
        Deliver bytes and run due calls until the network is quiet.

        :param int limit: give up (with :class:`RuntimeError`) after this
            many rounds, so a chatty loop fails a test instead of hanging it.
        """
        for _ in range(limit):
            self.advance(0)
            moved = False
            for pump in list(self._pumps):
                moved = pump.pump() or moved
                if pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self._pumps.remove(pump)
            if not moved and not any(c.getTime() <= self.seconds() for c in self.getDelayedCalls()):
                return
        raise RuntimeError(f"the memory network was still busy after {limit} rounds")

    def advance(self, amount: float, limit: int = 10_000) -> None:
        """
        Move the clock by *amount* seconds, running what falls due.

        Bytes travel in no time: the network is made quiet before the clock
        moves, and again at each due call on the way, so a timer never
        fires over bytes that a real network would already have delivered.

        :param int limit: give up (with :class:`RuntimeError`) after this
            many due times, so a busy timer loop fails a test instead of
            hanging it.
        """
        if not amount:
            super().advance(0)
            return
        target = self.seconds() + amount
        self.run()
        for _ in range(limit):
            due = [call.getTime() for call in self.getDelayedCalls()]
            step_to = min([t for t in due if t <= target], default=target)
            super().advance(max(0.0, step_to - self.seconds()))
            self.run()
            if step_to >= target:
                return
        raise RuntimeError(f"timers were still due after {limit} steps")


def start_memory_hub(network: MemoryNetwork, directory: str, **kwargs: Any) -> SAMPHubServer:
    """
    Start our hub on a :class:`MemoryNetwork`.

    :param MemoryNetwork network: the network (and reactor) to use.
    :param str directory: a directory for the hub's lockfile (``.samp``).
    :param kwargs: more :class:`SAMPHubServer` arguments.
    :return: the running hub; give it to ``connect(hub=...)``.
    :raises RuntimeError: the hub did not start.
    """
    from ._hub import SAMPHubServer

    os.makedirs(directory, exist_ok=True)
    hub = SAMPHubServer(reactor=network, lockfile=os.path.join(directory, ".samp"), **kwargs)
    started = hub.start()
    network.run()
    failures: list[Failure] = []
    started.addErrback(failures.append)
    if failures:
        failures[0].raiseException()
    if not hub.is_running:
        raise RuntimeError("the hub did not start on the memory network")
    return hub
