"""The zip archive format: a streaming writer and a strict, bounded reader.

The writer never seeks, so it writes to a pipe as well as to a file. Each
member is a local header with the data-descriptor flag and a zip64 extra
field, raw deflate data, and a zip64 data descriptor. The trailer is the
central directory, a zip64 end-of-central-directory record and locator, and
an end-of-central-directory record whose comment is the archive's *seal*:
``odeion-archive seal sha256:<hex>``, the sha256 of every byte before that
record. Every timestamp is 1980-01-01 00:00, every mode 0644, so the same
members in the same order give the same bytes.

The reader parses the end records and the central directory itself, bounded
by :class:`~odeion_archive.interfaces.ReadLimits` and by small per-entry
limits (names of at most ``MAX_NAME_BYTES``, extra fields and comments of at
most 64 bytes), one entry at a time, so that memory does not grow with the
directory's size. Before a byte is decompressed it checks the layout: each
member's local header agrees with its directory entry (name, flags, method,
time, CRC-32 and sizes, in the header or its data descriptor), and the members
follow one another from the first byte to the central directory, disjoint and
with nothing between them, so no two entries share data (the "overlapping
entries" zip bomb) and the data decompressed is bounded by the sizes declared.
It then decompresses a member chunk by chunk, refusing output beyond the size
the directory declares.

The code: :mod:`._zip_records` (record layouts, directory entries and their
checks), :mod:`._zip_writer` and :mod:`._zip_reader`; this module holds the
format and its hook.
"""

from __future__ import annotations

from typing import IO

from odeion_archive.errors import BackupFailedError
from odeion_archive.formats._zip_reader import ZipReader
from odeion_archive.formats._zip_records import SEAL_PREFIX
from odeion_archive.formats._zip_writer import ZipWriter
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, ReadLimits

__all__ = ["SEAL_PREFIX", "ZipFormat", "odeion_archive_formats"]


class ZipFormat:
    """Zip with deflate: opens everywhere (``unzip``, file managers, ``python -m zipfile``).

    ``level`` is the deflate level, 1 (fast) to 9 (small).
    """

    name: str = "zip"
    suffix: str = ".zip"

    def __init__(self, level: int = 6) -> None:
        if not 1 <= level <= 9:
            raise BackupFailedError(f"deflate level {level} is out of range; choose 1 to 9")
        self.level = level

    def __repr__(self) -> str:
        return f"ZipFormat(level={self.level})"

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` starts with a zip local file header."""
        return head.startswith(b"PK\x03\x04")

    def open_writer(self, stream: IO[bytes]) -> ZipWriter:
        """A streaming writer to ``stream``, which it never seeks (a pipe will do)."""
        return ZipWriter(stream, self.level)

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> ZipReader:
        """A reader of the zip archive in the seekable ``file``."""
        return ZipReader(file, limits)


@hookimpl
def odeion_archive_formats() -> list[ArchiveFormat]:
    """The zip format."""
    return [ZipFormat()]
