"""Every registered format keeps the contract that odeion_archive.testing checks.

And check_format catches each way a format can break it that a plugin author
met: a container check that finds nothing, a writer that stages what it could
stream, a walk that calls links files, a reader that ignores its limits, a
writer that takes a member of another size than announced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import attrs
import pytest

from odeion_archive._registry import Registry
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat, Entry, ReadLimits
from odeion_archive.testing import check_format


def test_both_builtin_formats_are_registered(registry: Registry) -> None:
    assert sorted(registry.formats()) == ["tar.zst", "zip"]


@pytest.mark.parametrize("name", ["tar.zst", "zip"])
def test_builtin_format_keeps_the_contract(name: str, registry: Registry, tmp_path: Path) -> None:
    check_format(registry.formats()[name], tmp_path)


class _LaxZip(ZipFormat):
    """A zip format whose reader never reports container problems."""

    def open_reader(self, file, limits):  # type: ignore[no-untyped-def]
        reader = super().open_reader(file, limits)
        reader.container_problems = list  # type: ignore[method-assign]
        return reader


class _LaxTarZst(TarZstFormat):
    """A tar.zst format whose container_problems() always returns [] (its walk finds much)."""

    def open_reader(self, file, limits):  # type: ignore[no-untyped-def]
        reader = super().open_reader(file, limits)
        reader.container_problems = list  # type: ignore[method-assign]
        return reader


class _SeekingZip(ZipFormat):
    """A zip format whose writer asks for the stream position."""

    def open_writer(self, stream):  # type: ignore[no-untyped-def]
        stream.tell()
        return super().open_writer(stream)


class _StagingTarZst(TarZstFormat):
    """A tar.zst format whose writer spools every member of unknown size, even to a file."""

    def open_writer(self, stream: IO[bytes]) -> Any:
        writer: Any = super().open_writer(stream)
        writer._out.can_rewrite = lambda: False
        return writer


@attrs.frozen
class _AsFile:
    source: Any

    @property
    def entry(self) -> Entry:
        entry: Entry = self.source.entry
        return attrs.evolve(entry, kind="file")

    def chunks(self) -> Iterator[bytes]:
        chunks: Iterator[bytes] = self.source.chunks()
        return chunks


class _FlatteningZip(ZipFormat):
    """A zip format whose walk() reports every entry, links included, as a regular file."""

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> Any:
        reader: Any = super().open_reader(file, limits)
        walk = reader.walk
        reader.walk = lambda: (_AsFile(source) for source in walk())
        return reader


class _FlatteningTarZst(TarZstFormat):
    """A tar.zst format whose walk() reports every entry, links included, as a regular file."""

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> Any:
        reader: Any = super().open_reader(file, limits)
        walk = reader.walk
        reader.walk = lambda: (_AsFile(source) for source in walk())
        return reader


class _UnlimitedZip(ZipFormat):
    """A zip format whose reader ignores the ReadLimits it is given."""

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> Any:
        return super().open_reader(file, ReadLimits())


class _UnlimitedTarZst(TarZstFormat):
    """A tar.zst format whose reader ignores the ReadLimits it is given."""

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> Any:
        return super().open_reader(file, ReadLimits())


class _OversizeZip(ZipFormat):
    """A zip format whose read_member() ignores its max_size."""

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> Any:
        reader: Any = super().open_reader(file, limits)
        read_member = reader.read_member
        reader.read_member = lambda path, _max_size: read_member(path, 1 << 30)
        return reader


class _SizeBlindZip(ZipFormat):
    """A zip format whose writer drops the announced size instead of checking it."""

    def open_writer(self, stream: IO[bytes]) -> Any:
        writer: Any = super().open_writer(stream)
        add = writer.add

        def unchecked(path: str, chunks: Iterable[bytes], *, size: int | None = None) -> None:
            add(path, chunks)

        writer.add = unchecked
        return writer


@pytest.mark.parametrize(
    ("broken", "complaint"),
    [
        (_LaxZip(), "container_problems\\(\\) misses a flipped bit"),
        (_LaxTarZst(), "container_problems\\(\\) misses a flipped bit"),
        (_SeekingZip(), "must not seek"),
        (_StagingTarZst(), "stages a member of unknown size"),
        (_FlatteningZip(), "reports the symlink 'users_auth/symlink' as a file"),
        (_FlatteningTarZst(), "reports the symlink 'users_auth/symlink' as a file"),
        (_UnlimitedZip(), "max_members"),
        (_UnlimitedTarZst(), "max_members"),
        (_OversizeZip(), "max_size"),
        (_SizeBlindZip(), "accepts a member of 10 bytes announced with 5"),
    ],
    ids=lambda value: type(value).__name__.strip("_") if not isinstance(value, str) else "",
)
def test_check_format_catches_a_broken_format(
    broken: ArchiveFormat, complaint: str, tmp_path: Path
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_format(broken, tmp_path)
