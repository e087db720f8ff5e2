"""Member names: which are safe, and which count as the same member."""

from __future__ import annotations

import io
import re

import pytest

from odeion_archive._names import MAX_NAME_BYTES, check_name, check_unique, name_key
from odeion_archive.errors import UnsafeArchiveError
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat


@pytest.mark.parametrize(
    "name",
    [
        "manifest.json",
        "users_auth/users.jsonl",
        "full_db/database.dump",
        "a/b/c/d.e.f",
        "full_db/pg-18+1_x.dump",
        "console/connect.json",
        "a..b/c",
        "...x",
    ],
)
def test_plain_relative_names_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("a/../b", "'..'"),
        ("..", "'..'"),
        ("./a", "'.'"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("a\\b", "backslash"),
        ("a\0b", "U+0000"),
        ("a\x1fb", "U+001F"),
        ("a\x7fb", "U+007F"),
        ("a\u2028b", "U+2028"),
        ("C:/x", "drive"),
        # Bidirectional controls, zero-width characters and look-alikes of other scripts.
        ("users_auth/users.jsonl\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("users_auth/\u202elnosj.sresu", "U+202E"),
        ("users_auth/\u2066users.jsonl", "U+2066"),
        ("users_auth/u\u200bsers.jsonl", "U+200B (ZERO WIDTH SPACE)"),
        ("users_auth/u\u200dsers.jsonl", "U+200D"),
        ("users_auth/u\u200fsers.jsonl", "U+200F"),
        ("users_auth/u\u2060sers.jsonl", "U+2060"),
        ("users_auth/\ufeffusers.jsonl", "U+FEFF"),
        ("users_auth/us\u00adsers.jsonl", "U+00AD"),
        ("users_\u0430uth/users.jsonl", "U+0430 (CYRILLIC SMALL LETTER A)"),
        ("users_auth/\u0455ettings.json", "U+0455"),
        ("users_auth/\uff55sers.jsonl", "U+FF55"),
        ("d\u00e9j\u00e0/x.json", "U+00E9"),
        ("users_auth/a b", "U+0020"),
        ("users_auth/a:b", "U+003A"),
        ("users_auth/a*b", "U+002A"),
        # What some file systems strip or reserve.
        ("users_auth/users.jsonl.", "ends with a dot"),
        ("users_auth./users.jsonl", "ends with a dot"),
        ("users_auth/users.jsonl ", "U+0020"),
        ("users_auth/nul", "reserves for a device"),
        ("users_auth/COM1.jsonl", "reserves for a device"),
        ("x" * (MAX_NAME_BYTES + 1), "longer"),
        ("\u00e9" * (MAX_NAME_BYTES // 2 + 1), "longer"),
    ],
)
def test_unsafe_names_are_refused_saying_why(name: str, why: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=re.escape(why)) as caught:
        check_name(name)
    assert "use another archive" in str(caught.value)


def test_names_that_normalise_alike_are_duplicates() -> None:
    assert name_key("Users.JSONL") == name_key("users.jsonl")
    assert name_key("\uff55sers") == name_key("users")  # fullwidth u
    assert name_key("e\u0301") == name_key("\u00e9")  # combining accent
    assert name_key("stra\u00dfe") == name_key("STRASSE")
    check_unique(["a/b", "a/c", "b/b"])
    with pytest.raises(UnsafeArchiveError, match="same file"):
        check_unique(["a/Stra\u00dfe", "a/b", "a/strasse"])


def test_the_message_names_the_character_and_shows_it_escaped() -> None:
    with pytest.raises(UnsafeArchiveError) as caught:
        check_name("users_auth/users\u202ejsonl")
    message = str(caught.value)
    assert "\u202e" not in message  # printed as \u202e, not applied
    assert "\\u202e" in message
    assert "only ASCII letters, digits" in message


@pytest.mark.parametrize("name", ["users_auth/u\u200bsers.jsonl", "users_auth/a.", "x/\u202eb"])
def test_the_built_in_writers_refuse_what_the_readers_refuse(name: str) -> None:
    for fmt in (ZipFormat(), TarZstFormat()):
        writer = fmt.open_writer(io.BytesIO())
        with pytest.raises(UnsafeArchiveError, match="member name"):
            writer.add(name, [b"x"])
