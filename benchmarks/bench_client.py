#!/usr/bin/env python
"""
Benchmark sampy_twisted's client against astropy.samp's, side by side,
through the same hub (JSAMP's by default).

    python benchmarks/bench_client.py [--hub jsamp|astropy] [--n N]
                                      [--concurrency C] [--repeat R]
                                      [--warmup S] [--baseline DIR] ...

For each library a sender and a receiver of that library run, each in a
child process of its own, registered with one hub started in a temporary
directory (the real ~/.samp is never touched).  After S seconds of warm-up,
three figures, each the median of R rounds, with the libraries' rounds
interleaved so that a change of machine load hits both alike:

notify/s
    N notifications (``samp.hub.notify``), counted at the receiver: time
    from the first send to the N-th receipt.
async call+reply/s
    N calls (``samp.hub.call``), each answered by the receiver through
    ``samp.hub.reply``, with C in flight: time from the first send to the
    N-th response at the sender.  Ours keeps C ``call_and_wait`` Deferreds
    in flight; astropy uses C threads, each waiting for its response.
call_and_wait/s
    N sequential ``call_and_wait`` (ours: client-side, ``samp.hub.call`` and
    msg-tag correlation; astropy: the hub's ``samp.hub.callAndWait``).

Notifications are sent with C in flight too (ours: Deferreds, astropy: C
threads).  Each round also reports the CPU time per message of the sender,
the receiver and the hub.  The orchestrator talks to each worker over its
stdin/stdout; a worker exits when its stdin closes, so none outlives the
benchmark.  See benchmarks/README.md and docs/benchmarks.rst.
"""

import argparse
import os
import signal
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (Imported before main() puts the tree to measure first on sys.path.)
from _common import (  # noqa: E402
    OnceAtShutdown,
    astropy_samp,
    command_protocol,
    line_writer,
    load_average,
    log_problems_to_stderr,
    serve_blocking_commands,
)

NOTIFY_MTYPE = "bench.notify"
CALL_MTYPE = "bench.call"
GOALS = {"notify": 2.0, "call": 2.0, "wait": 1.5}
TITLES = {
    "notify": "notify/s (at receiver)",
    "call": "async call+reply/s",
    "wait": "call_and_wait/s (sequential)",
}
LIBRARIES = ("ours", "astropy")
QUIET = 5.0  # seconds without a new notification before counting the rest lost


# -- workers: sampy_twisted ----------------------------------------------------


def ours_worker(role, recipient, concurrency):
    """A sender or receiver on sampy_twisted, driven by lines on stdin."""
    from twisted.internet import defer, reactor, stdio

    from sampy_twisted import SAMPIntegratedClient, read_lockfile

    log_problems_to_stderr()
    client = SAMPIntegratedClient(name=f"bench-ours-{role}", reactor=reactor)
    counts = {}

    commands = {}  # filled below
    control = command_protocol(reactor, client, commands)

    def on_notify(private_key, sender_id, mtype, params, extra):
        key = params["round"]
        elapsed = time.monotonic() - float(params["t0"])
        count = counts[key] = (counts.get(key, (0, 0.0))[0] + 1, elapsed)
        if count[0] == int(params["n"]):
            control.say(f"notified {key} {elapsed!r}")

    def on_call(private_key, sender_id, msg_id, mtype, params, extra):
        return {"echo": params.get("i", "")}

    async def lanes(n, width, send):
        # `width` coroutines, each awaiting one request at a time: exactly
        # `width` in flight until the last ones.
        sent = 0

        async def lane():
            nonlocal sent
            while sent < n:
                sent += 1
                await send(sent)

        await defer.gatherResults([defer.ensureDeferred(lane()) for _ in range(width)])

    async def notify(key, n, width):
        n, width = int(n), int(width)
        t0 = time.monotonic()
        message = {
            "samp.mtype": NOTIFY_MTYPE,
            "samp.params": {"round": key, "n": str(n), "t0": repr(t0)},
        }
        await lanes(n, width, lambda i: client.notify(recipient, message))
        return f"sent {key} {time.monotonic() - t0!r}"

    async def call(key, n, width):
        n, width = int(n), int(width)
        t0 = time.monotonic()

        def one(i):
            message = {"samp.mtype": CALL_MTYPE, "samp.params": {"i": str(i)}}
            return client.call_and_wait(recipient, message, "30").addCallback(check)

        await lanes(n, width, one)
        return f"done {key} {time.monotonic() - t0!r}"

    async def wait(key, n):
        n = int(n)
        t0 = time.monotonic()
        for i in range(n):
            message = {"samp.mtype": CALL_MTYPE, "samp.params": {"i": str(i)}}
            check(await client.call_and_wait(recipient, message, "30"))
        return f"done {key} {time.monotonic() - t0!r}"

    async def cpu():
        return f"cpu {_cpu()!r}"

    async def count(key):
        received, elapsed = counts.get(key, (0, 0.0))
        return f"count {key} {received} {elapsed!r}"

    commands.update({"notify": notify, "call": call, "wait": wait, "cpu": cpu, "count": count})

    async def start():
        params = read_lockfile(os.environ["BENCH_LOCKFILE"])
        await client.connect(hub_params=params, pool_size=concurrency)
        if role == "receiver":
            await client.bind_receive_notification(NOTIFY_MTYPE, on_notify)
            await client.bind_receive_call(CALL_MTYPE, on_call)
        stdio.StandardIO(control)
        control.say(f"ready {client.get_public_id()}")

    def failed(failure):
        sys.stderr.write(f"cannot start: {failure.getErrorMessage()}\n")
        reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(start()).addErrback(failed))
    profile = os.environ.get("BENCH_PROFILE")
    if profile:
        # CPU time, not wall time: on a loaded machine wall time mostly
        # measures waiting for a core.
        import cProfile

        profiler = cProfile.Profile(time.process_time)
        profiler.runcall(reactor.run, installSignalHandlers=False)
        profiler.dump_stats(profile)
    else:
        reactor.run(installSignalHandlers=False)


def _cpu():
    """CPU seconds (user and system, all threads) this process used so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def check(response):
    if response.get("samp.status") != "samp.ok":
        raise RuntimeError(f"call failed: {response!r}")
    return response


# -- workers: astropy ------------------------------------------------------------


def astropy_worker(role, recipient, concurrency):
    """A sender or receiver on astropy.samp: blocking calls, threads."""
    import threading

    SAMPIntegratedClient, read_lockfile = astropy_samp()
    say = line_writer()

    client = SAMPIntegratedClient(name=f"bench-astropy-{role}", addr="127.0.0.1")
    client.connect(hub_params=read_lockfile(os.environ["BENCH_LOCKFILE"]), pool_size=concurrency)
    counts = {}
    counting = threading.Lock()

    def on_notify(private_key, sender_id, mtype, params, extra):
        key = params["round"]
        with counting:
            elapsed = time.monotonic() - float(params["t0"])
            received, latest = counts.get(key, (0, 0.0))
            counts[key] = (received + 1, max(elapsed, latest))
            last = received + 1 == int(params["n"])
        if last:
            say(f"notified {key} {elapsed!r}")

    def count(key):
        with counting:
            received, elapsed = counts.get(key, (0, 0.0))
        return f"count {key} {received} {elapsed!r}"

    def on_call(private_key, sender_id, msg_id, mtype, params, extra):
        client.reply(msg_id, {"samp.status": "samp.ok", "samp.result": {"echo": params.get("i", "")}})

    # One msg-tag and one event per sending thread: each thread has exactly
    # one call in flight, as astropy's blocking API allows.
    events = [threading.Event() for _ in range(concurrency)]
    responses = [None] * concurrency

    def on_response(private_key, sender_id, msg_tag, response):
        index = int(msg_tag.rsplit("-", 1)[1])
        responses[index] = response
        events[index].set()

    if role == "receiver":
        client.bind_receive_notification(NOTIFY_MTYPE, on_notify)
        client.bind_receive_call(CALL_MTYPE, on_call)
    else:
        for index in range(concurrency):
            client.bind_receive_response(f"bench-{index}", on_response)

    def threaded(n, width, send):
        jobs = iter(range(n))
        take = threading.Lock()
        errors = []

        def lane(index):
            try:
                while True:
                    with take:
                        i = next(jobs, None)
                    if i is None:
                        return
                    send(index, i)
            except Exception as exc:  # reported, not raised, from a thread
                errors.append(exc)

        threads = [threading.Thread(target=lane, args=(k,)) for k in range(width)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def notify(key, n, width):
        n, width = int(n), int(width)
        t0 = time.monotonic()
        message = {
            "samp.mtype": NOTIFY_MTYPE,
            "samp.params": {"round": key, "n": str(n), "t0": repr(t0)},
        }
        threaded(n, width, lambda index, i: client.notify(recipient, message))
        return f"sent {key} {time.monotonic() - t0!r}"

    def call(key, n, width):
        n, width = int(n), min(int(width), concurrency)
        t0 = time.monotonic()

        def one(index, i):
            events[index].clear()
            client.call(recipient, f"bench-{index}", {"samp.mtype": CALL_MTYPE, "samp.params": {"i": str(i)}})
            if not events[index].wait(30):
                raise RuntimeError("no response within 30 s")
            check(responses[index])

        threaded(n, width, one)
        return f"done {key} {time.monotonic() - t0!r}"

    def wait(key, n):
        n = int(n)
        t0 = time.monotonic()
        for i in range(n):
            message = {"samp.mtype": CALL_MTYPE, "samp.params": {"i": str(i)}}
            check(client.call_and_wait(recipient, message, "30"))
        return f"done {key} {time.monotonic() - t0!r}"

    commands = {
        "notify": notify,
        "call": call,
        "wait": wait,
        "count": count,
        "cpu": lambda: f"cpu {_cpu()!r}",
    }
    serve_blocking_commands(client, commands, say)


# -- orchestrator --------------------------------------------------------------


class WorkerFailed(Exception):
    pass


def _worker_protocol():
    from twisted.internet import defer
    from twisted.internet.protocol import ProcessProtocol

    class Worker(ProcessProtocol):
        """A child worker: commands to its stdin, answers from its stdout."""

        def __init__(self, reactor, name):
            self.reactor = reactor
            self.name = name
            self._buffer = b""
            self._stderr = b""
            self._lines = []  # answers nobody waited for yet
            self._waiters = []  # (prefix, Deferred)
            self.done = None
            self._ended = defer.Deferred()
            self.exited = False

        def outReceived(self, data):
            *lines, self._buffer = (self._buffer + data).split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").rstrip("\r")
                if line.startswith("error "):
                    self._fail(f"{self.name}: {line[6:]}")
                    continue
                for waiter in self._waiters:
                    if line.startswith(waiter[0]):
                        self._waiters.remove(waiter)
                        waiter[1].callback(line[len(waiter[0]):].strip())
                        break
                else:
                    self._lines.append(line)

        def errReceived(self, data):
            self._stderr = (self._stderr + data)[-8192:]

        def processEnded(self, reason):
            self.exited = True
            self._fail(f"{self.name} exited ({reason.getErrorMessage()})")
            self._ended.callback(None)

        def _fail(self, text):
            text += "\n" + self._stderr.decode(errors="replace").strip()
            waiters, self._waiters = self._waiters, []
            for _, d in waiters:
                d.errback(WorkerFailed(text))

        def send(self, line):
            self.transport.write(line.encode() + b"\n")

        def expect(self, prefix, timeout):
            """A Deferred firing with the rest of the first line starting with *prefix*."""
            for line in self._lines:
                if line.startswith(prefix):
                    self._lines.remove(line)
                    return defer.succeed(line[len(prefix):].strip())
            if self.exited:
                return defer.fail(WorkerFailed(f"{self.name} has exited"))
            d = defer.Deferred()
            entry = (prefix, d)
            self._waiters.append(entry)

            def timed_out(result, timeout):
                if entry in self._waiters:
                    self._waiters.remove(entry)
                raise WorkerFailed(f"{self.name}: no {prefix.strip()!r} within {timeout:g} s")

            return d.addTimeout(timeout, self.reactor, onTimeoutCancel=timed_out)

        def stop(self, grace=5.0):
            """Close stdin (the worker unregisters and exits); kill it if slow."""
            if self.exited:
                return defer.succeed(None)
            self.transport.closeStdin()

            def kill():
                if not self.exited:
                    self.transport.signalProcess("KILL")

            killer = self.reactor.callLater(grace, kill)
            return self._ended.addBoth(lambda _: killer.active() and killer.cancel())

    return Worker


async def orchestrate(reactor, options):
    from twisted.internet import defer

    from sampy_twisted.testing import start_astropy_hub, start_jsamp_hub

    Worker = _worker_protocol()
    workers = []
    state = {"hub": None}

    async def clean_up():
        await defer.gatherResults([w.stop() for w in workers], consumeErrors=True)
        if state["hub"] is not None:
            await state["hub"].stop()

    clean_up_once = OnceAtShutdown(reactor, clean_up)

    def spawn(lib, role, recipient="-"):
        worker = Worker(reactor, f"{lib} {role}")
        # "baseline" is our worker importing sampy_twisted from another tree.
        root = options.baseline if lib == "baseline" else ROOT
        argv = [sys.executable, os.path.abspath(__file__),
                "--worker", "astropy" if lib == "astropy" else "ours", "--root", root, "--role", role,
                "--recipient", recipient, "--concurrency", str(options.concurrency)]
        env = dict(state["hub"].environ, BENCH_LOCKFILE=state["hub"].lockfile)
        if lib == "ours" and options.profile:
            env["BENCH_PROFILE"] = os.path.abspath(f"bench-{lib}-{role}.prof")
        reactor.spawnProcess(worker, sys.executable, argv, env=env, path=ROOT)
        workers.append(worker)
        return worker

    started = time.monotonic()
    start = {"jsamp": start_jsamp_hub, "astropy": start_astropy_hub}[options.hub]
    try:
        state["hub"] = await start(reactor=reactor, timeout=60.0)
        pairs = {}
        for lib in options.libraries:
            receiver = spawn(lib, "receiver")
            recipient = await receiver.expect("ready", 60)
            sender = spawn(lib, "sender", recipient)
            await sender.expect("ready", 60)
            pairs[lib] = (sender, receiver)
        rounds = iter(range(1_000_000))
        lost = [0]

        async def cpu_times(lib):
            sender, receiver = pairs[lib]
            sender.send("cpu")
            receiver.send("cpu")
            return (
                float(await sender.expect("cpu ", 10)),
                float(await receiver.expect("cpu ", 10)),
                _process_cpu(state["hub"].pid),
            )

        async def notified(receiver, key, n):
            """(notifications received, seconds to the last): hubs may drop
            notifications they fail to deliver, so stop waiting once the
            count has not moved for a while."""
            received = -1
            while True:
                try:
                    return n, float(await receiver.expect(f"notified {key} ", QUIET))
                except WorkerFailed:
                    if receiver.exited:
                        raise
                receiver.send(f"count {key}")
                now, elapsed = (await receiver.expect(f"count {key} ", 10)).split()
                if int(now) == n:  # completed meanwhile
                    return n, float(await receiver.expect(f"notified {key} ", 10))
                if int(now) == received:
                    lost[0] += n - received
                    return received, float(elapsed)
                received = int(now)

        async def measure(lib, metric, n):
            """(messages/s, CPU us/message of the sender, the receiver and the hub)"""
            sender, receiver = pairs[lib]
            key = f"r{next(rounds)}"
            before = await cpu_times(lib)
            drops = _listen_drops()
            lost[0] = 0
            limit = 30 + n / 20  # bounded even at 20 messages/s
            if metric == "notify":
                sender.send(f"notify {key} {n} {options.concurrency}")
                await sender.expect(f"sent {key} ", limit)
                n, elapsed = await notified(receiver, key, n)
            elif metric == "call":
                sender.send(f"call {key} {n} {options.concurrency}")
                elapsed = await sender.expect(f"done {key} ", limit)
            else:
                sender.send(f"wait {key} {n}")
                elapsed = await sender.expect(f"done {key} ", limit)
            after = await cpu_times(lib)
            drops = _listen_drops() - drops
            return (n / float(elapsed), drops, lost[0], *((a - b) / n * 1e6 for a, b in zip(after, before)))

        metrics = [m for m in ("notify", "call", "wait") if m in options.metrics]
        print(f"hub: {options.hub}; n={options.n}, concurrency={options.concurrency}, "
              f"repeat={options.repeat}; load average: {load_average()}", flush=True)
        # Warm up: the hub's JIT compiler needs a few thousand messages
        # before its cost per message settles; our imports and caches too.
        warm_until = time.monotonic() + options.warmup
        while True:
            for lib in options.libraries:
                for metric in metrics:
                    await measure(lib, metric, 200)
            if time.monotonic() >= warm_until:
                break
        results = {(m, lib): [] for m in metrics for lib in options.libraries}
        for r in range(options.repeat):
            for metric in metrics:
                # Alternate who goes first, so drifting load hits both alike.
                order = options.libraries if r % 2 == 0 else options.libraries[::-1]
                for lib in order:
                    rate, drops, missing, *cpu = await measure(lib, metric, options.n)
                    results[metric, lib].append(rate)
                    notes = [f"{drops} SYNs dropped by full listen queues"] if drops else []
                    if missing:
                        notes.append(f"{missing} notifications never arrived")
                    print(f"  round {r + 1}: {lib:9s}{TITLES[metric]:30s} {rate:6.0f}/s   CPU us per "
                          "message: sender {:5.0f}, receiver {:5.0f}, hub {:5.0f}".format(*cpu)
                          + (f"   ({'; '.join(notes)})" if notes else ""), flush=True)
        print(f"load average after: {load_average()}; {time.monotonic() - started:.0f} s in all\n")
        print(_table(results, metrics, options.libraries))
    except Exception as exc:
        if clean_up_once.started:
            print("interrupted: workers and hub stopped", file=sys.stderr)
        elif isinstance(exc, WorkerFailed):
            print(f"benchmark failed: {exc}", file=sys.stderr)
            raise SystemExit(1)
        else:
            raise
    finally:
        await clean_up_once()


def _process_cpu(pid):
    """CPU seconds another process (the hub) used so far, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _listen_drops():
    """Connection attempts dropped by full listen queues, machine-wide so
    far: each costs the connecting side a retransmission a second later."""
    try:
        with open("/proc/net/netstat") as f:
            lines = [line.split() for line in f if line.startswith("TcpExt:")]
        return int(dict(zip(lines[0], lines[1]))["ListenDrops"])
    except (OSError, IndexError, KeyError, ValueError):
        return 0


def _table(results, metrics, libraries):
    def median(metric, lib):
        values = results.get((metric, lib))
        return statistics.median(values) if values else None

    def number(value, form="{:.0f}"):
        return "-" if value is None else form.format(value)

    baseline = "baseline" in libraries
    rows = [("metric", "ours", "astropy", "ours/astropy", "goal met?")
            + (("baseline", "ours/baseline") if baseline else ())]
    for metric in metrics:
        ours, theirs = median(metric, "ours"), median(metric, "astropy")
        ratio = ours / theirs if ours and theirs else None
        met = "-" if ratio is None else ("yes" if ratio >= GOALS[metric] else "no")
        row = (TITLES[metric], number(ours), number(theirs), number(ratio, "{:.2f}"),
               f"{met} (goal {GOALS[metric]:g}x)")
        if baseline:
            base = median(metric, "baseline")
            row += (number(base), number(ours / base if ours and base else None, "{:.2f}"))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hub", choices=("jsamp", "astropy"), default="jsamp")
    parser.add_argument("--n", type=int, default=500, help="messages per round (default 500)")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="requests in flight for notify and async calls (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure; medians are shown")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of warm-up before measuring")
    parser.add_argument("--only", dest="libraries", choices=LIBRARIES, action="append",
                        help="measure only this library (repeatable)")
    parser.add_argument("--metric", dest="metrics", choices=("notify", "call", "wait"), action="append",
                        help="measure only this figure (repeatable)")
    parser.add_argument("--profile", action="store_true",
                        help="profile our workers' CPU time (bench-ours-*.prof in the current directory)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also measure the sampy_twisted package found in DIR (say, an older "
                             "checkout) as a third library, to see what a change gains")
    parser.add_argument("--worker", choices=LIBRARIES, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("sender", "receiver"), help=argparse.SUPPRESS)
    parser.add_argument("--recipient", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    options.libraries = tuple(options.libraries or LIBRARIES)
    if options.baseline:
        options.baseline = os.path.abspath(options.baseline)
        if not os.path.isdir(os.path.join(options.baseline, "sampy_twisted")):
            parser.error(f"--baseline: no sampy_twisted package in {options.baseline}")
        options.libraries += ("baseline",)
    options.metrics = tuple(options.metrics or ("notify", "call", "wait"))
    # Workers import sampy_twisted from their tree; the orchestrator uses
    # this checkout's (for sampy_twisted.testing).
    sys.path.insert(0, options.root if options.worker else ROOT)
    if options.worker:
        # Ctrl-C reaches the whole process group: leave it to the
        # orchestrator, which closes our stdin to end us cleanly.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if options.worker == "ours":
        return ours_worker(options.role, options.recipient, options.concurrency)
    if options.worker == "astropy":
        return astropy_worker(options.role, options.recipient, options.concurrency)
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(orchestrate(reactor, options)))


if __name__ == "__main__":
    main()
