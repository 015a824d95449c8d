# -*- test-case-name: tests.test_webprofile -*-
"""
The SAMP Web Profile of the hub: how browser pages reach the
:class:`~._hubcore.HubCore`.

:class:`WebProfile` serves the ``samp.webhub.*`` XML-RPC methods at ``/``
and the URL translator at ``/translator/<private-key>?<url>``, behind the
checks a browser-facing server needs (:class:`WebResource`): the ``Host``
header must name loopback (against DNS rebinding), the peer must be
loopback, the ``Origin`` must be well formed, and every answer -- result,
fault, translated resource, preflight -- carries the CORS headers.  A page
registers only with the user's consent (:class:`ConsentGate`, one prompt at
a time); its callbacks are queued for it to pull
(:class:`~._pulldelivery.PullDelivery`); it may send only the MTypes of
:data:`WEB_SAFE_MTYPES` unless the recipient's subscription says
``x-samp.mostly-harmless``; and the translator serves only URLs that a
Standard Profile client mentioned first (:class:`URLControl`).
"""

from __future__ import annotations

import collections
import inspect
import itertools
import ipaddress
import os
import re
import xmlrpc.client
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Union
from urllib.parse import unquote, urlsplit

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.client import Agent, ResponseDone
from twisted.web.iweb import IResponse
from twisted.web.resource import Resource

from ._encoding import decode_boolean
from ._hubcore import HUB_ID, HubCore, _Client, check_string, checked, kind
from ._listening import is_loopback_host
from ._mtype import is_mtype, pattern_matches
from ._pulldelivery import PullChannel, PullDelivery
from ._verbatim import VerbatimStrings
from ._xmlrpc import XMLRPCResource, _peer, _rejections, with_request

__all__ = [
    "DEFAULT_WEB_PORT",
    "WEB_SAFE_MTYPES",
    "ConsentGate",
    "WebConsentRequest",
    "URLControl",
    "WebProfile",
    "WebResource",
]

#: The Web Profile's well-known port.
DEFAULT_WEB_PORT = 21012

#: The MTypes web clients may send, as JSAMP's default (its
#: ``ListMessageRestriction``): a recipient overrides it for one
#: subscription with ``x-samp.mostly-harmless`` ``"1"`` or ``"0"``.
WEB_SAFE_MTYPES: tuple[str, ...] = (
    "samp.app.*",
    "samp.msg.progress",
    "table.*",
    "image.*",
    "coord.*",
    "spectrum.*",
    "bibcode.*",
    "voresource.*",
)

#: Consent requests waiting behind the one being asked; more are refused.
DEFAULT_MAX_WAITING_CONSENTS = 3
#: Bytes and seconds the translator gives one resource.
DEFAULT_TRANSLATE_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_TRANSLATE_TIMEOUT = 60.0
#: URLs the translator remembers as mentioned (the oldest are forgotten).
DEFAULT_MAX_KNOWN_URLS = 10_000

_ORIGIN = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+")
_URL = re.compile(r"(?:https?|file):[^\s\"'<>]+")
_TRANSLATABLE = ("http", "https", "file")
# What a string that mentions such a URL starts with ("https" with "http").
_URL_STARTS = ("http", "file")

Consent = Callable[["WebConsentRequest"], Union[bool, "defer.Deferred[bool]"]]


def _fault(text: str) -> xmlrpc.client.Fault:
    return xmlrpc.client.Fault(1, text)


@dataclass(frozen=True)
class WebConsentRequest:
    """
    What the user is asked about when a web page registers.

    :ivar name: the ``samp.name`` the page declares (it proves nothing).
    :ivar origin: the page's ``Origin`` header (``"null"`` for a local
        file or a sandboxed page), or ``None`` if it sent none (not a
        browser).
    :ivar referer: the ``Referer`` header, or ``None``.
    :ivar address: the address the request came from (``"127.0.0.1"``).
    """

    name: str
    origin: str | None
    referer: str | None
    address: str




def _is_loopback_address(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def origin_allowed(origin: str | None) -> bool:
    """
    The origin policy: no ``Origin`` (not a browser), ``null`` (a page
    from a ``file:`` URL or a sandbox) or a well-formed
    ``scheme://host[:port]``.  Consent, not the origin, is the gate.
    """
    return origin is None or origin == "null" or bool(_ORIGIN.fullmatch(origin))


class ConsentGate:
    """
    Asks *consent* about one registration at a time; at most
    *max_waiting* more wait their turn, and further ones are refused at
    once, so a flood of requests does not become a flood of prompts.

    :param consent: a function of a :class:`WebConsentRequest` returning a
        bool or a Deferred of one; ``None`` refuses everyone.
    :param int max_waiting: requests waiting behind the one asked.
    """

    _log = Logger()

    def __init__(self, consent: Consent | None, max_waiting: int = DEFAULT_MAX_WAITING_CONSENTS) -> None:
        self._consent = consent
        self._max_waiting = max_waiting
        self._asking = False
        self._waiting: collections.deque[tuple[WebConsentRequest, defer.Deferred[bool]]] = collections.deque()

    def ask(self, request: WebConsentRequest) -> defer.Deferred[bool]:
        """
        :return: a Deferred firing with whether the user said yes (a
            failing or absent consent function says no); failing with a
            fault when too many requests wait.
        """
        if self._asking and len(self._waiting) >= self._max_waiting:
            return defer.fail(
                _fault(
                    "registration refused: too many web registrations are waiting for the "
                    "user's consent; try again later"
                )
            )
        answer: defer.Deferred[bool] = defer.Deferred(lambda d: self._withdraw(d))
        self._waiting.append((request, answer))
        self._next()
        return answer

    def _withdraw(self, answer: defer.Deferred[bool]) -> None:
        self._waiting = collections.deque(item for item in self._waiting if item[1] is not answer)

    def _next(self) -> None:
        if self._asking or not self._waiting:
            return
        request, answer = self._waiting.popleft()
        self._asking = True
        if self._consent is None:
            decision: defer.Deferred[Any] = defer.succeed(False)
        else:
            decision = defer.maybeDeferred(self._consent, request)
        decision.addCallback(lambda yes: yes is True)
        decision.addErrback(self._consent_failed)
        decision.addCallback(self._decided, request, answer)

    def _consent_failed(self, failure: Failure) -> bool:
        self._log.failure("The Web Profile consent function failed; registration refused", failure)
        return False

    def _decided(self, yes: bool, request: WebConsentRequest, answer: defer.Deferred[bool]) -> None:
        self._asking = False
        self._log.info(
            "Web Profile consent {decision} for {name!r} from origin {origin}",
            decision="given" if yes else "refused",
            name=request.name,
            origin=request.origin,
        )
        if not answer.called:
            answer.callback(yes)
        self._next()


class URLControl:
    """
    The URLs the translator may serve: those that a Standard Profile
    client (or the hub about one) mentioned to a web client, in a message,
    a response or metadata.  The most recent *max_urls* are kept.
    """

    def __init__(self, max_urls: int = DEFAULT_MAX_KNOWN_URLS) -> None:
        self._max = max_urls
        self._known: collections.OrderedDict[str, None] = collections.OrderedDict()

    def learn(self, value: object) -> None:
        """
        Remember every http, https or file URL in *value* (SAMP data), as
        far as they can be kept: only the most recent *max_urls* are, so
        they are looked for from the end, in at most four times as many
        strings.  A row list of a million URLs then costs the reactor no
        more than one of forty thousand.
        """
        found: dict[str, None] = {}  # the latest first
        most = 4 * self._max
        for text in itertools.islice(_strings_backwards(value, most), most):
            if text.startswith(_URL_STARTS):
                for url in reversed(_URL.findall(text)):
                    found.setdefault(url)
                if len(found) >= self._max:
                    break
        for url in reversed(found):
            self._known[url] = None
            self._known.move_to_end(url)
        while len(self._known) > self._max:
            self._known.popitem(last=False)

    def allows(self, url: str) -> bool:
        """Whether *url* was mentioned."""
        return url in self._known


def _strings_backwards(value: object, most: int) -> Iterator[str]:
    """The strings in *value* (SAMP data), the last first; of a list
    kept as received, only the last *most* and only if it may hold URLs."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in reversed(value.values()):
            yield from _strings_backwards(item, most)
    elif isinstance(value, VerbatimStrings):
        if value.any_starts_with(_URL_STARTS):
            yield from reversed(value.tail(most))
    elif isinstance(value, (list, tuple)):
        for item in reversed(value):
            yield from _strings_backwards(item, most)


def mtype_allowed(mtype: str, annotation: object, safe: Iterable[str]) -> bool:
    """
    Whether a web client may send *mtype* to a client subscribed with
    *annotation*: its ``x-samp.mostly-harmless`` (or
    ``samp.mostly-harmless``) says so, else the *safe* list.
    """
    if isinstance(annotation, dict):
        for key in ("x-samp.mostly-harmless", "samp.mostly-harmless"):
            flag = annotation.get(key)
            if isinstance(flag, str):
                return decode_boolean(flag)
    return any(pattern_matches(pattern, mtype) for pattern in safe)


class WebProfile:
    """
    The Web Profile endpoint on a hub core.

    :param HubCore core: the hub's state and rules.
    :param clock: an ``IReactorTime`` (and the reactor for the
        translator's HTTP client and threads).
    :param consent: the consent function (see :class:`ConsentGate`).
    :param safe_mtypes: the MType patterns web clients may send.
    :param delivery: the :class:`PullDelivery` (one is made if ``None``).
    :param int translate_max_bytes: the largest resource the translator
        serves.
    :param float translate_timeout: seconds the translator may take.

    :ivar resource: the :class:`WebResource` to serve at the root.
    :ivar base_url: ``http://127.0.0.1:PORT/`` once listening (set by the
        hub), for the translator's prefix.
    """

    _log = Logger()

    def __init__(
        self,
        core: HubCore,
        clock: IReactorTime,
        consent: Consent | None = None,
        safe_mtypes: Iterable[str] = WEB_SAFE_MTYPES,
        delivery: PullDelivery | None = None,
        translate_max_bytes: int = DEFAULT_TRANSLATE_MAX_BYTES,
        translate_timeout: float = DEFAULT_TRANSLATE_TIMEOUT,
        max_waiting_consents: int = DEFAULT_MAX_WAITING_CONSENTS,
    ) -> None:
        self._core = core
        self._clock = clock
        self.safe_mtypes = tuple(safe_mtypes)
        self.delivery = delivery if delivery is not None else PullDelivery(clock)
        self.delivery.on_callback = self._to_page
        self.gate = ConsentGate(consent, max_waiting_consents)
        self.urls = URLControl()
        self.translate_max_bytes = translate_max_bytes
        self.translate_timeout = translate_timeout
        self.base_url = "http://127.0.0.1:21012/"
        self.xmlrpc = XMLRPCResource(self._procedures(), lenient=False, verbatim=True)
        self.resource = WebResource(self)

    # -- who is calling ------------------------------------------------------

    def web_client(self, private_key: object, stopping_ok: bool = False) -> _Client:
        """The web client with this private key (not a Standard Profile one)."""
        client = self._core.client_for_key(private_key, stopping_ok)
        if not isinstance(client.channel, PullChannel):
            raise _fault("unknown private key: not a Web Profile client")
        client.channel.seen()
        return client

    def is_web(self, client_id: object) -> bool:
        """Whether *client_id* is a registered web client."""
        client = self._core.clients.get(client_id) if isinstance(client_id, str) else None
        return client is not None and isinstance(client.channel, PullChannel)

    def _to_page(self, client_id: str, entry: dict[str, Any]) -> dict[str, Any]:
        """A callback queued for web client *client_id*: its URLs learned;
        an event about subscriptions shows only those the page may see, as
        ``getSubscriptions`` does."""
        self._learn_urls(client_id, entry)
        method, params = entry["samp.methodName"], entry["samp.params"]
        message = params[-1]
        if method != "receiveNotification" or params[0] != HUB_ID or not isinstance(message, dict):
            return entry
        event = message.get("samp.params")
        if message.get("samp.mtype") != "samp.hub.event.subscriptions" or not isinstance(event, dict):
            return entry
        subscriptions = event.get("subscriptions")
        if not isinstance(subscriptions, dict):
            return entry
        # The event is shared by its recipients: a copy for this one.
        message = {**message, "samp.params": {**event, "subscriptions": self._visible(subscriptions)}}
        return {**entry, "samp.params": [*params[:-1], message]}

    def _learn_urls(self, client_id: str, entry: dict[str, Any]) -> None:
        """URL control: learn what a non-web client tells a web client."""
        params = entry["samp.params"]
        sender, payload = params[0], params[-1]
        if sender == "hub":
            # hub events speak of a client: trust what they carry only if
            # that client is not a web client itself
            subject = payload.get("samp.params", {}).get("id") if isinstance(payload, dict) else None
            if subject is None or subject not in self._core.clients or self.is_web(subject):
                return
        elif sender not in self._core.clients or self.is_web(sender):
            return
        self.urls.learn(payload)

    # -- samp.webhub.* -----------------------------------------------------------

    def _procedures(self) -> dict[str, Callable[..., Any]]:
        core = self._core
        plain: dict[str, Callable[..., Any]] = {
            "declareMetadata": core.declare_metadata,
            "declareSubscriptions": core.declare_subscriptions,
            "getSubscriptions": self._get_subscriptions,
            "getRegisteredClients": core.get_registered_clients,
            "reply": core.reply,
            "getMetadata": self._get_metadata,
            "getSubscribedClients": self._get_subscribed_clients,
            "notify": self._notify,
            "notifyAll": self._notify_all,
            "call": self._call,
            "callAll": self._call_all,
            "callAndWait": self._call_and_wait,
            "unregister": core.unregister,
            "allowReverseCallbacks": self._allow_reverse_callbacks,
            "pullCallbacks": self._pull_callbacks,
        }
        methods: dict[str, Callable[..., Any]] = {
            name: _keyed(self.web_client, operation, stopping_ok=name == "unregister")
            for name, operation in plain.items()
        }
        methods.update(register=self._register, ping=self._ping)
        return {f"samp.webhub.{name}": method for name, method in methods.items()}

    def _ping(self, private_key: object = None) -> str:
        return "1"

    @with_request
    def _register(self, http: server.Request, identity: object) -> defer.Deferred[dict[str, Any]]:
        self._core.check_accepting()
        if isinstance(identity, str):  # the 1.3 drafts' form, as JSAMP accepts
            identity = {"samp.name": identity}
        if not isinstance(identity, dict):
            raise _fault(f"register needs an identity map with samp.name, not {kind(identity)}")
        name = identity.get("samp.name")
        if not isinstance(name, str) or not name.strip():
            raise _fault("register needs samp.name, the application's name, in its identity map")
        checked(identity, "the identity map")
        address = getattr(http.getClientAddress(), "host", "unknown")
        request = WebConsentRequest(name, _header(http, b"origin"), _header(http, b"referer"), address)
        self._log.info(
            "Web Profile registration requested by {name!r} from origin {origin} (referer {referer})",
            name=name,
            origin=request.origin,
            referer=request.referer,
        )
        answer = self.gate.ask(request)
        return answer.addCallback(self._consented, request)

    def _consented(self, yes: bool, request: WebConsentRequest) -> dict[str, Any]:
        if not yes:
            self._log.info("Web Profile registration of {name!r} refused", name=request.name)
            raise _fault(f"registration refused: the user did not allow {request.name!r} to register")
        client = self._core.register(self.delivery)
        self._log.info(
            "Web Profile client {client_id} registered: {name!r} from origin {origin}",
            client_id=client.client_id,
            name=request.name,
            origin=request.origin,
        )
        info = self._core.reg_info(client)
        info["samp.url-translator"] = f"{self.base_url}translator/{client.private_key}?"
        return info

    def _allow_reverse_callbacks(self, client: _Client, allow: object) -> str:
        allow = check_string(allow, "allow")
        channel: PullChannel = client.channel
        channel.allow_callbacks(decode_boolean(allow))
        return ""

    def _pull_callbacks(self, client: _Client, timeout: object) -> Any:
        timeout = check_string(timeout, "the timeout")
        try:
            seconds = float(int(timeout.strip()))
        except ValueError:
            raise _fault(f"timeout {timeout!r} is not a SAMP int (seconds)") from None
        channel: PullChannel = client.channel
        return channel.pull(seconds)

    def _get_metadata(self, caller: _Client, client_id: object) -> dict[str, Any]:
        metadata = self._core.get_metadata(caller, client_id)
        if client_id != "hub" and not self.is_web(client_id):
            self.urls.learn(metadata)
        return metadata

    def _get_subscriptions(self, caller: _Client, client_id: object) -> dict[str, Any]:
        return self._visible(self._core.get_subscriptions(caller, client_id))

    def _visible(self, subscriptions: dict[str, Any]) -> dict[str, Any]:
        """The subscriptions a page may see: a pattern is shown only if the
        page may send every MType it covers ("table.*" is, "*" is not), or
        its annotation allows it."""
        return {
            pattern: annotation
            for pattern, annotation in subscriptions.items()
            if mtype_allowed(pattern, annotation, self.safe_mtypes)
        }

    def _get_subscribed_clients(self, caller: _Client, mtype: object) -> dict[str, Any]:
        subscribed = self._core.get_subscribed_clients(caller, mtype)
        return {
            client_id: annotation
            for client_id, annotation in subscribed.items()
            if mtype_allowed(str(mtype), annotation, self.safe_mtypes)
        }

    def _check_send(self, message: object, recipient_id: object) -> None:
        """Fault if the web client may not send *message* to *recipient_id*."""
        mtype = message.get("samp.mtype") if isinstance(message, dict) else None
        if not is_mtype(mtype):
            return  # the core faults with the right text
        recipient = self._core.clients.get(recipient_id) if isinstance(recipient_id, str) else None
        annotation = None if recipient is None else recipient.annotation_for(mtype)
        if not mtype_allowed(mtype, annotation, self.safe_mtypes):
            raise _fault(f"MType {mtype} is blocked from the Web Profile: web clients may not send it")

    def _allowed_recipients(self, caller: _Client, message: object) -> list[str]:
        mtype, _ = HubCore._check_message(message)  # faults with the core's text
        subscribed = self._core.get_subscribed_clients(caller, mtype)
        allowed = [c for c, a in subscribed.items() if mtype_allowed(mtype, a, self.safe_mtypes)]
        if subscribed and not allowed:
            raise _fault(f"MType {mtype} is blocked from the Web Profile: web clients may not send it")
        return allowed

    def _notify(self, caller: _Client, recipient_id: object, message: object) -> str:
        self._check_send(message, recipient_id)
        return self._core.notify(caller, recipient_id, message)

    def _notify_all(self, caller: _Client, message: object) -> list[str]:
        return [r for r in self._allowed_recipients(caller, message) if self._core.notify(caller, r, message) == ""]

    def _call(self, caller: _Client, recipient_id: object, msg_tag: object, message: object) -> str:
        self._check_send(message, recipient_id)
        return self._core.call(caller, recipient_id, msg_tag, message)

    def _call_all(self, caller: _Client, msg_tag: object, message: object) -> dict[str, str]:
        HubCore._check_callable(caller)
        return {r: self._core.call(caller, r, msg_tag, message) for r in self._allowed_recipients(caller, message)}

    def _call_and_wait(
        self, caller: _Client, recipient_id: object, message: object, timeout: object
    ) -> defer.Deferred[Any]:
        self._check_send(message, recipient_id)
        return self._core.call_and_wait(caller, recipient_id, message, timeout)

    # -- the URL translator ------------------------------------------------

    def translate(self, private_key: str, target: str) -> defer.Deferred[tuple[bytes, bytes]]:
        """
        Fetch *target* for the web client with *private_key*.

        :return: a Deferred firing with ``(content type, body)``, or
            failing with :class:`TranslationRefused` (status and text).
        """
        try:
            self.web_client(private_key)
        except xmlrpc.client.Fault:
            return defer.fail(TranslationRefused(403, "unknown private key"))
        url = target if _looks_absolute(target) else unquote(target)
        scheme = urlsplit(url).scheme.lower()
        if scheme not in _TRANSLATABLE:
            return defer.fail(TranslationRefused(400, f"only http, https and file URLs are translated, not {url!r}"))
        if not self.urls.allows(url):
            self._log.info("URL translation refused (not mentioned by a trusted client): {url}", url=url)
            return defer.fail(
                TranslationRefused(403, "this URL was not sent to web clients by a Standard Profile client")
            )
        if scheme == "file":
            reactor: Any = self._clock
            d = threads.deferToThreadPool(reactor, reactor.getThreadPool(), _read_file, url, self.translate_max_bytes)
        else:
            d = self._fetch(url)
        d.addTimeout(self.translate_timeout, self._clock)
        return d

    def _fetch(self, url: str) -> defer.Deferred[tuple[bytes, bytes]]:
        reactor: Any = self._clock
        agent = Agent(reactor)
        d = agent.request(b"GET", url.encode("ascii", "replace"))

        def got(response: IResponse) -> defer.Deferred[tuple[bytes, bytes]]:
            if response.code != 200:
                response.deliverBody(Protocol())
                raise TranslationRefused(502, f"{url} answered HTTP {response.code}")
            kind_ = response.headers.getRawHeaders(b"content-type", [b"application/octet-stream"])[0]
            body = _LimitedBody(self.translate_max_bytes)
            response.deliverBody(body)
            return body.done.addCallback(lambda data: (kind_, data))

        return d.addCallback(got)


class TranslationRefused(Exception):
    """The translator's refusal: an HTTP status and a text."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


def _looks_absolute(url: str) -> bool:
    return bool(re.match(r"(?:https?|file):", url, re.IGNORECASE)) and "%3A" not in url[:8].upper()


def _read_file(url: str, limit: int) -> tuple[bytes, bytes]:
    """Read a ``file:`` URL's file, at most *limit* bytes (in a thread)."""
    path = unquote(urlsplit(url).path)
    if not os.path.isfile(path):
        raise TranslationRefused(404, "no such file")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TranslationRefused(413, f"larger than {limit} bytes")
    return b"application/octet-stream", data


class _LimitedBody(Protocol):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            if not self.done.called:
                self.done.errback(TranslationRefused(413, f"larger than {self._limit} bytes"))
            assert self.transport is not None
            self.transport.stopProducing()  # type: ignore[attr-defined]
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self.done.called:
            return
        if reason.check(ResponseDone):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(TranslationRefused(502, f"fetch failed: {reason.getErrorMessage()}"))


def _keyed(
    lookup: Callable[..., _Client], operation: Callable[..., Any], stopping_ok: bool = False
) -> Callable[..., Any]:
    """``operation(lookup(private_key), *args)``, as an XML-RPC method."""
    def method(private_key: object, *args: object) -> Any:
        return operation(lookup(private_key, stopping_ok), *args)

    parameters = list(inspect.signature(operation).parameters.values())
    key = inspect.Parameter("private_key", inspect.Parameter.POSITIONAL_ONLY)
    method.__signature__ = inspect.Signature([key, *parameters[1:]])  # type: ignore[attr-defined]
    return method


class WebResource(Resource):
    """
    The root of the Web Profile server: the browser checks around the
    XML-RPC endpoint ``/`` and the translator ``/translator/KEY?URL``.
    """

    isLeaf = True
    _log = Logger()

    def __init__(self, profile: WebProfile) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._profile = profile

    def render(self, request: Any) -> bytes | int:
        refusal = self._refusal(request)
        if refusal is not None:
            status, text = refusal
            # One short line, rate limited by the site as for every refusal.
            channel = getattr(request, "channel", None)
            _rejections(channel).refused(_peer(channel), f"Web Profile {status}: {text}")
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return text.encode("utf-8") + b"\n"
        self._cors(request)
        path = request.path
        if request.method == b"OPTIONS":
            request.setHeader(b"content-length", b"0")
            return b""
        if path.startswith(b"/translator/"):
            return self._translate(request)
        if path != b"/":
            request.setResponseCode(404)
            return b"not found\n"
        if request.method != b"POST":
            request.setResponseCode(405)
            request.setHeader(b"allow", b"POST, OPTIONS")
            return b"SAMP Web Profile XML-RPC endpoint: POST only\n"
        return self._profile.xmlrpc.render_POST(request)

    def _refusal(self, request: Any) -> tuple[int, str] | None:
        peer = getattr(request.getClientAddress(), "host", "")
        if not _is_loopback_address(str(peer)):
            return 403, "Access to the SAMP Web Profile from non-local hosts is not permitted"
        if not is_loopback_host(request.getHeader(b"host")):
            return 403, "The Host header must name the local host (localhost, 127.0.0.1 or [::1])"
        if not origin_allowed(_header(request, b"origin")):
            return 403, "Malformed Origin header"
        return None

    @staticmethod
    def _cors(request: Any) -> None:
        origin = _header(request, b"origin")
        if origin is not None:
            request.setHeader(b"access-control-allow-origin", origin.encode("utf-8"))
            request.setHeader(b"vary", b"Origin")
        request.setHeader(b"access-control-allow-methods", b"POST, GET, OPTIONS")
        request.setHeader(b"access-control-allow-headers", b"Content-Type")
        request.setHeader(b"access-control-allow-private-network", b"true")
        request.setHeader(b"access-control-max-age", b"600")

    def _translate(self, request: Any) -> int | bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            return b"the translator answers GET\n"
        uri = request.uri.decode("utf-8", "replace")
        key_part, question, target = uri[len("/translator/"):].partition("?")
        if not question or not target:
            request.setResponseCode(400)
            return b"give the URL to translate after '?'\n"
        if target.startswith("ref="):  # astropy's spelling of the prefix
            target = unquote(target[4:])
        d = self._profile.translate(unquote(key_part), target)
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))

        def served(result: tuple[bytes, bytes]) -> None:
            if finished:
                return
            content_type, body = result
            request.setHeader(b"content-type", content_type)
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()

        def refused(failure: Failure) -> None:
            if finished:
                return
            if failure.check(TranslationRefused):
                status, text = failure.value.status, failure.value.text  # type: ignore[union-attr]
            elif failure.check(defer.TimeoutError):
                status, text = 504, "the resource took too long"
            else:
                status, text = 502, f"fetch failed: {failure.getErrorMessage()}"
            body = text.encode("utf-8") + b"\n"
            request.setResponseCode(status)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"content-length", b"%d" % len(body))
            request.write(body)
            request.finish()

        d.addCallbacks(served, refused)
        return server.NOT_DONE_YET


def _header(request: Any, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")
