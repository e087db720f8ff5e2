"""The streaming tar.gz writer: two gzip members per archive member, the index trailer last."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from typing import IO, Literal

from odeion_archive import formatkit as kit
from odeion_archive.errors import BackupFailedError
from odeion_archive_targz._gzip import MEMBER_HEADER, MemberCompressor, trailer

__all__ = ["INDEX_VERSION", "TarGzWriter", "header_member", "index_json"]

#: The version of the index layout in the trailer.
INDEX_VERSION = 1


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


def header_member(header: bytes) -> bytes:
    """A gzip member holding ``header`` in one stored deflate block.

    Its length depends on the header's only, so that the header of a member
    streamed before its size was known can be rewritten in place.
    """
    size = len(header)
    stored = b"\x01" + struct.pack("<HH", size, size ^ 0xFFFF) + header  # final, stored
    return MEMBER_HEADER + stored + struct.pack("<II", zlib.crc32(header), size)


class TarGzWriter:
    """Writes one tar.gz archive, member by member, with bounded memory.

    Data is compressed in pieces of at most 1 MiB. A member whose size is not
    given to :meth:`add` streams straight through on an output that can seek
    (the archive file): its header member is rewritten in place once the size
    is known. Only on an output that cannot seek (a pipe) is it spooled first
    (in memory up to 8 MiB, then to an anonymous temporary file).

    Raises :class:`~odeion_archive.errors.UnsafeArchiveError` for an unsafe
    name and :class:`~odeion_archive.errors.BackupFailedError` for a name
    already written, a member that differs from its announced size, or a writer
    that is closed or broken by an earlier failure.
    """

    def __init__(self, stream: IO[bytes], level: int) -> None:
        self._out = kit.SealedOutput(stream)
        self._level = level
        self._members: list[tuple[str, int]] = []
        self._keys: set[str] = set()
        self._state: Literal["open", "closed", "broken"] = "open"

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
        """Write one regular member, streaming; ``size`` is checked if given."""
        self._refuse_unless_open(f"add {path!r}")
        kit.check_member_name(path, self._keys)
        try:
            if size is None and not self._out.can_rewrite():
                with kit.spooled(chunks) as (staged, length):
                    self._write_member(path, staged, length)
            else:
                self._write_member(path, chunks, size)
        except BaseException:
            self._state = "broken"
            raise

    def _write_member(self, path: str, chunks: Iterable[bytes], size: int | None) -> None:
        offset = self._out.offset
        if size is None:
            self._out.mark_rewrite()
        self._out.write(header_member(kit.tar_header(path, size or 0)))
        member = MemberCompressor(self._level)
        self._out.write(member.start())
        written = 0
        for piece in kit.sized_pieces(path, chunks, size):
            written += len(piece)
            self._out.write(member.compress(piece))
        self._out.write(member.compress(kit.tar_padding(written)))
        self._out.write(member.finish())
        if size is None:
            self._out.rewrite(offset, header_member(kit.tar_header(path, written)))
        self._members.append((path, offset))

    def close(self) -> None:
        """Write the end-of-archive member and the trailer with the sealed index."""
        if self._state == "closed":
            return
        self._refuse_unless_open("close the archive")
        self._state = "closed"
        eof = self._out.offset
        member = MemberCompressor(self._level)
        self._out.write(member.start() + member.compress(kit.TAR_END_OF_ARCHIVE) + member.finish())
        self._out.stream.write(trailer(index_json(self._members, eof), self._out.seal()))
        self._out.stream.flush()
