# -*- test-case-name: tests.test_bodies -*-
"""
Where a server keeps the big request bodies it reads: in one buffer it
uses again.

A body of 32 MB or more (a ``table.select.rowList`` of a million rows is
37 MB) cannot be made of memory the process already has: glibc's
``malloc`` gives every block that big fresh pages from the kernel, and
each 4 kB page costs a fault the first time it is written.  Reading
37 MB into such a block took 19 ms on the development machine (more when
its host is busy), against 2.4 ms into memory written before; the 4 MB
of a body ten times smaller came from memory the allocator had kept, at
no such cost.  That was a step in the time a message takes, at the size
where the allocator changes its ways.

So a site reads bodies from :attr:`BodyBuffers.big_from` bytes on
(known from their ``Content-Length``) into a buffer it keeps, and the
next big body goes into the same memory.  The body is that
``bytearray``; whatever is made from it holds it (a hub's
:class:`~._verbatim.VerbatimStrings` does, until the message is passed
on), and a buffer still held anywhere is never written again: the next
body gets a new one, which the site keeps instead.  The site lets go of
its buffer when no big body has come for :attr:`BodyBuffers.idle`
seconds, and when it stops.
"""

from __future__ import annotations

import io
import sys

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["BigBody", "BodyBuffers"]


def _references_of(buffers: BodyBuffers) -> int:
    """How many references the spare buffer of *buffers* has, counted
    here: compared only with what this same function counted of a buffer
    nothing else held (:meth:`BodyBuffers._calibrated`)."""
    return sys.getrefcount(buffers._spare)


def _new_buffer() -> bytearray:
    """A new, empty buffer (made here, where tests count them)."""
    return bytearray()


class BodyBuffers:
    """
    The buffer a site reads its big request bodies into (see the module's
    text), and the timer that lets go of it.

    :param reactor: what the idle timer runs on.
    """

    big_from = 8 * 1024 * 1024
    """Bodies this long or longer go into the kept buffer."""

    idle = 60.0
    """Seconds without a big body after which the buffer is let go."""

    def __init__(self, reactor: IReactorTime) -> None:
        self._reactor = reactor
        self._spare: bytearray | None = None
        self._release: IDelayedCall | None = None
        self._used_at = 0.0
        self._unshared = self._calibrated()

    def _calibrated(self) -> int | None:
        """The count of :func:`_references_of` for a buffer held by
        nothing else; ``None`` where the interpreter does not count
        references, and the buffer is never used again."""
        if not hasattr(sys, "getrefcount"):
            return None
        self._spare = bytearray()
        try:
            return _references_of(self)
        finally:
            self._spare = None

    def body(self, length: int) -> io.BytesIO | BigBody:
        """A file for Twisted to write a body of *length* bytes into."""
        if length < self.big_from:
            return io.BytesIO()
        if self._unshared is None:
            return BigBody(_new_buffer())  # never used again: nothing kept
        # (No name bound to the buffer here: it would count as a holder.)
        if self._spare is None or len(self._spare) // 2 > length or _references_of(self) != self._unshared:
            # None yet, much bigger than needed (the allocator would give
            # most of it back), or still held: a new one.
            self._spare = _new_buffer()
        self._used_at = self._reactor.seconds()
        if self._release is None:
            self._release = self._reactor.callLater(self.idle, self._idle)
        return BigBody(self._spare)

    def _idle(self) -> None:
        left = self._used_at + self.idle - self._reactor.seconds()
        if left > 0:
            self._release = self._reactor.callLater(left, self._idle)
            return
        self._release = None
        self._spare = None

    def stop(self) -> None:
        """Let go of the buffer now, and stop the timer."""
        if self._release is not None:
            self._release.cancel()
            self._release = None
        self._spare = None


class BigBody:
    """
    A body written into a kept buffer: the file-like object Twisted's
    request writes into (``write``, ``tell``, ``seek``, ``read``,
    ``close``), and :meth:`getvalue` for the body itself.
    """

    def __init__(self, buffer: bytearray) -> None:
        self._buffer = buffer
        self._length = 0
        self._at = 0

    def write(self, data: bytes) -> None:
        """Add *data* at the end (Twisted only appends)."""
        # Over what the buffer held before, then on past it.
        end = self._length + len(data)
        self._buffer[self._length : min(end, len(self._buffer))] = data
        self._length = self._at = end

    def tell(self) -> int:
        """Where the next read starts: after writes, the length so far."""
        return self._at

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move where the next read starts, as a file's ``seek``."""
        if whence not in (0, 1, 2):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        base = (0, self._at, self._length)[whence]
        self._at = max(0, base + offset)
        return self._at

    def read(self, size: int = -1) -> bytes:
        """Up to *size* bytes (all, if negative) from where reading is."""
        end = self._length if size < 0 else min(self._length, self._at + size)
        data = bytes(self._buffer[self._at : end]) if end > self._at else b""
        self._at = max(self._at, end)
        return data

    def close(self) -> None:
        """Nothing to do: the buffer is the site's."""

    def getvalue(self) -> bytearray:
        """The body: the buffer, cut to its length (not a copy)."""
        if len(self._buffer) > self._length:
            del self._buffer[self._length :]
        return self._buffer

