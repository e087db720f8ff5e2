"""A tar stream cut into independently compressed frames, with an index: writer and reader.

The layout tar.zst uses, for any compressor that can concatenate frames
(zstd, xz, gzip): per member, a *header frame* holding the member's tar header
whose length depends on the name only (a stored, uncompressed frame), then a
frame holding its data and padding; a frame holding the tar end marker; then
the *trailer*, holding the index of member offsets and its 80-byte footer
(:mod:`._index`). A subclass says how to make each of these.

A member of unknown size streams straight through on an output that can seek
(the archive file): its header frame is rewritten in place once the size is
known, and the seal covers the bytes as finally written. Only on an output
that cannot seek (a pipe) is such a member spooled first.

The reader finds one member with a bounded read through the index, lists the
members by decoding each header frame, and walks the stream from the start,
ignoring the index: the stream is the truth.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Protocol

from odeion_archive._manifest import ContainerPrefix
from odeion_archive._names import ADVICE
from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.formats._common import (
    SealedOutput,
    check_new_name,
    closed_writer,
    sha256_range,
    sized_pieces,
    spooled,
)
from odeion_archive.formats._index import FOOTER, Index, index_json
from odeion_archive.formats._tar import (
    BLOCK,
    END_OF_ARCHIVE,
    ByteSource,
    TarMember,
    TarReader,
    tar_header,
    tar_padding,
    walk_tar,
)
from odeion_archive.interfaces import Entry, ReadLimits

__all__ = ["Compressor", "DecompressedRange", "IndexedTarReader", "IndexedTarWriter"]


class Compressor(Protocol):
    """One compressed frame, fed piece by piece (``zlib``, ``lzma``, ``zstandard`` objects)."""

    def compress(self, data: Any, /) -> bytes:
        """Compressed bytes for ``data`` (possibly none yet)."""
        ...

    def flush(self) -> bytes:
        """The rest of the frame."""
        ...


class IndexedTarWriter(abc.ABC):
    """Writes the header frame and data frame of each member; the end and trailer on close."""

    #: The format's name, for messages.
    format_name = "tar"
    #: The last 8 bytes of the footer.
    magic = b"OdeIdx01"

    def __init__(self, stream: IO[bytes]) -> None:
        self._out = SealedOutput(stream)
        self._index: list[tuple[str, int]] = []
        self._keys: set[str] = set()
        self._closed = False

    @abc.abstractmethod
    def header_frame(self, header: bytes) -> bytes:
        """A frame holding ``header`` whose length depends on ``len(header)`` only."""

    @abc.abstractmethod
    def compressor(self) -> Compressor:
        """A compressor for one data frame."""

    @abc.abstractmethod
    def trailer(self, index: bytes, footer: bytes) -> bytes:
        """The bytes after the end-of-archive frame: the index, then the footer."""

    def add(
        self, path: str, chunks: Iterable[bytes], *, size: int | None = None
    ) -> ContainerPrefix:
        """Write one regular member, streaming; ``size`` is checked if given.

        Returns the container's bytes through the member: the reader walks
        the tar stream from the start, so these bytes alone make the member.
        Raises :class:`~odeion_archive.errors.UnsafeArchiveError` for an unsafe
        name and :class:`~odeion_archive.errors.BackupFailedError` for a name
        already written, a member that differs from ``size``, or a closed writer.
        """
        if self._closed:
            raise closed_writer(self.format_name, path)
        check_new_name(path, self._keys)
        if size is None and not self._out.can_rewrite():
            with spooled(chunks) as (staged, length):
                self._add(path, staged, length)
        else:
            self._add(path, chunks, size)
        return self._out.prefix()

    def _add(self, path: str, chunks: Iterable[bytes], size: int | None) -> None:
        out = self._out
        offset = out.offset
        if size is None:
            out.mark_rewrite()
        out.write(self.header_frame(tar_header(path, size or 0)))
        frame = self.compressor()
        written = 0
        for piece in sized_pieces(path, chunks, size):
            written += len(piece)
            out.write(frame.compress(piece))
        out.write(frame.compress(tar_padding(written)))
        out.write(frame.flush())
        if size is None:
            out.rewrite(offset, self.header_frame(tar_header(path, written)))
        self._index.append((path, offset))

    def close(self) -> None:
        """Write the end-of-archive frame and the trailer with the sealed index."""
        if self._closed:
            return
        self._closed = True
        out = self._out
        end = out.offset
        frame = self.compressor()
        out.write(frame.compress(END_OF_ARCHIVE) + frame.flush())
        index = index_json(self._index, end)
        footer = FOOTER.pack(hashlib.sha256(index).digest(), out.seal(), len(index), self.magic)
        out.stream.write(self.trailer(index, footer))
        out.stream.flush()


class DecompressedRange:
    """Decompresses the concatenated frames in ``[start, end)`` of a file, bounded.

    ``new`` makes a decompressor (an object with ``decompress(data, max_length)``,
    ``eof``, ``unused_data``, and ``needs_input`` or ``unconsumed_tail``, as
    :mod:`lzma`, :mod:`bz2` and :mod:`zlib` make); ``errors`` are the
    exceptions it raises for damaged data, reported as
    :class:`~odeion_archive.errors.CorruptArchiveError`.
    """

    def __init__(
        self,
        file: IO[bytes],
        start: int,
        end: int,
        new: Callable[[], Any],
        errors: tuple[type[Exception], ...],
    ) -> None:
        self._file, self._pos, self._end = file, start, end
        self._new, self._errors = new, errors
        self._decoder = new()
        self._input = b""

    def read(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes; ``b""`` only at the end of the range."""
        while True:
            if self._decoder.eof:
                self._input = self._decoder.unused_data
                if not self._input and self._pos >= self._end:
                    return b""
                self._decoder = self._new()
            if not self._input and getattr(self._decoder, "needs_input", True):
                self._file.seek(self._pos)
                self._input = self._file.read(min(64 * 1024, self._end - self._pos))
                self._pos += len(self._input)
                if not self._input:
                    raise CorruptArchiveError(f"the archive ends inside a frame; {ADVICE}")
            try:
                data = self._decoder.decompress(self._input, size)
            except self._errors as exc:
                raise CorruptArchiveError(
                    f"the compressed data is invalid ({exc}); {ADVICE}"
                ) from exc
            self._input = getattr(self._decoder, "unconsumed_tail", b"")
            if data:
                return bytes(data)


class IndexedTarReader(abc.ABC):
    """Reads an indexed tar archive without trusting its index or its stream."""

    #: The format's name, for messages.
    format_name = "tar"

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        self._file = file
        self._limits = limits
        self._index: Index | None = None

    @abc.abstractmethod
    def read_index(self) -> Index:
        """Read the trailer and return the checked index (see :func:`._index.read_index`)."""

    @abc.abstractmethod
    def source(self, start: int, end: int, *, walking: bool = False) -> ByteSource:
        """The decompressed bytes of the frames in ``[start, end)``."""

    def pread(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes of the file at ``offset``."""
        self._file.seek(offset)
        return self._file.read(size)

    def index(self) -> Index:
        """The index, read and checked once."""
        if self._index is None:
            self._index = self.read_index()
        return self._index

    def _header(self, name: str, offset: int) -> tuple[TarReader, Entry, int]:
        index = self.index()
        end = index.frame_ends.get(offset, index.frame_start)
        tar = TarReader(self.source(offset, end), self._limits)
        found = tar.next_entry()
        if found is None or found[0].name != name:
            raise CorruptArchiveError(
                f"the {self.format_name} index points at the wrong place for {name!r}; {ADVICE}"
            )
        return tar, found[0], found[1]

    def read_member(self, path: str, max_size: int) -> bytes:
        """The whole of one small member, found through the index (a bounded read)."""
        offsets = dict(self.index().members)
        if path not in offsets:
            raise ManifestError(
                f"the archive has no member {path!r}; it is not an odeion archive or it is "
                "incomplete, use another archive"
            )
        tar, entry, padded = self._header(path, offsets[path])
        if entry.kind != "file":
            raise CorruptArchiveError(
                f"the {self.format_name} index points at the wrong place for {path!r}; {ADVICE}"
            )
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
        """Every member as the index and each header frame declare it (no data read)."""
        return [self._header(name, offset)[1] for name, offset in self.index().members]

    def walk(self) -> Iterator[TarMember]:
        """Every entry of the tar stream, decompressed from the start."""
        size = self._file.seek(0, 2)
        yield from walk_tar(self.source(0, size, walking=True), self._limits)

    def container_problems(self) -> list[str]:
        """Check the trailer, the seal, that the index points at its members, and the end."""
        try:
            index = self.index()
        except ArchiveInvalidError as exc:
            return [str(exc)]
        problems = []
        if sha256_range(self.pread, 0, index.frame_start) != index.seal:
            problems.append(
                f"the {self.format_name} archive's seal does not match its bytes; {ADVICE}"
            )
        try:
            self.entries()
            end = TarReader(self.source(index.end, index.frame_start), self._limits)
            if end.read(3 * BLOCK) != END_OF_ARCHIVE:
                problems.append(f"the {self.format_name} end-of-archive frame is wrong; {ADVICE}")
        except ArchiveInvalidError as exc:
            problems.append(str(exc))
        return problems

    def close(self) -> None:
        """Forget the index; the file belongs to the caller."""
        self._index = None
