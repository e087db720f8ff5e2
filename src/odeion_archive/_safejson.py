"""Strict JSON for untrusted archives.

Python's :mod:`json` accepts duplicate keys (the last one wins), ``NaN`` and
``Infinity``, and recurses without bound; it turns ``1e999`` into infinity and
raises a plain :class:`ValueError` for an integer of more than 4300 digits. An
archive is hostile input, so every JSON document the library reads from one goes
through :func:`loads`, which refuses all of these with
:class:`~odeion_archive.errors.UnsafeArchiveError` before anything is built from
the data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import jiter

from odeion_archive.errors import UnsafeArchiveError

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "dumps", "loads", "loads_many"]

#: Deepest nesting of arrays and objects accepted in a document.
MAX_DEPTH = 32
#: Longest integer accepted, in characters (sign included). Far beyond any value
#: the library reads (64-bit integers have at most 20), and below Python's own
#: limit on converting digits to an int.
MAX_INT_DIGITS = 1000


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise UnsafeArchiveError(
                f"{{what}}: the key {key!r} appears twice in one object; "
                "the archive was tampered with or damaged, use another archive"
            )
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise UnsafeArchiveError(
        f"{{what}}: the value {name} is not valid JSON; "
        "the archive was tampered with or damaged, use another archive"
    )


def _int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise UnsafeArchiveError(
            f"{{what}}: a number has {len(text)} digits, more than the {MAX_INT_DIGITS} "
            "accepted; the archive was tampered with or damaged, use another archive"
        )
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeArchiveError(
            f"{{what}}: the number {text[:40]} is too large to be represented; "
            "the archive was tampered with or damaged, use another archive"
        )
    return value


def _check_depth(text: str, max_depth: int, what: str) -> None:
    """Refuse nesting deeper than ``max_depth`` without recursing."""
    depth = 0
    in_string = False
    escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise UnsafeArchiveError(
                    f"{what}: JSON is nested deeper than {max_depth} levels; "
                    "the archive was tampered with or damaged, use another archive"
                )
        elif char in "]}":
            depth -= 1


#: One decoder for every document (building one per call costs more than a short line).
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_no_constants,
    parse_int=_int,
    parse_float=_float,
)


#: The decoder's scanner (set by its constructor): ``_SCAN(text, index)`` is ``(value, end)``.
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]


def _decode(text: str) -> Any:
    """What :func:`json.loads` does with text, with the one decoder."""
    if text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    return _DECODER.decode(text)


def loads(data: bytes | str, *, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one strict JSON document; ``what`` names it in error messages.

    Fast enough for every line of a JSON Lines member: the strict checks cost
    nothing until a document needs them.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise UnsafeArchiveError(
            f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "the archive was damaged, use another archive"
        ) from None
    if text.count("[") + text.count("{") > max_depth:
        # Only documents that could possibly be too deep pay for the scan.
        _check_depth(text, max_depth, what)
    try:
        # The decoder's own scanner, called directly, is what decode() calls for a
        # document with no whitespace around it (every line the library writes):
        # the same checks, without three Python calls per document. Anything else
        # (whitespace, a BOM, an error) takes the full path for its message.
        value, end = _SCAN(text, 0)
        if end == len(text):
            return value
    except (StopIteration, ValueError, UnsafeArchiveError):
        pass
    try:
        return _decode(text)
    except UnsafeArchiveError as exc:
        raise UnsafeArchiveError(str(exc).replace("{what}", what)) from None
    except json.JSONDecodeError as exc:
        raise UnsafeArchiveError(
            f"{what}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "the archive was damaged, use another archive"
        ) from None


#: Integers from this magnitude on may have more than :data:`MAX_INT_DIGITS` digits.
_LONG_INT = 10 ** (MAX_INT_DIGITS - 2)


def _plain(value: Any) -> bool:
    """Whether ``value`` holds no float and no integer near :data:`MAX_INT_DIGITS` digits.

    Those are the only values jiter accepts that :func:`loads` may refuse: jiter
    turns ``1e999`` into infinity and reads integers of up to 4300 digits.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is not int or not -_LONG_INT < item < _LONG_INT:
            return False
    return True


def loads_many(data: bytes, *, what: str) -> Any:
    """:func:`loads` for one of many short documents: the same documents accepted
    with the same values, and the same errors, in about half the time.

    jiter (pydantic's Rust parser) refuses duplicate keys, ``NaN`` and text that
    is not UTF-8 on its own. Every document it refuses, or accepts with a float
    or a very long integer in it, or that may be nested too deeply, is judged
    again by :func:`loads`, which gives the value or the error: so documents
    only jiter refuses (a lone surrogate written as an escape) are still read,
    and every error message is :func:`loads`'s.
    """
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH:
        return loads(data, what=what)
    try:
        value = jiter.from_json(
            data, allow_inf_nan=False, cache_mode="keys", catch_duplicate_keys=True
        )
    except ValueError:
        return loads(data, what=what)
    if not _plain(value):
        return loads(data, what=what)
    return value


def dumps(value: Any) -> bytes:
    """Serialize deterministically: sorted keys, no NaN, UTF-8, compact."""
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode("utf-8")
