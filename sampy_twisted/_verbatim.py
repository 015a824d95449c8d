# -*- test-case-name: tests.test_verbatim -*-
"""
Long lists of plain strings that the hub passes on as it received them.

A ``table.select.rowList`` of a million rows is a million string values in
one XML-RPC array.  The hub needs to know only that they are legal SAMP
strings, and to send the same array on; making a million Python strings
from it, and writing them again, would cost it several times more than
checking them.  So when the array's items are written as the hub's own
writer (and :mod:`xmlrpc.client`) writes them, with plain texts, the hub
keeps their bytes: a :class:`VerbatimStrings`, which its writer sends as
they came (byte for byte what it would write from the strings, unless a
text holds a ``>``, which it would write ``&gt;``).  The strings are made
only if something reads them (the monitor, a test).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

__all__ = ["VERBATIM_FROM", "VerbatimStrings", "find_verbatim", "read_plain_strings"]

#: Lists whose items' XML is this long (about 2 000 rows) or longer are
#: kept verbatim; shorter ones are cheap to read.
VERBATIM_FROM = 64 * 1024

_OPEN = b"<value><string>"
_CLOSE = b"</string></value>\n"
_BETWEEN = _CLOSE + _OPEN
_BETWEEN_TEXT = _BETWEEN.decode("ascii")
_MARKUP = len(_OPEN) + len(_CLOSE)
# Bytes an item's text may hold: tab, LF and printable ASCII but "&" (the
# start of a reference) and "]" (of a CDATA end); "<" is in the markup too,
# so it is counted instead.  What is left after deleting these from a piece
# of the list is what breaks the rules.
_TEXT_BYTES = bytes([0x09, 0x0A, *range(0x20, 0x26), *range(0x27, 0x5D), *range(0x5E, 0x80)])
# The bytes of the tags between two texts but the line feed.
_TAG_BYTES = bytes(sorted(set(_BETWEEN) - {0x0A}))
_PIECE = 1 << 20


def find_verbatim(data: bytes | bytearray, start: int, end: int) -> VerbatimStrings | None:
    """
    The string values from *start* to *end* in *data* as a
    :class:`VerbatimStrings`, if they are written as the writer writes them
    (``<value><string>TEXT</string></value>`` and a line feed, one after
    the other) and every text is plain: tab, LF and printable ASCII but
    ``&``, ``<`` and ``]``.  Else ``None``, for the values to be read one by
    one.
    """
    counted = _walk(data, start, end, None)
    return None if counted is None else VerbatimStrings(data, start, end, counted)


def read_plain_strings(data: bytes | bytearray, start: int, end: int) -> list[str] | None:
    """
    The texts of the string values from *start* to *end* in *data*, if
    :func:`find_verbatim` would keep them; else ``None``.  Checked and
    split in one pass, several times faster than a regular expression.
    """
    items: list[str] = []
    return None if _walk(data, start, end, items) is None else items


def _walk(data: bytes | bytearray, start: int, end: int, items: list[str] | None) -> int | None:
    """
    Check the values from *start* to *end* in *data* for
    :func:`find_verbatim`, and count them (and with *items*, a list, add
    their texts to it); ``None`` if they do not pass.

    The shape is checked by counting, a megabyte at a time while it is in
    the processor's cache: between the first value's opening tags and the
    last one's closing tags there are texts with, between each two, the
    closing tags, a line feed and the opening tags, and no ``<`` but
    theirs; so every tag is where the writer puts one.
    """
    if not (data.startswith(_OPEN, start, end) and data.endswith(_CLOSE, start, end)):
        return None
    at, last = start + len(_OPEN), end - len(_CLOSE)
    count = 0
    while True:
        # Cut before the tags between two texts, so that none is split.
        cut = data.find(_BETWEEN, min(at + _PIECE, last), last)
        cut = last if cut < 0 else cut
        piece = data[at:cut]
        gaps = piece.count(_BETWEEN)
        texts = _texts(piece, gaps)
        if texts is None:
            return None
        if items is not None:
            items += texts[0].decode("ascii").split(texts[1])
        count += gaps + 1
        if cut == last:
            return count
        at = cut + len(_BETWEEN)


def _texts(piece: bytes | bytearray, gaps: int) -> tuple[bytes | bytearray, str] | None:
    """
    The texts of *piece*, which holds the tags between two texts *gaps*
    times, as bytes and what separates them there; ``None`` if a text
    breaks the rules or the tags are not all where the writer puts them.
    """
    # Most long lists are row indexes, whose texts hold none of the tags'
    # bytes: deleting those leaves the texts with a line feed between each
    # two, several times shorter and quicker to split.
    short = piece.translate(None, _TAG_BYTES)
    if len(short) == len(piece) - gaps * (len(_BETWEEN) - 1) and short.count(b"\n") == gaps:
        # Only the tags' bytes went, so every "<" was in the tags.
        return None if short.translate(None, _TEXT_BYTES) else (short, "\n")
    if piece.translate(None, _TEXT_BYTES):
        return None  # a byte no plain text holds
    if piece.count(b"<") != 4 * gaps:  # four between each two texts
        return None
    return piece, _BETWEEN_TEXT


class VerbatimStrings(Sequence[str]):
    """
    A checked list of plain strings, kept as the XML it came in.

    It reads as a sequence of ``str``; the strings are made on the first
    read of all of them, and the first few can be read without that.

    :ivar int chars: how many characters its strings hold together.
    """

    __slots__ = ("_data", "_start", "_end", "_count", "_items", "chars")

    def __init__(self, data: bytes | bytearray, start: int, end: int, count: int) -> None:
        self._data = data
        self._start = start
        self._end = end
        self._count = count
        self._items: list[str] | None = None
        self.chars = end - start - count * _MARKUP

    def xml(self) -> memoryview:
        """The items' XML, as received: what the writer writes for them."""
        return memoryview(self._data)[self._start : self._end]

    def strings(self) -> list[str]:
        """The items, made once."""
        if self._items is None:
            self._items = self._read(self._start, self._end)
        return self._items

    def any_starts_with(self, prefixes: tuple[str, ...]) -> bool:
        """Whether any of the strings starts with one of *prefixes* (ASCII),
        found without making them."""
        return any(self._data.find(_OPEN + prefix.encode("ascii"), self._start, self._end) >= 0 for prefix in prefixes)

    def head(self, count: int) -> list[str]:
        """The first *count* items (all of them, if fewer), reading no more."""
        if self._items is not None or count >= self._count:
            return self.strings()[:count]
        if count <= 0:
            return []
        end = self._start
        for _ in range(count):
            end = self._data.index(_BETWEEN, end) + len(_BETWEEN)
        # The first *count* values: up to the closing tags of the last.
        return self._read(self._start, end - len(_OPEN))

    def tail(self, count: int) -> list[str]:
        """The last *count* items (all of them, if fewer), reading no more."""
        if self._items is not None or count >= self._count:
            return self.strings()[max(len(self) - count, 0) :]
        if count <= 0:
            return []
        start = self._end
        for _ in range(count):
            start = self._data.rindex(_BETWEEN, self._start, start)
        # The last *count* values: from the opening tags of the first.
        return self._read(start + len(_CLOSE), self._end)

    def _read(self, start: int, end: int) -> list[str]:
        items = read_plain_strings(self._data, start, end)
        assert items is not None  # checked as it was found
        return items

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice) and index.start is None and index.step is None and index.stop is not None \
                and index.stop >= 0:
            return self.head(index.stop)
        return self.strings()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.strings())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VerbatimStrings):
            other = other.strings()
        return isinstance(other, (list, tuple)) and self.strings() == list(other)

    __hash__ = None  # type: ignore[assignment]  # a list, as far as equality goes

    def __repr__(self) -> str:
        return f"<VerbatimStrings: {self._count} strings, {self.chars} characters>"
