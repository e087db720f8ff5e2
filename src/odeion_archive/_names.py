"""Member names: what an archive may call its members, checked before any use.

A name comes from an untrusted container, so it is refused unless it is a plain
relative path: no absolute path, no ``..`` or ``.``, no empty part, no
backslash, no NUL or other control character. Two names that normalise to the
same key (NFKC, then casefold) are the same member for a case-insensitive or
normalising file system, so a reader refuses such duplicates too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from odeion_archive.errors import UnsafeArchiveError

__all__ = ["MAX_NAME_BYTES", "check_name", "check_unique", "name_key"]

#: Longest member name, in UTF-8 bytes.
MAX_NAME_BYTES = 1024

_ADVICE = "the archive was tampered with or damaged, use another archive"


def _refuse(name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"member name {name!r} {why}; {_ADVICE}")


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe relative member path, else raise.

    Raises :class:`~odeion_archive.errors.UnsafeArchiveError`.
    """
    if not name:
        raise _refuse(name, "is empty")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise _refuse(name[:64] + "...", f"is longer than {MAX_NAME_BYTES} bytes")
    for char in name:
        if char == "\\":
            raise _refuse(name, "contains a backslash")
        category = unicodedata.category(char)
        if category in {"Cc", "Cs"} or char in "\u2028\u2029":
            raise _refuse(name, f"contains the control character U+{ord(char):04X}")
    if name.startswith("/"):
        raise _refuse(name, "is an absolute path")
    if len(name) >= 2 and name[1] == ":":
        raise _refuse(name, "starts with a drive letter")
    for part in name.split("/"):
        if part in {"", ".", ".."}:
            raise _refuse(name, f"has a {part or 'empty'!r} path part")
    return name


def name_key(name: str) -> str:
    """The key under which two names count as the same member (NFKC, casefolded)."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_unique(names: Iterable[str]) -> None:
    """Raise if two of ``names`` are equal after NFKC normalisation and casefolding."""
    seen: dict[str, str] = {}
    for name in names:
        key = name_key(name)
        if key in seen:
            raise UnsafeArchiveError(
                f"member names {seen[key]!r} and {name!r} name the same file once "
                f"normalised; {_ADVICE}"
            )
        seen[key] = name
