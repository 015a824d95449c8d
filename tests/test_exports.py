# -*- test-case-name: tests.test_exports -*-
"""
The public names of sampy_twisted are exactly those we mean to offer.
"""

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
