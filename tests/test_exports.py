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

_LOADED = """
import sys
import sampy_twisted
print(" ".join(sorted(sys.modules)))
"""


class StartUpTests(SynchronousTestCase):
    """
    C{import sampy_twisted} loads what a client needs and no more: the hub
    and the CLI are imported when used.
    """

    def loaded_by_import(self):
        env = dict(os.environ, PYTHONPATH=ROOT)
        done = subprocess.run(
            [sys.executable, "-c", _LOADED], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return set(done.stdout.split())

    def test_hub_and_cli_not_imported(self):
        loaded = self.loaded_by_import()
        self.assertIn("sampy_twisted._client", loaded)
        for module in ("sampy_twisted._hub", "sampy_twisted._hubcore", "sampy_twisted._cli"):
            self.assertNotIn(module, loaded)

    def test_hub_imported_when_asked_for(self):
        from sampy_twisted._hub import SAMPHubServer, start_hub

        self.assertIs(sampy_twisted.SAMPHubServer, SAMPHubServer)
        self.assertIs(sampy_twisted.start_hub, start_hub)
        self.assertIn("SAMPHubServer", dir(sampy_twisted))
        with self.assertRaises(AttributeError):
            sampy_twisted.no_such_name
