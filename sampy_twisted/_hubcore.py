# -*- test-case-name: tests.test_hub_core -*-
"""
The state and rules of a SAMP hub, without any I/O.

:class:`HubCore` keeps the registry of clients (ids, private keys,
metadata, subscriptions), routes messages by MType with wildcards, issues
msg-ids, keeps the table of calls awaiting a reply with their timeouts,
broadcasts the ``samp.hub.event.*`` notifications and answers the calls
addressed to the hub itself.  It implements the rules and faults of the
sixteen hub operations, driven by plain method calls with decoded values: a
profile (the Standard Profile in :mod:`._stdprofile`) authenticates the
caller and hands the arguments over.

The core never touches a socket.  Each registered client has a *channel*
(:class:`IChannel`), made by the *delivery* (:class:`IDelivery`) the
profile registered it with, and every callback -- ``receiveNotification``,
``receiveCall``, ``receiveResponse`` -- goes through it.  A channel reports
back through two narrow paths: the ``on_error`` function of each call it
could not deliver, and the ``on_drop`` function it was opened with, for a
client that can no longer be reached.  Time comes from an injected clock
(``IReactorTime``).

Errors the caller should see are raised as :class:`xmlrpc.client.Fault`
(code 1, as JSAMP): every SAMP profile answers them as XML-RPC faults, so a
profile passes them on unchanged.

**Order.**  Each operation is answered first; the deliveries it causes are
queued in an outbox that one ``callLater(0)`` empties in a later turn, so a
sender has its msg-id before the reply can come, and a call settled meanwhile
(its sender left) is not delivered at all.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import itertools
import secrets
import xmlrpc.client
from collections.abc import Callable
from typing import Any, Optional

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface

from ._codec import CachedMap
from ._encoding import SAMPValue, check_samp_value, error_response, legal_text, ok_response, timeout_seconds
from ._limits import DEFAULT_MAX_QUEUED_BYTES, message_size
from ._mtype import best_match, is_mtype, is_mtype_pattern
from ._verbatim import VerbatimStrings

__all__ = ["HUB_ID", "MAX_UNANSWERED_CALLS", "HubCore", "IChannel", "IDelivery", "IHubObserver"]

HUB_ID = "hub"
"""The public id of the hub's own client (``samp.hub-id``)."""

#: Unanswered calls one client may have; beyond, the oldest gets samp.error.
MAX_UNANSWERED_CALLS = 10_000

_QUERY_BY_META: tuple[str, ...] = ("x-samp.query.by-meta", "samp.query.by-meta")
_HUB_SUBSCRIPTIONS: dict[str, dict[str, SAMPValue]] = {"samp.app.ping": {}, "x-samp.query.by-meta": {}, "samp.query.by-meta": {}}
_FORGOTTEN_IDS_KEPT = 10_000
_ERROR_TEXT_LIMIT = 4096  # characters of a samp.errortxt the hub composes


class IDelivery(Interface):
    """
    A way of delivering callbacks to clients (push over XML-RPC, or pull).
    A profile registers each client with the delivery it uses.
    """

    def open_channel(client: _Client, on_drop: Callable[[str], None]) -> IChannel:
        """
        Open the channel to a newly registered client.

        :param client: the core's record of the client: its ``client_id``
            and ``private_key`` are what a callback needs.
        :param on_drop: a function of one argument, the reason, to call
            when the client cannot be reached any more; the core then
            forgets the client and closes the channel (through
            ``disconnect`` if the client subscribed to
            ``samp.hub.disconnect``).
        :return: an :class:`IChannel`.
        """


class IChannel(Interface):
    """
    The way to one registered client's callbacks.  Every method returns at
    once; delivery happens later, and failures are reported through
    *on_error* (for a call) or the channel's *on_drop*.
    """

    callable = Attribute("Whether callbacks can reach the client now.")
    queued_bytes = Attribute(
        "Bytes (the *size* given with each) of the callbacks taken and not yet "
        "delivered or failed; the core refuses messages past its bound."
    )

    def notify(sender_id: str, message: dict[str, Any], size: int = 0) -> None:
        """
        Deliver ``receiveNotification(sender_id, message)``.

        :param size: the message's size (:func:`~._limits.message_size`),
            counted in :attr:`queued_bytes` until it is delivered or failed.
        """

    def call(
        sender_id: str, msg_id: str, message: dict[str, Any], on_error: Callable[[str], None], size: int = 0
    ) -> None:
        """
        Deliver ``receiveCall(sender_id, msg_id, message)``.

        :param on_error: called with a text if the call could not be
            delivered or was refused; the core answers the sender with it.
        :param size: as for :meth:`notify`.
        """

    def respond(responder_id: str, msg_tag: str | None, response: dict[str, Any], size: int = 0) -> None:
        """Deliver ``receiveResponse(responder_id, msg_tag, response)``; *size* as for :meth:`notify`."""

    def disconnect(message: dict[str, Any]) -> None:
        """
        Like :meth:`close`, but first try to deliver the hub's notification
        *message* (``samp.hub.disconnect``) alone, with a short timeout.
        """

    def send_final(message: dict[str, Any]) -> defer.Deferred[Any]:
        """
        Deliver the hub's notification *message* at once, bypassing the
        queue (``samp.hub.event.shutdown``).

        :return: a Deferred firing when it was taken or failed.
        """

    def close() -> None:
        """
        Stop delivering for good: drop what is queued, cancel what is in
        flight, release the connections.
        """


class IHubObserver(Interface):
    """
    Something told what happens on the hub, such as the monitor
    (:mod:`._monitor`).  Each method is called synchronously from the core
    and must return at once without raising; *client* arguments are the
    core's records, to be read and never kept beyond the call or changed.
    """

    def client_changed(client: _Client, what: str) -> None:
        """*client* registered (``register``), declared ``metadata`` or ``subscriptions``."""

    def client_left(client: _Client, why: str) -> None:
        """*client* is no longer registered, for the reason *why*."""

    def message_sent(sender: _Client, recipients: list[_Client], message: dict[str, Any], msg_id: str | None) -> None:
        """A notification (*msg_id* ``None``) or a call was accepted for delivery."""

    def call_closed(msg_id: str, why: str) -> None:
        """The call *msg_id* awaits no reply any more: answered, failed, timed out..."""

    def call_answered(msg_id: str, response: dict[str, Any]) -> None:
        """The call *msg_id* was given *response* (a reply, or the hub's error)."""


def _fault(text: str) -> xmlrpc.client.Fault:
    # SAMP gives fault codes no meaning; JSAMP always uses 1.
    return xmlrpc.client.Fault(1, text)


def key_bytes(text: str) -> bytes:
    """A key or secret as bytes for :func:`hmac.compare_digest`."""
    return text.encode("utf-8", "surrogatepass")


def _error_response(text: str) -> dict[str, Any]:
    # The text may carry a peer's fault or error message: cut it short.
    return error_response(legal_text(text, _ERROR_TEXT_LIMIT))


def checked(value: object, what: str) -> Any:
    """Check SAMP data strictly, turning a violation into a fault."""
    try:
        return check_samp_value(value, what)
    except (TypeError, ValueError) as exc:
        raise _fault(f"not SAMP data: {exc}") from None


def _check_map(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fault(f"{what} must be a map, not {kind(value)}")
    result: dict[str, Any] = checked(value, what)
    return result


def check_string(value: object, what: str) -> str:
    """*value*, if it is a string; else a fault naming *what*."""
    if not isinstance(value, str):
        raise _fault(f"{what} must be a string, not {kind(value)}")
    return value


def kind(value: object) -> str:
    """What *value* is, in SAMP's words, for fault texts."""
    names: dict[type, str] = {dict: "a map", list: "a list", VerbatimStrings: "a list", str: "a string"}
    return names.get(type(value), type(value).__name__)


class _Client:
    """
    A registered client as the hub sees it.

    :ivar channel: its :class:`IChannel` (``None`` for the hub itself).
    :ivar awaiting: msg-ids of calls this client has received and must answer.
    :ivar outstanding: msg-ids of calls this client made that await a reply.
    :ivar outbox_bytes: bytes of the messages to it in the core's outbox.
    """

    def __init__(self, client_id: str, private_key: str | None = None) -> None:
        self.client_id = client_id
        self.private_key = private_key
        self.key_bytes = b"" if private_key is None else key_bytes(private_key)
        self.metadata: dict[str, Any] = {}
        self.subscriptions: dict[str, Any] = {}
        self.channel: Any = None
        self.active = True
        self.awaiting: set[str] = set()
        self.outstanding: set[str] = set()
        self.outbox_bytes = 0
        self._matches: dict[str, Optional[str]] = {}

    @property
    def is_hub(self) -> bool:
        return self.private_key is None

    @property
    def callable(self) -> bool:
        return self.is_hub or bool(self.channel.callable)

    def set_subscriptions(self, subscriptions: dict[str, Any]) -> None:
        self.subscriptions = subscriptions
        self._matches = {}

    def annotation_for(self, mtype: str) -> Any:
        """The annotation of the most specific subscription to *mtype*, or None."""
        try:
            pattern = self._matches[mtype]
        except KeyError:
            if len(self._matches) > 1000:  # bound the cache, not the traffic
                self._matches = {}
            pattern = self._matches[mtype] = best_match(self.subscriptions, mtype)
        return None if pattern is None else self.subscriptions[pattern]


class _PendingCall:
    """A call awaiting its reply: who sent it, with which tag, to whom."""

    __slots__ = ("msg_id", "sender", "tag", "recipient", "waiter", "timer", "timeout")

    def __init__(
        self,
        msg_id: str,
        sender: _Client,
        tag: str | None,
        recipient: _Client,
        waiter: defer.Deferred[Any] | None = None,
    ) -> None:
        self.msg_id = msg_id
        self.sender = sender
        self.tag = tag
        self.recipient = recipient
        self.waiter = waiter
        self.timer: IDelayedCall | None = None
        self.timeout: float | None = None


class HubCore:
    """
    The registry, routing and calls of a SAMP hub, driven by method calls.

    The hub operations take the calling client's record (from
    :meth:`register` or :meth:`client_for_key`) and the remaining arguments
    of the ``samp.hub.*`` method of the same name, already decoded; they
    return its result, or a Deferred of it for :meth:`call_and_wait`, and
    raise :class:`xmlrpc.client.Fault` for what the caller did wrong.

    :param clock: an ``IReactorTime`` for the outbox and call timeouts.
    :param dict hub_metadata: the hub's own metadata (SAMP data).
    :param int max_queued_bytes: bytes of messages held for one client (in
        the outbox, queued or in flight in its channel); a message past it
        is refused (see :meth:`notify`, :meth:`call`, :meth:`reply`).

    :ivar running: whether the hub accepts registrations and operations;
        set by the service that runs the core.
    :ivar clients: the registered clients' records by id, the hub excluded.
    """

    _log = Logger()

    def __init__(
        self, clock: IReactorTime, hub_metadata: dict[str, Any], max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    ) -> None:
        self._clock = clock
        self.max_queued_bytes = max_queued_bytes
        self.running = False
        self._ids = itertools.count(1)
        self._hub = _Client(HUB_ID)
        self._hub.metadata = checked(hub_metadata, "metadata")
        self._hub.set_subscriptions({k: dict(v) for k, v in _HUB_SUBSCRIPTIONS.items()})
        self.clients: dict[str, _Client] = {}
        self._by_key: dict[bytes, _Client] = {}
        self._pending: dict[str, _PendingCall] = {}
        self._answered: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._outbox: list[tuple[Callable[..., None], tuple[Any, ...], _Client | None, int]] = []
        self._flush_call: IDelayedCall | None = None
        self._observers: list[Any] = []

    def add_observer(self, observer: Any) -> None:
        """
        Tell *observer* what happens from now on.

        :param IHubObserver observer: its methods are called at each event.
        """
        self._observers.append(observer)

    def _tell(self, event: str, *args: Any) -> None:
        # Callers check ``if self._observers:`` first: no cost without any.
        for observer in self._observers:
            try:
                getattr(observer, event)(*args)
            except Exception:
                self._log.failure("SAMP hub observer failed on {event}", event=event)

    def client_changed(self, client: _Client, what: str) -> None:
        """Tell the observers that a profile changed *client* (``"callback"``)."""
        if self._observers:
            self._tell("client_changed", client, what)

    @property
    def pending_count(self) -> int:
        """How many calls await a reply."""
        return len(self._pending)

    @property
    def hub_client(self) -> _Client:
        """The hub's own client record."""
        return self._hub

    # -- clients ---------------------------------------------------------

    def register(self, delivery: Any) -> _Client:
        """
        Register a new client, whose callbacks go through *delivery*, and
        tell subscribers ``samp.hub.event.register``.

        :param IDelivery delivery: how to reach this client.
        :return: the client's record (``client_id``, ``private_key``).
        """
        self.check_accepting()
        client = self._new_client()
        client.channel = delivery.open_channel(client, lambda reason: self.drop(client, reason))
        self._log.info("Registered SAMP client {client_id}", client_id=client.client_id)
        if self._observers:
            self._tell("client_changed", client, "register")
        self._broadcast_event("samp.hub.event.register", {"id": client.client_id})
        return client

    def check_accepting(self) -> None:
        """Fault unless the hub accepts registrations (it is running)."""
        if not self.running:
            raise _fault("the SAMP hub is not accepting registrations: it is not running")

    def reg_info(self, client: _Client) -> dict[str, Any]:
        """The ``samp.hub.register`` result for *client*."""
        return {
            "samp.hub-id": HUB_ID,
            "samp.self-id": client.client_id,
            "samp.private-key": client.private_key,
        }

    def client_for_key(self, private_key: object, stopping_ok: bool = False) -> _Client:
        """
        The client whose private key this is, while the hub runs.

        :param bool stopping_ok: accept it while the hub stops, too (for
            ``unregister``).
        """
        if not (self.running or stopping_ok):
            # Requests on open connections may still arrive while stopping;
            # what they would start could never finish.
            raise _fault("the SAMP hub is shutting down")
        if not isinstance(private_key, str):
            raise _fault(f"the private key must be a string, not {kind(private_key)}")
        key = key_bytes(private_key)
        # Index by a digest so the lookup reveals nothing about the key, then
        # compare in constant time.
        client = self._by_key.get(hashlib.sha256(key).digest())
        if client is None or not hmac.compare_digest(client.key_bytes, key):
            raise _fault("unknown private key: not registered, or no longer registered")
        return client

    def client_by_id(self, client_id: object) -> _Client:
        """The client (or the hub) with this public id."""
        client_id = check_string(client_id, "the client id")
        if client_id == HUB_ID:
            return self._hub
        client = self.clients.get(client_id)
        if client is None:
            raise _fault(f"no registered client has the id {client_id!r}")
        return client

    def drop(self, client: _Client, reason: str) -> None:
        """
        Forcibly unregister a client that cannot be reached: its channel
        tries ``samp.hub.disconnect`` if it subscribed, and everyone hears
        ``samp.hub.event.unregister``.
        """
        if not client.active:
            return
        self._log.warn(
            "Dropping SAMP client {client_id}: {reason}", client_id=client.client_id, reason=reason
        )
        farewell = None
        if client.annotation_for("samp.hub.disconnect") is not None:
            farewell = {"samp.mtype": "samp.hub.disconnect", "samp.params": {"reason": reason}}
        self._forget(client, "was disconnected by the hub", farewell)
        self._broadcast_event("samp.hub.event.unregister", {"id": client.client_id})

    def _all_clients(self) -> list[_Client]:
        return [self._hub, *self.clients.values()]

    def _new_client(self) -> _Client:
        client_id = f"c{next(self._ids)}"
        while True:
            # 192 random bits never collide in practice; checking is cheap.
            private_key = secrets.token_urlsafe(24)
            digest = hashlib.sha256(key_bytes(private_key)).digest()
            if digest not in self._by_key:
                break
        client = _Client(client_id, private_key)
        self.clients[client_id] = client
        self._by_key[digest] = client
        return client

    def _forget(self, client: _Client, why: str, farewell: dict[str, Any] | None = None) -> None:
        """
        Remove *client* from every table, close its channel (after trying
        the hub's notification *farewell*, if given) and settle the calls
        it is part of.
        """
        client.active = False
        self.clients.pop(client.client_id, None)
        if self._observers:
            self._tell("client_left", client, why)
        self._by_key.pop(hashlib.sha256(client.key_bytes).digest(), None)
        if farewell is None:
            client.channel.close()
        else:
            client.channel.disconnect(farewell)
        for msg_id in list(client.awaiting):
            pending = self._pending[msg_id]
            self._finish(pending, f"its recipient {why}")
            self._answer(pending, _error_response(f"{client.client_id} {why} before replying"))
        for msg_id in list(client.outstanding):
            pending = self._pending[msg_id]
            self._finish(pending, f"its sender {why}")
            if pending.waiter is not None:
                pending.waiter.errback(_fault(f"callAndWait abandoned: you {why}"))

    # -- the hub operations (after the caller's key was checked) ---------

    def unregister(self, client: _Client) -> str:
        """``samp.hub.unregister``: forget *client*, tell everyone."""
        self._forget(client, "unregistered")
        self._broadcast_event("samp.hub.event.unregister", {"id": client.client_id})
        self._log.info("Unregistered SAMP client {client_id}", client_id=client.client_id)
        return ""

    def declare_metadata(self, client: _Client, metadata: object) -> str:
        """``samp.hub.declareMetadata``."""
        client.metadata = _check_map(metadata, "metadata")
        if self._observers:
            self._tell("client_changed", client, "metadata")
        self._broadcast_event(
            "samp.hub.event.metadata", {"id": client.client_id, "metadata": client.metadata}
        )
        return ""

    def get_metadata(self, caller: _Client, client_id: object) -> dict[str, Any]:
        """``samp.hub.getMetadata``."""
        return self.client_by_id(client_id).metadata

    def declare_subscriptions(self, client: _Client, subscriptions: object) -> str:
        """``samp.hub.declareSubscriptions``."""
        if not isinstance(subscriptions, dict):
            raise _fault(f"subscriptions must be a map, not {kind(subscriptions)}")
        for pattern, annotation in subscriptions.items():
            if not is_mtype_pattern(pattern):
                raise _fault(
                    f"subscription key {pattern!r} is not an MType pattern "
                    f"(such as 'table.load.votable', 'table.*' or '*')"
                )
            if not isinstance(annotation, dict):
                raise _fault(
                    f"the subscription to {pattern!r} must map to an annotation "
                    f"map, not {kind(annotation)}"
                )
        client.set_subscriptions(checked(subscriptions, "subscriptions"))
        if self._observers:
            self._tell("client_changed", client, "subscriptions")
        self._broadcast_event(
            "samp.hub.event.subscriptions",
            {"id": client.client_id, "subscriptions": client.subscriptions},
        )
        return ""

    def get_subscriptions(self, caller: _Client, client_id: object) -> dict[str, Any]:
        """``samp.hub.getSubscriptions``."""
        return self.client_by_id(client_id).subscriptions

    def get_registered_clients(self, caller: _Client) -> list[str]:
        """``samp.hub.getRegisteredClients``: everyone but *caller*."""
        return [c.client_id for c in self._all_clients() if c is not caller]

    def get_subscribed_clients(self, caller: _Client, mtype: object) -> dict[str, Any]:
        """``samp.hub.getSubscribedClients``: id to annotation."""
        mtype = check_string(mtype, "the MType")
        if not is_mtype(mtype):
            raise _fault(f"{mtype!r} is not an MType")
        return {c.client_id: c.annotation_for(mtype) for c in self._recipients(mtype, caller)}

    def notify(self, sender: _Client, recipient_id: object, message: object) -> str:
        """
        ``samp.hub.notify``; a fault if the recipient has
        ``max_queued_bytes`` of messages waiting already.
        """
        mtype, message = self._check_message(message)
        recipient = self._recipient(recipient_id, mtype)
        size = message_size(message)
        full = self._no_room(recipient, size)
        if full is not None:
            raise _fault(f"notification of {mtype} to {recipient.client_id} refused: {full}")
        if self._observers:
            self._tell("message_sent", sender, [recipient], message, None)
        self._deliver_later(recipient, size, self._deliver_notification, sender, recipient, message, size)
        return ""

    def notify_all(self, sender: _Client, message: object) -> list[str]:
        """
        ``samp.hub.notifyAll``: the ids notified, leaving out those with
        ``max_queued_bytes`` of messages waiting already.
        """
        mtype, message = self._check_message(message)
        size = message_size(message)
        notified = []
        for recipient in self._recipients(mtype, sender):
            if self._no_room(recipient, size) is None:
                self._deliver_later(recipient, size, self._deliver_notification, sender, recipient, message, size)
                notified.append(recipient)
        if self._observers:
            self._tell("message_sent", sender, notified, message, None)
        return [r.client_id for r in notified]

    def call(self, sender: _Client, recipient_id: object, msg_tag: object, message: object) -> str:
        """``samp.hub.call``: the msg-id."""
        self._check_callable(sender)
        tag = check_string(msg_tag, "msg-tag")
        checked(tag, "msg-tag")
        mtype, message = self._check_message(message)
        recipient = self._recipient(recipient_id, mtype)
        return self._start_call(sender, tag, recipient, message).msg_id

    def call_all(self, sender: _Client, msg_tag: object, message: object) -> dict[str, str]:
        """``samp.hub.callAll``: recipient id to msg-id."""
        self._check_callable(sender)
        tag = check_string(msg_tag, "msg-tag")
        checked(tag, "msg-tag")
        mtype, message = self._check_message(message)
        return {
            recipient.client_id: self._start_call(sender, tag, recipient, message).msg_id
            for recipient in self._recipients(mtype, sender)
        }

    def call_and_wait(
        self, sender: _Client, recipient_id: object, message: object, timeout: object
    ) -> defer.Deferred[Any]:
        """
        ``samp.hub.callAndWait``.

        :return: a Deferred firing with the response; cancelling it
            abandons the call.
        """
        mtype, message = self._check_message(message)
        recipient = self._recipient(recipient_id, mtype)
        timeout = check_string(timeout, "the timeout")
        try:
            seconds = timeout_seconds(timeout)
        except ValueError:
            raise _fault(f"timeout {timeout!r} is not a SAMP int (seconds; 0 for none)") from None
        msg_id = self._new_msg_id()
        waiter: defer.Deferred[Any] = defer.Deferred(lambda _: self._cancel_wait(msg_id))
        pending = self._start_call(sender, None, recipient, message, waiter, msg_id)
        if seconds is not None and msg_id in self._pending:  # not refused at once
            pending.timeout = seconds
            pending.timer = self._clock.callLater(seconds, self._expire, pending.msg_id)
        return waiter

    def reply(self, replier: _Client, msg_id: object, response: object) -> str:
        """``samp.hub.reply``: one reply per call, from its recipient only."""
        msg_id = check_string(msg_id, "msg-id")
        pending = self._pending.get(msg_id)
        if pending is None:
            why = self._answered.get(msg_id, "no such call is awaiting a reply")
            raise _fault(f"reply to {msg_id!r} ignored: {why}")
        if pending.recipient is not replier:
            raise _fault(f"reply to {msg_id!r} refused: that call was not sent to you")
        response = _check_map(response, "response")
        if not isinstance(response.get("samp.status"), str):
            raise _fault("the response has no samp.status string")
        size = message_size(response)
        if pending.waiter is None and pending.sender.active:
            full = self._no_room(pending.sender, size)
            if full is not None:
                # Still pending: the replier may try again later.
                raise _fault(f"reply to {msg_id!r} refused for now: {full}")
        self._finish(pending, "it has already been answered")
        self._answer(pending, response, size)
        return ""

    # -- stopping --------------------------------------------------------

    def shutdown_recipients(self) -> list[Any]:
        """The channels of the clients subscribed to ``samp.hub.event.shutdown``."""
        return [c.channel for c in self._recipients("samp.hub.event.shutdown", self._hub)]

    def fail_waiting_calls(self) -> None:
        """Fail every pending ``callAndWait``: the hub is shutting down."""
        for pending in list(self._pending.values()):
            if pending.waiter is not None and not pending.waiter.called:
                self._finish(pending, "the hub shut down before it was answered")
                pending.waiter.errback(_fault("the SAMP hub is shutting down"))

    def close_channels(self) -> None:
        """Stop every delivery: nothing queued or in flight survives."""
        if self._flush_call is not None:
            self._flush_call.cancel()
            self._flush_call = None
        self._outbox = []
        for client in self.clients.values():
            client.active = False
            client.outbox_bytes = 0
            client.channel.close()

    def reset(self) -> None:
        """Forget every client and call, as a stopped hub does."""
        self.clients = {}
        self._by_key = {}
        self._pending = {}
        self._answered.clear()

    # -- checking arguments ---------------------------------------------

    @staticmethod
    def _check_callable(sender: _Client) -> None:
        if not sender.channel.callable:
            raise _fault(
                "call needs a callable sender to receive the response: call "
                "setXmlrpcCallback first, or use callAndWait"
            )

    @staticmethod
    def _check_message(message: object) -> tuple[str, dict[str, Any]]:
        if not isinstance(message, dict):
            raise _fault(f"the message must be a map, not {kind(message)}")
        mtype = message.get("samp.mtype")
        if mtype is None:
            raise _fault("the message has no samp.mtype")
        if not is_mtype(mtype):
            raise _fault(f"samp.mtype {mtype!r} is not an MType")
        params = message.get("samp.params")
        if params is not None and not isinstance(params, dict):
            raise _fault(f"samp.params must be a map, not {kind(params)}")
        # Passed on unchanged: encoded once for all its recipients.
        return mtype, CachedMap(checked(message, "message"))

    def _recipient(self, recipient_id: object, mtype: str) -> _Client:
        """The client *recipient_id*, if it can receive *mtype*."""
        recipient = self.client_by_id(recipient_id)
        if recipient.annotation_for(mtype) is None:
            raise _fault(f"client {recipient_id} is not subscribed to {mtype}")
        if not recipient.callable:
            raise _fault(f"client {recipient_id} is not callable (it has set no XML-RPC callback)")
        return recipient

    def _recipients(self, mtype: str, sender: _Client | None) -> list[_Client]:
        """Every callable client but *sender* subscribed to *mtype*."""
        return [
            client
            for client in self._all_clients()
            if client is not sender and client.callable and client.annotation_for(mtype) is not None
        ]

    # -- calls -----------------------------------------------------------

    @staticmethod
    def _new_msg_id() -> str:
        # Unguessable, so nobody can reply to (or forge) someone else's call.
        return f"m{secrets.token_urlsafe(12)}"

    def _start_call(
        self,
        sender: _Client,
        tag: str | None,
        recipient: _Client,
        message: dict[str, Any],
        waiter: defer.Deferred[Any] | None = None,
        msg_id: str | None = None,
    ) -> _PendingCall:
        if len(sender.outstanding) >= MAX_UNANSWERED_CALLS:
            self._give_up_oldest(sender)
        msg_id = msg_id or self._new_msg_id()
        pending = _PendingCall(msg_id, sender, tag, recipient, waiter)
        self._pending[msg_id] = pending
        sender.outstanding.add(msg_id)
        recipient.awaiting.add(msg_id)
        if self._observers:
            self._tell("message_sent", sender, [recipient], message, msg_id)
        size = message_size(message)
        full = self._no_room(recipient, size)
        if full is None:
            self._deliver_later(recipient, size, self._deliver_call, pending, message, size)
        else:
            self._fail_call(msg_id, f"call of {message['samp.mtype']} to {recipient.client_id} refused: {full}")
        return pending

    def _give_up_oldest(self, sender: _Client) -> None:
        # Calls nobody answers would otherwise pile up for as long as both
        # clients stay registered; the oldest is answered with an error.
        oldest = next(p for p in self._pending.values() if p.sender is sender)
        self._fail_call(
            oldest.msg_id,
            f"no reply from {oldest.recipient.client_id}: given up, as "
            f"{sender.client_id} has {MAX_UNANSWERED_CALLS} calls unanswered",
        )

    def _finish(self, pending: _PendingCall, why_closed: str) -> None:
        """Take *pending* out of the tables; later replies get *why_closed*."""
        msg_id = pending.msg_id
        del self._pending[msg_id]
        pending.sender.outstanding.discard(msg_id)
        pending.recipient.awaiting.discard(msg_id)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        self._answered[msg_id] = why_closed
        if self._observers:
            self._tell("call_closed", msg_id, why_closed)
        if len(self._answered) > _FORGOTTEN_IDS_KEPT:
            self._answered.popitem(last=False)

    def _answer(self, pending: _PendingCall, response: dict[str, Any], size: int | None = None) -> None:
        """Give a finished call's *response* to its sender."""
        if self._observers:
            self._tell("call_answered", pending.msg_id, response)
        if pending.waiter is not None:
            if not pending.waiter.called:
                pending.waiter.callback(response)
        elif pending.sender.active:
            if size is None:
                size = message_size(response)
            # Not refused when full: only the hub's own samp.error responses
            # come here unchecked, small and one per call the sender made.
            self._deliver_later(pending.sender, size, self._deliver_response, pending, response, size)

    def _fail_call(self, msg_id: str, text: str) -> None:
        pending = self._pending.get(msg_id)
        if pending is not None:
            self._finish(pending, "delivery failed and the sender was told")
            self._answer(pending, _error_response(text))

    def _expire(self, msg_id: str) -> None:
        pending = self._pending.get(msg_id)
        if pending is None:
            return
        pending.timer = None
        self._finish(pending, "the callAndWait timed out")
        if pending.waiter is None:  # only callAndWait calls have timers
            return
        pending.waiter.errback(
            _fault(
                f"callAndWait to {pending.recipient.client_id} timed out after "
                f"{pending.timeout:g} s with no reply"
            )
        )

    def _cancel_wait(self, msg_id: str) -> None:
        pending = self._pending.get(msg_id)
        if pending is not None:
            self._finish(pending, "the callAndWait was cancelled")

    def _hub_answer(self, message: dict[str, Any]) -> dict[str, Any]:
        """The hub's own response to a call addressed to it."""
        mtype = message["samp.mtype"]
        params = message.get("samp.params") or {}
        if mtype == "samp.app.ping":
            return ok_response({})
        if mtype in _QUERY_BY_META:
            key, value = params.get("key"), params.get("value")
            if not isinstance(key, str) or value is None:
                return _error_response(f"{mtype} needs the parameters key and value")
            ids = [c.client_id for c in self._all_clients() if c.metadata.get(key) == value]
            return ok_response({"ids": ids})
        return _error_response(f"the hub does not handle {mtype}")

    # -- the outbox ------------------------------------------------------

    def _no_room(self, recipient: _Client, size: int) -> str | None:
        """
        Why a message of *size* bytes cannot be taken for *recipient*, or
        ``None`` if it can.  A message larger than the bound on its own is
        taken when nothing else waits (bodies are bounded anyway).
        """
        if recipient.is_hub:
            return None
        held = recipient.outbox_bytes + recipient.channel.queued_bytes
        if held == 0 or held + size <= self.max_queued_bytes:
            return None
        return (
            f"{recipient.client_id} already has {held} bytes of messages waiting for "
            f"delivery, and this one ({size} bytes) would pass the hub's bound of "
            f"{self.max_queued_bytes} bytes (max_queued_bytes); try again later"
        )

    def _deliver_later(
        self, recipient: _Client, size: int, function: Callable[..., None], *args: Any
    ) -> None:
        """:meth:`_later`, counting *size* bytes for *recipient* meanwhile."""
        recipient.outbox_bytes += size
        self._outbox.append((function, args, recipient, size))
        self._schedule_flush()

    def _later(self, function: Callable[..., None], *args: Any) -> None:
        """
        Run *function* in a later turn, after the current request has been
        answered; one timer serves every step queued meanwhile.
        """
        self._outbox.append((function, args, None, 0))
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._flush_call = None
        ready, self._outbox = self._outbox, []
        for function, args, recipient, size in ready:
            if recipient is not None:
                recipient.outbox_bytes -= size
            try:
                function(*args)
            except Exception:
                self._log.failure("SAMP hub delivery step {step} failed", step=function.__name__)

    def _broadcast_event(self, mtype: str, params: dict[str, Any]) -> None:
        message = {"samp.mtype": mtype, "samp.params": params}
        size = message_size(message)
        recipients = self._recipients(mtype, self._hub)
        if self._observers and recipients:
            self._tell("message_sent", self._hub, recipients, message, None)
        for recipient in recipients:
            full = self._no_room(recipient, size)
            if full is None:
                self._deliver_later(recipient, size, self._deliver_notification, self._hub, recipient, message, size)
            else:
                self._log.warn("SAMP hub event {mtype} not sent: {full}", mtype=mtype, full=full)

    def _deliver_notification(
        self, sender: _Client, recipient: _Client, message: dict[str, Any], size: int = 0
    ) -> None:
        if recipient.is_hub or not recipient.active:
            return  # the hub acts on no notification
        recipient.channel.notify(sender.client_id, message, size)

    def _deliver_call(self, pending: _PendingCall, message: dict[str, Any], size: int = 0) -> None:
        if pending.msg_id not in self._pending:
            return  # settled meanwhile (a party left)
        if pending.recipient.is_hub:
            self._finish(pending, "it has already been answered")
            self._answer(pending, self._hub_answer(message))
            return
        msg_id = pending.msg_id
        pending.recipient.channel.call(
            pending.sender.client_id, msg_id, message, lambda text: self._fail_call(msg_id, text), size
        )

    def _deliver_response(self, pending: _PendingCall, response: dict[str, Any], size: int = 0) -> None:
        sender = pending.sender
        if sender.active:
            sender.channel.respond(pending.recipient.client_id, pending.tag, response, size)
