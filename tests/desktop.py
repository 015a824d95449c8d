"""
The desktop SAMP applications astronomers run (SAOImage DS9, TOPCAT and
Aladin, as Debian packages them) started headless for interoperability
tests.

One Xvfb serves every application of a test.  Each application gets a home
directory of its own inside the test's directory (and, for the Java ones,
``-Duser.home`` and ``-Djava.io.tmpdir`` there too), so none reads or writes
the real ``~/.samp``.  Everything runs under the reactor
(``reactor.spawnProcess``): a test waits for what an application does on
Deferreds with timeouts, never by sleeping.

When a test ends, :meth:`Desktop.close` stops every process by its own pid
(SIGTERM, then SIGKILL) and writes each one's output to ``<name>.log`` in the
test's directory; :meth:`Desktop.tails` gives the end of each for failure
messages.
"""

import collections
import os
import shutil

from twisted.internet import defer, error as ierror
from twisted.internet.protocol import ProcessProtocol

from sampy_twisted import SAMP_STATUS_OK, SAMPIntegratedClient
from sampy_twisted._process import KILL_AFTER, ProcessFailed, ProcessTimedOut, spawn

START_TIMEOUT = 150.0
"""Seconds an application may take to start and register: JVMs start slowly
on a loaded machine with 2 shared cores."""

CALL_TIMEOUT = 60
"""Seconds an application may take to answer one call."""

TAIL_LINES = 40
"""Lines of each log shown when a test fails."""

DS9 = "/usr/bin/ds9"
XVFB = "/usr/bin/Xvfb"
TOPCAT_JAR = "/usr/share/java/starlink-topcat.jar"
ALADIN_JAR = "/usr/share/java/aladin.jar"

CLIENT_NAME = "sampy-twisted-tests"
"""Our client's samp.name."""

# What each application calls itself in its samp.name metadata.
DS9_NAME = "SAOImageDS9"
TOPCAT_NAME = "topcat"
ALADIN_NAME = "Aladin"


class AppMissing(Exception):
    """
    A desktop application the tests need is not installed.
    """


def _require(path, package):
    if not os.path.exists(path):
        raise AppMissing(
            f"{path} is missing: install Debian's {package} package "
            f"(.ci/run installs xvfb saods9 topcat aladin); these tests are never skipped"
        )
    return path


def _java():
    java = shutil.which("java")
    if java is None:
        raise AppMissing("no 'java' program on PATH: install a Java runtime (Debian's default-jre)")
    return java


class _XvfbProtocol(ProcessProtocol):
    """
    Reads the display number Xvfb writes on descriptor 3 once it accepts
    clients (``-displayfd 3``), and keeps its other output.
    """

    def __init__(self):
        self.display = defer.Deferred()
        self.ended = defer.Deferred()
        self.output = []
        self._number = b""

    def connectionMade(self):
        self.transport.closeStdin()

    def childDataReceived(self, fd, data):
        if fd != 3:
            self.output.append(data.decode("utf-8", "replace"))
            return
        self._number += data
        if b"\n" in self._number and not self.display.called:
            self.display.callback(int(self._number.split(b"\n")[0]))

    def processEnded(self, reason):
        if not self.display.called:
            self.display.errback(
                ProcessFailed("Xvfb ended before it took a display", "".join(self.output))
            )
        self.ended.callback(None)


class XServer:
    """
    A running Xvfb.

    :ivar str display: its display name, such as ``":3"``.
    :ivar int pid: its process id.
    """

    def __init__(self, reactor, log_path):
        self._reactor = reactor
        self._log_path = log_path
        self._protocol = _XvfbProtocol()
        # -displayfd makes Xvfb choose a free display number itself, and
        # write it only once it is ready: no race with other X servers.
        argv = [_require(XVFB, "xvfb"), "-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"]
        self._transport = reactor.spawnProcess(
            self._protocol, argv[0], argv, env=dict(os.environ), childFDs={0: "w", 1: "r", 2: "r", 3: "r"}
        )
        self.pid = self._transport.pid
        self.display = None

    async def ready(self, timeout):
        """Wait until Xvfb takes clients; set :attr:`display`."""
        d = self._protocol.display
        d.addTimeout(timeout, self._reactor)
        try:
            number = await d
        except defer.TimeoutError:
            raise ProcessTimedOut(f"Xvfb took no display within {timeout:g} s", "".join(self._protocol.output))
        self.display = f":{number}"
        return self

    def _signal(self, name):
        try:
            self._transport.signalProcess(name)
        except ierror.ProcessExitedAlready:
            pass

    def stop(self, kill_after=KILL_AFTER):
        """
        SIGTERM, then SIGKILL if Xvfb is still running *kill_after* seconds
        later.

        :return: a Deferred firing once it has ended and its log is written.
        """
        d = defer.Deferred()
        self._protocol.ended.addBoth(lambda _: d.callback(None))
        if not d.called:
            self._signal("TERM")
            killer = self._reactor.callLater(kill_after, self._signal, "KILL")
            d.addBoth(lambda result: killer.cancel() if killer.active() else None)
        return d.addCallback(self._write_log)

    def _write_log(self, _):
        with open(self._log_path, "w") as log:
            log.write("".join(self._protocol.output))


class Desktop:
    """
    An Xvfb and the applications started on it for one test.

    :param testcase: the trial test; everything goes in a directory from its
        ``mktemp()``, and is stopped by a cleanup it registers.
    :param reactor: the reactor.
    """

    def __init__(self, testcase, reactor):
        self._reactor = reactor
        self.directory = os.path.abspath(testcase.mktemp())
        os.makedirs(self.directory)
        self.xserver = None
        self.apps = {}
        testcase.addCleanup(self.close)

    async def start_display(self, timeout=30.0):
        """Start the Xvfb every application of this desktop uses."""
        self.xserver = XServer(self._reactor, os.path.join(self.directory, "xvfb.log"))
        await self.xserver.ready(timeout)

    def home(self, name):
        """A new home directory (with a ``tmp`` inside) for application *name*."""
        home = os.path.join(self.directory, name)
        os.makedirs(os.path.join(home, "tmp"))
        return home

    def _environ(self, home, lockfile):
        env = dict(os.environ, HOME=home, DISPLAY=self.xserver.display, TMPDIR=os.path.join(home, "tmp"))
        env.pop("SAMP_HUB", None)
        if lockfile is not None:
            env["SAMP_HUB"] = "std-lockurl:file://" + os.path.abspath(lockfile)
        return env

    def _start(self, name, argv, home, lockfile):
        process = spawn(argv, self._environ(home, lockfile), home, self._reactor, name=name)
        self.apps[name] = process
        return process

    def start_ds9(self, lockfile):
        """
        Start SAOImage DS9 registering with the hub of *lockfile*.  DS9
        looks for a hub only as it starts: start the hub first.
        """
        home = self.home("ds9")
        # -debug samp logs every SAMP exchange, which the tests count.
        argv = [_require(DS9, "saods9"), "-xpa", "no", "-debug", "samp"]
        return self._start("ds9", argv, home, lockfile)

    def _java_argv(self, home, *rest):
        return [
            _java(),
            "-Xmx512m",
            f"-Duser.home={home}",
            f"-Djava.io.tmpdir={os.path.join(home, 'tmp')}",
            *rest,
        ]

    def start_topcat(self, lockfile=None, hub=False):
        """
        Start TOPCAT.  With *hub*, TOPCAT runs a JSAMP hub of its own
        (``<home>/.samp``) when none is running.

        Java is run directly, not through Debian's ``topcat`` script, which
        would leave the JVM running when it is killed.  TOPCAT's hub would
        listen on the fixed port 2525, and its Web Profile on 21012; here
        the hub takes a free port and the Web Profile is off, so two tests
        (or a user's TOPCAT) never collide.
        """
        home = self.home("topcat")
        argv = self._java_argv(
            home,
            "-Djsamp.server.port=0",
            "-Djsamp.hub.profiles=std",
            "-classpath",
            _require(TOPCAT_JAR, "topcat"),
            "uk.ac.starlink.topcat.Driver",
            "-samp",
            "-verbose",
            *(() if hub else ("-nohub",)),
        )
        process = self._start("topcat", argv, home, lockfile)
        process.home = home
        return process

    def start_aladin(self, lockfile):
        """
        Start Aladin.  It ignores ``SAMP_HUB`` and reads only
        ``<user.home>/.samp``: that is made a link to *lockfile*, so it
        follows the hub of that lockfile as it comes and goes.
        """
        home = self.home("aladin")
        os.symlink(os.path.abspath(lockfile), os.path.join(home, ".samp"))
        # -local: offline, Aladin's server dialog is otherwise never built
        # and image loading fails.
        argv = self._java_argv(home, "-jar", _require(ALADIN_JAR, "aladin"), "-local", "-trace")
        return self._start("aladin", argv, home, lockfile)

    def tails(self, lines=TAIL_LINES):
        """The last *lines* lines of every application's output, as text."""
        parts = []
        for name, process in self.apps.items():
            tail = "\n".join(process.lines[-lines:])
            result = process.result
            state = "running" if result is None else f"ended: exit code {result.exit_code}, signal {result.signal}"
            parts.append(f"--- {name} (pid {process.pid}, {state}), last {lines} lines ---\n{tail}")
        return "\n".join(parts)

    async def close(self):
        """Stop every application, then Xvfb, and write their logs."""
        apps = list(self.apps.items())
        await defer.gatherResults([process.stop() for _, process in apps], consumeErrors=True)
        for name, process in apps:
            with open(os.path.join(self.directory, f"{name}.log"), "w") as log:
                log.write(process.output)
        if self.xserver is not None:
            await self.xserver.stop()


def wait_for_client(tracker, name, mtype, timeout, reactor, process=None):
    """
    Wait until a client called *name* (its ``samp.name``, ignoring case) is
    registered and subscribed to *mtype*.

    :param tracker: the :class:`~sampy_twisted.ClientTracker` of a client
        connected to the hub.
    :param process: the application's process: its end fails the wait.
    :return: a Deferred firing with the client's id.
    """
    wanted = name.casefold()

    def found():
        for client_id, client in tracker.items():
            if (client.name or "").casefold() == wanted and client.is_subscribed(mtype):
                return client_id
        return None

    d = defer.Deferred()

    def changed(event, client_id):
        client_id = found()
        if client_id is not None and not d.called:
            d.callback(client_id)

    def ended(result):
        if not d.called:
            tail = "\n".join(process.lines[-TAIL_LINES:])
            d.errback(ProcessFailed(f"{process.name} ended (exit code {result.exit_code}, signal "
                                    f"{result.signal}) before registering", tail))

    def done(result):
        tracker.remove_observer(changed)
        return result

    def timed_out(result, timeout):
        tail = "" if process is None else "\n".join(process.lines[-TAIL_LINES:])
        raise ProcessTimedOut(f"{name} did not register (subscribed to {mtype}) within {timeout:g} s", tail)

    tracker.add_observer(changed)
    if process is not None:
        process.ended.addCallback(ended)
    existing = found()
    if existing is not None:
        d.callback(existing)
    d.addTimeout(timeout, reactor, onTimeoutCancel=timed_out)
    return d.addBoth(done)


class CheckedClient:
    """
    Our client, sending calls to the applications and checking that each
    is answered, once, with ``samp.ok``.

    :ivar client: the :class:`~sampy_twisted.SAMPIntegratedClient`, which
        tracks the other clients.
    :ivar int sent: calls sent.
    :ivar answers: responses received per msg-tag.
    :ivar images: ``(sender id, params)`` of each ``image.load.fits``
        notification sent to us, in a DeferredQueue.
    """

    def __init__(self, reactor, name=CLIENT_NAME):
        self._reactor = reactor
        self.client = SAMPIntegratedClient(name=name, reactor=reactor, track_clients=True)
        self.sent = 0
        self.answers = collections.Counter()
        self.images = defer.DeferredQueue()
        self.client.bind_receive_notification(
            "image.load.fits", lambda key, sender, mtype, params, extra: self.images.put((sender, params))
        )
        inner = self.client.client
        receive = inner.receive_response

        def counting(private_key, responder_id, msg_tag, response):
            self.answers[msg_tag] += 1
            return receive(private_key, responder_id, msg_tag, response)

        # Seen by the callback server, which is made when the client connects.
        inner.receive_response = counting

    async def connect(self, hub_params):
        await self.client.connect(hub_params=hub_params).addTimeout(30, self._reactor)
        return self

    async def disconnect(self):
        if self.client.is_connected:
            await self.client.disconnect()

    def registered(self, name, mtype, process=None, timeout=START_TIMEOUT):
        """Wait for the client called *name*; see :func:`wait_for_client`."""
        return wait_for_client(self.client.clients, name, mtype, timeout, self._reactor, process)

    def call_for_response(self, recipient_id, mtype, timeout=CALL_TIMEOUT, **params):
        """
        Send a call and wait for its response.

        :return: a Deferred firing with the response map.
        """
        self.sent += 1
        return self.client.ecall_and_wait(recipient_id, mtype, str(timeout), **params)

    async def call(self, recipient_id, mtype, timeout=CALL_TIMEOUT, **params):
        """
        Send a call and wait for its response.

        :return: its ``samp.result`` map.
        :raises AssertionError: the answer is not ``samp.ok``.
        """
        response = await self.call_for_response(recipient_id, mtype, timeout, **params)
        if response.get("samp.status") != SAMP_STATUS_OK:
            raise AssertionError(f"{mtype} {params} to {recipient_id} answered {response}")
        return response.get("samp.result", {})

    def check_answered_once(self):
        """
        :raises AssertionError: a call got no answer or more than one.
        """
        repeated = {tag: n for tag, n in self.answers.items() if n != 1}
        if repeated or len(self.answers) != self.sent:
            raise AssertionError(
                f"{self.sent} calls sent, {len(self.answers)} answered; answered more than once: {repeated}"
            )
