"""
Tests for sampy_twisted.  Run them from the project root with
``python -m twisted.trial tests``.
"""

import atexit
import os
import shutil
import sys
import tempfile

# Nothing under test may find, read or overwrite the real ~/.samp of whoever
# runs the tests (a hub they use could be hijacked or its lockfile deleted):
# home is a fresh empty directory, and SAMP_HUB names a lockfile in it that
# does not exist, so "no hub is running" unless a test starts one.
_HOME = tempfile.mkdtemp(prefix="sampy-twisted-tests-home-")
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
os.environ["HOME"] = _HOME
os.environ["SAMP_HUB"] = "std-lockurl:file://" + os.path.join(_HOME, "no-hub", ".samp")


def _missing_dependencies():
    """What the suite needs that is not installed, with how to install it."""
    from importlib.util import find_spec

    from sampy_twisted._jsamp import JSampNotFound, find_jsamp

    missing = []
    packages = [module for module in ("astropy", "sphinx", "cryptography") if find_spec(module) is None]
    if packages:
        missing.append(f"{' and '.join(packages)}: pip install '.[test]'")
    try:
        find_jsamp()
    except JSampNotFound as exc:
        missing.append(f"JSAMP: {str(exc).removeprefix('cannot run JSAMP: ')}")
    programs = [package for package, path in _PROGRAMS if not os.path.exists(path)]
    if programs:
        missing.append(f"{', '.join(programs)}: apt-get install {' '.join(programs)}")
    return missing


# The desktop applications and the browser that the interoperability tests
# drive (Debian packages, and a file each installs).
_PROGRAMS = (
    ("xvfb", "/usr/bin/Xvfb"),
    ("saods9", "/usr/bin/ds9"),
    ("topcat", "/usr/share/java/starlink-topcat.jar"),
    ("aladin", "/usr/share/java/aladin.jar"),
    ("chromium", "/usr/bin/chromium"),
)


def _check_dependencies():
    # Without this, a missing package shows up as dozens of tracebacks deep in
    # the run; trial reports an error raised here as one short failure, and
    # the line printed first says what to install.
    missing = _missing_dependencies()
    if missing:
        message = "the tests need " + "; and ".join(missing)
        print(f"tests: {message}", file=sys.stderr, flush=True)
        raise ImportError(message)


_check_dependencies()
