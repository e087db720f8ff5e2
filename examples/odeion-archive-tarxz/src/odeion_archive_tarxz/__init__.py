"""odeion-archive-tarxz: the ``tar.xz`` archive format, written with :mod:`odeion_archive.formatkit`.

An archive is a POSIX tar stream in concatenated xz streams (``tar -xJf``
reads it): per member, a *stored* xz stream (uncompressed LZMA2 chunks)
holding its tar header, then an xz stream of its data; an xz stream holding
the tar end marker; then, after the end marker, a stored stream holding the
index of member offsets and a stored stream holding its 80-byte footer. A
stored stream's length depends only on the length of what it holds, so the
header of a member of unknown size is rewritten in place, and the footer lies
at a fixed distance from the end. The kit's indexed-tar writer and reader do
the rest: names, sizes, the seal, bounded reads, the walk, the checks.

The writer raises as :mod:`odeion_archive.formatkit` says a writer does; the
reader raises :class:`~odeion_archive.errors.CorruptArchiveError` for damaged
data (xz errors included) and :class:`~odeion_archive.errors.UnsafeArchiveError`
for what it refuses.
"""

from __future__ import annotations

import hashlib
import lzma
import zlib
from typing import IO

from odeion_archive import formatkit as kit
from odeion_archive.errors import BackupFailedError, CorruptArchiveError, UnsafeArchiveError
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, ReadLimits

__all__ = ["TarXzFormat", "TarXzReader", "TarXzWriter", "odeion_archive_formats", "stored_xz"]
__version__ = "0.1.0"

_XZ_MAGIC = b"\xfd7zXZ\x00"
_FLAGS = b"\x00\x01"  # CRC32 checks
_MAGIC = b"OdeTxz01"


def _crc(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "little")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def stored_xz(data: bytes) -> bytes:
    """One xz stream holding ``data`` uncompressed; its length depends on ``len(data)`` only."""
    block = bytes([2, 0, 0x21, 1, 0, 0, 0, 0])  # one LZMA2 filter, no sizes, padded
    block += _crc(block)
    pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    chunks = b"".join(
        (b"\x01" if i == 0 else b"\x02") + (len(p) - 1).to_bytes(2, "big") + p
        for i, p in enumerate(pieces)
    )
    body = block + chunks + b"\x00"
    index = b"\x00\x01" + _varint(len(body) + 4) + _varint(len(data))
    index += bytes(-len(index) % 4)
    index += _crc(index)
    backward = (len(index) // 4 - 1).to_bytes(4, "little")
    head = _XZ_MAGIC + _FLAGS + _crc(_FLAGS)
    tail = _crc(backward + _FLAGS) + backward + _FLAGS + b"YZ"
    return head + body + bytes(-len(body) % 4) + _crc(data) + index + tail


_FOOTER_LEN = len(stored_xz(bytes(kit.INDEX_FOOTER.size)))


class TarXzWriter(kit.IndexedTarWriter):
    """Writes a stored header stream and an xz data stream per member; the trailer on close."""

    format_name = "tar.xz"
    magic = _MAGIC

    def __init__(self, stream: IO[bytes], preset: int) -> None:
        super().__init__(stream)
        self._preset = preset

    def header_frame(self, header: bytes) -> bytes:
        return stored_xz(header)

    def compressor(self) -> kit.Compressor:
        return lzma.LZMACompressor(lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=self._preset)

    def trailer(self, index: bytes, footer: bytes) -> bytes:
        return stored_xz(index) + stored_xz(footer)


class TarXzReader(kit.IndexedTarReader):
    """Reads a tar.xz archive: the index for bounded reads, the stream for the walk."""

    format_name = "tar.xz"

    def source(self, start: int, end: int, *, walking: bool = False) -> kit.ByteSource:
        del walking  # the same reads serve the walk
        memlimit = self._limits.max_window_bytes

        def new() -> lzma.LZMADecompressor:
            return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=memlimit)

        return kit.DecompressedRange(self._file, start, end, new, (lzma.LZMAError,))

    def _stored(self, offset: int, length: int) -> bytes:
        """What the stored stream at ``offset`` holds, if it is exactly as the writer made it."""
        raw = self.pread(offset, len(stored_xz(bytes(length))))
        try:
            data = lzma.decompress(raw, lzma.FORMAT_XZ)
        except lzma.LZMAError:
            data = b""
        if len(data) != length or stored_xz(data) != raw:
            raise CorruptArchiveError(f"the tar.xz trailer is damaged; {kit.ADVICE}")
        return data

    def read_index(self) -> kit.Index:
        size = self._file.seek(0, 2)
        if size < 2 * _FOOTER_LEN:
            raise CorruptArchiveError(f"the tar.xz archive is too short; {kit.ADVICE}")
        footer = self._stored(size - _FOOTER_LEN, kit.INDEX_FOOTER.size)
        sha, seal, length, magic = kit.INDEX_FOOTER.unpack(footer)
        if magic != _MAGIC or length > kit.index_bound(self._limits):
            raise UnsafeArchiveError(f"the tar.xz archive has no index of its own; {kit.ADVICE}")
        start = size - _FOOTER_LEN - len(stored_xz(bytes(length)))
        if start <= 0:
            raise CorruptArchiveError(f"the tar.xz index runs past the start; {kit.ADVICE}")
        raw = self._stored(start, length)
        if hashlib.sha256(raw).digest() != sha:
            raise CorruptArchiveError(f"the tar.xz index fails its checksum; {kit.ADVICE}")
        return kit.read_index(raw, start, seal, self._limits, "tar.xz")


class TarXzFormat:
    """POSIX tar in xz streams, one per member, with an index; ``preset`` is 0 (fast) to 9."""

    name = "tar.xz"
    suffix = ".tar.xz"

    def __init__(self, preset: int = 6) -> None:
        if not 0 <= preset <= 9:
            raise BackupFailedError(f"xz preset {preset} is out of range; choose 0 to 9")
        self.preset = preset

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` starts with a stored xz stream holding a POSIX tar header."""
        try:
            block = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(head, kit.TAR_BLOCK)
        except lzma.LZMAError:
            return False
        return head.startswith(_XZ_MAGIC + _FLAGS) and block[257:265] == kit.USTAR_MAGIC

    def open_writer(self, stream: IO[bytes]) -> TarXzWriter:
        """A writer: headers are rewritten in place on a file, a pipe is never seeked."""
        return TarXzWriter(stream, self.preset)

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> TarXzReader:
        """A reader of the seekable ``file``."""
        return TarXzReader(file, limits)


@hookimpl
def odeion_archive_formats() -> list[ArchiveFormat]:
    """The tar.xz format."""
    return [TarXzFormat()]
