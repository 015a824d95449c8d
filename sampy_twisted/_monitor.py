# -*- test-case-name: tests.test_monitor -*-
"""
What the hub monitor knows: a bounded log of messages and their fate, and
the current clients, kept from the events of a :class:`~._hubcore.HubCore`.

:class:`HubMonitor` is an :class:`~._hubcore.IHubObserver`.  Recording a
message costs little: a small record with its parameters collapsed (long
strings cut, long lists and maps shortened, deep nesting elided) goes into
an ordered dict bounded by count and by an estimate of its bytes.  Nothing
is turned into JSON and no listener is called unless a page is watching
(:meth:`HubMonitor.listen`).

Private keys, ``samp.secret`` and msg-ids (unguessable, and only ever
useful to the parties) are never recorded: records name clients by public
id and calls by a sequence number.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ._hubcore import HUB_ID, HubCore, IHubObserver, _Client
from ._verbatim import VerbatimStrings

__all__ = ["HubMonitor"]

#: Characters kept of a string value, items of a list or map, levels of nesting.
_TEXT_CUT = 200
_ITEMS_CUT = 20
_DEPTH_CUT = 3
_RECORD_OVERHEAD = 200  # bytes an empty record takes, roughly
_HIDDEN_KEYS = ("secret", "private-key", "private_key")

Listener = Callable[[str, dict[str, Any]], None]


def collapse(value: Any, depth: int = 0) -> tuple[Any, int]:
    """
    *value* made small for display, and an estimate of its size in bytes.

    :return: ``(collapsed, size)``: strings cut to ``_TEXT_CUT`` characters
        (with "…"), lists and maps to ``_ITEMS_CUT`` items (with a note of
        how many more), nesting beyond ``_DEPTH_CUT`` replaced by "…".
    """
    if isinstance(value, str):
        if len(value) > _TEXT_CUT:
            return f"{value[:_TEXT_CUT]}… ({len(value)} characters)", _TEXT_CUT + 24
        return value, len(value) + 8
    if depth >= _DEPTH_CUT:
        return "…", 8
    size = 16
    if isinstance(value, dict):
        result: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i == _ITEMS_CUT:
                result["…"] = f"{len(value) - _ITEMS_CUT} more"
                break
            result[key], item_size = collapse(item, depth + 1)
            size += item_size + len(key)
        return result, size
    if isinstance(value, (list, VerbatimStrings)):
        items: list[Any] = []
        for item in value[:_ITEMS_CUT]:
            collapsed, item_size = collapse(item, depth + 1)
            items.append(collapsed)
            size += item_size
        if len(value) > _ITEMS_CUT:
            items.append(f"… {len(value) - _ITEMS_CUT} more")
        return items, size
    return repr(value), 16


def public_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Metadata to show: collapsed, and without any key naming a secret."""
    shown = {k: v for k, v in metadata.items() if not any(h in k.lower() for h in _HIDDEN_KEYS)}
    result: dict[str, Any] = collapse(shown)[0]
    return result


class _Record:
    """One message in the log: who sent it, to whom, and what became of it."""

    __slots__ = (
        "seq", "time", "sender", "recipients", "mtype", "kind", "params",
        "size", "status", "result", "closed", "rtt", "msg_id",
    )

    def __init__(self, seq: int, time: float, sender: str, recipients: list[str], mtype: str, kind: str) -> None:
        self.seq = seq
        self.time = time
        self.sender = sender
        self.recipients = recipients
        self.mtype = mtype
        self.kind = kind  # "notification", "call", "event" (the hub's), "left"
        self.params: Any = None
        self.size = _RECORD_OVERHEAD
        self.status: str | None = None  # for calls: "pending", samp.status, or "closed"
        self.result: Any = None  # a call's result, or its error text
        self.closed: str | None = None  # why a call ended, as the hub says
        self.rtt: float | None = None
        self.msg_id: str | None = None  # kept private: never in as_dict

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "seq": self.seq,
            "time": self.time,
            "sender": self.sender,
            "recipients": self.recipients,
            "mtype": self.mtype,
            "kind": self.kind,
            "params": self.params,
            "status": self.status,
            "result": self.result,
            "closed": self.closed,
            "rtt": self.rtt,
        }


@implementer(IHubObserver)
class HubMonitor:
    """
    The monitor's model of a hub: clients, a bounded message log, facts.

    :param HubCore core: the hub's core (read for the current clients).
    :param clock: an ``IReactorTime`` giving the time of each event.
    :param facts: a function returning the hub's facts (lockfile, URL,
        profiles, TLS, deliveries in flight...) as JSON-ready data.
    :param int max_messages: messages kept in the log.
    :param int max_bytes: the log's size bound, estimated in bytes.
    """

    _log = Logger()

    def __init__(
        self,
        core: HubCore,
        clock: IReactorTime,
        facts: Callable[[], dict[str, Any]] | None = None,
        max_messages: int = 2000,
        max_bytes: int = 4_000_000,
    ) -> None:
        self._core = core
        self._clock = clock
        self._facts = facts
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        self._records: collections.OrderedDict[int, _Record] = collections.OrderedDict()
        self._calls: dict[str, _Record] = {}  # msg-id to its record, while kept
        self._seq = 0
        self._bytes = 0
        self.messages_total = 0
        self.started = clock.seconds()
        self._listeners: list[Listener] = []
        self._closing: tuple[str, _Record | None] = ("", None)
        core.add_observer(self)

    # -- pages -------------------------------------------------------------

    def listen(self, listener: Listener) -> Callable[[], None]:
        """
        Call *listener* with ``(kind, data)`` for each event from now on:
        ``message`` and ``update`` (a record), ``client`` (a client),
        ``left`` (``{"id", "why"}``).  It must return at once.

        :return: a function that stops the calls.
        """
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:
                self._log.failure("A hub monitor page failed")

    # -- what a page shows -------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a new page needs: facts, clients, the message log."""
        return {
            "facts": self.facts(),
            "clients": self.clients(),
            "messages": [record.as_dict() for record in self._records.values()],
        }

    def facts(self) -> dict[str, Any]:
        """The hub's facts and counters."""
        facts = dict(self._facts()) if self._facts is not None else {}
        now = self._clock.seconds()
        facts.update(
            {
                "now": now,
                "uptime": now - self.started,
                "messages": self.messages_total,
                "calls_pending": self._core.pending_count,
                "kept": len(self._records),
                "kept_bytes": self._bytes,
                "max_messages": self._max_messages,
            }
        )
        return facts

    def clients(self) -> list[dict[str, Any]]:
        """The hub and every registered client, as :meth:`describe` gives them."""
        hub = self._core.hub_client
        return [self.describe(c) for c in (hub, *self._core.clients.values())]

    @staticmethod
    def describe(client: _Client) -> dict[str, Any]:
        """A client as a page shows it; never its private key."""
        metadata = client.metadata
        channel = client.channel
        return {
            "id": client.client_id,
            "name": metadata.get("samp.name"),
            "icon": metadata.get("samp.icon.url"),
            "description": metadata.get("samp.description.text"),
            "doc": metadata.get("samp.documentation.url"),
            "metadata": public_metadata(metadata),
            # Every subscription (they are what routing needs), annotations collapsed.
            "subscriptions": {k: collapse(v)[0] for k, v in client.subscriptions.items()},
            "callable": client.callable,
            "profile": "hub" if client.is_hub else getattr(channel, "profile_name", "Standard"),
        }

    def receivers(self, mtype: str) -> list[dict[str, Any]]:
        """Who would receive *mtype* (from anyone), with their annotations."""
        clients = (self._core.hub_client, *self._core.clients.values())
        return [
            {"id": c.client_id, "name": c.metadata.get("samp.name"), "callable": c.callable,
             "annotation": collapse(c.annotation_for(mtype))[0]}
            for c in clients
            if c.annotation_for(mtype) is not None
        ]

    # -- IHubObserver ------------------------------------------------------

    def client_changed(self, client: _Client, what: str) -> None:
        """A client registered or declared metadata or subscriptions."""
        if self._listeners:
            self._emit("client", self.describe(client))

    def client_left(self, client: _Client, why: str) -> None:
        """A client left: a line in the log, and off the page's list."""
        kind = "dropped" if "disconnected" in why else "left"
        record = self._add(HUB_ID if kind == "dropped" else client.client_id, [client.client_id], kind, kind)
        record.result = f"{client.client_id} {why}"
        if self._listeners:
            self._emit("left", {"id": client.client_id, "why": why})
            self._emit("message", record.as_dict())

    def message_sent(
        self, sender: _Client, recipients: list[_Client], message: dict[str, Any], msg_id: str | None
    ) -> None:
        """A notification or a call was accepted: log it."""
        self.messages_total += 1
        if msg_id is not None:
            kind = "call"
        elif sender.is_hub:
            kind = "event"
        else:
            kind = "notification"
        record = self._add(sender.client_id, [r.client_id for r in recipients], message["samp.mtype"], kind)
        params = message.get("samp.params")
        if params:
            record.params, size = collapse(params)
            record.size += size
            self._bytes += size
        if msg_id is not None:
            record.status = "pending"
            record.msg_id = msg_id
            self._calls[msg_id] = record
        self._trim()
        if self._listeners:
            self._emit("message", record.as_dict())

    def call_closed(self, msg_id: str, why: str) -> None:
        """A call awaits no reply any more."""
        record = self._calls.pop(msg_id, None)
        # The core gives the response, if any, right after closing the call.
        self._closing = (msg_id, record)
        if record is None:
            return
        record.closed = why
        record.rtt = self._clock.seconds() - record.time
        if record.status == "pending":
            record.status = "closed"
        if self._listeners:
            self._emit("update", record.as_dict())

    def call_answered(self, msg_id: str, response: dict[str, Any]) -> None:
        """A call's sender was given *response*."""
        closing_id, record = self._closing
        self._closing = ("", None)
        if record is None or closing_id != msg_id:
            return
        status = response.get("samp.status")
        record.status = status if isinstance(status, str) else "?"
        error = response.get("samp.error")
        if isinstance(error, dict) and error.get("samp.errortxt") is not None:
            record.result, size = collapse(error.get("samp.errortxt"))
        else:
            record.result, size = collapse(response.get("samp.result"))
        record.size += size
        self._bytes += size
        if self._listeners:
            self._emit("update", record.as_dict())

    # -- the bounded log ---------------------------------------------------

    def _add(self, sender: str, recipients: list[str], mtype: str, kind: str) -> _Record:
        self._seq += 1
        record = _Record(self._seq, self._clock.seconds(), sender, recipients, mtype, kind)
        record.size += 16 * len(recipients)
        self._records[record.seq] = record
        self._bytes += record.size
        return record

    def _trim(self) -> None:
        records = self._records
        while len(records) > self._max_messages or (self._bytes > self._max_bytes and len(records) > 1):
            _, oldest = records.popitem(last=False)
            self._bytes -= oldest.size
            if oldest.msg_id is not None:
                self._calls.pop(oldest.msg_id, None)  # its answer has nowhere to go now
