# -*- test-case-name: tests.test_verbatim -*-
"""
Tests for L{sampy_twisted._verbatim}: long lists of plain strings the hub
keeps as it received them.  What is kept reads as the list it holds, is
written back byte for byte, and anything else is left to the readers that
decode every value.
"""

import itertools
import random
import xmlrpc.client

from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted import _codec, _verbatim
from sampy_twisted._codec import _strict_loads, dumps_call, dumps_response, safe_loads
from sampy_twisted._encoding import check_samp_value, from_xmlrpc
from sampy_twisted._hubcore import kind
from sampy_twisted._limits import MAX_NESTING, message_size
from sampy_twisted._monitor import collapse
from sampy_twisted._verbatim import VerbatimStrings, find_verbatim, read_plain_strings

# Plain text, and each character that makes a list not plain: the ones a
# writer escapes or that could end CDATA, CR, control and non-ASCII.
_PLAIN = "ab 09./:?=\t\n\x7f"
_NOT_PLAIN = "&<>]\r\x01\xe9"
# Plain text without the tags' bytes or a line feed (row indexes, say): a
# list of it is split the quick way.
_UNTAGGED = "b 09.:?=\t\x7f"


def plain(text):
    return not any(c in _NOT_PLAIN for c in text)


def random_rows(rng, spoil=0.0, alphabet=_PLAIN):
    """A list of short strings of *alphabet*, some empty; each character
    not plain with probability *spoil*."""
    def char():
        return rng.choice(_NOT_PLAIN) if rng.random() < spoil else rng.choice(alphabet)

    return ["".join(char() for _ in range(rng.choice((0, 1, 2, 5)))) for _ in range(rng.choice((1, 2, 3, 40)))]


def outcome(parse, document):
    """What *parse* makes of *document*: its values, or its error."""
    try:
        return parse(document)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


def list_region(document):
    """Where the items of the document's only array lie."""
    start = document.index(b"<data>\n") + len(b"<data>\n")
    return start, document.index(b"</data>", start)


class FindTests(SynchronousTestCase):
    """find_verbatim and read_plain_strings against the standard library."""

    def setUp(self):
        self.rng = random.Random(14)

    def test_random_lists(self):
        """A list is kept exactly when all its texts are plain, and then
        reads as the standard library reads it, however the megabyte
        pieces fall and whether or not its texts hold the tags' bytes."""
        for piece, spoil, alphabet in itertools.product(
            (1, 7, 64, _verbatim._PIECE), (0.0, 0.02, 0.2), (_PLAIN, _UNTAGGED)
        ):
            self.patch(_verbatim, "_PIECE", piece)
            for _ in range(60):
                rows = random_rows(self.rng, spoil, alphabet)
                document = dumps_call("m", [rows])
                start, end = list_region(document)
                expected = outcome(lambda d: _strict_loads(d)[0][0], document)
                kept = find_verbatim(document, start, end)
                read = read_plain_strings(document, start, end)
                if all(map(plain, rows)):
                    self.assertEqual(read, expected, (piece, rows))
                    self.assertEqual(kept.strings(), expected, (piece, rows))
                    self.assertEqual(len(kept), len(rows))
                    self.assertEqual(kept.chars, sum(map(len, rows)))
                else:
                    self.assertIsNone(read, rows)
                    self.assertIsNone(kept, rows)

    def test_other_shapes(self):
        """Values written otherwise than the writer writes them are left to
        the other readers, which read them right."""
        rows = [str(i) for i in range(30)]
        document = dumps_call("m", [rows])
        variants = [
            document.replace(b"</value>\n<value>", b"</value>\n\n<value>", 1),  # a blank line
            document.replace(b"</value>\n<value>", b"</value> <value>", 1),  # a space
            document.replace(b"<value><string>7</string>", b"<value>7", 1),
            document.replace(b"<string>3</string>", b"<string><![CDATA[3]]></string>", 1),
            document.replace(b"<string>4</string>", b"<string>&#52;</string>", 1),
            document.replace(b"<string>5</string>", b"<string>5<!-- c --></string>", 1),
            document.replace(b"<string>6</string>", b"<int>6</int>", 1),
            document.replace(b"</string></value>\n</data>", b"</string></value></data>", 1),  # no last LF
        ]
        for variant in variants:
            start, end = list_region(variant)
            self.assertIsNone(find_verbatim(variant, start, end), variant)
            self.assertIsNone(read_plain_strings(variant, start, end), variant)
            self.patch(_codec, "VERBATIM_FROM", 0)
            self.assertEqual(outcome(lambda d: safe_loads(d, verbatim=True), variant), outcome(_strict_loads, variant))


class VerbatimStringsTests(SynchronousTestCase):
    """A kept list reads, compares, counts and writes as its list."""

    def setUp(self):
        self.rows = ["http://x/1", "", "a b", "\t", "file:///t.vot", "z" * 50] * 7
        self.document = dumps_call("m", [self.rows])
        self.kept = find_verbatim(self.document, *list_region(self.document))

    def test_reads_as_list(self):
        kept, rows = self.kept, self.rows
        self.assertIsInstance(kept, VerbatimStrings)
        self.assertEqual(len(kept), len(rows))
        self.assertEqual(list(kept), rows)
        self.assertEqual(kept[3], rows[3])
        self.assertEqual(kept[-1], rows[-1])
        self.assertEqual(kept[2:9:3], rows[2:9:3])
        self.assertEqual(kept, rows)
        self.assertEqual(kept, tuple(rows))
        self.assertNotEqual(kept, rows[:-1])
        self.assertNotEqual(kept, "abc")
        self.assertIn("42 strings", repr(kept))

    def test_head(self):
        """The first few items are read without making the others."""
        fresh = find_verbatim(self.document, *list_region(self.document))
        for count in range(len(self.rows)):
            self.assertEqual(fresh.head(count), self.rows[:count])
            self.assertEqual(fresh[:count], self.rows[:count])
        self.assertIsNone(fresh._items)
        for count in (len(self.rows), len(self.rows) + 1):
            self.assertEqual(fresh.head(count), self.rows)
        self.assertEqual(fresh.head(3), self.rows[:3])

    def test_tail(self):
        """The last few items are read without making the others."""
        fresh = find_verbatim(self.document, *list_region(self.document))
        for count in range(len(self.rows)):
            self.assertEqual(fresh.tail(count), self.rows[len(self.rows) - count:])
        self.assertIsNone(fresh._items)
        for count in (len(self.rows), len(self.rows) + 1):
            self.assertEqual(fresh.tail(count), self.rows)
        self.assertEqual(fresh.tail(3), self.rows[-3:])
        self.assertEqual(fresh.tail(0), [])

    def test_any_starts_with(self):
        self.assertTrue(self.kept.any_starts_with(("https", "file")))
        self.assertTrue(self.kept.any_starts_with(("http",)))
        self.assertFalse(self.kept.any_starts_with(("ftp", "ivo")))

    def test_written_back(self):
        """The writer writes what was received, as it would write the list."""
        self.assertEqual(dumps_call("m", [self.kept]), self.document)
        message = {"rows": self.kept, "n": "1"}
        self.assertEqual(dumps_call("m", [message]), dumps_call("m", [{"rows": self.rows, "n": "1"}]))
        self.assertEqual(dumps_response(self.kept), dumps_response(self.rows))
        cached = _codec.CachedMap(message)
        self.assertEqual(b"".join(map(bytes, cached.encoded())), b"".join(map(bytes, _codec.CachedMap(
            {"rows": self.rows, "n": "1"}).encoded())))

    def test_raw_greater_than(self):
        """A ">" a writer would escape is kept as received: the same text."""
        document = dumps_call("m", [["a", "b"] * 3]).replace(b"<string>b</string>", b"<string>b></string>")
        kept = find_verbatim(document, *list_region(document))
        self.assertEqual(kept, ["a", "b>"] * 3)
        self.assertEqual(xmlrpc.client.loads(dumps_call("m", [kept]))[0][0], ["a", "b>"] * 3)

    def test_samp_checks_and_sizes(self):
        """The hub's checks take it as checked SAMP data; the sizes, the
        monitor's summary and fault texts see the list."""
        self.assertIs(check_samp_value(self.kept), self.kept)
        self.assertEqual(check_samp_value({"r": self.kept}), {"r": self.rows})
        self.assertEqual(from_xmlrpc(self.kept), self.rows)
        self.assertEqual(message_size({"r": self.kept}), message_size({"r": self.rows}))
        self.assertEqual(collapse({"r": self.kept}), collapse({"r": self.rows}))
        self.assertEqual(kind(self.kept), "a list")


class SafeLoadsTests(SynchronousTestCase):
    """safe_loads keeps long plain lists for the hub only, and decodes
    them for everyone else."""

    def test_verbatim_for_the_hub_only(self):
        rows = [str(i) for i in range(3000)]  # over VERBATIM_FROM
        message = {"samp.mtype": "table.select.rowList", "samp.params": {"row-list": rows, "other": ["1", "2"]}}
        document = dumps_call("samp.hub.notify", ["key", message])
        (key, hub_view), method = safe_loads(document, verbatim=True)
        self.assertIsInstance(hub_view["samp.params"]["row-list"], VerbatimStrings)
        self.assertIsInstance(hub_view["samp.params"]["other"], list)  # too short to keep
        self.assertEqual((key, hub_view), ("key", message))
        client_view = safe_loads(document)
        self.assertIs(type(client_view[0][1]["samp.params"]["row-list"]), list)
        self.assertEqual(client_view, (("key", message), "samp.hub.notify"))

    def test_random_documents(self):
        """With every list long enough to keep, documents of random lists
        read as the strict reader reads them, values and errors, from bytes
        and from a bytearray."""
        self.patch(_codec, "VERBATIM_FROM", 0)
        self.patch(_codec, "_SCAN_FROM", 0)
        rng = random.Random(1414)
        for _ in range(300):
            value = {str(i): random_rows(rng, rng.choice((0.0, 0.05))) for i in range(rng.choice((1, 3)))}
            value["nested"] = [random_rows(rng)]
            document = dumps_call("m", [value])
            # From a bytearray too: a big body is read into one (_bodies).
            for data, verbatim in itertools.product((document, bytearray(document)), (True, False)):
                self.assertEqual(outcome(lambda d: safe_loads(d, verbatim=verbatim), data),
                                 outcome(_strict_loads, document))

    def test_lists_before_others(self):
        """A long list is kept wherever it lies in its document: its end is
        first guessed as the document's last ``</data>``, which is wrong
        when another list follows it."""
        self.patch(_codec, "VERBATIM_FROM", 200)
        self.patch(_codec, "_SCAN_FROM", 0)
        long_plain = [str(i) for i in range(100)]
        long_not_plain = ["&"] + long_plain
        short = ["a", "b"]
        for order in itertools.permutations([long_plain, long_not_plain, short, long_plain[::-1]]):
            document = dumps_call("m", [list(order), "tail"])
            (lists, _), _ = safe_loads(document, verbatim=True)
            self.assertEqual([type(each) for each in lists],
                             [VerbatimStrings if each[0] in ("0", "99") else list for each in order])
            for verbatim in (True, False):
                self.assertEqual(safe_loads(document, verbatim=verbatim), ((list(order), "tail"), "m"))

    def test_too_deep(self):
        """A kept list nested too deep is refused as the strict reader
        refuses it."""
        self.patch(_codec, "VERBATIM_FROM", 0)
        for depth in (MAX_NESTING - 1, MAX_NESTING, MAX_NESTING + 1):
            value = ["a", "b"]
            for _ in range(depth):
                value = [value]
            document = dumps_call("m", [value])
            self.assertEqual(outcome(lambda d: safe_loads(d, verbatim=True), document),
                             outcome(_strict_loads, document))
