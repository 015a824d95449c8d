# -*- test-case-name: tests.test_codec -*-
"""
Tests for L{sampy_twisted._codec}: its fast reader and writer give exactly
what the standard library's give, values and errors alike, on documents
generated at random and mutated at random.
"""

import random
import xmlrpc.client

from twisted.python.monkey import MonkeyPatcher
from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted._codec import (
    CachedMap,
    LazyStrings,
    _scan_loads,
    _strict_loads,
    _tree_loads,
    _Unusual,
    dumps_call,
    dumps_fault,
    dumps_response,
    encode_call,
    safe_loads,
)
from sampy_twisted import _codec, _encoding, _limits
from sampy_twisted._encoding import check_samp_value, from_xmlrpc
from sampy_twisted._limits import MAX_NESTING, message_size

# Characters the generated strings draw from: markup, entities' own
# characters, XML white space and CR, control characters XML forbids,
# non-ASCII, and plain text.
_CHARACTERS = "ab xyz09&<>\"';]\t\n\r\x01\x1f\x7f\xe9\u20ac"


def random_string(rng):
    return "".join(rng.choice(_CHARACTERS) for _ in range(rng.choice((0, 1, 3, 8))))


def random_value(rng, depth=0, scalars=False):
    """A random value: strings, lists and maps (and with *scalars* the
    other XML-RPC types), nested up to four deep."""
    kinds = ["str", "str", "list", "dict", "strings"] if depth < 4 else ["str"]
    if scalars:
        kinds += ["int", "bool", "float"]
    kind = rng.choice(kinds)
    if kind == "str":
        return random_string(rng)
    if kind == "strings":
        return [str(rng.randrange(10**6)) for _ in range(rng.choice((0, 1, 50)))]
    if kind == "list":
        return [random_value(rng, depth + 1, scalars) for _ in range(rng.choice((0, 1, 2, 5)))]
    if kind == "dict":
        return {random_string(rng): random_value(rng, depth + 1, scalars) for _ in range(rng.choice((0, 1, 3)))}
    if kind == "int":
        return rng.randrange(-(2**31), 2**31)
    if kind == "bool":
        return rng.random() < 0.5
    return rng.uniform(-1e6, 1e6)


def stdlib_call(method, args):
    return xmlrpc.client.dumps(tuple(args), methodname=method, encoding="utf-8").encode("utf-8")


def bare_strings(document):
    """*document* with its ``<string>`` elements left out, as some peers
    write strings."""
    return document.replace(b"<string>", b"").replace(b"</string>", b"")


def outcome_of(function, value):
    """("ok", function(value)) or (exception class name, text)."""
    try:
        return "ok", function(value)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__, str(exc)


def outcome(parse, document):
    """What *parse* makes of *document*: ("ok", value) or (error class, text)."""
    try:
        return "ok", parse(document)
    except xmlrpc.client.Fault as fault:
        return "fault", (fault.faultCode, fault.faultString)
    except ValueError as exc:
        return "ValueError", str(exc)


class WriterTests(SynchronousTestCase):
    """
    The writer gives byte for byte what xmlrpc.client.dumps gives.
    """

    def test_random_calls(self):
        """Random values, with every XML-RPC scalar, as calls."""
        rng = random.Random(1)
        for _ in range(400):
            args = [random_value(rng, scalars=True) for _ in range(rng.randrange(4))]
            self.assertEqual(dumps_call("samp.hub.notify", args), stdlib_call("samp.hub.notify", args))

    def test_method_name_escaped(self):
        """Unlike the standard library's, a method name is escaped."""
        self.assertEqual(safe_loads(dumps_call("a&b<c>", [])), ((), "a&b<c>"))

    def test_random_responses_and_faults(self):
        """Responses and faults."""
        rng = random.Random(2)
        for _ in range(200):
            value = random_value(rng, scalars=True)
            self.assertEqual(
                dumps_response(value),
                xmlrpc.client.dumps((value,), methodresponse=True).encode("utf-8"),
            )
            text = random_string(rng)
            self.assertEqual(
                dumps_fault(3, text),
                xmlrpc.client.dumps(xmlrpc.client.Fault(3, text), methodresponse=True).encode("utf-8"),
            )

    def test_string_lists(self):
        """Lists of strings, written in bulk, with and without characters
        to escape; empty lists and tuples."""
        long_lists = ([str(i) for i in range(2500)], ["a"] * 1000 + [""], [""] * 2001, ["&"] * 1001)
        for value in (["1", "2"], ["a&b", "<", ">", ""], [], ("x", "y"), [""] * 3, *long_lists):
            self.assertEqual(dumps_call("m", [value]), stdlib_call("m", [value]))

    def test_lazy_string_lists(self):
        """A request's long lists of strings, written as they are sent,
        come out byte for byte as the standard library writes them, however
        they are made up (escapes, non-ASCII, empty strings, not only
        strings), and have the length they say."""
        self.patch(_codec, "LAZY_FROM", 3)
        rng = random.Random(3)
        values = [["1", "2"], [str(i) for i in range(2500)], ["a&b", "<", ">", "", "\xe9"] * 700,
                  ["\xe9", "a"] * 1500, [f"\u20ac{i}" for i in range(2000)], ("x",) * 1001,
                  ["x", 1, "y", {"k": "v"}], []]
        values += [[random_string(rng) for _ in range(rng.choice((3, 999, 1000, 1001, 2999)))] for _ in range(20)]
        for value in values:
            parts = encode_call("m", [value, {"nested": value}], lazy=True)
            lazy = [part for part in parts if isinstance(part, LazyStrings)]
            if len(value) >= 3 and all(isinstance(item, str) for item in value):
                self.assertEqual(len(lazy), 2)
            else:
                self.assertEqual(lazy, [])
            for part in lazy:
                self.assertEqual(len(part), len(b"".join(part.pieces())))
            written = b"".join(b"".join(part.pieces()) if isinstance(part, LazyStrings) else part for part in parts)
            self.assertEqual(written, stdlib_call("m", [value, {"nested": value}]))
            self.assertEqual(written, dumps_call("m", [value, {"nested": value}]))

    def test_refusals(self):
        """None and non-string keys are refused as the standard library
        refuses them."""
        self.assertRaises(TypeError, dumps_call, "m", [None])
        self.assertRaises(TypeError, dumps_call, "m", [{1: "x"}])

    def test_cached_map(self):
        """A CachedMap is written as a dict is, its bytes made once and
        shared, as one part, by every call that holds it."""
        message = CachedMap({"samp.mtype": "x.y", "samp.params": {"rows": ["1", "2"]}})
        first = encode_call("samp.client.receiveNotification", ["key1", "c1", message])
        second = encode_call("samp.client.receiveNotification", ["key2", "c1", message])
        self.assertEqual(b"".join(first), stdlib_call("samp.client.receiveNotification", ["key1", "c1", dict(message)]))
        shared = [part for part in first if any(part is other for other in second)]
        self.assertEqual(shared, message.encoded())


class ReaderTests(SynchronousTestCase):
    """
    safe_loads gives what the strict parser (xmlrpc.client on expat) gives:
    the same values, or the same error.
    """

    def assertSameAsStrict(self, document):
        """Every reader reads *document* as the strict one does, from bytes
        and from a bytearray (a big body is read into one: _bodies)."""
        expected = outcome(_strict_loads, document)
        for data in (document, bytearray(document)):
            self.assertEqual(outcome(safe_loads, data), expected, document[:300])
            for fast in (_scan_loads, _tree_loads):
                try:
                    result = fast(data)
                except (_Unusual, Exception):
                    continue  # left to the next parser
                self.assertEqual(("ok", result), expected, (fast.__name__, type(data), document[:300]))

    def documents(self, seed, count):
        rng = random.Random(seed)
        for _ in range(count):
            args = [random_value(rng, scalars=True) for _ in range(rng.randrange(1, 4))]
            document = stdlib_call("samp.hub.notify", args)
            yield rng, document
            yield rng, bare_strings(document)
            yield rng, xmlrpc.client.dumps((args[0],), methodresponse=True).encode("utf-8")

    def test_random_documents(self):
        """Calls and responses of random values, with and without
        ``<string>`` elements: the scanner reads them all but the ones with
        characters XML forbids (and CR, which XML turns into LF), and reads
        them as the strict parser does."""
        read = 0
        for _, document in self.documents(3, 300):
            self.assertSameAsStrict(document)
            try:
                _scan_loads(document)
                read += 1
            except _Unusual:
                pass
        self.assertGreater(read, 300)

    def test_mutated_documents(self):
        """Documents broken at random (a character deleted, replaced or
        added; a piece repeated) are read, or refused, as the strict parser
        reads or refuses them."""
        pieces = ["<", ">", "&", "&amp;", "&#13;", "&#1;", "</value>", "<value>", "<string>", "<i4>7</i4>",
                  "<![CDATA[x]]>", "<!-- c -->", "\r", "\x00", "<nil/>", "<a b='c'>", "\u00e9", " "]
        for rng, document in self.documents(4, 250):
            text = document.decode("utf-8")
            for _ in range(4):
                at = rng.randrange(len(text))
                how = rng.randrange(4)
                if how == 0:
                    mutated = text[:at] + text[at + 1 :]
                elif how == 1:
                    mutated = text[:at] + rng.choice(pieces) + text[at + 1 :]
                elif how == 2:
                    mutated = text[:at] + rng.choice(pieces) + text[at:]
                else:
                    mutated = text[:at] + text[at : at + 20] + text[at:]
                self.assertSameAsStrict(mutated.encode("utf-8"))

    def test_forms(self):
        """The forms of XML-RPC the scanner reads, and some it leaves to
        the others, read as the strict parser reads them."""
        call = "<?xml version='1.0'?><methodCall><methodName>m</methodName><params>{}</params></methodCall>"
        params = [
            "",
            "<param><value>plain</value></param>",
            "<param><value/></param>",
            "<param><value><string/></value></param>",
            "<param>\n <value> <string> a b </string> </value>\n</param>",
            "<param><value>  spaced  </value></param>",
            "<param><value><array><data/></array></value></param>",
            "<param><value><array><data></data></array></value></param>",
            "<param><value><array><data>\n</data></array></value></param>",
            "<param><value><array/></value></param>",
            "<param><value><struct/></value></param>",
            "<param><value><struct><member><name/><value>x</value></member></struct></value></param>",
            "<param><value><array><data><value>1</value><value><string>2</string></value>"
            "<value><i4>3</i4></value><value>4</value></data></array></value></param>",
            "<param><value><int> 12 </int></value></param>",
            "<param><value><int>x</int></value></param>",
            "<param><value><boolean>2</boolean></value></param>",
            "<param><value><double>1e3</double></value></param>",
            "<param><value><nil/></value></param>",
            "<param><value><base64>eHl6</base64></value></param>",
            "<param><value>a&amp;b&lt;c&gt;d&quot;e&apos;f</value></param>",
            "<param><value>&#x41;&#66;</value></param>",
            "<param><value>&bogus;</value></param>",
            "<param><value>a\r\nb\rc</value></param>",
            "<param><value><![CDATA[<x>]]></value></param>",
            "<param><value><!-- c -->x</value></param>",
            "<param><value >x</value ></param>",
            "<param><value type='x'>x</value></param>",
            "<param><value>caf\u00e9</value></param>",
            "<param><value><string>a</string>junk</value></param>",
            "<param><value>junk<string>a</string></value></param>",
            "<param><value>a</value><value>b</value></param>",
            "<param><value><array><data> <value>a b</value>\t<value>c\nd</value>\n</data></array></value></param>",
            "<param><value><array><data><value>a</value>x<value>b</value></data></array></value></param>",
            "<param><value><array><data><value>a\n</value>x<value>b</value>\n</data></array></value></param>",
            "<param><value><array><data><value><string>a</string></value> x <value><string>b</string></value>"
            "</data></array></value></param>",
        ]
        for piece in params:
            self.assertSameAsStrict(call.format(piece).encode("utf-8"))
        for document in (
            b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>4</int></value>"
            b"</member><member><name>faultString</name><value>no</value></member></struct></value></fault>"
            b"</methodResponse>",
            b"<methodResponse><fault><value><struct></struct></value></fault></methodResponse>",
            b"<methodCall><methodName>m</methodName></methodCall>",
            b"<methodCall><methodName/><params/></methodCall>",
            b"<?xml version='1.0' encoding='iso-8859-1'?><methodCall><methodName>m</methodName><params>"
            b"<param><value>caf\xe9</value></param></params></methodCall>",
            b"<?xml version='1.0' encoding='utf-8' standalone='yes' ?>\n<methodResponse><params><param>"
            b"<value>x</value></param></params></methodResponse>\n\n",
            b"<?xml version='1.1'?><methodResponse><params/></methodResponse>",
            b" <?xml version='1.0'?><methodResponse><params><param><value>x</value></param></params>"
            b"</methodResponse>",
            b"\n<methodResponse><params><param><value>x</value></param></params></methodResponse>",
            b"<methodResponse><params/></methodResponse>trailing",
            b"\xef\xbb\xbf<methodResponse><params/></methodResponse>",
            b"<methodResponse><params><param><value>\xff</value></param></params></methodResponse>",
            b"<methodResponse><params><param><value>\xef\xbf\xbe</value></param></params></methodResponse>",
        ):
            self.assertSameAsStrict(document)

    def test_deep_values(self):
        """Values nested to the limit are read; one deeper is refused by
        every parser alike, string runs included."""
        for inner in ("<value>x</value>", "<value><string>x</string></value>" * 3):
            for lists, ok in ((MAX_NESTING, True), (MAX_NESTING + 1, False)):
                value = inner
                for _ in range(lists):
                    value = f"<value><array><data>{value}</data></array></value>"
                document = (
                    "<methodCall><methodName>m</methodName><params><param>"
                    f"{value}</param></params></methodCall>"
                ).encode("ascii")
                result = outcome(safe_loads, document)
                self.assertEqual(result, outcome(_strict_loads, document))
                self.assertEqual(result[0], "ok" if ok else "ValueError")

    def test_deep_string_run(self):
        """A run of strings whose values are the first elements too deep
        (in a fault, one element shallower than a call's values) is
        refused as the strict parser refuses it."""
        value = "<value>x</value>" * 3
        for _ in range(MAX_NESTING):
            value = f"<value><array><data>{value}</data></array></value>"
        document = (
            "<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1</int>"
            "</value></member><member><name>faultString</name>"
            f"{value}</member></struct></value></fault></methodResponse>"
        ).encode("ascii")
        result = outcome(safe_loads, document)
        self.assertEqual(result, outcome(_strict_loads, document))
        self.assertEqual(result[0], "ValueError")
        self.assertIn("nest", result[1])

    def test_list_in_pieces(self):
        """However the pieces of a long list fall (white space alone in
        the last one, say), the scanner reads it whole, in bulk."""
        rows = [str(i) for i in range(50)]
        text = dumps_call("m", [rows])
        start, end = text.index(b"<data>") + len(b"<data>"), text.index(b"</data>")
        for piece in range(1, 120):
            self.patch(_codec, "_BULK_PIECE", piece)
            self.assertEqual(_codec._plain_values(_codec._BULK_FORMS[0], text, start, end), rows, piece)
            self.assertEqual(_codec._Scanner(text).document(), ((rows,), "m"))

    def test_big_row_list(self):
        """A row list of 100 000 strings, read by the scanner."""
        rows = [str(i) for i in range(100_000)]
        message = {"samp.mtype": "table.select.rowList", "samp.params": {"row-list": rows}}
        for document in (dumps_call("m", ["k", message]), bare_strings(dumps_call("m", ["k", message]))):
            self.assertEqual(_scan_loads(document), (("k", message), "m"))


class BulkChecksTests(SynchronousTestCase):
    """
    The bulk paths for lists of strings in the SAMP checks and the size
    estimate give what the item-by-item ones give.
    """

    def plain(self, function, value):
        """What *function* makes of *value* with the bulk paths turned off:
        ("ok", result) or (exception class, text)."""
        def off(items, size=0):
            raise TypeError("the bulk paths are off")
            yield

        patcher = MonkeyPatcher((_encoding, "string_chunks", off), (_limits, "string_chunks", off))
        return patcher.runWithPatches(outcome_of, function, value)

    def test_random_values(self):
        """The checks, the lenient conversion and the size estimate give,
        on random values with bad strings here and there (control
        characters, non-ASCII, non-strings in lists), what they give item
        by item."""
        rng = random.Random(5)
        for _ in range(400):
            value = random_value(rng, scalars=rng.random() < 0.3)
            for function in (check_samp_value, from_xmlrpc, message_size):
                self.assertEqual(outcome_of(function, value), self.plain(function, value))

    def test_check_names_bad_row(self):
        """A bad string in a long list is named by its index."""
        rows = [str(i) for i in range(1000)]
        rows[567] = "\x01"
        error = self.assertRaises(ValueError, check_samp_value, {"rows": rows}, "message")
        self.assertIn("message: rows[567]", str(error))

    def test_check_copies_convert_keeps(self):
        """Checked lists are new lists, equal to the old; a decoded list of
        strings is already SAMP data, and kept (a tuple becomes a list)."""
        rows = ["a", "b"]
        result = check_samp_value(rows)
        self.assertEqual(result, rows)
        self.assertIsNot(result, rows)
        self.assertIs(from_xmlrpc(rows), rows)
        self.assertEqual(from_xmlrpc(("a", "b")), rows)

    def test_message_size_same(self):
        """The size of a list of strings is the same counted in bulk or
        item by item (a non-string item forces the latter)."""
        rows = ["1", "22", "333"]
        self.assertEqual(message_size(rows + [["x"]]) - message_size(["x"]), message_size(rows))
