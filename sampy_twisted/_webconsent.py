# -*- test-case-name: tests.test_webconsent -*-
"""
Consent functions for the Web Profile: ``--web-consent ask|accept|deny``.

:func:`terminal_consent` asks on the controlling terminal (``/dev/tty``),
in a daemon thread so the reactor never waits for the user, and refuses
when there is no terminal or no answer within a time limit.  What it shows
of the page's claims is cleaned of control characters, so a page cannot
write terminal escape sequences.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any, Union

from twisted.internet import defer
from twisted.logger import Logger

from ._webprofile import WebConsentRequest

__all__ = ["CONSENT_CHOICES", "consent_for", "terminal_consent"]

#: Seconds the terminal prompt waits for an answer before refusing.
DEFAULT_PROMPT_TIMEOUT = 120.0

_log = Logger()

Consent = Callable[[WebConsentRequest], Union[bool, "defer.Deferred[bool]"]]


def _clean(text: str | None, limit: int = 200) -> str:
    if text is None:
        return "(none)"
    shown = "".join(c if c.isprintable() else "?" for c in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def prompt_text(request: WebConsentRequest) -> str:
    """The question the terminal shows for *request*."""
    origin = request.origin
    if origin == "null":
        origin = "null (a page opened from a local file, or a sandboxed page)"
    warning = ""
    if request.origin and request.referer and not request.referer.startswith(request.origin + "/"):
        warning = "  Warning: the page's address is not on its origin; trust the origin.\n"
    return (
        "\nA web page asks to register with the SAMP hub (Web Profile).\n"
        f"  Name it declares (unverified): {_clean(request.name)}\n"
        f"  Origin: {_clean(origin)}\n"
        f"  Page: {_clean(request.referer)}\n"
        f"{warning}"
        "Once registered it can message your desktop SAMP applications and read\n"
        "the files they mention.  Allow it? [y/N] "
    )


def ask_terminal(text: str, timeout: float, tty: str = "/dev/tty") -> bool:
    """
    Ask *text* on the terminal *tty* and wait at most *timeout* seconds
    for ``y``/``yes`` (blocking: run it in a thread).

    :return: whether the answer was yes; ``False`` without a terminal.
    """
    try:
        fd = os.open(tty, os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return False
    try:
        os.write(fd, text.encode("utf-8", "replace"))
        answer = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in answer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.write(fd, b"\nNo answer: refused.\n")
                return False
            ready, _, _ = select.select([fd], [], [], min(remaining, 1.0))
            if ready:
                chunk = os.read(fd, 256)
                if not chunk:
                    return False
                answer += chunk
        return answer.split(b"\n")[0].strip().lower() in (b"y", b"yes")
    except OSError:
        return False
    finally:
        os.close(fd)


def terminal_consent(
    reactor: Any, timeout: float = DEFAULT_PROMPT_TIMEOUT, tty: str = "/dev/tty"
) -> Consent:
    """
    A consent function asking on the controlling terminal.

    :param reactor: the reactor (``IReactorFromThreads``) the answer is
        handed back through.
    :param float timeout: seconds to wait for an answer (then: no).
    :param str tty: the terminal device.
    """

    def consent(request: WebConsentRequest) -> defer.Deferred[bool]:
        answer: defer.Deferred[bool] = defer.Deferred()

        def ask() -> None:
            try:
                yes = ask_terminal(prompt_text(request), timeout, tty)
            except Exception:
                yes = False
            reactor.callFromThread(answer.callback, yes)

        # A daemon thread: a prompt nobody answers never holds up the
        # hub's exit, as a thread pool's thread would.
        threading.Thread(target=ask, name="SAMP web consent", daemon=True).start()
        return answer

    return consent


def _accept(request: WebConsentRequest) -> bool:
    return True


def _deny(request: WebConsentRequest) -> bool:
    return False


CONSENT_CHOICES = ("ask", "accept", "deny")


def consent_for(choice: str, reactor: Any) -> Consent:
    """
    The consent function of a ``--web-consent`` choice.

    :param str choice: ``ask``, ``accept`` or ``deny``.
    :param reactor: the reactor, for ``ask``.
    """
    if choice == "accept":
        return _accept
    if choice == "deny":
        return _deny
    if choice == "ask":
        return terminal_consent(reactor)
    raise ValueError(f"--web-consent must be ask, accept or deny, not {choice!r}")
