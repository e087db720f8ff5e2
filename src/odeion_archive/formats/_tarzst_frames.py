"""The tar.zst record codec: stored header frames, the index frame and its footer.

See :mod:`odeion_archive.formats.tarzst` for the layout.
"""

from __future__ import annotations

import struct
from typing import IO, Any

import zstandard

from odeion_archive.errors import (
    ArchiveInvalidError,
    BackupFailedError,
    CorruptArchiveError,
    UnsafeArchiveError,
)
from odeion_archive.formats._common import ADVICE
from odeion_archive.interfaces import ReadLimits

__all__ = [
    "FOOTER_MAGIC",
    "SKIPPABLE",
    "SKIPPABLE_MAGIC",
    "ZSTD_MAGIC",
    "Slice",
    "ZstdSource",
    "stored_frame",
    "zstd_error",
]

#: Last eight bytes of every tar.zst archive this library writes.
FOOTER_MAGIC = b"OdeIdx01"

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SKIPPABLE_MAGIC = 0x184D2A50
SKIPPABLE = struct.Struct("<II")


def stored_frame(data: bytes) -> bytes:
    """A zstd frame holding ``data`` in one raw (uncompressed) block.

    Single-segment, with a two-byte content size: for 256 to 65,791 bytes,
    which covers every tar header this writer makes.
    """
    size = len(data)
    if not 256 <= size < 65536 + 256:
        raise BackupFailedError(f"a tar header of {size} bytes does not fit a stored frame")
    block_header = (1 | (size << 3)).to_bytes(3, "little")  # last block, raw
    return ZSTD_MAGIC + b"\x60" + (size - 256).to_bytes(2, "little") + block_header + data


class Slice:
    """A read-only view of ``[start, end)`` of a file, for the zstd decoder."""

    def __init__(self, file: IO[bytes], start: int, end: int) -> None:
        self._file = file
        self._pos = start
        self._end = end

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the view (all that is left with ``-1``)."""
        if size < 0:
            size = self._end - self._pos
        size = min(size, self._end - self._pos)
        if size <= 0:
            return b""
        self._file.seek(self._pos)
        data = self._file.read(size)
        self._pos += len(data)
        return data


def zstd_error(exc: zstandard.ZstdError, limits: ReadLimits) -> ArchiveInvalidError:
    """The archive error for a zstd decoding error: a refused window, or damage."""
    if "memory" in str(exc) or "window" in str(exc).lower():
        return UnsafeArchiveError(
            f"a zstd frame needs a window larger than {limits.max_window_bytes} bytes; "
            "refusing it (raise ReadLimits.max_window_bytes only for an archive you trust)"
        )
    return CorruptArchiveError(f"the zstd data is invalid ({exc}); {ADVICE}")


class ZstdSource:
    """A zstd decompressing reader whose errors are archive errors."""

    def __init__(self, reader: Any, limits: ReadLimits) -> None:
        self._reader = reader
        self._limits = limits

    def read(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes."""
        try:
            return bytes(self._reader.read(size))
        except zstandard.ZstdError as exc:
            raise zstd_error(exc, self._limits) from None
