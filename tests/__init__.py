"""
Tests for sampy_twisted.  Run them from the project root with
``python -m twisted.trial tests``.
"""

import atexit
import os
import shutil
import tempfile

# Nothing under test may find, read or overwrite the real ~/.samp of whoever
# runs the tests (a hub they use could be hijacked or its lockfile deleted):
# home is a fresh empty directory, and SAMP_HUB names a lockfile in it that
# does not exist, so "no hub is running" unless a test starts one.
_HOME = tempfile.mkdtemp(prefix="sampy-twisted-tests-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["HOME"] = _HOME
os.environ["SAMP_HUB"] = "std-lockurl:file://" + os.path.join(_HOME, "no-hub", ".samp")
