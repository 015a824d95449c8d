# -*- test-case-name: tests.test_tls_guide -*-
"""
The TLS guide (``docs/tls.rst``) works as written: its scripts make the
certificates in a temporary directory, and the commands it shows (each in a
code block following a ``.. tested: NAME`` comment) and its Python example
run with them, in child processes, against each other.
"""

import os
import re
import shutil
import sys
import textwrap

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sampy_twisted import TLSOptions, read_lockfile
from sampy_twisted._process import lockfile_environ, spawn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
GUIDE = os.path.join(DOCS, "tls.rst")
EXAMPLES = os.path.join(DOCS, "examples")

_TESTED_BLOCK = re.compile(
    r"^\.\. tested: (?P<name>\S+)\n\n\.\. code-block:: sh\n\n(?P<body>(?:(?:    .*)?\n)+)", re.MULTILINE
)

_WRAPPERS = {
    # This checkout's commands, run by this Python, whatever is installed.
    "sampy-twisted": '#!/bin/sh\nexec "{python}" -m sampy_twisted._cli "$@"\n',
    "twistd": (
        '#!/bin/sh\nexec "{python}" -c "import sys; from twisted.scripts.twistd import run; '
        "sys.argv[0] = 'twistd'; run()\" \"$@\"\n"
    ),
}


def tested_commands(path=GUIDE):
    """
    The commands of the guide's tested code blocks.

    :return: ``{name: command}``, each command as one shell command line.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    commands = {}
    for match in _TESTED_BLOCK.finditer(text):
        body = textwrap.dedent(match.group("body")).strip()
        commands[match.group("name")] = body
    return commands


def within(d, seconds=30.0):
    """Fail instead of hanging when *d* does not fire in time."""
    return d.addTimeout(seconds, reactor)


class GuideTextTests(SynchronousTestCase):
    """
    The guide's tested blocks are found, and its scripts are the files the
    guide includes.
    """

    def test_blocks(self):
        commands = tested_commands()
        self.assertEqual(set(commands), {"hub", "hub-encrypted", "alice", "bob-send", "bob-ping", "refused"})
        self.assertTrue(commands["hub"].startswith("sampy-twisted hub --https"))
        self.assertIn("--key-passphrase-file hub-passphrase.txt", commands["hub-encrypted"])

    def test_includes(self):
        with open(GUIDE, encoding="utf-8") as f:
            text = f.read()
        for name in ("make-certificates.sh", "encrypt-key.sh", "tls_api.py"):
            self.assertIn(f".. literalinclude:: examples/{name}", text)
            self.assertTrue(os.path.isfile(os.path.join(EXAMPLES, name)))


class GuideTests(TestCase):
    """
    The guide's scripts, commands and example, run as written.
    """

    timeout = 180

    async def setUp(self):
        if shutil.which("openssl") is None:
            raise self.failureException("the TLS guide needs the openssl command, which is missing")
        self.directory = os.path.abspath(self.mktemp())
        self.home = os.path.join(self.directory, "home")
        self.work = os.path.join(self.directory, "certificates")
        bin_directory = os.path.join(self.directory, "bin")
        for path in (self.home, self.work, bin_directory):
            os.makedirs(path)
        for name, text in _WRAPPERS.items():
            path = os.path.join(bin_directory, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.format(python=sys.executable))
            os.chmod(path, 0o755)
        self.lockfile = os.path.join(self.home, ".samp")
        self.env = lockfile_environ(self.home, self.lockfile)
        self.env.update(
            PATH=os.pathsep.join([bin_directory, os.environ.get("PATH", "/usr/bin:/bin")]),
            PYTHONPATH=ROOT,
            PYTHONUNBUFFERED="1",
        )
        for script in ("make-certificates.sh", "encrypt-key.sh"):
            await self.run_to_end(["sh", os.path.join(EXAMPLES, script)])
        self.commands = tested_commands()

    async def run_to_end(self, argv, expect_code=0):
        out, err, code = await within(
            getProcessOutputAndValue(argv[0], argv[1:], env=self.env, path=self.work, reactor=reactor), 60
        )
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        self.assertEqual(code, expect_code, f"{' '.join(argv)} exited {code}:\n{out}\n{err}")
        return out, err

    async def run_command(self, name, expect_code=0):
        return await self.run_to_end(["sh", "-c", self.commands[name]], expect_code)

    def start_command(self, name):
        process = spawn(["sh", "-c", "exec " + self.commands[name]], self.env, self.work, reactor, name=name)
        self.addCleanup(process.stop)
        return process

    def test_certificates(self):
        """The scripts write what the guide says, with the right SANs and
        usages: every certificate is accepted by TLSOptions, the keys are
        private."""
        for name in ("hub", "alice", "bob"):
            cert, key = (os.path.join(self.work, f"{name}-{part}.pem") for part in ("cert", "key"))
            options = TLSOptions(cert, key, ca_certs=os.path.join(self.work, "ca.pem"))
            self.assertTrue(options.has_certificate)
            self.assertEqual(os.stat(key).st_mode & 0o077, 0, key)
        encrypted = os.path.join(self.work, "hub-key-encrypted.pem")
        with open(os.path.join(self.work, "hub-passphrase.txt"), encoding="utf-8") as f:
            passphrase = f.readline().rstrip("\n")
        self.assertTrue(TLSOptions(os.path.join(self.work, "hub-cert.pem"), encrypted, passphrase=passphrase)
                        .has_certificate)

    async def test_commands(self):
        """The hub (encrypted key, then plain key), alice under twistd, bob
        sending and pinging, and the refusal, all as the guide shows."""
        for hub_command in ("hub-encrypted", "hub"):
            hub = self.start_command(hub_command)
            await hub.wait_for_line(r"^SAMP hub running at https://127\.0\.0\.1:\d+/xmlrpc, lockfile ", timeout=30)
            params = read_lockfile(self.lockfile)
            self.assertEqual(params["hub.ssl.certificate"], "REQUIRED")

            alice = self.start_command("alice")
            await alice.wait_for_line(r"Registered with the SAMP hub at https://\S+ as \S+", timeout=30)
            out, err = await self.run_command("bob-send")
            self.assertRegex(out, r"^c\d+ \(alice\): samp\.ok \{\}\n$")
            await alice.wait_for_line(
                r"Received call table\.load\.votable from c\d+: \{'url': 'http://example\.org/t\.xml'\}"
            )
            out, err = await self.run_command("bob-ping")
            self.assertRegex(out, r"^hub at https://127\.0\.0\.1:\d+/xmlrpc: alive")
            out, err = await self.run_command("refused", expect_code=1)
            self.assertRegex(err, r"^sampy-twisted ping: samp\.hub\.ping at https://\S+ failed: TLS handshake failed")
            self.assertEqual(err.count("\n"), 1, err)

            result = await alice.stop()
            self.assertIn("Unregistered from the SAMP hub", result.output)
            result = await hub.stop()
            self.assertEqual(result.exit_code, 0, result.output)
            self.assertFalse(os.path.exists(self.lockfile))

    async def test_python_example(self):
        """docs/examples/tls_api.py, run where the certificates are."""
        out, err = await self.run_to_end([sys.executable, os.path.join(EXAMPLES, "tls_api.py")])
        self.assertEqual(out, "bob loaded http://example.org/t.xml: samp.ok\n", err)
        self.assertFalse(os.path.exists(self.lockfile))
