"""odeion-archive-targz: the ``tar.gz`` archive format for odeion-archive, as a plugin.

Installing the package registers the format through the ``odeion_archive``
entry-point group; :meth:`odeion_archive.Registry.default` then offers it
next to the built-in formats, and ``Archiver.create(format="tar.gz")`` writes
it.

An archive is a POSIX tar stream compressed with gzip, readable by
``tar -xzf`` and checked by ``gzip -t``, laid out for safe and fast reading:

* two gzip members per archive member (its tar header in one stored deflate
  block, whose length depends on the name only, then its data and padding),
  each starting with the same header, which marks it in an extra field (``Od``);
* one gzip member holding the tar end-of-archive marker;
* a trailer: a gzip member with an empty payload whose comment field holds
  the index (each member's name and the offset of its gzip member) and a
  footer with the index's sha256 and the seal, the sha256 of every byte
  before the trailer.

The index lets :meth:`~odeion_archive.interfaces.ArchiveReader.read_member`
decompress only the manifest's own gzip member; the walk ignores it and
decompresses the stream from the start. Bytes are deterministic: mode 0644,
owner 0, time 0 in tar headers and gzip headers alike.
"""

from __future__ import annotations

import tarfile
import zlib
from typing import IO

from odeion_archive.errors import BackupFailedError
from odeion_archive.formatkit import TAR_BLOCK as BLOCK
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, ReadLimits
from odeion_archive_targz._gzip import MEMBER_HEADER
from odeion_archive_targz._reader import TarGzReader
from odeion_archive_targz._writer import TarGzWriter

__all__ = ["TarGzFormat", "TarGzReader", "TarGzWriter", "__version__", "odeion_archive_formats"]

__version__ = "0.1.0"

_POSIX_MAGIC = b"ustar\x0000"


class TarGzFormat:
    """POSIX tar compressed with gzip, two gzip members per archive member, with an index.

    ``level`` is the deflate level, 1 (fast) to 9 (small).
    """

    name: str = "tar.gz"
    suffix: str = ".tar.gz"

    def __init__(self, level: int = 6) -> None:
        if not 1 <= level <= 9:
            raise BackupFailedError(f"gzip level {level} is out of range; choose 1 to 9")
        self.level = level

    def __repr__(self) -> str:
        return f"TarGzFormat(level={self.level})"

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` starts with this format's gzip member holding a POSIX tar header.

        Other gzip files, tar.gz archives of other tools included, lack the
        ``Od`` extra field this format puts in every gzip member header.
        """
        if not head.startswith(MEMBER_HEADER):
            return False
        inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            block = inflate.decompress(head[len(MEMBER_HEADER) :], BLOCK)
        except zlib.error:
            return False
        if len(block) < BLOCK or block[257:265] != _POSIX_MAGIC:
            return False
        try:
            tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError:
            return False
        return True

    def open_writer(self, stream: IO[bytes]) -> TarGzWriter:
        """A streaming writer to ``stream``.

        On a stream that can seek and be read back (a file), the header of a
        member of unknown size is rewritten in place; any other stream is
        written sequentially, never seeked.
        """
        return TarGzWriter(stream, self.level)

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> TarGzReader:
        """A reader of the tar.gz archive in the seekable ``file``."""
        return TarGzReader(file, limits)


@hookimpl
def odeion_archive_formats() -> list[ArchiveFormat]:
    """The tar.gz format, at the default level."""
    return [TarGzFormat()]
