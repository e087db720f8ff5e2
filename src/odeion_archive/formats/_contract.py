"""Containers built by hand for :func:`odeion_archive.testing.check_format`.

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
import io
import lzma
import stat
import tarfile
import zipfile
from collections.abc import Callable

import zstandard

from odeion_archive.interfaces import EntryKind

__all__ = ["entries_of_every_kind"]

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
