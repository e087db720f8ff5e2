"""Member names: what an archive may call its members, checked before any use.

A name comes from an untrusted container, so it is refused unless it is a plain
relative path made of a conservative ASCII set: parts of ASCII letters, digits,
``.``, ``_``, ``-`` and ``+``, separated by ``/``. That rules out, besides
absolute paths, ``..`` or ``.``, empty parts, backslashes and control
characters, every character that can make two different names look alike or
hide part of a name: bidirectional controls (U+202E...), zero-width characters
(U+200B...U+200F, U+2060, U+FEFF...), look-alike letters of other scripts
(Cyrillic U+0430 for Latin ``a``...), fullwidth forms. A part may not end with
a dot (``a.`` and ``a`` are the same file on Windows) nor be a Windows device
name (``con``, ``nul``, ``com1``...). Readers and writers apply the same
rule, so the library never writes a name it would refuse to read.

Two names that normalise to the same key (NFKC, then casefold) are the same
member for a case-insensitive or normalising file system, so a reader refuses
such duplicates too.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from odeion_archive.errors import UnsafeArchiveError

__all__ = [
    "ADVICE",
    "MAX_NAME_BYTES",
    "NAME_CHARACTERS",
    "check_name",
    "check_unique",
    "name_key",
    "name_problem",
]

#: Longest member name, in UTF-8 bytes.
MAX_NAME_BYTES = 1024

#: The characters a part of a member name may hold (parts are separated by ``/``).
NAME_CHARACTERS = "ASCII letters, digits, '.', '_', '-' and '+'"

_PART_CHARACTER = re.compile(r"[A-Za-z0-9._+-]")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9._+/-]+")
#: Device names that Windows reserves, with or without an extension.
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{n}" for n in range(10)} | {f"lpt{n}" for n in range(10)}
)

#: The advice that ends every message about a damaged or hostile container (formats share it).
ADVICE = "the archive is damaged or was tampered with, use another archive"


def _describe(char: str) -> str:
    label = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({label})" if label else "")


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a member name (``"is empty"``...), or ``None``."""
    if not name:
        return "is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    if _PLAIN_NAME.fullmatch(name):  # the usual case, in one pass: only the parts to check
        return _part_problem(name.split("/"))
    return _character_problem(name)


def _character_problem(name: str) -> str | None:
    """The problem of a name that holds a character outside the plain set."""
    for char in name:
        if char == "\\":
            return "contains a backslash"
        if unicodedata.category(char) in {"Cc", "Cs", "Zl", "Zp"}:
            return f"contains the control character U+{ord(char):04X}"
    if name.startswith("/"):
        return "is an absolute path"
    if len(name) >= 2 and name[1] == ":":
        return "starts with a drive letter"
    parts = name.split("/")
    for part in parts:
        if part in {"", ".", ".."}:
            return f"has a {part or 'empty'!r} path part"
    for char in name:
        if char != "/" and not _PART_CHARACTER.fullmatch(char):
            return (
                f"contains the character {_describe(char)}; member names may hold only "
                f"{NAME_CHARACTERS}, with '/' between parts"
            )
    return _part_problem(parts)  # not reached: some character is outside the set


def _part_problem(parts: list[str]) -> str | None:
    """The problem of a name of plain characters, split into its parts."""
    if not parts[0]:
        return "is an absolute path"
    for part in parts:
        if part in {"", ".", ".."}:
            return f"has a {part or 'empty'!r} path part"
        if part.endswith("."):
            return f"has a part {part!r} that ends with a dot (the same file as without it)"
        if part.split(".", 1)[0].lower() in _WINDOWS_DEVICES:
            return f"has a part {part!r} that Windows reserves for a device"
    return None


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe relative member path, else raise.

    Raises :class:`~odeion_archive.errors.UnsafeArchiveError` saying what is wrong.
    """
    problem = name_problem(name)
    if problem is not None:
        shown = name if len(name) <= 200 else name[:64] + "..."
        # repr() escapes control, format (bidi, zero-width) and other unprintable characters.
        raise UnsafeArchiveError(f"member name {shown!r} {problem}; {ADVICE}")
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
                f"normalised; {ADVICE}"
            )
        seen[key] = name
