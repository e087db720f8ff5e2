"""An exception a plugin's reader lets escape becomes an archive error naming the plugin."""

from __future__ import annotations

import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from odeion_archive._archive import ArchiveFile, verify_archive
from odeion_archive.errors import CorruptArchiveError
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ReadLimits
from odeion_archive.testing import format_registry, write_archive


class _RawErrorZip(ZipFormat):
    """A zip whose reader raises ``lzma.LZMAError`` from ``where``, as a careless plugin might."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> Any:
        reader = super().open_reader(file, limits)
        original = getattr(reader, self.where)

        def broken(*args: Any) -> Any:
            if self.where == "walk":
                return _raising(original(*args))
            raise lzma.LZMAError("Corrupt input data")

        setattr(reader, self.where, broken)
        return reader


def _raising(walk: Iterator[Any]) -> Iterator[Any]:
    yield next(walk)
    raise lzma.LZMAError("Corrupt input data")


def _archive(fmt: ZipFormat, tmp_path: Path) -> Path:
    path = tmp_path / "a.zip"
    with path.open("wb") as stream:
        write_archive(fmt, stream, {"users_auth": {"users.jsonl": b"{}\n" * 10}})
    return path


def test_verify_reports_a_raw_error_from_walk_naming_the_plugin(tmp_path: Path) -> None:
    fmt = _RawErrorZip("walk")
    report = verify_archive(_archive(fmt, tmp_path), format_registry(fmt))
    assert not report.ok
    message = " ".join(p.message for p in report.problems)
    assert "LZMAError" in message
    assert "'zip' format" in message
    assert __name__ in message


def test_a_raw_error_from_container_problems_is_an_archive_error_with_its_cause(
    tmp_path: Path,
) -> None:
    fmt = _RawErrorZip("container_problems")
    path = _archive(fmt, tmp_path)
    with (
        ArchiveFile.open(path, format_registry(fmt)) as archive,
        pytest.raises(CorruptArchiveError, match="LZMAError") as caught,
    ):
        archive.check_container()
    assert isinstance(caught.value.__cause__, lzma.LZMAError)


def test_a_raw_error_from_entries_is_reported_by_check_container(tmp_path: Path) -> None:
    fmt = _RawErrorZip("entries")
    with ArchiveFile.open(_archive(fmt, tmp_path), format_registry(fmt)) as archive:
        report = archive.check_container()
    assert [p.message for p in report.problems if "LZMAError" in p.message]
