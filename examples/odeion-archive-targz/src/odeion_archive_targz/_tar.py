"""POSIX tar headers: written with the standard library, read back strictly and bounded.

Headers are built by :meth:`tarfile.TarInfo.tobuf` in pax format (a pax
extended header carries names that are long or not ASCII, and sizes of 8 GiB
and more). They are read back one 512-byte block at a time with
:meth:`tarfile.TarInfo.frombuf`, which checks the header checksum; pax records
are parsed here, with a size limit, because :mod:`tarfile` reads a pax header
of any declared size into memory.
"""

from __future__ import annotations

import tarfile
import unicodedata
from collections.abc import Iterator
from typing import Protocol

from odeion_archive.errors import CorruptArchiveError, UnsafeArchiveError
from odeion_archive.interfaces import Entry, EntryKind, ReadLimits

__all__ = [
    "ADVICE",
    "BLOCK",
    "END_OF_ARCHIVE",
    "MAX_NAME_BYTES",
    "MAX_PAX_BYTES",
    "ByteSource",
    "TarParser",
    "check_member_name",
    "header",
    "padding",
]

#: Size of a tar block.
BLOCK = 512
#: The tar end-of-archive marker: two zero blocks.
END_OF_ARCHIVE = bytes(2 * BLOCK)
#: Largest pax extended header a reader accepts.
MAX_PAX_BYTES = 64 * 1024
#: Longest member name, in UTF-8 bytes.
MAX_NAME_BYTES = 1024
#: The advice that ends every message about a bad archive.
ADVICE = "the archive is damaged or was tampered with, use another archive"

_ZERO_BLOCK = bytes(BLOCK)
_POSIX_MAGIC = b"ustar\x0000"
_MAX_SIZE_DIGITS = 20

_KINDS: dict[bytes, EntryKind] = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.LNKTYPE: "hardlink",
    tarfile.SYMTYPE: "symlink",
    tarfile.CHRTYPE: "device",
    tarfile.BLKTYPE: "device",
    tarfile.DIRTYPE: "directory",
    tarfile.FIFOTYPE: "fifo",
}
#: Kinds whose header is followed by no data, whatever its size field says.
_NO_DATA: frozenset[EntryKind] = frozenset({"hardlink", "symlink", "device", "directory", "fifo"})
#: pax keywords that do not change what a member is or where its data lies.
_PAX_HARMLESS = frozenset({"mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"})


# -- writing ---------------------------------------------------------------------


def check_member_name(path: str) -> None:
    """Raise :class:`UnsafeArchiveError` unless ``path`` is a plain relative member path."""
    why = None
    if not path:
        why = "is empty"
    elif len(path.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        why = f"is longer than {MAX_NAME_BYTES} bytes"
    elif "\\" in path:
        why = "contains a backslash"
    elif any(unicodedata.category(c) in {"Cc", "Cs"} or c in "\u2028\u2029" for c in path):
        why = "contains a control character"
    elif path.startswith("/") or path[1:2] == ":":
        why = "is absolute"
    elif any(part in {"", ".", ".."} for part in path.split("/")):
        why = "has an empty, '.' or '..' part"
    if why is not None:
        raise UnsafeArchiveError(
            f"member name {path[:80]!r} {why}; name members with plain relative paths"
        )


def header(path: str, size: int) -> bytes:
    """The tar header block(s) of a regular member: mode 0644, owner 0, time 0."""
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def padding(size: int) -> bytes:
    """The zero bytes that fill a member of ``size`` bytes up to a whole block."""
    return bytes(-size % BLOCK)


# -- reading ---------------------------------------------------------------------


class ByteSource(Protocol):
    """Decompressed bytes, read in pieces."""

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, at least one unless the stream has ended."""
        ...


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeArchiveError(f"{what} {raw[:80]!r} is not UTF-8; {ADVICE}") from None


def _parse_pax(data: bytes) -> dict[str, str]:
    """The records of a pax extended header, strictly: ``<length> <key>=<value>\\n``."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position, position + 12)
        digits = data[position:space]
        if space < 0 or not digits.isdigit():
            raise CorruptArchiveError(f"a pax header record is malformed; {ADVICE}")
        end = position + int(digits)
        record = data[space + 1 : end]
        if end <= space or end > len(data) or not record.endswith(b"\n"):
            raise CorruptArchiveError(f"a pax header record is malformed; {ADVICE}")
        key, equals, value = record[:-1].partition(b"=")
        if not equals:
            raise CorruptArchiveError(f"a pax header record has no '='; {ADVICE}")
        name = _decode(key, "a pax keyword")
        if name not in _PAX_HARMLESS and name not in {"path", "size", "linkpath"}:
            raise UnsafeArchiveError(
                f"the tar stream uses the pax keyword {name[:40]!r}, which this reader does "
                f"not support; {ADVICE}"
            )
        records[name] = _decode(value, "a pax value")
        position = end
    return records


def _parse_header(block: bytes) -> tarfile.TarInfo:
    if block[257:265] != _POSIX_MAGIC:
        raise CorruptArchiveError(f"a tar header is not a POSIX ustar header; {ADVICE}")
    try:
        info = tarfile.TarInfo.frombuf(block, "utf-8", "strict")
    except tarfile.HeaderError as exc:
        raise CorruptArchiveError(f"a tar header is invalid ({exc}); {ADVICE}") from None
    except UnicodeDecodeError:
        raise UnsafeArchiveError(
            f"a tar header holds a name or owner that is not UTF-8; {ADVICE}"
        ) from None
    if info.size < 0:
        raise CorruptArchiveError(f"a tar header declares a negative size; {ADVICE}")
    return info


class TarParser:
    """Reads tar entries from decompressed bytes, with every length bounded.

    :meth:`next_entry` reads the next header (after skipping what is left of
    the previous member's data); :meth:`data` yields the member's data.
    """

    def __init__(self, source: ByteSource, limits: ReadLimits) -> None:
        self._source = source
        self._limits = limits
        #: Data and padding of the current member not read yet.
        self.remaining = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only where the stream ends."""
        parts = []
        while size > 0:
            data = self._source.read(size)
            if not data:
                break
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def exact(self, size: int, what: str) -> bytes:
        """Exactly ``size`` bytes, or :class:`CorruptArchiveError` naming ``what``."""
        data = self.read(size)
        if len(data) != size:
            raise CorruptArchiveError(f"the tar stream ends inside {what}; {ADVICE}")
        return data

    def skip(self, size: int, what: str) -> None:
        """Read and drop ``size`` bytes, a bounded piece at a time."""
        while size > 0:
            step = min(size, self._limits.chunk_bytes)
            self.exact(step, what)
            size -= step

    def next_entry(self) -> Entry | None:
        """The next entry, or ``None`` at the end-of-archive marker."""
        if self.remaining:
            self.skip(self.remaining, "a member")
            self.remaining = 0
        pax: dict[str, str] = {}
        while True:
            block = self.read(BLOCK)
            if block == _ZERO_BLOCK and not pax:
                if self.read(BLOCK) != _ZERO_BLOCK:
                    raise CorruptArchiveError(
                        f"the tar end-of-archive marker is incomplete; {ADVICE}"
                    )
                return None
            if len(block) != BLOCK:
                raise CorruptArchiveError(
                    f"the tar stream ends without its end-of-archive marker; {ADVICE}"
                )
            info = _parse_header(block)
            if info.type == tarfile.XHDTYPE:
                if info.size > MAX_PAX_BYTES:
                    raise UnsafeArchiveError(
                        f"a pax header of {info.size} bytes exceeds the limit of "
                        f"{MAX_PAX_BYTES}; {ADVICE}"
                    )
                data = self.exact(info.size, "a pax header")
                self.skip(-info.size % BLOCK, "a pax header")
                pax.update(_parse_pax(data))
                continue
            kind = _KINDS.get(info.type, "other")
            name = pax.get("path", info.name)
            size = info.size
            if "size" in pax:
                text = pax["size"]
                if not (text.isascii() and text.isdigit()) or len(text) > _MAX_SIZE_DIGITS:
                    raise CorruptArchiveError(f"a pax size is not a number; {ADVICE}")
                size = int(text)
            if kind not in _NO_DATA:
                self.remaining = size + (-size % BLOCK)
            return Entry(name, kind, size)

    def data(self, size: int) -> Iterator[bytes]:
        """The current member's ``size`` bytes, in chunks of at most ``chunk_bytes``."""
        while size > 0 and self.remaining > 0:
            piece = self.read(min(self._limits.chunk_bytes, size, self.remaining))
            if not piece:
                raise CorruptArchiveError(f"the tar stream ends inside a member; {ADVICE}")
            self.remaining -= len(piece)
            size -= len(piece)
            yield piece
