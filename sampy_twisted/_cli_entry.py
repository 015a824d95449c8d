"""
The ``sampy-twisted`` console script: ``ping`` and ``send --notify`` run
without Twisted (:mod:`._oneshot`) when the command line is one that module
serves; every other command line goes to the full command,
:func:`sampy_twisted._cli.main`, unchanged.  This module imports only the
standard library until it knows which.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    Run the ``sampy-twisted`` command line *argv*.

    :param argv: the arguments, without the program name (``sys.argv[1:]``
        by default).
    :raises SystemExit: always, with the exit status (see
        :func:`sampy_twisted._cli.main`).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["ping"], ["send"]):
        from . import _oneshot

        command = _oneshot.parse(argv)
        if command is not None:
            try:
                status = _oneshot.run(command, os.environ)
            except _oneshot.NotServed:
                pass
            else:
                raise SystemExit(status)
    from ._cli import main as full_main

    full_main(argv)


if __name__ == "__main__":
    main()
