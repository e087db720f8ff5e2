"""The zip reader: a strict, bounded reader that trusts none of the container's fields.

It parses the end records and the central directory itself, one entry at a
time, and checks the layout before a byte is decompressed (see
:mod:`odeion_archive.formats.zip`); it then decompresses a member chunk by
chunk, refusing output beyond the size the directory declares.
"""

from __future__ import annotations

import zlib
from collections.abc import Generator, Iterator
from typing import IO, Any

import attrs

from odeion_archive._names import MAX_NAME_BYTES
from odeion_archive.errors import (
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.formats._common import ADVICE, sha256_range
from odeion_archive.formats._zip_records import (
    CENTRAL,
    CENTRAL_SIG,
    DESCRIPTOR32,
    DESCRIPTOR64,
    DESCRIPTOR_SIG,
    EOCD,
    EOCD64,
    EOCD64_SIG,
    LOCAL,
    LOCAL_SIG,
    LOCATOR,
    MAX_ENTRY,
    MAX_ENTRY_COMMENT,
    MAX_EXTRA,
    READ,
    SEAL_LEN,
    SEAL_PREFIX,
    STORED,
    U16,
    CentralEntry,
    Directory,
    check_entry_fields,
    decode_name,
    end_problems,
    has_zip64,
    local_zip64,
    zip64_fields,
)
from odeion_archive.interfaces import Entry, ReadLimits

__all__ = ["ZipMember", "ZipReader"]


class ZipMember:
    def __init__(self, reader: ZipReader, entry: CentralEntry) -> None:
        self._reader = reader
        self._central = entry
        self.entry = Entry(entry.name, entry.kind, entry.usize)

    def chunks(self) -> Iterator[bytes]:
        return self._reader._data(self._central)  # noqa: SLF001


class ZipReader:
    """Reads a zip archive without trusting any of its fields."""

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        self._file = file
        self._limits = limits
        self._directory: Directory | None = None
        self._size: int | None = None

    # -- low level -----------------------------------------------------------

    def _pread(self, offset: int, size: int) -> bytes:
        if not 0 <= offset <= self._file_size():
            # A damaged offset can point anywhere, past the file or past what seek takes.
            raise CorruptArchiveError(
                f"the zip archive points at offset {offset}, outside the file; {ADVICE}"
            )
        self._file.seek(offset)
        return self._file.read(size)

    def _exact(self, offset: int, size: int, what: str) -> bytes:
        data = self._pread(offset, size)
        if len(data) != size:
            raise CorruptArchiveError(f"the zip archive ends inside {what}; {ADVICE}")
        return data

    def _file_size(self) -> int:
        if self._size is None:
            self._size = self._file.seek(0, 2)
        return self._size

    # -- the directory -------------------------------------------------------

    def directory(self) -> Directory:
        if self._directory is None:
            self._directory = self._read_directory()
        return self._directory

    def _read_directory(self) -> Directory:
        eocd_offset, fields, comment = self._find_eocd()
        _sig, _disk, _cd_disk, _n_disk, count, cd_size, cd_offset, _clen = fields
        eocd64_offset, eocd64, locator = self._read_zip64_end(eocd_offset)
        if eocd64 is not None:
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
                f"(it lies outside the archive or leaves bytes unaccounted); {ADVICE}"
            )
        if cd_size > count * MAX_ENTRY:
            raise UnsafeArchiveError(
                f"the zip central directory takes {cd_size} bytes, more than its {count} "
                f"entries may (at most {MAX_ENTRY} bytes each); {ADVICE}"
            )
        central = tuple(self._parse_central(cd_offset, cd_size, count))
        entries = self._check_layout(central, cd_offset)
        return Directory(
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

    def _find_eocd(self) -> tuple[int, tuple[int, ...], bytes]:
        """The end record's offset, fields and comment (the last record that ends the file)."""
        size = self._file_size()
        tail_len = min(size, EOCD.size + U16)
        tail = self._pread(size - tail_len, tail_len)
        pos = len(tail)
        while True:
            pos = tail.rfind(b"PK\x05\x06", 0, pos)
            if pos < 0:
                raise CorruptArchiveError(
                    "the zip archive has no end-of-central-directory record; it is "
                    f"truncated or not a zip archive; {ADVICE}"
                )
            if len(tail) - pos < EOCD.size:
                continue
            fields = EOCD.unpack_from(tail, pos)
            if pos + EOCD.size + fields[7] == len(tail):
                return size - tail_len + pos, fields, tail[pos + EOCD.size :]

    def _read_zip64_end(
        self, eocd_offset: int
    ) -> tuple[int | None, tuple[int, ...] | None, tuple[int, ...] | None]:
        """The zip64 end record's offset and fields, and the locator, if a locator is there."""
        if eocd_offset < LOCATOR.size:
            return None, None, None
        raw = self._pread(eocd_offset - LOCATOR.size, LOCATOR.size)
        if raw[:4] != b"PK\x06\x07":
            return None, None, None
        locator = LOCATOR.unpack(raw)
        eocd64_offset = locator[2]
        if eocd64_offset + EOCD64.size > eocd_offset - LOCATOR.size:
            raise CorruptArchiveError(f"the zip64 end record lies outside the archive; {ADVICE}")
        eocd64 = EOCD64.unpack(self._exact(eocd64_offset, EOCD64.size, "zip64 end"))
        if eocd64[0] != EOCD64_SIG:
            raise CorruptArchiveError(f"the zip64 end record has a wrong signature; {ADVICE}")
        return eocd64_offset, eocd64, locator

    def _parse_central(self, cd_offset: int, cd_size: int, count: int) -> Iterator[CentralEntry]:
        """The directory's entries, read one at a time (memory does not grow with it)."""
        pos = cd_offset
        end = cd_offset + cd_size
        for number in range(count):
            if pos + CENTRAL.size > end:
                raise CorruptArchiveError(
                    f"the zip central directory is shorter than its entry count; {ADVICE}"
                )
            fields = CENTRAL.unpack(self._exact(pos, CENTRAL.size, "the central directory"))
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
            if sig != CENTRAL_SIG:
                raise CorruptArchiveError(
                    f"a zip central directory entry has a wrong signature; {ADVICE}"
                )
            if nlen > MAX_NAME_BYTES or elen > MAX_EXTRA or clen > MAX_ENTRY_COMMENT:
                raise UnsafeArchiveError(
                    f"zip central directory entry {number + 1} has a name of {nlen} bytes, an "
                    f"extra field of {elen} and a comment of {clen}; odeion archives use at "
                    f"most {MAX_NAME_BYTES}, {MAX_EXTRA} and {MAX_ENTRY_COMMENT}, so {ADVICE}"
                )
            start = pos + CENTRAL.size
            pos = start + nlen + elen + clen
            if pos > end:
                raise CorruptArchiveError(
                    f"a zip central directory entry runs past the directory; {ADVICE}"
                )
            rest = self._exact(start, nlen + elen, "the central directory")
            raw_name, extra = rest[:nlen], rest[nlen:]
            name = decode_name(raw_name, flags)
            usize, csize, offset = zip64_fields(extra, usize, csize, offset, name)
            yield CentralEntry(
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
                f"the zip central directory has bytes after its last entry; {ADVICE}"
            )

    # -- the layout ----------------------------------------------------------

    def _check_layout(
        self, entries: tuple[CentralEntry, ...], cd_offset: int
    ) -> tuple[CentralEntry, ...]:
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
                    f"previous member (byte {expected}): it {how}; {ADVICE}"
                )
            check_entry_fields(entry)
            data_start, descriptor = self._check_local(entry)
            data_end = data_start + entry.csize
            if data_end + descriptor > cd_offset:
                raise CorruptArchiveError(
                    f"the data of member {entry.name!r} runs into the central directory; {ADVICE}"
                )
            if descriptor:
                self._check_descriptor(entry, data_end, descriptor)
            expected = data_end + descriptor
            checked.append(attrs.evolve(entry, data_start=data_start))
        if expected != cd_offset:
            raise CorruptArchiveError(
                f"the zip archive holds {cd_offset - expected} bytes that no member accounts "
                f"for before its central directory; {ADVICE}"
            )
        return tuple(checked)

    def _check_local(self, entry: CentralEntry) -> tuple[int, int]:
        """Check the local header of ``entry``; return its data offset and descriptor size."""
        header = LOCAL.unpack(self._exact(entry.offset, LOCAL.size, "a local header"))
        sig, _version, flags, method, dos_time, dos_date, crc, csize, usize, nlen, elen = header
        if sig != LOCAL_SIG:
            raise CorruptArchiveError(
                f"the local header of {entry.name!r} has a wrong signature; {ADVICE}"
            )
        if elen > MAX_EXTRA:
            raise UnsafeArchiveError(
                f"the local header of {entry.name!r} has an extra field of {elen} bytes, more "
                f"than the {MAX_EXTRA} odeion archives use; {ADVICE}"
            )
        rest = self._exact(entry.offset + LOCAL.size, nlen + elen, "a local header")
        raw_name, extra = rest[:nlen], rest[nlen:]
        data_start = entry.offset + LOCAL.size + nlen + elen
        _check_local_fields(entry, raw_name, (flags, method, dos_time, dos_date))
        zip64 = has_zip64(extra)
        if flags & 0x8:  # sizes and CRC-32 follow the data, in a data descriptor
            local_sizes = local_zip64(extra, usize, csize) if zip64 else (usize, csize)
            if crc != 0 or local_sizes != (0, 0):
                raise _disagree(
                    entry, "the CRC-32 and sizes (a member with a data descriptor has none)"
                )
            return data_start, (DESCRIPTOR64.size if zip64 else DESCRIPTOR32.size)
        if crc != entry.crc:
            raise _disagree(entry, "the CRC-32")
        if local_zip64(extra, usize, csize) != (entry.usize, entry.csize):
            raise _disagree(entry, "the sizes")
        return data_start, 0

    def _check_descriptor(self, entry: CentralEntry, offset: int, size: int) -> None:
        layout = DESCRIPTOR64 if size == DESCRIPTOR64.size else DESCRIPTOR32
        sig, crc, csize, usize = layout.unpack(self._exact(offset, size, "a data descriptor"))
        if sig != DESCRIPTOR_SIG:
            raise CorruptArchiveError(
                f"the data descriptor of {entry.name!r} has a wrong signature (or the member's "
                f"data is not {entry.csize} bytes long); {ADVICE}"
            )
        if (crc, csize, usize) != (entry.crc, entry.csize, entry.usize):
            raise CorruptArchiveError(
                f"the data descriptor of {entry.name!r} disagrees with the central directory "
                f"on the CRC-32 or the sizes; {ADVICE}"
            )

    # -- member data ---------------------------------------------------------

    def _data(self, entry: CentralEntry) -> Iterator[bytes]:
        check_entry_fields(entry)
        if entry.method == STORED:
            if entry.csize != entry.usize:
                raise CorruptArchiveError(
                    f"stored member {entry.name!r} declares two different sizes; {ADVICE}"
                )
            crc = yield from self._stored(entry)
        else:
            crc = yield from self._inflated(entry)
        if crc != entry.crc:
            raise CorruptArchiveError(f"member {entry.name!r} fails its CRC-32 check; {ADVICE}")

    def _stored(self, entry: CentralEntry) -> Generator[bytes, None, int]:
        """A stored member's bytes; returns their CRC-32."""
        position = entry.data_start
        remaining = entry.csize
        crc = 0
        while remaining:
            data = self._pread(position, min(self._limits.chunk_bytes, remaining))
            if not data:
                raise CorruptArchiveError(
                    f"the zip archive ends inside member {entry.name!r}; {ADVICE}"
                )
            position += len(data)
            remaining -= len(data)
            crc = zlib.crc32(data, crc)
            yield data
        return crc

    def _inflated(self, entry: CentralEntry) -> Generator[bytes, None, int]:
        """A deflated member's bytes, never more than it declares; returns their CRC-32."""
        position = entry.data_start
        remaining = entry.csize
        produced = crc = 0
        inflater = zlib.decompressobj(-15)
        while not inflater.eof:
            data = inflater.unconsumed_tail
            if not data and remaining:
                data = self._pread(position, min(READ, remaining))
                if not data:
                    raise CorruptArchiveError(
                        f"the zip archive ends inside member {entry.name!r}; {ADVICE}"
                    )
                position += len(data)
                remaining -= len(data)
            out = _inflate(inflater, data, self._limits.chunk_bytes, entry)
            produced += len(out)
            if produced > entry.usize:
                raise CorruptArchiveError(
                    f"member {entry.name!r} decompresses to more than the "
                    f"{entry.usize} bytes it declares; {ADVICE}"
                )
            if out:
                crc = zlib.crc32(out, crc)
                yield out
        if remaining or inflater.unused_data:
            raise CorruptArchiveError(
                f"member {entry.name!r} has data after its deflate stream; {ADVICE}"
            )
        if produced != entry.usize:
            raise CorruptArchiveError(
                f"member {entry.name!r} holds {produced} bytes but declares {entry.usize}; {ADVICE}"
            )
        return crc

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
            raise UnsafeArchiveError(f"member {path!r} is a {entry.kind}, not a file; {ADVICE}")
        if entry.usize > max_size:
            raise UnsafeArchiveError(
                f"member {path!r} declares {entry.usize} bytes, more than the limit of "
                f"{max_size}; {ADVICE}"
            )
        return b"".join(self._data(entry))

    def walk(self) -> Iterator[ZipMember]:
        """Every entry, in central-directory order."""
        for entry in self.directory().entries:
            yield ZipMember(self, entry)

    def entries(self) -> list[Entry]:
        """Every entry as the central directory declares it (no data is read)."""
        return [ZipMember(self, e).entry for e in self.directory().entries]

    def container_problems(self) -> list[str]:
        """Check the end records, the seal, and every local header against the directory."""
        try:
            directory = self.directory()
        except (CorruptArchiveError, UnsafeArchiveError) as exc:
            return [str(exc)]
        # The layout (local headers, descriptors, no overlaps) is checked with the directory.
        return end_problems(directory) + self._seal_problems(directory)

    def _seal_problems(self, directory: Directory) -> list[str]:
        comment = directory.comment
        if len(comment) != SEAL_LEN or not comment.startswith(SEAL_PREFIX):
            return [f"the zip archive carries no odeion seal in its comment; {ADVICE}"]
        seal = sha256_range(self._pread, 0, directory.eocd_offset)
        if seal.hex().encode("ascii") != comment[len(SEAL_PREFIX) :]:
            return [f"the zip archive's seal does not match its bytes; {ADVICE}"]
        return []

    def close(self) -> None:
        """Nothing to release: the file belongs to the caller."""
        self._directory = None


def _inflate(inflater: Any, data: bytes, most: int, entry: CentralEntry) -> bytes:
    """Up to ``most`` bytes out of ``data`` (or of what zlib still holds, with no data)."""
    try:
        out: bytes = inflater.decompress(data, most)
    except zlib.error as exc:
        raise CorruptArchiveError(
            f"the deflate data of {entry.name!r} is invalid ({exc}); {ADVICE}"
        ) from None
    if not out and not data and not inflater.eof:
        raise CorruptArchiveError(f"the deflate data of {entry.name!r} ends early; {ADVICE}")
    return out


def _disagree(entry: CentralEntry, what: str) -> CorruptArchiveError:
    return CorruptArchiveError(
        f"the local header of {entry.name!r} disagrees with the central directory on "
        f"{what}; {ADVICE}"
    )


def _check_local_fields(
    entry: CentralEntry, raw_name: bytes, fields: tuple[int, int, int, int]
) -> None:
    """Check a local header's name, flags, method and time against the directory."""
    flags, method, dos_time, dos_date = fields
    if raw_name != entry.raw_name:
        raise _disagree(entry, f"the name (it says {raw_name!r})")
    if flags != entry.flags:
        raise _disagree(entry, f"the flags ({flags:#06x}, not {entry.flags:#06x})")
    if method != entry.method:
        raise _disagree(entry, f"the compression method ({method}, not {entry.method})")
    if (dos_time, dos_date) != (entry.dos_time, entry.dos_date):
        raise _disagree(entry, "the modification time")
