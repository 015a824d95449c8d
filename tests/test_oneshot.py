"""
The one-shot ``ping`` and ``send --notify`` without Twisted (``sampy_twisted._oneshot``), reached
through the console script's entry (``sampy_twisted._cli_entry``): it must
print what the full command prints and exit as it does, against our hub
and JSAMP's, without importing Twisted; anything else goes to the full
command.
"""

import configparser
import os
import re
import signal
import socket
import sys

from twisted.internet import defer, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sampy_twisted import SAMPIntegratedClient
from sampy_twisted import _cli
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted._oneshot import Notify, Ping, parse
from sampy_twisted._process import lockfile_environ, spawn
from sampy_twisted.testing import hub_for_test

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the console script runs (pip writes the same three lines), with a
# line on stderr at exit naming any Twisted module that was imported.
ENTRY = """\
import atexit, sys
def _loaded():
    found = sorted(m for m in sys.modules if m == "twisted" or m.startswith("twisted."))
    if found:
        sys.stderr.write(f"TWISTED LOADED: {len(found)} modules\\n")
atexit.register(_loaded)
from sampy_twisted._cli_entry import main
sys.exit(main())
"""
TWISTED_LOADED = re.compile(r"^TWISTED LOADED: \d+ modules\n", re.M)


def within(d, seconds=30.0):
    return d.addTimeout(seconds, reactor)


def normal(text):
    """Output with the times taken, which differ from run to run, hidden."""
    return re.sub(r"\(\d+ ms\)", "(N ms)", text)


def without_times(log):
    """Log lines without their time stamps."""
    return re.sub(r"^\S+T\S+ \[", "[", log, flags=re.M)


async def run_process(argv, environ, directory):
    out, err, code = await within(
        getProcessOutputAndValue(sys.executable, argv, env=environ, path=directory, reactor=reactor), 60
    )
    return code, out.decode(), err.decode()


async def fast(argv, environ, directory):
    """The console script: ``(exit status, stdout, stderr, Twisted loaded)``."""
    code, out, err = await run_process(["-c", ENTRY, *argv], environ, directory)
    loaded = bool(TWISTED_LOADED.search(err))
    return code, out, TWISTED_LOADED.sub("", err), loaded


async def full(argv, environ, directory):
    """``python -m sampy_twisted._cli``: the full command."""
    return await run_process(["-m", "sampy_twisted._cli", *argv], environ, directory)


class ParseTests(SynchronousTestCase):
    """Which command lines the one-shot path takes."""

    def test_served(self):
        """ping, with at most one target, --wait and --name, in any order."""
        name = "sampy-twisted ping"
        self.assertEqual(parse(["ping"]), Ping(None, 10.0, name))
        self.assertEqual(parse(["ping", "hub"]), Ping("hub", 10.0, name))
        self.assertEqual(parse(["ping", "--wait", "2.5", "topcat"]), Ping("topcat", 2.5, name))
        self.assertEqual(parse(["ping", "x", "--wait=3", "--name=me"]), Ping("x", 3.0, "me"))
        self.assertEqual(parse(["ping", "--name", "a b", "--", "-odd"]), Ping("-odd", 10.0, "a b"))
        self.assertEqual(parse(["ping", "--name=x=y"]), Ping(None, 10.0, "x=y"))

    def test_served_notify(self):
        """send --notify, with KEY=VALUE parameters, --to (repeatable) and
        --name."""
        name = "sampy-twisted send"
        self.assertEqual(parse(["send", "x.y", "--notify"]), Notify("x.y", {}, (), name))
        self.assertEqual(
            parse(["send", "--notify", "table.load.votable", "url=file:///t.vot", "a==b", "--to", "topcat",
                   "--to=c1", "--name", "me"]),
            Notify("table.load.votable", {"url": "file:///t.vot", "a": "=b"}, ("topcat", "c1"), "me"),
        )

    def test_not_served_send(self):
        """Calls, and anything the full command refuses, go to it."""
        for argv in (
            ["send", "x.y"], ["send", "x.y", "--call"], ["send", "x.y", "--notify", "--wait", "1"],
            ["send", "--notify"], ["send", "not an mtype", "--notify"], ["send", "x.y", "a", "--notify"],
            ["send", "x.y", "=a", "--notify"], ["send", "x.y", "a=1", "a=2", "--notify"],
            ["send", "x.y", "a=caf\u00e9", "--notify"], ["send", "x.y", "--notify", "--to", ""],
            ["send", "x.y", "--notify", "--notify"], ["send", "x.y", "--notify=yes"], ["send", "x.y", "--notify", "--to"],
            ["send", "x.y", "--notify", "--name", ""], ["-v", "send", "x.y", "--notify"],
            ["send", "x.y", "--notify", "--cert-file", "c.pem"],
        ):
            self.assertIsNone(parse(argv), argv)

    def test_not_served(self):
        """Anything else, or anything the full command refuses (it says
        why), goes to the full command."""
        for argv in (
            [], ["clients"], ["send", "samp.app.ping"], ["-v", "ping"], ["ping", "--help"],
            ["ping", "-h"], ["ping", "--version"], ["ping", "a", "b"], ["ping", "--wait"],
            ["ping", "--wait", "0"], ["ping", "--wait", "-1"], ["ping", "--wait", "inf"],
            ["ping", "--wait", "nan"], ["ping", "--wait", "soon"], ["ping", "--wait", "1", "--wait", "2"],
            ["ping", "--wa", "1"], ["ping", "--name", ""], ["ping", "--name", "caf\u00e9"],
            ["ping", "--name", "a", "--name", "b"], ["ping", "--ca-certs", "x"], ["ping", "-"],
            ["ping", "--hub-cert-reqs=none"],
        ):
            self.assertIsNone(parse(argv), argv)

    def test_defaults(self):
        """The defaults are the full command's."""
        for argv in (["ping"], ["ping", "x", "--wait", "4", "--name", "n"]):
            options = _cli.parse(argv).subOptions
            served = parse(argv)
            self.assertEqual((served.target, served.wait, served.name),
                             (options["target"], options["wait"], options["name"]))


class EntryPointTests(SynchronousTestCase):
    """The console script setup.cfg declares."""

    def test_declared(self):
        """sampy-twisted runs _cli_entry.main, which tests here run."""
        config = configparser.ConfigParser()
        config.read(os.path.join(ROOT, "setup.cfg"))
        scripts = config["options.entry_points"]["console_scripts"].split("\n")
        self.assertIn("sampy-twisted = sampy_twisted._cli_entry:main", [line.strip() for line in scripts])


class ParityMixin:
    """
    The console script (one-shot) against the full command, on
    ``self.start_hub()``: the same output and exit status, and no Twisted
    loaded by the console script.
    """

    timeout = 180

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.lockfile, self.params = await self.start_hub()
        self.environ = lockfile_environ(self.directory, self.lockfile)
        self.environ["PYTHONPATH"] = ROOT

    async def both(self, *argv, environ=None):
        """Run *argv* both ways; return the one-shot ``(code, out, err)``."""
        environ = environ or self.environ
        code, out, err, loaded = await fast(argv, environ, self.directory)
        self.assertFalse(loaded, "the console script imported Twisted")
        expected = await full(argv, environ, self.directory)
        self.assertEqual((code, normal(out), normal(err)), (expected[0], normal(expected[1]), normal(expected[2])))
        return code, normal(out), err

    async def client(self, name, callable=True):
        client = SAMPIntegratedClient(name=name, reactor=reactor, callable=callable)
        await within(client.connect(hub_params=self.params))
        self.addCleanup(client.disconnect)
        return client

    async def registered(self):
        """The ids registered now, as another client sees them."""
        observer = await self.client("observer")
        try:
            return set(await within(observer.get_registered_clients()))
        finally:
            await within(observer.disconnect())

    async def test_ping_hub_only(self):
        """``ping``: samp.hub.ping only."""
        code, out, err = await self.both("ping")
        url = self.params["samp.hub.xmlrpc.url"]
        self.assertEqual((code, out, err), (0, f"hub at {url}: alive (N ms)\n", ""))

    async def test_ping_hub(self):
        """``ping hub``: the hub's own client, by id; the pinger leaves."""
        before = await self.registered()
        code, out, err = await self.both("ping", "hub", "--name", "my pinger")
        self.assertEqual((code, err), (0, ""))
        self.assertRegex(out, r"^hub \(\w+\): samp\.ok \{\} \(N ms\)\n$")
        self.assertEqual(await self.registered(), before)

    async def test_ping_clients(self):
        """By id, by name whatever its case, every client with the name."""
        responder = await self.client("responder")
        twins = [await self.client("twin") for _ in range(2)]
        code, out, err = await self.both("ping", responder.get_public_id(), "--wait=5")
        self.assertEqual((code, out, err), (0, f"{responder.get_public_id()} (responder): samp.ok {{}} (N ms)\n", ""))
        code, out, err = await self.both("ping", "RESPONDER")
        self.assertEqual((code, out, err), (0, f"{responder.get_public_id()} (responder): samp.ok {{}} (N ms)\n", ""))
        code, out, err = await self.both("ping", "twin")
        ids = sorted((twin.get_public_id() for twin in twins), key=_cli._natural)
        self.assertEqual((code, out, err), (0, "".join(f"{cid} (twin): samp.ok {{}} (N ms)\n" for cid in ids), ""))

    async def test_unknown(self):
        """No such client: one line on stderr, exit status 1."""
        code, out, err = await self.both("ping", "nobody")
        self.assertEqual(
            (code, out, err), (1, "", "sampy-twisted ping: no registered client is named 'nobody' or has that id\n")
        )

    async def test_no_answer(self):
        """A client that does not answer within --wait: said, exit 1, and
        the pinger unregistered."""
        silent = await self.client("silent")
        heard = []
        silent.bind_receive_call("samp.app.ping", lambda key, sender, *args: heard.append(sender))
        before = await self.registered()
        code, out, err = await self.both("ping", "silent", "--wait", "0.5")
        self.assertEqual((code, out, err), (1, f"{silent.get_public_id()} (silent): no response within 0.5 s (N ms)\n", ""))
        self.assertEqual(len(heard), 2)
        self.assertEqual(await self.registered(), before)

    async def test_refused_and_failed(self):
        """A client the hub cannot call, and one answering samp.error: the
        same lines both ways (the hub's own refusal text), exit 1."""
        deaf = await self.client("deaf", callable=False)
        code, out, err = await self.both("ping", "deaf")
        self.assertEqual((code, err), (1, ""))
        self.assertRegex(out, rf"^{deaf.get_public_id()} \(deaf\): refused by the hub: .+ \(N ms\)\n$")

        def grumble(*args):
            raise LookupError("not today")

        grumpy = await self.client("grumpy")
        grumpy.bind_receive_call("samp.app.ping", grumble)
        code, out, err = await self.both("ping", "grumpy")
        self.assertEqual((code, err), (1, ""))
        self.assertRegex(out, rf"^{grumpy.get_public_id()} \(grumpy\): samp\.error: .*not today.* \(N ms\)\n$")
        self.assertEqual(len(self.flushLoggedErrors(LookupError)), 2)

    async def listener(self, name="listener"):
        client = await self.client(name)
        heard = []
        client.bind_receive_notification("x-test.note", lambda key, sender, mtype, params, extra: heard.append(params))
        return client, heard

    async def test_notify_all(self):
        """send --notify to every subscriber."""
        listener, heard = await self.listener()
        before = await self.registered()
        code, out, err = await self.both("send", "x-test.note", "a=1", "b=x y", "--notify")
        self.assertEqual((code, out, err), (0, f"{listener.get_public_id()} (listener): notified\n", ""))
        self.assertEqual(await self.registered(), before)
        self.assertEqual(heard, [{"a": "1", "b": "x y"}] * 2)

    async def test_notify_to(self):
        """send --notify --to: each client once, in order."""
        listener, heard = await self.listener()
        other, _ = await self.listener("other")
        code, out, err = await self.both(
            "send", "x-test.note", "--notify", "--to", "other", "--to", "LISTENER", "--to", listener.get_public_id(),
            "--name", "notifier",
        )
        expected = f"{other.get_public_id()} (other): notified\n{listener.get_public_id()} (listener): notified\n"
        self.assertEqual((code, out, err), (0, expected, ""))
        self.assertEqual(len(heard), 2)

    async def test_notify_refused(self):
        """A client not subscribed, no subscriber at all, no such client:
        one line on stderr, exit 1."""
        code, out, err = await self.both("send", "x-test.note", "--notify", "--to", "hub")
        self.assertEqual((code, out), (1, ""))
        self.assertRegex(err, r"^sampy-twisted send: .+\n$")
        code, out, err = await self.both("send", "x-test.none", "--notify")
        self.assertEqual((code, out, err), (1, "", "sampy-twisted send: no client is subscribed to x-test.none\n"))
        code, out, err = await self.both("send", "x-test.note", "--notify", "--to", "nobody")
        self.assertEqual(
            (code, out, err), (1, "", "sampy-twisted send: no registered client is named 'nobody' or has that id\n")
        )

    async def interrupted(self, signum):
        """A ping waiting for an answer, stopped by *signum*: one line,
        exit status 1, unregistered; the one-shot and the full command."""
        silent = await self.client("silent")
        heard = defer.DeferredQueue()
        silent.bind_receive_call("samp.app.ping", lambda key, sender, *args: heard.put(sender))
        before = await self.registered()
        for start in (["-c", ENTRY], ["-m", "sampy_twisted._cli"]):
            process = spawn(
                [sys.executable, *start, "ping", "silent", "--wait", "60"],
                self.environ, self.directory, reactor, name="ping",
            )
            self.addCleanup(process.stop)
            await within(heard.get())
            os.kill(process.pid, signum)
            result = await within(process.ended)
            self.assertEqual((result.exit_code, result.output), (1, "sampy-twisted ping: interrupted\n"), start)
            self.assertEqual(await self.registered(), before)

    def test_sigterm(self):
        """SIGTERM stops a waiting ping cleanly."""
        return defer.ensureDeferred(self.interrupted(signal.SIGTERM))

    def test_sigint(self):
        """Ctrl-C (SIGINT) stops a waiting ping cleanly."""
        return defer.ensureDeferred(self.interrupted(signal.SIGINT))


class OurHubParityTests(ParityMixin, TestCase):
    """With our hub, in this process."""

    async def start_hub(self):
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(self.directory, ".samp"))
        self.addCleanup(hub.stop)
        await hub.start()
        return hub.lockfile, hub.params


class JSAMPHubParityTests(ParityMixin, TestCase):
    """With JSAMP's hub."""

    async def start_hub(self):
        hub = await hub_for_test(self, "jsamp")
        return hub.lockfile, hub.params


class NoHubTests(TestCase):
    """No hub: the same one line and exit status both ways."""

    timeout = 120

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    def environ(self, lockfile):
        environ = lockfile_environ(self.directory, lockfile)
        environ["PYTHONPATH"] = ROOT
        return environ

    async def both(self, argv, environ):
        code, out, err, loaded = await fast(argv, environ, self.directory)
        self.assertFalse(loaded, "the console script imported Twisted")
        self.assertEqual((code, out, err), await full(argv, environ, self.directory))
        return code, out, err

    async def test_no_lockfile(self):
        """The lockfile is missing."""
        lockfile = os.path.join(self.directory, "absent.samp")
        for argv in (["ping"], ["ping", "hub"], ["send", "x.y", "--notify"]):
            result = await self.both(argv, self.environ(lockfile))
            message = f"sampy-twisted {argv[0]}: no SAMP hub is running: lockfile {lockfile} does not exist\n"
            self.assertEqual(result, (1, "", message))

    async def test_dead_hub(self):
        """The lockfile names a port where nothing listens."""
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        url = f"http://127.0.0.1:{port}/xmlrpc"
        lockfile = os.path.join(self.directory, "dead.samp")
        with open(lockfile, "w") as f:
            f.write(f"samp.secret=0123456789abcdef\nsamp.hub.xmlrpc.url={url}\nsamp.profile.version=1.3\n")
        for argv in (["ping"], ["ping", "hub"], ["send", "x.y", "--notify"]):
            result = await self.both(argv, self.environ(lockfile))
            message = f"sampy-twisted {argv[0]}: samp.hub.ping at {url} failed: connection refused\n"
            self.assertEqual(result, (1, "", message))


class FallbackTests(TestCase):
    """Command lines the one-shot path does not serve run the full command,
    with the same arguments."""

    timeout = 120

    async def test_full_command(self):
        """Help, a usage error, -v, another command: as the full command."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        environ = lockfile_environ(directory, os.path.join(directory, "absent.samp"))
        environ["PYTHONPATH"] = ROOT
        for argv in (["ping", "--help"], ["ping", "--wait", "0"], ["ping", "a", "b"], ["-v", "ping"], ["clients"],
                     ["send", "x.y", "a=1", "a=2", "--notify"], ["send", "x.y"]):
            code, out, err, loaded = await fast(argv, environ, directory)
            self.assertTrue(loaded, argv)
            expected = await full(argv, environ, directory)
            self.assertEqual((code, out, without_times(err)), (expected[0], expected[1], without_times(expected[2])), argv)
