"""The zip record codec: signatures, record layouts, directory entries and their checks.

See :mod:`odeion_archive.formats.zip` for the layout the writer makes and what
the reader checks.
"""

from __future__ import annotations

import stat
import struct
from collections.abc import Iterator

import attrs

from odeion_archive._modes import mode_problem
from odeion_archive._names import MAX_NAME_BYTES
from odeion_archive.errors import CorruptArchiveError, UnsafeArchiveError
from odeion_archive.formats._common import ADVICE
from odeion_archive.interfaces import EntryKind

#: Start of the end-of-central-directory comment that carries the seal.
SEAL_PREFIX = b"odeion-archive seal sha256:"

LOCAL_SIG = 0x04034B50
CENTRAL_SIG = 0x02014B50
DESCRIPTOR_SIG = 0x08074B50
EOCD64_SIG = 0x06064B50
LOCATOR_SIG = 0x07064B50
EOCD_SIG = 0x06054B50

LOCAL = struct.Struct("<IHHHHHIIIHH")
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
DESCRIPTOR64 = struct.Struct("<IIQQ")
DESCRIPTOR32 = struct.Struct("<IIII")
ZIP64_LOCAL = struct.Struct("<HHQQ")
ZIP64_CENTRAL = struct.Struct("<HHQQQ")
EOCD64 = struct.Struct("<IQHHIIQQQQ")
LOCATOR = struct.Struct("<IIQI")
EOCD = struct.Struct("<IHHHHIIH")

VERSION = 45  # zip64
MADE_BY = (3 << 8) | 45  # Unix, so that the external attributes carry the mode
FLAGS = 0x0808  # data descriptor follows the data; names are UTF-8
DEFLATE = 8
STORED = 0
DOS_TIME = 0
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01
FILE_ATTR = (stat.S_IFREG | 0o644) << 16
U32 = 0xFFFFFFFF
U16 = 0xFFFF
READ = 64 * 1024
SEAL_LEN = len(SEAL_PREFIX) + 64
#: Longest extra field, and longest comment, of one entry (the writer's are 20 and 28, and 0).
MAX_EXTRA = 64
MAX_ENTRY_COMMENT = 64
MAX_ENTRY = CENTRAL.size + MAX_NAME_BYTES + MAX_EXTRA + MAX_ENTRY_COMMENT


@attrs.frozen
class CentralEntry:
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
class Directory:
    entries: tuple[CentralEntry, ...]
    eocd_offset: int
    eocd: tuple[int, ...]
    comment: bytes
    eocd64_offset: int | None
    eocd64: tuple[int, ...] | None
    locator: tuple[int, ...] | None
    cd_offset: int
    cd_size: int


def check_entry_fields(entry: CentralEntry) -> None:
    """Refuse what no odeion archive holds: encryption, other methods, non-plain modes."""
    if entry.flags & 0x1:
        raise UnsafeArchiveError(
            f"member {entry.name!r} is encrypted, which odeion archives never are; {ADVICE}"
        )
    if entry.method not in {STORED, DEFLATE}:
        raise UnsafeArchiveError(
            f"member {entry.name!r} uses compression method {entry.method}, which odeion "
            f"archives never use; {ADVICE}"
        )
    if entry.kind == "file" and entry.made_by >> 8 == 3:  # Unix: the mode is recorded
        problem = mode_problem(entry.external_attr >> 16)
        if problem is not None:
            raise UnsafeArchiveError(
                f"member {entry.name!r} {problem}; odeion archives hold only regular files "
                f"with mode 0644, 0640 or 0600, so {ADVICE}"
            )


def has_zip64(extra: bytes) -> bool:
    return any(tag == 1 for tag, _body in extra_fields(extra))


def extra_fields(extra: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        yield tag, extra[pos + 4 : pos + 4 + size]
        pos += 4 + size


def local_zip64(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    """A local header's sizes, taking the zip64 extra field where a size is saturated."""
    if U32 not in (usize, csize):
        return usize, csize
    for tag, body in extra_fields(extra):
        if tag == 1:
            values = [v for (v,) in struct.iter_unpack("<Q", body[: len(body) // 8 * 8])]
            if usize == U32 and values:
                usize = values.pop(0)
            if csize == U32 and values:
                csize = values.pop(0)
    return usize, csize


def end_problems(directory: Directory) -> list[str]:
    if directory.eocd64 is None or directory.locator is None or directory.eocd64_offset is None:
        return [f"the zip archive has no zip64 end records; {ADVICE}"]
    count = len(directory.entries)
    _sig, disk, cd_disk, n_disk, n, cd_size, cd_offset, _clen = directory.eocd
    (_sig64, rest, _made_by, _version, disk64, cd_disk64, n_disk64, n64, cd_size64, cd_offset64) = (
        directory.eocd64
    )
    _lsig, locator_disk, _where, disks = directory.locator
    problems = []
    if (disk, cd_disk, disk64, cd_disk64, locator_disk, disks) != (0, 0, 0, 0, 0, 1):
        problems.append(f"the zip archive claims to span several disks; {ADVICE}")
    if rest != EOCD64.size - 12:
        problems.append(f"the zip64 end record has a wrong size field; {ADVICE}")
    if (n_disk, n, n_disk64, n64) != (min(count, U16), min(count, U16), count, count):
        problems.append(f"the zip end records disagree on the number of members; {ADVICE}")
    if (cd_size, cd_offset) != (min(cd_size64, U32), min(cd_offset64, U32)):
        problems.append(f"the zip end records disagree on the central directory; {ADVICE}")
    if directory.cd_offset + directory.cd_size != directory.eocd64_offset:
        problems.append(f"the zip64 end record does not follow the directory; {ADVICE}")
    if directory.eocd64_offset + EOCD64.size + LOCATOR.size != directory.eocd_offset:
        problems.append(f"the zip end records are not contiguous; {ADVICE}")
    return problems


def decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsafeArchiveError(
                f"a zip member name {raw!r} is not valid UTF-8; {ADVICE}"
            ) from None
    return raw.decode("cp437")


def zip64_fields(
    extra: bytes, usize: int, csize: int, offset: int, name: str
) -> tuple[int, int, int]:
    """Sizes and offset, taking the zip64 extra field where a field is saturated."""
    if U32 not in (usize, csize, offset):
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
            if usize == U32:
                usize = values.pop(0)
            if csize == U32:
                csize = values.pop(0)
            if offset == U32:
                offset = values.pop(0)
        except IndexError:
            break
        return usize, csize, offset
    raise CorruptArchiveError(
        f"zip member {name!r} lacks the zip64 field its sizes call for; {ADVICE}"
    )
