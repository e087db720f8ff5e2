"""Reading a JSON Lines member for COPY, without a database: whole lines in order,
every line checked, the line numbers of errors, and no more read than a long line needs."""

from __future__ import annotations

import io

import pytest

from odeion_archive.components import _jsonrows
from odeion_archive.components._jsonfields import OPT_TEXT, TEXT, RowSpec
from odeion_archive.errors import ArchiveInvalidError, CorruptArchiveError

_SPEC = RowSpec(required={"name": TEXT}, optional={"note": OPT_TEXT})


class _Copy:
    """What COPY is given."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


class _Counting(io.BytesIO):
    """A member that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.taken += len(data)
        return data


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    # Batches of 64 bytes and lines of at most 200, so that lines cross batches.
    monkeypatch.setattr(_jsonrows, "BATCH_BYTES", 64)
    monkeypatch.setattr(_jsonrows, "MAX_LINE_BYTES", 200)


def _read(data: bytes, expected: int) -> tuple[_Copy, int, bool, list[int]]:
    copy = _Copy()
    batches: list[int] = []
    rows, sure = _jsonrows._copy_lines(
        copy,  # type: ignore[arg-type]
        io.BytesIO(data),
        "member.jsonl",
        expected,
        _SPEC,
        batches.append,
    )
    return copy, rows, sure, batches


def test_lines_reach_copy_whole_in_order_and_escaped() -> None:
    lines = [b'{"name":"n%d","note":"%s"}' % (i, b"x" * (i * 5)) for i in range(30)]
    lines[3] = b'{"name":"back\\\\slash\\ttab"}\r'  # a JSON escape, and a carriage return
    copy, rows, sure, batches = _read(b"\n".join(lines) + b"\n", 30)
    assert rows == 30
    assert sure
    assert batches == sorted(batches)
    assert batches[-1] == 30
    assert len(batches) > 5
    expected = b"".join(_jsonrows._copy_text(line) + b"\n" for line in lines)
    assert bytes(copy.data) == expected
    assert b'back\\\\\\\\slash\\\\ttab"}\\r\n' in copy.data


def test_a_last_line_without_newline_is_a_row() -> None:
    copy, rows, _sure, _batches = _read(b'{"name":"a"}\n{"name":"b"}', 2)
    assert rows == 2
    assert bytes(copy.data) == b'{"name":"a"}\n{"name":"b"}\n'


def test_a_line_the_spec_does_not_vouch_for_is_left_to_sql() -> None:
    _copy, rows, sure, _batches = _read(b'{"name":"a"}\n{"name":""}\n{"name":"c"}\n', 3)
    assert rows == 3
    assert not sure


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"name":"a"}\n\n{"name":"b"}\n', "member.jsonl: line 2 is blank"),
        (b'{"name":"a"}\n \t\r\n', "member.jsonl: line 2 is blank"),
        (b'{"name":"a"}\n{"name":"b"}\n{"name":"c"}\n', "line 3 is one too many"),
        (b'{"name":"a"}\n{"name":"b","name":"c"}\n', "member.jsonl line 2: the key 'name'"),
        (b'{"name":"a"}\n[1]\n', "member.jsonl line 2: not a JSON object"),
        (b'{"name":"a"}\n{"name":"\xff"}\n', "member.jsonl line 2: not UTF-8"),
        (b'{"name":"a"}\n{"name":1e999}\n', "member.jsonl line 2: the number 1e999"),
        (b'{"name":"a"}', "holds 1 rows but the manifest records 2"),
    ],
    ids=["blank", "whitespace", "beyond", "duplicate", "array", "utf8", "infinite", "short"],
)
def test_bad_lines_are_refused_with_their_number(data: bytes, message: str) -> None:
    with pytest.raises(ArchiveInvalidError, match=message):
        _read(data, 2)


@pytest.mark.parametrize("before", [0, 1, 5])
@pytest.mark.parametrize("length", [201, 230, 300])
def test_a_line_too_long_is_refused_with_its_number(before: int, length: int) -> None:
    # Lines found too long as they are read, and once their newline arrives.
    long_line = b'{"name":"' + b"y" * (length - 11) + b'"}'
    assert len(long_line) == length
    data = b'{"name":"a"}\n' * before + long_line + b'\n{"name":"b"}\n'
    with pytest.raises(CorruptArchiveError, match=f"line {before + 1} is longer than 200 bytes"):
        _read(data, before + 2)


def test_a_line_without_end_is_refused_once_it_is_too_long_not_read_to_its_end() -> None:
    member = _Counting(b'{"name":"a"}\n{"name":"' + b"z" * 10_000_000)
    with pytest.raises(CorruptArchiveError, match="line 2 is longer than 200 bytes"):
        _jsonrows._copy_lines(
            _Copy(),  # type: ignore[arg-type]
            member,
            "member.jsonl",
            2,
            _SPEC,
            lambda _rows: None,
        )
    assert member.taken < 400
