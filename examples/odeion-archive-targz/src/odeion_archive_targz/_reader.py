"""The tar.gz reader: bounded reads through the index, and a walk that trusts only the stream."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import IO, Any

import attrs

from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.formatkit import (
    ADVICE,
    MAX_NAME_BYTES,
    TarMember,
    TarReader,
    sha256_range,
    walk_tar,
)
from odeion_archive.formatkit import TAR_BLOCK as BLOCK
from odeion_archive.formatkit import TAR_END_OF_ARCHIVE as END_OF_ARCHIVE
from odeion_archive.interfaces import Entry, ReadLimits
from odeion_archive_targz._gzip import (
    FOOTER_READ,
    MEMBER_HEADER,
    TRAILER_HEADER,
    GzipStream,
    parse_footer,
    trailer_size,
)
from odeion_archive_targz._writer import INDEX_VERSION

__all__ = ["TarGzReader"]

#: Largest pax extended header the kit's tar reader accepts.
MAX_PAX_BYTES = 64 * 1024
#: Compressed bytes a header-only read may take: deflate never needs twice its output.
_HEADER_INPUT = 2 * (MAX_PAX_BYTES + 3 * BLOCK) + 64 * 1024


@attrs.frozen
class _Index:
    #: ``(name, start, end)`` of each member's gzip member, in archive order.
    members: tuple[tuple[str, int, int], ...]
    eof: int
    trailer_start: int
    seal: bytes


def _strict_json(raw: bytes) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            result[key] = value
        return result

    def constant(name: str) -> Any:
        raise ValueError(f"non-finite number {name}")

    try:
        return json.loads(raw.decode("ascii"), object_pairs_hook=pairs, parse_constant=constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorruptArchiveError(f"the tar.gz index is not valid JSON; {ADVICE}") from None


def _is_int(value: Any) -> bool:
    return type(value) is int


class TarGzReader:
    """Reads a tar.gz archive of this format without trusting its index or its stream."""

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        self._file = file
        self._limits = limits
        self._index: _Index | None = None

    def _pread(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    # -- the index -----------------------------------------------------------

    def index(self) -> _Index:
        """The trailer's index, read and checked once."""
        if self._index is None:
            self._index = self._read_index()
        return self._index

    def _read_index(self) -> _Index:
        size = self._file.seek(0, 2)
        if size < len(MEMBER_HEADER) + trailer_size(0):
            raise CorruptArchiveError(f"the tar.gz archive is too short; {ADVICE}")
        footer = parse_footer(self._pread(size - FOOTER_READ, FOOTER_READ))
        bound = self._limits.max_members * (3 * MAX_NAME_BYTES + 40) + 256
        if footer.index_length > bound:
            raise UnsafeArchiveError(
                f"the tar.gz index declares {footer.index_length} bytes, more than {bound}; "
                f"{ADVICE}"
            )
        trailer_start = size - trailer_size(footer.index_length)
        if trailer_start < len(MEMBER_HEADER):
            raise CorruptArchiveError(f"the tar.gz index runs past the start; {ADVICE}")
        if self._pread(trailer_start, len(TRAILER_HEADER)) != TRAILER_HEADER:
            raise CorruptArchiveError(f"the tar.gz index member's header is wrong; {ADVICE}")
        raw = self._pread(trailer_start + len(TRAILER_HEADER), footer.index_length)
        if hashlib.sha256(raw).digest() != footer.index_sha256:
            raise CorruptArchiveError(f"the tar.gz index fails its checksum; {ADVICE}")
        return self._check_index(_strict_json(raw), trailer_start, footer.seal)

    def _check_index(self, data: Any, trailer_start: int, seal: bytes) -> _Index:
        bad = CorruptArchiveError(f"the tar.gz index is malformed; {ADVICE}")
        if not isinstance(data, dict) or set(data) != {"eof", "members", "version"}:
            raise bad
        if data["version"] != INDEX_VERSION or not _is_int(data["version"]):
            raise CorruptArchiveError(
                f"the tar.gz index has version {data['version']!r}; this reader knows version "
                f"{INDEX_VERSION}: upgrade odeion-archive-targz, or use another archive"
            )
        eof, members = data["eof"], data["members"]
        if not _is_int(eof) or not isinstance(members, list):
            raise bad
        if len(members) > self._limits.max_members:
            raise UnsafeArchiveError(
                f"the tar.gz archive lists {len(members)} members, more than the limit of "
                f"{self._limits.max_members}; refusing it (raise ReadLimits.max_members only "
                "for an archive you trust)"
            )
        starts: list[tuple[str, int]] = []
        for item in members:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], str)
                or not _is_int(item[1])
            ):
                raise bad
            starts.append((item[0], item[1]))
        offsets = [offset for _, offset in starts] + [eof]
        if offsets[0] != 0 or any(
            b - a < len(MEMBER_HEADER)
            for a, b in zip(offsets, [*offsets[1:], trailer_start], strict=True)
        ):
            raise bad
        if len({name for name, _ in starts}) != len(starts):
            raise bad
        result = tuple(
            (name, start, end) for (name, start), end in zip(starts, offsets[1:], strict=True)
        )
        return _Index(result, eof, trailer_start, seal)

    # -- one gzip member ---------------------------------------------------------

    def _member_parser(
        self, start: int, end: int, max_input: int, *, single: bool = True
    ) -> tuple[TarReader, GzipStream]:
        if self._pread(start, len(MEMBER_HEADER)) != MEMBER_HEADER:
            raise CorruptArchiveError(
                f"the tar.gz index points at offset {start}, where no member of this format "
                f"starts; {ADVICE}"
            )
        stream = GzipStream(self._file, start, end, single=single, max_input=max_input)
        return TarReader(stream, self._limits), stream

    def read_member(self, path: str, max_size: int) -> bytes:
        """The whole of one small member, from its two gzip members (a bounded read)."""
        found = {name: (start, end) for name, start, end in self.index().members}.get(path)
        if found is None:
            raise ManifestError(
                f"the archive has no member {path!r}; it is not an odeion archive or it is "
                "incomplete, use another archive"
            )
        budget = 2 * (max_size + MAX_PAX_BYTES + 3 * BLOCK) + 64 * 1024
        parser, stream = self._member_parser(*found, budget, single=False)
        header = parser.next_entry()
        if header is None or header[0].name != path or header[0].kind != "file":
            raise CorruptArchiveError(
                f"the tar.gz index points at the wrong place for {path!r}; {ADVICE}"
            )
        entry = header[0]
        if entry.size > max_size:
            raise UnsafeArchiveError(
                f"member {path!r} declares {entry.size} bytes, more than the limit of "
                f"{max_size}; {ADVICE}"
            )
        data = parser.exact(entry.size, f"member {path!r}")
        parser.exact(-entry.size % BLOCK, f"member {path!r}")
        if parser.read(1) or not stream.ended_cleanly():
            raise CorruptArchiveError(
                f"the gzip member of {path!r} does not end where the index says; {ADVICE}"
            )
        return data

    def entries(self) -> list[Entry]:
        """Every member as the index lists it and its own header declares it (no data read)."""
        result = []
        for name, start, end in self.index().members:
            found = self._member_parser(start, end, _HEADER_INPUT)[0].next_entry()
            if found is None or found[0].name != name:
                raise CorruptArchiveError(
                    f"the tar.gz index points at the wrong place for {name!r}; {ADVICE}"
                )
            result.append(found[0])
        return result

    # -- the stream --------------------------------------------------------------

    def walk(self) -> Iterator[TarMember]:
        """Every entry of the tar stream, decompressed from the start (the index is not used)."""
        size = self._file.seek(0, 2)
        yield from walk_tar(GzipStream(self._file, 0, size), self._limits)

    def container_problems(self) -> list[str]:
        """Check the trailer, the seal, the members' headers and the end-of-archive member."""
        try:
            index = self.index()
        except ArchiveInvalidError as exc:
            return [str(exc)]
        problems = []
        if sha256_range(self._pread, 0, index.trailer_start) != index.seal:
            problems.append(f"the tar.gz archive's seal does not match its bytes; {ADVICE}")
        try:
            self.entries()
            parser, stream = self._member_parser(index.eof, index.trailer_start, _HEADER_INPUT)
            if parser.read(len(END_OF_ARCHIVE) + 1) != END_OF_ARCHIVE or not stream.ended_cleanly():
                problems.append(f"the tar.gz end-of-archive member is wrong; {ADVICE}")
        except ArchiveInvalidError as exc:
            problems.append(str(exc))
        return problems

    def close(self) -> None:
        """Forget the index; the file belongs to the caller."""
        self._index = None
