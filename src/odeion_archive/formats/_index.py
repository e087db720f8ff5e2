"""An index of member offsets, sealed in a footer: for containers that can seek to a member.

The writer records each member's name and the offset where its compressed
data starts, and where the tar stream's end marker starts, as
``{"end": <offset>, "members": [[name, offset], ...]}`` (:func:`index_json`);
a fixed 80-byte :data:`FOOTER` after it holds the index's sha256, the *seal*
(sha256 of every byte before the index) and the index length. The reader
bounds the index before it reads it (:func:`index_bound`), counts its JSON
tokens before it parses them, and checks that the offsets start at 0 and grow
(:func:`read_index`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any

import attrs

from odeion_archive import _safejson
from odeion_archive._names import MAX_NAME_BYTES
from odeion_archive.errors import CorruptArchiveError, UnsafeArchiveError
from odeion_archive.formats._common import ADVICE
from odeion_archive.interfaces import ReadLimits

__all__ = [
    "FOOTER",
    "Index",
    "check_index",
    "index_bound",
    "index_json",
    "parse_index",
    "read_index",
]

#: sha256 of the index, the seal, the index length, a magic of 8 bytes.
FOOTER = struct.Struct("<32s32sQ8s")


def index_json(members: Iterable[tuple[str, int]], end: int) -> bytes:
    """The index as compact JSON."""
    return _safejson.dumps({"end": end, "members": [list(m) for m in members]})


def read_index(raw: bytes, frame_start: int, seal: bytes, limits: ReadLimits, fmt: str) -> Index:
    """The checked :class:`Index` of ``raw`` (whose sha256 the caller checked), bounded.

    ``frame_start`` is where the index's own frame starts: every offset lies
    before it. Raises :class:`~odeion_archive.errors.CorruptArchiveError` or
    :class:`~odeion_archive.errors.UnsafeArchiveError` naming ``fmt``.
    """
    return check_index(parse_index(raw, limits, fmt), frame_start, seal, limits, fmt)


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


def parse_index(raw: bytes, limits: ReadLimits, fmt: str) -> Any:
    """The index's JSON, its tokens counted first (each costs memory once parsed)."""
    most = limits.max_members
    # Member names hold none of these characters.
    if raw.count(b"[") > most + 1 or raw.count(b",") > 2 * most + 1 or raw.count(b"{") > 1:
        raise UnsafeArchiveError(
            f"the {fmt} index holds more entries than the limit of {most} members; "
            "refusing it (raise ReadLimits.max_members only for an archive you trust)"
        )
    try:
        return _safejson.loads(raw, what=f"the {fmt} index")
    except UnsafeArchiveError as exc:
        raise CorruptArchiveError(str(exc)) from None


def check_index(data: Any, frame_start: int, seal: bytes, limits: ReadLimits, fmt: str) -> Index:
    """The :class:`Index` of a parsed index, refused unless it is well formed and ordered."""
    bad = CorruptArchiveError(f"the {fmt} index is malformed; {ADVICE}")
    if not isinstance(data, dict) or set(data) != {"end", "members"}:
        raise bad
    end, members = data["end"], data["members"]
    if not isinstance(end, int) or not isinstance(members, list):
        raise bad
    if len(members) > limits.max_members:
        raise UnsafeArchiveError(
            f"the {fmt} archive lists {len(members)} members, more than the limit of "
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
