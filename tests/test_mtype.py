# -*- test-case-name: tests.test_mtype -*-
"""
Tests for MType patterns in L{sampy_twisted._mtype}.
"""

from twisted.trial.unittest import SynchronousTestCase

from sampy_twisted._mtype import best_match, check_mtype_pattern, is_mtype, is_mtype_pattern, pattern_matches


class PatternTests(SynchronousTestCase):
    """
    Wildcards match whole trailing atoms only.
    """

    def test_syntax(self):
        for good in ["*", "a", "a.b", "table.load.votable", "x-samp.query.by-meta", "a.*"]:
            self.assertTrue(is_mtype_pattern(good), good)
        for bad in ["", "a.", ".a", "a..b", "a.*.b", "a*", "*.a", "a b", 3]:
            self.assertFalse(is_mtype_pattern(bad), bad)
        self.assertFalse(is_mtype("a.*"))
        self.assertRaises(ValueError, check_mtype_pattern, "a.b*")

    def test_matching(self):
        self.assertTrue(pattern_matches("*", "a.b"))
        self.assertTrue(pattern_matches("a.b.*", "a.b.c"))
        self.assertTrue(pattern_matches("a.b.*", "a.b.c.d"))
        self.assertFalse(pattern_matches("a.b.*", "a.b"))
        self.assertFalse(pattern_matches("a.b.*", "a.bx"))
        self.assertFalse(pattern_matches("a.b", "a.b.c"))

    def test_most_specific(self):
        patterns = ["*", "table.*", "table.load.*", "table.load.votable"]
        self.assertEqual(best_match(patterns, "table.load.votable"), "table.load.votable")
        self.assertEqual(best_match(patterns, "table.load.fits"), "table.load.*")
        self.assertEqual(best_match(patterns, "table.highlight.row"), "table.*")
        self.assertEqual(best_match(patterns, "image.load.fits"), "*")
        self.assertIsNone(best_match(["table.*"], "image.load.fits"))
