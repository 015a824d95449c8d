# -*- test-case-name: tests.test_webconsent -*-
"""
Tests for :mod:`sampy_twisted._webconsent` (the terminal prompt, on a
pseudo-terminal of the test's own) and the hub's ``--web-*`` options.
"""

import os

from twisted.internet import reactor
from twisted.trial import unittest

from sampy_twisted._tap_hub import HubOptions, make_hub
from sampy_twisted._webconsent import ask_terminal, consent_for, prompt_text, terminal_consent
from sampy_twisted._webprofile import WebConsentRequest

REQUEST = WebConsentRequest("Evil\x1b[2JPage", "https://example.org", None, "127.0.0.1")


class TerminalTests(unittest.TestCase):
    def pty(self, answer):
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        if answer is not None:
            os.write(master, answer)
        return master, os.ttyname(slave)

    def test_yes(self):
        _, name = self.pty(b"y\n")
        self.assertTrue(ask_terminal("ok? ", 10, name))

    def test_no_and_other(self):
        for answer in (b"n\n", b"\n", b"yess\n"):
            _, name = self.pty(answer)
            self.assertFalse(ask_terminal("ok? ", 10, name), answer)

    def test_no_terminal(self):
        self.assertFalse(ask_terminal("ok? ", 10, os.path.join(self.mktemp(), "no-tty")))

    def test_no_answer_in_time(self):
        _, name = self.pty(None)
        self.assertFalse(ask_terminal("ok? ", 0.2, name))

    def test_prompt_shows_name_and_origin_cleaned(self):
        text = prompt_text(REQUEST)
        self.assertIn("https://example.org", text)
        self.assertIn("Evil?[2JPage", text)
        self.assertNotIn("\x1b", text)
        self.assertIn("local file", prompt_text(WebConsentRequest("p", "null", None, "::1")))

    def test_origin_and_referer_disagree(self):
        agree = WebConsentRequest("p", "https://a.org", "https://a.org/page.html", "127.0.0.1")
        disagree = WebConsentRequest("p", "https://a.org", "https://b.org/page.html", "127.0.0.1")
        self.assertNotIn("Warning", prompt_text(agree))
        self.assertIn("Warning", prompt_text(disagree))

    def test_threaded_consent_does_not_block(self):
        master, name = self.pty(None)
        d = terminal_consent(reactor, timeout=30, tty=name)(REQUEST)
        self.assertFalse(d.called)  # the reactor goes on; the user answers later
        os.write(master, b"yes\n")
        return d.addCallback(self.assertTrue)

    def test_choices(self):
        self.assertTrue(consent_for("accept", reactor)(REQUEST))
        self.assertFalse(consent_for("deny", reactor)(REQUEST))
        self.assertRaises(ValueError, consent_for, "maybe", reactor)


class OptionsTests(unittest.TestCase):
    def test_defaults_off(self):
        options = HubOptions()
        options.parseOptions([])
        hub = make_hub(options, reactor)
        self.assertIsNone(hub._web)

    def test_web_options(self):
        options = HubOptions()
        options.parseOptions(["--web-profile", "--web-port", "0", "--web-consent", "ACCEPT"])
        hub = make_hub(options, reactor)
        self.assertIsNotNone(hub._web)
        self.assertEqual(hub._web_port, 0)
        self.assertEqual(options["web-consent"], "accept")

    def test_bad_consent_choice(self):
        options = HubOptions()
        self.assertRaises(Exception, options.parseOptions, ["--web-consent", "maybe"])

    def test_bad_web_port(self):
        options = HubOptions()
        with self.assertRaises(Exception) as caught:
            options.parseOptions(["--web-profile", "--web-port", "70000"])
        self.assertIn("--web-port", str(caught.exception))
