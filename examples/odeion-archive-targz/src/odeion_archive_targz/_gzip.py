"""gzip framing: gzip members of the tar stream, and a trailer member holding the index.

Every gzip member this package writes starts with the same 16-byte header
(RFC 1952): no file name, modification time 0, operating system "unknown",
and an extra field (FEXTRA) with one subfield ``Od`` whose data says what the
member is: ``tgz1`` for a member of the tar stream, ``idx1`` for the trailer.
Members of the tar stream carry raw deflate data, then CRC-32 and length;
each archive member takes two: its tar header in one stored block, then its
data and padding.

The trailer is a gzip member with an empty payload whose comment field
(FCOMMENT) holds the index (ASCII JSON) followed by a fixed 152-byte ASCII
footer: sha256 of the index, the seal (sha256 of every byte before the
trailer), the index length, and a magic. Its bytes after the comment never
vary (an empty final deflate block, CRC-32 0 and length 0), so a reader finds
the footer at a fixed distance from the end of the file.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from typing import IO

import attrs

from odeion_archive.errors import CorruptArchiveError
from odeion_archive.formatkit import ADVICE

__all__ = [
    "FOOTER_MAGIC",
    "FOOTER_READ",
    "MEMBER_HEADER",
    "TRAILER_HEADER",
    "Footer",
    "GzipStream",
    "MemberCompressor",
    "footer_bytes",
    "parse_footer",
    "trailer",
    "trailer_size",
]

#: The last eight bytes of the comment of every trailer: the end of the footer.
FOOTER_MAGIC = b"OdeTgz01"

_ID = b"\x1f\x8b\x08"  # gzip magic and the deflate method
_FEXTRA = 0x04
_FCOMMENT = 0x10
_TIME_XFL_OS = b"\0\0\0\0\0\xff"


def _header(flags: int, kind: bytes) -> bytes:
    subfield = b"Od" + struct.pack("<H", len(kind)) + kind
    return _ID + bytes([flags]) + _TIME_XFL_OS + struct.pack("<H", len(subfield)) + subfield


#: The header of every gzip member that holds part of the tar stream.
MEMBER_HEADER = _header(_FEXTRA, b"tgz1")
#: The header of the trailer, the gzip member whose comment holds the index.
TRAILER_HEADER = _header(_FEXTRA | _FCOMMENT, b"idx1")
#: What follows the trailer's comment: its end, an empty final deflate block,
#: CRC-32 and length of nothing.
_TRAILER_END = b"\0" + b"\x03\x00" + bytes(8)
_FOOTER = struct.Struct("64s64s16s8s")
_HEX = frozenset(b"0123456789abcdef")
_READ = 64 * 1024


# -- writing ---------------------------------------------------------------------


class MemberCompressor:
    """Compresses one gzip member piece by piece; :meth:`finish` returns its end."""

    def __init__(self, level: int) -> None:
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._crc = 0
        self._size = 0

    def start(self) -> bytes:
        """The member's header."""
        return MEMBER_HEADER

    def compress(self, data: bytes | memoryview) -> bytes:
        """Compressed bytes for ``data`` (possibly none yet)."""
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
        return self._deflate.compress(data)

    def finish(self) -> bytes:
        """The rest of the deflate data, then CRC-32 and length (modulo 2**32)."""
        return self._deflate.flush() + struct.pack("<II", self._crc, self._size & 0xFFFFFFFF)


@attrs.frozen
class Footer:
    """The fixed end of the trailer's comment."""

    index_sha256: bytes
    seal: bytes
    index_length: int


def footer_bytes(footer: Footer) -> bytes:
    """The footer as ASCII (the comment field must not hold a NUL byte)."""
    return _FOOTER.pack(
        footer.index_sha256.hex().encode(),
        footer.seal.hex().encode(),
        b"%016x" % footer.index_length,
        FOOTER_MAGIC,
    )


def trailer(index: bytes, seal: bytes) -> bytes:
    """The whole trailer member for ``index`` (ASCII JSON) and ``seal``."""
    footer = Footer(hashlib.sha256(index).digest(), seal, len(index))
    return TRAILER_HEADER + index + footer_bytes(footer) + _TRAILER_END


def trailer_size(index_length: int) -> int:
    """The size of the trailer of an index of ``index_length`` bytes."""
    return len(TRAILER_HEADER) + index_length + _FOOTER.size + len(_TRAILER_END)


#: How many bytes at the end of a file :func:`parse_footer` needs.
FOOTER_READ = _FOOTER.size + len(_TRAILER_END)


def parse_footer(tail: bytes) -> Footer:
    """The footer from the last :data:`FOOTER_READ` bytes of a file."""
    if len(tail) != FOOTER_READ or not tail.endswith(_TRAILER_END):
        raise CorruptArchiveError(
            "the tar.gz archive does not end with its index member; it is truncated or was "
            f"not written by odeion-archive-targz; {ADVICE}"
        )
    index_sha, seal, length, magic = _FOOTER.unpack(tail[: _FOOTER.size])
    if magic != FOOTER_MAGIC or not set(index_sha + seal + length) <= _HEX:
        raise CorruptArchiveError(
            f"the tar.gz archive's index footer is not readable; it is truncated or was not "
            f"written by odeion-archive-targz; {ADVICE}"
        )
    return Footer(bytes.fromhex(index_sha.decode()), bytes.fromhex(seal.decode()), int(length, 16))


# -- reading ---------------------------------------------------------------------


class GzipStream:
    """Decompresses the gzip members in ``[start, end)`` of a file, bounded at every step.

    Each :meth:`read` returns at most ``size`` bytes, so no member, however
    well it compresses, is expanded in memory at once. zlib checks each
    member's CRC-32 and length at its end. With ``single``, the stream ends
    after the first member; ``max_input`` bounds the compressed bytes read.
    """

    def __init__(
        self,
        file: IO[bytes],
        start: int,
        end: int,
        *,
        single: bool = False,
        max_input: int | None = None,
    ) -> None:
        self._file = file
        self._position = start
        self._end = end
        self._single = single
        self._budget = max_input
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._input = b""
        self._fed = False
        self._done = False

    def _fill(self) -> bool:
        step = min(_READ, self._end - self._position)
        if step <= 0:
            return False
        if self._budget is not None:
            if self._budget <= 0:
                raise CorruptArchiveError(
                    f"a gzip member is longer than the data it should hold; {ADVICE}"
                )
            step = min(step, self._budget)
        self._file.seek(self._position)
        data = self._file.read(step)
        if not data:
            return False
        self._position += len(data)
        if self._budget is not None:
            self._budget -= len(data)
        self._input = data
        return True

    def _decompress(self, size: int) -> bytes:
        try:
            data = self._inflate.decompress(self._input, size)
        except zlib.error as exc:
            raise CorruptArchiveError(f"the gzip data is invalid ({exc}); {ADVICE}") from None
        self._input = self._inflate.unconsumed_tail
        return data

    def read(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes; ``b""`` only at the end of the stream."""
        while not self._done:
            if self._inflate.eof:
                self._input = self._inflate.unused_data
                if self._single:
                    self._done = True
                    break
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._fed = False
            if not self._input:
                held = self._drain(size)
                if held is not None:
                    if held:
                        return held
                    continue
            self._fed = True
            data = self._decompress(size)
            if data:
                return data
        return b""

    def _drain(self, size: int) -> bytes | None:
        """With no input left: output zlib still holds, ``b""`` to look again, or ``None``.

        ``b""`` at a member's end or at the end of the stream (then done);
        ``None`` once more input was read.
        """
        if self._fed:
            # zlib may still hold output of the bytes it was given.
            data = self._decompress(size)
            if data:
                return data
            if self._inflate.eof:
                return b""
        if not self._fill():
            if self._fed:
                raise CorruptArchiveError(f"the archive ends inside a gzip member; {ADVICE}")
            self._done = True
            return b""
        return None

    def ended_cleanly(self) -> bool:
        """Whether a ``single`` stream's member ended exactly at ``end``, nothing after it."""
        return self._done and not self._input and self._position == self._end
