"""Property 2: reading the manifest of a large archive reads a bounded number of bytes."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

from odeion_archive._archive import ArchiveFile
from odeion_archive._manifest import HEAD_MEMBER, TAIL_MEMBER, Manifest
from odeion_archive._registry import Registry
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat, ReadLimits
from odeion_archive.testing import write_archive

MIB = 1024 * 1024


class CountingFile(io.RawIOBase):
    """A read-only file that counts every byte it hands out."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = path.open("rb")
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def readinto(self, buffer: Any) -> int:
        count = self._file.readinto(buffer)
        self.bytes_read += count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


@pytest.fixture(scope="module", params=["zip", "tar.zst"])
def large(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ArchiveFormat, Path, Manifest]:
    """A 40 MiB archive of incompressible data, with several members before the tail."""
    fmt: ArchiveFormat = ZipFormat(level=1) if request.param == "zip" else TarZstFormat(level=1)
    path = tmp_path_factory.mktemp("large") / f"large{fmt.suffix}"
    members = {
        "full_db": {"database.dump": os.urandom(32 * MIB)},
        "users_auth": {f"part{i}.jsonl": os.urandom(MIB) for i in range(8)},
    }
    with path.open("wb") as stream:
        manifest = write_archive(fmt, stream, members)
    assert path.stat().st_size > 40 * MIB
    return fmt, path, manifest


def test_reader_reads_the_manifest_members_with_a_bounded_read(
    large: tuple[ArchiveFormat, Path, Manifest],
) -> None:
    fmt, path, manifest = large
    counting = CountingFile(path)
    reader = fmt.open_reader(counting, ReadLimits())  # type: ignore[arg-type]
    head = reader.read_member(HEAD_MEMBER, MIB)
    tail = reader.read_member(TAIL_MEMBER, MIB)
    counting.close()
    assert Manifest.from_parts(head, tail) == manifest
    assert counting.bytes_read < MIB, counting.bytes_read


def test_opening_the_archive_reads_a_bounded_number_of_bytes(
    large: tuple[ArchiveFormat, Path, Manifest],
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fmt, path, manifest = large
    counted = [0]
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        data = real_pread(fd, size, offset)
        counted[0] += len(data)
        return data

    monkeypatch.setattr(os, "pread", pread)
    with ArchiveFile.open(path, registry) as archive:
        assert archive.manifest == manifest
        assert archive.size == path.stat().st_size
    assert 0 < counted[0] < MIB, counted[0]
