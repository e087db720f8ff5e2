"""odeion-archive-tarxz: the ``tar.xz`` archive format, written with :mod:`odeion_archive.formatkit`.

An archive is a POSIX tar stream in concatenated xz streams (``xz -dc | tar -x``
reads it): per member, a *stored* xz stream (uncompressed LZMA2 chunks) holding
its tar header, then an xz stream of its data; an xz stream holding the tar
end marker; then, after the end marker, a stored stream holding the index of
member offsets and a stored stream holding its 80-byte footer (index sha256,
seal, index length, magic). A stored stream's length depends only on the
length of what it holds, so a member of unknown size streams to a file and its
header is rewritten in place; the footer is found at a fixed distance from the
end. A reader rebuilds both trailing streams from their contents and compares.
"""

from __future__ import annotations

import hashlib
import lzma
import zlib
from collections.abc import Iterable, Iterator
from typing import IO

from odeion_archive import formatkit as kit
from odeion_archive.errors import CorruptArchiveError, ManifestError, UnsafeArchiveError
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, Entry, ReadLimits

__all__ = ["TarXzFormat", "odeion_archive_formats"]
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


class _XzSource:
    """Decompresses the xz streams in ``[start, end)`` of a file, bounded at every read."""

    def __init__(self, file: IO[bytes], start: int, end: int, limits: ReadLimits) -> None:
        self._file, self._pos, self._end, self._limits = file, start, end, limits
        self._xz = lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=limits.max_window_bytes)
        self._input = b""

    def read(self, size: int) -> bytes:
        while True:
            if self._xz.eof:
                self._input = self._xz.unused_data
                if not self._input and self._pos >= self._end:
                    return b""
                self._xz = lzma.LZMADecompressor(
                    lzma.FORMAT_XZ, memlimit=self._limits.max_window_bytes
                )
            if self._xz.needs_input and not self._input:
                self._file.seek(self._pos)
                self._input = self._file.read(min(65536, self._end - self._pos))
                self._pos += len(self._input)
                if not self._input:
                    raise CorruptArchiveError(f"the archive ends inside an xz stream; {kit.ADVICE}")
            try:
                data = self._xz.decompress(self._input, size)
            except lzma.LZMAError as exc:
                raise CorruptArchiveError(f"the xz data is invalid ({exc}); {kit.ADVICE}") from exc
            self._input = b""
            if data:
                return data


class TarXzWriter:
    """Writes a stored header stream and a data stream per member; the trailer on close."""

    def __init__(self, stream: IO[bytes], preset: int) -> None:
        self._out, self._preset = kit.SealedOutput(stream), preset
        self._members: list[tuple[str, int]] = []
        self._names: set[str] = set()
        self._closed = False

    def add(self, path: str, chunks: Iterable[bytes], *, size: int | None = None) -> None:
        """Write one member; raises as :mod:`odeion_archive.formatkit` says a writer does."""
        if self._closed:
            raise kit.closed_writer("tar.xz", path)
        kit.check_member_name(path, self._names)
        if size is None and not self._out.can_rewrite():
            with kit.spooled(chunks) as (staged, length):
                self._add(path, staged, length)
        else:
            self._add(path, chunks, size)

    def _add(self, path: str, chunks: Iterable[bytes], size: int | None) -> None:
        offset = self._out.offset
        if size is None:
            self._out.mark_rewrite()
        self._out.write(stored_xz(kit.tar_header(path, size or 0)))
        xz = lzma.LZMACompressor(lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=self._preset)
        written = 0
        for piece in kit.sized_pieces(path, chunks, size):
            written += len(piece)
            self._out.write(xz.compress(piece))
        self._out.write(xz.compress(kit.tar_padding(written)) + xz.flush())
        if size is None:
            self._out.rewrite(offset, stored_xz(kit.tar_header(path, written)))
        self._members.append((path, offset))

    def close(self) -> None:
        """Write the end-marker stream, then the index and footer streams."""
        if self._closed:
            return
        self._closed = True
        end = self._out.offset
        self._out.write(lzma.compress(kit.TAR_END_OF_ARCHIVE, lzma.FORMAT_XZ, lzma.CHECK_CRC64))
        index = kit.index_json(self._members, end)
        footer = kit.INDEX_FOOTER.pack(
            hashlib.sha256(index).digest(), self._out.seal(), len(index), _MAGIC
        )
        self._out.stream.write(stored_xz(index) + stored_xz(footer))
        self._out.stream.flush()


class TarXzReader:
    """Reads a tar.xz archive: the index for bounded reads, the stream for the walk."""

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        self._file, self._limits = file, limits
        self._index: kit.Index | None = None

    def _pread(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    def _stored(self, offset: int, length: int) -> bytes:
        raw = self._pread(offset, len(stored_xz(bytes(length))))
        try:
            data = lzma.decompress(raw, lzma.FORMAT_XZ)
        except lzma.LZMAError:
            data = b""
        if len(data) != length or stored_xz(data) != raw:
            raise CorruptArchiveError(f"the tar.xz trailer is damaged; {kit.ADVICE}")
        return data

    def index(self) -> kit.Index:
        """The trailer's index, read and checked once."""
        if self._index is None:
            size = self._file.seek(0, 2)
            if size < 2 * _FOOTER_LEN:
                raise CorruptArchiveError(f"the tar.xz archive is too short; {kit.ADVICE}")
            sha, seal, length, magic = kit.INDEX_FOOTER.unpack(
                self._stored(size - _FOOTER_LEN, kit.INDEX_FOOTER.size)
            )
            if magic != _MAGIC or length > kit.index_bound(self._limits):
                raise UnsafeArchiveError(f"the tar.xz footer is not this format's; {kit.ADVICE}")
            start = size - _FOOTER_LEN - len(stored_xz(bytes(length)))
            raw = self._stored(start, length) if start > 0 else b""
            if hashlib.sha256(raw).digest() != sha:
                raise CorruptArchiveError(f"the tar.xz index fails its checksum; {kit.ADVICE}")
            self._index = kit.read_index(raw, start, seal, self._limits, "tar.xz")
        return self._index

    def _tar(self, offset: int) -> kit.TarReader:
        index = self.index()
        end = index.frame_ends.get(offset, index.frame_start)
        return kit.TarReader(_XzSource(self._file, offset, end, self._limits), self._limits)

    def _header(self, name: str, offset: int) -> tuple[kit.TarReader, Entry]:
        tar = self._tar(offset)
        found = tar.next_entry()
        if found is None or found[0].name != name:
            raise CorruptArchiveError(
                f"the tar.xz index points at the wrong place for {name!r}; {kit.ADVICE}"
            )
        return tar, found[0]

    def read_member(self, path: str, max_size: int) -> bytes:
        """One small member, through the index."""
        offsets = dict(self.index().members)
        if path not in offsets:
            raise ManifestError(f"the archive has no member {path!r}; use another archive")
        tar, entry = self._header(path, offsets[path])
        if entry.kind != "file" or entry.size > max_size:
            raise UnsafeArchiveError(f"member {path!r} is not a file of at most {max_size} bytes")
        return tar.exact(entry.size, f"member {path!r}")

    def entries(self) -> list[Entry]:
        """Every member's header, through the index."""
        return [self._header(name, offset)[1] for name, offset in self.index().members]

    def walk(self) -> Iterator[kit.TarMember]:
        """Every entry of the tar stream, from the start."""
        yield from kit.walk_tar(
            _XzSource(self._file, 0, self._file.seek(0, 2), self._limits), self._limits
        )

    def container_problems(self) -> list[str]:
        """The trailer, the seal, the headers and the end marker."""
        try:
            index = self.index()
            problems = []
            if kit.sha256_range(self._pread, 0, index.frame_start) != index.seal:
                problems.append(f"the tar.xz archive's seal does not match its bytes; {kit.ADVICE}")
            self.entries()
            end = _XzSource(self._file, index.end, index.frame_start, self._limits)
            if kit.TarReader(end, self._limits).read(3 * kit.TAR_BLOCK) != kit.TAR_END_OF_ARCHIVE:
                problems.append(f"the tar.xz end-of-archive stream is wrong; {kit.ADVICE}")
        except (CorruptArchiveError, UnsafeArchiveError) as exc:
            return [str(exc)]
        return problems

    def close(self) -> None:
        """Forget the index; the file belongs to the caller."""
        self._index = None


class TarXzFormat:
    """POSIX tar in xz streams, one per member, with an index; ``preset`` is 0 to 9."""

    name = "tar.xz"
    suffix = ".tar.xz"

    def __init__(self, preset: int = 6) -> None:
        self.preset = preset

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` starts with a stored xz stream holding a POSIX tar header."""
        try:
            block = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(head, kit.TAR_BLOCK)
        except lzma.LZMAError:
            return False
        return head.startswith(_XZ_MAGIC + _FLAGS) and block[257:265] == kit.USTAR_MAGIC

    def open_writer(self, stream: IO[bytes]) -> TarXzWriter:
        """A writer that rewrites headers in place on a file, and never seeks a pipe."""
        return TarXzWriter(stream, self.preset)

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> TarXzReader:
        """A reader of the seekable ``file``."""
        return TarXzReader(file, limits)


@hookimpl
def odeion_archive_formats() -> list[ArchiveFormat]:
    """The tar.xz format."""
    return [TarXzFormat()]
