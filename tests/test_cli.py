# -*- test-case-name: tests.test_cli -*-
"""
Tests for the ``sampy-twisted`` command line: each command against real
hubs (ours in this process, and JSAMP's), run in-process through
L{sampy_twisted._cli.run} with captured output, and the console entry point
in child processes for exit statuses and signals.
"""

import io
import os
import re
import signal
import ssl
import sys

from twisted.internet import defer, protocol, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sampy_twisted import SAMPIntegratedClient, TLSOptions, read_lockfile
from sampy_twisted import _cli
from sampy_twisted._cli import Console, main, parse, run
from sampy_twisted._hub import SAMPHubServer
from sampy_twisted._lockfile import format_lockfile, new_lockfile_params
from sampy_twisted._process import lockfile_environ, spawn, start_hub
from sampy_twisted.testing import CertificateAuthority, hub_for_test

from .test_tls_hub import issue_for_both_ends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


HANGING_SEND = ["send", "test.hang", "--to", "responder", "--wait", "60"]
"""A send that waits for a call the responder never answers."""


def within(d, seconds=15.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


class WatchedConsole(Console):
    """A console keeping its lines, whose next line matching a pattern can
    be awaited."""

    def __init__(self, environ, stop=None):
        super().__init__(io.StringIO(), io.StringIO(), environ, stop)
        self.lines = []
        self._waiters = []

    def _line(self, text):
        self.lines.append(text)
        for pattern, d in list(self._waiters):
            if pattern.search(text):
                self._waiters.remove((pattern, d))
                d.callback(text)

    def out(self, text):
        super().out(text)
        self._line(text)

    def err(self, text):
        super().err(text)
        self._line(text)

    def wait_for(self, pattern):
        pattern = re.compile(pattern)
        for line in self.lines:
            if pattern.search(line):
                return defer.succeed(line)
        d = defer.Deferred()
        self._waiters.append((pattern, d))
        return within(d)


class Responder:
    """Another application: answers test.ok, fails test.fail, never
    answers test.slow or test.hang (whose arrival it queues in hung), and
    queues notifications."""

    def __init__(self):
        self.received = defer.DeferredQueue()
        self.hung = defer.DeferredQueue()

    def bind(self, client):
        client.bind_receive_call("test.ok", self.ok)
        client.bind_receive_call("test.fail", self.fail)
        client.bind_receive_call("test.slow", lambda *args: None)
        client.bind_receive_call("test.hang", lambda key, sender, *args: self.hung.put(sender))
        client.bind_receive_notification("test.note", self.note)

    def ok(self, key, sender, msg_id, mtype, params, extra):
        self.received.put(("call", mtype, params))
        return {"answer": "42"}

    def fail(self, key, sender, msg_id, mtype, params, extra):
        raise LookupError("no such table")

    def note(self, key, sender, mtype, params, extra):
        self.received.put(("notification", mtype, params))


class ParseTests(SynchronousTestCase):
    """
    Command-line parsing: usage errors and help.
    """

    def test_usage_errors(self):
        for argv, text in [
            ([], "no command"),
            (["launch"], "launch"),
            (["send"], "no MType given: name one, such as table.load.votable"),
            (["send", "--to", "x"], "no MType given"),
            (["send", "test.ok", "url=a", "url=b"], "parameter 'url' is given twice"),
            (["send", "not an mtype"], "is not an MType"),
            (["send", "test.ok", "novalue"], "'novalue' is not KEY=VALUE"),
            (["send", "test.ok", "=x"], "is not KEY=VALUE"),
            (["send", "test.ok", "k=caf\xe9"], "parameter k"),
            (["send", "test.ok", "--notify", "--wait", "3"], "--notify cannot"),
            (["send", "test.ok", "--wait", "0"], "--wait"),
            (["send", "test.ok", "--wait", "soon"], "--wait"),
            (["send", "test.ok", "--to", ""], "--to"),
            (["snoop", "--mtype", "a..b"], "not an MType pattern"),
            (["ping", "a", "b"], "ping takes one client name or id, not 2"),
            (["snoop", "--reply", "maybe"], "--reply must be ok, warning or error, not 'maybe'"),
            (["clients", "--name", ""], "--name must not be empty"),
            (["send", "test.ok", "--name", "caf\xe9"], "--name"),
            (["ping", "--wait", "-1"], "--wait"),
            (["hub", "--port", "x"], "--port"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                parse(argv)
            self.assertIn(text, str(caught.exception), argv)

    def test_options_after_arguments(self):
        """Options may follow the MType and parameters."""
        options = parse(["-v", "send", "test.ok", "a=1", "--to", "x", "b=2=3", "--wait", "2.5"])
        send = options.subOptions
        self.assertEqual(options["verbosity"], 1)
        self.assertEqual((send["mtype"], send["params"]), ("test.ok", {"a": "1", "b": "2=3"}))
        self.assertEqual((send["to"], send["wait"], send["notify"]), (["x"], 2.5, False))

    def test_help(self):
        """--help describes the program and each command, and exits 0."""
        for argv, text in [
            (["--help"], "snoop"),
            (["hub", "--help"], "--lockfile"),
            (["clients", "--help"], "sampy-twisted [-v] clients"),
            (["send", "--help"], "--notify"),
            (["snoop", "--help"], "--mtype"),
            (["ping", "--help"], "NAME_OR_ID"),
        ]:
            out = io.StringIO()
            self.patch(sys, "stdout", out)
            with self.assertRaises(SystemExit) as caught:
                parse(argv)
            self.assertEqual(caught.exception.code, 0)
            self.assertIn(text, out.getvalue(), argv)

    def help_text(self, argv):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit):
            parse(argv)
        return out.getvalue()

    def test_help_layout(self):
        """Each command's help opens with its synopsis, a one-line summary
        and examples of that command; then its own options, most useful
        first; the TLS options come last, under a heading of their own;
        every line fits 80 columns."""
        self.patch(os, "environ", {**os.environ, "COLUMNS": "80"})
        for command, first in [
            ("send", "--to NAME_OR_ID"),
            ("snoop", "--mtype PATTERN"),
            ("clients", "-l, --long"),
            ("ping", "--wait SECONDS"),
            ("hub", "--lockfile FILE"),
        ]:
            lines = self.help_text([command, "--help"]).splitlines()
            self.assertTrue(lines[0].startswith(f"Usage: sampy-twisted [-v] {command}"), lines[0])
            self.assertRegex(lines[1], r"^[A-Z].{10,}\.$", command)
            self.assertEqual(lines[3], "Examples:", command)
            examples = lines[4 : lines.index("", 4)]
            self.assertTrue(examples, command)
            for example in examples:
                self.assertTrue(example.startswith(f"  sampy-twisted {command}"), example)
            options = lines.index("Options:")
            self.assertTrue(lines[options + 1].startswith(f"  {first} "), (command, lines[options + 1]))
            tls = [i for i, line in enumerate(lines) if line.startswith("TLS options")]
            self.assertEqual(len(tls), 1, command)
            own = "\n".join(lines[: tls[0]])
            for option in ("--https", "--cert-file", "--key-file", "--ca-certs", "--tls-min-version"):
                self.assertNotRegex(own, rf"(?m)^  {option}\b", (command, option))
                self.assertRegex("\n".join(lines[tls[0] :]), rf"(?m)^  {option}\b", (command, option))
            for line in lines:
                self.assertLessEqual(len(line), 80, (command, line))

    def test_help_top(self):
        """The program's help lists the commands and examples first."""
        lines = self.help_text(["--help"]).splitlines()
        self.assertEqual(lines[3], "Commands:")
        self.assertLess(lines.index("Examples:"), lines.index("Options:"))

    def test_names(self):
        """Every command that registers takes --name; the default is
        'sampy-twisted COMMAND'."""
        for command in (["clients"], ["send", "test.ok"], ["snoop"], ["ping", "x"]):
            self.assertEqual(parse(command).subOptions["name"], f"sampy-twisted {command[0]}")
            self.assertEqual(parse([*command, "--name", "my tool"]).subOptions["name"], "my tool")
            self.assertIn("[default: sampy-twisted", self.help_text([command[0], "--help"]))

    def test_main_usage_error(self):
        """main() reports a usage error as one line and exits 2."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        with self.assertRaises(SystemExit) as caught:
            main(["send", "test.ok", "oops"])
        self.assertEqual(caught.exception.code, 2)
        self.assertEqual(
            err.getvalue(),
            "sampy-twisted send: 'oops' is not KEY=VALUE (see 'sampy-twisted send --help')\n",
        )


class TLSParseTests(SynchronousTestCase):
    """
    The TLS options of the commands: the client commands take the options
    of ``twistd samp-client``, ``hub`` those of ``twistd samp-hub``.
    """

    def setUp(self):
        self.pki = CertificateAuthority(os.path.abspath(self.mktemp()))
        self.cert, self.key = self.pki.issue("me")

    def test_client_commands(self):
        for command in (["clients"], ["send", "test.ok"], ["snoop"], ["ping"]):
            options = parse([*command, "--https", "--cert-file", self.cert, "--key-file", self.key,
                             "--ca-certs", self.pki.ca_file, "--cert-reqs", "required"]).subOptions
            self.assertEqual(options["callback_tls"].cert_reqs, ssl.CERT_REQUIRED, command)
            self.assertEqual(options["hub_tls"].ca_certs, self.pki.ca_file, command)
            options = parse([*command, "--hub-cert-reqs", "none"]).subOptions
            self.assertFalse(options["hub_tls"].verifies_server)
            self.assertIsNone(options["callback_tls"])

    def test_hub(self):
        options = parse(["hub", "--https", "--cert-file", self.cert, "--key-file", self.key]).subOptions
        self.assertTrue(options["tls"].has_certificate)

    def test_usage_errors(self):
        for argv, text in [
            (["hub", "--cert-file", self.cert], "--cert-file is a TLS option: it needs --https"),
            (["hub", "--https"], "--https needs --cert-file"),
            (["ping", "--https"], "--https needs --cert-file"),
            (["snoop", "--cert-reqs", "required"], "it needs --https"),
            (["clients", "--hub-cert-reqs", "none", "--hub-ca-certs", self.pki.ca_file], "contradicts"),
            (["send", "test.ok", "--cert-file", self.cert, "--key-file", self.key + ".missing"], "no such file"),
        ]:
            with self.assertRaises(usage.UsageError, msg=argv) as caught:
                parse(argv)
            self.assertIn(text, str(caught.exception), argv)


class CommandTestsMixin:
    """
    The commands against ``self.start_hub()``; ``self.environ`` points at
    its lockfile.
    """

    timeout = 60

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.lockfile, self.params = await self.start_hub()
        self.environ = lockfile_environ(self.directory, self.lockfile)

    async def cli(self, *argv, console=None):
        console = console or WatchedConsole(self.environ)
        code = await within(defer.ensureDeferred(run(reactor, parse(list(argv)), console)), 30)
        return code, console.stdout.getvalue(), console.stderr.getvalue()

    async def responder(self, name="responder"):
        client = SAMPIntegratedClient(name=name, reactor=reactor)
        responder = Responder()
        responder.bind(client)
        await within(client.connect(hub_params=self.params))
        self.addCleanup(client.disconnect)
        return client, responder

    async def test_clients(self):
        """A table of the clients: id, name, subscriptions."""
        client, _ = await self.responder()
        code, out, err = await self.cli("clients")
        self.assertEqual((code, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "NAME", "SUBSCRIPTIONS"])
        [row] = [line for line in lines if line.startswith(client.get_public_id() + " ")]
        self.assertIn("responder", row)
        self.assertIn("samp.app.ping, test.fail, test.hang, test.note, ", row)
        code, out, err = await self.cli("clients", "--long")
        [row] = [line for line in out.splitlines() if line.startswith(client.get_public_id() + " ")]
        self.assertIn("samp.app.ping, test.fail, test.hang, test.note, test.ok, test.slow, samp.hub.", row)
        self.assertEqual(len(lines), 3, out)  # the hub, the responder; not us

    async def test_clients_width(self):
        """Lines are cut to 80 columns (or COLUMNS), saying how many
        subscriptions are left out; --long prints everything."""
        wide = SAMPIntegratedClient(name="A client with a rather long name, " * 3, reactor=reactor)
        mtypes = [f"x-test.mtype{i:02}" for i in range(30)]
        for mtype in mtypes:
            wide.bind_receive_notification(mtype, lambda *args: None)
        await within(wide.connect(hub_params=self.params))
        self.addCleanup(wide.disconnect)
        for columns in ("", "60"):
            self.environ["COLUMNS"] = columns
            code, out, err = await self.cli("clients")
            self.assertEqual((code, err), (0, ""))
            width = int(columns or 80)
            for line in out.splitlines():
                self.assertLessEqual(len(line), width, line)
            [row] = [line for line in out.splitlines() if line.startswith(wide.get_public_id() + " ")]
            self.assertRegex(row, r" A client with a rathe\.\.\.  samp\.app\.ping, (.*, )?\.\.\. \(\+\d+\)$")
        code, out, err = await self.cli("clients", "--long")
        [row] = [line for line in out.splitlines() if line.startswith(wide.get_public_id() + " ")]
        self.assertIn("A client with a rather long name, " * 3, row)
        self.assertIn(", ".join(mtypes), row)

    async def test_send_call(self):
        """A call by name: the response is printed, exit 0."""
        client, responder = await self.responder()
        code, out, err = await self.cli("send", "test.ok", "table=t1", "--to", "RESPONDER")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f'{client.get_public_id()} (responder): samp.ok {{"answer": "42"}}\n')
        self.assertEqual(await within(responder.received.get()), ("call", "test.ok", {"table": "t1"}))

    async def test_send_call_to_all(self):
        """Without --to, every subscribed client is called."""
        first, _ = await self.responder("first")
        second, _ = await self.responder("second")
        code, out, err = await self.cli("send", "test.ok", "--wait", "5")
        self.assertEqual(code, 0, err)
        self.assertEqual(
            sorted(out.splitlines()),
            sorted(f'{c.get_public_id()} ({n}): samp.ok {{"answer": "42"}}' for c, n in [(first, "first"), (second, "second")]),
        )

    async def test_send_notification(self):
        """--notify by id: the notification arrives; exit 0."""
        client, responder = await self.responder()
        code, out, err = await self.cli("send", "test.note", "x=1", "--notify", "--to", client.get_public_id())
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(out, f"{client.get_public_id()} (responder): notified\n")
        self.assertEqual(await within(responder.received.get()), ("notification", "test.note", {"x": "1"}))

    async def test_send_notification_to_all(self):
        client, responder = await self.responder()
        code, out, err = await self.cli("send", "test.note", "--notify")
        self.assertEqual((code, out), (0, f"{client.get_public_id()} (responder): notified\n"))

    async def test_send_error_response(self):
        """An error response is printed and the exit status is 1."""
        client, _ = await self.responder()
        code, out, err = await self.cli("send", "test.fail", "--to", "responder")
        self.assertEqual(code, 1)
        self.assertEqual(out, f"{client.get_public_id()} (responder): samp.error: no such table\n")
        self.flushLoggedErrors(LookupError)

    async def test_send_timeout(self):
        """No response in time: said so, exit status 1."""
        client, _ = await self.responder()
        started = reactor.seconds()
        code, out, err = await self.cli("send", "test.slow", "--to", "responder", "--wait", "0.5")
        self.assertGreaterEqual(reactor.seconds() - started, 0.5)
        self.assertEqual(code, 1)
        self.assertEqual(out, f"{client.get_public_id()} (responder): no response within 0.5 s\n")

    async def test_send_unsubscribed(self):
        """A recipient not subscribed: the hub's refusal, exit 1."""
        client, _ = await self.responder()
        code, out, err = await self.cli("send", "other.thing", "--to", "responder")
        self.assertEqual(code, 1)
        self.assertIn(f"{client.get_public_id()} (responder): refused by the hub:", out)

    async def test_send_nobody_subscribed(self):
        for argv in (["send", "other.thing"], ["send", "other.thing", "--notify"]):
            code, out, err = await self.cli(*argv)
            self.assertEqual((code, out), (1, ""))
            self.assertEqual(err, "sampy-twisted send: no client is subscribed to other.thing\n")

    async def test_unknown_client(self):
        """An unknown name or id is one line on stderr and exit 1."""
        for argv in (["send", "test.ok", "--to", "nobody"], ["ping", "nobody"]):
            code, out, err = await self.cli(*argv)
            self.assertEqual((code, out), (1, ""))
            self.assertEqual(
                err, f"sampy-twisted {argv[0]}: no registered client is named 'nobody' or has that id\n"
            )

    async def test_no_hub(self):
        """No hub: one line on stderr, exit 1, for every command."""
        self.environ = lockfile_environ(self.directory, os.path.join(self.directory, "nothing-here"))
        for argv in (["clients"], ["send", "test.ok"], ["snoop"], ["ping"], ["ping", "x"]):
            code, out, err = await self.cli(*argv)
            self.assertEqual((code, out), (1, ""), argv)
            self.assertRegex(err, r"^sampy-twisted \w+: no SAMP hub is running: lockfile \S+ does not exist\n$")

    async def test_ping(self):
        """The hub, then a client by name."""
        client, _ = await self.responder()
        code, out, err = await self.cli("ping")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"^hub at http://\S+: alive \(\d+ ms\)\n$")
        code, out, err = await self.cli("ping", "responder")
        self.assertEqual(code, 0, err)
        self.assertRegex(out, rf"^{client.get_public_id()} \(responder\): samp\.ok {{}} \(\d+ ms\)\n$")

    async def snoop(self, *argv):
        """Start snoop; return its console, its id and its run's Deferred."""
        console = WatchedConsole(self.environ)
        running = defer.ensureDeferred(run(reactor, parse(["snoop", *argv]), console))
        line = await console.wait_for(r"^Receiving .* as \S+;")
        return console, line.split(" as ")[-1].split(";")[0], running

    async def test_snoop(self):
        """snoop prints what arrives, with the msg-id of calls, answers
        calls samp.warning (samp.app.ping samp.ok), and unregisters when
        stopped."""
        client, _ = await self.responder()
        console, snoop_id, running = await self.snoop("--mtype", "test.*", "--mtype", "samp.app.ping")
        self.assertEqual((await client.get_metadata(snoop_id))["samp.name"], "sampy-twisted snoop")
        await client.enotify(snoop_id, "test.news", text="hi")
        await console.wait_for(rf'^notification test\.news from {client.get_public_id()} \(responder\): {{"text": "hi"}}$')
        response = await within(client.ecall_and_wait(snoop_id, "test.question", "10"))
        self.assertEqual(response["samp.status"], "samp.warning")
        self.assertEqual(response["samp.error"]["samp.errortxt"], "logged by sampy-twisted snoop, not acted on")
        line = await console.wait_for(r"^call test\.question from ")
        self.assertRegex(line, rf"^call test\.question from {client.get_public_id()} \(responder\) \[msg-id \S+\]: {{}}$")
        response = await within(client.ecall_and_wait(snoop_id, "samp.app.ping", "10"))
        self.assertEqual(response["samp.status"], "samp.ok")
        # send does not report success for a message nobody acted on.
        code, out, err = await self.cli("send", "test.load", "--to", snoop_id)
        self.assertEqual(
            (code, out, err),
            (1, f"{snoop_id} (sampy-twisted snoop): samp.warning: logged by sampy-twisted snoop, not acted on {{}}\n", ""),
        )
        console.stop.callback(None)
        self.assertEqual(await within(running), 0)
        self.assertNotIn(snoop_id, await client.get_registered_clients())

    async def test_snoop_reply_and_name(self):
        """--reply chooses the answer to calls; --name the samp.name."""
        client, _ = await self.responder()
        for reply in ("ok", "error"):
            console, snoop_id, running = await self.snoop("--reply", reply, "--name", f"snoop {reply}")
            self.assertEqual((await client.get_metadata(snoop_id))["samp.name"], f"snoop {reply}")
            response = await within(client.ecall_and_wait(snoop_id, "test.question", "10"))
            self.assertEqual(response["samp.status"], f"samp.{reply}")
            console.stop.callback(None)
            self.assertEqual(await within(running), 0)

    async def test_snoop_hub_events(self):
        """Hub events are labelled as such."""
        console, snoop_id, running = await self.snoop()
        client, _ = await self.responder("newcomer")
        line = await console.wait_for(r"^hub event samp\.hub\.event\.register ")
        self.assertRegex(line, rf'^hub event samp\.hub\.event\.register from \S+.*: {{"id": "{client.get_public_id()}"}}$')
        console.stop.callback(None)
        self.assertEqual(await within(running), 0)


class OurHubCommandTests(CommandTestsMixin, TestCase):
    """The commands with our hub, in this process."""

    async def start_hub(self):
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(self.directory, ".samp"))
        self.addCleanup(hub.stop)
        self.hub = await hub.start()
        return hub.lockfile, hub.params

    async def test_send_hub_stops(self):
        """The hub stopping while send waits is one line, exit 1, not an
        internal error (the FirstError of the calls is unwrapped)."""
        client, responder = await self.responder()
        console = WatchedConsole(self.environ)
        running = defer.ensureDeferred(run(reactor, parse(HANGING_SEND), console))
        await within(responder.hung.get())
        await self.hub.stop()
        self.assertEqual(await within(running), 1)
        self.assertEqual(console.stderr.getvalue(), "sampy-twisted send: no response: the hub shut down\n")

    async def test_send_interrupted(self):
        """Console.stop cuts a waiting send short: it unregisters, says
        so in one line and exits 1."""
        client, responder = await self.responder()
        console = WatchedConsole(self.environ)
        running = defer.ensureDeferred(run(reactor, parse(HANGING_SEND), console))
        sender = await within(responder.hung.get())
        self.assertIn(sender, self.hub.registered_clients)
        console.stop.callback(None)
        self.assertEqual(await within(running, 5), 1)
        self.assertEqual(console.stdout.getvalue(), "")
        self.assertEqual(console.stderr.getvalue(), "sampy-twisted send: interrupted\n")
        self.assertNotIn(sender, self.hub.registered_clients)

    async def test_snoop_forgotten(self):
        """snoop ends with exit status 1 when a check finds that the hub no
        longer knows it (as after a restart), without any message from the
        hub."""
        self.patch(_cli, "HUB_CHECK_INTERVAL", 0.1)
        made = []
        new_client = _cli._new_client

        def new_client_kept(*args, **kwargs):
            made.append(new_client(*args, **kwargs))
            return made[-1]

        self.patch(_cli, "_new_client", new_client_kept)
        console = WatchedConsole(self.environ)
        running = defer.ensureDeferred(run(reactor, parse(["snoop"]), console))
        await console.wait_for(r"^Receiving \* as ")
        [snoop] = made
        # Behind the client's back: it still holds its now unknown key.
        await within(snoop.hub.unregister(snoop.get_private_key()))
        self.assertEqual(await within(running), 1)
        [line] = console.stderr.getvalue().splitlines()[1:]
        self.assertRegex(
            line, r"^sampy-twisted snoop: the hub connection ended: the hub no longer knows this client: \S"
        )
        self.assertFalse(snoop.is_connected)

    async def test_hub_port_in_use(self):
        """hub on a port already taken: one line, exit 1."""
        taken = reactor.listenTCP(0, protocol.ServerFactory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        port = taken.getHost().port
        lockfile = os.path.join(self.directory, "x.lock")
        code, out, err = await self.cli("hub", "--port", str(port), "--lockfile", lockfile)
        self.assertEqual((code, out), (1, ""))
        self.assertRegex(err, rf"^sampy-twisted hub: cannot listen on 127\.0\.0\.1:{port}: .*in use\n$")

    async def test_snoop_hub_gone(self):
        """snoop ends with exit status 1 when the hub shuts down."""
        console = WatchedConsole(self.environ)
        running = defer.ensureDeferred(run(reactor, parse(["snoop"]), console))
        await console.wait_for(r"^Receiving \* as ")
        await self.hub.stop()
        self.assertEqual(await within(running), 1)
        self.assertIn("sampy-twisted snoop: the hub connection ended: the hub shut down", console.lines)

    async def test_hub_command(self):
        """hub runs a hub until stopped, then removes its lockfile; a second
        one on the same lockfile refuses to start."""
        lockfile = os.path.join(self.directory, "other.lock")
        console = WatchedConsole(self.environ)
        running = defer.ensureDeferred(run(reactor, parse(["hub", "--lockfile", lockfile, "--label", "cli"]), console))
        await console.wait_for(rf"^SAMP hub running at http://127\.0\.0\.1:\d+/xmlrpc, lockfile {re.escape(lockfile)}$")
        self.assertEqual(read_lockfile(lockfile)["hub.label"], "cli")
        code, out, err = await self.cli("hub", "--lockfile", lockfile)
        self.assertEqual(code, 1)
        self.assertIn("a SAMP hub is already running", err)
        console.stop.callback(None)
        self.assertEqual(await within(running), 0)
        self.assertFalse(os.path.exists(lockfile))


class _Silent(protocol.Protocol):
    """Accepts a connection and never answers, as a frozen hub does."""

    def connectionMade(self):
        self.lost = defer.Deferred()
        self.factory.made.put(self)

    def connectionLost(self, reason):
        self.lost.callback(None)


class UnresponsiveHubTests(TestCase):
    """
    Hubs that stop answering without a word (silent, frozen by SIGSTOP,
    killed by SIGKILL): snoop notices, and commands cut short by
    Console.stop (a signal) end at once, or once the bounded disconnection
    gives up.
    """

    timeout = 60

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)

    async def start_child_hub(self):
        """``sampy-twisted hub`` in a child process: ``(HubProcess,
        environment pointing at it)``."""
        lockfile = os.path.join(self.directory, "hub.lock")
        environ = lockfile_environ(self.directory, lockfile)
        environ["PYTHONPATH"] = ROOT
        hub = await start_hub(
            [sys.executable, "-u", "-m", "sampy_twisted._cli", "hub", "--lockfile", lockfile],
            environ, self.directory, lockfile, 30, reactor, name="cli hub",
        )
        self.addCleanup(hub.stop)
        return hub, environ

    async def test_snoop_hub_killed(self):
        """snoop ends with exit status 1 when its hub, a child process, is
        killed without warning."""
        self.patch(_cli, "HUB_CHECK_INTERVAL", 0.1)
        hub, environ = await self.start_child_hub()
        console = WatchedConsole(environ)
        running = defer.ensureDeferred(run(reactor, parse(["snoop"]), console))
        await console.wait_for(r"^Receiving \* as ")
        result = await within(hub.kill())
        self.assertEqual(result.signal, signal.SIGKILL)
        self.assertEqual(await within(running), 1)
        [line] = console.stderr.getvalue().splitlines()[1:]
        self.assertRegex(line, "^sampy-twisted snoop: the hub connection ended: the hub does not answer: .*refused")

    async def test_clients_interrupted(self):
        """clients waiting on a silent hub stops at once: exit 1, one line."""
        factory = protocol.ServerFactory.forProtocol(_Silent)
        factory.made = defer.DeferredQueue()
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        lockfile = os.path.join(self.directory, ".samp")
        url = f"http://127.0.0.1:{port.getHost().port}/xmlrpc"
        with open(lockfile, "w") as f:
            f.write(format_lockfile(new_lockfile_params(url, "secret")))
        console = WatchedConsole(lockfile_environ(self.directory, lockfile))
        running = defer.ensureDeferred(run(reactor, parse(["clients"]), console))
        connection = await within(factory.made.get())
        console.stop.callback(None)
        self.assertEqual(await within(running, 5), 1)
        self.assertEqual(console.stderr.getvalue(), "sampy-twisted clients: interrupted\n")
        await within(connection.lost)

    async def test_send_interrupted_hub_frozen(self):
        """send interrupted after the hub froze (SIGSTOP) gives up
        unregistering after DISCONNECT_TIMEOUT."""
        self.patch(_cli, "DISCONNECT_TIMEOUT", 0.5)
        hub, environ = await self.start_child_hub()
        client = SAMPIntegratedClient(name="responder", reactor=reactor)
        responder = Responder()
        responder.bind(client)
        await within(client.connect(hub_params=hub.params))
        self.addCleanup(client.disconnect)
        console = WatchedConsole(environ)
        running = defer.ensureDeferred(run(reactor, parse(HANGING_SEND), console))
        await within(responder.hung.get())
        os.kill(hub.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, hub.pid, signal.SIGCONT)
        started = reactor.seconds()
        console.stop.callback(None)
        self.assertEqual(await within(running, 10), 1)
        self.assertLess(reactor.seconds() - started, 5)
        self.assertEqual(console.stderr.getvalue(), "sampy-twisted send: interrupted\n")


class TLSHubCommandTests(TestCase):
    """
    The client commands against our hub served over TLS and requiring
    client certificates.
    """

    timeout = 60

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.pki = CertificateAuthority(os.path.join(self.directory, "pki"))
        hub_tls = TLSOptions(*issue_for_both_ends(self.pki, "hub"), ca_certs=self.pki.ca_file,
                             cert_reqs=ssl.CERT_REQUIRED)
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(self.directory, ".samp"), tls=hub_tls)
        self.addCleanup(hub.stop)
        self.hub = await hub.start()
        self.environ = lockfile_environ(self.directory, hub.lockfile)
        self.me = issue_for_both_ends(self.pki, "me")
        self.tls_args = ["--cert-file", self.me[0], "--key-file", self.me[1], "--ca-certs", self.pki.ca_file]

    async def cli(self, *argv):
        console = WatchedConsole(self.environ)
        code = await within(defer.ensureDeferred(run(reactor, parse(list(argv)), console)), 30)
        return code, console.stdout.getvalue(), console.stderr.getvalue()

    async def test_commands(self):
        """ping, clients and a call over https with a client certificate;
        the response comes back to an https callback server requiring the
        hub's certificate."""
        code, out, err = await self.cli("ping", *self.tls_args)
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"^hub at https://127\.0\.0\.1:\d+/xmlrpc: alive \(\d+ ms\)\n$")
        code, out, err = await self.cli("clients", *self.tls_args)
        self.assertEqual(code, 0, err)
        self.assertIn("hub  Hub", out)
        code, out, err = await self.cli("send", "samp.app.ping", "--to", "hub", "--https", "--cert-reqs",
                                        "required", *self.tls_args)
        self.assertEqual((code, out), (0, "hub (Hub): samp.ok {}\n"), err)

    async def test_refused(self):
        """No client certificate, or an untrusted hub: one line saying why,
        exit status 1."""
        code, out, err = await self.cli("ping", "--ca-certs", self.pki.ca_file)
        self.assertEqual((code, out), (1, ""))
        self.assertRegex(err, r"^sampy-twisted ping: .*TLS handshake failed.*\n$")
        rogue = CertificateAuthority(os.path.join(self.directory, "rogue"), "rogue CA")
        code, out, err = await self.cli("clients", "--cert-file", self.me[0], "--key-file", self.me[1],
                                        "--hub-ca-certs", rogue.ca_file)
        self.assertEqual((code, out), (1, ""))
        self.assertRegex(err, r"^sampy-twisted clients: .*certificate of 127\.0\.0\.1 .*not trusted")
        self.assertEqual(err.count("\n"), 1, err)


class JSAMPHubCommandTests(CommandTestsMixin, TestCase):
    """The commands with JSAMP's hub."""

    async def start_hub(self):
        hub = await hub_for_test(self, "jsamp")
        return hub.lockfile, hub.params


class EntryPointTests(TestCase):
    """
    ``python -m sampy_twisted._cli`` (what the console script calls) in
    child processes: exit statuses, stderr, logging and signals.
    """

    timeout = 60

    async def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        hub = SAMPHubServer(reactor=reactor, lockfile=os.path.join(self.directory, ".samp"))
        self.addCleanup(hub.stop)
        self.hub = await hub.start()
        self.environ = lockfile_environ(self.directory, hub.lockfile)
        self.environ["PYTHONPATH"] = ROOT

    async def cli(self, *argv, environ=None):
        out, err, code = await within(
            getProcessOutputAndValue(
                sys.executable, ["-m", "sampy_twisted._cli", *argv],
                env=environ or self.environ, path=self.directory, reactor=reactor,
            ),
            30,
        )
        return code, out.decode(), err.decode()

    async def test_exit_statuses(self):
        """0 for success, 1 for a failed command (one line, no traceback),
        2 for a usage error; nothing is logged without -v."""
        code, out, err = await self.cli("ping")
        self.assertEqual((code, err), (0, ""))
        self.assertIn("alive", out)
        code, out, err = await self.cli("ping", "nobody")
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err.count("\n"), 1, err)
        code, out, err = await self.cli("send", "test.ok", "bad")
        self.assertEqual((code, out), (2, ""))
        self.assertEqual(err.count("\n"), 1, err)
        no_hub = lockfile_environ(self.directory, os.path.join(self.directory, "absent"))
        no_hub["PYTHONPATH"] = ROOT
        code, out, err = await self.cli("clients", environ=no_hub)
        self.assertEqual((code, out), (1, ""))
        self.assertIn("no SAMP hub is running", err)
        self.assertEqual(err.count("\n"), 1, err)

    async def test_verbose_logs(self):
        """-v sends Twisted's log to stderr."""
        code, out, err = await self.cli("-v", "send", "samp.app.ping", "--to", "hub")
        self.assertEqual(code, 0, err)
        self.assertIn("Registered with the hub as", err)
        self.assertIn("samp.ok", out)

    async def test_snoop_sigterm(self):
        """snoop stops cleanly on SIGTERM: unregistered, exit status 0."""
        process = spawn(
            [sys.executable, "-u", "-m", "sampy_twisted._cli", "snoop", "--mtype", "test.*"],
            self.environ, self.directory, reactor, name="snoop",
        )
        self.addCleanup(process.stop)
        line = await process.wait_for_line(r"^Receiving test\.\* as ", timeout=30)
        snoop_id = line.split(" as ")[1].split(";")[0]
        self.assertIn(snoop_id, self.hub.registered_clients)
        sender = SAMPIntegratedClient(name="sender", reactor=reactor)
        await within(sender.connect(hub_params=self.hub.params))
        self.addCleanup(sender.disconnect)
        await sender.enotify(snoop_id, "test.hello", who="me")
        await process.wait_for_line(r'^notification test\.hello from \S+ \(sender\): {"who": "me"}$')
        result = await process.stop()
        self.assertEqual(result.exit_code, 0, result.output)
        self.assertNotIn(snoop_id, self.hub.registered_clients)

    async def test_send_sigterm(self):
        """send waiting for a response that never comes stops on SIGTERM:
        exit status 1, one line."""
        client = SAMPIntegratedClient(name="responder", reactor=reactor)
        responder = Responder()
        responder.bind(client)
        await within(client.connect(hub_params=self.hub.params))
        self.addCleanup(client.disconnect)
        process = spawn(
            [sys.executable, "-u", "-m", "sampy_twisted._cli", *HANGING_SEND],
            self.environ, self.directory, reactor, name="send",
        )
        self.addCleanup(process.stop)
        sender = await within(responder.hung.get(), 30)
        result = await process.stop(kill_after=10)
        self.assertEqual((result.exit_code, result.output), (1, "sampy-twisted send: interrupted\n"))
        self.assertNotIn(sender, self.hub.registered_clients)

    async def test_hub_sigterm(self):
        """hub stops cleanly on SIGTERM and removes its lockfile."""
        lockfile = os.path.join(self.directory, "cli-hub.lock")
        process = spawn(
            [sys.executable, "-u", "-m", "sampy_twisted._cli", "hub", "--lockfile", lockfile],
            self.environ, self.directory, reactor, name="hub",
        )
        self.addCleanup(process.stop)
        await process.wait_for_line(r"^SAMP hub running at ", timeout=30)
        self.assertTrue(os.path.exists(lockfile))
        result = await process.stop()
        self.assertEqual(result.exit_code, 0, (result, process.lines))
        self.assertFalse(os.path.exists(lockfile))
