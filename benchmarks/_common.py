"""
Helpers shared by the benchmarks: starting any of the three hubs (ours,
JSAMP's, astropy's) in a child process, describing the machine, and plain
text tables.  (CPU and load readings come from ``bench_client``.)

Run as a script, it is the profiled hub child::

    python benchmarks/_common.py profile-hub OUT.prof [sampy-twisted hub options]

runs ``sampy-twisted hub`` under cProfile (CPU time, not wall time: on a
loaded machine wall time mostly measures waiting for a core) and writes the
profile to OUT.prof when the hub stops (SIGTERM or SIGINT).
"""

import os
import platform
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

HUB_KINDS = ("ours", "jsamp", "astropy")
HUB_TITLES = {"ours": "ours", "jsamp": "JSAMP", "astropy": "astropy"}

# ``twistd`` as its console script runs it, for ``python -c``.
_TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def our_hub_argv(lockfile, via="cli", profile=None):
    """
    The command line running our hub in a child process.

    :param str via: ``"cli"`` for ``sampy-twisted hub``, ``"twistd"`` for
        ``twistd -n samp-hub``.
    :param str profile: a path: run ``sampy-twisted hub`` under cProfile
        and write the profile there.
    """
    if profile is not None:
        return [sys.executable, os.path.abspath(__file__), "profile-hub", profile, "--lockfile", lockfile]
    if via == "twistd":
        # No pid file: several hubs (and tests) may run in one directory.
        return [sys.executable, "-c", _TWISTD, "-n", "--pidfile=", "samp-hub", "--lockfile", lockfile]
    return [sys.executable, "-m", "sampy_twisted._cli", "hub", "--lockfile", lockfile]


def start_hub_process(kind, reactor, directory, timeout=60.0, via="cli", profile=None):
    """
    Start a hub of *kind* (``ours``, ``jsamp`` or ``astropy``) in a child
    process, its home and lockfile (``<directory>/.samp``) in *directory*.

    :return: a Deferred firing with a
        :class:`sampy_twisted.testing.HubProcess` once the hub answers.
    """
    from sampy_twisted import testing
    from sampy_twisted._process import lockfile_environ, start_hub

    if kind == "jsamp":
        return testing.start_jsamp_hub(reactor=reactor, directory=directory, timeout=timeout)
    if kind == "astropy":
        return testing.start_astropy_hub(reactor=reactor, directory=directory, timeout=timeout)
    if kind != "ours":
        raise ValueError(f"unknown hub kind {kind!r}")
    lockfile = os.path.join(directory, ".samp")
    env = lockfile_environ(directory, lockfile)
    # The child must import this checkout (and twistd find its plugin).
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    argv = our_hub_argv(lockfile, via, profile)
    return start_hub(argv, env, directory, lockfile, timeout, reactor, name=f"our hub ({via})")


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


def _profile_hub(out, args):
    import cProfile
    import time

    from sampy_twisted._cli import main

    profiler = cProfile.Profile(time.process_time)
    try:
        profiler.runcall(main, ["hub", *args])
    except SystemExit as exc:
        return exc.code
    finally:
        profiler.dump_stats(out)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "profile-hub":
        sys.exit(f"usage: {sys.argv[0]} profile-hub OUT.prof [sampy-twisted hub options]")
    sys.exit(_profile_hub(sys.argv[2], sys.argv[3:]))
