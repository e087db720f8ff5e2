"""The tar.zst record codec: stored header frames, the index frame and its footer.

See :mod:`odeion_archive.formats.tarzst` for the layout.
"""

from __future__ import annotations

import struct
from typing import IO, Any

import attrs
import zstandard

from odeion_archive import _safejson
from odeion_archive._names import MAX_NAME_BYTES
from odeion_archive.errors import (
    ArchiveInvalidError,
    BackupFailedError,
    CorruptArchiveError,
    UnsafeArchiveError,
)
from odeion_archive.formats._common import ADVICE
from odeion_archive.interfaces import ReadLimits

__all__ = [
    "FOOTER",
    "FOOTER_MAGIC",
    "SKIPPABLE",
    "SKIPPABLE_MAGIC",
    "STORED_PREFIX",
    "ZSTD_MAGIC",
    "Index",
    "Slice",
    "ZstdSource",
    "check_index",
    "index_bound",
    "parse_index",
    "stored_frame",
    "zstd_error",
]

#: Last eight bytes of every tar.zst archive this library writes.
FOOTER_MAGIC = b"OdeIdx01"

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
SKIPPABLE_MAGIC = 0x184D2A50
SKIPPABLE = struct.Struct("<II")
#: sha256 of the index, the seal, the index length, the magic.
FOOTER = struct.Struct("<32s32sQ8s")
#: Bytes of a stored frame before its data: magic, frame header, block header.
STORED_PREFIX = 4 + 1 + 2 + 3


def stored_frame(data: bytes) -> bytes:
    """A zstd frame holding ``data`` in one raw (uncompressed) block.

    Single-segment, with a two-byte content size: for 256 to 65,791 bytes,
    which covers every tar header this writer makes.
    """
    size = len(data)
    if not 256 <= size < 65536 + 256:
        raise BackupFailedError(f"a tar header of {size} bytes does not fit a stored frame")
    block_header = (1 | (size << 3)).to_bytes(3, "little")  # last block, raw
    return ZSTD_MAGIC + b"\x60" + (size - 256).to_bytes(2, "little") + block_header + data


class Slice:
    """A read-only view of ``[start, end)`` of a file, for the zstd decoder."""

    def __init__(self, file: IO[bytes], start: int, end: int) -> None:
        self._file = file
        self._pos = start
        self._end = end

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the view (all that is left with ``-1``)."""
        if size < 0:
            size = self._end - self._pos
        size = min(size, self._end - self._pos)
        if size <= 0:
            return b""
        self._file.seek(self._pos)
        data = self._file.read(size)
        self._pos += len(data)
        return data


def zstd_error(exc: zstandard.ZstdError, limits: ReadLimits) -> ArchiveInvalidError:
    """The archive error for a zstd decoding error: a refused window, or damage."""
    if "memory" in str(exc) or "window" in str(exc).lower():
        return UnsafeArchiveError(
            f"a zstd frame needs a window larger than {limits.max_window_bytes} bytes; "
            "refusing it (raise ReadLimits.max_window_bytes only for an archive you trust)"
        )
    return CorruptArchiveError(f"the zstd data is invalid ({exc}); {ADVICE}")


class ZstdSource:
    """A zstd decompressing reader whose errors are archive errors."""

    def __init__(self, reader: Any, limits: ReadLimits) -> None:
        self._reader = reader
        self._limits = limits

    def read(self, size: int) -> bytes:
        """Up to ``size`` decompressed bytes."""
        try:
            return bytes(self._reader.read(size))
        except zstandard.ZstdError as exc:
            raise zstd_error(exc, self._limits) from None


@attrs.frozen
class Index:
    """The checked index: each member's name and offset, where the tar stream ends."""

    members: tuple[tuple[str, int], ...]
    end: int
    frame_start: int
    seal: bytes
    #: Where the frames that start at each member's offset end.
    frame_ends: dict[int, int] = attrs.field(factory=dict, eq=False)


def index_bound(limits: ReadLimits) -> int:
    """The most bytes an index of ``limits.max_members`` members may take."""
    return limits.max_members * (2 * MAX_NAME_BYTES + 64) + 64


def parse_index(raw: bytes, limits: ReadLimits) -> Any:
    """The index's JSON, its tokens counted first (each costs memory once parsed)."""
    most = limits.max_members
    # Member names hold none of these characters.
    if raw.count(b"[") > most + 1 or raw.count(b",") > 2 * most + 1 or raw.count(b"{") > 1:
        raise UnsafeArchiveError(
            f"the tar.zst index holds more entries than the limit of {most} members; "
            "refusing it (raise ReadLimits.max_members only for an archive you trust)"
        )
    try:
        return _safejson.loads(raw, what="the tar.zst index")
    except UnsafeArchiveError as exc:
        raise CorruptArchiveError(str(exc)) from None


def check_index(data: Any, frame_start: int, seal: bytes, limits: ReadLimits) -> Index:
    """The :class:`Index` of a parsed index, refused unless it is well formed and ordered."""
    bad = CorruptArchiveError(f"the tar.zst index is malformed; {ADVICE}")
    if not isinstance(data, dict) or set(data) != {"end", "members"}:
        raise bad
    end, members = data["end"], data["members"]
    if not isinstance(end, int) or not isinstance(members, list):
        raise bad
    if len(members) > limits.max_members:
        raise UnsafeArchiveError(
            f"the tar.zst archive lists {len(members)} members, more than the limit of "
            f"{limits.max_members}; refusing it (raise ReadLimits.max_members only "
            "for an archive you trust)"
        )
    previous = -1
    result = []
    for item in members:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or item[1] <= previous
        ):
            raise bad
        previous = item[1]
        result.append((item[0], item[1]))
    if (result and result[0][1] != 0) or end <= previous or end >= frame_start:
        raise bad
    offsets = [offset for _name, offset in result]
    return Index(
        tuple(result),
        end,
        frame_start,
        seal,
        dict(zip(offsets, [*offsets[1:], end], strict=True)),
    )
