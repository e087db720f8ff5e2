"""The tar.zst reader: bounded reads through the index, and a walk that trusts only the stream.

The walk ignores the index and decompresses the stream from the start, since
the stream is the truth, with a decoder window bounded by
``ReadLimits.max_window_bytes``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import IO, cast

import zstandard

from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.formats._common import ADVICE, sha256_range
from odeion_archive.formats._index import FOOTER, Index, index_bound, read_index
from odeion_archive.formats._tar import BLOCK, END_OF_ARCHIVE, TarMember, TarReader, walk_tar
from odeion_archive.formats._tarzst_frames import (
    FOOTER_MAGIC,
    SKIPPABLE,
    SKIPPABLE_MAGIC,
    Slice,
    ZstdSource,
)
from odeion_archive.interfaces import Entry, ReadLimits

__all__ = ["TarZstReader"]

_HEADER_READ = 16 * 1024


class TarZstReader:
    """Reads a tar.zst archive without trusting its index or its stream."""

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        self._file = file
        self._limits = limits
        self._dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_bytes)
        self._index: Index | None = None

    def _pread(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    # -- the index -----------------------------------------------------------

    def index(self) -> Index:
        """The index, read and checked once."""
        if self._index is None:
            self._index = self._read_index()
        return self._index

    def _read_index(self) -> Index:
        size = self._file.seek(0, 2)
        if size < SKIPPABLE.size + FOOTER.size:
            raise CorruptArchiveError(f"the tar.zst archive is too short; {ADVICE}")
        index_sha, seal, length, magic = FOOTER.unpack(self._pread(size - FOOTER.size, FOOTER.size))
        if magic != FOOTER_MAGIC:
            raise CorruptArchiveError(
                "the tar.zst archive does not end with its index; it is truncated or was not "
                f"written by odeion-archive; {ADVICE}"
            )
        bound = index_bound(self._limits)
        if length > bound:
            raise UnsafeArchiveError(
                f"the tar.zst index declares {length} bytes, more than {bound}; {ADVICE}"
            )
        frame_start = size - FOOTER.size - length - SKIPPABLE.size
        if frame_start < 0:
            raise CorruptArchiveError(f"the tar.zst index runs past the start; {ADVICE}")
        header = SKIPPABLE.unpack(self._pread(frame_start, SKIPPABLE.size))
        if header != (SKIPPABLE_MAGIC, length + FOOTER.size):
            raise CorruptArchiveError(f"the tar.zst index frame header is wrong; {ADVICE}")
        raw = self._pread(frame_start + SKIPPABLE.size, length)
        if hashlib.sha256(raw).digest() != index_sha:
            raise CorruptArchiveError(f"the tar.zst index fails its checksum; {ADVICE}")
        return read_index(raw, frame_start, seal, self._limits, "tar.zst")

    def _frame_tar(self, offset: int, end: int | None = None, *, across: bool = True) -> TarReader:
        """A tar reader of the frames from ``offset`` up to the next member's (or ``end``)."""
        index = self.index()
        end = index.frame_ends.get(offset, index.frame_start) if end is None else end
        source = cast("IO[bytes]", Slice(self._file, offset, end))
        reader = self._dctx.stream_reader(source, read_size=_HEADER_READ, read_across_frames=across)
        return TarReader(ZstdSource(reader, self._limits), self._limits)

    # -- the ArchiveReader interface -----------------------------------------

    def read_member(self, path: str, max_size: int) -> bytes:
        """The whole of one small member, found through the index (a bounded read)."""
        offsets = dict(self.index().members)
        if path not in offsets:
            raise ManifestError(
                f"the archive has no member {path!r}; it is not an odeion archive or it is "
                "incomplete, use another archive"
            )
        tar = self._frame_tar(offsets[path])
        found = tar.next_entry()
        if found is None or found[0].name != path or found[0].kind != "file":
            raise CorruptArchiveError(
                f"the tar.zst index points at the wrong place for {path!r}; {ADVICE}"
            )
        entry, padded = found
        if entry.size > max_size:
            raise UnsafeArchiveError(
                f"member {path!r} declares {entry.size} bytes, more than the limit of "
                f"{max_size}; {ADVICE}"
            )
        data = tar.exact(entry.size, f"member {path!r}")
        tar.exact(padded - entry.size, f"member {path!r}")
        if tar.read(1):
            raise CorruptArchiveError(f"the frame of {path!r} holds more than the member; {ADVICE}")
        return data

    def entries(self) -> list[Entry]:
        """Every member as the index and each frame's header declare it (no data read)."""
        result = []
        for name, offset in self.index().members:
            found = self._frame_tar(offset).next_entry()
            if found is None or found[0].name != name:
                raise CorruptArchiveError(
                    f"the tar.zst index points at the wrong place for {name!r}; {ADVICE}"
                )
            result.append(found[0])
        return result

    def walk(self) -> Iterator[TarMember]:
        """Every entry of the tar stream, decompressed from the start."""
        self._file.seek(0)
        reader = self._dctx.stream_reader(
            self._file, read_size=_HEADER_READ * 4, read_across_frames=True
        )
        yield from walk_tar(ZstdSource(reader, self._limits), self._limits)

    def container_problems(self) -> list[str]:
        """Check the index frame, the seal, and that the index points at its members."""
        try:
            index = self.index()
        except ArchiveInvalidError as exc:
            return [str(exc)]
        problems = []
        if sha256_range(self._pread, 0, index.frame_start) != index.seal:
            problems.append(f"the tar.zst archive's seal does not match its bytes; {ADVICE}")
        try:
            self.entries()
            end = self._frame_tar(index.end, index.frame_start, across=False)
            if end.read(3 * BLOCK) != END_OF_ARCHIVE:
                problems.append(f"the tar.zst end-of-archive frame is wrong; {ADVICE}")
        except ArchiveInvalidError as exc:
            problems.append(str(exc))
        return problems

    def close(self) -> None:
        """Nothing to release: the file belongs to the caller."""
        self._index = None
