"""The tar.zst reader: the skippable index frame, and zstd frames decoded with a bounded window.

Reading through the index, listing and walking are
:class:`~._indexed_tar.IndexedTarReader`'s; the walk ignores the index and
decompresses the stream from the start, since the stream is the truth, with a
decoder window bounded by ``ReadLimits.max_window_bytes``.
"""

from __future__ import annotations

import hashlib
from typing import IO, cast

import zstandard

from odeion_archive._names import ADVICE
from odeion_archive.errors import CorruptArchiveError, UnsafeArchiveError
from odeion_archive.formats._index import FOOTER, Index, index_bound, read_index
from odeion_archive.formats._indexed_tar import IndexedTarReader
from odeion_archive.formats._tar import ByteSource
from odeion_archive.formats._tarzst_frames import (
    FOOTER_MAGIC,
    SKIPPABLE,
    SKIPPABLE_MAGIC,
    Slice,
    ZstdSource,
)
from odeion_archive.interfaces import ReadLimits

__all__ = ["TarZstReader"]

_HEADER_READ = 16 * 1024


class TarZstReader(IndexedTarReader):
    """Reads a tar.zst archive without trusting its index or its stream."""

    format_name = "tar.zst"

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        super().__init__(file, limits)
        self._dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_bytes)

    def source(self, start: int, end: int, *, walking: bool = False) -> ByteSource:
        """The zstd frames in ``[start, end)``, decompressed."""
        reader = self._dctx.stream_reader(
            cast("IO[bytes]", Slice(self._file, start, end)),
            read_size=_HEADER_READ * (4 if walking else 1),
            read_across_frames=True,
        )
        return ZstdSource(reader, self._limits)

    def read_index(self) -> Index:
        """The skippable frame's index, checked against its footer."""
        size = self._file.seek(0, 2)
        if size < SKIPPABLE.size + FOOTER.size:
            raise CorruptArchiveError(f"the tar.zst archive is too short; {ADVICE}")
        index_sha, seal, length, magic = FOOTER.unpack(self.pread(size - FOOTER.size, FOOTER.size))
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
        header = SKIPPABLE.unpack(self.pread(frame_start, SKIPPABLE.size))
        if header != (SKIPPABLE_MAGIC, length + FOOTER.size):
            raise CorruptArchiveError(f"the tar.zst index frame header is wrong; {ADVICE}")
        raw = self.pread(frame_start + SKIPPABLE.size, length)
        if hashlib.sha256(raw).digest() != index_sha:
            raise CorruptArchiveError(f"the tar.zst index fails its checksum; {ADVICE}")
        return read_index(raw, frame_start, seal, self._limits, "tar.zst")
