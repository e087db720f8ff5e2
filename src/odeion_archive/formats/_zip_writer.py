"""The zip writer: local header, deflate data and zip64 data descriptor per member.

It never seeks, so it writes to a pipe as well as to a file; the trailer (the
central directory, the zip64 end records and the sealed end record) comes on
:meth:`ZipWriter.close`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import IO

import attrs

from odeion_archive.formats._common import (
    SealedOutput,
    check_new_name,
    closed_writer,
    sized_pieces,
)
from odeion_archive.formats._zip_records import (
    CENTRAL,
    CENTRAL_SIG,
    DEFLATE,
    DESCRIPTOR64,
    DESCRIPTOR_SIG,
    DOS_DATE,
    DOS_TIME,
    EOCD,
    EOCD64,
    EOCD64_SIG,
    EOCD_SIG,
    FILE_ATTR,
    FLAGS,
    LOCAL,
    LOCAL_SIG,
    LOCATOR,
    LOCATOR_SIG,
    MADE_BY,
    SEAL_PREFIX,
    U16,
    U32,
    VERSION,
    ZIP64_CENTRAL,
    ZIP64_LOCAL,
)

__all__ = ["ZipWriter"]


@attrs.define
class _Written:
    name: bytes
    crc: int
    csize: int
    usize: int
    offset: int


class ZipWriter:
    """Writes members as they come; the trailer on :meth:`close`."""

    def __init__(self, stream: IO[bytes], level: int) -> None:
        self._out = SealedOutput(stream)
        self._write = self._out.write
        self._level = level
        self._written: list[_Written] = []
        self._keys: set[str] = set()
        self._closed = False

    def add(self, path: str, chunks: Iterable[bytes], *, size: int | None = None) -> None:
        """Write one regular member, streaming; ``size``, if given, is checked.

        Returns no container prefix: a zip reader finds a member where the
        central directory, written after every member, points.
        Raises :class:`~odeion_archive.errors.UnsafeArchiveError` for an unsafe
        name and :class:`~odeion_archive.errors.BackupFailedError` for a name
        already written, a member that differs from ``size``, or a closed writer.
        """
        if self._closed:
            raise closed_writer("zip", path)
        check_new_name(path, self._keys)
        name = path.encode("utf-8")
        offset = self._out.offset
        self._write(
            LOCAL.pack(
                LOCAL_SIG,
                VERSION,
                FLAGS,
                DEFLATE,
                DOS_TIME,
                DOS_DATE,
                0,
                U32,
                U32,
                len(name),
                ZIP64_LOCAL.size,
            )
            + name
            + ZIP64_LOCAL.pack(1, 16, 0, 0)
        )
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, -15)
        crc = usize = csize = 0
        for piece in sized_pieces(path, chunks, size):
            crc = zlib.crc32(piece, crc)
            usize += len(piece)
            out = compressor.compress(piece)
            self._write(out)
            csize += len(out)
        out = compressor.flush()
        self._write(out)
        csize += len(out)
        self._write(DESCRIPTOR64.pack(DESCRIPTOR_SIG, crc, csize, usize))
        self._written.append(_Written(name, crc, csize, usize, offset))

    def close(self) -> None:
        """Write the central directory, the zip64 end records and the sealed end record."""
        if self._closed:
            return
        self._closed = True
        cd_offset = self._out.offset
        for item in self._written:
            self._write(
                CENTRAL.pack(
                    CENTRAL_SIG,
                    MADE_BY,
                    VERSION,
                    FLAGS,
                    DEFLATE,
                    DOS_TIME,
                    DOS_DATE,
                    item.crc,
                    U32,
                    U32,
                    len(item.name),
                    ZIP64_CENTRAL.size,
                    0,
                    0,
                    0,
                    FILE_ATTR,
                    U32,
                )
                + item.name
                + ZIP64_CENTRAL.pack(1, 24, item.usize, item.csize, item.offset)
            )
        cd_size = self._out.offset - cd_offset
        count = len(self._written)
        eocd64_offset = self._out.offset
        self._write(
            EOCD64.pack(
                EOCD64_SIG,
                EOCD64.size - 12,
                MADE_BY,
                VERSION,
                0,
                0,
                count,
                count,
                cd_size,
                cd_offset,
            )
        )
        self._write(LOCATOR.pack(LOCATOR_SIG, 0, eocd64_offset, 1))
        comment = SEAL_PREFIX + self._out.seal().hex().encode("ascii")
        self._out.stream.write(
            EOCD.pack(
                EOCD_SIG,
                0,
                0,
                min(count, U16),
                min(count, U16),
                min(cd_size, U32),
                min(cd_offset, U32),
                len(comment),
            )
            + comment
        )
        self._out.stream.flush()
