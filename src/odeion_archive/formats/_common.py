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

from odeion_archive._digest import BACKGROUND_BYTES, Sha256, read_exactly, sha256_range
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


class _Segment:
    """The bytes from one :meth:`SealedOutput.mark_rewrite` to the next, as written.

    Its first write may be rewritten (kept by its sha256, or by the bytes a
    rewrite put there); the rest is kept by one sha256, so memory holds one of
    these per streamed member whatever the member's size.
    """

    def __init__(self, start: int) -> None:
        self.start = start
        self.first: tuple[int, bytes] | None = None  # length and sha256 of the first write
        self.rewritten: bytes | None = None
        self.rest = hashlib.sha256()
        self.rest_length = 0

    def add(self, data: bytes) -> None:
        if self.first is None:
            self.first = (len(data), hashlib.sha256(data).digest())
        else:
            self.rest.update(data)
            self.rest_length += len(data)


class SealedOutput:
    """An output stream that counts and hashes what is written: the archive's seal.

    :meth:`rewrite` replaces bytes already written (a header whose size field
    is known only at the member's end) on an output that :meth:`can_rewrite`;
    :meth:`prefix` and :meth:`seal` then read back what follows the first
    rewritten byte, so that the seal covers the bytes as finally written. What
    they read back is checked against what was written (a rewritten write by
    its new bytes, the rest by sha256): a file changed on disk while the
    archive is written fails the backup instead of being sealed.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        #: Bytes written so far.
        self.offset = 0
        self._hash = hashlib.sha256()
        #: The seal's hash at the first mark, and the segments written since.
        self._marked: Any = None
        self._segments: list[_Segment] = []

    def write(self, data: bytes) -> None:
        """Write ``data`` and add it to the seal."""
        if data:
            self.stream.write(data)
            if self._marked is None:
                self._hash.update(data)
            else:
                # Read back once the rewrites are done: remembered to check that reading.
                self._segments[-1].add(data)
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
        """Replace the first write after a :meth:`mark_rewrite` (at ``offset``) by ``data``.

        ``data`` must be as long as that write; needs :meth:`can_rewrite`.
        """
        segment = next((s for s in self._segments if s.start == offset), None)
        if segment is None:
            raise BackupFailedError("a header was rewritten without mark_rewrite() before it")
        if segment.first is None or segment.first[0] != len(data):
            raise BackupFailedError(
                f"a rewrite at byte {offset} of {len(data)} bytes does not replace the whole "
                "first write after mark_rewrite()"
            )
        self.stream.flush()
        self.stream.seek(offset)
        self.stream.write(data)
        self.stream.seek(self.offset)
        segment.rewritten = bytes(data)

    def mark_rewrite(self) -> None:
        """Note that the next write may be rewritten, once it is all written (call before it)."""
        if self._marked is None:
            self._marked = self._hash.copy()
        if self._segments and self._segments[-1].start == self.offset:
            return
        self._segments.append(_Segment(self.offset))

    def _caught_up(self) -> None:
        """Hash the bytes written since the first mark as they now stand, read back and checked."""
        digest = self._marked
        if digest is None:
            return
        self.stream.flush()
        for segment in self._segments:
            if segment.first is None:
                continue
            length, written = segment.first
            data = self._read_exactly(segment.start, length)
            if segment.rewritten is not None:
                same = data == segment.rewritten
            else:
                same = hashlib.sha256(data).digest() == written
            digest.update(data)
            offset = segment.start + length
            end = offset + segment.rest_length
            # Two hashes of the same bytes: the check's in a thread beside the seal's.
            with Sha256(background=segment.rest_length >= BACKGROUND_BYTES) as rest:
                while offset < end:
                    data = self._read_exactly(offset, min(PIECE, end - offset))
                    rest.update(data)
                    digest.update(data)
                    offset += len(data)
                same = same and rest.hexdigest() == segment.rest.hexdigest()
            if not same:
                raise BackupFailedError(
                    f"the archive changed on disk while it was written (between bytes "
                    f"{segment.start} and {end}, the bytes differ from those written); nothing "
                    "was kept, check the storage of the backup directory and that nothing else "
                    "writes there"
                )
        self._hash = digest
        self._marked = None
        self._segments.clear()

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
        data = read_exactly(self._read_back, offset, size)
        if data is None:
            raise BackupFailedError(
                "the archive could not be read back to seal it; check the backup directory"
            )
        return data

    def _read_back(self, offset: int, size: int) -> bytes:
        if not self.stream.readable():
            return os.pread(self.stream.fileno(), size, offset)
        position = self.stream.tell()
        self.stream.seek(offset)
        data = self.stream.read(size)
        self.stream.seek(position)
        return data


def too_many_members(what: str, limit: int) -> UnsafeArchiveError:
    """The error of a container that holds more members than ``ReadLimits.max_members``."""
    return UnsafeArchiveError(
        f"{what} more than {limit} members; refusing it "
        "(raise ReadLimits.max_members only for an archive you trust)"
    )
