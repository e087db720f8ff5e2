"""What every format shares: the advice, member names, chunk splitting, sealing, limits.

A writer checks each new member's name with :func:`check_new_name`, cuts the
member's chunks with :func:`sized_pieces` (which enforces an announced size)
and writes through a :class:`SealedOutput`, which keeps the sha256 *seal* of
every byte written, also when a header is rewritten in place. A reader checks
the seal with :func:`sha256_range`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from odeion_archive._digest import sha256_range
from odeion_archive._manifest import ContainerPrefix
from odeion_archive._names import ADVICE, check_name, name_key
from odeion_archive.errors import BackupFailedError, UnsafeArchiveError

__all__ = [
    "ADVICE",
    "PIECE",
    "SealedOutput",
    "check_new_name",
    "closed_writer",
    "sha256_range",
    "sized_pieces",
    "spooled",
    "too_many_members",
]

#: Largest piece handed to a compressor, and read at once for a seal.
PIECE = 1024 * 1024
#: A member of unknown size is spooled in memory up to this size, then to a temporary file.
SPOOL_MEMORY = 8 * 1024 * 1024


def check_new_name(path: str, keys: set[str]) -> None:
    """Refuse an unsafe ``path``, or one already in ``keys`` once normalised; record it.

    Raises :class:`~odeion_archive.errors.UnsafeArchiveError` for a name the
    readers would refuse and :class:`~odeion_archive.errors.BackupFailedError`
    for a name already written (compared case- and normalisation-insensitively).
    """
    check_name(path)
    key = name_key(path)
    if key in keys:
        raise BackupFailedError(
            f"member {path!r} was already written (names are compared case- and "
            "normalisation-insensitively); give each member a distinct name"
        )
    keys.add(key)


def closed_writer(fmt: str, path: str) -> BackupFailedError:
    """The error of a writer asked to add ``path`` after :meth:`close`."""
    return BackupFailedError(
        f"cannot add {path!r}: the {fmt} writer is closed; add members before close()"
    )


def sized_pieces(path: str, chunks: Iterable[bytes], size: int | None) -> Iterator[memoryview]:
    """``chunks`` cut into pieces of at most :data:`PIECE` bytes, checked against ``size``.

    With ``size`` given, raises :class:`~odeion_archive.errors.BackupFailedError`
    as soon as the chunks exceed it, or at their end if they fall short.
    """
    written = 0
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        for start in range(0, len(view), PIECE):
            piece = view[start : start + PIECE]
            written += len(piece)
            if size is not None and written > size:
                raise _size_error(path, size, "more")
            yield piece
    if size is not None and written != size:
        raise _size_error(path, size, str(written))


def _size_error(path: str, size: int, given: str) -> BackupFailedError:
    return BackupFailedError(
        f"member {path!r} was announced with {size} bytes but {given} were given; the archive "
        "is unusable, fix the component that wrote it"
    )


@contextlib.contextmanager
def spooled(chunks: Iterable[bytes]) -> Iterator[tuple[Iterator[bytes], int]]:
    """Stage ``chunks`` (in memory up to 8 MiB, then in an anonymous file): (chunks, size)."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY) as spool:
        for chunk in chunks:
            spool.write(chunk)
        length = spool.tell()
        spool.seek(0)
        yield iter(lambda: spool.read(PIECE), b""), length


class SealedOutput:
    """An output stream that counts and hashes what is written: the archive's seal.

    :meth:`rewrite` replaces bytes already written (a header whose size field
    is known only at the member's end) on an output that :meth:`can_rewrite`;
    :meth:`prefix` and :meth:`seal` then read back what follows the first
    rewritten byte, so that the seal covers the bytes as finally written. What
    they read back is checked against what was written (each write after a
    mark by its sha256, each rewrite by its bytes): a file changed on disk while
    the archive is written fails the backup instead of being sealed.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        #: Bytes written so far.
        self.offset = 0
        self._hash = hashlib.sha256()
        self._rehash: tuple[int, Any] | None = None
        #: Each write since the mark: its offset, length and sha256.
        self._written: list[tuple[int, int, bytes]] = []
        #: The bytes each rewrite since the mark put at its offset.
        self._rewritten: dict[int, bytes] = {}

    def write(self, data: bytes) -> None:
        """Write ``data`` and add it to the seal."""
        if data:
            self.stream.write(data)
            if self._rehash is None:
                self._hash.update(data)
            else:
                # Read back once the rewrites are done: remembered to check that reading.
                self._written.append((self.offset, len(data), hashlib.sha256(data).digest()))
            self.offset += len(data)

    def can_rewrite(self) -> bool:
        """Whether the output can seek, and be read back for the seal."""
        out = self.stream
        try:
            if not out.seekable() or out.tell() != self.offset:
                return False
            if out.readable():
                return True
            os.pread(out.fileno(), 1, 0)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return False
        return True

    def rewrite(self, offset: int, data: bytes) -> None:
        """Replace the bytes of one earlier :meth:`write` at ``offset`` by ``data``, as long.

        Needs :meth:`can_rewrite`, and :meth:`mark_rewrite` before that write.
        """
        if self._rehash is None or self._rehash[0] > offset:
            raise BackupFailedError("a header was rewritten without mark_rewrite() before it")
        if not any(at == offset and size == len(data) for at, size, _ in self._written):
            raise BackupFailedError(
                f"a rewrite at byte {offset} of {len(data)} bytes does not replace one whole "
                "earlier write of the same length"
            )
        self.stream.flush()
        self.stream.seek(offset)
        self.stream.write(data)
        self.stream.seek(self.offset)
        self._rewritten[offset] = bytes(data)

    def mark_rewrite(self) -> None:
        """Note that bytes written from now on may be rewritten (call before writing them)."""
        if self._rehash is None:
            self._rehash = (self.offset, self._hash.copy())

    def _caught_up(self) -> None:
        """Hash the bytes written since the mark as they now stand, read back and checked."""
        if self._rehash is None:
            return
        _start, digest = self._rehash
        self.stream.flush()
        for offset, size, written in self._written:
            data = self._read_exactly(offset, size)
            now = self._rewritten.get(offset)
            if (data != now) if now is not None else hashlib.sha256(data).digest() != written:
                raise BackupFailedError(
                    f"the archive changed on disk while it was written (the {size} bytes at "
                    f"byte {offset} differ from those written); nothing was kept, check the "
                    "storage of the backup directory and that nothing else writes there"
                )
            digest.update(data)
        self._hash = digest
        self._rehash = None
        self._written.clear()
        self._rewritten.clear()

    def prefix(self) -> ContainerPrefix:
        """Every byte written so far, as it now stands: their count and sha256.

        Call it between members, when no byte written is left to rewrite: the
        bytes written since a rewrite was marked are read back and checked now
        (once: the seal goes on from here), and the bytes written next are
        hashed as they are written again.
        """
        self._caught_up()
        return ContainerPrefix(self.offset, self._hash.hexdigest())

    def seal(self) -> bytes:
        """sha256 of every byte written so far, as it now stands."""
        self._caught_up()
        return bytes(self._hash.digest())

    def _read_exactly(self, offset: int, size: int) -> bytes:
        parts = []
        while size > 0:
            data = self._read_back(offset, min(size, PIECE))
            parts.append(data)
            offset += len(data)
            size -= len(data)
        return b"".join(parts)

    def _read_back(self, offset: int, size: int) -> bytes:
        if self.stream.readable():
            position = self.stream.tell()
            self.stream.seek(offset)
            data = self.stream.read(size)
            self.stream.seek(position)
        else:
            data = os.pread(self.stream.fileno(), size, offset)
        if not data:
            raise BackupFailedError(
                "the archive could not be read back to seal it; check the backup directory"
            )
        return data


def too_many_members(what: str, limit: int) -> UnsafeArchiveError:
    """The error of a container that holds more members than ``ReadLimits.max_members``."""
    return UnsafeArchiveError(
        f"{what} more than {limit} members; refusing it "
        "(raise ReadLimits.max_members only for an archive you trust)"
    )
