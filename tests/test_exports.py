# -*- test-case-name: tests.test_exports -*-
"""
The public names of sampy_twisted are exactly those we mean to offer.
"""

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import sampy_twisted
import sampy_twisted.testing

PUBLIC = {
    "ClientTracker",
    "SAMPCallTimeout",
    "SAMPClient",
    "SAMPClientService",
    "SAMPClientError",
    "SAMPHubError",
    "SAMPHubProxy",
    "SAMPHubServer",
    "SAMPIntegratedClient",
    "SAMPProxyError",
    "SAMPWarning",
    "SAMP_STATUS_ERROR",
    "SAMP_STATUS_OK",
    "SAMP_STATUS_WARNING",
    "TLSOptions",
    "TrackedClient",
    "WEB_SAFE_MTYPES",
    "WebConsentRequest",
    "check_samp_value",
    "decode_boolean",
    "decode_float",
    "decode_int",
    "default_lockfile_path",
    "encode_boolean",
    "encode_float",
    "encode_int",
    "error_response",
    "get_hub_params",
    "get_running_hubs",
    "lockfile_location",
    "make_message",
    "parse_lockfile",
    "read_lockfile",
    "start_hub",
}

TESTING_PUBLIC = {
    "CertificateAuthority",
    "HubProcess",
    "JSampNotFound",
    "MemoryNetwork",
    "ProcessFailed",
    "ProcessResult",
    "ProcessTimedOut",
    "ToolProcess",
    "hub_for_test",
    "run_jsamp_tool",
    "spawn_jsamp_tool",
    "start_astropy_hub",
    "start_jsamp_hub",
    "start_memory_hub",
}


class ExportTests(SynchronousTestCase):
    """
    L{sampy_twisted.__all__} is pinned, and every name in it exists and is
    documented.
    """

    def test_all_pinned(self):
        self.assertEqual(set(sampy_twisted.__all__), PUBLIC)

    def test_testing_all_pinned(self):
        """L{sampy_twisted.testing.__all__} is pinned too, without duplicates."""
        self.assertEqual(set(sampy_twisted.testing.__all__), TESTING_PUBLIC)
        self.assertEqual(len(sampy_twisted.testing.__all__), len(TESTING_PUBLIC))

    def test_names_exist_and_documented(self):
        for module in (sampy_twisted, sampy_twisted.testing):
            for name in module.__all__:
                value = getattr(module, name)
                if callable(value):
                    self.assertTrue(value.__doc__, f"{module.__name__}.{name} has no docstring")

    def test_private_modules_stay_private(self):
        """Only the curated names and the public submodule are public."""
        public = {n for n in dir(sampy_twisted) if not n.startswith("_")}
        self.assertEqual(public - PUBLIC, {"testing"} & public)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What `import sampy_twisted` and the client must not load unless used.
TLS_MODULES = (
    "OpenSSL",
    "cryptography",
    "service_identity",
    "twisted.internet.ssl",
    "twisted.internet._sslverify",
    "sampy_twisted._tls",
    "sampy_twisted._pki",
)
HUB_MODULES = (
    "sampy_twisted._hub",
    "sampy_twisted._hubcore",
    "sampy_twisted._delivery",
    "sampy_twisted._stdprofile",
    "sampy_twisted._pulldelivery",
    "sampy_twisted._lockfile",
    "sampy_twisted._callback_policy",
    "sampy_twisted._webprofile",
    "sampy_twisted._webconsent",
    "sampy_twisted._monitor",
    "sampy_twisted._monitor_page",
    "sampy_twisted._monitor_web",
)
CLI_MODULES = ("sampy_twisted._cli",)

_LOADED = """
import sys
{statement}
print(" ".join(sorted(sys.modules)))
"""


class StartUpTests(SynchronousTestCase):
    """
    C{import sampy_twisted} loads next to nothing: each name is imported from
    its module when first asked for, so TLS, the hub and the CLI are loaded
    only when used.
    """

    def loaded_by(self, statement):
        """The modules a new interpreter has loaded after *statement*."""
        env = dict(os.environ, PYTHONPATH=ROOT)
        done = subprocess.run(
            [sys.executable, "-c", _LOADED.format(statement=statement)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return set(done.stdout.split())

    def assertNotLoaded(self, loaded, modules):
        """None of *modules* (nor any of their submodules) is in *loaded*."""
        found = sorted(m for m in loaded if any(m == name or m.startswith(name + ".") for name in modules))
        self.assertEqual(found, [])

    def test_import_loads_no_tls_hub_cli_or_reactor(self):
        """The bare import loads neither TLS, the hub, the CLI, Twisted's
        reactor, nor even the client."""
        loaded = self.loaded_by("import sampy_twisted")
        self.assertNotLoaded(loaded, TLS_MODULES + HUB_MODULES + CLI_MODULES)
        self.assertNotLoaded(loaded, ("twisted.internet.reactor", "sampy_twisted._client"))

    def test_client_loads_no_hub_cli_or_our_tls(self):
        """The client API loads neither the hub, the CLI, our TLS modules,
        nor Twisted's application framework.  (Twisted's HTTP client, which
        it is built on, imports pyOpenSSL itself.)"""
        loaded = self.loaded_by(
            "from sampy_twisted import SAMPClient, SAMPHubProxy, SAMPIntegratedClient, ClientTracker, "
            "get_hub_params, read_lockfile"
        )
        self.assertIn("sampy_twisted._client", loaded)
        self.assertNotLoaded(loaded, HUB_MODULES + CLI_MODULES)
        self.assertNotLoaded(loaded, ("sampy_twisted._tls", "sampy_twisted._pki", "twisted.application"))

    def test_cli_loads_no_hub_or_our_tls(self):
        """The command line loads the hub (for ``hub`` and ``monitor``) and
        our TLS modules (for TLS options) only when a command needs them."""
        loaded = self.loaded_by("import sampy_twisted._cli")
        self.assertNotLoaded(loaded, HUB_MODULES + ("sampy_twisted._tls", "sampy_twisted._pki"))

    def test_hub_imported_when_asked_for(self):
        from sampy_twisted._hub import SAMPHubServer, start_hub

        self.assertIs(sampy_twisted.SAMPHubServer, SAMPHubServer)
        self.assertIs(sampy_twisted.start_hub, start_hub)
        self.assertIn("SAMPHubServer", dir(sampy_twisted))
        with self.assertRaises(AttributeError):
            sampy_twisted.no_such_name

    def test_every_name_from_its_module(self):
        """Each public name is the object of the module that defines it;
        the lazy table names every public name."""
        from sampy_twisted._client import SAMPClient
        from sampy_twisted._errors import SAMP_STATUS_OK
        from sampy_twisted._tls import TLSOptions

        self.assertIs(sampy_twisted.SAMPClient, SAMPClient)
        self.assertIs(sampy_twisted.TLSOptions, TLSOptions)
        self.assertEqual(sampy_twisted.SAMP_STATUS_OK, SAMP_STATUS_OK)
        self.assertEqual(set(sampy_twisted._LAZY), PUBLIC)
