"""The tar.zst archive format: POSIX tar, one zstd frame per member, and an index.

Layout of an archive, all of it readable by ``zstd -dc | tar -x``:

* per member, two zstd frames: a small frame holding the member's tar header
  (and a pax header for long or non-ASCII names) in one uncompressed block,
  then a frame (with content checksum) holding its data and the padding to a
  512-byte block;
* one zstd frame holding the tar end-of-archive marker (two zero blocks);
* one zstd *skippable* frame, which tar and the zstd tool pass over, holding
  the index ``{"end": <offset>, "members": [[name, offset], ...]}`` (compressed
  offset of each member's first frame) and a fixed 80-byte footer: sha256 of the
  index, the *seal* (sha256 of every compressed byte before the skippable
  frame), the index length and a magic.

Headers are deterministic: mode 0644, owner 0/"" and time 0. The index lets a
reader fetch one small member (the manifest) with a bounded read; the walk
ignores it and decompresses the stream from the start, since the stream is
the truth, with a decoder window bounded by ``ReadLimits.max_window_bytes``.

A tar header carries the member's size before its data, and a pg_dump stream
has no size until it ends. The header's frame is therefore stored, not
compressed, and always has the same length for a given name (the size field
is octal, or base-256 past 8 GiB: 12 bytes either way): a member of unknown
size streams straight through, and its header is rewritten in place once the
size is known, on an output that can seek (the archive file). The seal then
covers the bytes as finally written. Only on an output that cannot seek (a
pipe) is a member of unknown size spooled first (in memory up to 8 MiB, then to
an anonymous temporary file).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, cast

import attrs
import zstandard

from odeion_archive import _safejson
from odeion_archive._modes import mode_problem, owner_problem
from odeion_archive._names import MAX_NAME_BYTES, check_name, name_key
from odeion_archive.errors import (
    ArchiveInvalidError,
    BackupFailedError,
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, Entry, EntryKind, ReadLimits

__all__ = ["FOOTER_MAGIC", "TarZstFormat", "odeion_archive_formats"]

#: Last eight bytes of every tar.zst archive this library writes.
FOOTER_MAGIC = b"OdeIdx01"

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SKIPPABLE_MAGIC = 0x184D2A50
_SKIPPABLE = struct.Struct("<II")
_FOOTER = struct.Struct("<32s32sQ8s")
_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_MAX_OCTAL_SIZE = 8**11 - 1
_MAX_PAX = 64 * 1024
_PIECE = 1024 * 1024
_SPOOL_MEMORY = 8 * 1024 * 1024
_HEADER_READ = 16 * 1024
_SNIFF_BYTES = 4096
_ADVICE = "the archive is damaged or was tampered with, use another archive"

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


# -- tar headers -----------------------------------------------------------------


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    digits = len(str(len(body)))
    while len(str(len(body) + digits)) != digits:
        digits += 1
    return str(len(body) + digits).encode() + body


def _ustar(name: bytes, size: int, typeflag: bytes) -> bytes:
    header = bytearray(_BLOCK)
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
    header[257:265] = b"ustar\x0000"
    header[329:337] = b"0000000\0"
    header[337:345] = b"0000000\0"
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _padding(size: int) -> bytes:
    return bytes(-size % _BLOCK)


def tar_header(path: str, size: int) -> bytes:
    """The tar header block(s) of a regular member: ustar, plus pax where needed."""
    name = path.encode("utf-8")
    records = b""
    if len(name) > 100 or not path.isascii():
        records += _pax_record("path", path)
        name = b"odeion-pax-" + hashlib.sha256(name).hexdigest()[:32].encode()
    if not records:
        return _ustar(name, size, b"0")
    return (
        _ustar(b"PaxHeaders/" + name[:80], len(records), b"x")
        + records
        + _padding(len(records))
        + _ustar(name, size, b"0")
    )


def _stored_frame(data: bytes) -> bytes:
    """A zstd frame holding ``data`` in one raw (uncompressed) block.

    Single-segment, with a two-byte content size: for 256 to 65,791 bytes,
    which covers every tar header this writer makes.
    """
    size = len(data)
    if not 256 <= size < 65536 + 256:
        raise BackupFailedError(f"a tar header of {size} bytes does not fit a stored frame")
    block_header = (1 | (size << 3)).to_bytes(3, "little")  # last block, raw
    return _ZSTD_MAGIC + b"\x60" + (size - 256).to_bytes(2, "little") + block_header + data


_STORED_PREFIX = 4 + 1 + 2 + 3


# -- writing ---------------------------------------------------------------------


class _TarZstWriter:
    """Writes two zstd frames per member; the end marker and index on :meth:`close`."""

    def __init__(self, stream: IO[bytes], params: zstandard.ZstdCompressionParameters) -> None:
        self._out = stream
        self._cctx = zstandard.ZstdCompressor(compression_params=params)
        self._offset = 0
        self._hash = hashlib.sha256()
        # Where the first header rewritten in place starts, and the seal's state there.
        self._rehash: tuple[int, Any] | None = None
        self._index: list[tuple[str, int]] = []
        self._keys: set[str] = set()
        self._closed = False

    def _write(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self._hash.update(data)
            self._offset += len(data)

    def _can_rewrite(self) -> bool:
        """Whether headers can be rewritten in place and read back for the seal."""
        try:
            if not self._out.seekable() or self._out.tell() != self._offset:
                return False
            if self._out.readable():
                return True
            os.pread(self._out.fileno(), 1, 0)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return False
        return True

    def _read_back(self, offset: int, size: int) -> bytes:
        if self._out.readable():
            position = self._out.tell()
            self._out.seek(offset)
            data = self._out.read(size)
            self._out.seek(position)
            return data
        return os.pread(self._out.fileno(), size, offset)

    def add(self, path: str, chunks: Iterable[bytes], *, size: int | None = None) -> None:
        """Write one regular member, streaming; ``size`` is checked if given."""
        if self._closed:
            raise BackupFailedError(
                f"cannot add {path!r}: the tar.zst writer is closed; add members before close()"
            )
        check_name(path)
        key = name_key(path)
        if key in self._keys:
            raise BackupFailedError(
                f"member {path!r} was already written (names are compared case- and "
                "normalisation-insensitively); give each member a distinct name"
            )
        self._keys.add(key)
        if size is None and not self._can_rewrite():
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
                for chunk in chunks:
                    spool.write(chunk)
                length = spool.tell()
                spool.seek(0)
                self._add(path, iter(lambda: spool.read(_PIECE), b""), length)
        else:
            self._add(path, chunks, size)

    def _add(self, path: str, chunks: Iterable[bytes], size: int | None) -> None:
        offset = self._offset
        if size is None and self._rehash is None:
            self._rehash = (offset, self._hash.copy())
        header = tar_header(path, size or 0)
        self._write(_stored_frame(header))
        frame = self._cctx.compressobj()
        written = 0
        for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(view), _PIECE):
                piece = view[start : start + _PIECE]
                written += len(piece)
                if size is not None and written > size:
                    break
                self._write(frame.compress(piece))
        if size is not None and written != size:
            raise BackupFailedError(
                f"member {path!r} was announced with {size} bytes but "
                f"{'more' if written > size else written} were given; the archive is "
                "unusable, fix the component that wrote it"
            )
        self._write(frame.compress(_padding(written)))
        self._write(frame.flush())
        if size is None:
            final = tar_header(path, written)
            self._out.flush()
            self._out.seek(offset + _STORED_PREFIX)
            self._out.write(final)
            self._out.seek(self._offset)
        self._index.append((path, offset))

    def _seal(self) -> bytes:
        """sha256 of every byte written so far, as it now stands."""
        if self._rehash is None:
            return self._hash.digest()
        start, digest = self._rehash
        self._out.flush()
        position = start
        while position < self._offset:
            data = self._read_back(position, min(_PIECE * 4, self._offset - position))
            if not data:
                raise BackupFailedError(
                    "the archive could not be read back to seal it; check the backup directory"
                )
            digest.update(data)
            position += len(data)
        return bytes(digest.digest())

    def close(self) -> None:
        """Write the end-of-archive frame and the sealed index frame."""
        if self._closed:
            return
        self._closed = True
        end = self._offset
        frame = self._cctx.compressobj()
        self._write(frame.compress(_ZERO_BLOCK * 2) + frame.flush())
        seal = self._seal()
        index = _safejson.dumps({"end": end, "members": [list(m) for m in self._index]})
        footer = _FOOTER.pack(hashlib.sha256(index).digest(), seal, len(index), FOOTER_MAGIC)
        payload = index + footer
        self._out.write(_SKIPPABLE.pack(_SKIPPABLE_MAGIC, len(payload)) + payload)
        self._out.flush()


# -- reading ---------------------------------------------------------------------


class _Slice:
    """A read-only view of ``[start, end)`` of a file, for the zstd decoder."""

    def __init__(self, file: IO[bytes], start: int, end: int) -> None:
        self._file = file
        self._pos = start
        self._end = end

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self._end - self._pos
        size = min(size, self._end - self._pos)
        if size <= 0:
            return b""
        self._file.seek(self._pos)
        data = self._file.read(size)
        self._pos += len(data)
        return data


@attrs.frozen
class _Index:
    members: tuple[tuple[str, int], ...]
    end: int
    frame_start: int
    seal: bytes
    #: Where the frames that start at each member's offset end.
    frame_ends: dict[int, int] = attrs.field(factory=dict, eq=False)


def _zstd_error(exc: zstandard.ZstdError, limits: ReadLimits) -> ArchiveInvalidError:
    if "memory" in str(exc) or "window" in str(exc).lower():
        return UnsafeArchiveError(
            f"a zstd frame needs a window larger than {limits.max_window_bytes} bytes; "
            "refusing it (raise ReadLimits.max_window_bytes only for an archive you trust)"
        )
    return CorruptArchiveError(f"the zstd data is invalid ({exc}); {_ADVICE}")


class _TarStream:
    """Parses a tar stream from a decompressing reader, bounded and strict."""

    def __init__(self, source: Any, limits: ReadLimits) -> None:
        self._source = source
        self._limits = limits
        self.remaining = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the stream."""
        parts = []
        while size > 0:
            try:
                data = self._source.read(size)
            except zstandard.ZstdError as exc:
                raise _zstd_error(exc, self._limits) from None
            if not data:
                break
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def exact(self, size: int, what: str) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise CorruptArchiveError(f"the tar stream ends inside {what}; {_ADVICE}")
        return data

    def skip(self, size: int, what: str) -> None:
        while size > 0:
            step = min(size, _PIECE)
            self.exact(step, what)
            size -= step

    def next_entry(self) -> tuple[Entry, int] | None:
        """The next member's entry and padded data length, or ``None`` at the end."""
        pax: dict[str, str] = {}
        pax_bytes = 0
        while True:
            block = self.read(_BLOCK)
            if block == _ZERO_BLOCK:
                return None
            if len(block) != _BLOCK:
                raise CorruptArchiveError(
                    f"the tar stream ends without its end-of-archive marker; {_ADVICE}"
                )
            header = _parse_header(block)
            size, typeflag = header.size, header.typeflag
            if typeflag == b"x":
                pax_bytes += size
                if pax_bytes > _MAX_PAX:
                    raise UnsafeArchiveError(
                        f"the pax headers of one member exceed {_MAX_PAX} bytes; {_ADVICE}"
                    )
                data = self.exact(size, "a pax header")
                self.skip(-size % _BLOCK, "a pax header")
                pax.update(_parse_pax(data))
                continue
            name = pax["path"] if "path" in pax else _decode(header.name)
            size = _pax_number(pax, "size", size)
            kind = _KINDS.get(typeflag, "other")
            if kind == "file":
                _check_plain(name, header, pax)
            return Entry(name, kind, size), size + (-size % _BLOCK)

    def data(self, size: int) -> Iterator[bytes]:
        """The next ``size`` bytes, in chunks; ``remaining`` tracks what is left."""
        while self.remaining and size:
            data = self.read(min(self._limits.chunk_bytes, size, self.remaining))
            if not data:
                raise CorruptArchiveError(f"the tar stream ends inside a member; {_ADVICE}")
            self.remaining -= len(data)
            size -= len(data)
            yield data


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeArchiveError(f"a tar member name {raw!r} is not UTF-8; {_ADVICE}") from None


def _number(field: bytes) -> int:
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise CorruptArchiveError(f"a tar header holds a negative number; {_ADVICE}")
    text = field.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise CorruptArchiveError(
            f"a tar header field {field!r} is not an octal number; {_ADVICE}"
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
    if block[257:265] != b"ustar\x0000":
        raise CorruptArchiveError(f"a tar header is not a POSIX ustar header; {_ADVICE}")
    stored = _number(block[148:156])
    if stored != sum(block[:148]) + 8 * 32 + sum(block[156:]):
        raise CorruptArchiveError(f"a tar header fails its checksum; {_ADVICE}")
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
        raise CorruptArchiveError(f"a pax {key} is not a number; {_ADVICE}")
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
            f"{', '.join(sorted(_PLAIN_PAX))}, so {_ADVICE}"
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
            f"0644, 0640 or 0600 owned by root, so {_ADVICE}"
        )


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        if space < 0 or not data[pos:space].isdigit():
            raise CorruptArchiveError(f"a pax header record is malformed; {_ADVICE}")
        length = int(data[pos:space])
        record = data[space + 1 : pos + length]
        if length <= space - pos or pos + length > len(data) or not record.endswith(b"\n"):
            raise CorruptArchiveError(f"a pax header record is malformed; {_ADVICE}")
        key, sep, value = record[:-1].partition(b"=")
        if not sep:
            raise CorruptArchiveError(f"a pax header record has no '='; {_ADVICE}")
        records[_decode(key)] = _decode(value)
        pos += length
    return records


class _TarMember:
    def __init__(self, entry: Entry, chunks: Callable[[], Iterator[bytes]]) -> None:
        self.entry = entry
        self._chunks = chunks

    def chunks(self) -> Iterator[bytes]:
        return self._chunks()


class _TarZstReader:
    """Reads a tar.zst archive without trusting its index or its stream."""

    def __init__(self, file: IO[bytes], limits: ReadLimits) -> None:
        self._file = file
        self._limits = limits
        self._dctx = zstandard.ZstdDecompressor(max_window_size=limits.max_window_bytes)
        self._index: _Index | None = None

    def _pread(self, offset: int, size: int) -> bytes:
        self._file.seek(offset)
        return self._file.read(size)

    # -- the index -----------------------------------------------------------

    def index(self) -> _Index:
        if self._index is None:
            self._index = self._read_index()
        return self._index

    def _read_index(self) -> _Index:
        size = self._file.seek(0, 2)
        if size < _SKIPPABLE.size + _FOOTER.size:
            raise CorruptArchiveError(f"the tar.zst archive is too short; {_ADVICE}")
        index_sha, seal, length, magic = _FOOTER.unpack(
            self._pread(size - _FOOTER.size, _FOOTER.size)
        )
        if magic != FOOTER_MAGIC:
            raise CorruptArchiveError(
                "the tar.zst archive does not end with its index; it is truncated or was not "
                f"written by odeion-archive; {_ADVICE}"
            )
        bound = self._limits.max_members * (2 * MAX_NAME_BYTES + 64) + 64
        if length > bound:
            raise UnsafeArchiveError(
                f"the tar.zst index declares {length} bytes, more than {bound}; {_ADVICE}"
            )
        frame_start = size - _FOOTER.size - length - _SKIPPABLE.size
        if frame_start < 0:
            raise CorruptArchiveError(f"the tar.zst index runs past the start; {_ADVICE}")
        header = _SKIPPABLE.unpack(self._pread(frame_start, _SKIPPABLE.size))
        if header != (_SKIPPABLE_MAGIC, length + _FOOTER.size):
            raise CorruptArchiveError(f"the tar.zst index frame header is wrong; {_ADVICE}")
        raw = self._pread(frame_start + _SKIPPABLE.size, length)
        if hashlib.sha256(raw).digest() != index_sha:
            raise CorruptArchiveError(f"the tar.zst index fails its checksum; {_ADVICE}")
        # Count its JSON tokens before parsing: each one costs memory once parsed, and
        # member names hold none of these characters.
        most = self._limits.max_members
        if raw.count(b"[") > most + 1 or raw.count(b",") > 2 * most + 1 or raw.count(b"{") > 1:
            raise UnsafeArchiveError(
                f"the tar.zst index holds more entries than the limit of {most} members; "
                "refusing it (raise ReadLimits.max_members only for an archive you trust)"
            )
        try:
            data = _safejson.loads(raw, what="the tar.zst index")
        except UnsafeArchiveError as exc:
            raise CorruptArchiveError(str(exc)) from None
        return self._check_index(data, frame_start, seal)

    def _check_index(self, data: Any, frame_start: int, seal: bytes) -> _Index:
        bad = CorruptArchiveError(f"the tar.zst index is malformed; {_ADVICE}")
        if not isinstance(data, dict) or set(data) != {"end", "members"}:
            raise bad
        end, members = data["end"], data["members"]
        if not isinstance(end, int) or not isinstance(members, list):
            raise bad
        if len(members) > self._limits.max_members:
            raise UnsafeArchiveError(
                f"the tar.zst archive lists {len(members)} members, more than the limit of "
                f"{self._limits.max_members}; refusing it (raise ReadLimits.max_members only "
                "for an archive you trust)"
            )
        previous = -1
        result = []
        for item in members:
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not isinstance(item[0], str)
                or not isinstance(item[1], int)
                or item[1] <= previous
            ):
                raise bad
            previous = item[1]
            result.append((item[0], item[1]))
        if (result and result[0][1] != 0) or end <= previous or end >= frame_start:
            raise bad
        offsets = [offset for _name, offset in result]
        return _Index(
            tuple(result),
            end,
            frame_start,
            seal,
            dict(zip(offsets, [*offsets[1:], end], strict=True)),
        )

    def _frame_end(self, position: int) -> int:
        index = self.index()
        return index.frame_ends.get(position, index.frame_start)

    def _frame_stream(self, offset: int) -> _TarStream:
        source = cast("IO[bytes]", _Slice(self._file, offset, self._frame_end(offset)))
        reader = self._dctx.stream_reader(source, read_size=_HEADER_READ, read_across_frames=True)
        return _TarStream(reader, self._limits)

    # -- the ArchiveReader interface -----------------------------------------

    def read_member(self, path: str, max_size: int) -> bytes:
        """The whole of one small member, found through the index (a bounded read)."""
        offsets = dict(self.index().members)
        if path in offsets:
            offset = offsets[path]
        else:
            raise ManifestError(
                f"the archive has no member {path!r}; it is not an odeion archive or it is "
                "incomplete, use another archive"
            )
        stream = self._frame_stream(offset)
        found = stream.next_entry()
        if found is None or found[0].name != path or found[0].kind != "file":
            raise CorruptArchiveError(
                f"the tar.zst index points at the wrong place for {path!r}; {_ADVICE}"
            )
        entry, padded = found
        if entry.size > max_size:
            raise UnsafeArchiveError(
                f"member {path!r} declares {entry.size} bytes, more than the limit of "
                f"{max_size}; {_ADVICE}"
            )
        data = stream.exact(entry.size, f"member {path!r}")
        stream.exact(padded - entry.size, f"member {path!r}")
        if stream.read(1):
            raise CorruptArchiveError(
                f"the frame of {path!r} holds more than the member; {_ADVICE}"
            )
        return data

    def entries(self) -> list[Entry]:
        """Every member as the index and each frame's header declare it (no data read)."""
        result = []
        for name, offset in self.index().members:
            found = self._frame_stream(offset).next_entry()
            if found is None or found[0].name != name:
                raise CorruptArchiveError(
                    f"the tar.zst index points at the wrong place for {name!r}; {_ADVICE}"
                )
            result.append(found[0])
        return result

    def walk(self) -> Iterator[_TarMember]:
        """Every entry of the tar stream, decompressed from the start."""
        self._file.seek(0)
        reader = self._dctx.stream_reader(
            self._file, read_size=_HEADER_READ * 4, read_across_frames=True
        )
        stream = _TarStream(reader, self._limits)
        count = 0
        while True:
            if stream.remaining:
                stream.skip(stream.remaining, "a member")
                stream.remaining = 0
            found = stream.next_entry()
            if found is None:
                return
            count += 1
            if count > self._limits.max_members:
                raise UnsafeArchiveError(
                    f"the tar stream holds more than {self._limits.max_members} members; "
                    "refusing it (raise ReadLimits.max_members only for an archive you trust)"
                )
            entry, padded = found
            stream.remaining = padded
            yield _TarMember(entry, functools.partial(stream.data, entry.size))

    def container_problems(self) -> list[str]:
        """Check the index frame, the seal, and that the index points at its members."""
        try:
            index = self.index()
        except (CorruptArchiveError, UnsafeArchiveError) as exc:
            return [str(exc)]
        problems = []
        digest = hashlib.sha256()
        position = 0
        while position < index.frame_start:
            data = self._pread(position, min(_PIECE, index.frame_start - position))
            if not data:
                break
            digest.update(data)
            position += len(data)
        if digest.digest() != index.seal:
            problems.append(f"the tar.zst archive's seal does not match its bytes; {_ADVICE}")
        try:
            self.entries()
            source = cast("IO[bytes]", _Slice(self._file, index.end, index.frame_start))
            end = _TarStream(
                self._dctx.stream_reader(source, read_size=_HEADER_READ, read_across_frames=False),
                self._limits,
            )
            if end.read(3 * _BLOCK) != _ZERO_BLOCK * 2:
                problems.append(f"the tar.zst end-of-archive frame is wrong; {_ADVICE}")
        except (CorruptArchiveError, UnsafeArchiveError) as exc:
            problems.append(str(exc))
        return problems

    def close(self) -> None:
        """Nothing to release: the file belongs to the caller."""
        self._index = None


# -- the format ------------------------------------------------------------------


class TarZstFormat:
    """POSIX tar compressed with zstd: fast, and seekable to any member's frame.

    ``level`` is a zstd level, 1 (fast) to 19 (small). Without it, parameters
    tuned for the text of database dumps are used (lazy2 matching in a 2 MiB
    window, matches of at least 6 bytes): on a 2 GB Odeion database they make
    a full_db archive smaller than pg_dump's own gzip compression while taking
    well under half its time, with ``threads`` compression workers (by default
    one per core, at most four) running beside pg_dump. The bytes written do
    not depend on the number of workers.
    """

    name: str = "tar.zst"
    suffix: str = ".tar.zst"

    def __init__(self, level: int | None = None, threads: int | None = None) -> None:
        if level is not None and not 1 <= level <= 19:
            raise BackupFailedError(f"zstd level {level} is out of range; choose 1 to 19")
        if threads is not None and threads < 1:
            raise BackupFailedError(f"{threads} compression threads: choose 1 or more")
        self.level = level
        self.threads = threads if threads is not None else max(1, min(4, os.cpu_count() or 1))

    def _parameters(self) -> zstandard.ZstdCompressionParameters:
        common: dict[str, Any] = {
            "threads": self.threads,
            "write_checksum": True,
            "write_content_size": False,
        }
        if self.level is not None:
            return zstandard.ZstdCompressionParameters.from_level(self.level, **common)
        return zstandard.ZstdCompressionParameters(
            strategy=zstandard.STRATEGY_LAZY2,
            window_log=21,
            chain_log=19,
            hash_log=20,
            search_log=3,
            min_match=6,
            target_length=8,
            **common,
        )

    def __repr__(self) -> str:
        return f"TarZstFormat(level={self.level}, threads={self.threads})"

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` is a zstd frame that starts a POSIX tar stream.

        ``head`` is the first 4 KiB of the file (or all of a shorter file).
        """
        if not head.startswith(_ZSTD_MAGIC):
            return False
        dctx = zstandard.ZstdDecompressor(max_window_size=ReadLimits().max_window_bytes)
        try:
            start = dctx.stream_reader(io.BytesIO(head), read_across_frames=False).read(_BLOCK)
        except zstandard.ZstdError:
            return False
        if len(start) < _BLOCK:
            # The first block of the first frame did not fit in ``head``: only a full
            # head can be the start of an archive whose first member is that large.
            return len(head) >= _SNIFF_BYTES
        return start[257:265] == b"ustar\x0000"

    def open_writer(self, stream: IO[bytes]) -> _TarZstWriter:
        """A streaming writer to ``stream`` (which is never seeked)."""
        return _TarZstWriter(stream, self._parameters())

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> _TarZstReader:
        """A reader of the tar.zst archive in the seekable ``file``."""
        return _TarZstReader(file, limits)


@hookimpl
def odeion_archive_formats() -> list[ArchiveFormat]:
    """The tar.zst format."""
    return [TarZstFormat()]
