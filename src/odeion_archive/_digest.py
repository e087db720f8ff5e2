"""A sha256 taken beside the reading: a large member's bytes are hashed in a second thread.

Reading a member is decompressing it and hashing it; both release the GIL
(zstandard and zlib while they work, :mod:`hashlib` on buffers of more than
2 KiB), so hashing chunk *n* in a thread while chunk *n + 1* is decompressed
takes the time of the slower of the two instead of their sum: the check of a
whole database dump before a restore, and every verification, on two cores.

:func:`sha256_range` hashes a range of a file through a read function (a
container's seal), and :func:`read_exactly` reads one whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Self

__all__ = ["BACKGROUND_BYTES", "Sha256", "read_exactly", "sha256_range"]

#: Members this large are hashed in a thread of their own; smaller ones inline
#: (starting a thread costs more than it saves on them).
BACKGROUND_BYTES = 16 * 1024 * 1024
#: Bytes read at a time by :func:`sha256_range`.
_PIECE = 1024 * 1024


class Sha256:
    """A sha256 fed chunk by chunk, in a thread of its own when ``background`` is true.

    One chunk at a time is in flight: :meth:`update` waits for the previous
    one, so memory holds at most one chunk more than the reader's. Call
    :meth:`close` (or use it as a context manager) to end the thread.
    """

    def __init__(self, *, background: bool) -> None:
        self._hash = hashlib.sha256()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="sha256") if background else None
        self._pending: Future[None] | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _settle(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add ``chunk``; one handed to the thread is first copied unless it is ``bytes``.

        The copy keeps the thread's input fixed while the caller reuses its buffer.
        """
        if self._pool is None:
            self._hash.update(chunk)
            return
        self._settle()
        self._pending = self._pool.submit(
            self._hash.update, chunk if isinstance(chunk, bytes) else bytes(chunk)
        )

    def hexdigest(self) -> str:
        """The digest of every chunk added so far."""
        self._settle()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Wait for the chunk in flight and end the thread."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            self._pending = None


def sha256_range(
    read: Callable[[int, int], bytes], start: int, end: int, digest: Any = None
) -> bytes:
    """sha256 of bytes ``[start, end)`` through ``read(offset, size)`` (continuing ``digest``).

    Stops early where ``read`` returns nothing: a reader compares the result
    with the seal, which a short file then fails.
    """
    digest = digest or hashlib.sha256()
    position = start
    while position < end:
        data = read(position, min(_PIECE, end - position))
        if not data:
            break
        digest.update(data)
        position += len(data)
    return bytes(digest.digest())


def read_exactly(read: Callable[[int, int], bytes], offset: int, size: int) -> bytes | None:
    """``size`` bytes at ``offset`` through ``read(offset, size)``, or ``None`` where they end first."""
    data = read(offset, size)
    if len(data) == size:
        return data
    parts = [data]
    done = len(data)
    while done < size:
        more = read(offset + done, size - done)
        if not more:
            return None
        parts.append(more)
        done += len(more)
    return b"".join(parts)
