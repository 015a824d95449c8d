"""
Helpers shared by the benchmarks: starting any of the three hubs (ours,
JSAMP's, astropy's) in a child process, describing the machine, and plain
text tables.  (CPU and load readings come from ``bench_client``.)

Run as a script, it is our hub's child process when the hub is profiled or
given settings the command line has no option for::

    python benchmarks/_common.py run-hub LOCKFILE [NAME=VALUE ...] [--profile OUT]
                                         [--root DIR]

runs a :class:`sampy_twisted.SAMPHubServer` (``NAME=VALUE``: its arguments,
such as ``max_concurrent_deliveries=4``) until SIGTERM or SIGINT, optionally
under cProfile measuring CPU time (not wall time: on a loaded machine wall
time mostly measures waiting for a core), written to OUT when it stops.  With ``--root DIR`` it imports the
sampy_twisted package of DIR (another checkout) instead of this one's.
"""

import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

HUB_KINDS = ("ours", "jsamp", "astropy")
HUB_TITLES = {"ours": "ours", "jsamp": "JSAMP", "astropy": "astropy", "baseline": "baseline"}

# ``twistd`` as its console script runs it, for ``python -c``.
_TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def our_hub_argv(lockfile, via="cli", profile=None, settings=None, root=ROOT):
    """
    The command line running our hub in a child process.

    :param str via: ``"cli"`` for ``sampy-twisted hub``, ``"twistd"`` for
        ``twistd -n samp-hub``.
    :param str profile: a path: profile the hub and write the profile there.
    :param dict settings: more :class:`SAMPHubServer` arguments.
    With either of these, the hub runs through :func:`run_hub` instead.
    :param str root: the checkout whose sampy_twisted runs the hub.
    """
    if profile is not None or settings:
        extra = ["--profile", profile] if profile is not None else []
        extra += ["--root", root]
        # The settings before --profile: argparse takes positionals in one run.
        return [sys.executable, os.path.abspath(__file__), "run-hub", lockfile,
                *(f"{name}={value!r}" for name, value in (settings or {}).items()), *extra]
    if via == "twistd":
        # No pid file: several hubs (and tests) may run in one directory.
        return [sys.executable, "-c", _TWISTD, "-n", "--pidfile=", "samp-hub", "--lockfile", lockfile]
    return [sys.executable, "-m", "sampy_twisted._cli", "hub", "--lockfile", lockfile]


def start_hub_process(kind, reactor, directory, timeout=60.0, via="cli", profile=None, settings=None,
                      root=ROOT):
    """
    Start a hub of *kind* (``ours``, ``jsamp``, ``astropy``, or
    ``baseline``: ours from the checkout *root*) in a child process, its
    home and lockfile (``<directory>/.samp``) in *directory*.

    :param str root: for ``ours`` and ``baseline``, the checkout whose
        ``sampy_twisted`` the hub runs (this one by default; another to
        compare a change).

    :return: a Deferred firing with a
        :class:`sampy_twisted.testing.HubProcess` once the hub answers.
    """
    from sampy_twisted import testing
    from sampy_twisted._process import lockfile_environ, start_hub

    if kind == "jsamp":
        return testing.start_jsamp_hub(reactor=reactor, directory=directory, timeout=timeout)
    if kind == "astropy":
        return testing.start_astropy_hub(reactor=reactor, directory=directory, timeout=timeout)
    if kind not in ("ours", "baseline"):
        raise ValueError(f"unknown hub kind {kind!r}")
    lockfile = os.path.join(directory, ".samp")
    env = lockfile_environ(directory, lockfile)
    # The child must import its checkout (and twistd find its plugin).
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = our_hub_argv(lockfile, via, profile, settings, root)
    name = ("our hub" if kind == "ours" else "baseline hub") + ("" if profile or settings else f" ({via})")
    if kind == "ours" and root != ROOT:
        name += f" from {root}"
    return start_hub(argv, env, directory, lockfile, timeout, reactor, name=name)


def _cpu_ticks():
    """(busy, total) clock ticks of the whole machine so far (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


async def wait_until_quiet(reactor, busy=0.15, window=0.1, limit=10.0):
    """
    Wait (at most *limit* seconds) until the machine's processors were
    busy less than *busy* of a *window* of seconds: a round then starts
    without the tail of the last (a JVM's garbage collector, say) sharing
    the processors with it.

    :return: the seconds waited (``limit`` if it never got quiet).
    """
    from twisted.internet import task

    started = reactor.seconds()
    try:
        before = _cpu_ticks()
    except OSError:
        return 0.0  # not Linux: no reading, no wait
    while reactor.seconds() - started < limit:
        await task.deferLater(reactor, window)
        now = _cpu_ticks()
        spent, elapsed = now[0] - before[0], now[1] - before[1]
        before = now
        if elapsed and spent / elapsed < busy:
            break
    return reactor.seconds() - started


def load_average():
    """The machine's load averages (1, 5, 15 minutes), as text."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


class Stopping(Exception):
    """The run is being cut short (Ctrl-C, SIGTERM): start nothing more."""


class OnceAtShutdown:
    """
    Runs *clean_up* (a coroutine function: stop every child, remove the
    temporary directory) once: when called (at the end of a run, or on
    error) or at the reactor's shutdown (Ctrl-C, SIGTERM), whichever comes
    first.  Calling it again gives the same Deferred.
    """

    def __init__(self, reactor, clean_up):
        self._clean_up = clean_up
        self._running = None
        reactor.addSystemEventTrigger("before", "shutdown", self)

    @property
    def started(self):
        """Whether the clean-up has begun: start nothing more."""
        return self._running is not None

    def go_on(self):
        """Raise :class:`Stopping` once the clean-up has begun."""
        if self.started:
            raise Stopping()

    def __call__(self):
        from twisted.internet import defer

        if self._running is None:
            self._running = defer.ensureDeferred(self._clean_up())
        return self._running


def astropy_samp():
    """
    astropy's ``SAMPIntegratedClient`` and ``read_lockfile``, imported
    without its deprecation warning, and told not to look up google.com to
    pick a host name.
    """
    import warnings

    from astropy.utils.exceptions import AstropyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyDeprecationWarning)
        from astropy.samp import SAMPIntegratedClient, conf
        from astropy.samp.lockfile_helpers import read_lockfile
    conf.use_internet = False
    return SAMPIntegratedClient, read_lockfile


def line_writer():
    """A function writing a line to stdout at once, from any thread."""
    import threading

    lock = threading.Lock()

    def say(text):
        with lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    return say


def log_problems_to_stderr():
    """
    In a worker: log warnings and errors only, to stderr, where the
    orchestrator reads them (as an application would configure it; the
    library itself never starts logging).
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def serve_blocking_commands(client, commands, say):
    """
    A blocking worker's (astropy's) end of the orchestrator's line
    protocol: announce *client*'s id, then run each line of stdin as
    ``commands[command](*args)`` and ``say`` its result (or ``error
    COMMAND: why``, on one line), until stdin closes; then disconnect.
    """
    say(f"ready {client.get_public_id()}")
    try:
        for line in sys.stdin:  # ends when the orchestrator closes our stdin
            command, *args = line.split()
            try:
                say(commands[command](*args))
            except Exception as exc:
                say(f"error {command}: {' '.join(str(exc).split())[:300]}")
    finally:
        try:
            client.disconnect()
        except Exception:
            pass


def command_protocol(reactor, client, commands):
    """
    A worker's end of the orchestrator's line protocol (on its stdin and
    stdout): each line is a command and its arguments, run as
    ``await commands[command](*args)``; the result, or ``error COMMAND:
    why``, goes back as a line (and ``say`` writes any other).  When stdin
    closes (the orchestrator is done, or died), *client* disconnects and the
    reactor stops.

    :param dict commands: command name to coroutine function; may be
        filled after this is called.
    """
    from twisted.internet import defer
    from twisted.protocols.basic import LineReceiver

    class Control(LineReceiver):
        delimiter = b"\n"

        def say(self, text):
            self.sendLine(text.encode())

        def lineReceived(self, line):
            command, *args = line.decode().split()
            d = defer.ensureDeferred(commands[command](*args))
            d.addCallbacks(self.say, lambda f: self.say(f"error {command}: {f.getErrorMessage()}"))

        def connectionLost(self, reason):
            d = client.disconnect() if client.is_connected else defer.succeed(None)
            d.addBoth(lambda _: reactor.stop())

    return Control()


def machine_summary():
    """One paragraph on the machine and the software measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            cpu = names[0]
    except OSError:
        pass
    versions = [f"Python {platform.python_version()}"]
    for module in ("twisted", "astropy"):
        try:
            versions.append(f"{module} {__import__(module).__version__}")
        except ImportError:
            pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        versions.append(java.stderr.splitlines()[0].strip())
    except (OSError, IndexError, subprocess.SubprocessError):
        pass
    return f"{os.cpu_count()} x {cpu}; {platform.system()} {platform.release()}; {', '.join(versions)}"


def format_table(rows, right_from=1):
    """
    Plain text columns, a rule under the first row; columns from
    *right_from* on are right-aligned.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        cells = [c.ljust(w) if i < right_from else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    lines = [line(row) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_settings(pairs):
    """``NAME=VALUE`` strings as a dict; values are Python literals, else strings."""
    import ast

    settings = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"{pair!r} is not NAME=VALUE")
        try:
            settings[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[name] = value
    return settings


def run_hub(lockfile, settings, profile=None):
    """Run our hub until SIGTERM or SIGINT, perhaps under cProfile."""
    import cProfile
    import time

    from twisted.internet import defer, task

    from sampy_twisted import SAMPHubServer

    async def main(reactor):
        hub = SAMPHubServer(reactor, lockfile=lockfile, **settings)
        await hub.start()
        reactor.addSystemEventTrigger("before", "shutdown", hub.stop)
        print(f"SAMP hub running at {hub.url}, lockfile {hub.lockfile}", flush=True)
        await defer.Deferred()  # until the signal stops the reactor

    def run():
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))

    if profile is None:
        return run()
    profiler = cProfile.Profile(time.process_time)
    try:
        profiler.runcall(run)
    finally:
        profiler.dump_stats(profile)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python benchmarks/_common.py run-hub")
    parser.add_argument("command", choices=["run-hub"])
    parser.add_argument("lockfile")
    parser.add_argument("--profile", metavar="OUT")
    parser.add_argument("--root", default=ROOT, help="the checkout whose sampy_twisted to run")
    parser.add_argument("settings", nargs="*", metavar="NAME=VALUE")
    args = parser.parse_args()
    sys.path.insert(0, args.root)  # before run_hub imports sampy_twisted
    run_hub(args.lockfile, parse_settings(args.settings), args.profile)
