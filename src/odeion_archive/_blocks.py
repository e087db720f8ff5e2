"""An archive file read a second time only as it was when checked.

A restore checks a member before it uses it (before a dump's first
statement runs), then reads the file again to use it. Whoever can write the
file in between (a time-of-check to time-of-use race) must not get a byte
of theirs used: :class:`CheckedBlocks` remembers the sha256 of every block
of the file the check read (32 bytes per MiB), and gives the second reading
only blocks that hash as they did. A second reading that differs fails
before the changed byte reaches any decoder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from odeion_archive._digest import BACKGROUND_BYTES, Sha256, read_exactly
from odeion_archive.errors import CorruptArchiveError

__all__ = ["BLOCK_BYTES", "CheckedBlocks"]

#: The unit the blocks are remembered in.
BLOCK_BYTES = 1024 * 1024

Read = Callable[[int, int], bytes]


class CheckedBlocks:
    """A file's first ``end`` bytes, by block: each remembered as first read.

    Made by :meth:`take` (bytes ``[0, end)`` checked against a sha256 at
    once) or :meth:`recording` (every block a check reads through
    :meth:`read` is remembered; :meth:`replay` then serves only those).
    ``whole``: ``end`` is the file's size as checked, and nothing lies beyond.
    """

    def __init__(
        self, read: Read, end: int, digests: dict[int, bytes], *, recording: bool, whole: bool
    ) -> None:
        self.end = end
        self.whole = whole
        self._read = read
        self._digests = digests
        self._recording = recording
        self._index = -1
        self._block = b""

    @classmethod
    def take(
        cls, read: Read, end: int, sha256: str, on_bytes: Callable[[int, int], None] | None = None
    ) -> CheckedBlocks | None:
        """Check bytes ``[0, end)`` through ``read(offset, size)`` against ``sha256`` (hex).

        ``None`` if they do not match (or the file is shorter). ``on_bytes``
        is called with the bytes checked so far and in all. The whole's sha256
        runs in a second thread beside the blocks' own.
        """
        digests = {}
        position = 0
        with Sha256(background=end >= BACKGROUND_BYTES) as whole:
            while position < end:
                data = read_exactly(read, position, min(BLOCK_BYTES, end - position))
                if data is None:
                    return None
                whole.update(data)
                digests[position // BLOCK_BYTES] = hashlib.sha256(data).digest()
                position += len(data)
                if on_bytes is not None:
                    on_bytes(position, end)
            if whole.hexdigest() != sha256:
                return None
        return cls(read, end, digests, recording=False, whole=False)

    @classmethod
    def recording(cls, read: Read, size: int) -> CheckedBlocks:
        """A file of ``size`` bytes whose blocks are remembered as a check reads them."""
        return cls(read, size, {}, recording=True, whole=True)

    def replay(self) -> CheckedBlocks:
        """The blocks remembered so far, served again only as they were; no others."""
        return CheckedBlocks(self._read, self.end, self._digests, recording=False, whole=self.whole)

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (below :attr:`end`), as checked; at most to a block's end."""
        index = offset // BLOCK_BYTES
        if index != self._index:
            start = index * BLOCK_BYTES
            data = read_exactly(self._read, start, min(BLOCK_BYTES, self.end - start))
            digest = None if data is None else hashlib.sha256(data).digest()
            known = self._digests.get(index)
            if known is None and not self._recording:
                raise CorruptArchiveError(
                    f"the archive's bytes from {start} were not read when it was checked (its "
                    "format's reader read the file differently the second time), and are not "
                    "used unchecked; nothing changed; report this, with the archive's format"
                )
            if data is None or digest is None or (known is not None and digest != known):
                raise CorruptArchiveError(
                    f"the archive's bytes from {start} changed since they were checked (the "
                    "file is being written to); none of them was used, so nothing changed; "
                    "restore from a copy that nothing writes to"
                )
            self._digests.setdefault(index, digest)
            self._index, self._block = index, data
        within = offset - index * BLOCK_BYTES
        return self._block[within : within + size]
