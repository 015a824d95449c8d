# -*- test-case-name: tests.test_hardening -*-
"""
The limits every XML-RPC server of ours (the hub's, and each client's
callback server) applies to what peers send, in one place, and the quiet,
rate-limited log line a refused request earns.
"""

from __future__ import annotations

import resource
from typing import TYPE_CHECKING

from ._encoding import string_chunks
from ._verbatim import VerbatimStrings

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime
    from twisted.logger import Logger

MAX_NESTING = 64
"""
Deepest nesting of lists and maps accepted in an XML-RPC document.  SAMP
messages rarely nest more than four deep; the bound stops hostile documents
at their first few kilobytes, and keeps every value accepted well within
what the encoder (which recurses) can send back.
"""

MAX_ELEMENT_DEPTH = 3 * MAX_NESTING + 5
"""
The element depth :data:`MAX_NESTING` needs: a call's outermost value sits
four elements deep (``methodCall``, ``params``, ``param``, ``value``), each
list or map adds three (``array``, ``data``, ``value``, or ``struct``,
``member``, ``value``), and the innermost value holds a type element.
"""

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Largest XML-RPC body, request or response, accepted by default: room
for a ``table.select.rowList`` of about 1.7 million rows."""

DEFAULT_HUB_TIMEOUT = 30.0
"""Seconds a client's call to its hub may take, by default."""

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds connecting to an XML-RPC server may take, by default."""

DEFAULT_MAX_CONNECTIONS = 1000
"""
Most connections open at once on one server, lowered to half the process's
descriptor limit where that is smaller (see :func:`connection_cap`).
"""

DEFAULT_REQUEST_TIMEOUT = 10.0
"""Seconds a connection has to send a complete request (head and body),
counted from its opening or from the first byte of the request."""

DEFAULT_IDLE_TIMEOUT = 75.0
"""
Seconds a connection may stay open and silent between requests: longer than
the 30 seconds our XML-RPC clients keep an idle connection, so that the
client always closes first and never sends a request down a connection the
server is closing.
"""

DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
"""
Bytes of messages a hub holds for one client (queued for delivery or in
flight to it), counted as :func:`message_size` estimates their encoding.
"""

DEFAULT_LOG_RATE = 10
"""Most log lines per second, per server, about refused requests."""


def raise_fd_limit() -> int:
    """
    Raise the soft limit on open descriptors to the hard limit, where the
    system allows: the default soft limit (often 1024) would otherwise let a
    thousand idle connections keep every other peer out.

    :return: the soft limit in force afterwards.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft


def connection_cap(wanted: int | None = None) -> int:
    """
    The cap on connections for one server.

    :param wanted: the cap asked for, or ``None`` for
        :data:`DEFAULT_MAX_CONNECTIONS` bounded by half the soft descriptor
        limit (the rest is for outgoing connections, files and other servers).
    :return: the cap, at least 8.
    """
    if wanted is not None:
        return max(1, wanted)
    # Read at each call, so that tests can lower it.
    cap = DEFAULT_MAX_CONNECTIONS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return cap
    return max(min(8, cap), min(cap, soft // 2))


# Module level, not a class attribute: a Logger read from an instance names
# the instance as the event's source, and the class as its namespace.  Made
# on first use: the limits are also read where Twisted is not loaded (the
# reactor-free one-shot commands import the codec, which reads them).
_log: Logger | None = None


def _refused_log() -> Logger:
    global _log
    if _log is None:
        from twisted.logger import Logger

        _log = Logger(namespace="sampy_twisted.refused")
    return _log


class RejectionLog:
    """
    At most *rate* log lines a second about refused requests; the lines left
    out are counted and the count told with the next line written.

    Each line carries only short strings (the peer's address and a reason),
    never the request or a traceback: a program that never begins logging
    keeps Twisted's first log events in memory.

    :param reactor: the clock (``IReactorTime``).
    :param int rate: lines a second at most.
    """

    def __init__(self, reactor: IReactorTime, rate: int = DEFAULT_LOG_RATE) -> None:
        self._reactor = reactor
        self._rate = rate
        self._second = -1
        self._written = 0
        self.suppressed = 0
        """Lines left out since the last one written."""

    def refused(self, peer: str, reason: str) -> None:
        """
        Log (or count) one refused request.

        :param peer: the peer's address, as text.
        :param reason: why it was refused (cut to 200 characters).
        """
        second = int(self._reactor.seconds())
        if second != self._second:
            self._second = second
            self._written = 0
        if self._written >= self._rate:
            self.suppressed += 1
            return
        self._written += 1
        suppressed, self.suppressed = self.suppressed, 0
        _refused_log().info(
            "refused a request from {peer}: {reason}{more}",
            peer=peer[:100],
            reason=reason[:200],
            more=f" ({suppressed} more refused, not logged)" if suppressed else "",
        )


# Bytes of XML-RPC markup around each value, roughly: "<value><string>" and
# its closing tags, "<member><name>...</name>" for a map's entries.
_VALUE_MARKUP = 32
_MEMBER_MARKUP = 28


def message_size(value: object) -> int:
    """
    About how many bytes *value*, SAMP data, takes encoded as XML-RPC: its
    strings' lengths plus the markup around each value, found in one walk
    without recursion (the data is already bounded in depth and size).

    :return: the estimate, at least the characters of every string in it.
    """
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        size += _VALUE_MARKUP
        if isinstance(item, str):
            size += len(item)
        elif isinstance(item, dict):
            for key, member in item.items():
                size += _MEMBER_MARKUP + len(key)
                stack.append(member)
        elif isinstance(item, VerbatimStrings):
            size += len(item) * _VALUE_MARKUP + item.chars
        elif isinstance(item, (list, tuple)):
            try:  # a row list: counted in C
                size += len(item) * _VALUE_MARKUP + sum(len(joined) for _, joined in string_chunks(item))
            except TypeError:
                stack.extend(item)
        else:
            size += len(str(item))
    return size
