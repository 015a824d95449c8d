# -*- test-case-name: tests.test_listening -*-
"""
The one place where ``reactor=None`` becomes the global reactor.

Every object that needs a reactor takes it as an argument; ``None`` (the
default, for convenience at the edge) means Twisted's global reactor, which
is imported only then, so that importing sampy_twisted never installs one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["default_reactor"]


def default_reactor(reactor: Any = None) -> Any:
    """
    *reactor*, or the global reactor when it is ``None``.

    :param reactor: a reactor, or ``None``.
    :return: the reactor to use.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        return global_reactor
    return reactor
