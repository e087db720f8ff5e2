"""Strict JSON: the quick path and the full path accept and refuse the same documents,
and so does the parser for many documents (:func:`_safejson.loads_many`)."""

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
@pytest.mark.parametrize("parse", [_safejson.loads, _safejson.loads_many])
def test_hostile_documents_are_refused_with_their_reason(
    parse: Any, text: str, message: str
) -> None:
    with pytest.raises(UnsafeArchiveError, match=message) as info:
        parse(text.encode(), what="member line 3")
    assert str(info.value).startswith("member line 3: ")
    assert "{what}" not in str(info.value)


@pytest.mark.parametrize("parse", [_safejson.loads, _safejson.loads_many])
def test_text_that_is_not_utf8_is_refused(parse: Any) -> None:
    with pytest.raises(UnsafeArchiveError, match="not UTF-8"):
        parse(b'{"a":"\xff"}', what="doc")


def _outcome(parse: Any, data: bytes) -> tuple[str, str]:
    """What ``parse`` makes of ``data``: the value as JSON (types and key order kept), or the error."""
    try:
        return "value", json.dumps(parse(data, what="line 7"))
    except UnsafeArchiveError as exc:
        return "error", str(exc)


def _agree(data: bytes) -> None:
    assert _outcome(_safejson.loads_many, data) == _outcome(_safejson.loads, data)


#: Pieces of JSON and of the texts around its edges: whitespace JSON does and does not
#: allow, escapes of every kind (lone surrogates too), numbers at and beyond the limits,
#: bytes that are not UTF-8 or encode a surrogate, a BOM.
_PIECES = st.sampled_from(
    [
        *(c.encode() for c in '{}[],:"\\'),
        b'"k"',
        b'"a":',
        b"0",
        b"1",
        b"-",
        b"+",
        b".",
        b"e",
        b"E",
        b"01",
        b"1.5",
        b"-0",
        b"1e2",
        b"1e999",
        b"-1e400",
        b"9" * 998,
        b"9" * 1001,
        b"true",
        b"false",
        b"null",
        b"NaN",
        b"Infinity",
        b"\\u0041",
        b"\\u00e9",
        b"\\ud800",
        b"\\udc00",
        b"\\ud83d\\ude00",
        b"\\u0000",
        b"\\n",
        b"\\/",
        b"\\x",
        *(bytes([c]) for c in (0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C, 0x00, 0x1F, 0x7F)),
        b"\xc3\xa9",
        b"\xc2\xa0",
        b"\xe2\x80\xa8",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xff",
        b"\xef\xbb\xbf",
    ]
)


@given(pieces=st.lists(_PIECES, max_size=24))
def test_many_agrees_with_loads_on_any_text(pieces: list[bytes]) -> None:
    _agree(b"".join(pieces))


@given(value=_VALUES, at=st.integers(min_value=0), piece=_PIECES, replace=st.booleans())
def test_many_agrees_with_loads_on_documents_changed_in_one_place(
    value: Any, at: int, piece: bytes, replace: bool
) -> None:
    data = json.dumps(value, ensure_ascii=False).encode()
    _agree(data)
    at %= len(data) + 1
    _agree(data[:at] + piece + data[at + replace :])


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":{"b":1,"b":2}}',
        b'{"a":1,"\\u0061":2}',
        b'[{"x":[{"y":1,"y":1}]}]',
        b'{"a":[' + b"[" * 31 + b"]" * 31 + b"]}",
        b'{"a":[' + b"[" * 40 + b"]" * 40 + b"]}",
        b'{"a":"' + b"[" * 40 + b'"}',
        b'{"p":{"v":1e308},"q":1.7976931348623157e308}',
        b'{"p":{"v":[1e309]}}',
        b'{"p":[-' + b"9" * 999 + b"]}",
        b'{"p":[-' + b"9" * 1000 + b"]}",
        b'{"p":[' + b"9" * 1000 + b"]}",
        b'{"p":[' + b"9" * 4400 + b"]}",
        b'{"a":"\\ud800"}',
        b'\x0c{"a":1}',
        b'{"a":1}\x0b',
        b'\xc2\xa0{"a":1}',
        b'{"a":1}\n',
        b'{"a":1}\r',
    ],
)
def test_many_agrees_with_loads_at_its_edges(data: bytes) -> None:
    _agree(data)
