# -*- test-case-name: tests.test_oneshot -*-
"""
What the ``sampy-twisted`` command prints and its defaults, shared by the
full command (:mod:`._cli`, on Twisted) and the one-shot commands that run
without a reactor (:mod:`._oneshot`), so that both print the same lines.
Imports nothing but the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_WAIT",
    "DISCONNECT_TIMEOUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PROGRAM",
    "describe",
    "failed",
    "label",
    "match_targets",
    "natural",
    "not_found",
    "timed",
]

PROGRAM = "sampy-twisted"

DEFAULT_WAIT = 10.0
"""Seconds ``send`` and ``ping`` wait for each response by default."""

DISCONNECT_TIMEOUT = 5.0
"""Seconds a command waits for the hub while unregistering at its end."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_OK = "samp.ok"
_WARNING = "samp.warning"


def as_json(value: object) -> str:
    """*value* as one line of JSON, keys sorted, ASCII only."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def natural(client_id: str) -> list[int | str]:
    """A sort key putting ``c2`` before ``c10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", client_id)]


def label(client_id: str, names: Mapping[str, str | None]) -> str:
    """``id (samp.name)``, or the id alone for a client without a name."""
    name = names.get(client_id)
    return f"{client_id} ({name})" if name else client_id


def describe(response: dict[str, Any]) -> str:
    """
    A response in one line: its status, the error text unless it is
    ``samp.ok``, and the result unless it is ``samp.error``.
    """
    status = response.get("samp.status", "?")
    text = str(status)
    error = response.get("samp.error")
    if status != _OK and isinstance(error, dict):
        text += f": {error.get('samp.errortxt', '')}"
    if status in (_OK, _WARNING):
        text += f" {as_json(response.get('samp.result', {}))}"
    return text


def timed(text: str, seconds: float) -> str:
    """*text* with the *seconds* taken, in milliseconds."""
    return f"{text} ({seconds * 1000:.0f} ms)"


def hub_alive(url: str, seconds: float) -> str:
    """What ``ping`` prints for a hub that answered in *seconds*."""
    return timed(f"hub at {url}: alive", seconds)


def no_response(who: str, wait: float) -> str:
    """The outcome of a call to *who* unanswered within *wait* seconds."""
    return f"{who}: no response within {wait:g} s"


def refused(who: str, why: str) -> str:
    """The outcome of a call to *who* the hub refused, saying *why*."""
    return f"{who}: refused by the hub: {why}"


def match_targets(targets: list[str], ids: list[str], names: Mapping[str, str | None]) -> list[str]:
    """
    The ids *targets* stand for, in order and without repeats: each an id
    in *ids*, or a ``samp.name`` in *names* (any case; every client of that
    name, in id order).

    :raises LookupError: a target matches no client; its argument is the
        line saying so.
    """
    found: list[str] = []
    for target in targets:
        if target in ids:
            matches = [target]
        else:
            wanted = target.casefold()
            matches = sorted(
                (cid for cid, name in names.items() if name is not None and name.casefold() == wanted),
                key=natural,
            )
        if not matches:
            raise LookupError(not_found(target))
        found.extend(cid for cid in matches if cid not in found)
    return found


def not_found(target: str) -> str:
    """The error for a ``--to`` or ``ping`` target matching no client."""
    return f"no registered client is named {target!r} or has that id"


def failed(command: str, message: str) -> str:
    """The line on stderr for *command* failing with *message*."""
    return f"{PROGRAM} {command}: {message}"
