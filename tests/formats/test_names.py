"""Member names: which are safe, and which count as the same member."""

from __future__ import annotations

import re

import pytest

from odeion_archive._names import MAX_NAME_BYTES, check_name, check_unique, name_key
from odeion_archive.errors import UnsafeArchiveError


@pytest.mark.parametrize(
    "name",
    [
        "manifest.json",
        "users_auth/users.jsonl",
        "full_db/database.dump",
        "d\u00e9j\u00e0/\u00fcber.json",
        "a/b/c/d.e.f",
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
