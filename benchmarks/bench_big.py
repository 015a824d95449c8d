#!/usr/bin/env python
"""
Benchmark one big message: a ``table.select.rowList`` notification of N rows
(a selection in TOPCAT), through our hub and JSAMP's, side by side.

    python benchmarks/bench_big.py [--rows N ...] [--repeat R]
                                   [--astropy | --no-astropy]
                                   [--baseline DIR [--baseline-clients]]
                                   [--timeout S] [--ping-interval MS]
                                   [--warmup-rows N] [--step-pairs P]

For each hub (ours, JSAMP's, and with --baseline our hub from another
checkout) and each client library (ours, and astropy's unless
--no-astropy), a sender and a receiver of that library, each a child process
of its own, registered with that hub; the receiver subscribes to
``table.select.rowList``.  The sender notifies it of N row indexes
(``"0"`` .. ``"N-1"``); a third client of ours, the pinger, pings the hub
(``samp.hub.ping``) every --ping-interval ms from before the send until the
receipt.  Each round gives:

time
    from the sender's ``notify`` call to the receiver's handler (both read
    ``time.monotonic()``, one clock system-wide on Linux).  Building the row
    list is not timed; encoding, the hub and decoding are.
hub peak memory
    the hub process's peak resident memory during the round (the kernel's
    high-water mark ``VmHWM``, reset through ``/proc/<pid>/clear_refs`` just
    before the send; where that fails, ``VmRSS`` sampled every 5 ms) above
    its resident memory before any message (before the warm-up), and that
    as a multiple of the message's size (its ``samp.hub.notify`` body as the
    standard library's XML-RPC encoder writes it).  Not above its memory at
    the send: Python's allocator and the JVM keep much of what a round used,
    which would hide the next round's peak.  For the same reason every
    round of the smaller messages comes before the bigger ones.
ping latency
    the median and the longest ``samp.hub.ping`` answered while the message
    was in the hub.

The hubs' rounds are interleaved (rotating which goes first) so that
drifting machine load hits every hub alike, and the table shows medians.
Each round starts once the machine's processors are quiet (busy less than
15% of 100 ms, waiting at most 10 s), so that the tail of the last round
(a JVM's garbage collection, a process freeing a million strings) does not
share them with it.
The goals (issue 14), for our client through our hub: at most half the time
through JSAMP's hub; peak hub memory under 5x the message; pings answered
within 50 ms; no super-linear step (1 000 000 rows within 10x the time of
100 000).  The last is judged on --step-pairs pairs of rounds run after
the others, our client through our hub, the two sizes in turn (the order
alternating), each pair within seconds: the rounds of one size above run
a minute or more before those of the next, and a shared machine's speed
can drift that much between them; the median of the pairs' ratios is
the figure.  A round that fails (a hub or client refuses the message, or it
does not arrive within --timeout) is reported and left out of the medians;
one that timed out is not repeated.  Hubs and clients run in a temporary
directory (never ~/.samp) and are stopped at the end, on error and on
Ctrl-C.
"""

import argparse
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time

BENCHMARKS = os.path.dirname(os.path.abspath(__file__))
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)

import bench_client  # noqa: E402  (the worker protocol, CPU and load readings)
from _common import (  # noqa: E402
    ROOT,
    OnceAtShutdown,
    Stopping,
    astropy_samp,
    command_protocol,
    format_table,
    line_writer,
    load_average,
    log_problems_to_stderr,
    serve_blocking_commands,
    machine_summary,
    start_hub_process,
    wait_until_quiet,
)

MTYPE = "table.select.rowList"
TABLE_URL = "file:///tmp/bench-big.vot"
HUBS = ("ours", "jsamp", "baseline")
HUB_TITLES = {"ours": "ours", "jsamp": "JSAMP", "baseline": "baseline"}
LIBRARIES = ("ours", "astropy")
GOAL_VS_JSAMP = 0.5
GOAL_MEMORY = 5.0
GOAL_PING_MS = 50.0
MB = 1024 * 1024


def row_list_message(key, rows):
    """The notification: *key* as the table id, *rows* row indexes."""
    return {
        "samp.mtype": MTYPE,
        "samp.params": {"table-id": key, "url": TABLE_URL, "row-list": [str(i) for i in range(rows)]},
    }


def check_receipt(params):
    """
    The answer to a receipt: ``received KEY TIME ROWS``, or an ``error``
    line if the row list is not the one sent.
    """
    at = time.monotonic()
    key, row_list = params.get("table-id"), params.get("row-list")
    if not isinstance(row_list, list) or (row_list and row_list[-1] != str(len(row_list) - 1)):
        return f"error receive: {key}: the row list arrived changed"
    return f"received {key} {at!r} {len(row_list)}"


# -- workers: sampy_twisted ----------------------------------------------------


def ours_worker(role, recipient, ping_interval):
    """
    Our client as a sender, a receiver or a pinger, driven by lines on
    stdin: ``prepare KEY ROWS`` and ``send KEY`` (sender), ``start KEY`` and
    ``stop KEY`` (pinger), ``alive`` (all).  Exits when stdin closes.
    """
    from twisted.internet import defer, reactor, stdio, task

    from sampy_twisted import SAMPIntegratedClient, read_lockfile

    log_problems_to_stderr()  # a refused delivery, say
    client = SAMPIntegratedClient(name=f"bench-big-{role}", reactor=reactor, callable=role == "receiver")
    prepared = {}
    pinging = {}  # key -> Pinging

    commands = {}  # filled below
    control = command_protocol(reactor, client, commands)

    def on_notify(private_key, sender_id, mtype, params, extra):
        control.say(check_receipt(params))

    async def prepare(key, rows):
        prepared[key] = row_list_message(key, int(rows))
        return f"prepared {key}"

    async def send(key):
        message = prepared.pop(key)
        t0 = time.monotonic()
        await client.notify(recipient, message)
        return f"sent {key} {t0!r} {time.monotonic() - t0!r}"

    class Pinging:
        """Pings the hub every *ping_interval* seconds until stopped."""

        def __init__(self):
            self.running, self.latencies, self.errors = True, [], 0
            self.first = defer.Deferred()
            self.done = defer.ensureDeferred(self.loop())

        async def loop(self):
            while self.running:
                t0 = time.monotonic()
                try:
                    await client.ping()
                except Exception:
                    self.errors += 1
                self.latencies.append(time.monotonic() - t0)
                if not self.first.called:
                    self.first.callback(None)
                await task.deferLater(reactor, max(0.0, t0 + ping_interval - time.monotonic()))

    async def start(key):
        pinging[key] = Pinging()
        await pinging[key].first
        return f"pinging {key}"

    async def stop(key):
        state = pinging.pop(key)
        state.running = False
        await state.done  # the ping in flight counts too
        ms = [s * 1000 for s in state.latencies]
        return f"pings {key} {len(ms)} {statistics.median(ms)!r} {max(ms)!r} {state.errors}"

    async def alive():
        return "alive"

    commands.update({"prepare": prepare, "send": send, "start": start, "stop": stop, "alive": alive})

    async def run():
        await client.connect(hub_params=read_lockfile(os.environ["BENCH_LOCKFILE"]))
        if role == "receiver":
            await client.bind_receive_notification(MTYPE, on_notify)
        stdio.StandardIO(control)
        control.say(f"ready {client.get_public_id()}")

    def failed(failure):
        sys.stderr.write(f"cannot start: {failure.getErrorMessage()}\n")
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()).addErrback(failed))
    reactor.run(installSignalHandlers=False)


# -- workers: astropy ------------------------------------------------------------


def astropy_worker(role, recipient):
    """astropy's client as a sender or a receiver (commands as ours)."""
    SAMPIntegratedClient, read_lockfile = astropy_samp()
    say = line_writer()

    client = SAMPIntegratedClient(name=f"bench-big-astropy-{role}", addr="127.0.0.1",
                                  callable=role == "receiver")
    client.connect(hub_params=read_lockfile(os.environ["BENCH_LOCKFILE"]))
    def on_notify(private_key, sender_id, mtype, params, extra):
        # Five named arguments: astropy passes a sixth to other signatures.
        say(check_receipt(params))

    if role == "receiver":
        client.bind_receive_notification(MTYPE, on_notify)
    prepared = {}

    def prepare(key, rows):
        prepared[key] = row_list_message(key, int(rows))
        return f"prepared {key}"

    def send(key):
        message = prepared.pop(key)
        t0 = time.monotonic()
        client.notify(recipient, message)
        return f"sent {key} {t0!r} {time.monotonic() - t0!r}"

    commands = {"prepare": prepare, "send": send, "alive": lambda: "alive"}
    serve_blocking_commands(client, commands, say)


# -- measuring the hub ---------------------------------------------------------


def _status_kb(pid, field):
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of /proc/<pid>/status, in bytes."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class PeakMemory:
    """
    A process's peak resident memory from :meth:`start` to :meth:`stop`:
    the kernel's high-water mark, reset at the start; where the reset is not
    allowed, the largest ``VmRSS`` read every 5 ms (which can miss a short
    peak).
    """

    method = None  # "VmHWM" or "VmRSS sampled", once known

    def __init__(self, reactor, pid):
        self.reactor, self.pid = reactor, pid
        self.start_rss = self.peak = None
        self._sampler = None

    def start(self):
        from twisted.internet import task

        self.start_rss = self.peak = _status_kb(self.pid, "VmRSS")
        if PeakMemory.method != "VmRSS sampled":
            try:
                with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                    f.write("5")  # resets VmHWM to the current VmRSS
                PeakMemory.method = "VmHWM"
                return
            except OSError:
                PeakMemory.method = "VmRSS sampled"
        self._sampler = task.LoopingCall(self._sample)
        self._sampler.clock = self.reactor
        self._sampler.start(0.005)

    def _sample(self):
        rss = _status_kb(self.pid, "VmRSS")
        if rss is not None and (self.peak is None or rss > self.peak):
            self.peak = rss

    def stop(self):
        """:return: (resident memory at the start, peak, now), bytes."""
        if self._sampler is not None:
            self._sampler.stop()
            self._sample()
        else:
            self.peak = _status_kb(self.pid, "VmHWM")
        return self.start_rss, self.peak, _status_kb(self.pid, "VmRSS")


def split_time(rows, repeat=7):
    """
    The least time Python takes here to make *rows* row strings from one
    text (``str.split``, best of *repeat*): what any Python receiver of the
    row list does at least, so the growth of this time from 100 000 to
    1 000 000 rows is the machine's (its caches), not a SAMP library's.
    """
    text = "\n".join(map(str, range(rows)))
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        text.split("\n")
        best = min(best, time.perf_counter() - started)
    return best


def message_size(rows):
    """The bytes of the ``samp.hub.notify`` request body, as the standard
    library's XML-RPC encoder writes it (keys as long as real ones)."""
    import xmlrpc.client

    body = xmlrpc.client.dumps(("k" * 32, "c1", row_list_message("r0", rows)), "samp.hub.notify")
    return len(body.encode())


# -- orchestrator --------------------------------------------------------------


class RoundFailed(Exception):
    pass


class Sample:
    """One round's figures (seconds, bytes, milliseconds)."""

    def __init__(self, elapsed, accepted, memory, idle, pings, hub_cpu):
        self.elapsed, self.accepted, self.hub_cpu = elapsed, accepted, hub_cpu
        self.start_rss, self.peak_rss, self.end_rss = memory
        self.idle_rss = idle
        # Over the hub's size before the first big message, not at the
        # send: memory a hub kept from the round before (Python's allocator
        # and the JVM's heap keep much of it) would hide its peak.
        self.rise = (self.peak_rss - idle) if None not in (idle, self.peak_rss) else None
        self.ping_count, self.ping_median, self.ping_max, self.ping_errors = pings


async def orchestrate(reactor, options):
    from twisted.internet import defer

    Worker = bench_client._worker_protocol()
    started = time.monotonic()
    directory = tempfile.mkdtemp(prefix="bench-big-")
    hubs, workers = {}, []

    async def clean_up():
        import shutil

        await defer.gatherResults([w.stop() for w in workers], consumeErrors=True)
        await defer.gatherResults([h.stop() for h in hubs.values()], consumeErrors=True)
        shutil.rmtree(directory, ignore_errors=True)

    clean_up_once = OnceAtShutdown(reactor, clean_up)
    go_on = clean_up_once.go_on

    async def start_hub(kind):
        go_on()
        hub_dir = os.path.join(directory, kind)
        os.makedirs(hub_dir)
        root = options.baseline if kind == "baseline" else ROOT
        hub = await start_hub_process("jsamp" if kind == "jsamp" else "ours", reactor, hub_dir, 60.0, root=root)
        if clean_up_once.started:
            await hub.stop()  # started while the clean-up ran: it missed this one
            raise Stopping()
        hubs[kind] = hub

    def spawn(kind, lib, role, recipient="-"):
        go_on()
        hub = hubs[kind]
        worker = Worker(reactor, f"{lib} {role} on the {HUB_TITLES[kind]} hub")
        root = options.baseline if kind == "baseline" and options.baseline_clients and role != "pinger" else ROOT
        argv = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--root", root, "--role", role,
                "--recipient", recipient, "--ping-interval", repr(options.ping_interval * 1000)]
        env = dict(hub.environ, BENCH_LOCKFILE=hub.lockfile, PYTHONPATH=root)
        reactor.spawnProcess(worker, sys.executable, argv, env=env, path=ROOT)
        workers.append(worker)
        return worker

    async def pair(kind, lib):
        receiver = spawn(kind, lib, "receiver")
        recipient = await receiver.expect("ready", 90)
        sender = spawn(kind, lib, "sender", recipient)
        await sender.expect("ready", 90)
        return (kind, lib), (sender, receiver)

    async def pinger(kind):
        worker = spawn(kind, "ours", "pinger")
        await worker.expect("ready", 90)
        return kind, worker

    rounds = iter(range(1_000_000))

    async def big_round(kind, lib, rows):
        """One message of *rows* rows from *lib*'s sender to its receiver
        through hub *kind*: a :class:`Sample`, or :class:`RoundFailed`."""
        sender, receiver = pairs[kind, lib]
        ping = pingers[kind]
        hub = hubs[kind]
        key = f"r{next(rounds)}"
        limit = options.timeout or 20 + 40 * rows / 1e6
        try:
            sender.send(f"prepare {key} {rows}")
            await sender.expect(f"prepared {key}", 30 + rows / 1e4)
            ping.send(f"start {key}")
            await ping.expect(f"pinging {key}", limit)
        except bench_client.WorkerFailed as exc:
            raise RoundFailed(str(exc).strip()) from None
        await wait_until_quiet(reactor)
        memory = PeakMemory(reactor, hub.pid)
        memory.start()
        cpu = bench_client._process_cpu(hub.pid)
        deadline = reactor.seconds() + limit
        receiver_stderr = receiver._stderr
        sender.send(f"send {key}")
        failure = None
        try:
            try:
                t0, accepted = map(float, (await sender.expect(f"sent {key} ", limit)).split())
            except bench_client.WorkerFailed as exc:
                if sender.exited or "within" not in str(exc):
                    raise
                raise RoundFailed(f"the hub did not answer the sender within {limit:g} s (timed out)") from None
            remaining = max(deadline - reactor.seconds(), 0.1)
            try:
                received_at, count = (await receiver.expect(f"received {key} ", remaining)).split()
            except bench_client.WorkerFailed as exc:
                if receiver.exited or "within" not in str(exc):
                    raise
                raise RoundFailed(f"not received within {limit:g} s (timed out)"
                                  + _new_stderr(receiver, receiver_stderr)) from None
            if int(count) != rows:
                raise RoundFailed(f"{count} of {rows} rows arrived")
        except bench_client.WorkerFailed as exc:
            failure = RoundFailed(str(exc).strip())
        except RoundFailed as exc:
            failure = exc
        cpu = bench_client._process_cpu(hub.pid) - cpu
        try:
            ping.send(f"stop {key}")
            # The ping in flight may wait for the hub as long as the message.
            count, median, longest, errors = (await ping.expect(f"pings {key} ", limit)).split()
            pings = (int(count), float(median), float(longest), int(errors))
        except bench_client.WorkerFailed as exc:
            pings = (0, float("nan"), float("nan"), 0)
            failure = failure or RoundFailed(f"pinger: {str(exc).strip()}")
        memory = memory.stop()
        if failure is not None:
            failure.memory, failure.pings = memory, pings
            raise failure
        return Sample(float(received_at) - t0, accepted, memory, idle_rss.get(kind), pings, cpu)

    results, failed, broken, timed_out = {}, {}, {}, set()
    idle_rss = {}  # hub -> its resident memory before the first big message
    notes = []

    def line(figure, text):
        lib, rows, kind = figure
        return f"  {lib + ' client':14s} {rows:>8d} rows  {HUB_TITLES[kind] + ' hub':12s} {text}"

    def describe(sample):
        def mb(value, form="{:.0f}"):
            return "-" if value is None else form.format(value / MB)

        return (f"{sample.elapsed * 1000:7.0f} ms (hub answered the sender in {sample.accepted * 1000:.0f} ms; "
                f"hub CPU {sample.hub_cpu * 1000:.0f} ms)  hub memory: idle {mb(sample.idle_rss)}, at the send "
                f"{mb(sample.start_rss)}, peak {mb(sample.peak_rss)} (+{mb(sample.rise, '{:.1f}')}), after "
                f"{mb(sample.end_rss)} MB  "
                f"pings: {sample.ping_count}, median {sample.ping_median:.1f} ms, max {sample.ping_max:.0f} ms"
                + (f", {sample.ping_errors} failed" if sample.ping_errors else ""))

    async def still_usable(kind, lib):
        """After a failed round: whether the workers answer again; if not,
        they are used no more."""
        try:
            for worker in (*pairs[kind, lib], pingers[kind]):
                worker.send("alive")
                await worker.expect("alive", 30)
            return True
        except bench_client.WorkerFailed as exc:
            broken[lib, kind] = str(exc).strip().splitlines()[0]
            return False

    async def measure(kind, lib, rows, figure=None):
        go_on()
        if (lib, kind) in broken or (figure is not None and figure in timed_out):
            return
        try:
            sample = await big_round(kind, lib, rows)
        except RoundFailed as exc:
            go_on()
            why = str(exc).strip()
            if figure is None:
                print(f"  warm-up: {lib} client, {rows} rows, {HUB_TITLES[kind]} hub failed: {why}", flush=True)
            else:
                failed.setdefault(figure, []).append(why.splitlines()[0])
                if "(timed out)" in why:
                    timed_out.add(figure)
                print(line(figure, f"FAILED: {why}"), flush=True)
            await still_usable(kind, lib)
            return
        if figure is not None:
            results.setdefault(figure, []).append(sample)
            print(line(figure, describe(sample)), flush=True)

    steps = {}  # (small, big) -> [(time at small, time at big), ...], our client through our hub

    async def step_check():
        """The goal's sizes in turn, our client through our hub: pairs of
        rounds seconds apart, which the machine's drift between the
        phases above (a minute or more apart) cannot tell apart."""
        if options.step_pairs < 1 or "ours" not in options.libraries or ("ours", "ours") in broken:
            return
        for small, big in zip(options.rows, options.rows[1:]):
            for p in range(options.step_pairs):
                times = {}
                for rows in ((small, big) if p % 2 == 0 else (big, small)):
                    go_on()
                    try:
                        times[rows] = (await big_round("ours", "ours", rows)).elapsed
                    except RoundFailed as exc:
                        go_on()
                        failed.setdefault(("step", small, big), []).append(str(exc).strip().splitlines()[0])
                        await still_usable("ours", "ours")
                        break
                if len(times) == 2:
                    steps.setdefault((small, big), []).append((times[small], times[big]))
                    print(f"  step pair {p + 1}: {small} rows {times[small] * 1000:.0f} ms, {big} rows "
                          f"{times[big] * 1000:.0f} ms: {times[big] / times[small]:.1f}x", flush=True)

    try:
        print(f"machine: {machine_summary()}")
        print(f"command: {shlex.join([os.path.basename(sys.executable), *sys.argv])}")
        print(f"hubs: {', '.join(HUB_TITLES[k] for k in options.hubs)}"
              + (f" (baseline: {options.baseline}, with {'its' if options.baseline_clients else 'our'} clients)"
                 if options.baseline else "")
              + f"; clients: {', '.join(options.libraries)}; rows: {', '.join(map(str, options.rows))}; "
              f"repeat={options.repeat}; ping every {options.ping_interval * 1000:g} ms; "
              f"load average: {load_average()}", flush=True)
        sizes = {rows: message_size(rows) for rows in options.rows}
        print("message sizes (samp.hub.notify body, standard library XML-RPC): "
              + ", ".join(f"{rows} rows {size / MB:.1f} MB" for rows, size in sizes.items()), flush=True)
        floor = {rows: split_time(rows) for rows in options.rows}
        notes.append("Python alone, in this process before the hubs start, makes the row strings from one text "
                     "(str.split, best of 7) in " + ", ".join(f"{floor[rows] * 1000:.1f} ms for {rows}"
                                                              for rows in options.rows)
                     + "".join(f" ({floor[big] / floor[small]:.1f}x from {small} to {big})"
                               for small, big in zip(options.rows, options.rows[1:]))
                     + ": what any Python receiver does at least")
        await defer.gatherResults([defer.ensureDeferred(start_hub(k)) for k in options.hubs])
        pairs = dict(await defer.gatherResults(
            [defer.ensureDeferred(pair(k, lib)) for k in options.hubs for lib in options.libraries]))
        pingers = dict(await defer.gatherResults([defer.ensureDeferred(pinger(k)) for k in options.hubs]))
        print(f"hubs and clients ready after {time.monotonic() - started:.0f} s", flush=True)
        # Idle: before the warm-up, whose memory the hubs partly keep.
        idle_rss.update((kind, _status_kb(hubs[kind].pid, "VmRSS")) for kind in options.hubs)
        print("hub resident memory before any message: " + ", ".join(
            f"{HUB_TITLES[k]} {'-' if v is None else f'{v / MB:.0f} MB'}" for k, v in idle_rss.items()), flush=True)
        if options.warmup_rows:
            # JSAMP's JIT compiler, and every process's first big allocations.
            for kind in options.hubs:
                for lib in options.libraries:
                    await measure(kind, lib, options.warmup_rows)
            print(f"warmed up ({options.warmup_rows} rows) after {time.monotonic() - started:.0f} s", flush=True)

        # The smaller messages first: the memory a hub keeps from a bigger
        # one would hide their peaks.
        for rows in options.rows:
            for r in range(options.repeat):
                k = r % len(options.hubs)
                order = options.hubs[k:] + options.hubs[:k]
                for lib in options.libraries:
                    for kind in order:
                        await measure(kind, lib, rows, (lib, rows, kind))
        await step_check()
        if timed_out:
            notes.append("a figure whose round timed out was not measured again")
        for (lib, kind), why in broken.items():
            notes.append(f"the {lib} clients on the {HUB_TITLES[kind]} hub stopped answering: {why}")
        print(f"load average after: {load_average()}; {time.monotonic() - started:.0f} s in all; "
              f"hub memory from {PeakMemory.method or '-'}\n")
        print(report(results, failed, sizes, options, notes, steps))
    except Exception:
        if not clean_up_once.started:
            raise
        print("stopped: interrupted", flush=True)
    finally:
        await clean_up_once()


def _new_stderr(worker, before):
    """The last line *worker* wrote on stderr since it had written
    *before* (say, why a delivery was refused), or ``""``."""
    after = worker._stderr
    if after == before:
        return ""
    lines = after.decode(errors="replace").strip().splitlines()
    return f"; the receiver's last words: {lines[-1].strip()[:300]}" if lines else ""


def _median(values):
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else None


def report(results, failed, sizes, options, notes, steps=None):
    """The final tables: figures per client, rows and hub; then the goals."""
    header = ("client", "rows", "hub", "time ms", "ratio", "hub CPU ms", "peak MB", "x msg",
              "ping med ms", "ping max ms", "failed")
    rows_out = [header]
    medians = {}
    for lib in options.libraries:
        for rows in options.rows:
            for kind in options.hubs:
                figure = (lib, rows, kind)
                samples = results.get(figure, [])
                m = medians[figure] = {
                    "time": _median(s.elapsed for s in samples),
                    "cpu": _median(s.hub_cpu for s in samples),
                    "rise": _median(s.rise for s in samples),
                    "ping_med": _median(s.ping_median for s in samples),
                    "ping_max": _median(s.ping_max for s in samples),
                }
            for kind in options.hubs:
                m = medians[lib, rows, kind]
                jsamp = medians[lib, rows, "jsamp"]["time"]
                ratio = m["time"] / jsamp if m["time"] and jsamp else None
                n_failed = len(failed.get((lib, rows, kind), ()))
                n_all = n_failed + len(results.get((lib, rows, kind), ()))
                rows_out.append((
                    lib, str(rows), HUB_TITLES[kind],
                    _fmt(m["time"], 1000, "{:.0f}"),
                    "-" if kind == "jsamp" else _fmt(ratio, 1, "{:.2f}"),
                    _fmt(m["cpu"], 1000, "{:.0f}"),
                    _fmt(m["rise"], 1 / MB, "{:.1f}"),
                    _fmt(m["rise"], 1 / sizes[rows], "{:.1f}"),
                    _fmt(m["ping_med"], 1, "{:.1f}"),
                    _fmt(m["ping_max"], 1, "{:.0f}"),
                    f"{n_failed}/{n_all}" if n_failed else "-",
                ))
    lines = [
        f"Big notification ({MTYPE}), median of {options.repeat} rounds.  time: send call to receipt; "
        "ratio: time / the time through JSAMP's hub;\nhub CPU: during the round; peak MB: the hub's peak "
        "resident memory during the round above its size before the first message; x msg: that / the "
        "message's size;\nping: samp.hub.ping latency during the round (medians of each round's median and "
        "maximum).",
        "",
        format_table(rows_out, right_from=1),
        "",
        "Goals (our client through our hub):",
    ]
    lines += [f"- {goal}" for goal in goals(medians, failed, sizes, options, steps or {})]
    for (lib, rows, kind), whys in failed.items():
        what = (f"the step check, {rows} and {kind} rows" if lib == "step"
                else f"{lib} client, {rows} rows, {HUB_TITLES[kind]} hub")
        notes = [*notes, f"{what}: {len(whys)} round(s) failed: {'; '.join(sorted(set(whys)))}"]
    if notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in notes]
    return "\n".join(lines)


def _fmt(value, scale, form):
    return "-" if value is None else form.format(value * scale)


def goals(medians, failed, sizes, options, steps):
    """One line per goal of issue 14 that this run measured."""
    out = []

    def verdict(ok):
        return "yes" if ok else "NO"

    if "ours" not in options.libraries:
        return ["- (not measured: --no-ours)"]
    for rows in options.rows:
        ours, jsamp = medians["ours", rows, "ours"], medians["ours", rows, "jsamp"]
        if ours["time"] is None:
            whys = failed.get(("ours", rows, "ours"))
            out.append(f"{rows} rows: no round through our hub succeeded" + (f" ({whys[0]})" if whys else ""))
            continue
        if jsamp["time"]:
            ratio = ours["time"] / jsamp["time"]
            out.append(f"{rows} rows, time <= {GOAL_VS_JSAMP:g}x JSAMP's hub: {ours['time'] * 1000:.0f} ms vs "
                       f"{jsamp['time'] * 1000:.0f} ms = {ratio:.2f}x: {verdict(ratio <= GOAL_VS_JSAMP)}")
        if ours["rise"] is not None:
            times = ours["rise"] / sizes[rows]
            out.append(f"{rows} rows, hub peak memory < {GOAL_MEMORY:g}x the message ({sizes[rows] / MB:.1f} MB): "
                       f"{ours['rise'] / MB:.1f} MB = {times:.1f}x: {verdict(times < GOAL_MEMORY)}")
        if ours["ping_max"] is not None:
            out.append(f"{rows} rows, pings answered within {GOAL_PING_MS:g} ms: longest {ours['ping_max']:.0f} ms: "
                       f"{verdict(ours['ping_max'] <= GOAL_PING_MS)}")
        if "baseline" in options.hubs and medians["ours", rows, "baseline"]["time"]:
            base = medians["ours", rows, "baseline"]
            out.append(f"{rows} rows, against the baseline hub (information): time {ours['time'] / base['time']:.2f}x"
                       + (f", peak memory {ours['rise'] / base['rise']:.2f}x" if ours["rise"] and base["rise"] else ""))
    for small, big in zip(options.rows, options.rows[1:]):
        a, b = medians["ours", small, "ours"]["time"], medians["ours", big, "ours"]["time"]
        bound = big / small
        goal = f"{big} rows within {bound:g}x the time of {small} rows (no super-linear step)"
        pairs = steps.get((small, big))
        if pairs:
            ratios = [b_time / a_time for a_time, b_time in pairs]
            ratio = statistics.median(ratios)
            out.append(f"{goal}, the sizes in turn ({len(pairs)} pairs; ratios "
                       f"{', '.join(f'{r:.1f}' for r in sorted(ratios))}): median {ratio:.1f}x: "
                       f"{verdict(ratio <= bound)}")
        if a and b:
            out.append((f"{goal}: {b / a:.1f}x: {verdict(b / a <= bound)}" if not pairs else
                        f"{big} rows against {small} rows in the phases above (information; a minute or more "
                        f"apart): {b / a:.1f}x"))
        elif not pairs:
            out.append(f"{goal}: not measured (no successful round at one of them)")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--rows", type=int, action="append", metavar="N",
                        help="rows in the message (repeatable; default 100000 and 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure; medians are shown (default 3)")
    parser.add_argument("--astropy", action=argparse.BooleanOptionalAction, default=True,
                        help="also send from astropy's client to astropy's client (default: yes)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run our hub from the sampy_twisted package in DIR (say, an older checkout: "
                             "git worktree add /tmp/base <commit>), to see what a change gains")
    parser.add_argument("--baseline-clients", action="store_true",
                        help="with --baseline, our clients on the baseline hub come from DIR too "
                             "(by default every hub is driven by this checkout's clients)")
    parser.add_argument("--timeout", type=float,
                        help="seconds a message may take to arrive before its round fails "
                             "(default 20 + 40 per million rows)")
    parser.add_argument("--ping-interval", type=float, default=10.0, metavar="MS",
                        help="milliseconds between the starts of the pinger's pings (default 10)")
    parser.add_argument("--warmup-rows", type=int, default=10000, metavar="N",
                        help="one unmeasured round of N rows per hub and client first (default 10000 or the "
                             "smallest --rows; 0: none)")
    parser.add_argument("--step-pairs", type=int, default=5, metavar="P",
                        help="after the rounds above, P pairs of rounds of our client through our hub with the "
                             "sizes in turn, for the super-linear step goal (default 5; 0: none)")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("sender", "receiver", "pinger"), help=argparse.SUPPRESS)
    parser.add_argument("--recipient", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        # Workers import sampy_twisted from their tree.  Ctrl-C reaches the
        # whole process group: leave it to the orchestrator, which closes
        # our stdin to end us cleanly.
        sys.path.insert(0, options.root)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if options.worker == "ours":
            return ours_worker(options.role, options.recipient, options.ping_interval / 1000)
        return astropy_worker(options.role, options.recipient)
    options.rows = options.rows or [100_000, 1_000_000]
    if any(rows < 1 for rows in options.rows):
        parser.error("--rows must be at least 1")
    options.rows = sorted(set(options.rows))
    options.warmup_rows = min(options.warmup_rows, options.rows[0])
    options.ping_interval /= 1000
    options.libraries = ["ours", "astropy"] if options.astropy else ["ours"]
    options.hubs = ["ours", "jsamp"]
    if options.baseline:
        options.baseline = os.path.abspath(options.baseline)
        if not os.path.isdir(os.path.join(options.baseline, "sampy_twisted")):
            parser.error(f"--baseline: no sampy_twisted package in {options.baseline}")
        options.hubs.append("baseline")
    elif options.baseline_clients:
        parser.error("--baseline-clients needs --baseline")
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(orchestrate(reactor, options)))


if __name__ == "__main__":
    main()
