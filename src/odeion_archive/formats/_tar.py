"""POSIX tar headers: written deterministically, read back strictly and bounded.

:func:`tar_header` builds the header block(s) of a regular member: ustar, with
a pax header for a long or non-ASCII name; mode 0644, owner 0/"" and time 0.
For a given name it always has the same length, whatever the size (the size
field is octal, or base-256 past 8 GiB: 12 bytes either way), so a writer can
rewrite it in place once a streamed member's size is known.

:class:`TarReader` reads entries from decompressed bytes one 512-byte block at
a time, with every length bounded: pax headers of one member take at most
64 KiB, data is handed out in chunks of at most ``ReadLimits.chunk_bytes``.
It reports each entry's true kind (file, directory, symlink, hardlink,
device, fifo or other) from its type flag, and refuses a regular member whose
mode, owner or pax records are not plain (see :mod:`odeion_archive._modes`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator
from typing import Protocol

import attrs

from odeion_archive._modes import mode_problem, owner_problem
from odeion_archive.errors import CorruptArchiveError, UnsafeArchiveError
from odeion_archive.formats._common import ADVICE, too_many_members
from odeion_archive.interfaces import Entry, EntryKind, ReadLimits

__all__ = [
    "BLOCK",
    "END_OF_ARCHIVE",
    "USTAR_MAGIC",
    "ByteSource",
    "TarMember",
    "TarReader",
    "tar_header",
    "tar_padding",
    "walk_tar",
]

#: Size of a tar block.
BLOCK = 512
#: The tar end-of-archive marker: two zero blocks.
END_OF_ARCHIVE = bytes(2 * BLOCK)
#: The magic and version of a POSIX ustar header, at offset 257.
USTAR_MAGIC = b"ustar\x0000"

_ZERO_BLOCK = bytes(BLOCK)
_MAX_OCTAL_SIZE = 8**11 - 1
_MAX_PAX = 64 * 1024

#: The pax records a regular member may carry (the writer uses only ``path``).
_PLAIN_PAX = frozenset(
    {"path", "size", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"}
)

_KINDS: dict[bytes, EntryKind] = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "device",
    b"4": "device",
    b"5": "directory",
    b"6": "fifo",
}


# -- writing ---------------------------------------------------------------------


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    digits = len(str(len(body)))
    while len(str(len(body) + digits)) != digits:
        digits += 1
    return str(len(body) + digits).encode() + body


def _ustar(name: bytes, size: int, typeflag: bytes) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = b"0000644\0"
    header[108:116] = b"0000000\0"
    header[116:124] = b"0000000\0"
    if size > _MAX_OCTAL_SIZE:
        header[124:136] = b"\x80" + size.to_bytes(11, "big")  # base-256, same width
    else:
        header[124:136] = b"%011o\0" % size
    header[136:148] = b"00000000000\0"
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[257:265] = USTAR_MAGIC
    header[329:337] = b"0000000\0"
    header[337:345] = b"0000000\0"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def tar_padding(size: int) -> bytes:
    """The zero bytes that fill a member of ``size`` bytes up to a whole block."""
    return bytes(-size % BLOCK)


def tar_header(path: str, size: int) -> bytes:
    """The tar header block(s) of a regular member: ustar, plus pax where needed.

    Its length depends on ``path`` only, never on ``size``.
    """
    name = path.encode("utf-8")
    if len(name) <= 100 and path.isascii():
        return _ustar(name, size, b"0")
    records = _pax_record("path", path)
    name = b"odeion-pax-" + hashlib.sha256(name).hexdigest()[:32].encode()
    return (
        _ustar(b"PaxHeaders/" + name[:80], len(records), b"x")
        + records
        + tar_padding(len(records))
        + _ustar(name, size, b"0")
    )


# -- reading ---------------------------------------------------------------------


class ByteSource(Protocol):
    """Decompressed bytes, read in pieces; damaged input raises an ``ArchiveInvalidError``."""

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, at least one unless the stream has ended."""
        ...


class TarReader:
    """Parses a tar stream from a :class:`ByteSource`, bounded and strict."""

    def __init__(self, source: ByteSource, limits: ReadLimits) -> None:
        self._source = source
        self._limits = limits
        #: Data and padding of the current member not read yet.
        self.remaining = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the stream."""
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
            step = min(size, 1024 * 1024)
            self.exact(step, what)
            size -= step

    def next_entry(self) -> tuple[Entry, int] | None:
        """The next member's entry and padded data length, or ``None`` at the end.

        Skips what is left of the previous member's data first.
        """
        if self.remaining:
            self.skip(self.remaining, "a member")
            self.remaining = 0
        pax: dict[str, str] = {}
        pax_bytes = 0
        while True:
            block = self.read(BLOCK)
            if block == _ZERO_BLOCK:
                return None
            if len(block) != BLOCK:
                raise CorruptArchiveError(
                    f"the tar stream ends without its end-of-archive marker; {ADVICE}"
                )
            header = _parse_header(block)
            size, typeflag = header.size, header.typeflag
            if typeflag != b"x":
                break
            pax_bytes += size
            if pax_bytes > _MAX_PAX:
                raise UnsafeArchiveError(
                    f"the pax headers of one member exceed {_MAX_PAX} bytes; {ADVICE}"
                )
            data = self.exact(size, "a pax header")
            self.skip(-size % BLOCK, "a pax header")
            pax.update(_parse_pax(data))
        name = pax["path"] if "path" in pax else _decode(header.name)
        size = _pax_number(pax, "size", size)
        kind = _KINDS.get(typeflag, "other")
        if kind == "file":
            _check_plain(name, header, pax)
        self.remaining = size + (-size % BLOCK)
        return Entry(name, kind, size), self.remaining

    def data(self, size: int) -> Iterator[bytes]:
        """The current member's ``size`` bytes, in chunks; ``remaining`` tracks what is left."""
        while self.remaining and size:
            data = self.read(min(self._limits.chunk_bytes, size, self.remaining))
            if not data:
                raise CorruptArchiveError(f"the tar stream ends inside a member; {ADVICE}")
            self.remaining -= len(data)
            size -= len(data)
            yield data


class TarMember:
    """A member met by :func:`walk_tar`: its entry, and its data once."""

    def __init__(self, entry: Entry, chunks: Callable[[], Iterator[bytes]]) -> None:
        self.entry = entry
        self._chunks = chunks

    def chunks(self) -> Iterator[bytes]:
        """The member's bytes; to be consumed before the walk advances."""
        return self._chunks()


def walk_tar(source: ByteSource, limits: ReadLimits) -> Iterator[TarMember]:
    """Every entry of the tar stream in ``source``, up to ``limits.max_members`` of them."""
    tar = TarReader(source, limits)
    count = 0
    while (found := tar.next_entry()) is not None:
        count += 1
        if count > limits.max_members:
            raise too_many_members("the tar stream holds", limits.max_members)
        entry = found[0]
        yield TarMember(entry, functools.partial(tar.data, entry.size))


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeArchiveError(f"a tar member name {raw!r} is not UTF-8; {ADVICE}") from None


def _number(field: bytes) -> int:
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise CorruptArchiveError(f"a tar header holds a negative number; {ADVICE}")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise CorruptArchiveError(
            f"a tar header field {field!r} is not an octal number; {ADVICE}"
        ) from None


@attrs.frozen
class _Header:
    """The fields of one ustar header block that the reader uses."""

    name: bytes
    size: int
    typeflag: bytes
    mode: int
    uid: int
    gid: int
    uname: bytes
    gname: bytes


def _parse_header(block: bytes) -> _Header:
    if block[257:265] != USTAR_MAGIC:
        raise CorruptArchiveError(f"a tar header is not a POSIX ustar header; {ADVICE}")
    stored = _number(block[148:156])
    if stored != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        raise CorruptArchiveError(f"a tar header fails its checksum; {ADVICE}")
    name = block[0:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0]
    if prefix:
        name = prefix + b"/" + name
    return _Header(
        name=name,
        size=_number(block[124:136]),
        typeflag=block[156:157],
        mode=_number(block[100:108]),
        uid=_number(block[108:116]),
        gid=_number(block[116:124]),
        uname=block[265:297].split(b"\0", 1)[0],
        gname=block[297:329].split(b"\0", 1)[0],
    )


def _pax_number(pax: dict[str, str], key: str, default: int) -> int:
    if key not in pax:
        return default
    value = pax[key]
    if not value.isascii() or not value.isdigit() or len(value) > 20:
        raise CorruptArchiveError(f"a pax {key} is not a number; {ADVICE}")
    return int(value)


def _check_plain(name: str, header: _Header, pax: dict[str, str]) -> None:
    """Refuse a regular member whose mode, owner or pax records are not plain (see :mod:`._modes`).

    pax records other than names, sizes, times, owners and comments (ACLs and
    extended attributes such as ``SCHILY.xattr.security.capability``, which tar
    run as root may restore; sparse-file maps; link targets) are refused too.
    """
    unknown = sorted(set(pax) - _PLAIN_PAX)
    if unknown:
        raise UnsafeArchiveError(
            f"member {name!r} carries the pax record {unknown[0]!r}; odeion archives use only "
            f"{', '.join(sorted(_PLAIN_PAX))}, so {ADVICE}"
        )
    problem = mode_problem(header.mode) or owner_problem(
        _pax_number(pax, "uid", header.uid),
        _pax_number(pax, "gid", header.gid),
        pax.get("uname", _decode(header.uname)),
        pax.get("gname", _decode(header.gname)),
    )
    if problem is not None:
        raise UnsafeArchiveError(
            f"member {name!r} {problem}; odeion archives hold only regular files with mode "
            f"0644, 0640 or 0600 owned by root, so {ADVICE}"
        )


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        if space < 0 or not data[pos:space].isdigit():
            raise CorruptArchiveError(f"a pax header record is malformed; {ADVICE}")
        length = int(data[pos:space])
        record = data[space + 1 : pos + length]
        if length <= space - pos or pos + length > len(data) or not record.endswith(b"\n"):
            raise CorruptArchiveError(f"a pax header record is malformed; {ADVICE}")
        key, sep, value = record[:-1].partition(b"=")
        if not sep:
            raise CorruptArchiveError(f"a pax header record has no '='; {ADVICE}")
        records[_decode(key)] = _decode(value)
        pos += length
    return records
