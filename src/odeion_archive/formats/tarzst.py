"""The tar.zst archive format: POSIX tar, one zstd frame per member, and an index.

Layout of an archive, all of it readable by ``zstd -dc | tar -x``:

* per member, two zstd frames: a small frame holding the member's tar header
  (and a pax header for long or non-ASCII names) in one uncompressed block,
  then a frame (with content checksum) holding its data and the padding to a
  512-byte block;
* one zstd frame holding the tar end-of-archive marker (two zero blocks);
* one zstd *skippable* frame, which tar and the zstd tool pass over, holding
  the index ``{"end": <offset>, "members": [[name, offset], ...]}`` (compressed
  offset of each member's first frame) and a fixed 80-byte footer: sha256 of the
  index, the *seal* (sha256 of every compressed byte before the skippable
  frame), the index length and a magic.

Headers are deterministic: mode 0644, owner 0/"" and time 0. The index lets a
reader fetch one small member (the manifest) with a bounded read; the walk
ignores it and decompresses the stream from the start, since the stream is
the truth, with a decoder window bounded by ``ReadLimits.max_window_bytes``.

The code: :mod:`._tar` (tar headers, written and read), :mod:`._tarzst_frames`
(stored frames, the index and its footer), :mod:`._tarzst_writer` and
:mod:`._tarzst_reader`; this module holds the format and its hook.

A tar header carries the member's size before its data, and a pg_dump stream
has no size until it ends. The header's frame is therefore stored, not
compressed, and always has the same length for a given name (the size field
is octal, or base-256 past 8 GiB: 12 bytes either way): a member of unknown
size streams straight through, and its header is rewritten in place once the
size is known, on an output that can seek (the archive file). The seal then
covers the bytes as finally written. Only on an output that cannot seek (a
pipe) is a member of unknown size spooled first (in memory up to 8 MiB, then to
an anonymous temporary file).
"""

from __future__ import annotations

import io
import os
from typing import IO, Any

import zstandard

from odeion_archive._zstd import dump_parameters
from odeion_archive.errors import BackupFailedError
from odeion_archive.formats._tar import BLOCK, USTAR_MAGIC
from odeion_archive.formats._tarzst_frames import FOOTER_MAGIC, ZSTD_MAGIC
from odeion_archive.formats._tarzst_reader import TarZstReader
from odeion_archive.formats._tarzst_writer import TarZstWriter
from odeion_archive.hookspecs import hookimpl
from odeion_archive.interfaces import ArchiveFormat, ReadLimits

__all__ = ["FOOTER_MAGIC", "TarZstFormat", "odeion_archive_formats"]

_SNIFF_BYTES = 4096


# -- the format ------------------------------------------------------------------


class TarZstFormat:
    """POSIX tar compressed with zstd: fast, and seekable to any member's frame.

    ``level`` is a zstd level, 1 (fast) to 19 (small). Without it, parameters
    chosen by measuring full_db dumps of two differently shaped databases (the
    benchmark's; see ``benchmarks/bench.py``) are used: zstd's double-fast
    matching with matches of at least 7 bytes, in a 4 MiB window, compressed by
    ``threads`` workers (by default one per core, at most four) in 4 MiB jobs.
    On both data sets they make an archive no larger than zstd level 1 does
    (on text-heavy data a quarter smaller) for the CPU of level 1 on text and
    about one and a half times it on narrow rows, so that a backup takes little
    more time than pg_dump needs to produce the dump. The lazy matchers of the
    higher levels cost three to seven times the CPU of level 1, which on a
    small machine the database server itself needs during the dump.
    The bytes written do not depend on the number of workers. Jobs of 4 MiB
    rather than 8 cost text-heavy data about 2% in size but halve the buffers
    the workers hold where the data does not compress (stored blobs, media
    artwork): about 100 MiB rather than 190, which keeps a backup's peak memory
    under 200 MiB whatever the database holds.
    """

    name: str = "tar.zst"
    suffix: str = ".tar.zst"

    def __init__(self, level: int | None = None, threads: int | None = None) -> None:
        if level is not None and not 1 <= level <= 19:
            raise BackupFailedError(f"zstd level {level} is out of range; choose 1 to 19")
        if threads is not None and threads < 1:
            raise BackupFailedError(f"{threads} compression threads: choose 1 or more")
        self.level = level
        self.threads = threads if threads is not None else max(1, min(4, os.cpu_count() or 1))

    def _parameters(self) -> zstandard.ZstdCompressionParameters:
        common: dict[str, Any] = {
            "threads": self.threads,
            "write_checksum": True,
            "write_content_size": False,
        }
        if self.level is not None:
            return zstandard.ZstdCompressionParameters.from_level(self.level, **common)
        return dump_parameters(job_size=4 * 1024 * 1024, **common)

    def __repr__(self) -> str:
        return f"TarZstFormat(level={self.level}, threads={self.threads})"

    def sniff(self, head: bytes) -> bool:
        """Whether ``head`` is a zstd frame that starts a POSIX tar stream.

        ``head`` is the first 4 KiB of the file (or all of a shorter file).
        """
        if not head.startswith(ZSTD_MAGIC):
            return False
        dctx = zstandard.ZstdDecompressor(max_window_size=ReadLimits().max_window_bytes)
        try:
            start = dctx.stream_reader(io.BytesIO(head), read_across_frames=False).read(BLOCK)
        except zstandard.ZstdError:
            return False
        if len(start) < BLOCK:
            # The first block of the first frame did not fit in ``head``: only a full
            # head can be the start of an archive whose first member is that large.
            return len(head) >= _SNIFF_BYTES
        return start[257:265] == USTAR_MAGIC

    def open_writer(self, stream: IO[bytes]) -> TarZstWriter:
        """A streaming writer to ``stream``.

        On a stream that can seek and be read back (a file), the header of a
        member of unknown size is rewritten in place; any other stream is
        written sequentially, never seeked.
        """
        return TarZstWriter(stream, self._parameters())

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> TarZstReader:
        """A reader of the tar.zst archive in the seekable ``file``."""
        return TarZstReader(file, limits)


@hookimpl
def odeion_archive_formats() -> list[ArchiveFormat]:
    """The tar.zst format."""
    return [TarZstFormat()]
