"""
Headless Debian chromium driven over the DevTools protocol, for tests.

Chromium runs with ``--remote-debugging-pipe``: it reads commands from its
file descriptor 3 and writes answers and events to 4, each a JSON text
ended by a NUL byte, so no websocket library is needed.  One page target
is opened and attached (flat sessions); :meth:`Chromium.evaluate` runs a
script in it, awaiting a promise.
"""

import base64
import json
import os
import shutil
import signal
import tempfile

from twisted.internet import defer, protocol

CHROMIUM = "/usr/bin/chromium"

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--remote-debugging-pipe",
]


class CDPError(Exception):
    """A DevTools command failed, or chromium went away."""


class _Pipe(protocol.ProcessProtocol):
    def __init__(self):
        self.buffer = b""
        self.waiting = {}
        self.ended_waiters = []
        self.stderr = b""
        self.exited = False

    def childDataReceived(self, fd, data):
        if fd == 2:
            self.stderr = (self.stderr + data)[-20000:]
            return
        if fd != 4:
            return
        self.buffer += data
        while b"\0" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\0", 1)
            message = json.loads(raw)
            d = self.waiting.pop(message.get("id"), None)
            if d is None:
                continue
            if "error" in message:
                d.errback(CDPError(json.dumps(message["error"])))
            else:
                d.callback(message.get("result", {}))

    def processEnded(self, reason):
        self.exited = True
        waiting, self.waiting = self.waiting, {}
        for d in waiting.values():
            d.errback(CDPError(f"chromium ended: {reason.value}"))
        waiters, self.ended_waiters = self.ended_waiters, []
        for d in waiters:
            d.callback(None)

    def when_ended(self):
        d = defer.Deferred()
        if self.exited:
            d.callback(None)
        else:
            self.ended_waiters.append(d)
        return d


class Chromium:
    """
    A headless chromium with one page; :meth:`start` it, :meth:`stop` it.

    :param reactor: the reactor.
    :param size: the window size, ``(width, height)``.
    """

    def __init__(self, reactor, size=(1280, 800)):
        self._reactor = reactor
        self._size = size
        self._pipe = _Pipe()
        self._ids = iter(range(1, 1 << 30))
        self._session = None
        self._profile = None
        self._transport = None

    def start(self):
        """Start chromium and open an empty page; a Deferred."""
        self._profile = tempfile.mkdtemp(prefix="sampy-chromium-")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TZ")}
        env["HOME"] = self._profile
        args = [CHROMIUM, *_FLAGS, f"--user-data-dir={self._profile}",
                f"--window-size={self._size[0]},{self._size[1]}", "about:blank"]
        self._transport = self._reactor.spawnProcess(
            self._pipe, CHROMIUM, args, env=env, childFDs={0: "w", 1: "r", 2: "r", 3: "w", 4: "r"}
        )
        return defer.ensureDeferred(self._attach())

    async def _attach(self):
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        self._session = attached["sessionId"]
        await self.send("Page.enable", session=True)
        return self

    def send(self, method, params=None, session=False):
        """Send a DevTools command; a Deferred of its result."""
        if self._pipe.exited:
            return defer.fail(CDPError(f"chromium has ended; stderr: {self._pipe.stderr[-2000:]!r}"))
        message = {"id": next(self._ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        d = defer.Deferred()
        self._pipe.waiting[message["id"]] = d
        self._transport.writeToChild(3, json.dumps(message).encode() + b"\0")
        return d

    def navigate(self, url):
        """Open *url* in the page."""
        return self.send("Page.navigate", {"url": url}, session=True)

    async def evaluate(self, expression):
        """The value of the JavaScript *expression* (a promise is awaited)."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise CDPError(json.dumps(result["exceptionDetails"])[:2000])
        return result["result"].get("value")

    def wait_for(self, condition, timeout=30.0):
        """
        The first truthy value of the JavaScript *condition*, checked in the
        page after each DOM change (and every 50 ms) until *timeout*.
        """
        script = (
            "new Promise((resolve) => {"
            f" const check = () => {{ try {{ return ({condition}); }} catch (e) {{ return null; }} }};"
            " const first = check(); if (first) { resolve(first); return; }"
            " const done = (v) => { observer.disconnect(); clearInterval(timer); resolve(v); };"
            " const observer = new MutationObserver(() => { const v = check(); if (v) done(v); });"
            " observer.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});"
            " const timer = setInterval(() => { const v = check(); if (v) done(v); }, 50);"
            "})"
        )
        d = defer.ensureDeferred(self.evaluate(script))
        return d.addTimeout(timeout, self._reactor)

    async def screenshot(self, path):
        """Save a PNG of the page to *path*."""
        result = await self.send("Page.captureScreenshot", {"format": "png"}, session=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(result["data"]))

    async def stop(self):
        """Close chromium (killing it by its pid if it does not go) and remove its profile."""
        if not self._pipe.exited and self._transport is not None:
            try:
                closing = self.send("Browser.close")
                closing.addErrback(lambda _: None)
                await self._pipe.when_ended().addTimeout(10, self._reactor)
            except defer.TimeoutError:
                pass
            if not self._pipe.exited:
                try:
                    os.kill(self._transport.pid, signal.SIGKILL)
                except (OSError, TypeError):
                    pass
                await self._pipe.when_ended()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
