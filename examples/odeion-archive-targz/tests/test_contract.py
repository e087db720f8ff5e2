"""The format contract of odeion_archive.testing, determinism, and bounded memory and reads."""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from odeion_archive_targz import TarGzFormat

from odeion_archive import ReadLimits
from odeion_archive.errors import BackupFailedError
from odeion_archive.testing import (
    ArchiveBuilder,
    ArchiveFile,
    check_format,
    format_registry,
    head_manifest,
    verify_archive,
    write_archive,
)

MIB = 1024 * 1024


@pytest.mark.parametrize("level", [1, 6, 9])
def test_the_format_keeps_the_contract(level: int, tmp_path: Path) -> None:
    check_format(TarGzFormat(level), tmp_path)


def test_levels_out_of_range_are_refused() -> None:
    for level in (0, 10):
        with pytest.raises(BackupFailedError):
            TarGzFormat(level)


@pytest.mark.parametrize("given", [b"x" * 9, b"x" * 11])
def test_a_member_of_another_size_than_announced_breaks_the_writer(given: bytes) -> None:
    writer = TarGzFormat().open_writer(io.BytesIO())
    with pytest.raises(BackupFailedError, match="announced with 10 bytes"):
        writer.add("users_auth/a.jsonl", [given], size=10)
    with pytest.raises(BackupFailedError, match="unusable"):
        writer.add("users_auth/b.jsonl", [b""], size=0)
    with pytest.raises(BackupFailedError, match="unusable"):
        writer.close()


def test_the_writer_refuses_duplicates_and_adds_after_close() -> None:
    writer = TarGzFormat().open_writer(io.BytesIO())
    writer.add("users_auth/a.jsonl", [b"x"])
    with pytest.raises(BackupFailedError, match="already written"):
        writer.add("users_auth/A.jsonl", [b"y"])
    writer.close()
    writer.close()
    with pytest.raises(BackupFailedError, match="closed"):
        writer.add("users_auth/c.jsonl", [b""])


class _Sink(io.RawIOBase):
    """A write-only pipe-like stream that counts and forgets what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, _offset: int, _whence: int = 0) -> int:
        raise AssertionError("the writer seeked")

    def tell(self) -> int:
        raise AssertionError("the writer asked for its position")

    def write(self, data: Any) -> int:
        self.count += len(data)
        return len(data)


def _generated(mebibytes: int) -> Iterator[bytes]:
    lines = b"".join(b"%08d a line of a dump\n" % i for i in range(20_000))
    block = (lines * (MIB // len(lines) + 1))[:MIB]
    for number in range(mebibytes):
        yield b"%08d" % number + block[8:]


@pytest.mark.parametrize("give_size", [True, False])
def test_writing_a_large_member_holds_bounded_memory(
    give_size: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    fmt = TarGzFormat(1)
    sink = _Sink()
    tracemalloc.start()
    try:
        builder = ArchiveBuilder(fmt, sink, head=head_manifest(fmt, ("full_db",)))  # type: ignore[arg-type]
        builder.add_member(
            "full_db", "database.dump", _generated(96), size=96 * MIB if give_size else None
        )
        builder.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Two 1 MiB chunks in flight; without a size, an 8 MiB spool in memory besides.
    assert peak < (6 if give_size else 16) * MIB
    assert sink.count > 0


class _CountingFile(io.FileIO):
    """A file that counts the bytes read from it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_read_member_reads_only_the_manifest_members(tmp_path: Path) -> None:
    path = tmp_path / "big.tar.gz"
    fmt = TarGzFormat(1)
    with path.open("wb") as stream:
        write_archive(fmt, stream, {"full_db": {"database.dump": b"".join(_generated(32))}})
    with _CountingFile(path) as file:
        reader = fmt.open_reader(file, ReadLimits())
        head = reader.read_member("manifest.json", 512 * 1024)
        tail = reader.read_member("manifest-tail.json", 512 * 1024)
        reader.close()
        read_bytes = file.read_bytes
    assert head.startswith(b"{")
    assert tail.startswith(b"{")
    assert read_bytes < 256 * 1024 < path.stat().st_size
    with ArchiveFile.open(path, format_registry(fmt)) as archive:
        assert archive.manifest.format == "tar.gz"


def test_same_members_give_the_same_bytes_in_a_fresh_writer() -> None:
    members = {"users_auth": {"users.jsonl": b'{"id":1}\n' * 1000}}
    first, second = io.BytesIO(), io.BytesIO()
    write_archive(TarGzFormat(), first, members)
    write_archive(TarGzFormat(), second, members, chunk_size=7)
    assert first.getvalue() == second.getvalue()


_names = st.text(alphabet=st.sampled_from("abcxyz_-.0"), min_size=1, max_size=140).filter(
    lambda n: n not in {".", ".."} and not n.endswith(".")  # the core's name rules
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(_names, st.binary(max_size=3000), max_size=5),
    chunk=st.integers(min_value=1, max_value=4096),
)
def test_any_members_read_back(files: dict[str, bytes], chunk: int, tmp_path: Path) -> None:
    distinct: dict[str, bytes] = {}
    for name, data in files.items():
        if name.casefold() not in {n.casefold() for n in distinct}:
            distinct[name] = data
    fmt = TarGzFormat()
    path = tmp_path / "any.tar.gz"
    with path.open("wb") as stream:
        write_archive(fmt, stream, {"settings": distinct}, chunk_size=chunk)
    with ArchiveFile.open(path, format_registry(fmt)) as archive:
        read = {entry.path: b"".join(chunks) for entry, chunks in archive.walk()}
        assert read == {f"settings/{n}": d for n, d in distinct.items()}
        assert archive.verify().ok


def test_every_flipped_byte_and_every_truncation_is_found(tmp_path: Path) -> None:
    fmt = TarGzFormat()
    registry = format_registry(fmt)
    stream = io.BytesIO()
    write_archive(fmt, stream, {"settings": {"system_settings.jsonl": b'{"k":"v"}\n' * 30}})
    original = stream.getvalue()
    damaged = tmp_path / "damaged.tar.gz"
    for position in range(len(original)):
        data = bytearray(original)
        data[position] ^= 0x10
        damaged.write_bytes(bytes(data))
        assert not verify_archive(damaged, registry).ok, f"flip at {position}"
        damaged.write_bytes(original[:position])
        assert not verify_archive(damaged, registry).ok, f"truncation to {position}"
