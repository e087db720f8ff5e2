"""The seal and the container prefix cover the bytes written, read back and checked."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from odeion_archive.errors import BackupFailedError
from odeion_archive.formatkit import SealedOutput


def _streamed(path: Path) -> tuple[SealedOutput, bytes]:
    """An output with a header (written, then rewritten) and data after it; the final bytes."""
    stream = path.open("w+b")
    out = SealedOutput(stream)
    out.write(b"before-")
    out.mark_rewrite()
    out.write(b"HEADER??")
    out.write(b"data " * 1000)
    out.rewrite(7, b"HEADER42")
    return out, b"before-HEADER42" + b"data " * 1000


def test_the_prefix_and_the_seal_are_the_bytes_as_finally_written(tmp_path: Path) -> None:
    out, final = _streamed(tmp_path / "archive")
    prefix = out.prefix()
    assert (prefix.end, prefix.sha256) == (len(final), hashlib.sha256(final).hexdigest())
    out.write(b"-after")
    assert out.seal() == hashlib.sha256(final + b"-after").digest()
    out.stream.close()


@pytest.mark.parametrize("where", [0, 7, 20, 2000, 5014])
def test_bytes_changed_on_disk_before_they_are_read_back_fail_the_backup(
    tmp_path: Path, where: int
) -> None:
    """Whoever can write the file while the archive is written gets nothing sealed."""
    out, _final = _streamed(tmp_path / "archive")
    out.stream.flush()
    fd = out.stream.fileno()
    os.pwrite(fd, bytes([os.pread(fd, 1, where)[0] ^ 1]), where)
    if where < 7:
        # Bytes hashed as they were written, before the mark: the seal holds what was written.
        assert out.prefix().sha256 != hashlib.sha256(Path(out.stream.name).read_bytes()).hexdigest()
    else:
        with pytest.raises(BackupFailedError, match="changed on disk while it was written"):
            out.prefix()
    out.stream.close()


def test_a_rewrite_must_replace_the_whole_first_write_after_a_mark(tmp_path: Path) -> None:
    with (tmp_path / "archive").open("w+b") as stream:
        out = SealedOutput(stream)
        out.mark_rewrite()
        out.write(b"HEADER??")
        out.write(b"data")
        for offset, data in ((0, b"HEADER4"), (1, b"EADER42"), (0, b"HEADER42data"), (8, b"DATA")):
            with pytest.raises(BackupFailedError, match="mark_rewrite"):
                out.rewrite(offset, data)
        out.rewrite(0, b"HEADER42")
        assert out.seal() == hashlib.sha256(b"HEADER42data").digest()


def test_several_streamed_members_are_sealed_as_finally_written(tmp_path: Path) -> None:
    """As a writer that never asks for a prefix does: every header rewritten, then sealed."""
    with (tmp_path / "archive").open("w+b") as stream:
        out = SealedOutput(stream)
        final = b""
        for number in range(3):
            start = out.offset
            out.mark_rewrite()
            out.write(b"HEADER??")
            out.write(b"data %d " % number * 500)
            out.rewrite(start, b"HEADER%02d" % number)
            final += b"HEADER%02d" % number + b"data %d " % number * 500
        out.write(b"end")
        assert out.seal() == hashlib.sha256(final + b"end").digest()


def test_memory_does_not_grow_with_the_writes_after_a_mark(tmp_path: Path) -> None:
    """A member streamed in a million pieces is remembered by two digests, not one per piece."""
    with (tmp_path / "archive").open("w+b", buffering=0) as stream:
        out = SealedOutput(stream)
        out.mark_rewrite()
        out.write(b"HEADER??")
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(20_000):
                out.write(b"0123456789abcdef")
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 16 * 1024, grown
        out.rewrite(0, b"HEADER42")
        assert (
            out.prefix().sha256
            == hashlib.sha256(b"HEADER42" + b"0123456789abcdef" * 20_000).hexdigest()
        )
