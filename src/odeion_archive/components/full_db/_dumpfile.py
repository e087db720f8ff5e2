"""The header and table of contents of a ``pg_dump --format=custom`` dump.

A custom-format dump starts with a header (magic ``PGDMP``, archive version,
integer and offset sizes, compression, creation time, database name, server and
pg_dump versions) followed by the table of contents (TOC): one entry per dumped
object with its SQL definition. The data blocks follow the TOC; they are never
read here.

:func:`read_header` reads only the bytes the TOC needs and bounds every length,
so a garbage or hostile member cannot make it allocate or read without limit.
:func:`max_archive_version` tells which archive versions a ``pg_restore``
reads; :mod:`~odeion_archive.components.full_db._tocreview` judges the entries.

Layout (every integer is a sign byte followed by ``int_size`` little-endian
magnitude bytes; a string is an integer length, ``-1`` for NULL, then that many
bytes)::

    "PGDMP" vmaj vmin vrev int_size off_size format
    compression            (1.15+: one algorithm byte; before: an integer level)
    7 integers             (tm_sec, tm_min, tm_hour, tm_mday, tm_mon, tm_year, tm_isdst)
    dbname, server version, pg_dump version   (strings)
    entry count, then per entry:
      dump id, had dumper, table oid, oid, tag, desc, section, defn, drop stmt,
      copy stmt, namespace, tablespace, tableam (1.14+), relkind (1.16+), owner,
      "with oids", dependency ids (strings, NULL-terminated list),
      data state byte and off_size offset bytes (custom format)
"""

from __future__ import annotations

import datetime as dt
from typing import IO, Final

import attrs

from odeion_archive.errors import ArchiveInvalidError, CorruptArchiveError, UnsafeArchiveError

__all__ = [
    "MAX_READ_VERSION",
    "DumpHeader",
    "TocEntry",
    "max_archive_version",
    "read_header",
]

_MAGIC: Final = b"PGDMP"
_FORMAT_CUSTOM: Final = 1
#: The oldest archive version this reader parses (pg_dump 9.0 wrote 1.12).
MIN_READ_VERSION: Final = (1, 12, 0)
#: The newest archive version this reader parses (pg_dump 17 and 18 write 1.16).
MAX_READ_VERSION: Final = (1, 16, 255)

_SECTIONS: Final = {1: "NONE", 2: "PRE_DATA", 3: "DATA", 4: "POST_DATA"}
_COMPRESSION: Final = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
_DATA_STATES: Final = {1: "not_set", 2: "set", 3: "no_data"}

#: Default bounds on what :func:`read_header` accepts.
DEFAULT_MAX_TOC_BYTES: Final = 256 * 1024 * 1024
DEFAULT_MAX_STRING_BYTES: Final = 64 * 1024 * 1024
DEFAULT_MAX_ENTRIES: Final = 2_000_000
_MAX_DEPENDENCIES: Final = 100_000
_READ_CHUNK: Final = 64 * 1024


@attrs.frozen
class TocEntry:
    """One entry of the table of contents.

    Strings that the dump stores as NULL are empty here. ``relkind`` is the
    relation kind letter (``"r"``, ``"S"``...) where the dump records one
    (archive version 1.16+), else empty. ``data_state`` says whether the entry
    has a data block (``"set"`` / ``"not_set"``: it has, at a known / unknown
    offset; ``"no_data"``: it has none).
    """

    dump_id: int
    had_dumper: bool
    table_oid: int
    oid: int
    tag: str
    desc: str
    section: str
    defn: str
    drop_stmt: str
    copy_stmt: str
    namespace: str
    tablespace: str
    tableam: str
    relkind: str
    owner: str
    dependencies: tuple[int, ...]
    data_state: str
    data_offset: int


@attrs.frozen
class DumpHeader:
    """The header and table of contents of a custom-format dump.

    ``created`` is the local time of the machine that ran pg_dump, as recorded
    (naive). ``compression`` is ``"none"``, ``"gzip"``, ``"lz4"`` or ``"zstd"``;
    ``header_bytes`` is how many bytes the header and TOC take.
    """

    archive_version: tuple[int, int, int]
    int_size: int
    offset_size: int
    compression: str
    created: dt.datetime | None
    database_name: str
    server_version: str
    pg_dump_version: str
    entries: tuple[TocEntry, ...]
    header_bytes: int

    @property
    def archive_version_text(self) -> str:
        """The archive version as pg_restore prints it (``"1.16-0"``)."""
        major, minor, rev = self.archive_version
        return f"{major}.{minor}-{rev}"


class _Reader:
    """Reads the fields of a dump from a stream, bounded, in chunks."""

    def __init__(self, stream: IO[bytes], max_bytes: int, max_string: int) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._pos = 0
        self._consumed = 0
        self._max_bytes = max_bytes
        self._max_string = max_string
        self.int_size = 4
        self.offset_size = 8

    @property
    def position(self) -> int:
        return self._consumed + self._pos

    def take(self, count: int, what: str) -> bytes:
        if self.position + count > self._max_bytes:
            raise UnsafeArchiveError(
                f"the database dump's header and table of contents exceed "
                f"{self._max_bytes} bytes (while reading {what}); the dump is corrupt or not "
                "one that odeion-archive restores, use another archive"
            )
        while len(self._buffer) - self._pos < count:
            chunk = self._stream.read(max(_READ_CHUNK, count - (len(self._buffer) - self._pos)))
            if not chunk:
                raise CorruptArchiveError(
                    f"the database dump ends after {self.position + len(self._buffer) - self._pos}"
                    f" bytes, in the middle of its header ({what}); the archive is truncated, "
                    "use another copy of it"
                )
            if self._pos:
                del self._buffer[: self._pos]
                self._consumed += self._pos
                self._pos = 0
            self._buffer += chunk
        data = bytes(self._buffer[self._pos : self._pos + count])
        self._pos += count
        return data

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def integer(self, what: str) -> int:
        raw = self.take(1 + self.int_size, what)
        sign = raw[0]
        if sign not in (0, 1):
            raise CorruptArchiveError(
                f"the database dump's header has an invalid sign byte {sign} in {what} at "
                f"byte {self.position - len(raw)}; the dump is corrupt, use another archive"
            )
        value = int.from_bytes(raw[1:], "little")
        return -value if sign else value

    def string(self, what: str) -> str | None:
        length = self.integer(f"the length of {what}")
        if length < 0:
            if length != -1:
                raise CorruptArchiveError(
                    f"the database dump's header has a negative length {length} for {what}; "
                    "the dump is corrupt, use another archive"
                )
            return None
        if length > self._max_string:
            raise UnsafeArchiveError(
                f"the database dump's header declares {length} bytes for {what}, more than the "
                f"limit of {self._max_string}; the dump is corrupt or hostile, use another archive"
            )
        raw = self.take(length, what)
        return raw.decode("utf-8", "replace")

    def offset(self, what: str) -> tuple[int, int]:
        state = self.byte(what)
        if state not in _DATA_STATES:
            raise CorruptArchiveError(
                f"the database dump's table of contents has an invalid data state {state} in "
                f"{what}; the dump is corrupt, use another archive"
            )
        value = int.from_bytes(self.take(self.offset_size, what), "little")
        return state, value


def _version_text(version: tuple[int, int, int]) -> str:
    return f"{version[0]}.{version[1]}.{version[2]}"


def _read_start(reader: _Reader) -> tuple[tuple[int, int, int], str, dt.datetime | None]:
    magic = reader.take(len(_MAGIC), "the magic bytes")
    if magic != _MAGIC:
        raise CorruptArchiveError(
            f"the database dump does not start with {_MAGIC!r} (found {magic!r}); it is not a "
            "pg_dump custom-format dump; the archive is corrupt or was not made by odeion-archive, "
            "use another archive"
        )
    version = (reader.byte("the version"), reader.byte("the version"), reader.byte("the version"))
    if not MIN_READ_VERSION <= version <= MAX_READ_VERSION:
        raise ArchiveInvalidError(
            f"the database dump has archive version {_version_text(version)}, but this "
            f"odeion-archive reads versions {_version_text(MIN_READ_VERSION)} to "
            f"{_version_text(MAX_READ_VERSION)} (pg_dump 9.0 to 18); upgrade odeion-archive to "
            "restore dumps of newer pg_dump versions"
        )
    int_size = reader.byte("the integer size")
    offset_size = reader.byte("the offset size")
    if int_size not in (4, 8) or offset_size not in (4, 8):
        raise CorruptArchiveError(
            f"the database dump declares {int_size}-byte integers and {offset_size}-byte "
            "offsets, which pg_dump never writes; the dump is corrupt, use another archive"
        )
    reader.int_size = int_size
    reader.offset_size = offset_size
    archive_format = reader.byte("the format")
    if archive_format != _FORMAT_CUSTOM:
        raise CorruptArchiveError(
            f"the database dump has format code {archive_format}, not the custom format (1); "
            "odeion-archive restores only pg_dump --format=custom dumps, use another archive"
        )
    if version >= (1, 15, 0):
        algorithm = reader.byte("the compression algorithm")
        if algorithm not in _COMPRESSION:
            raise CorruptArchiveError(
                f"the database dump declares an unknown compression algorithm {algorithm}; the "
                "dump is corrupt or from a newer pg_dump, use another archive"
            )
        compression = _COMPRESSION[algorithm]
    else:
        level = reader.integer("the compression level")
        compression = "none" if level == 0 else "gzip"
    tm = [reader.integer("the creation time") for _ in range(7)]
    created: dt.datetime | None
    try:
        created = dt.datetime(  # noqa: DTZ001 - pg_dump records the local time without a zone
            tm[5] + 1900, tm[4] + 1, tm[3], tm[2], tm[1], min(tm[0], 59)
        )
    except (ValueError, OverflowError):
        created = None
    return version, compression, created


def read_header(
    stream: IO[bytes],
    *,
    max_toc_bytes: int = DEFAULT_MAX_TOC_BYTES,
    max_string_bytes: int = DEFAULT_MAX_STRING_BYTES,
    max_entries: int = DEFAULT_MAX_ENTRIES,
) -> DumpHeader:
    """Parse the header and table of contents at the start of ``stream``.

    Reads at most ``max_toc_bytes`` (plus one read-ahead chunk) and never the
    data blocks. Raises :class:`~odeion_archive.errors.CorruptArchiveError` on
    garbage or truncated input, :class:`~odeion_archive.errors.UnsafeArchiveError`
    when a length or count exceeds the bounds, and
    :class:`~odeion_archive.errors.ArchiveInvalidError` for archive versions
    this module does not know.
    """
    reader = _Reader(stream, max_toc_bytes, max_string_bytes)
    version, compression, created = _read_start(reader)
    database_name = reader.string("the database name") or ""
    server_version = reader.string("the server version") or ""
    pg_dump_version = reader.string("the pg_dump version") or ""
    count = reader.integer("the number of entries")
    if count < 0 or count > max_entries:
        raise UnsafeArchiveError(
            f"the database dump declares {count} table-of-contents entries, outside 0 to "
            f"{max_entries}; the dump is corrupt or hostile, use another archive"
        )
    entries = tuple(_read_entry(reader, version, index) for index in range(count))
    return DumpHeader(
        archive_version=version,
        int_size=reader.int_size,
        offset_size=reader.offset_size,
        compression=compression,
        created=created,
        database_name=database_name,
        server_version=server_version,
        pg_dump_version=pg_dump_version,
        entries=entries,
        header_bytes=reader.position,
    )


def _oid(text: str | None, what: str) -> int:
    if not text:
        return 0
    if not text.isdigit() or len(text) > 10:
        raise CorruptArchiveError(
            f"the database dump's table of contents has {text[:40]!r} as {what}, not an OID; "
            "the dump is corrupt, use another archive"
        )
    return int(text)


def _read_entry(reader: _Reader, version: tuple[int, int, int], index: int) -> TocEntry:
    where = f"entry {index + 1}"
    dump_id = reader.integer(f"the dump id of {where}")
    if dump_id <= 0:
        raise CorruptArchiveError(
            f"the database dump's table of contents has the invalid dump id {dump_id} in "
            f"{where}; the dump is corrupt, use another archive"
        )
    had_dumper = reader.integer(f"the data flag of {where}") != 0
    table_oid = _oid(reader.string(f"the table oid of {where}"), f"the table oid of {where}")
    oid = _oid(reader.string(f"the oid of {where}"), f"the oid of {where}")
    tag = reader.string(f"the tag of {where}") or ""
    desc = reader.string(f"the type of {where}") or ""
    section_code = reader.integer(f"the section of {where}")
    if section_code not in _SECTIONS:
        raise CorruptArchiveError(
            f"the database dump's table of contents has the invalid section {section_code} in "
            f"{where} ({desc} {tag[:60]}); the dump is corrupt, use another archive"
        )
    defn = reader.string(f"the definition of {where}") or ""
    drop_stmt = reader.string(f"the drop statement of {where}") or ""
    copy_stmt = reader.string(f"the copy statement of {where}") or ""
    namespace = reader.string(f"the schema of {where}") or ""
    tablespace = reader.string(f"the tablespace of {where}") or ""
    tableam = ""
    if version >= (1, 14, 0):
        tableam = reader.string(f"the table access method of {where}") or ""
    relkind = ""
    if version >= (1, 16, 0):
        code = reader.integer(f"the relation kind of {where}")
        if not 0 <= code < 128:
            raise CorruptArchiveError(
                f"the database dump's table of contents has the invalid relation kind {code} in "
                f"{where}; the dump is corrupt, use another archive"
            )
        relkind = chr(code) if code else ""
    owner = reader.string(f"the owner of {where}") or ""
    reader.string(f"the 'with oids' flag of {where}")
    dependencies: list[int] = []
    while True:
        dependency = reader.string(f"a dependency of {where}")
        if dependency is None:
            break
        if not dependency.isdigit() or len(dependency) > 10:
            raise CorruptArchiveError(
                f"the database dump's table of contents has {dependency[:40]!r} as a "
                f"dependency of {where}; the dump is corrupt, use another archive"
            )
        dependencies.append(int(dependency))
        if len(dependencies) > _MAX_DEPENDENCIES:
            raise UnsafeArchiveError(
                f"{where} of the database dump's table of contents has more than "
                f"{_MAX_DEPENDENCIES} dependencies; the dump is corrupt or hostile, use another "
                "archive"
            )
    state, offset = reader.offset(f"the data offset of {where}")
    return TocEntry(
        dump_id=dump_id,
        had_dumper=had_dumper,
        table_oid=table_oid,
        oid=oid,
        tag=tag,
        desc=desc,
        section=_SECTIONS[section_code],
        defn=defn,
        drop_stmt=drop_stmt,
        copy_stmt=copy_stmt,
        namespace=namespace,
        tablespace=tablespace,
        tableam=tableam,
        relkind=relkind,
        owner=owner,
        dependencies=tuple(dependencies),
        data_state=_DATA_STATES[state],
        data_offset=offset,
    )


# -- which pg_restore reads which dump ----------------------------------------

# The newest archive version each pg_restore major accepts. pg_restore refuses a
# newer one with "unsupported version (1.N) in file header". 15 and 18 were
# checked against real dumps (pg_restore 15 refuses pg_dump 18's 1.16 and a 1.15
# header, and reads 1.14.1; pg_restore 18 reads 1.16 and refuses 1.17); the
# others follow the version each release writes.
_MAX_BY_MAJOR: Final = {
    11: (1, 13, 0),
    12: (1, 14, 0),
    13: (1, 14, 0),
    14: (1, 14, 0),
    15: (1, 14, 0),
    16: (1, 15, 0),
    17: (1, 16, 0),
    18: (1, 16, 0),
}


def max_archive_version(pg_restore_major: int) -> tuple[int, int, int]:
    """The newest dump archive version that ``pg_restore`` of that major version reads.

    Releases write revision 0 of their archive version; only that revision is
    claimed. A major newer than any known reads at least what 18 reads; one
    older than 11 is reported as reading 1.12.
    """
    if pg_restore_major in _MAX_BY_MAJOR:
        return _MAX_BY_MAJOR[pg_restore_major]
    if pg_restore_major > max(_MAX_BY_MAJOR):
        return _MAX_BY_MAJOR[max(_MAX_BY_MAJOR)]
    return (1, 12, 0)
