"""Strict JSON: the quick path and the full path accept and refuse the same documents."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odeion_archive import _safejson
from odeion_archive.errors import UnsafeArchiveError

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@given(value=_VALUES, compact=st.booleans())
def test_documents_read_back_as_python_reads_them(value: Any, compact: bool) -> None:
    text = json.dumps(value, separators=(",", ":") if compact else None)
    assert _safejson.loads(text, what="doc") == json.loads(text)
    assert _safejson.loads(text.encode(), what="doc") == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        ' {"a": 1}',
        '{"a": 1} ',
        '\n{"a": [1, 2]}\t',
        "[]",
        '"x"',
    ],
)
def test_whitespace_around_a_document_is_accepted(text: str) -> None:
    assert _safejson.loads(text, what="doc") == json.loads(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a":1,"a":2}', "appears twice"),
        ('{"p":{"x":{"k":1,"k":1}}}', "appears twice"),
        ('[{"a":1},{"b":{"c":2,"c":3}}]', "appears twice"),
        ('{"a":NaN}', "NaN is not valid JSON"),
        ('{"a":-Infinity}', "-Infinity is not valid JSON"),
        ('{"a":1e999}', "too large to be represented"),
        ('{"a":' + "9" * 1001 + "}", "more than the 1000 accepted"),
        ("[" * 33 + "]" * 33, "nested deeper than 32"),
        ('{"a":1}{"b":2}', "Extra data"),
        ('{"a":1},{"b":2}', "Extra data"),
        ('{"a":1} x', "Extra data"),
        ('\ufeff{"a":1}', "BOM"),
        ('{"a":"tab\there"}', "Invalid control character"),
        ('{"a":1,}', "invalid JSON"),
        ("", "invalid JSON"),
        ("   ", "invalid JSON"),
    ],
)
def test_hostile_documents_are_refused_with_their_reason(text: str, message: str) -> None:
    with pytest.raises(UnsafeArchiveError, match=message) as info:
        _safejson.loads(text, what="member line 3")
    assert str(info.value).startswith("member line 3: ")
    assert "{what}" not in str(info.value)


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(UnsafeArchiveError, match="not UTF-8"):
        _safejson.loads(b'{"a":"\xff"}', what="doc")
