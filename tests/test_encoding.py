# -*- test-case-name: tests.test_encoding -*-
"""
Tests for SAMP's data rules in L{sampy_twisted._encoding}.
"""

from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted import (
    SAMPCallTimeout,
    SAMPProxyError,
    check_samp_value,
    decode_boolean,
    decode_float,
    decode_int,
    encode_boolean,
    encode_float,
    encode_int,
    make_message,
)
from sampy_twisted._encoding import from_xmlrpc, legal_text, timeout_seconds


class CheckSAMPValueTests(SynchronousTestCase):
    """
    Only strings of legal characters, lists and string-keyed maps pass.
    """

    def test_legal_values_pass(self):
        """Strings, lists and maps nest freely; tuples become lists."""
        value = {"a": ["x", ("y", {"b": ""})], "c": "\t\n\r ~"}
        self.assertEqual(
            check_samp_value(value), {"a": ["x", ["y", {"b": ""}]], "c": "\t\n\r ~"}
        )

    def assertRefused(self, exc_type, value, *fragments):
        exc = self.assertRaises(exc_type, check_samp_value, value, "message")
        for fragment in fragments:
            self.assertIn(fragment, str(exc))

    def test_int_names_path(self):
        """An int is a TypeError naming where it is and how to encode it."""
        self.assertRefused(
            TypeError,
            {"samp.mtype": "x", "samp.params": {"n": 7}},
            "message: samp.params['n']",
            "int",
            "encode_int",
        )

    def test_float_bool_none_bytes(self):
        """Floats, booleans, None and bytes are refused with their type."""
        for bad, name in [(1.5, "float"), (True, "bool"), (None, "NoneType"), (b"x", "bytes")]:
            self.assertRefused(TypeError, {"samp.params": {"v": bad}}, "samp.params['v']", name)

    def test_list_index_in_path(self):
        """Items of lists are named by index."""
        self.assertRefused(TypeError, {"rows": ["0", 1]}, "rows[1]")

    def test_long_lists_every_character(self):
        """A long list of strings is checked in bulk: with any one character
        anywhere in it, it passes or is refused exactly as its items are,
        the refusal naming the item."""
        rows = [str(i) for i in range(10_000)]
        for code in [*range(0x100), 0x2028, 0xFFFE, 0x1F600]:
            for index in (0, 4095, 4096, 9999):
                bad = rows[:index] + [f"{rows[index]}{chr(code)}"] + rows[index + 1:]
                try:
                    check_samp_value(bad[index])
                except ValueError:
                    self.assertRefused(ValueError, {"rows": bad}, f"rows[{index}]")
                else:
                    self.assertEqual(check_samp_value({"rows": bad}), {"rows": bad})

    def test_non_ascii(self):
        """Non-ASCII text is a ValueError naming the character and place."""
        self.assertRefused(ValueError, {"samp.params": {"name": "caf\xe9"}}, "samp.params['name']", "'é'", "position 3")

    def test_control_character(self):
        """Control characters other than tab, LF and CR are refused."""
        self.assertRefused(ValueError, {"k": "a\x00b"}, "k")
        self.assertRefused(ValueError, "a\x1bb", "message")

    def test_non_string_key(self):
        """Map keys must be strings."""
        self.assertRefused(TypeError, {"samp.params": {1: "x"}}, "key 1", "samp.params")

    def test_illegal_key_characters(self):
        """Map keys obey the character rule too."""
        self.assertRefused(ValueError, {"k\xe9": "x"}, "k")

    def test_top_level_scalar(self):
        """A bare non-SAMP value is named by what it is."""
        exc = self.assertRaises(TypeError, check_samp_value, 3, "timeout")
        self.assertIn("timeout is int 3", str(exc))


class ScalarEncodingTests(SynchronousTestCase):
    """
    SAMP int, float and boolean strings.
    """

    def test_int(self):
        self.assertEqual(encode_int(-42), "-42")
        self.assertEqual(decode_int("+17"), 17)
        self.assertRaises(ValueError, decode_int, "1.5")
        self.assertRaises(ValueError, decode_int, "")
        self.assertRaises(TypeError, encode_int, True)
        self.assertRaises(TypeError, encode_int, 1.0)

    def test_float(self):
        self.assertEqual(decode_float(encode_float(0.1)), 0.1)
        for text, value in [("1", 1.0), ("1.", 1.0), (".5", 0.5), ("-2e3", -2000.0), ("+1.5E-1", 0.15)]:
            self.assertEqual(decode_float(text), value)
        for text in ["nan", "inf", "1e", "", "e3", "1.2.3"]:
            self.assertRaises(ValueError, decode_float, text)
        self.assertRaises(ValueError, encode_float, float("nan"))
        self.assertRaises(ValueError, encode_float, float("inf"))
        self.assertRaises(TypeError, encode_float, "1")

    def test_boolean(self):
        self.assertEqual(encode_boolean(True), "1")
        self.assertEqual(encode_boolean(0), "0")
        self.assertTrue(decode_boolean("1"))
        self.assertTrue(decode_boolean("-3"))
        self.assertFalse(decode_boolean("0"))
        self.assertFalse(decode_boolean("true"))

    def test_timeout_seconds(self):
        """Timeouts are SAMP ints or numbers; zero or less means none."""
        self.assertEqual(timeout_seconds("10"), 10.0)
        self.assertEqual(timeout_seconds(2.5), 2.5)
        self.assertIsNone(timeout_seconds("0"))
        self.assertIsNone(timeout_seconds(-1))
        self.assertRaises(ValueError, timeout_seconds, "soon")
        self.assertRaises(TypeError, timeout_seconds, None)
        self.assertRaises(TypeError, timeout_seconds, True)
        self.assertRaises(ValueError, timeout_seconds, float("nan"))


class MessageTests(SynchronousTestCase):
    """
    L{make_message} and lenient decoding.
    """

    def test_make_message(self):
        self.assertEqual(
            make_message("x.y", {"a": "1"}, {"extra": "e"}),
            {"samp.mtype": "x.y", "samp.params": {"a": "1"}, "extra": "e"},
        )
        self.assertEqual(make_message("x.y"), {"samp.mtype": "x.y", "samp.params": {}})
        self.assertRaises(TypeError, make_message, "x.y", {"a": 1})

    def test_from_xmlrpc(self):
        """Stray XML-RPC scalars become SAMP strings."""
        self.assertEqual(
            from_xmlrpc({"i": 3, "b": True, "f": 1.5, "n": None, "l": (1, "x")}),
            {"i": "3", "b": "1", "f": "1.5", "n": "", "l": ["1", "x"]},
        )


class ErrorTests(SynchronousTestCase):
    """
    The exception classes.
    """

    def test_proxy_error_text(self):
        error = SAMPProxyError(3, "bad thing")
        self.assertEqual(str(error), "bad thing")
        self.assertEqual(error.faultCode, 3)

    def test_call_timeout(self):
        error = SAMPCallTimeout(2.5, "c3")
        self.assertIsInstance(error, SAMPProxyError)
        self.assertEqual(error.timeout, 2.5)
        self.assertIn("c3", str(error))
        self.assertIn("2.5 s", str(error))


class LegalTextTests(SynchronousTestCase):
    """legal_text makes any text sendable as a SAMP string."""

    def test_illegal_characters_replaced(self):
        self.assertEqual(legal_text("caf\xe9\x00\tok\n"), "caf??\tok\n")
        self.assertEqual(legal_text(ValueError("x")), "x")

    def test_limit(self):
        self.assertEqual(legal_text("abcdefgh", limit=6), "abc...")
        self.assertEqual(legal_text("abc", limit=6), "abc")
