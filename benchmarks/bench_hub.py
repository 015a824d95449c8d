#!/usr/bin/env python
"""
Benchmark SAMP hubs: ours (sampy_twisted), JSAMP's and astropy's, each in a
child process, driven by the same clients.

    python benchmarks/bench_hub.py [--n N] [--repeat R] [--concurrency C]
                                   [--storm-repeat R] [--storm-timeout S]
                                   [--warmup S] [--max-time S]
                                   [--hub-setting NAME=VALUE]
                                   [--hub KIND] [--driver KIND] [--metric M]
                                   [--storm-mode MODE]
                                   [--our-hub cli|twistd] [--profile-hub OUT]
                                   [--baseline DIR]

Each hub writes its lockfile in a temporary directory (never ~/.samp); ours
runs as ``python -m sampy_twisted._cli hub`` (``sampy-twisted hub``) or,
with ``--our-hub twistd``, as ``twistd -n samp-hub``.  With ``--baseline
DIR``, a fourth hub, "baseline", is ours run from the sampy_twisted package
in DIR (an older checkout, say ``git worktree add --detach /tmp/base
COMMIT``), measured in the same rounds as the others, with an
``ours/baseline`` column: what a change gains, and that nothing got slower.
The drivers:

astropy, ours
    a sender and a receiver of that client library (the workers of
    bench_client.py, each a child process of its own) registered with each
    hub.  notify/s: N notifications, C in flight, counted at the receiver.
    call+reply/s: N calls, C in flight, each answered through
    ``samp.hub.reply``.  call_and_wait/s: N sequential calls, waiting for
    each response.  astropy's client waits in the hub
    (``samp.hub.callAndWait``); ours waits itself (``samp.hub.call``, the
    response through ``receiveResponse``).
calcstorm
    JSAMP's ``calcstorm -nclient 10 -nquery 100`` in modes sync
    (``callAndWait``), async (``call``/``reply``) and notify:
    clients x queries / the elapsed time it reports (which includes
    registering and unregistering its clients).  A run that does not finish
    within --storm-timeout seconds is killed and counted as that bound (shown
    as ``<rate``); it is not repeated.

The rounds of each figure alternate between hubs, rotating which goes
first, so that drifting machine load hits every hub alike; the table shows
medians, ratios and the goals: at least JSAMP's throughput everywhere, and at
least 4x astropy's on call_and_wait through the hub's ``samp.hub.callAndWait``
(astropy's client's).
A second table gives each hub's CPU time per message.  A round that fails
(a worker reports an error or time runs out) is reported and left out of
the median.  The run is bounded: every round has a time limit and no new
round starts after --max-time seconds.  Every child process is stopped at
the end, on error and on Ctrl-C.
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import bench_client  # noqa: E402  (its workers drive the astropy and ours rows)
from _common import (  # noqa: E402
    HUB_KINDS,
    HUB_TITLES,
    ROOT,
    OnceAtShutdown,
    Stopping,
    format_table,
    load_average,
    machine_summary,
    parse_settings,
    start_hub_process,
)

CLIENT_METRICS = ("notify", "call", "wait")
STORM_MODES = ("notify", "async", "sync")  # sync last: a hub that hangs on it spoils no other figure
DRIVERS = ("astropy", "ours", "calcstorm")
TITLES = {
    ("client", "notify"): "notify/s",
    ("client", "call"): "call+reply/s",
    ("client", "wait"): "call_and_wait/s",
    ("calcstorm", "notify"): "notify/s",
    ("calcstorm", "async"): "async call/s",
    ("calcstorm", "sync"): "sync callAndWait/s",
}
# The goal against astropy's hub is on call_and_wait through the hub's
# samp.hub.callAndWait, which astropy's hub busy-polls: astropy's client's.
# Our client's call_and_wait waits in the client (samp.hub.call and
# receiveResponse), and calcstorm sync keeps ten callAndWait calls in flight,
# which hides the polling: their ratios are shown without that goal.
HUB_WAIT_FIGURES = {("astropy", "wait")}
GOAL_VS_JSAMP = 1.0
GOAL_VS_ASTROPY_WAIT = 4.0
_ELAPSED = re.compile(r"Elapsed time: (\d+) ms")


def title(driver, metric):
    return TITLES["calcstorm" if driver == "calcstorm" else "client", metric]


class Sample:
    """One round: messages/s, the hub's CPU us per message, whether the rate
    is only an upper bound (the round was cut off), the connection attempts
    full listen queues dropped meanwhile (machine-wide), and the replies
    astropy's waiter lost, with the seconds they took."""

    def __init__(self, rate, cpu_us, bound=False, drops=0, lost=0, lost_time=0.0):
        self.rate, self.cpu_us, self.bound, self.drops = rate, cpu_us, bound, drops
        self.lost, self.lost_time = lost, lost_time


class RoundFailed(Exception):
    pass


def astropy_waiter(recipient, timeout):
    """
    astropy's client doing sequential ``call_and_wait`` (the hub's
    ``samp.hub.callAndWait``) to *recipient*, driven by ``wait KEY N`` lines
    on stdin.  Unlike bench_client's astropy sender it survives a lost reply:
    astropy's hub drops a reply that comes back before it has registered the
    call it waits for, and that wait then runs until *timeout*.  Such calls
    are counted and their time reported, so that they can be left out.
    """
    import warnings

    from astropy.utils.exceptions import AstropyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyDeprecationWarning)
        from astropy.samp import SAMPIntegratedClient, conf
        from astropy.samp.lockfile_helpers import read_lockfile
    conf.use_internet = False  # else it looks up google.com to pick a host name

    client = SAMPIntegratedClient(name="bench-astropy-waiter", addr="127.0.0.1", callable=False)
    client.connect(hub_params=read_lockfile(os.environ["BENCH_LOCKFILE"]))
    print(f"ready {client.get_public_id()}", flush=True)
    try:
        for line in sys.stdin:  # ends when the orchestrator closes our stdin
            command, *args = line.split()
            if command == "cpu":
                print(f"cpu {bench_client._cpu()!r}", flush=True)
                continue
            key, n = args
            done = lost = 0
            lost_time = 0.0
            t0 = time.monotonic()
            try:
                for i in range(int(n)):
                    message = {"samp.mtype": bench_client.CALL_MTYPE, "samp.params": {"i": str(i)}}
                    t = time.monotonic()
                    try:
                        bench_client.check(client.call_and_wait(recipient, message, str(timeout)))
                    except Exception:
                        if time.monotonic() - t < 0.9 * timeout:
                            raise  # a real error, not a wait that ran out
                        lost += 1
                        lost_time += time.monotonic() - t
                    else:
                        done += 1
            except Exception as exc:
                print(f"error {command}: {exc}", flush=True)
                continue
            print(f"done {key} {time.monotonic() - t0!r} {done} {lost} {lost_time!r}", flush=True)
    finally:
        try:
            client.disconnect()
        except Exception:
            pass


async def orchestrate(reactor, options):
    from twisted.internet import defer

    from sampy_twisted.testing import spawn_jsamp_tool

    Worker = bench_client._worker_protocol()
    started = time.monotonic()
    directory = tempfile.mkdtemp(prefix="bench-hub-")
    hubs, workers, tools = {}, [], set()

    async def clean_up():
        await defer.gatherResults([w.stop() for w in workers], consumeErrors=True)
        await defer.gatherResults([t.kill() for t in list(tools)], consumeErrors=True)
        await defer.gatherResults([h.stop() for h in hubs.values()], consumeErrors=True)
        shutil.rmtree(directory, ignore_errors=True)

    clean_up_once = OnceAtShutdown(reactor, clean_up)
    go_on = clean_up_once.go_on

    async def start_hub(kind):
        go_on()
        hub_dir = os.path.join(directory, kind)
        os.makedirs(hub_dir)
        profile = options.profile_hub if kind == "ours" else None
        root = options.baseline if kind == "baseline" else ROOT
        hub = await start_hub_process(kind, reactor, hub_dir, 60.0, options.our_hub, profile,
                                      options.hub_settings, root)
        if clean_up_once.started:
            await hub.stop()  # started while the clean-up ran: it missed this one
            raise Stopping()
        hubs[kind] = hub

    def spawn(kind, lib, role, recipient="-"):
        go_on()
        hub = hubs[kind]
        worker = Worker(reactor, f"{lib} {role} on the {HUB_TITLES[kind]} hub")
        if role == "waiter":
            argv = [sys.executable, os.path.abspath(__file__), "--astropy-waiter", recipient,
                    "--wait-timeout", str(options.wait_timeout)]
        else:
            argv = [sys.executable, bench_client.__file__, "--worker", lib, "--role", role,
                    "--recipient", recipient, "--concurrency", str(options.concurrency)]
        env = dict(hub.environ, BENCH_LOCKFILE=hub.lockfile, PYTHONPATH=ROOT)
        reactor.spawnProcess(worker, sys.executable, argv, env=env, path=ROOT)
        workers.append(worker)
        return worker

    async def pair(kind, lib):
        """The workers of *lib* on hub *kind*: sender, receiver (and for
        astropy the waiter, calling the receiver with call_and_wait)."""
        receiver = spawn(kind, lib, "receiver")
        recipient = await receiver.expect("ready", 90)
        senders = [spawn(kind, lib, "sender", recipient)]
        if lib == "astropy":
            senders.append(spawn(kind, lib, "waiter", recipient))
        for sender in senders:
            await sender.expect("ready", 90)
        return (kind, lib), (*senders, receiver)

    rounds = iter(range(1_000_000))

    async def client_round(kind, lib, metric, n):
        sender, *_, receiver = pairs[kind, lib]
        key = f"r{next(rounds)}"
        lost = lost_time = 0
        limit = 30 + n / 20  # bounded even at 20 messages/s
        cpu = bench_client._process_cpu(hubs[kind].pid)
        drops = bench_client._listen_drops()
        try:
            if metric == "notify":
                sender.send(f"notify {key} {n} {options.concurrency}")
                elapsed = await receiver.expect(f"notified {key} ", limit)
                await sender.expect(f"sent {key} ", limit)
            elif metric == "call":
                sender.send(f"call {key} {n} {options.concurrency}")
                elapsed = await sender.expect(f"done {key} ", limit)
            elif lib == "astropy":
                waiter = pairs[kind, lib][1]
                waiter.send(f"wait {key} {n}")
                elapsed, done, lost, lost_time = (await waiter.expect(f"done {key} ", limit)).split()
                # Rate of the calls answered, in the time they took.
                n, lost, lost_time = int(done), int(lost), float(lost_time)
                elapsed = float(elapsed) - lost_time
                if not n:
                    raise RoundFailed(f"every reply was lost ({lost})")
            else:
                sender.send(f"wait {key} {n}")
                elapsed = await sender.expect(f"done {key} ", limit)
        except bench_client.WorkerFailed as exc:
            raise RoundFailed(str(exc).strip()) from None
        cpu = bench_client._process_cpu(hubs[kind].pid) - cpu
        return Sample(n / float(elapsed), cpu / n * 1e6, drops=bench_client._listen_drops() - drops,
                      lost=lost, lost_time=lost_time)

    async def storm_round(kind, mode, nclient, nquery):
        hub = hubs[kind]
        args = ("-nclient", str(nclient), "-nquery", str(nquery), "-mode", mode)
        go_on()
        cpu = bench_client._process_cpu(hub.pid)
        drops = bench_client._listen_drops()
        tool = spawn_jsamp_tool("calcstorm", args, lockfile=hub.lockfile, reactor=reactor)
        tools.add(tool)
        try:
            ended = tool.ended.addTimeout(options.storm_timeout, reactor)
            try:
                result = await ended
            except defer.TimeoutError:
                await tool.kill()
                n = nclient * nquery
                return Sample(n / options.storm_timeout, float("nan"), bound=True)
        finally:
            tools.discard(tool)
        match = _ELAPSED.search(result.output)
        if result.exit_code != 0 or match is None:
            tail = "\n".join(result.output.strip().splitlines()[-8:])
            raise RoundFailed(f"calcstorm {' '.join(args)} failed (exit {result.exit_code}):\n{tail}")
        n = nclient * nquery
        cpu = bench_client._process_cpu(hub.pid) - cpu
        return Sample(n / (int(match.group(1)) / 1000), cpu / n * 1e6, drops=bench_client._listen_drops() - drops)

    skipped = []

    def out_of_time():
        if time.monotonic() - started > options.max_time:
            skipped.append(True)
            return True
        return False

    results = {}  # (driver, metric, hub) -> [Sample]
    failed = {}  # (driver, metric, hub) -> [why]: rounds that failed
    broken = {}  # (driver, hub) -> why: workers no longer usable
    notes = []

    def record(figure, sample):
        results.setdefault(figure, []).append(sample)
        driver, metric, kind = figure
        rate = f"<{sample.rate:.0f}" if sample.bound else f"{sample.rate:.0f}"
        print(f"  {driver:9s} {title(driver, metric):20s} {HUB_TITLES[kind]:8s} {rate:>7s}/s  "
              f"hub CPU {sample.cpu_us:5.0f} us/message"
              + (f"  ({sample.drops} SYNs dropped by full listen queues)" if sample.drops else "")
              + (f"  ({sample.lost} replies lost; their {sample.lost_time:.0f} s left out)" if sample.lost else ""),
              flush=True)

    def fail(figure, exc):
        driver, metric, kind = figure
        failed.setdefault(figure, []).append(str(exc).splitlines()[0])
        print(f"  {driver:9s} {title(driver, metric):20s} {HUB_TITLES[kind]:8s} FAILED: {exc}", flush=True)

    async def still_usable(kind, lib):
        """
        After a failed round: whether the workers answer again, so they have
        finished with it (astropy's workers take one command at a time).  If
        not, they are used no more.
        """
        try:
            for worker in pairs[kind, lib]:
                worker.send("cpu")
                await worker.expect("cpu ", 15)
            return True
        except bench_client.WorkerFailed as exc:
            broken[lib, kind] = str(exc)
            return False

    async def client_figure(kind, lib, metric, n, figure=None):
        go_on()
        if (lib, kind) in broken:
            return
        try:
            sample = await client_round(kind, lib, metric, n)
        except RoundFailed as exc:
            go_on()
            if figure is None:
                print(f"  warm-up: {lib} {title(lib, metric)} on {HUB_TITLES[kind]} failed: {exc}", flush=True)
            else:
                fail(figure, exc)
            await still_usable(kind, lib)
        else:
            if figure is not None:
                record(figure, sample)

    try:
        print(f"machine: {machine_summary()}")
        settings = " ".join(f"{k}={v!r}" for k, v in options.hub_settings.items())
        print(f"hubs: {', '.join(options.hubs)}; drivers: {', '.join(options.drivers)}; n={options.n}, "
              f"concurrency={options.concurrency}, repeat={options.repeat}, storm: -nclient "
              f"{options.storm_clients} -nquery {options.storm_queries} x{options.storm_repeat}; "
              f"our hub via {'run-hub ' + settings if settings or options.profile_hub else options.our_hub}; "
              f"load average: {load_average()}"
              + (f"; baseline: our hub from {options.baseline}" if options.baseline else ""), flush=True)
        await defer.gatherResults([defer.ensureDeferred(start_hub(k)) for k in options.hubs])
        libs = [d for d in options.drivers if d != "calcstorm"]
        pairs = dict(await defer.gatherResults(
            [defer.ensureDeferred(pair(k, lib)) for k in options.hubs for lib in libs]))
        print(f"hubs and clients ready after {time.monotonic() - started:.0f} s", flush=True)

        # Warm up every hub with every driver: JSAMP's JIT compiler needs a
        # few thousand messages before its cost per message settles; our
        # connections and caches, and astropy's, need some too.
        for kind in options.hubs:
            warm_until = time.monotonic() + options.warmup
            while True:
                for lib in libs:
                    for metric in options.metrics:
                        await client_figure(kind, lib, metric, 100)
                if time.monotonic() >= warm_until or all((lib, kind) in broken for lib in libs):
                    break
            if "calcstorm" in options.drivers:
                try:
                    await storm_round(kind, "async", 4, 10)
                except RoundFailed as exc:
                    print(f"  warm-up: calcstorm on {HUB_TITLES[kind]} failed: {exc}", flush=True)
        print(f"warmed up after {time.monotonic() - started:.0f} s", flush=True)

        def rotated(r):
            k = r % len(options.hubs)
            return options.hubs[k:] + options.hubs[:k]

        for lib in libs:
            for metric in options.metrics:
                for r in range(options.repeat):
                    if out_of_time():
                        break
                    for kind in rotated(r):
                        await client_figure(kind, lib, metric, options.n, (lib, metric, kind))
        if "calcstorm" in options.drivers:
            for mode in options.storm_modes:
                for r in range(options.storm_repeat):
                    if out_of_time():
                        break
                    for kind in rotated(r):
                        figure = ("calcstorm", mode, kind)
                        if any(s.bound for s in results.get(figure, ())):
                            continue  # a run that hung is not worth repeating
                        try:
                            sample = await storm_round(kind, mode, options.storm_clients, options.storm_queries)
                        except RoundFailed as exc:
                            go_on()
                            fail(figure, exc)
                            continue
                        record(figure, sample)
                        if sample.bound:
                            notes.append(f"calcstorm -mode {mode} on {HUB_TITLES[kind]}'s hub did not finish "
                                         f"within {options.storm_timeout:g} s and was killed")
        if skipped:
            notes.append(f"rounds were skipped: none starts after --max-time {options.max_time:g} s")
        for (lib, kind), why in broken.items():
            notes.append(f"the {lib} workers on {HUB_TITLES[kind]}'s hub stopped answering: {why.splitlines()[0]}")
        print(f"load after: {load_average()}; {time.monotonic() - started:.0f} s in all\n")
        print(report(results, failed, options, notes))
    except Exception:
        if not clean_up_once.started:
            raise
        # Whatever broke once the run was cut short (Stopping, or workers
        # that were stopped under a round) is not worth a traceback.
        print("stopped: interrupted", flush=True)
    finally:
        await clean_up_once()
    if options.profile_hub:
        print(f"\nprofile of our hub: {options.profile_hub} (python -m pstats {options.profile_hub})")


def _median(samples):
    if not samples:
        return None, False, None
    rate = statistics.median(s.rate for s in samples)
    cpu = [s.cpu_us for s in samples if not s.bound]
    # Bound rows are upper limits; the median is one when half the runs were cut off.
    bound = sum(s.bound for s in samples) * 2 >= len(samples)
    return rate, bound, statistics.median(cpu) if cpu else None


def report(results, failed, options, notes):
    figures = [(lib, m) for lib in options.drivers if lib != "calcstorm" for m in options.metrics]
    if "calcstorm" in options.drivers:
        figures += [("calcstorm", m) for m in options.storm_modes]
    kinds = options.hubs
    baseline = "baseline" in kinds
    throughput = [("driver", "figure", *(HUB_TITLES[k] for k in kinds), "ours/JSAMP", "ours/astropy",
                   *(("ours/baseline",) if baseline else ()), "goals")]
    cpu_rows = [("driver", "figure", *(HUB_TITLES[k] for k in kinds),
                 *(("ours/baseline",) if baseline else ()))]
    met = total = 0
    for driver, metric in figures:
        medians = {k: _median(results.get((driver, metric, k))) for k in kinds}

        def cell(k):
            rate, bound, _ = medians[k]
            failures = len(failed.get((driver, metric, k), ()))
            if rate is None:
                return "failed" if failures else "-"
            # *: some rounds failed; the median is of those that did not.
            return f"{'<' if bound else ''}{rate:.0f}{'*' if failures else ''}"

        def ratio(other):
            ours, theirs = medians.get("ours"), medians.get(other)
            if not ours or not theirs or ours[0] is None or theirs[0] is None or ours[1]:
                return None, "-"
            # Against a cut-off run the ratio is a lower bound.
            value = ours[0] / theirs[0]
            return value, f"{'>' if theirs[1] else ''}{value:.2f}"

        vs_jsamp, vs_jsamp_text = ratio("jsamp")
        vs_astropy, vs_astropy_text = ratio("astropy")
        goals = []
        checks = [(vs_jsamp, GOAL_VS_JSAMP, "JSAMP")]
        if (driver, metric) in HUB_WAIT_FIGURES:
            checks.append((vs_astropy, GOAL_VS_ASTROPY_WAIT, "astropy"))
        for value, goal, whom in checks:
            if value is None:
                continue
            total += 1
            ok = value >= goal
            met += ok
            goals.append(f">={goal:g}x {whom} {'yes' if ok else 'NO'}")
        # Against the baseline: no goal, but a ratio under 1 is a slowdown.
        vs_base = (ratio("baseline")[1],) if baseline else ()
        throughput.append((driver, title(driver, metric), *(cell(k) for k in kinds),
                           vs_jsamp_text, vs_astropy_text, *vs_base, "; ".join(goals) or "-"))
        cpu = {k: medians[k][2] for k in kinds}
        cpu_vs_base = ()
        if baseline:
            ours_cpu, base_cpu = cpu.get("ours"), cpu.get("baseline")
            cpu_vs_base = ("-" if not ours_cpu or not base_cpu else f"{ours_cpu / base_cpu:.2f}",)
        cpu_rows.append((driver, title(driver, metric),
                         *("-" if cpu[k] is None else f"{cpu[k]:.0f}" for k in kinds), *cpu_vs_base))
    lines = [
        f"Throughput, messages/s (median of {options.repeat} rounds, calcstorm {options.storm_repeat}):",
        "",
        format_table(throughput, right_from=2),
        "",
        f"Goals met: {met} of {total}.",
        "",
        "Hub CPU time per message, microseconds (median):",
        "",
        format_table(cpu_rows, right_from=2),
    ]
    for (d, m, k), samples in sorted(results.items()):
        lost = sum(sample.lost for sample in samples)
        if lost:
            notes = [*notes, f"{d} {title(d, m)} on {HUB_TITLES[k]}'s hub: {lost} replies lost in "
                     f"{len(samples)} rounds (callAndWait ran out after {options.wait_timeout:g} s); "
                     f"the rate is of the calls answered, in the time they took"]
    if notes or failed:
        lines += ["", "Notes:"]
        lines += [f"- {note}" for note in notes]
        for (d, m, k), whys in failed.items():
            done = len(results.get((d, m, k), ()))
            lines.append(f"- *{d} {title(d, m)} on {HUB_TITLES[k]}'s hub: {len(whys)} of {len(whys) + done} "
                         f"rounds failed: {'; '.join(sorted(set(whys)))}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--n", type=int, default=300, help="messages per client round (default 300)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per client figure; medians are shown")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="requests in flight for notify and call+reply (default 20)")
    parser.add_argument("--storm-clients", type=int, default=10, help="calcstorm -nclient (default 10)")
    parser.add_argument("--storm-queries", type=int, default=100, help="calcstorm -nquery (default 100)")
    parser.add_argument("--storm-repeat", type=int, default=3, help="calcstorm runs per mode and hub")
    parser.add_argument("--storm-timeout", type=float, default=30.0,
                        help="seconds a calcstorm run may take before it is killed (default 30)")
    parser.add_argument("--hub", dest="hubs", choices=HUB_KINDS, action="append",
                        help="benchmark only this hub (repeatable; default all three)")
    parser.add_argument("--driver", dest="drivers", choices=DRIVERS, action="append",
                        help="drive the hubs only with this (repeatable; default all three)")
    parser.add_argument("--metric", dest="metrics", choices=CLIENT_METRICS, action="append",
                        help="measure only this figure of the astropy and ours drivers (repeatable)")
    parser.add_argument("--storm-mode", dest="storm_modes", choices=STORM_MODES, action="append",
                        help="run calcstorm only in this mode (repeatable; default all three)")
    parser.add_argument("--our-hub", choices=("cli", "twistd"), default="cli",
                        help="run our hub as 'sampy-twisted hub' (default) or 'twistd -n samp-hub'")
    parser.add_argument("--wait-timeout", type=int, default=2,
                        help="the timeout of astropy's client's call_and_wait, seconds (default 2): "
                             "what a lost reply costs")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also measure our hub run from the sampy_twisted package in DIR (say, an "
                             "older checkout) as a fourth hub, 'baseline', to see what a change gains")
    parser.add_argument("--astropy-waiter", metavar="RECIPIENT", help=argparse.SUPPRESS)
    parser.add_argument("--hub-setting", dest="hub_settings", metavar="NAME=VALUE", action="append", default=[],
                        help="run our hub with this SAMPHubServer argument, such as "
                             "max_concurrent_deliveries=4 (repeatable; for trying changes)")
    parser.add_argument("--profile-hub", metavar="OUT",
                        help="run our hub under cProfile (CPU time) and write the profile to OUT; "
                             "it slows our hub down, so its figures mean little")
    parser.add_argument("--warmup", type=float, default=4.0,
                        help="seconds of warm-up per hub before measuring (default 4)")
    parser.add_argument("--max-time", type=float, default=360.0,
                        help="start no new round after this many seconds (default 360)")
    options = parser.parse_args(argv)
    if options.astropy_waiter:
        return astropy_waiter(options.astropy_waiter, options.wait_timeout)
    options.hubs = [k for k in HUB_KINDS if k in (options.hubs or HUB_KINDS)]
    if options.baseline:
        options.baseline = os.path.abspath(options.baseline)
        if not os.path.isdir(os.path.join(options.baseline, "sampy_twisted")):
            parser.error(f"--baseline: no sampy_twisted package in {options.baseline}")
        options.hubs.append("baseline")
    options.drivers = [d for d in DRIVERS if d in (options.drivers or DRIVERS)]
    options.metrics = [m for m in CLIENT_METRICS if m in (options.metrics or CLIENT_METRICS)]
    options.storm_modes = [m for m in STORM_MODES if m in (options.storm_modes or STORM_MODES)]
    if options.profile_hub:
        options.profile_hub = os.path.abspath(options.profile_hub)
    try:
        options.hub_settings = parse_settings(options.hub_settings)
    except ValueError as exc:
        parser.error(f"--hub-setting: {exc}")
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(orchestrate(reactor, options)))


if __name__ == "__main__":
    main()
