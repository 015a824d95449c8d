# -*- test-case-name: tests.test_tracker -*-
"""
A live view of the other clients registered with the hub, kept current from
the hub's ``samp.hub.event.*`` notifications, as JSAMP's ClientTracker does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._errors import SAMPClientError, SAMPProxyError
from ._mtype import best_match

if TYPE_CHECKING:
    from ._client import SAMPClient
    from ._hub_proxy import SAMPHubProxy

#: An observer of a :class:`ClientTracker`: ``f(event, client_id)``.
TrackerObserver = Callable[[str, str], object]

EVENTS = (
    "samp.hub.event.register",
    "samp.hub.event.unregister",
    "samp.hub.event.metadata",
    "samp.hub.event.subscriptions",
)

_GONE_KEPT = 1024


class TrackedClient:
    """
    What is known of one other client.

    :ivar str id: its public id.
    :ivar dict metadata: its declared metadata.
    :ivar dict subscriptions: its declared subscriptions.
    """

    def __init__(
        self,
        client_id: str,
        metadata: dict[str, Any] | None = None,
        subscriptions: dict[str, Any] | None = None,
    ) -> None:
        self.id = client_id
        self.metadata = metadata or {}
        self.subscriptions = subscriptions or {}

    @property
    def name(self) -> str | None:
        """Its ``samp.name``, or ``None``."""
        name = self.metadata.get("samp.name")
        return name if isinstance(name, str) else None

    def is_subscribed(self, mtype: str) -> bool:
        """Whether one of its subscriptions covers *mtype*."""
        return best_match(self.subscriptions, mtype) is not None

    def __repr__(self) -> str:
        return f"<TrackedClient {self.id} {self.name!r}>"


class ClientTracker(Mapping[str, TrackedClient]):
    """
    A read-only mapping of client id → :class:`TrackedClient` for every
    client registered with the hub except this one (the hub's own client
    included).

    :param client: the :class:`SAMPClient` whose hub events feed it.
    """

    _log = Logger()

    def __init__(self, client: SAMPClient) -> None:
        self._client = client
        self._clients: dict[str, TrackedClient] = {}
        # During populate(): client id -> what hub events changed.
        self._touched: dict[str, set[str]] | None = None
        # Ids recently unregistered: a late metadata or subscriptions event
        # (events travel on separate connections) must not bring one back.
        # Hubs never reuse public ids; only the newest are kept.
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._observers: list[TrackerObserver] = []
        client._bind_system("samp.hub.event.register", self._on_register)
        client._bind_system("samp.hub.event.unregister", self._on_unregister)
        client._bind_system("samp.hub.event.metadata", self._on_metadata)
        client._bind_system("samp.hub.event.subscriptions", self._on_subscriptions)

    def __getitem__(self, client_id: str) -> TrackedClient:
        return self._clients[client_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._clients)

    def __len__(self) -> int:
        return len(self._clients)

    def find_by_name(self, name: str) -> list[str]:
        """
        The ids of the clients whose ``samp.name`` is *name*, ignoring case.

        :rtype: list of str
        """
        wanted = name.casefold()
        return sorted(
            cid for cid, c in self._clients.items() if c.name is not None and c.name.casefold() == wanted
        )

    def subscribed_to(self, mtype: str) -> list[str]:
        """
        The ids of the clients subscribed to *mtype*.

        :rtype: list of str
        """
        return sorted(cid for cid, c in self._clients.items() if c.is_subscribed(mtype))

    def add_observer(self, function: TrackerObserver) -> None:
        """
        Call ``function(event, client_id)`` after each change; *event* is
        ``"register"``, ``"unregister"``, ``"metadata"`` or
        ``"subscriptions"``.
        """
        self._observers.append(function)

    def remove_observer(self, function: TrackerObserver) -> None:
        """Stop calling *function*."""
        self._observers.remove(function)

    def populate(self) -> defer.Deferred[ClientTracker]:
        """
        Fill the map by asking the hub about every registered client.
        Changes announced by hub events while this runs take precedence.

        :return: a Deferred firing with this tracker, or failing with
            :class:`SAMPClientError` when the client is not registered.
        """
        hub, key = self._client.hub, self._client.get_private_key()
        if key is None:
            return defer.fail(SAMPClientError("cannot list the clients: not registered with a hub"))
        self._clients.clear()
        self._touched = {}
        d = hub.get_registered_clients(key)
        fetched = d.addCallback(
            lambda ids: defer.gatherResults([self._fetch(hub, key, cid) for cid in ids], consumeErrors=True)
        )

        def done(result: object) -> object:
            self._touched = None
            return result

        return fetched.addBoth(done).addCallback(lambda _: self)

    def _fetch(self, hub: SAMPHubProxy, key: str, client_id: str) -> defer.Deferred[None]:
        d = defer.gatherResults(
            [hub.get_metadata(key, client_id), hub.get_subscriptions(key, client_id)], consumeErrors=True
        )

        def got(results: list[dict[str, Any]]) -> None:
            touched = (self._touched or {}).get(client_id, set())
            if "unregister" in touched:
                return
            entry = self._entry(client_id)
            metadata, subscriptions = results
            if "metadata" not in touched:
                entry.metadata = metadata
            if "subscriptions" not in touched:
                entry.subscriptions = subscriptions

        def gone(failure: Failure) -> None:
            if failure.check(SAMPProxyError):
                # The hub no longer knows it: it unregistered between the
                # listing and the question.
                self._log.debug("Client {id} vanished while tracking: {why}", id=client_id, why=failure.getErrorMessage())
            else:
                self._log.warn("Cannot track client {id}: {why}", id=client_id, why=failure.getErrorMessage())

        return d.addCallbacks(got, gone)

    def clear(self) -> None:
        """Forget every client (when the registration ends)."""
        self._clients.clear()
        self._gone.clear()

    def _accept(self, event: str, sender_id: str, params: dict[str, Any]) -> str | None:
        client_id = params.get("id")
        if sender_id != self._client.get_hub_id() or not isinstance(client_id, str):
            return None
        if client_id == self._client.get_public_id():
            return None
        if self._touched is not None:
            self._touched.setdefault(client_id, set()).add(event)
        return client_id

    def _entry(self, client_id: str) -> TrackedClient:
        entry = self._clients.get(client_id)
        if entry is None:
            entry = self._clients[client_id] = TrackedClient(client_id)
        return entry

    def _notify(self, event: str, client_id: str) -> None:
        for observer in list(self._observers):
            try:
                observer(event, client_id)
            except Exception:
                self._log.failure("Client tracker observer failed")

    def _on_register(self, sender_id: str, params: dict[str, Any]) -> None:
        client_id = self._accept("register", sender_id, params)
        if client_id is not None:
            self._entry(client_id)
            self._notify("register", client_id)

    def _on_unregister(self, sender_id: str, params: dict[str, Any]) -> None:
        client_id = self._accept("unregister", sender_id, params)
        if client_id is not None:
            self._clients.pop(client_id, None)
            self._gone[client_id] = None
            if len(self._gone) > _GONE_KEPT:
                self._gone.popitem(last=False)
            self._notify("unregister", client_id)

    def _on_metadata(self, sender_id: str, params: dict[str, Any]) -> None:
        client_id = self._accept("metadata", sender_id, params)
        if client_id is not None and client_id not in self._gone and isinstance(params.get("metadata"), dict):
            self._entry(client_id).metadata = params["metadata"]
            self._notify("metadata", client_id)

    def _on_subscriptions(self, sender_id: str, params: dict[str, Any]) -> None:
        client_id = self._accept("subscriptions", sender_id, params)
        if client_id is not None and client_id not in self._gone and isinstance(params.get("subscriptions"), dict):
            self._entry(client_id).subscriptions = params["subscriptions"]
            self._notify("subscriptions", client_id)
