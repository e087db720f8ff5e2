"""The checks of :func:`odeion_archive.testing.check_format` that drive a format directly.

They call the format's own writer and reader, not the core: a writer must
stream a member of unknown size to a file (:func:`check_streaming`) and refuse
a member of another size than announced (:func:`check_sizes`); a reader must
honour its limits itself (:func:`check_limits`), notice damage in
``container_problems()`` (:func:`container_detects`) and report each entry's
true kind (:func:`check_kinds`). Each raises :class:`AssertionError`.

A format's writer writes regular files only, so to see whether a reader
reports each entry's true kind, the check needs a container that holds other
kinds. :func:`entries_of_every_kind` builds one in the container family of an
archive the format wrote, recognised from its first bytes: a zip archive
(written with :mod:`zipfile`), or a tar stream compressed with gzip, xz,
bzip2 or zstd. A format's ``walk()`` that decompresses the stream from the
start (as it should: the stream is the truth) then meets a symlink, a hard
link, a directory and a fifo, and must report them as such or refuse them.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import stat
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zstandard

from odeion_archive._manifest import HEAD_MEMBER
from odeion_archive.errors import ArchiveError, ArchiveInvalidError
from odeion_archive.interfaces import ArchiveFormat, EntryKind, ReadLimits

__all__ = [
    "NoSeek",
    "check_kinds",
    "check_limits",
    "check_sizes",
    "check_streaming",
    "container_detects",
    "entries_of_every_kind",
    "require",
]

_FILE = "users_auth/users.jsonl"

_COMPRESSORS: list[tuple[bytes, Callable[[bytes], bytes]]] = [
    (b"\x1f\x8b", lambda data: gzip.compress(data, mtime=0)),
    (b"\xfd7zXZ\x00", lambda data: lzma.compress(data, lzma.FORMAT_XZ)),
    (b"BZh", bz2.compress),
    (b"\x28\xb5\x2f\xfd", lambda data: zstandard.ZstdCompressor().compress(data)),
]


def _tar() -> tuple[bytes, dict[str, EntryKind]]:
    out = io.BytesIO()
    kinds: dict[str, EntryKind] = {}
    entries: list[tuple[str, bytes, EntryKind]] = [
        (_FILE, tarfile.REGTYPE, "file"),
        ("users_auth/symlink", tarfile.SYMTYPE, "symlink"),
        ("users_auth/hardlink", tarfile.LNKTYPE, "hardlink"),
        ("users_auth/dir", tarfile.DIRTYPE, "directory"),
        ("users_auth/fifo", tarfile.FIFOTYPE, "fifo"),
    ]
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, typeflag, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = typeflag
            info.mode = 0o644
            info.linkname = (
                "/etc/passwd" if kind == "symlink" else _FILE if kind == "hardlink" else ""
            )
            data = b"{}\n" if kind == "file" else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            kinds[name] = kind
    return out.getvalue(), kinds


def _zip() -> tuple[bytes, dict[str, EntryKind]]:
    out = io.BytesIO()
    kinds: dict[str, EntryKind] = {}
    entries: list[tuple[str, int, EntryKind, bytes]] = [
        (_FILE, stat.S_IFREG | 0o644, "file", b"{}\n"),
        ("users_auth/symlink", stat.S_IFLNK | 0o777, "symlink", b"/etc/passwd"),
        ("users_auth/dir/", stat.S_IFDIR | 0o755, "directory", b""),
        ("users_auth/fifo", stat.S_IFIFO | 0o644, "fifo", b""),
    ]
    with zipfile.ZipFile(out, "w") as archive:
        for name, mode, kind, data in entries:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = mode << 16
            archive.writestr(info, data)
            kinds[name.rstrip("/")] = kind
    return out.getvalue(), kinds


def entries_of_every_kind(head: bytes) -> tuple[bytes, dict[str, EntryKind]] | None:
    """A container of the family of ``head`` holding entries of every kind, and their kinds.

    The kinds are keyed by name without a trailing ``/`` (tar and zip give a
    directory's name one).

    ``None`` for a container of a family this module does not know.
    """
    if head.startswith(b"PK\x03\x04"):
        return _zip()
    for magic, compress in _COMPRESSORS:
        if head.startswith(magic):
            tar, kinds = _tar()
            return compress(tar), kinds
    return None


def require(condition: object, message: str) -> None:
    """Raise :class:`AssertionError` with ``message`` unless ``condition`` (also under -O)."""
    if not condition:
        raise AssertionError(message)


class NoSeek(io.RawIOBase):
    """A write-only stream that fails on any attempt to seek or tell, like a pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def seek(self, _offset: int, _whence: int = 0) -> int:
        raise AssertionError("the writer seeked its output stream; writers must not seek")

    def tell(self) -> int:
        raise AssertionError("the writer asked for the output position; writers must not seek")

    def write(self, data: Any) -> int:
        self.data += data
        return len(data)


def check_streaming(fmt: ArchiveFormat, workdir: Path) -> None:
    """A member of unknown size reaches a file that can seek before its last chunk is taken.

    The file is open for reading and writing, as the backup store opens it.
    """
    path = workdir / f"streamed{fmt.suffix}"
    grew: list[bool] = []
    with path.open("w+b") as stream:
        writer = fmt.open_writer(stream)
        start = stream.tell()

        def chunks() -> Iterator[bytes]:
            for number in range(4):
                if number:
                    grew.append(stream.tell() > start)
                yield hashlib.sha256(b"%d" % number).digest() * 2048

        writer.add("users_auth/streamed.jsonl", chunks())
        writer.close()
    require(
        any(grew),
        f"{fmt.name}: the writer stages a member of unknown size on a stream that can seek: "
        "it wrote nothing before it had taken the member's last chunk; stream it, and write "
        "its size into its header in place at its end (odeion_archive.formatkit.SealedOutput)",
    )


def container_detects(fmt: ArchiveFormat, path: Path) -> bool:
    with path.open("rb") as file:
        try:
            reader = fmt.open_reader(file, ReadLimits())
            try:
                return bool(reader.container_problems())
            finally:
                reader.close()
        except ArchiveInvalidError:
            return True


def check_sizes(fmt: ArchiveFormat) -> None:
    """The writer refuses a member longer or shorter than its announced size."""
    for announced in (5, 20):
        for stream in (NoSeek(), io.BytesIO()):
            writer = fmt.open_writer(stream)  # type: ignore[arg-type]
            try:
                writer.add("users_auth/sized.jsonl", [b"0123456789"], size=announced)
                writer.close()
            except ArchiveError:
                continue
            raise AssertionError(
                f"{fmt.name}: the writer accepts a member of 10 bytes announced with "
                f"{announced}; raise BackupFailedError (odeion_archive.formatkit.sized_pieces)"
            )


def check_limits(fmt: ArchiveFormat, path: Path) -> None:
    """The reader itself honours max_members, max_size and chunk_bytes."""
    few = ReadLimits(max_members=2)
    with path.open("rb") as file:
        try:
            listed = len(fmt.open_reader(file, few).entries())
        except ArchiveInvalidError:
            listed = 0
        require(
            listed <= few.max_members,
            f"{fmt.name}: entries() lists {listed} members although ReadLimits.max_members "
            f"is {few.max_members}; refuse the archive (UnsafeArchiveError)",
        )
        met = 0
        try:
            for _source in fmt.open_reader(file, few).walk():
                met += 1
                if met > few.max_members:
                    break
        except ArchiveInvalidError:
            pass
        require(
            met <= few.max_members,
            f"{fmt.name}: walk() meets more members than ReadLimits.max_members without refusing",
        )
        try:
            fmt.open_reader(file, ReadLimits()).read_member(HEAD_MEMBER, 16)
        except ArchiveInvalidError:
            pass
        else:
            raise AssertionError(
                f"{fmt.name}: read_member() returns a member larger than its max_size; "
                "raise UnsafeArchiveError"
            )
        small = ReadLimits(chunk_bytes=4096)
        for source in fmt.open_reader(file, small).walk():
            for chunk in source.chunks():
                require(
                    len(chunk) <= small.chunk_bytes,
                    f"{fmt.name}: walk() yields a chunk of {len(chunk)} bytes, more than "
                    f"ReadLimits.chunk_bytes ({small.chunk_bytes})",
                )


def check_kinds(fmt: ArchiveFormat, path: Path, workdir: Path) -> None:
    """walk() reports links, directories and fifos as what they are, or refuses them."""
    crafted = entries_of_every_kind(path.read_bytes()[:16])
    if crafted is None:
        return
    data, kinds = crafted
    hostile = workdir / f"kinds{fmt.suffix}"
    hostile.write_bytes(data)
    with hostile.open("rb") as file:
        try:
            for source in fmt.open_reader(file, ReadLimits()).walk():
                entry = source.entry
                kind = kinds.get(entry.name.rstrip("/"))
                require(
                    kind is None or kind == entry.kind,
                    f"{fmt.name}: walk() reports the {kind} {entry.name!r} as a {entry.kind}; "
                    "report each entry's true kind (odeion_archive.formatkit.TarReader does)",
                )
        except ArchiveInvalidError:
            pass
