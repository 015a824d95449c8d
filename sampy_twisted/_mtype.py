# -*- test-case-name: tests.test_mtype -*-
"""
MType syntax and subscription pattern matching.

A pattern is an MType, ``*``, or an MType followed by ``.*``.  ``a.b.*``
matches ``a.b.c`` and ``a.b.c.d`` but neither ``a.b`` nor ``a.bx``
(astropy's rule, and the strict reading of the standard).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeGuard

_ATOM = r"[0-9A-Za-z_-]+"
_MTYPE = re.compile(rf"{_ATOM}(\.{_ATOM})*\Z")
_PATTERN = re.compile(rf"(\*|{_ATOM}(\.{_ATOM})*(\.\*)?)\Z")


def is_mtype(text: object) -> TypeGuard[str]:
    """Whether *text* is a syntactically valid MType (no wildcard)."""
    return isinstance(text, str) and _MTYPE.match(text) is not None


def is_mtype_pattern(text: object) -> TypeGuard[str]:
    """Whether *text* is a valid subscription pattern (MType or wildcard)."""
    return isinstance(text, str) and _PATTERN.match(text) is not None


def check_mtype_pattern(text: object) -> str:
    """
    Check a subscription pattern and return it.

    :raises ValueError: not an MType, ``*`` or ``prefix.*``.
    """
    if not is_mtype_pattern(text):
        raise ValueError(
            f"{text!r} is not an MType pattern (an MType such as "
            f"'table.load.votable', 'table.*' or '*')"
        )
    return text


def pattern_matches(pattern: str, mtype: str) -> bool:
    """Whether subscription *pattern* covers *mtype*."""
    if pattern == mtype or pattern == "*":
        return True
    if pattern.endswith(".*"):
        return mtype.startswith(pattern[:-1])
    return False


def specificity(pattern: str) -> int:
    """
    How specific a matching pattern is: an exact MType beats every wildcard,
    and a longer prefix beats a shorter one.
    """
    if pattern == "*":
        return 0
    if pattern.endswith(".*"):
        return pattern.count(".")
    return 10_000


def best_match(patterns: Iterable[str], mtype: str) -> str | None:
    """
    The most specific of *patterns* that matches *mtype*, or ``None``.

    :param patterns: an iterable of subscription patterns.
    """
    best = None
    for pattern in patterns:
        if pattern_matches(pattern, mtype) and (
            best is None or specificity(pattern) > specificity(best)
        ):
            best = pattern
    return best
