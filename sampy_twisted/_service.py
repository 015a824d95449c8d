# -*- test-case-name: tests.test_service -*-
"""
A long-running SAMP client as a Twisted service.

:class:`SAMPClientService` owns one :class:`SAMPIntegratedClient` and keeps
it registered for as long as the service runs: it finds a hub (waiting for
one, or starting one in-process), registers, notices when the hub goes away
and registers again when a hub is back, with the same metadata,
subscriptions and handlers.

The hub is watched by every route there is: ``samp.hub.event.shutdown`` and
``samp.hub.disconnect`` and the client's liveness check (a periodic request
that needs the client's private key, so that a hub restarted at the same
address, which has forgotten the client, is noticed as well as one that is
gone), all handled by the client itself, and a periodic look at the
lockfile, which must still exist and carry the secret the client registered
with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, cast

from twisted.application import service
from twisted.application.internet import backoffPolicy
from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from ._discovery import STD_LOCKURL, get_hub_params, lockfile_location, read_lockfile
from ._errors import SAMPClientError, SAMPHubError
from ._hub_finder import find_or_start_hub, stop_started_hub
from ._integrated import SAMPIntegratedClient
from ._reactor import default_reactor

if TYPE_CHECKING:
    from ._hub import SAMPHubServer
    from ._tls import TLSOptions

__all__ = [
    "HUB_AUTO",
    "HUB_EMBEDDED",
    "HUB_MODES",
    "HUB_RUNNING",
    "SAMPClientService",
]

HUB_AUTO = "auto"
"""Hub mode: use the running hub; if there is none when the service starts,
start an embedded one.  Once registered with a hub it did not start, the
service never starts its own: it waits for a hub to come back."""

HUB_RUNNING = "running"
"""Hub mode: use the running hub; while there is none, wait for one."""

HUB_EMBEDDED = "embedded"
"""Hub mode: always run an embedded hub, in-process, and use it."""

HUB_MODES = (HUB_AUTO, HUB_RUNNING, HUB_EMBEDDED)
"""The hub modes :class:`SAMPClientService` understands."""

# States of the service.
_STOPPED = "stopped"
_CONNECTING = "connecting"
_REGISTERED = "registered"
_WAITING = "waiting"
_STOPPING = "stopping"

#: An observer of the registration, ``f(event, detail)``: see
#: :meth:`SAMPClientService.add_connection_observer`.
ConnectionObserver = Callable[[str, str], object]

_T = TypeVar("_T")


def _default_retry_policy() -> Callable[[int], float]:
    return backoffPolicy(initialDelay=1.0, maxDelay=30.0, factor=1.5)


def _is_url(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and text.startswith(("http://", "https://"))


def _why(failure: Failure) -> str:
    """A one-line account of *failure* for the log."""
    if failure.check(defer.TimeoutError):
        return "no answer in time"
    return failure.getErrorMessage() or cast(type, failure.type).__name__


class _Waiter:
    """One :meth:`SAMPClientService.when_registered` call."""

    __slots__ = ("deferred", "failures_left")

    deferred: defer.Deferred[SAMPIntegratedClient]
    failures_left: int | None

    def __init__(self, deferred: defer.Deferred[SAMPIntegratedClient], failures_left: int | None) -> None:
        self.deferred = deferred
        self.failures_left = failures_left


class SAMPClientService(service.Service):
    """
    Keep a SAMP client registered with a hub for as long as the service
    runs.

    On :meth:`startService` the service finds a hub according to *hub*,
    connects the client (registration, metadata, callback and
    subscriptions) and then watches the hub.  When the registration ends
    (a hub shutdown, ``samp.hub.disconnect``, a failed liveness check of
    the client, or the lockfile removed or rewritten by a new hub) the client's pending
    ``call_and_wait`` calls fail with :class:`SAMPClientError`, its callback
    port closes, and the service registers it again as soon as a hub is
    there, waiting between failed attempts as *retry_policy* says.  Handlers
    bound on the client stay bound: nothing has to be redone by the
    application.

    :meth:`stopService` unregisters (waiting at most *unregister_timeout*),
    closes the callback port, stops an embedded hub, and returns a Deferred
    firing when all of that is done.

    Which hub it uses, in the default ``"auto"`` mode: the running hub
    (TOPCAT's, JSAMP's, any other); only if none answers when the service
    starts does it start an embedded hub, as TOPCAT does.  After losing a
    hub it did not start, it never starts its own: it waits for a hub to
    come back and registers with it, so that the hub can be restarted at
    will.  An embedded hub lives in this process and stops with the
    service; if other clients still use it then, the service logs a warning
    naming them, and the hub tells them ``samp.hub.event.shutdown``.

    :param client: the :class:`SAMPIntegratedClient` to keep registered,
        with its handlers bound; it must not be connected already.  The
        service connects and disconnects it.
    :param str hub: the hub mode: :data:`HUB_AUTO` (``"auto"``: use the
        running hub; only if there is none at start, start an embedded
        one), :data:`HUB_RUNNING`
        (``"running"``: wait for a hub to appear) or :data:`HUB_EMBEDDED`
        (``"embedded"``: always run our own hub, in-process).
    :param str lockfile: the lockfile to use: a local path, or an ``http:``
        or ``https:`` URL (running hubs only).  By default it is found the
        standard way each time (``SAMP_HUB``, else ``~/.samp``).  An
        embedded hub writes its lockfile there.
    :param float ping_interval: seconds between the client's liveness
        checks of the hub while registered (its ``hub_check_interval``,
        which is used when ``None``).
    :param float ping_timeout: seconds a liveness check may take before the
        hub counts as gone (the client's ``hub_check_timeout`` when
        ``None``).
    :param float lockfile_check_interval: seconds between looks at a local
        lockfile (while registered, to notice it vanishing or changing;
        while waiting, to notice a new hub at once).
    :param retry_policy: ``policy(attempt) -> seconds`` to wait before the
        next attempt after *attempt* + 1 consecutive failures (default:
        ``backoffPolicy(initialDelay=1.0, maxDelay=30.0, factor=1.5)``).
    :param float unregister_timeout: seconds :meth:`stopService` waits for
        the hub to take the unregistration.
    :param hub_factory: ``hub_factory(lockfile_path)`` making an unstarted
        embedded hub; by default a :class:`SAMPHubServer` on this reactor.
    :param reactor: the reactor (the global one when ``None``); it is also
        the clock of pings, lockfile checks and retries.
    :param environ: the environment hub discovery reads (``os.environ`` by
        default).
    :param TLSOptions hub_tls: the TLS settings for ``https`` hubs, passed
        to :meth:`SAMPIntegratedClient.connect` at every registration: the
        CA bundle verifying the hub (or ``cert_reqs=ssl.CERT_NONE``, the
        explicit opt-out) and the client certificate to present.  They do
        not matter for ``http`` hubs.  (The callback server's own TLS
        settings belong to the client.)  The default embedded hub serves
        plain http, so that every SAMP tool can use it, and calls https
        callbacks with these settings: their CA bundle verifies the callback
        servers, and their certificate is presented to them.

    :ivar client: the :class:`SAMPIntegratedClient`.
    :ivar embedded_hub: the embedded hub while one runs, else ``None``.
    """

    _log = Logger()

    def __init__(
        self,
        client: SAMPIntegratedClient,
        hub: str = HUB_AUTO,
        lockfile: str | os.PathLike[str] | None = None,
        ping_interval: float | None = None,
        ping_timeout: float | None = None,
        lockfile_check_interval: float = 1.0,
        retry_policy: Callable[[int], float] | None = None,
        unregister_timeout: float = 5.0,
        hub_factory: Callable[[str], SAMPHubServer] | None = None,
        reactor: IReactorTime | None = None,
        environ: Mapping[str, str] | None = None,
        hub_tls: TLSOptions | None = None,
    ) -> None:
        if hub not in HUB_MODES:
            raise ValueError(f"hub mode {hub!r} is not one of {', '.join(HUB_MODES)}")
        if hub == HUB_EMBEDDED and _is_url(lockfile):
            raise ValueError("an embedded hub cannot write its lockfile to a URL")
        for name, value in [
            ("ping_interval", ping_interval),
            ("ping_timeout", ping_timeout),
            ("lockfile_check_interval", lockfile_check_interval),
            ("unregister_timeout", unregister_timeout),
        ]:
            if value is None and name.startswith("ping_"):
                continue  # the client's own setting
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        reactor = cast(IReactorTime, default_reactor(reactor))
        self.client = client
        self.embedded_hub: SAMPHubServer | None = None
        self._mode = hub
        self._lockfile: str | None = None if lockfile is None else os.fspath(lockfile)
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._check_interval = lockfile_check_interval
        self._retry_policy = retry_policy or _default_retry_policy()
        self._unregister_timeout = unregister_timeout
        self._hub_factory = hub_factory or self._make_embedded_hub
        self._reactor = reactor
        self._environ = environ
        self._hub_tls = hub_tls

        self._state = _STOPPED
        self._has_stopped = False  # a waiter then fails rather than waits for a start
        self._loop: defer.Deferred[None] | None = None
        self._failures = 0
        self._may_embed = hub == HUB_AUTO
        self._waiters: list[_Waiter] = []
        self._observers: list[ConnectionObserver] = []
        self._watcher: task.LoopingCall | None = None
        self._pause: tuple[defer.Deferred[None], IDelayedCall] | None = None
        self._pause_baseline: str | None = None
        self._registered_path: str | None = None
        self._registered_secret: str | None = None

    # -- public state and hooks --------------------------------------------

    @property
    def is_registered(self) -> bool:
        """Whether the client is registered with a hub right now."""
        return self._state == _REGISTERED and self.client.is_connected

    @property
    def hub_mode(self) -> str:
        """The hub mode: ``"auto"``, ``"running"`` or ``"embedded"``."""
        return self._mode

    def when_registered(self, fail_after_failures: int | None = None) -> defer.Deferred[SAMPIntegratedClient]:
        """
        Wait until the client is registered.

        :param int fail_after_failures: fail after this many more attempts
            to register have failed; ``None`` waits for as long as it takes.
        :return: a Deferred firing with the :class:`SAMPIntegratedClient`
            (at once if it is registered now), or failing with the last
            attempt's error, or with :class:`SAMPClientError` if the service
            stops first.
        """
        if self._state == _REGISTERED:
            return defer.succeed(self.client)
        if fail_after_failures is not None and fail_after_failures < 1:
            raise ValueError("fail_after_failures must be at least 1")
        if self._state == _STOPPING or (self._state == _STOPPED and self._has_stopped):
            return defer.fail(SAMPClientError("the SAMP client service stopped"))
        waiter = _Waiter(defer.Deferred(lambda d: self._waiters.remove(waiter)), fail_after_failures)
        self._waiters.append(waiter)
        return waiter.deferred

    def add_connection_observer(self, function: ConnectionObserver) -> None:
        """
        Call ``function(event, detail)`` whenever the registration changes:
        *event* is ``"registered"`` (*detail*: the client's public id) or
        ``"lost"`` (*detail*: why, as text).  Exceptions it raises are
        logged and otherwise ignored.
        """
        self._observers.append(function)

    def remove_connection_observer(self, function: ConnectionObserver) -> None:
        """
        Stop calling *function*.

        :raises ValueError: it was not an observer.
        """
        self._observers.remove(function)

    # -- service lifecycle -------------------------------------------------

    def startService(self) -> None:
        """Start looking for a hub and keep the client registered."""
        super().startService()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self._state = _CONNECTING
        self._failures = 0
        self._may_embed = self._mode == HUB_AUTO  # an embedded hub only at first start
        self._watcher = task.LoopingCall(self._check_lockfile)
        self._watcher.clock = self._reactor
        self._watcher.start(self._check_interval, now=False).addErrback(
            lambda f: self._log.failure("SAMP lockfile watch failed", f)
        )
        self._loop = defer.ensureDeferred(self._run())
        self._loop.addErrback(self._loop_ended)

    def stopService(self) -> defer.Deferred[None]:
        """
        Unregister (waiting at most ``unregister_timeout``), close the
        callback port and stop an embedded hub.

        :return: a Deferred firing when everything is stopped.
        """
        super().stopService()  # type: ignore[no-untyped-call]  # not annotated in Twisted
        self._state = _STOPPING
        self._has_stopped = True
        self._stop_looping(self._watcher)
        self._watcher = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.deferred.errback(SAMPClientError("the SAMP client service stopped"))
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        loop, self._loop = self._loop, None
        if self.client.is_connected:
            await self._unregister()
        if loop is not None and not loop.called:
            settled: defer.Deferred[None] = defer.Deferred()

            def settle(result: _T) -> _T:
                settled.callback(None)
                return result

            loop.addBoth(settle)
            loop.cancel()
            await settled
        await self._stop_embedded_hub()
        if not self.running:  # not started again meanwhile
            self._state = _STOPPED

    async def _unregister(self) -> None:
        d = self.client.disconnect()
        d.addTimeout(self._unregister_timeout, self._reactor)
        try:
            await d
        except Exception:
            self._log.warn(
                "Could not unregister from the SAMP hub: {why}", why=_why(Failure())
            )
        else:
            self._log.info("Unregistered from the SAMP hub")

    def _loop_ended(self, failure: Failure) -> None:
        if not failure.check(defer.CancelledError):
            self._log.failure("The SAMP client service stopped working", failure)

    @staticmethod
    def _stop_looping(call: task.LoopingCall | None) -> None:
        if call is not None and call.running:
            call.stop()

    # -- the main loop -----------------------------------------------------

    async def _run(self) -> None:
        while self.running:
            self._state = _CONNECTING
            baseline = self._lockfile_secret(self._lockfile_path())
            try:
                params = await self._attempt()
            except defer.CancelledError:
                raise
            except Exception:
                self._attempt_failed(Failure())
                await self._wait(self._retry_policy(self._failures - 1), baseline)
                continue
            lost = self.client.when_disconnected()
            self._now_registered(params)
            reason = await lost
            if not self.running:
                return
            self._now_lost(reason)
            await self._wait(self._retry_policy(0), self._registered_secret)

    def _attempt(self) -> Coroutine[Any, Any, dict[str, str]]:
        if self._mode == HUB_EMBEDDED:
            return self._use_embedded_hub()
        if self._mode == HUB_RUNNING or not self._may_embed:
            return self._use_running_hub()
        return self._use_running_or_embedded_hub()

    async def _use_running_hub(self) -> dict[str, str]:
        path, params = await self._read_lockfile()
        await self._connect(params, path)
        return params

    async def _use_running_or_embedded_hub(self) -> dict[str, str]:
        path, params, hub = await find_or_start_hub(self._reactor, self._read_lockfile, self._start_embedded_hub)
        await self._connect(params, path, own=hub is not None)
        return params

    async def _use_embedded_hub(self) -> dict[str, str]:
        hub = await self._start_embedded_hub()
        params: dict[str, str] = cast("dict[str, str]", hub.params)  # set once started
        await self._connect(params, hub.lockfile, own=True)
        return params

    async def _read_lockfile(self) -> tuple[str | None, dict[str, str]]:
        """The lockfile's path (``None`` for a URL) and entries."""
        if _is_url(self._lockfile):
            environ = {"SAMP_HUB": STD_LOCKURL + self._lockfile}
            return None, await get_hub_params(self._reactor, environ=environ)
        if self._lockfile is not None:
            return self._lockfile, read_lockfile(self._lockfile)
        kind, where = lockfile_location(self._environ)
        if kind == "file":
            return where, read_lockfile(where)
        return None, await get_hub_params(self._reactor, environ=self._environ)

    async def _connect(self, params: dict[str, str], path: str | None, own: bool = False) -> None:
        # No tls argument at all for plain hubs (a duck-typed client may not take it).
        settings: dict[str, Any] = {} if self._hub_tls is None else {"tls": self._hub_tls}
        if self._ping_interval is not None:
            self.client.hub_check_interval = self._ping_interval
        if self._ping_timeout is not None:
            self.client.hub_check_timeout = self._ping_timeout
        await self.client.connect(hub_params=params, **settings)
        self._registered_path = path
        self._registered_secret = params.get("samp.secret")
        if not own and self._may_embed:
            self._may_embed = False
            self._log.info("Using a SAMP hub started elsewhere: if it goes away, waiting for a hub to come back")

    # -- state changes -----------------------------------------------------

    def _now_registered(self, params: dict[str, str]) -> None:
        self._state = _REGISTERED
        self._failures = 0
        public_id = self.client.get_public_id()
        self._log.info(
            "Registered with the SAMP hub at {url} as {client_id}",
            url=params.get("samp.hub.xmlrpc.url"),
            client_id=public_id,
        )
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.deferred.callback(self.client)
        self._tell_observers("registered", cast(str, public_id))

    def _now_lost(self, reason: str) -> None:
        self._state = _WAITING
        self._log.warn("Lost the SAMP hub: {reason}; registering again when a hub is back", reason=reason)
        self._tell_observers("lost", reason)

    def _attempt_failed(self, failure: Failure) -> None:
        self._state = _WAITING
        self._failures += 1
        self._log.warn(
            "Cannot register with a SAMP hub (attempt {attempt}): {why}",
            attempt=self._failures,
            why=_why(failure),
        )
        for waiter in list(self._waiters):
            if waiter.failures_left is None:
                continue
            waiter.failures_left -= 1
            if waiter.failures_left <= 0:
                self._waiters.remove(waiter)
                waiter.deferred.errback(failure)

    def _tell_observers(self, event: str, detail: str) -> None:
        for observer in list(self._observers):
            try:
                observer(event, detail)
            except Exception:
                self._log.failure("SAMP connection observer {observer!r} failed", observer=observer)

    def _end_registration(self, reason: str) -> None:
        """End the registration here, the hub being gone."""
        if self._state != _REGISTERED:
            return
        # The client's own route for a lost hub: pending waits fail, the
        # callback server stops and when_disconnected() fires.
        self.client.drop_connection(reason)

    # -- waiting between attempts ------------------------------------------

    def _wait(self, delay: float, baseline: str | None) -> defer.Deferred[None]:
        """
        Wait *delay* seconds, or less if the lockfile's secret stops being
        *baseline* (a hub appeared, went or was replaced).
        """
        self._log.debug("Next SAMP registration attempt in {delay:.1f} s", delay=delay)

        def cancel(d: defer.Deferred[None]) -> None:
            if timer.active():
                timer.cancel()
            self._pause = None

        d: defer.Deferred[None] = defer.Deferred(cancel)
        timer = self._reactor.callLater(delay, self._end_pause, d)
        self._pause = (d, timer)
        self._pause_baseline = baseline
        return d

    def _end_pause(self, d: defer.Deferred[None]) -> None:
        if self._pause is not None and self._pause[0] is d:
            _, timer = self._pause
            self._pause = None
            if timer.active():
                timer.cancel()
            d.callback(None)

    # -- watching the hub --------------------------------------------------

    def _lockfile_path(self) -> str | None:
        """The local lockfile to watch now, or ``None``."""
        if self._state == _REGISTERED:
            return self._registered_path
        if self._lockfile is not None:
            return None if _is_url(self._lockfile) else self._lockfile
        try:
            kind, where = lockfile_location(self._environ)
        except SAMPHubError:
            return None
        return where if kind == "file" else None

    @staticmethod
    def _lockfile_secret(path: str | None) -> str | None:
        if path is None:
            return None
        try:
            return read_lockfile(path).get("samp.secret")
        except Exception:  # missing, unreadable or malformed: no hub there
            return None

    def _check_lockfile(self) -> None:
        path = self._lockfile_path()
        if path is None:
            return
        secret = self._lockfile_secret(path)
        if self._state == _REGISTERED:
            if secret is None:
                self._end_registration(f"the hub's lockfile {path} was removed")
            elif secret != self._registered_secret:
                self._end_registration(f"the lockfile {path} now names another hub")
        elif self._pause is not None and secret != self._pause_baseline:
            self._log.debug("SAMP lockfile {path} changed: trying at once", path=path)
            self._end_pause(self._pause[0])

    # -- the embedded hub --------------------------------------------------

    def _make_embedded_hub(self, lockfile: str) -> SAMPHubServer:
        from ._hub import SAMPHubServer

        # Plain http, so that every SAMP tool can use it; https callbacks
        # (ours, when the client serves them) are called with hub_tls.
        return SAMPHubServer(reactor=self._reactor, lockfile=lockfile, callback_tls=self._hub_tls)

    def _embedded_lockfile_path(self) -> str:
        if self._lockfile is not None:
            if _is_url(self._lockfile):
                raise SAMPHubError(
                    f"cannot start an embedded hub: its lockfile would be the URL {self._lockfile}"
                )
            return self._lockfile
        kind, where = lockfile_location(self._environ)
        if kind != "file":
            raise SAMPHubError(
                f"cannot start an embedded hub: SAMP_HUB names the lockfile URL {where}"
            )
        return where

    async def _start_embedded_hub(self) -> SAMPHubServer:
        hub = self.embedded_hub
        if hub is not None and hub.is_running:
            if self._lockfile_secret(hub.lockfile) == cast("dict[str, str]", hub.params)["samp.secret"]:
                return hub
        await self._stop_embedded_hub()
        hub = self._hub_factory(self._embedded_lockfile_path())
        self.embedded_hub = hub
        try:
            await hub.start()
        except defer.CancelledError:
            raise  # still starting: stopService stops it
        except BaseException:
            if self.embedded_hub is hub:
                self.embedded_hub = None
            raise
        self._log.info("Embedded SAMP hub running, lockfile {lockfile}", lockfile=hub.lockfile)
        return hub

    async def _stop_embedded_hub(self) -> None:
        hub, self.embedded_hub = self.embedded_hub, None
        if hub is not None:
            try:
                await stop_started_hub(hub)
            except Exception:
                self._log.failure("The embedded SAMP hub did not stop cleanly")
