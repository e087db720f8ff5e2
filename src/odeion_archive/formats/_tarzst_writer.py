"""The tar.zst writer: two zstd frames per member, the end marker and sealed index last.

A member of unknown size streams straight through on an output that can seek
(the archive file): its stored header frame is rewritten in place once the
size is known, and the seal covers the bytes as finally written. Only on an
output that cannot seek (a pipe) is such a member spooled first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import IO

import zstandard

from odeion_archive.formats._common import (
    SealedOutput,
    check_new_name,
    closed_writer,
    sized_pieces,
    spooled,
)
from odeion_archive.formats._index import FOOTER, index_json
from odeion_archive.formats._tar import END_OF_ARCHIVE, tar_header, tar_padding
from odeion_archive.formats._tarzst_frames import (
    FOOTER_MAGIC,
    SKIPPABLE,
    SKIPPABLE_MAGIC,
    STORED_PREFIX,
    stored_frame,
)

__all__ = ["TarZstWriter"]


class TarZstWriter:
    """Writes two zstd frames per member; the end marker and index on :meth:`close`."""

    def __init__(self, stream: IO[bytes], params: zstandard.ZstdCompressionParameters) -> None:
        self._out = SealedOutput(stream)
        self._cctx = zstandard.ZstdCompressor(compression_params=params)
        self._index: list[tuple[str, int]] = []
        self._keys: set[str] = set()
        self._closed = False

    def add(self, path: str, chunks: Iterable[bytes], *, size: int | None = None) -> None:
        """Write one regular member, streaming; ``size`` is checked if given.

        Raises :class:`~odeion_archive.errors.UnsafeArchiveError` for an unsafe
        name and :class:`~odeion_archive.errors.BackupFailedError` for a name
        already written, a member that differs from ``size``, or a closed writer.
        """
        if self._closed:
            raise closed_writer("tar.zst", path)
        check_new_name(path, self._keys)
        if size is None and not self._out.can_rewrite():
            with spooled(chunks) as (staged, length):
                self._add(path, staged, length)
        else:
            self._add(path, chunks, size)

    def _add(self, path: str, chunks: Iterable[bytes], size: int | None) -> None:
        out = self._out
        offset = out.offset
        if size is None:
            out.mark_rewrite()
        out.write(stored_frame(tar_header(path, size or 0)))
        frame = self._cctx.compressobj()
        written = 0
        for piece in sized_pieces(path, chunks, size):
            written += len(piece)
            out.write(frame.compress(piece))
        out.write(frame.compress(tar_padding(written)))
        out.write(frame.flush())
        if size is None:
            out.rewrite(offset + STORED_PREFIX, tar_header(path, written))
        self._index.append((path, offset))

    def close(self) -> None:
        """Write the end-of-archive frame and the sealed index frame."""
        if self._closed:
            return
        self._closed = True
        out = self._out
        end = out.offset
        frame = self._cctx.compressobj()
        out.write(frame.compress(END_OF_ARCHIVE) + frame.flush())
        seal = out.seal()
        index = index_json(self._index, end)
        footer = FOOTER.pack(hashlib.sha256(index).digest(), seal, len(index), FOOTER_MAGIC)
        payload = index + footer
        out.stream.write(SKIPPABLE.pack(SKIPPABLE_MAGIC, len(payload)) + payload)
        out.stream.flush()
