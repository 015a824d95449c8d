# -*- test-case-name: tests.test_codec -*-
"""
XML-RPC documents: reading them safely and quickly, and writing them.

Reading (:func:`safe_loads`) tries three parsers in turn, each giving up on
what it does not know for the next, so that all three give the same values
and the same errors:

1. a scanner built on regular expressions (:func:`_scan_loads`) for the
   plain documents SAMP peers send; a run of string values in an array (a
   ``table.select.rowList`` of a million rows, say) is read by one call
   into the regular-expression engine instead of an element per value;
2. ElementTree's C parser and tree builder (:func:`_tree_loads`), for
   documents with character references, comments, CDATA and the like
   (and first, as the faster, for documents under 32 kB);
3. the standard library's unmarshaller on expat (:func:`_strict_loads`),
   which decides every remaining case and words the errors.

All three refuse DTDs and entities, and values nested deeper than
:data:`~sampy_twisted._limits.MAX_NESTING`, as soon as they meet them.

Writing (:func:`encode_call`, :func:`dumps_response`, :func:`dumps_fault`)
gives byte for byte what :func:`xmlrpc.client.dumps` gives, several times
faster on lists of strings, and the encoding of a :class:`CachedMap` (a
message the hub passes on to many recipients) is made once and its bytes
sent to each.
"""

from __future__ import annotations

import functools
import re
import xmlrpc.client
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, NoReturn, TypeAlias, cast
from xml.etree import ElementTree

from ._encoding import string_chunks
from ._limits import MAX_ELEMENT_DEPTH, MAX_NESTING
from ._verbatim import VERBATIM_FROM, VerbatimStrings, find_verbatim, read_plain_strings

__all__ = [
    "LAZY_FROM",
    "CachedMap",
    "LazyStrings",
    "Part",
    "dumps_call",
    "dumps_fault",
    "dumps_response",
    "encode_call",
    "safe_loads",
]


class _DTDRefused(ValueError):
    pass


class _TooDeep(ValueError):
    pass


class _Unusual(Exception):
    """Something only a later parser should judge."""


def _refuse_dtd(*args: object) -> NoReturn:
    raise _DTDRefused("XML-RPC payloads may not contain a DTD or entities")


def _too_deep() -> _TooDeep:
    return _TooDeep(f"XML-RPC values may not nest more than {MAX_NESTING} deep")


# Documents whose bytes show every "<!DOCTYPE" they hold: no NUL (UTF-16 and
# UTF-32 have them), and no declared encoding but these.
_PLAIN_ENCODINGS = {b"utf-8", b"utf8", b"us-ascii", b"ascii", b"iso-8859-1", b"latin-1", b"latin1"}
_DECLARED_ENCODING = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)")
_CHUNK = 16 * 1024
_SCAN_FROM = 32 * 1024  # bytes
_Parse = Callable[["bytes | bytearray"], "tuple[tuple[Any, ...], str | None]"]


def safe_loads(data: bytes | bytearray, verbatim: bool = False) -> tuple[tuple[Any, ...], str | None]:
    """
    Parse an XML-RPC request or response, refusing DTDs, entities and
    values nested deeper than :data:`~sampy_twisted._limits.MAX_NESTING`
    (as soon as the parser meets them, without recursion).

    :param bytes data: the XML document.
    :param bool verbatim: give long lists of plain strings as
        :class:`~._verbatim.VerbatimStrings` (for the hub, which passes them
        on) where they allow it.
    :return: ``(params, methodname)`` as :func:`xmlrpc.client.loads`.
    :raises xmlrpc.client.Fault: the document is a fault response.
    :raises ValueError: the document has a DTD, nests too deep or is not
        XML-RPC.
    """
    if _declares_plain_encoding(data):
        for fast in _fast_parsers(data, functools.partial(_scan_loads, verbatim=verbatim)):
            try:
                return fast(data)
            except (xmlrpc.client.Fault, _TooDeep):
                raise
            except Exception:
                pass  # unusual or broken: the next parser decides
    return _strict_loads(data)


def _fast_parsers(data: bytes | bytearray, scan: _Parse) -> Iterator[_Parse]:
    """
    The parsers to try on *data* before the strict one, in turn: the
    scanner is the faster for the long lists of strings big documents hold,
    ElementTree for small ones.  The scanner stops at a DTD; ElementTree
    would read one, so it is not tried on a document that may hold one
    (looked for only when the scanner has given up on a big document).
    """
    big = len(data) >= _SCAN_FROM
    if big:
        yield scan
    if b"<!DOCTYPE" not in data and b"\x00" not in data:
        yield _tree_loads
    if not big:
        yield scan


def _declares_plain_encoding(data: bytes | bytearray) -> bool:
    """Whether *data* is UTF-8 or a subset of it, as far as it says."""
    declared = _DECLARED_ENCODING.match(data)
    return declared is None or declared.group(1).lower() in _PLAIN_ENCODINGS


# -- 1. the scanner ----------------------------------------------------------

# The scanner reads the document's bytes and decodes only texts: one at a
# time, and a list of strings a megabyte at a time, so that a big document
# is never held a second time as one string.
_SPACE = re.compile(rb"[ \t\n]*")
_TAG = re.compile(rb"<(/?)([A-Za-z_][A-Za-z0-9_.-]*)[ \t\n]*(/?)>")
_DECLARATION = re.compile(
    rb"<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(['\"])1\.0\1"
    rb"(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(['\"])[A-Za-z][A-Za-z0-9._-]*\2)?"
    rb"(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(['\"])(?:yes|no)\3)?[ \t\n]*\?>"
)
# What the scanner leaves to ElementTree in text: characters XML forbids
# (U+FFFE and U+FFFF are EF BF BE and EF BF BF in UTF-8), CR (which XML
# turns into LF) and CDATA ends; character references are left to it by
# _unescape.
_NOT_PLAIN_TEXT = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\r]|]]>|\xef\xbf[\xbe\xbf]")
_ENTITY = re.compile(r"&(?!(?:amp|lt|gt|quot|apos);)")
# String values as xmlrpc.client writes them, and without a type element,
# whose text needs no unescaping nor any other look (no "&", no "]", nothing
# _NOT_PLAIN_TEXT finds): the lists of them are read in bulk.
_PLAIN = "[^<&\\]\x00-\x08\x0b\x0c\x0e-\x1f\r\ufffe\uffff]*"
_STRING_VALUE = re.compile(f"<value><string>({_PLAIN})</string></value>")
_BARE_VALUE = re.compile(f"<value>({_PLAIN})</value>")
_BULK_PIECE = 1 << 20


class _BulkForm(NamedTuple):
    """A form of string value read in bulk."""

    pattern: re.Pattern[str]
    tags: int  # how many "<" each value has
    markup: int  # its characters besides the text
    depth: int  # how deep its innermost element sits below the list's <data>


_BULK_FORMS = (
    _BulkForm(_STRING_VALUE, 4, len("<value><string></string></value>"), 2),
    _BulkForm(_BARE_VALUE, 2, len("<value></value>"), 1),
)


def _plain_values(form: _BulkForm, data: bytes | bytearray, start: int, end: int) -> list[Any]:
    """
    The texts of the values of *form* from *start* to *end* in *data*, if
    that is nothing but such values and white space; else nothing.

    Read a megabyte at a time (cut after a ``</value>``, where every match
    ends): each piece decoded, read by one ``findall`` and checked by
    counting while it is in the processor's cache: every ``<`` in the
    piece is in a match, and what lies between the matches is white space.
    A thread parsing a long list lets go of the GIL between pieces, so the
    reactor's thread waits for none of them long.
    """
    items: list[Any] = []
    view = memoryview(data)
    while start < end:
        cut = data.find(b"</value>", min(start + _BULK_PIECE, end), end)
        cut = end if cut < 0 else cut + len(b"</value>")
        try:
            piece = str(view[start:cut], "utf-8")
        except UnicodeDecodeError:
            return []
        found = form.pattern.findall(piece)
        if not found:  # the white space after the last value, or not values at all
            return items if _after_space(data, start) == end else []
        if piece.count("<") != form.tags * len(found):
            return []
        joined = "".join(found)
        between = len(piece) - len(joined) - form.markup * len(found)
        if not _only_space_between(piece, joined, between):
            return []
        items += found
        start = cut
    return items


def _after_space(data: bytes | bytearray, at: int) -> int:
    """Where the XML white space from *at* on ends."""
    return cast("re.Match[bytes]", _SPACE.match(data, at)).end()  # it matches "" too


def _only_space_between(piece: str, items: str, between: int) -> bool:
    """
    Whether the *between* characters of *piece* that are not in *items*
    (the texts of the values found there) are all XML white space:
    counted, first for line feeds alone, as writers put between values.
    """
    line_feeds = piece.count("\n") - items.count("\n")
    if between == line_feeds:
        return True
    spaces = sum(piece.count(space) - items.count(space) for space in " \t")
    return between == line_feeds + spaces


def _unescape(text: str) -> str:
    if "&" not in text:
        return text
    if _ENTITY.search(text):
        raise _Unusual()
    return (
        text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
        .replace("&amp;", "&")
    )


def _scan_loads(data: bytes | bytearray, verbatim: bool = False) -> tuple[tuple[Any, ...], str | None]:
    """
    The plain XML-RPC documents, read by :class:`_Scanner`: anything else
    raises :class:`_Unusual` (or another error) for ElementTree to judge.
    """
    # The scanner decodes texts as UTF-8: right for a document in a subset
    # of it (ASCII, say) too.  (The declaration is looked at first: a pass
    # over a big document costs more.)
    declared = _DECLARED_ENCODING.match(data)
    if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8") and not data.isascii():
        raise _Unusual()
    return _Scanner(data, verbatim).document()


class _Scanner:
    """
    Reads one XML-RPC document, tag by tag, counting the depth of its
    elements as the other parsers do; only the elements and text XML-RPC
    has, in the order it has them.  With *verbatim*, long lists of plain
    strings are kept as :class:`~._verbatim.VerbatimStrings`.
    """

    def __init__(self, document: bytes | bytearray, verbatim: bool = False) -> None:
        self._data = document
        self._verbatim = verbatim
        self._at = 0
        self._depth = 0
        self._found: dict[bytes, int] = {}

    def document(self) -> tuple[tuple[Any, ...], str | None]:
        declaration = _DECLARATION.match(self._data)
        if declaration is not None:
            self._at = declaration.end()
        closing, root, empty = self._tag()
        if closing or empty:
            raise _Unusual()
        self._enter()
        method: str | None = None
        if root == b"methodCall":
            if self._start(b"methodName"):
                raise _Unusual()
            method = self._chars()
            self._end(b"methodName")
            params = self._params()
        elif root == b"methodResponse":
            params = self._response()
        else:
            raise _Unusual()
        self._end(root)
        if _after_space(self._data, self._at) != len(self._data):
            raise _Unusual()
        return params, method

    def _response(self) -> tuple[Any, ...]:
        closing, tag, empty = self._tag()
        if closing or empty:
            raise _Unusual()
        self._enter()
        if tag == b"params":
            return self._param_list()
        if tag != b"fault":
            raise _Unusual()
        fault = self._value()
        self._end(b"fault")
        if not isinstance(fault, dict):
            raise _Unusual()
        raise xmlrpc.client.Fault(**fault)  # a TypeError here: unusual

    def _params(self) -> tuple[Any, ...]:
        if self._start(b"params"):
            return ()
        return self._param_list()

    def _param_list(self) -> tuple[Any, ...]:
        values: list[Any] = []
        while True:
            closing, tag, empty = self._tag()
            if closing:
                if tag != b"params":
                    raise _Unusual()
                self._depth -= 1
                return tuple(values)
            if tag != b"param" or empty:
                raise _Unusual()
            self._enter()
            values.append(self._value())
            self._end(b"param")

    def _value(self) -> Any:
        """The next ``<value>`` element, which must come next."""
        if self._start(b"value"):
            return ""
        text = self._chars()
        closing, tag, empty = self._tag()
        if closing:
            if tag != b"value":
                raise _Unusual()
            self._depth -= 1
            return text  # a string without a type element
        if text.strip(" \t\n"):
            raise _Unusual()
        self._enter()
        if tag == b"struct":
            result: Any = {} if empty else self._struct()
        elif tag == b"array":
            if empty:
                raise _Unusual()
            result = self._array()
        else:
            result = self._scalar(tag.decode("ascii"), empty)
        self._end(b"value")
        return result

    def _scalar(self, tag: str, empty: bool) -> Any:
        if empty:
            self._depth -= 1
            text = ""
        else:
            text = self._chars()
            self._end(tag.encode("ascii"))
        return _scalar(tag, text)

    def _struct(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            closing, tag, empty = self._tag()
            if closing:
                if tag != b"struct":
                    raise _Unusual()
                self._depth -= 1
                return result
            if tag != b"member" or empty:
                raise _Unusual()
            self._enter()
            if self._start(b"name"):
                key = ""
            else:
                key = self._chars()
                self._end(b"name")
            result[key] = self._value()
            self._end(b"member")

    def _array(self) -> Any:
        if self._start(b"data"):
            self._end(b"array")
            return []
        items = self._plain_strings()
        if isinstance(items, VerbatimStrings):
            self._end(b"data")
            self._end(b"array")
            return items
        while True:
            closing, tag, empty = self._tag()
            if closing:
                if tag != b"data":
                    raise _Unusual()
                self._depth -= 1
                break
            if tag != b"value":
                raise _Unusual()
            self._at = self._tag_start
            items.append(self._value())
        self._end(b"array")
        return items

    def _plain_strings(self) -> list[Any] | VerbatimStrings:
        """
        The items of the array whose ``<data>`` was just read, if they are
        all plain string values of one form (else nothing, for the items to
        be read one by one): see :func:`_plain_values` and, for a long list
        written as writers write it, :func:`~._verbatim.find_verbatim`.
        """
        data, start = self._data, self._at
        found = self._long_plain_strings()
        if found is not None:
            return found
        end = self._next(b"</data>")
        if end == len(data) or self._next(b"<array") < end or self._next(b"<struct") < end:
            return []  # holds other lists or maps: not a list of strings
        for form in _BULK_FORMS:
            items = _plain_values(form, data, start, end)
            if items:
                self._check_depth(form)
                self._at = end
                return items
        return []

    def _long_plain_strings(self) -> list[str] | VerbatimStrings | None:
        """
        The items of a list from :data:`~._verbatim.VERBATIM_FROM` bytes
        long, written as writers write it: checked and split (or kept, for
        the hub to pass on) several times faster than read by ``findall``.
        """
        data, start = self._data, self._at
        close = b"</data>"
        near = data.find(close, start, start + VERBATIM_FROM + len(close))
        if 0 <= near < start + VERBATIM_FROM:
            return None  # a short list
        # A long list usually ends at the document's last "</data>" (a row
        # list is its message's last value): guessed so, the list is not
        # searched for its end first, which costs as much as reading it.
        # A list that reads to there has no "<" but its values' own, so the
        # guess was right; one that does not is read again to its real end
        # (a list followed by another: one more pass over it).
        guess = near if near >= 0 else data.rfind(close, start)
        found = self._read_long(guess)
        if found is None and self._next(close) not in (guess, len(data)):
            found = self._read_long(self._next(close))  # the guess was past its end
        return found

    def _read_long(self, end: int) -> list[str] | VerbatimStrings | None:
        """The long list ending at *end*, if it is plain (see above)."""
        if end < 0:
            return None
        read = find_verbatim if self._verbatim else read_plain_strings
        found = read(self._data, _after_space(self._data, self._at), end)
        if found is not None:
            self._check_depth(_BULK_FORMS[0])
            self._at = end
        return found

    def _check_depth(self, form: _BulkForm) -> None:
        if self._depth + form.depth > MAX_ELEMENT_DEPTH:
            raise _too_deep()

    def _next(self, marker: bytes) -> int:
        """
        Where *marker* next appears from here on (the document's length if
        nowhere), remembered: the document is searched from where the last
        search found it, so that looking ahead from every list of a
        deeply nested document costs one pass, not one each.
        """
        found = self._found.get(marker, -1)
        if found < self._at:
            found = self._data.find(marker, self._at)
            self._found[marker] = found = len(self._data) if found < 0 else found
        return found

    # -- tags and text

    _tag_start = 0

    def _tag(self) -> tuple[bool, bytes, bool]:
        """The next tag, after white space: (closing, name, empty)."""
        self._tag_start = _after_space(self._data, self._at)
        match = _TAG.match(self._data, self._tag_start)
        if match is None:
            raise _Unusual()
        closing, name, empty = match.groups()
        if closing and empty:
            raise _Unusual()
        self._at = match.end()
        return bool(closing), name, bool(empty)

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_ELEMENT_DEPTH:
            raise _too_deep()

    def _start(self, name: bytes) -> bool:
        """Read the start tag of *name*; whether the element is empty."""
        closing, tag, empty = self._tag()
        if closing or tag != name:
            raise _Unusual()
        self._enter()
        if empty:
            self._depth -= 1
        return empty

    def _end(self, name: bytes) -> None:
        closing, tag, _ = self._tag()
        if not closing or tag != name:
            raise _Unusual()
        self._depth -= 1

    def _chars(self) -> str:
        """The text up to the next tag (a UnicodeDecodeError if not UTF-8)."""
        end = self._data.find(b"<", self._at)
        if end < 0:
            raise _Unusual()
        text = self._data[self._at : end]
        if _NOT_PLAIN_TEXT.search(text):
            raise _Unusual()
        self._at = end
        return _unescape(text.decode("utf-8"))


# -- 2. ElementTree ----------------------------------------------------------


def _parse_tree(data: bytes | bytearray) -> ElementTree.Element:
    """
    The root element of *data*, parsed by ElementTree's C parser and tree
    builder, in chunks: the elements' depth is followed from the parser's
    events between chunks, so a document nested too deep is refused after
    its first chunk, at the cost of parsing that chunk only.
    """
    if data.count(b"<") <= MAX_ELEMENT_DEPTH:
        # Too few tags to nest too deep: no events to follow.
        parser = ElementTree.XMLParser()
        parser.feed(data)
        return parser.close()
    pull: ElementTree.XMLPullParser[ElementTree.Element] = ElementTree.XMLPullParser(
        ("start", "end")
    )
    root: ElementTree.Element | None = None
    depth = 0
    for offset in range(0, len(data), _CHUNK):
        pull.feed(data[offset : offset + _CHUNK])
        # Only "start" and "end" events were asked for: each with an element.
        events = cast("Iterator[tuple[str, ElementTree.Element]]", pull.read_events())
        for event, element in events:
            if event == "start":
                depth += 1
                if depth > MAX_ELEMENT_DEPTH:
                    raise _too_deep()
                if root is None:
                    root = element
            else:
                depth -= 1
    pull.close()
    if root is None:
        raise _Unusual()
    return root


def _tree_loads(data: bytes | bytearray) -> tuple[tuple[Any, ...], str | None]:
    """
    The common XML-RPC documents, parsed by ElementTree's C parser and tree
    builder: several times faster than :mod:`xmlrpc.client`'s unmarshaller,
    which calls Python for each tag and each piece of text.  Anything but the
    plain shapes of the types SAMP peers send raises :class:`_Unusual` (or
    another error), so :func:`_strict_loads` gives the same results and
    errors.  Only for documents that cannot hold a DTD (see
    :func:`_plain_bytes`).
    """
    root = _parse_tree(data)
    method: str | None
    if root.tag == "methodCall":
        if len(root) != 2:
            raise _Unusual()
        name, params = root
        if name.tag != "methodName" or len(name):
            raise _Unusual()
        method = name.text or ""
    elif root.tag == "methodResponse" and len(root) == 1:
        method = None
        params = root[0]
        if params.tag == "fault":
            if len(params) != 1 or params[0].tag != "value":
                raise _Unusual()
            fault = _tree_value(params[0])
            if not isinstance(fault, dict):
                raise _Unusual()
            raise xmlrpc.client.Fault(**fault)  # a TypeError here: _Unusual
    else:
        raise _Unusual()
    if params.tag != "params":
        raise _Unusual()
    values = []
    for param in params:
        if param.tag != "param" or len(param) != 1 or param[0].tag != "value":
            raise _Unusual()
        values.append(_tree_value(param[0]))
    return tuple(values), method


def _tree_value(value: ElementTree.Element) -> Any:
    """A ``<value>`` element as xmlrpc.client's unmarshaller decodes it."""
    if not len(value):
        return value.text or ""
    if len(value) != 1:
        raise _Unusual()
    node = value[0]
    tag = node.tag
    if tag == "struct":
        result: dict[str, Any] = {}
        for member in node:
            if member.tag != "member" or len(member) != 2:
                raise _Unusual()
            name, item = member
            if name.tag != "name" or len(name) or item.tag != "value":
                raise _Unusual()
            result[name.text or ""] = _tree_value(item)
        return result
    if tag == "array":
        if len(node) != 1 or node[0].tag != "data":
            raise _Unusual()
        items: list[Any] = []
        for item in node[0]:
            if item.tag != "value":
                raise _Unusual()
            items.append(_tree_value(item))
        return items
    if len(node):
        raise _Unusual()
    return _scalar(tag, node.text or "")


def _scalar(tag: str, text: str) -> Any:
    """The value of a scalar element *tag* holding *text*, as
    xmlrpc.client's unmarshaller decodes the types SAMP peers send."""
    if tag == "string":
        return text
    if tag == "int" or tag == "i4":
        return int(text)
    if tag == "boolean" and text in ("0", "1"):
        return text == "1"
    if tag == "double":
        return float(text)
    if tag == "nil":
        return None
    raise _Unusual()


# -- 3. the standard library ------------------------------------------------


def _strict_loads(data: bytes | bytearray) -> tuple[tuple[Any, ...], str | None]:
    parser, unmarshaller = xmlrpc.client.getparser()
    expat = getattr(parser, "_parser", None)
    if expat is None:  # pragma: no cover - the stdlib always uses expat
        raise ValueError("no expat parser available to parse XML-RPC safely")
    expat.StartDoctypeDeclHandler = _refuse_dtd
    expat.EntityDeclHandler = _refuse_dtd
    _count_depth(expat)
    try:
        parser.feed(data)
        parser.close()
        return unmarshaller.close(), unmarshaller.getmethodname()
    except (xmlrpc.client.Fault, _DTDRefused, _TooDeep):
        raise
    except Exception as exc:
        raise ValueError(f"not an XML-RPC document: {exc}") from None


def _count_depth(expat: Any) -> None:
    """Make *expat* raise :class:`_TooDeep` at the first element nested
    deeper than MAX_ELEMENT_DEPTH."""
    start, end = expat.StartElementHandler, expat.EndElementHandler
    depth = 0

    def counting_start(tag: str, attrs: Any) -> None:
        nonlocal depth
        depth += 1
        if depth > MAX_ELEMENT_DEPTH:
            raise _too_deep()
        start(tag, attrs)

    def counting_end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        end(tag)

    expat.StartElementHandler = counting_start
    expat.EndElementHandler = counting_end


# -- writing -----------------------------------------------------------------


class CachedMap(dict[str, Any]):
    """
    A map whose XML-RPC encoding is made the first time it is written and
    reused after: a message the hub passes on, unchanged, to many
    recipients.  It must not change once written.
    """

    _encoded: list[bytes | memoryview] | None = None

    @property
    def is_encoded(self) -> bool:
        """Whether the encoding has been made (and is kept)."""
        return self._encoded is not None

    def encoded(self) -> list[bytes | memoryview]:
        """The ``<value>`` element of this map, as UTF-8, in parts."""
        if self._encoded is None:
            writer = _Writer()
            writer.struct(self)
            self._encoded = cast("list[bytes | memoryview]", writer.parts())  # (not lazy)
        return self._encoded


def _escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _string_parts(items: list[Any] | tuple[Any, ...]) -> list[bytes]:
    """
    *items*, strings, as string values, encoded a thousand at a time into
    parts of their own: a long list is never held as one text besides its
    bytes, and each piece is escaped (where it needs it) while in cache.

    :raises TypeError: an item is not a string.
    """
    return [_piece_xml(piece, joined) for piece, joined in string_chunks(items, _STRINGS_PER_PART)]


def _piece_xml(piece: list[Any] | tuple[Any, ...], joined: str) -> bytes:
    """The string values of *piece*, whose strings joined are *joined*."""
    strings: Iterable[str] = piece
    if "&" in joined or "<" in joined or ">" in joined:
        strings = map(_escape, piece)
    return f"<value><string>{_BETWEEN_STRINGS.join(strings)}</string></value>\n".encode()


_BETWEEN_STRINGS = "</string></value>\n<value><string>"
_STRING_MARKUP = len("<value><string></string></value>\n")
_STRINGS_PER_PART = 1000

#: Lists of strings from this many items on are written by
#: :class:`LazyStrings` in a request (``encode_call(..., lazy=True)``).
LAZY_FROM = 4096


class LazyStrings:
    """
    The string values of a long list of strings in a request, written a
    thousand at a time as the connection takes them: a client sending a
    million rows does not hold the request's 37 MB besides the rows (fresh
    memory costs the kernel a page fault every 4 kB), and starts sending
    at once.  Its length, which the request's head gives, is counted
    first, from the strings joined a thousand at a time.

    The list must not change until the request is sent (a call's
    arguments, checked, are copies).

    :raises TypeError: an item is not a string.
    """

    __slots__ = ("_items", "_length")

    def __init__(self, items: list[Any] | tuple[Any, ...]) -> None:
        self._items = items
        length = 0
        for piece, joined in string_chunks(items, _STRINGS_PER_PART):
            if joined.isascii() and not ("&" in joined or "<" in joined or ">" in joined):
                length += len(joined) + len(piece) * _STRING_MARKUP
            else:
                length += len(_piece_xml(piece, joined))
        self._length = length

    def __len__(self) -> int:
        """The length of the values' XML, in bytes."""
        return self._length

    def pieces(self) -> Iterator[bytes]:
        """The values' XML, a thousand at a time (made anew each time)."""
        for piece, joined in string_chunks(self._items, _STRINGS_PER_PART):
            yield _piece_xml(piece, joined)


#: A part of an encoded document: bytes, or a view of a received body's
#: bytes, or (in a request) a list of strings written as it is sent.
Part: TypeAlias = "bytes | memoryview | LazyStrings"


class _Writer:
    """
    Writes values as :class:`xmlrpc.client.Marshaller` does, into byte
    parts: the cached bytes of a :class:`CachedMap` become a part of their
    own, shared by every document that holds the map.
    """

    def __init__(self, lazy: bool = False) -> None:
        self._parts: list[Part] = []
        self._text: list[str] = []
        self._lazy = lazy
        self.write = self._text.append

    def parts(self) -> list[Part]:
        """Everything written, as byte strings to send one after the other."""
        self._flush()
        return self._parts

    def _flush(self) -> None:
        if self._text:
            self._parts.append("".join(self._text).encode("utf-8"))
            self._text.clear()

    def value(self, value: Any) -> None:
        """Write one ``<value>`` element."""
        if isinstance(value, str):
            self.write(f"<value><string>{_escape(value)}</string></value>\n")
        elif type(value) is CachedMap:
            self._flush()
            self._parts += value.encoded()
        elif type(value) is VerbatimStrings:
            self.write("<value><array><data>\n")
            self._flush()
            self._parts.append(value.xml())
            self.write("</data></array></value>\n")
        elif isinstance(value, dict):
            self.struct(value)
        elif isinstance(value, (list, tuple)):
            self._array(value)
        else:
            # int, float, bool and the rest, as the standard library has them.
            marshalled = xmlrpc.client.Marshaller(allow_none=False).dumps((value,))
            self.write(marshalled[len("<params>\n<param>\n") : -len("</param>\n</params>\n")])

    def struct(self, value: dict[Any, Any]) -> None:
        """Write a map as a ``<value><struct>``."""
        write = self.write
        write("<value><struct>\n")
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("dictionary key must be string")
            write(f"<member>\n<name>{_escape(key)}</name>\n")
            self.value(item)
            write("</member>\n")
        write("</struct></value>\n")

    def _array(self, items: list[Any] | tuple[Any, ...]) -> None:
        write = self.write
        write("<value><array><data>\n")
        parts: list[Part] = []
        try:
            if self._lazy and len(items) >= LAZY_FROM:
                parts.append(LazyStrings(items))
            else:
                parts += _string_parts(items)
        except TypeError:  # not only strings
            for item in items:
                self.value(item)
        else:
            self._flush()
            self._parts += parts
        write("</data></array></value>\n")

    def params(self, values: Iterable[Any]) -> None:
        """Write a ``<params>`` block."""
        write = self.write
        write("<params>\n")
        for value in values:
            write("<param>\n")
            self.value(value)
            write("</param>\n")
        write("</params>\n")


_HEADER = "<?xml version='1.0'?>\n"


def encode_call(method: str, args: Iterable[Any], lazy: bool = False) -> list[Part]:
    """
    Encode a method call as :func:`xmlrpc.client.dumps` does, as parts to
    send one after the other (their concatenation is the body): byte
    strings, and with *lazy*, :class:`LazyStrings` for long lists of
    strings.

    :param str method: the method name.
    :param args: the parameters, already SAMP-checked.
    :param bool lazy: write long lists of strings as they are sent; they
        must not change until then.
    :raises TypeError: a value XML-RPC cannot carry (``None``).
    """
    writer = _Writer(lazy)
    writer.write(f"{_HEADER}<methodCall>\n<methodName>{_escape(method)}</methodName>\n")
    writer.params(args)
    writer.write("</methodCall>\n")
    return writer.parts()


def dumps_call(method: str, args: Iterable[Any]) -> bytes:
    """:func:`encode_call` as one byte string."""
    return b"".join(cast("list[bytes | memoryview]", encode_call(method, args)))


def dumps_response(value: Any) -> bytes:
    """
    Encode a method response holding *value*, as
    ``xmlrpc.client.dumps((value,), methodresponse=True)`` does.
    """
    writer = _Writer()
    writer.write(f"{_HEADER}<methodResponse>\n")
    writer.params((value,))
    writer.write("</methodResponse>\n")
    return b"".join(cast("list[bytes | memoryview]", writer.parts()))


def dumps_fault(code: int, text: str) -> bytes:
    """Encode a fault response, as :func:`xmlrpc.client.dumps` does."""
    writer = _Writer()
    writer.write(f"{_HEADER}<methodResponse>\n<fault>\n")
    writer.struct({"faultCode": code, "faultString": text})
    writer.write("</fault>\n</methodResponse>\n")
    return b"".join(cast("list[bytes | memoryview]", writer.parts()))
