"""The zip archive format: a streaming writer and a strict, bounded reader.

The writer never seeks, so it writes to a pipe as well as to a file. Each
member is a local header with the data-descriptor flag and a zip64 extra
field, raw deflate data, and a zip64 data descriptor. The trailer is the
central directory, a zip64 end-of-central-directory record and locator, and
an end-of-central-directory record whose comment is the archive's *seal*:
``odeion-archive seal sha256:<hex>``, the sha256 of every byte before that
record. Every timestamp is 1980-01-01 00:00, every mode 0644, so the same
members in the same order give the same bytes.

The reader parses the end records and the central directory itself, bounded
by :class:`~odeion_archive.interfaces.ReadLimits` and by small per-entry
limits (names of at most ``MAX_NAME_BYTES``, extra fields and comments of at
most 64 bytes), one entry at a time, so that memory does not grow with the
directory's size. Before a byte is decompressed it checks the layout: each
member's local header agrees with its directory entry (name, flags, method,
time, CRC-32 and sizes, in the header or its data descriptor), and the members
follow one another from the first byte to the central directory, disjoint and
with nothing between them, so no two entries share data (the "overlapping
entries" zip bomb) and the data decompressed is bounded by the sizes declared.
It then decompresses a member chunk by chunk, refusing output beyond the size
the directory declares.
"""

from __future__ import annotations

import hashlib
import stat
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import IO

import attrs

from odeion_archive._modes import mode_problem
from odeion_archive._names import MAX_NAME_BYTES, check_name, name_key
from odeion_archive.errors import (
    BackupFailedError,
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, Entry, EntryKind, ReadLimits

__all__ = ["SEAL_PREFIX", "ZipFormat", "odeion_archive_formats"]

#: Start of the end-of-central-directory comment that carries the seal.
SEAL_PREFIX = b"odeion-archive seal sha256:"

_LOCAL_SIG = 0x04034B50
_CENTRAL_SIG = 0x02014B50
_DESCRIPTOR_SIG = 0x08074B50
_EOCD64_SIG = 0x06064B50
_LOCATOR_SIG = 0x07064B50
_EOCD_SIG = 0x06054B50

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_DESCRIPTOR64 = struct.Struct("<IIQQ")
_DESCRIPTOR32 = struct.Struct("<IIII")
_ZIP64_LOCAL = struct.Struct("<HHQQ")
_ZIP64_CENTRAL = struct.Struct("<HHQQQ")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR = struct.Struct("<IIQI")
_EOCD = struct.Struct("<IHHHHIIH")

_VERSION = 45  # zip64
_MADE_BY = (3 << 8) | 45  # Unix, so that the external attributes carry the mode
_FLAGS = 0x0808  # data descriptor follows the data; names are UTF-8
_DEFLATE = 8
_STORED = 0
_DOS_TIME = 0
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
_FILE_ATTR = (stat.S_IFREG | 0o644) << 16
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF
_PIECE = 1024 * 1024
_READ = 64 * 1024
_SEAL_LEN = len(SEAL_PREFIX) + 64
#: Longest extra field, and longest comment, of one entry (the writer's are 20 and 28, and 0).
_MAX_EXTRA = 64
_MAX_ENTRY_COMMENT = 64
_MAX_ENTRY = _CENTRAL.size + MAX_NAME_BYTES + _MAX_EXTRA + _MAX_ENTRY_COMMENT
_ADVICE = "the archive is damaged or was tampered with, use another archive"


# -- writing -----------------------------------------------------------------


@attrs.define
class _Written:
    name: bytes
    crc: int
    csize: int
    usize: int
    offset: int


class _ZipWriter:
    """Writes members as they come; the trailer on :meth:`close`."""

    def __init__(self, stream: IO[bytes], level: int) -> None:
        self._out = stream
        self._level = level
        self._offset = 0
        self._hash = hashlib.sha256()
        self._written: list[_Written] = []
        self._keys: set[str] = set()
        self._closed = False

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._hash.update(data)
        self._offset += len(data)

    def add(self, path: str, chunks: Iterable[bytes], *, size: int | None = None) -> None:
        """Write one regular member, streaming; ``size``, if given, is checked."""
        if self._closed:
            raise BackupFailedError(
                f"cannot add {path!r}: the zip writer is closed; add members before close()"
            )
        _check_new_name(path, self._keys)
        name = path.encode("utf-8")
        offset = self._offset
        self._write(
            _LOCAL.pack(
                _LOCAL_SIG,
                _VERSION,
                _FLAGS,
                _DEFLATE,
                _DOS_TIME,
                _DOS_DATE,
                0,
                _U32,
                _U32,
                len(name),
                _ZIP64_LOCAL.size,
            )
            + name
            + _ZIP64_LOCAL.pack(1, 16, 0, 0)
        )
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, -15)
        crc = usize = csize = 0
        for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), _PIECE):
                piece = view[start : start + _PIECE]
                crc = zlib.crc32(piece, crc)
                usize += len(piece)
                out = compressor.compress(piece)
                if out:
                    self._write(out)
                    csize += len(out)
        out = compressor.flush()
        self._write(out)
        csize += len(out)
        if size is not None and size != usize:
            raise BackupFailedError(
                f"member {path!r} was announced with {size} bytes but {usize} were written; "
                "the archive is unusable, fix the component that wrote it"
            )
        self._write(_DESCRIPTOR64.pack(_DESCRIPTOR_SIG, crc, csize, usize))
        self._written.append(_Written(name, crc, csize, usize, offset))

    def close(self) -> None:
        """Write the central directory, the zip64 end records and the sealed end record."""
        if self._closed:
            return
        self._closed = True
        cd_offset = self._offset
        for item in self._written:
            self._write(
                _CENTRAL.pack(
                    _CENTRAL_SIG,
                    _MADE_BY,
                    _VERSION,
                    _FLAGS,
                    _DEFLATE,
                    _DOS_TIME,
                    _DOS_DATE,
                    item.crc,
                    _U32,
                    _U32,
                    len(item.name),
                    _ZIP64_CENTRAL.size,
                    0,
                    0,
                    0,
                    _FILE_ATTR,
                    _U32,
                )
                + item.name
                + _ZIP64_CENTRAL.pack(1, 24, item.usize, item.csize, item.offset)
            )
        cd_size = self._offset - cd_offset
        count = len(self._written)
        eocd64_offset = self._offset
        self._write(
            _EOCD64.pack(
                _EOCD64_SIG,
                _EOCD64.size - 12,
                _MADE_BY,
                _VERSION,
                0,
                0,
                count,
                count,
                cd_size,
                cd_offset,
            )
        )
        self._write(_LOCATOR.pack(_LOCATOR_SIG, 0, eocd64_offset, 1))
        comment = SEAL_PREFIX + self._hash.hexdigest().encode("ascii")
        self._out.write(
            _EOCD.pack(
                _EOCD_SIG,
                0,
                0,
                min(count, _U16),
                min(count, _U16),
                min(cd_size, _U32),
                min(cd_offset, _U32),
                len(comment),
            )
            + comment
        )
        self._out.flush()


def _check_new_name(path: str, keys: set[str]) -> None:
    check_name(path)
    key = name_key(path)
    if key in keys:
        raise BackupFailedError(
            f"member {path!r} was already written (names are compared case- and "
            "normalisation-insensitively); give each member a distinct name"
        )
    keys.add(key)


# -- reading -----------------------------------------------------------------


@attrs.frozen
class _CentralEntry:
    name: str
    raw_name: bytes
    made_by: int
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc: int
    csize: int
    usize: int
    offset: int
    external_attr: int
    #: Where the member's data starts, once the layout is checked.
    data_start: int = -1

    @property
    def kind(self) -> EntryKind:
        if self.name.endswith("/"):
            return "directory"
        if self.made_by >> 8 == 3:  # Unix: the mode is in the high half
            mode = self.external_attr >> 16
            if stat.S_IFMT(mode) == 0 or stat.S_ISREG(mode):  # no type bits: a file
                return "file"
            if stat.S_ISLNK(mode):
                return "symlink"
            if stat.S_ISDIR(mode):
                return "directory"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                return "device"
            if stat.S_ISFIFO(mode):
                return "fifo"
            return "other"
        if self.external_attr & 0x10:  # MS-DOS directory attribute
            return "directory"
        return "file"


@attrs.frozen
class _Directory:
    entries: tuple[_CentralEntry, ...]
    eocd_offset: int
    eocd: tuple[int, ...]
    comment: bytes
    eocd64_offset: int | None
    eocd64: tuple[int, ...] | None
    locator: tuple[int, ...] | None
    cd_offset: int
    cd_size: int


class _ZipMember:
    def __init__(self, reader: _ZipReader, entry: _CentralEntry) -> None:
        self._reader = reader
        self._central = entry
        self.entry = Entry(entry.name, entry.kind, entry.usize)

    def chunks(self) -> Iterator[bytes]:
        return self._reader._data(self._central)  # noqa: SLF001


class _ZipReader:
    """Reads a zip archive without trusting any of its fields."""

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        self._file = file
        self._limits = limits
        self._directory: _Directory | None = None
        self._size: int | None = None

    # -- low level -----------------------------------------------------------

    def _pread(self, offset: int, size: int) -> bytes:
        if not 0 <= offset <= self._file_size():
            # A damaged offset can point anywhere, past the file or past what seek takes.
            raise CorruptArchiveError(
                f"the zip archive points at offset {offset}, outside the file; {_ADVICE}"
            )
        self._file.seek(offset)
        return self._file.read(size)

    def _exact(self, offset: int, size: int, what: str) -> bytes:
        data = self._pread(offset, size)
        if len(data) != size:
            raise CorruptArchiveError(f"the zip archive ends inside {what}; {_ADVICE}")
        return data

    def _file_size(self) -> int:
        if self._size is None:
            self._size = self._file.seek(0, 2)
        return self._size

    # -- the directory -------------------------------------------------------

    def directory(self) -> _Directory:
        if self._directory is None:
            self._directory = self._read_directory()
        return self._directory

    def _read_directory(self) -> _Directory:
        size = self._file_size()
        tail_len = min(size, _EOCD.size + _U16)
        tail = self._pread(size - tail_len, tail_len)
        pos = len(tail)
        while True:
            pos = tail.rfind(b"PK\x05\x06", 0, pos)
            if pos < 0 or len(tail) - pos < _EOCD.size:
                if pos < 0:
                    raise CorruptArchiveError(
                        "the zip archive has no end-of-central-directory record; it is "
                        f"truncated or not a zip archive; {_ADVICE}"
                    )
                continue
            fields = _EOCD.unpack_from(tail, pos)
            if pos + _EOCD.size + fields[7] == len(tail):
                break
        eocd_offset = size - tail_len + pos
        comment = tail[pos + _EOCD.size :]
        _sig, _disk, _cd_disk, _n_disk, count, cd_size, cd_offset, _clen = fields
        eocd64_offset: int | None = None
        eocd64: tuple[int, ...] | None = None
        locator: tuple[int, ...] | None = None
        if eocd_offset >= _LOCATOR.size:
            raw = self._pread(eocd_offset - _LOCATOR.size, _LOCATOR.size)
            if raw[:4] == b"PK\x06\x07":
                locator = _LOCATOR.unpack(raw)
                eocd64_offset = locator[2]
                if eocd64_offset + _EOCD64.size > eocd_offset - _LOCATOR.size:
                    raise CorruptArchiveError(
                        f"the zip64 end record lies outside the archive; {_ADVICE}"
                    )
                eocd64 = _EOCD64.unpack(self._exact(eocd64_offset, _EOCD64.size, "zip64 end"))
                if eocd64[0] != _EOCD64_SIG:
                    raise CorruptArchiveError(
                        f"the zip64 end record has a wrong signature; {_ADVICE}"
                    )
                count, cd_size, cd_offset = eocd64[7], eocd64[8], eocd64[9]
        if count > self._limits.max_members:
            raise UnsafeArchiveError(
                f"the zip archive declares {count} members, more than the limit of "
                f"{self._limits.max_members}; refusing it (raise ReadLimits.max_members "
                "only for an archive you trust)"
            )
        end = eocd64_offset if eocd64_offset is not None else eocd_offset
        if cd_offset + cd_size != end:
            raise CorruptArchiveError(
                "the zip central directory does not end where the end records start "
                f"(it lies outside the archive or leaves bytes unaccounted); {_ADVICE}"
            )
        if cd_size > count * _MAX_ENTRY:
            raise UnsafeArchiveError(
                f"the zip central directory takes {cd_size} bytes, more than its {count} "
                f"entries may (at most {_MAX_ENTRY} bytes each); {_ADVICE}"
            )
        central = tuple(self._parse_central(cd_offset, cd_size, count))
        entries = self._check_layout(central, cd_offset)
        return _Directory(
            entries,
            eocd_offset,
            fields,
            comment,
            eocd64_offset,
            eocd64,
            locator,
            cd_offset,
            cd_size,
        )

    def _parse_central(self, cd_offset: int, cd_size: int, count: int) -> Iterator[_CentralEntry]:
        """The directory's entries, read one at a time (memory does not grow with it)."""
        pos = cd_offset
        end = cd_offset + cd_size
        for number in range(count):
            if pos + _CENTRAL.size > end:
                raise CorruptArchiveError(
                    f"the zip central directory is shorter than its entry count; {_ADVICE}"
                )
            fields = _CENTRAL.unpack(self._exact(pos, _CENTRAL.size, "the central directory"))
            (
                sig,
                made_by,
                _version,
                flags,
                method,
                dos_time,
                dos_date,
                crc,
                csize,
                usize,
                nlen,
                elen,
                clen,
                _disk,
                _iattr,
                eattr,
                offset,
            ) = fields
            if sig != _CENTRAL_SIG:
                raise CorruptArchiveError(
                    f"a zip central directory entry has a wrong signature; {_ADVICE}"
                )
            if nlen > MAX_NAME_BYTES or elen > _MAX_EXTRA or clen > _MAX_ENTRY_COMMENT:
                raise UnsafeArchiveError(
                    f"zip central directory entry {number + 1} has a name of {nlen} bytes, an "
                    f"extra field of {elen} and a comment of {clen}; odeion archives use at "
                    f"most {MAX_NAME_BYTES}, {_MAX_EXTRA} and {_MAX_ENTRY_COMMENT}, so {_ADVICE}"
                )
            start = pos + _CENTRAL.size
            pos = start + nlen + elen + clen
            if pos > end:
                raise CorruptArchiveError(
                    f"a zip central directory entry runs past the directory; {_ADVICE}"
                )
            rest = self._exact(start, nlen + elen, "the central directory")
            raw_name, extra = rest[:nlen], rest[nlen:]
            name = _decode_name(raw_name, flags)
            usize, csize, offset = _zip64(extra, usize, csize, offset, name)
            yield _CentralEntry(
                name,
                raw_name,
                made_by,
                flags,
                method,
                dos_time,
                dos_date,
                crc,
                csize,
                usize,
                offset,
                eattr,
            )
        if pos != end:
            raise CorruptArchiveError(
                f"the zip central directory has bytes after its last entry; {_ADVICE}"
            )

    # -- the layout ----------------------------------------------------------

    def _check_layout(
        self, entries: tuple[_CentralEntry, ...], cd_offset: int
    ) -> tuple[_CentralEntry, ...]:
        """Check, reading only headers, that the members tile the file up to the directory.

        Each member must start right where the previous one ended (the first at
        0), its local header and data descriptor must agree with its directory
        entry, and the last must end where the directory starts: entries that
        overlap (share compressed data) or leave bytes unaccounted are refused
        before anything is decompressed. Returns the entries with their data
        offsets.
        """
        checked = []
        expected = 0
        for entry in entries:
            if entry.offset != expected:
                how = "overlaps the previous one" if entry.offset < expected else "leaves a gap"
                raise CorruptArchiveError(
                    f"member {entry.name!r} starts at byte {entry.offset}, not right after the "
                    f"previous member (byte {expected}): it {how}; {_ADVICE}"
                )
            _check_entry_fields(entry)
            data_start, descriptor = self._check_local(entry)
            data_end = data_start + entry.csize
            if data_end + descriptor > cd_offset:
                raise CorruptArchiveError(
                    f"the data of member {entry.name!r} runs into the central directory; {_ADVICE}"
                )
            if descriptor:
                self._check_descriptor(entry, data_end, descriptor)
            expected = data_end + descriptor
            checked.append(attrs.evolve(entry, data_start=data_start))
        if expected != cd_offset:
            raise CorruptArchiveError(
                f"the zip archive holds {cd_offset - expected} bytes that no member accounts "
                f"for before its central directory; {_ADVICE}"
            )
        return tuple(checked)

    def _check_local(self, entry: _CentralEntry) -> tuple[int, int]:
        """Check the local header of ``entry``; return its data offset and descriptor size."""
        header = _LOCAL.unpack(self._exact(entry.offset, _LOCAL.size, "a local header"))
        sig, _version, flags, method, dos_time, dos_date, crc, csize, usize, nlen, elen = header
        if sig != _LOCAL_SIG:
            raise CorruptArchiveError(
                f"the local header of {entry.name!r} has a wrong signature; {_ADVICE}"
            )
        if elen > _MAX_EXTRA:
            raise UnsafeArchiveError(
                f"the local header of {entry.name!r} has an extra field of {elen} bytes, more "
                f"than the {_MAX_EXTRA} odeion archives use; {_ADVICE}"
            )
        rest = self._exact(entry.offset + _LOCAL.size, nlen + elen, "a local header")
        raw_name, extra = rest[:nlen], rest[nlen:]

        def disagree(what: str) -> CorruptArchiveError:
            return CorruptArchiveError(
                f"the local header of {entry.name!r} disagrees with the central directory on "
                f"{what}; {_ADVICE}"
            )

        if raw_name != entry.raw_name:
            raise disagree(f"the name (it says {raw_name!r})")
        if flags != entry.flags:
            raise disagree(f"the flags ({flags:#06x}, not {entry.flags:#06x})")
        if method != entry.method:
            raise disagree(f"the compression method ({method}, not {entry.method})")
        if (dos_time, dos_date) != (entry.dos_time, entry.dos_date):
            raise disagree("the modification time")
        zip64 = _has_zip64(extra)
        if flags & 0x8:  # sizes and CRC-32 follow the data, in a data descriptor
            local_sizes = _local_zip64(extra, usize, csize) if zip64 else (usize, csize)
            if crc != 0 or local_sizes != (0, 0):
                raise disagree("the CRC-32 and sizes (a member with a data descriptor has none)")
            return entry.offset + _LOCAL.size + nlen + elen, (
                _DESCRIPTOR64.size if zip64 else _DESCRIPTOR32.size
            )
        if crc != entry.crc:
            raise disagree("the CRC-32")
        if _local_zip64(extra, usize, csize) != (entry.usize, entry.csize):
            raise disagree("the sizes")
        return entry.offset + _LOCAL.size + nlen + elen, 0

    def _check_descriptor(self, entry: _CentralEntry, offset: int, size: int) -> None:
        layout = _DESCRIPTOR64 if size == _DESCRIPTOR64.size else _DESCRIPTOR32
        sig, crc, csize, usize = layout.unpack(self._exact(offset, size, "a data descriptor"))
        if sig != _DESCRIPTOR_SIG:
            raise CorruptArchiveError(
                f"the data descriptor of {entry.name!r} has a wrong signature (or the member's "
                f"data is not {entry.csize} bytes long); {_ADVICE}"
            )
        if (crc, csize, usize) != (entry.crc, entry.csize, entry.usize):
            raise CorruptArchiveError(
                f"the data descriptor of {entry.name!r} disagrees with the central directory "
                f"on the CRC-32 or the sizes; {_ADVICE}"
            )

    # -- member data ---------------------------------------------------------

    def _data(self, entry: _CentralEntry) -> Iterator[bytes]:
        if entry.flags & 0x1:
            raise UnsafeArchiveError(
                f"member {entry.name!r} is encrypted, which odeion archives never are; {_ADVICE}"
            )
        position = entry.data_start
        remaining = entry.csize
        produced = 0
        crc = 0
        chunk_bytes = self._limits.chunk_bytes
        if entry.method == _STORED:
            if entry.csize != entry.usize:
                raise CorruptArchiveError(
                    f"stored member {entry.name!r} declares two different sizes; {_ADVICE}"
                )
            while remaining:
                data = self._pread(position, min(chunk_bytes, remaining))
                if not data:
                    raise CorruptArchiveError(
                        f"the zip archive ends inside member {entry.name!r}; {_ADVICE}"
                    )
                position += len(data)
                remaining -= len(data)
                crc = zlib.crc32(data, crc)
                yield data
        elif entry.method == _DEFLATE:
            inflater = zlib.decompressobj(-15)
            while not inflater.eof:
                data = inflater.unconsumed_tail
                if not data and remaining:
                    data = self._pread(position, min(_READ, remaining))
                    if not data:
                        raise CorruptArchiveError(
                            f"the zip archive ends inside member {entry.name!r}; {_ADVICE}"
                        )
                    position += len(data)
                    remaining -= len(data)
                try:
                    # With no input left, this drains output that zlib still holds.
                    out = inflater.decompress(data, chunk_bytes)
                except zlib.error as exc:
                    raise CorruptArchiveError(
                        f"the deflate data of {entry.name!r} is invalid ({exc}); {_ADVICE}"
                    ) from None
                if not out and not data and not inflater.eof:
                    raise CorruptArchiveError(
                        f"the deflate data of {entry.name!r} ends early; {_ADVICE}"
                    )
                if out:
                    produced += len(out)
                    if produced > entry.usize:
                        raise CorruptArchiveError(
                            f"member {entry.name!r} decompresses to more than the "
                            f"{entry.usize} bytes it declares; {_ADVICE}"
                        )
                    crc = zlib.crc32(out, crc)
                    yield out
            if remaining or inflater.unused_data:
                raise CorruptArchiveError(
                    f"member {entry.name!r} has data after its deflate stream; {_ADVICE}"
                )
        else:
            raise UnsafeArchiveError(
                f"member {entry.name!r} uses compression method {entry.method}, which odeion "
                f"archives never use; {_ADVICE}"
            )
        if entry.method == _DEFLATE and produced != entry.usize:
            raise CorruptArchiveError(
                f"member {entry.name!r} holds {produced} bytes but declares {entry.usize}; "
                f"{_ADVICE}"
            )
        if crc != entry.crc:
            raise CorruptArchiveError(f"member {entry.name!r} fails its CRC-32 check; {_ADVICE}")

    # -- the ArchiveReader interface -----------------------------------------

    def read_member(self, path: str, max_size: int) -> bytes:
        """The whole of one small member, read through the central directory."""
        for entry in self.directory().entries:
            if entry.name == path:
                break
        else:
            raise ManifestError(
                f"the archive has no member {path!r}; it is not an odeion archive or it is "
                "incomplete, use another archive"
            )
        if entry.kind != "file":
            raise UnsafeArchiveError(f"member {path!r} is a {entry.kind}, not a file; {_ADVICE}")
        if entry.usize > max_size:
            raise UnsafeArchiveError(
                f"member {path!r} declares {entry.usize} bytes, more than the limit of "
                f"{max_size}; {_ADVICE}"
            )
        return b"".join(self._data(entry))

    def walk(self) -> Iterator[_ZipMember]:
        """Every entry, in central-directory order."""
        for entry in self.directory().entries:
            yield _ZipMember(self, entry)

    def entries(self) -> list[Entry]:
        """Every entry as the central directory declares it (no data is read)."""
        return [_ZipMember(self, e).entry for e in self.directory().entries]

    def container_problems(self) -> list[str]:
        """Check the end records, the seal, and every local header against the directory."""
        try:
            directory = self.directory()
        except (CorruptArchiveError, UnsafeArchiveError) as exc:
            return [str(exc)]
        # The layout (local headers, descriptors, no overlaps) is checked with the directory.
        return _end_problems(directory) + self._seal_problems(directory)

    def _seal_problems(self, directory: _Directory) -> list[str]:
        comment = directory.comment
        if len(comment) != _SEAL_LEN or not comment.startswith(SEAL_PREFIX):
            return [f"the zip archive carries no odeion seal in its comment; {_ADVICE}"]
        digest = hashlib.sha256()
        position = 0
        while position < directory.eocd_offset:
            data = self._pread(position, min(_PIECE, directory.eocd_offset - position))
            if not data:
                break
            digest.update(data)
            position += len(data)
        if digest.hexdigest().encode("ascii") != comment[len(SEAL_PREFIX) :]:
            return [f"the zip archive's seal does not match its bytes; {_ADVICE}"]
        return []

    def close(self) -> None:
        """Nothing to release: the file belongs to the caller."""
        self._directory = None


def _check_entry_fields(entry: _CentralEntry) -> None:
    """Refuse what no odeion archive holds: encryption, other methods, non-plain modes."""
    if entry.flags & 0x1:
        raise UnsafeArchiveError(
            f"member {entry.name!r} is encrypted, which odeion archives never are; {_ADVICE}"
        )
    if entry.method not in {_STORED, _DEFLATE}:
        raise UnsafeArchiveError(
            f"member {entry.name!r} uses compression method {entry.method}, which odeion "
            f"archives never use; {_ADVICE}"
        )
    if entry.kind == "file" and entry.made_by >> 8 == 3:  # Unix: the mode is recorded
        problem = mode_problem(entry.external_attr >> 16)
        if problem is not None:
            raise UnsafeArchiveError(
                f"member {entry.name!r} {problem}; odeion archives hold only regular files "
                f"with mode 0644, 0640 or 0600, so {_ADVICE}"
            )


def _has_zip64(extra: bytes) -> bool:
    return any(tag == 1 for tag, _body in _extra_fields(extra))


def _extra_fields(extra: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        yield tag, extra[pos + 4 : pos + 4 + size]
        pos += 4 + size


def _local_zip64(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    """A local header's sizes, taking the zip64 extra field where a size is saturated."""
    if _U32 not in (usize, csize):
        return usize, csize
    for tag, body in _extra_fields(extra):
        if tag == 1:
            values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if usize == _U32 and values:
                usize = values.pop(0)
            if csize == _U32 and values:
                csize = values.pop(0)
    return usize, csize


def _end_problems(directory: _Directory) -> list[str]:
    if directory.eocd64 is None or directory.locator is None or directory.eocd64_offset is None:
        return [f"the zip archive has no zip64 end records; {_ADVICE}"]
    count = len(directory.entries)
    _sig, disk, cd_disk, n_disk, n, cd_size, cd_offset, _clen = directory.eocd
    (_sig64, rest, _made_by, _version, disk64, cd_disk64, n_disk64, n64, cd_size64, cd_offset64) = (
        directory.eocd64
    )
    _lsig, locator_disk, _where, disks = directory.locator
    problems = []
    if (disk, cd_disk, disk64, cd_disk64, locator_disk, disks) != (0, 0, 0, 0, 0, 1):
        problems.append(f"the zip archive claims to span several disks; {_ADVICE}")
    if rest != _EOCD64.size - 12:
        problems.append(f"the zip64 end record has a wrong size field; {_ADVICE}")
    if (n_disk, n, n_disk64, n64) != (min(count, _U16), min(count, _U16), count, count):
        problems.append(f"the zip end records disagree on the number of members; {_ADVICE}")
    if (cd_size, cd_offset) != (min(cd_size64, _U32), min(cd_offset64, _U32)):
        problems.append(f"the zip end records disagree on the central directory; {_ADVICE}")
    if directory.cd_offset + directory.cd_size != directory.eocd64_offset:
        problems.append(f"the zip64 end record does not follow the directory; {_ADVICE}")
    if directory.eocd64_offset + _EOCD64.size + _LOCATOR.size != directory.eocd_offset:
        problems.append(f"the zip end records are not contiguous; {_ADVICE}")
    return problems


def _decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeArchiveError(
                f"a zip member name {raw!r} is not valid UTF-8; {_ADVICE}"
            ) from None
    return raw.decode("cp437")


def _zip64(extra: bytes, usize: int, csize: int, offset: int, name: str) -> tuple[int, int, int]:
    """Sizes and offset, taking the zip64 extra field where a field is saturated."""
    if _U32 not in (usize, csize, offset):
        return usize, csize, offset
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag != 1:
            continue
        values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
        try:
            if usize == _U32:
                usize = values.pop(0)
            if csize == _U32:
                csize = values.pop(0)
            if offset == _U32:
                offset = values.pop(0)
        except IndexError:
            break
        return usize, csize, offset
    raise CorruptArchiveError(
        f"zip member {name!r} lacks the zip64 field its sizes call for; {_ADVICE}"
    )


# -- the format ----------------------------------------------------------------


class ZipFormat:
    """Zip with deflate: opens everywhere (``unzip``, file managers, ``python -m zipfile``).

    ``level`` is the deflate level, 1 (fast) to 9 (small).
    """

    name: str = "zip"
    suffix: str = ".zip"

    def __init__(self, level: int = 6) -> None:
        if not 1 <= level <= 9:
            raise BackupFailedError(f"deflate level {level} is out of range; choose 1 to 9")
        self.level = level

    def __repr__(self) -> str:
        return f"ZipFormat(level={self.level})"

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` starts with a zip local file header."""
        return head.startswith(b"PK\x03\x04")

    def open_writer(self, stream: IO[bytes]) -> _ZipWriter:
        """A streaming writer to ``stream`` (which is never seeked)."""
        return _ZipWriter(stream, self.level)

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> _ZipReader:
        """A reader of the zip archive in the seekable ``file``."""
        return _ZipReader(file, limits)


@hookimpl
def odeion_archive_formats() -> list[ArchiveFormat]:
    """The zip format."""
    return [ZipFormat()]
