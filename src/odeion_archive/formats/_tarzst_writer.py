"""The tar.zst writer: a stored header frame and a zstd data frame per member, a skippable index.

The frames, the rewrite in place of a streamed member's header and the seal
are :class:`~._indexed_tar.IndexedTarWriter`'s; this module says how zstd
makes each frame.
"""

from __future__ import annotations

from typing import IO

import zstandard

from odeion_archive.formats._indexed_tar import Compressor, IndexedTarWriter
from odeion_archive.formats._tarzst_frames import (
    FOOTER_MAGIC,
    SKIPPABLE,
    SKIPPABLE_MAGIC,
    stored_frame,
)

__all__ = ["TarZstWriter"]


class TarZstWriter(IndexedTarWriter):
    """Writes two zstd frames per member; the end marker and index on :meth:`close`."""

    format_name = "tar.zst"
    magic = FOOTER_MAGIC

    def __init__(self, stream: IO[bytes], params: zstandard.ZstdCompressionParameters) -> None:
        super().__init__(stream)
        self._cctx = zstandard.ZstdCompressor(compression_params=params)

    def header_frame(self, header: bytes) -> bytes:
        """A stored zstd frame: its length depends on the header's only."""
        return stored_frame(header)

    def compressor(self) -> Compressor:
        """A zstd frame with a content checksum."""
        return self._cctx.compressobj()

    def trailer(self, index: bytes, footer: bytes) -> bytes:
        """A skippable frame, which tar and the zstd tool pass over."""
        payload = index + footer
        return SKIPPABLE.pack(SKIPPABLE_MAGIC, len(payload)) + payload
