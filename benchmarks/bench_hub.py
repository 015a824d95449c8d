#!/usr/bin/env python
"""
Benchmark SAMP hubs: ours (sampy_twisted), JSAMP's and astropy's, each in a
child process, driven by the same clients.

    python benchmarks/bench_hub.py [--n N] [--repeat R] [--concurrency C]
                                   [--storm-repeat R] [--storm-timeout S]
                                   [--warmup S] [--max-time S]
                                   [--hub KIND] [--driver KIND]
                                   [--our-hub cli|twistd] [--profile-hub OUT]

Each hub writes its lockfile in a temporary directory (never ~/.samp); ours
runs as ``python -m sampy_twisted._cli hub`` (``sampy-twisted hub``) or,
with ``--our-hub twistd``, as ``twistd -n samp-hub``.  The drivers:

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
medians, ratios, the goals (at least JSAMP's throughput everywhere, at least
4x astropy's on call_and_wait) and the hubs' CPU time per message.  The run
is bounded: every round has a time limit and no new round starts after
--max-time seconds.  Every child process is stopped at the end, on error and
on Ctrl-C.
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
from _common import HUB_KINDS, HUB_TITLES, ROOT, format_table, machine_summary, start_hub_process  # noqa: E402

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
WAIT_FIGURES = {("astropy", "wait"), ("ours", "wait"), ("calcstorm", "sync")}
GOAL_VS_JSAMP = 1.0
GOAL_VS_ASTROPY_WAIT = 4.0
_ELAPSED = re.compile(r"Elapsed time: (\d+) ms")


def title(driver, metric):
    return TITLES["calcstorm" if driver == "calcstorm" else "client", metric]


class Sample:
    """One round: messages/s, the hub's CPU us per message, whether the rate
    is only an upper bound (the round was cut off), and the connection
    attempts full listen queues dropped meanwhile (machine-wide)."""

    def __init__(self, rate, cpu_us, bound=False, drops=0):
        self.rate, self.cpu_us, self.bound, self.drops = rate, cpu_us, bound, drops


class RoundFailed(Exception):
    pass


async def orchestrate(reactor, options):
    from twisted.internet import defer

    from sampy_twisted.testing import spawn_jsamp_tool

    Worker = bench_client._worker_protocol()
    started = time.monotonic()
    directory = tempfile.mkdtemp(prefix="bench-hub-")
    hubs, workers, tools = {}, [], set()
    state = {"cleaned": None}

    async def clean_up():
        await defer.gatherResults([w.stop() for w in workers], consumeErrors=True)
        await defer.gatherResults([t.kill() for t in list(tools)], consumeErrors=True)
        await defer.gatherResults([h.stop() for h in hubs.values()], consumeErrors=True)
        shutil.rmtree(directory, ignore_errors=True)

    def clean_up_once():
        # At the end, on error and on Ctrl-C (the reactor's shutdown).
        if state["cleaned"] is None:
            state["cleaned"] = defer.ensureDeferred(clean_up())
        return state["cleaned"]

    reactor.addSystemEventTrigger("before", "shutdown", clean_up_once)

    async def start_hub(kind):
        hub_dir = os.path.join(directory, kind)
        os.makedirs(hub_dir)
        profile = options.profile_hub if kind == "ours" else None
        hubs[kind] = await start_hub_process(kind, reactor, hub_dir, 60.0, options.our_hub, profile)

    def spawn(kind, lib, role, recipient="-"):
        hub = hubs[kind]
        worker = Worker(reactor, f"{lib} {role} on the {HUB_TITLES[kind]} hub")
        argv = [sys.executable, bench_client.__file__, "--worker", lib, "--role", role,
                "--recipient", recipient, "--concurrency", str(options.concurrency)]
        env = dict(hub.environ, BENCH_LOCKFILE=hub.lockfile, PYTHONPATH=ROOT)
        reactor.spawnProcess(worker, sys.executable, argv, env=env, path=ROOT)
        workers.append(worker)
        return worker

    async def pair(kind, lib):
        receiver = spawn(kind, lib, "receiver")
        recipient = await receiver.expect("ready", 90)
        sender = spawn(kind, lib, "sender", recipient)
        await sender.expect("ready", 90)
        return (kind, lib), (sender, receiver)

    rounds = iter(range(1_000_000))

    async def client_round(kind, lib, metric, n):
        sender, receiver = pairs[kind, lib]
        key = f"r{next(rounds)}"
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
            else:
                sender.send(f"wait {key} {n}")
                elapsed = await sender.expect(f"done {key} ", limit)
        except bench_client.WorkerFailed as exc:
            raise RoundFailed(str(exc).strip()) from None
        cpu = bench_client._process_cpu(hubs[kind].pid) - cpu
        return Sample(n / float(elapsed), cpu / n * 1e6, drops=bench_client._listen_drops() - drops)

    async def storm_round(kind, mode, nclient, nquery):
        hub = hubs[kind]
        args = ("-nclient", str(nclient), "-nquery", str(nquery), "-mode", mode)
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

    def out_of_time():
        return time.monotonic() - started > options.max_time

    results = {}  # (driver, metric, hub) -> [Sample]
    failed = {}  # (driver, metric, hub) -> why
    broken = {}  # (driver, hub) -> why: skip the rest
    notes = []

    def record(figure, sample):
        results.setdefault(figure, []).append(sample)
        driver, metric, kind = figure
        rate = f"<{sample.rate:.0f}" if sample.bound else f"{sample.rate:.0f}"
        print(f"  {driver:9s} {title(driver, metric):20s} {HUB_TITLES[kind]:8s} {rate:>7s}/s  "
              f"hub CPU {sample.cpu_us:5.0f} us/message"
              + (f"  ({sample.drops} SYNs dropped by full listen queues)" if sample.drops else ""), flush=True)

    def fail(figure, exc):
        driver, metric, kind = figure
        failed[figure] = str(exc).splitlines()[0]
        print(f"  {driver:9s} {title(driver, metric):20s} {HUB_TITLES[kind]:8s} FAILED: {exc}", flush=True)

    try:
        print(f"machine: {machine_summary()}")
        print(f"hubs: {', '.join(options.hubs)}; drivers: {', '.join(options.drivers)}; n={options.n}, "
              f"concurrency={options.concurrency}, repeat={options.repeat}, storm: -nclient "
              f"{options.storm_clients} -nquery {options.storm_queries} x{options.storm_repeat}; "
              f"our hub via {options.our_hub}; load: {bench_client._load()}", flush=True)
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
                    for metric in CLIENT_METRICS:
                        if (lib, kind) in broken:
                            continue
                        try:
                            await client_round(kind, lib, metric, 100)
                        except RoundFailed as exc:
                            broken[lib, kind] = str(exc)
                            print(f"  warm-up of {lib} on {HUB_TITLES[kind]} failed: {exc}", flush=True)
                if time.monotonic() >= warm_until or all((lib, kind) in broken for lib in libs):
                    break
            if "calcstorm" in options.drivers:
                try:
                    await storm_round(kind, "async", 4, 10)
                except RoundFailed as exc:
                    print(f"  calcstorm warm-up on {HUB_TITLES[kind]} failed: {exc}", flush=True)
        print(f"warmed up after {time.monotonic() - started:.0f} s", flush=True)

        def rotated(r):
            k = r % len(options.hubs)
            return options.hubs[k:] + options.hubs[:k]

        for lib in libs:
            for metric in CLIENT_METRICS:
                for r in range(options.repeat):
                    if out_of_time():
                        break
                    for kind in rotated(r):
                        figure = (lib, metric, kind)
                        if (lib, kind) in broken or figure in failed:
                            continue
                        try:
                            record(figure, await client_round(kind, lib, metric, options.n))
                        except RoundFailed as exc:
                            # The worker may still be busy with it: use it no more.
                            broken[lib, kind] = str(exc)
                            fail(figure, exc)
        if "calcstorm" in options.drivers:
            for mode in STORM_MODES:
                for r in range(options.storm_repeat):
                    if out_of_time():
                        break
                    for kind in rotated(r):
                        figure = ("calcstorm", mode, kind)
                        if figure in failed or any(s.bound for s in results.get(figure, ())):
                            continue  # a run that hung is not worth repeating
                        try:
                            sample = await storm_round(kind, mode, options.storm_clients, options.storm_queries)
                        except RoundFailed as exc:
                            fail(figure, exc)
                            continue
                        record(figure, sample)
                        if sample.bound:
                            notes.append(f"calcstorm -mode {mode} on {HUB_TITLES[kind]}'s hub did not finish "
                                         f"within {options.storm_timeout:g} s and was killed")
        if out_of_time():
            notes.append(f"stopped starting rounds after --max-time {options.max_time:g} s")
        print(f"load after: {bench_client._load()}; {time.monotonic() - started:.0f} s in all\n")
        print(report(results, failed, options, notes))
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
    figures = [(lib, m) for lib in options.drivers if lib != "calcstorm" for m in CLIENT_METRICS]
    if "calcstorm" in options.drivers:
        figures += [("calcstorm", m) for m in STORM_MODES]
    kinds = options.hubs
    throughput = [("driver", "figure", *(HUB_TITLES[k] for k in kinds), "ours/JSAMP", "ours/astropy", "goals")]
    cpu_rows = [("driver", "figure", *(HUB_TITLES[k] for k in kinds))]
    met = total = 0
    for driver, metric in figures:
        medians = {k: _median(results.get((driver, metric, k))) for k in kinds}

        def cell(k):
            if (driver, metric, k) in failed:
                return "failed"
            rate, bound, _ = medians[k]
            return "-" if rate is None else f"{'<' if bound else ''}{rate:.0f}"

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
        if (driver, metric) in WAIT_FIGURES:
            checks.append((vs_astropy, GOAL_VS_ASTROPY_WAIT, "astropy"))
        for value, goal, whom in checks:
            if value is None:
                continue
            total += 1
            ok = value >= goal
            met += ok
            goals.append(f">={goal:g}x {whom} {'yes' if ok else 'NO'}")
        throughput.append((driver, title(driver, metric), *(cell(k) for k in kinds),
                           vs_jsamp_text, vs_astropy_text, "; ".join(goals) or "-"))
        cpu_rows.append((driver, title(driver, metric),
                         *("-" if medians[k][2] is None else f"{medians[k][2]:.0f}" for k in kinds)))
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
    if notes or failed:
        lines += ["", "Notes:"]
        lines += [f"- {note}" for note in notes]
        lines += [f"- {d} {title(d, m)} on {HUB_TITLES[k]}'s hub failed: {why}" for (d, m, k), why in failed.items()]
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
    parser.add_argument("--storm-timeout", type=float, default=40.0,
                        help="seconds a calcstorm run may take before it is killed (default 40)")
    parser.add_argument("--hub", dest="hubs", choices=HUB_KINDS, action="append",
                        help="benchmark only this hub (repeatable; default all three)")
    parser.add_argument("--driver", dest="drivers", choices=DRIVERS, action="append",
                        help="drive the hubs only with this (repeatable; default all three)")
    parser.add_argument("--our-hub", choices=("cli", "twistd"), default="cli",
                        help="run our hub as 'sampy-twisted hub' (default) or 'twistd -n samp-hub'")
    parser.add_argument("--profile-hub", metavar="OUT",
                        help="run our hub under cProfile (CPU time) and write the profile to OUT; "
                             "it slows our hub down, so its figures mean little")
    parser.add_argument("--warmup", type=float, default=4.0,
                        help="seconds of warm-up per hub before measuring (default 4)")
    parser.add_argument("--max-time", type=float, default=300.0,
                        help="start no new round after this many seconds (default 300)")
    options = parser.parse_args(argv)
    options.hubs = [k for k in HUB_KINDS if k in (options.hubs or HUB_KINDS)]
    options.drivers = [d for d in DRIVERS if d in (options.drivers or DRIVERS)]
    if options.profile_hub:
        options.profile_hub = os.path.abspath(options.profile_hub)
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(orchestrate(reactor, options)))


if __name__ == "__main__":
    main()
