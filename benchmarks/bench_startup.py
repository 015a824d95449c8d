#!/usr/bin/env python
"""
Benchmark command start-up: ``sampy-twisted ping hub`` against JSAMP's
``messagesender`` pinging the same hub, each a new process.

    python benchmarks/bench_startup.py [--n N] [--hub ours|jsamp]
                                       [--baseline DIR]

One hub (ours by default; ``--hub jsamp`` for JSAMP's, repeatable for both)
runs in a temporary directory (never ~/.samp).  Each round runs every
command below once, one after the other, rotating which goes first, so
that drifting machine load hits all alike; the table shows the median and
the fastest of N rounds (default 10) of each, in wall time and in the CPU
time of the process (user + system, children included).

sampy-twisted ping hub
    the console script: registers, sends ``samp.app.ping`` to the client
    named (or with the id) ``hub`` (the hub itself), waits for its answer,
    unregisters.  The script is the one pip writes for the entry point
    setup.cfg declares (``sampy_twisted._cli_entry:main``), written to the
    temporary directory: it runs ``ping`` without Twisted
    (``sampy_twisted._oneshot``), through the hub's ``samp.hub.callAndWait``.
    If the ``sampy-twisted`` installed next to this interpreter (or first on
    PATH, such as a pyenv shim) runs another entry point (an install older
    than the one-shot path), it gets a row of its own.
sampy-twisted ping
    the console script's ``samp.hub.ping`` only: no registration.
python -m sampy_twisted._cli ping hub
    the full command, on Twisted: a callback server, ``samp.hub.call``.
python -m sampy_twisted._cli ping
    the full command's ``samp.hub.ping`` only.
JSAMP messagesender
    ``messagesender -mtype samp.app.ping -targetid hub -mode sync``:
    registers, sends ``samp.app.ping`` to the hub through
    ``samp.hub.callAndWait``, prints the answer, unregisters.
python -c "import sampy_twisted", python -c pass, java -version
    what importing the package costs, and each runtime's floor.
Twisted's floor
    ``python -c "import twisted.internet.reactor, twisted.web.client,
    twisted.web.server"``: what the reactor, HTTP client and server that a
    registering command runs on cost to import, before any of our code.

Our commands run with ``PYTHONPATH`` set to this checkout, and without
``PYTHONDONTWRITEBYTECODE``: like an installed package, they use cached
bytecode (each command runs once untimed first, which also warms the disk
cache and the JVM's class data).  ``--baseline DIR`` adds the ``ping hub``
and import rows for the sampy_twisted package in DIR (say, an older
checkout), measured in the same rounds.

The goal (issue 14): ``sampy-twisted ping hub`` no slower than JSAMP's
messagesender, in median wall time.  Every child process is stopped at the
end, on error and on Ctrl-C.  See benchmarks/README.md.
"""

import argparse
import configparser
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

from _common import (  # noqa: E402
    HUB_TITLES,
    ROOT,
    OnceAtShutdown,
    format_table,
    load_average,
    machine_summary,
    start_hub_process,
)

SCRIPT = "sampy-twisted"
JSAMP_PING = ("-mtype", "samp.app.ping", "-targetid", "hub", "-mode", "sync")
RUN_TIMEOUT = 60.0  # seconds one command may take before it is killed
GOAL = "ping hub (console script)"  # the row compared with JSAMP's
# What any command built on Twisted's reactor, HTTP client and server loads.
TWISTED_FLOOR = "import twisted.internet.reactor, twisted.web.client, twisted.web.server"


class Stopped(Exception):
    """The run is being cut short (Ctrl-C, SIGTERM)."""


class Command:
    """
    One command line to time, with what its output must contain.

    :ivar name: the row's title.
    :ivar argv: the command line.
    :ivar root: the tree whose sampy_twisted it imports (``PYTHONPATH``), or
        ``None`` for a command that imports none.
    :ivar expect: text its output must contain, or ``None``.
    """

    def __init__(self, name, argv, root=None, expect=None):
        self.name = name
        self.argv = argv
        self.root = root
        self.expect = expect

    def shown(self):
        """The command line as one would type it."""
        line = subprocess.list2cmdline(self.argv)
        return f"PYTHONPATH={self.root} {line}" if self.root else line


def _entry_point():
    """``(module, function)`` of the ``sampy-twisted`` console script, as
    setup.cfg declares it."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    for line in config["options.entry_points"]["console_scripts"].splitlines():
        name, _, target = line.partition("=")
        if name.strip() == SCRIPT:
            module, _, function = target.strip().partition(":")
            return module, function
    raise LookupError(f"setup.cfg declares no {SCRIPT} console script")


def write_console_script(directory):
    """
    Write the ``sampy-twisted`` script pip would install for setup.cfg's
    entry point (the same lines, this interpreter in its ``#!`` line).

    :return: its path.
    """
    module, function = _entry_point()
    path = os.path.join(directory, SCRIPT)
    with open(path, "w") as f:
        f.write(
            f"#!{sys.executable}\n"
            "# -*- coding: utf-8 -*-\n"
            "import re\n"
            "import sys\n"
            f"from {module} import {function}\n"
            "if __name__ == '__main__':\n"
            "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
            f"    sys.exit({function}())\n"
        )
    os.chmod(path, 0o755)
    return path


def _installed_scripts():
    """
    The installed ``sampy-twisted`` scripts that run another entry point
    than setup.cfg's (an install older than this checkout): the one next to
    this interpreter, and the one on PATH when that is another program (a
    pyenv shim, which runs the first through a shell script).

    :return: a list of ``(title, path)``.
    """
    module, function = _entry_point()
    scripts = []
    beside = os.path.join(os.path.dirname(sys.executable), SCRIPT)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        with open(beside, errors="replace") as f:
            current = f"from {module} import {function}" in f.read()
        if not current:
            scripts.append(("ping hub (installed script, older entry)", beside))
    on_path = shutil.which(SCRIPT)
    if on_path and not (os.path.exists(beside) and os.path.samefile(on_path, beside)):
        scripts.append(("ping hub (sampy-twisted on PATH)", on_path))
    return scripts


def commands(options, home, script):
    """The command lines of one run, in their first order."""
    from sampy_twisted._jsamp import JSampNotFound, find_jsamp, jsamp_command

    python = sys.executable
    rows = [
        Command(GOAL, [script, "ping", "hub"], ROOT, "samp.ok"),
        Command("ping (console script, hub only)", [script, "ping"], ROOT, "alive"),
    ]
    rows += [Command(title, [path, "ping", "hub"], ROOT, "samp.ok") for title, path in _installed_scripts()]
    rows += [
        Command("python -m ... ping hub", [python, "-m", "sampy_twisted._cli", "ping", "hub"], ROOT, "samp.ok"),
        Command("python -m ... ping (hub only)", [python, "-m", "sampy_twisted._cli", "ping"], ROOT, "alive"),
    ]
    try:
        rows.append(Command("JSAMP messagesender", jsamp_command(home, "messagesender", JSAMP_PING), None, "samp.ok"))
        rows.append(Command("java -version", [find_jsamp()[0], "-version"]))
    except JSampNotFound as exc:
        print(f"note: {exc}: no JSAMP row", file=sys.stderr)
    rows += [
        Command("import sampy_twisted", [python, "-c", "import sampy_twisted"], ROOT),
        Command("Twisted's floor", [python, "-c", TWISTED_FLOOR]),
        Command("python -c pass", [python, "-c", "pass"]),
    ]
    if options.baseline:
        rows += [
            Command("baseline: python -m ... ping hub", [python, "-m", "sampy_twisted._cli", "ping", "hub"],
                    options.baseline, "samp.ok"),
            Command("baseline: import sampy_twisted", [python, "-c", "import sampy_twisted"], options.baseline),
        ]
    return rows


class Runner:
    """Runs one command at a time, timing it; :meth:`kill` ends the one
    running (from another thread, at shutdown)."""

    def __init__(self, environ, directory):
        self._environ = environ
        self._directory = directory
        self._process = None
        self.stopping = False

    def run(self, command):
        """
        Run *command* to its end.

        :return: ``(wall seconds, CPU seconds)``.
        :raises RuntimeError: it failed, printed something unexpected, or
            took longer than RUN_TIMEOUT.
        """
        if self.stopping:
            raise Stopped()
        env = dict(self._environ)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # installed packages have their bytecode cached
        env.pop("PYTHONPATH", None)
        if command.root:
            env["PYTHONPATH"] = command.root
        with tempfile.TemporaryFile() as output:
            started = time.perf_counter()
            process = self._process = subprocess.Popen(
                command.argv, env=env, cwd=self._directory, stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT,
            )
            timer = threading.Timer(RUN_TIMEOUT, self.kill_running)
            timer.start()
            try:
                # wait4 gives this child's own CPU time; Popen is told the status.
                _, status, usage = os.wait4(process.pid, 0)
            finally:
                timer.cancel()
                self._process = None
            wall = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            output.seek(0)
            text = output.read().decode("utf-8", "replace")
        if self.stopping:
            raise Stopped()
        if process.returncode != 0 or (command.expect and command.expect not in text):
            raise RuntimeError(f"{command.shown()} exited with {process.returncode}:\n{text.rstrip()}")
        return wall, usage.ru_utime + usage.ru_stime

    def kill(self):
        """End the running command, if any, and run no other."""
        self.stopping = True
        self.kill_running()

    def kill_running(self):
        """End the running command, if any (it then fails)."""
        process = self._process
        if process is not None and process.returncode is None:
            try:
                os.kill(process.pid, signal.SIGKILL)
            except OSError:
                pass


def _table(rows, results):
    def ms(value):
        return f"{value * 1000:.0f}"

    jsamp = results.get("JSAMP messagesender")
    jsamp_wall = statistics.median(jsamp[0]) if jsamp else None
    table = [("command", "wall median ms", "wall min ms", "CPU median ms", "wall / JSAMP's")]
    for row in rows:
        walls, cpus = results[row.name]
        wall = statistics.median(walls)
        ratio = f"{wall / jsamp_wall:.2f}" if jsamp_wall else "-"
        table.append((row.name, ms(wall), ms(min(walls)), ms(statistics.median(cpus)), ratio))
    return format_table(table)


def _goal(results):
    ours, jsamp = results.get(GOAL), results.get("JSAMP messagesender")
    if not ours or not jsamp:
        return "goal: not measured (no console script or no JSAMP)"
    ratio = statistics.median(ours[0]) / statistics.median(jsamp[0])
    met = "met" if ratio <= 1.0 else "not met"
    return f"goal (sampy-twisted ping hub no slower than JSAMP's messagesender): {met}, ratio {ratio:.2f}"


async def orchestrate(reactor, options):
    from twisted.internet import threads

    directory = tempfile.mkdtemp(prefix="bench-startup-")
    state = {"hub": None, "runner": None}

    async def clean_up():
        if state["runner"] is not None:
            state["runner"].kill()
        if state["hub"] is not None:
            await state["hub"].stop()
        shutil.rmtree(directory, ignore_errors=True)

    clean_up_once = OnceAtShutdown(reactor, clean_up)
    print(machine_summary())
    print(f"load average at start: {load_average()}")
    try:
        for kind in options.hubs:
            hub_directory = os.path.join(directory, kind)
            home = os.path.join(directory, f"{kind}-clients")
            os.mkdir(hub_directory)
            os.mkdir(home)
            state["hub"] = await start_hub_process(kind, reactor, hub_directory)
            # Clients find the hub through SAMP_HUB; their home is another
            # directory, so none of them reads the hub's own files.
            environ = dict(state["hub"].environ, HOME=home)
            runner = state["runner"] = Runner(environ, home)
            rows = commands(options, home, write_console_script(directory))
            print(f"\n{HUB_TITLES[kind]} hub, {options.n} rounds; the commands:")
            for row in rows:
                print(f"  {row.name}: {row.shown()}")
            results = {row.name: ([], []) for row in rows}
            for row in rows:  # untimed: bytecode caches, disk cache, JVM class data
                await threads.deferToThread(runner.run, row)
            for index in range(options.n):
                shift = index % len(rows)
                for row in rows[shift:] + rows[:shift]:
                    wall, cpu = await threads.deferToThread(runner.run, row)
                    results[row.name][0].append(wall)
                    results[row.name][1].append(cpu)
            print(f"\n{HUB_TITLES[kind]} hub, medians of {options.n} (load average now: {load_average()}):")
            print(_table(rows, results))
            print(_goal(results))
            await state["hub"].stop()
            state["hub"] = None
    except Stopped:
        print("\ninterrupted: every child process stopped", file=sys.stderr)
    finally:
        await clean_up_once()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="rounds; medians are shown (default 10)")
    parser.add_argument("--hub", dest="hubs", choices=("ours", "jsamp"), action="append",
                        help="the hub pinged (default ours; repeatable)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the sampy_twisted package in DIR (say, an older checkout)")
    options = parser.parse_args(argv)
    options.hubs = options.hubs or ["ours"]
    if options.n < 1:
        parser.error("--n must be at least 1")
    if options.baseline:
        options.baseline = os.path.abspath(options.baseline)
        if not os.path.isdir(os.path.join(options.baseline, "sampy_twisted")):
            parser.error(f"--baseline: no sampy_twisted package in {options.baseline}")
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(orchestrate(reactor, options)))


if __name__ == "__main__":
    main()
