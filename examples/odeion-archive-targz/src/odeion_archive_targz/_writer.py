"""The streaming tar.gz writer: one gzip member per archive member, the index trailer last."""

from __future__ import annotations

import hashlib
import json
import tempfile
import unicodedata
from collections.abc import Iterable
from typing import IO, Literal

from odeion_archive.errors import BackupFailedError, UnsafeArchiveError
from odeion_archive_targz._gzip import MemberCompressor, trailer
from odeion_archive_targz._tar import END_OF_ARCHIVE, check_member_name, header, padding

__all__ = ["INDEX_VERSION", "TarGzWriter", "index_json"]

#: The version of the index layout in the trailer.
INDEX_VERSION = 1

#: Largest piece handed to the compressor at once.
_PIECE = 1024 * 1024
#: A member of unknown size is spooled in memory up to this size, then to a temporary file.
_SPOOL_MEMORY = 8 * 1024 * 1024


def index_json(members: Iterable[tuple[str, int]], eof: int) -> bytes:
    """The index as compact ASCII JSON: member names with the offsets of their gzip members."""
    document = {
        "eof": eof,
        "members": [[name, offset] for name, offset in members],
        "version": INDEX_VERSION,
    }
    return json.dumps(document, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode(
        "ascii"
    )


class TarGzWriter:
    """Writes one tar.gz archive to a sequential stream, never seeking it.

    Memory stays bounded: data is compressed in pieces of at most 1 MiB, and a
    member whose size is not given to :meth:`add` is spooled (in memory up to
    8 MiB, then to an anonymous temporary file), because its tar header,
    written first, holds its size.
    """

    def __init__(self, stream: IO[bytes], level: int) -> None:
        self._out = stream
        self._level = level
        self._offset = 0
        self._seal = hashlib.sha256()
        self._members: list[tuple[str, int]] = []
        self._keys: set[str] = set()
        self._state: Literal["open", "closed", "broken"] = "open"

    def _emit(self, data: bytes) -> None:
        if data:
            self._out.write(data)
            self._seal.update(data)
            self._offset += len(data)

    def _refuse_unless_open(self, what: str) -> None:
        if self._state == "broken":
            raise BackupFailedError(
                f"cannot {what}: an earlier member failed, so the tar.gz archive is unusable; "
                "start a new archive"
            )
        if self._state == "closed":
            raise BackupFailedError(
                f"cannot {what}: the tar.gz writer is closed; add members before close()"
            )

    def add(self, path: str, chunks: Iterable[bytes], *, size: int | None = None) -> None:
        """Write one regular member; with ``size`` given it streams without spooling."""
        self._refuse_unless_open(f"add {path!r}")
        try:
            check_member_name(path)
        except UnsafeArchiveError as exc:
            raise BackupFailedError(str(exc)) from None
        key = unicodedata.normalize("NFKC", path).casefold()
        if key in self._keys:
            raise BackupFailedError(
                f"member {path!r} was already written (names are compared case- and "
                "normalisation-insensitively); give each member a distinct name"
            )
        if size is not None and size < 0:
            raise BackupFailedError(f"member {path!r} was announced with a negative size")
        self._keys.add(key)
        try:
            if size is not None:
                self._write_member(path, chunks, size)
                return
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY) as spool:
                for chunk in chunks:
                    spool.write(chunk)
                length = spool.tell()
                spool.seek(0)
                self._write_member(path, iter(lambda: spool.read(_PIECE), b""), length)
        except BaseException:
            self._state = "broken"
            raise

    def _write_member(self, path: str, chunks: Iterable[bytes], size: int) -> None:
        offset = self._offset
        member = MemberCompressor(self._level)
        self._emit(member.start())
        self._emit(member.compress(header(path, size)))
        written = 0
        for chunk in chunks:
            view = memoryview(chunk).cast("B")
            for start in range(0, len(view), _PIECE):
                piece = view[start : start + _PIECE]
                written += len(piece)
                if written > size:
                    raise BackupFailedError(
                        f"member {path!r} was announced with {size} bytes but more were given; "
                        "the archive is unusable, fix the component that wrote it"
                    )
                self._emit(member.compress(piece))
        if written != size:
            raise BackupFailedError(
                f"member {path!r} was announced with {size} bytes but {written} were given; "
                "the archive is unusable, fix the component that wrote it"
            )
        self._emit(member.compress(padding(size)))
        self._emit(member.finish())
        self._members.append((path, offset))

    def close(self) -> None:
        """Write the end-of-archive member and the trailer with the sealed index."""
        if self._state == "closed":
            return
        self._refuse_unless_open("close the archive")
        self._state = "closed"
        eof = self._offset
        member = MemberCompressor(self._level)
        self._emit(member.start() + member.compress(END_OF_ARCHIVE) + member.finish())
        self._out.write(trailer(index_json(self._members, eof), self._seal.digest()))
        self._out.flush()
