# -*- test-case-name: tests.test_encoding -*-
"""
SAMP's data rules: what may be sent, and the string forms of numbers.

SAMP knows only strings (of a restricted set of characters), lists and maps
with string keys.  Everything we send is checked here before it leaves, so a
bad value is an exception at the call site naming where the value sits,
instead of a fault from the hub (or, with some hubs, silence).  What we
receive is treated leniently: stray XML-RPC scalars become strings.
"""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias, cast, overload

from ._errors import SAMP_STATUS_ERROR, SAMP_STATUS_OK
from ._verbatim import VerbatimStrings

__all__ = [
    "check_samp_value",
    "decode_boolean",
    "decode_float",
    "decode_int",
    "encode_boolean",
    "encode_float",
    "encode_int",
    "error_response",
    "from_xmlrpc",
    "legal_text",
    "make_message",
    "message_map",
    "ok_response",
    "timeout_seconds",
]

#: A value as SAMP carries it: a string, a list of values, or a map from
#: strings to values.
SAMPValue: TypeAlias = "str | list[SAMPValue] | dict[str, SAMPValue]"

# SAMP strings: TAB, LF, CR and 0x20-0x7f, nothing else.
_ILLEGAL_CHAR = re.compile(r"[^\t\n\r\x20-\x7f]")
_LEGAL_BYTES = bytes([0x09, 0x0A, 0x0D, *range(0x20, 0x80)])
_SAMP_INT = re.compile(r"[+-]?[0-9]+\Z")
_SAMP_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")


def legal_text(text: object, limit: int | None = None) -> str:
    """
    *text* with every character SAMP forbids replaced by ``?``, cut to
    *limit* characters: an error text built from anything (an exception, a
    peer's fault) can then always be sent.

    :param text: the text (or any object, turned into ``str``).
    :param int limit: the longest result, or ``None`` for no limit.
    :rtype: str
    """
    legal = _ILLEGAL_CHAR.sub("?", str(text))
    if limit is not None and len(legal) > limit:
        legal = legal[: limit - 3] + "..."
    return legal


def string_chunks(
    items: list[Any] | tuple[Any, ...], size: int = 4096
) -> Iterator[tuple[list[Any] | tuple[Any, ...], str]]:
    """
    *items*, *size* at a time, each piece with its strings joined: the
    checks, encoders and size estimates of long lists of strings (row
    lists) work on them in bulk, in C, a piece at a time while it is in
    the processor's cache.

    :raises TypeError: an item is not a string (found by the join).
    """
    for start in range(0, len(items), size):
        piece = items[start : start + size]
        yield piece, "".join(piece)


def _child(path: str, key: str) -> str:
    return key if not path else f"{path}[{key!r}]"


def _describe(path: str, what: str) -> str:
    return f"{what}: {path}" if path else what


def _all_legal(text: str) -> bool:
    """
    Whether *text* holds only characters SAMP allows: a long text (a list's
    rows, joined) is checked a few times quicker by a byte translation than
    by searching with ``_ILLEGAL_CHAR`` (whether a ``str`` is ASCII is
    known without a look); a short one quicker by the search.
    """
    if len(text) < 512:
        return _ILLEGAL_CHAR.search(text) is None
    return text.isascii() and not text.encode("ascii").translate(None, _LEGAL_BYTES)


def _check_string(value: str, path: str, what: str) -> None:
    bad = _ILLEGAL_CHAR.search(value)
    if bad is not None:
        raise ValueError(
            f"{_describe(path, what)} contains {bad.group()!r} at position "
            f"{bad.start()}: SAMP strings may hold only tab, LF, CR and "
            f"printable ASCII (0x20-0x7f)"
        )


def _convert(value: object, path: str, what: str) -> SAMPValue:
    if isinstance(value, str):
        _check_string(value, path, what)
        return value
    if isinstance(value, VerbatimStrings):
        # Its strings were checked as it was read; the hub passes it on.
        return cast(SAMPValue, value)
    if isinstance(value, dict):
        out: dict[str, SAMPValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{_describe(path, what)} has a key {key!r} of type "
                    f"{type(key).__name__}: SAMP map keys are strings"
                )
            _check_string(key, _child(path, key), what)
            out[key] = _convert(item, _child(path, key), what)
        return out
    if isinstance(value, (list, tuple)):
        try:
            if value and all(_all_legal(joined) for _, joined in string_chunks(value)):
                return list(value)  # a million rows checked in a few searches
        except TypeError:
            pass  # not only strings: the item that breaks the rules is named below
        return [
            _convert(item, f"{path}[{index}]" if path else f"[{index}]", what)
            for index, item in enumerate(value)
        ]
    hint = ""
    if isinstance(value, (bool, int, float)):
        hint = "; encode numbers and booleans with encode_int(), " \
               "encode_float() or encode_boolean()"
    raise TypeError(
        f"{_describe(path, what)} is {type(value).__name__} {value!r}, not a "
        f"SAMP value (str, list or dict){hint}"
    )


@overload
def check_samp_value(value: str, what: str = "value") -> str: ...


@overload
def check_samp_value(value: dict[str, Any], what: str = "value") -> dict[str, SAMPValue]: ...


@overload
def check_samp_value(value: object, what: str = "value") -> SAMPValue: ...


def check_samp_value(value: object, what: str = "value") -> SAMPValue:
    """
    Check that *value* may be sent over SAMP and return it in canonical form.

    Tuples become lists; everything else is returned as given.

    :param value: a string, or a list, tuple or dict of SAMP values.
    :param str what: what the value is (``"message"``, ``"metadata"``...),
        used in the error text together with the path of the bad item, as in
        ``message: samp.params['n']``.
    :raises TypeError: a value that is not a string, list or map (int, float,
        bool, None, bytes...), or a map key that is not a string.
    :raises ValueError: a string with a character SAMP does not allow.
    :return: the checked value.
    """
    return _convert(value, "", what)


def from_xmlrpc(value: object) -> SAMPValue:
    """
    Turn a value decoded from XML-RPC into SAMP types, leniently.

    Hubs and clients should send only strings, lists and maps, but some send
    XML-RPC ints, booleans or doubles; these become their SAMP string forms,
    and ``nil`` becomes an empty string.

    :param value: the decoded value.
    :return: the value built only of str, list and dict (a list of strings
        is returned as it is, not copied).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(k): from_xmlrpc(v) for k, v in value.items()}
    if isinstance(value, VerbatimStrings):
        return cast(SAMPValue, value.strings())
    if isinstance(value, (list, tuple)):
        try:
            for _ in string_chunks(value):
                pass
            # Only strings: a decoded list is the reader's own, not copied
            # (a million rows' copy would cost more than the check).
            return value if isinstance(value, list) else list(value)
        except TypeError:
            pass
        return [from_xmlrpc(item) for item in value]
    if isinstance(value, bool):
        return encode_boolean(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("ascii", "replace")
    return str(value)


def encode_int(value: int) -> str:
    """
    Encode an integer as a SAMP int string.

    :param int value: the integer (a bool is refused).
    :rtype: str
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"encode_int needs an int, not {type(value).__name__}")
    return str(value)


def decode_int(value: str) -> int:
    """
    Decode a SAMP int string.

    :param str value: text of the form ``[+-]digits``.
    :rtype: int
    :raises ValueError: text that is not a SAMP int.
    """
    if not isinstance(value, str) or not _SAMP_INT.match(value.strip()):
        raise ValueError(f"{value!r} is not a SAMP int")
    return int(value)


def encode_float(value: float) -> str:
    """
    Encode a real number as a SAMP float string.

    :param float value: a finite number; NaN and infinities cannot be encoded.
    :rtype: str
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"encode_float needs a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{value!r} cannot be encoded as a SAMP float")
    return repr(float(value))


def decode_float(value: str) -> float:
    """
    Decode a SAMP float string.

    :param str value: text such as ``"1.5"``, ``"-2e3"`` or ``".5"``.
    :rtype: float
    :raises ValueError: text that is not a SAMP float.
    """
    if not isinstance(value, str) or not _SAMP_FLOAT.match(value.strip()):
        raise ValueError(f"{value!r} is not a SAMP float")
    return float(value)


def encode_boolean(value: object) -> str:
    """
    Encode a truth value as a SAMP boolean string, ``"1"`` or ``"0"``.

    :rtype: str
    """
    return "1" if value else "0"


def decode_boolean(value: str) -> bool:
    """
    Decode a SAMP boolean string, leniently as JSAMP does.

    A SAMP int other than zero is true; zero, and text that is not a SAMP int,
    is false.

    :param str value: the SAMP boolean.
    :rtype: bool
    """
    try:
        return decode_int(value) != 0
    except ValueError:
        return False


def make_message(
    mtype: str,
    params: dict[str, Any] | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, SAMPValue]:
    """
    Build and check a SAMP message map.

    :param str mtype: the MType, e.g. ``"table.load.votable"``.
    :param dict params: the ``samp.params`` map (empty when not given).
    :param dict extra: further top-level keys of the message.
    :rtype: dict
    """
    message: dict[str, SAMPValue] = check_samp_value(message_map(mtype, params, extra), "message")
    return message


def message_map(
    mtype: str,
    params: Mapping[str, Any] | None = None,
    extra: Mapping[str, object] | None = None,
) -> dict[str, Any]:
    """
    Build a SAMP message map without checking it, for senders whose hub
    proxy checks every message once before it is encoded.

    :param str mtype: the MType.
    :param dict params: the ``samp.params`` map (empty when not given).
    :param dict extra: further top-level keys of the message.
    :rtype: dict
    """
    message = dict(extra or {})
    message["samp.mtype"] = mtype
    message["samp.params"] = params if params is not None else {}
    return message


def ok_response(result: Any) -> dict[str, Any]:
    """
    Build a ``samp.ok`` response map.

    :param dict result: the ``samp.result`` map.
    :rtype: dict
    """
    return {"samp.status": SAMP_STATUS_OK, "samp.result": result}


def error_response(text: object, exc: BaseException | None = None) -> dict[str, Any]:
    """
    Build a ``samp.error`` response map.

    :param str text: the ``samp.errortxt``.
    :param BaseException exc: the exception behind it, whose class and
        traceback fill ``samp.code`` and ``samp.debugtxt``.
    :rtype: dict
    """
    error = {"samp.errortxt": legal_text(text)}
    if exc is not None:
        error["samp.code"] = type(exc).__name__
        error["samp.debugtxt"] = legal_text(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        )
    return {"samp.status": SAMP_STATUS_ERROR, "samp.error": error}


def timeout_seconds(timeout: str | float) -> float | None:
    """
    Read a SAMP timeout, as a SAMP int string or a number of seconds.

    :param timeout: e.g. ``"10"``, ``10`` or ``2.5``; zero or less means no
        timeout.
    :return: the timeout in seconds, or ``None`` for no timeout.
    :rtype: float or None
    :raises ValueError: text that is not a number, or NaN.
    :raises TypeError: anything but a string or a number.
    """
    if isinstance(timeout, str):
        seconds = decode_float(timeout)
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise TypeError(
            f"timeout must be a SAMP int string or a number of seconds, "
            f"not {type(timeout).__name__} {timeout!r}"
        )
    if math.isnan(seconds):
        raise ValueError("timeout is NaN")
    return seconds if seconds > 0 else None
