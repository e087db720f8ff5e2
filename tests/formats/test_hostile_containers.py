"""Hostile containers (issue 10): refused up front, in bounded time and memory.

Each test builds its hostile archive itself and checks that every way of
reading it (open, walk, verify, the container check) refuses it with an
:class:`~odeion_archive.errors.ArchiveInvalidError` that says what is wrong,
after reading and decompressing only a little of it.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from _craft_archives import (
    RawZipMember,
    craft_tarzst,
    deflated,
    manifest_for,
    manifest_members,
    overlapping_zip,
    plain_zip_member,
    raw_zip,
    tar_info,
)

from odeion_archive.archive import ArchiveFile, verify_archive
from odeion_archive.errors import ArchiveInvalidError, CorruptArchiveError, UnsafeArchiveError
from odeion_archive.formats import zip as zipmod
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.registry import Registry
from odeion_archive.testing import write_archive

MIB = 1024 * 1024
DATA = b'{"id":1,"name":"ana"}\n' * 10
GOOD = "users_auth/users.jsonl"


@attrs.define
class Meter:
    """What reading an archive cost: bytes read from the file, bytes inflated."""

    read: int = 0
    inflated: int = 0


class _CountingInflater:
    def __init__(self, meter: Meter, inner: Any) -> None:
        self._meter = meter
        self._inner = inner

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out: bytes = self._inner.decompress(data, max_length)
        self._meter.inflated += len(out)
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Meter:
    """Counts the bytes every reader reads (``os.pread``) and inflates (zip)."""
    counts = Meter()
    real_pread = os.pread
    real_decompressobj = zlib.decompressobj

    def pread(fd: int, size: int, offset: int) -> bytes:
        data = real_pread(fd, size, offset)
        counts.read += len(data)
        return data

    def decompressobj(*args: Any) -> _CountingInflater:
        return _CountingInflater(counts, real_decompressobj(*args))

    monkeypatch.setattr(os, "pread", pread)
    monkeypatch.setattr(zipmod.zlib, "decompressobj", decompressobj)
    return counts


def _every_reading_refuses(
    path: Path, registry: Registry, error: type[ArchiveInvalidError], match: str
) -> None:
    """Opening refuses ``path``, so inspect, walk, verify, import and plan all do."""
    with pytest.raises(error, match=match):
        ArchiveFile.open(path, registry)
    report = verify_archive(path, registry)
    assert not report.ok
    assert any(re.search(match, p.message) for p in report.problems)


# -- 1. overlapping zip entries ------------------------------------------------------


def test_overlapping_zip_entries_are_refused_before_anything_is_inflated(
    registry: Registry, tmp_path: Path, meter: Meter
) -> None:
    path = tmp_path / "overlap.zip"
    manifest = overlapping_zip(path, copies=64, zeros=4 * MIB)
    size = path.stat().st_size
    declared = sum(m.size for m in manifest.members)
    assert size < 16 * 1024 < 256 * MIB < declared  # a few KB that would inflate to 256 MiB
    _every_reading_refuses(path, registry, CorruptArchiveError, "overlaps the previous one")
    assert meter.inflated == 0
    assert meter.read < 4 * size  # the seal is not even reached: the layout fails first


def test_the_overlapping_zip_is_genuinely_a_bomb(tmp_path: Path) -> None:
    """Guard for the test above: each entry really inflates to its listed bytes."""
    path = tmp_path / "overlap.zip"
    manifest = overlapping_zip(path, copies=4, zeros=MIB)
    with zipfile.ZipFile(path) as archive:
        for member in manifest.members:
            data = archive.read(member.path)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (member.size, member.sha256)


def _genuine_members() -> tuple[list[RawZipMember], Any]:
    files = {GOOD: DATA, "users_auth/groups.jsonl": b'{"id":1}\n' * 40}
    manifest = manifest_for("zip", files)
    head, tail = manifest_members(manifest)
    return [head, *(plain_zip_member(n, d) for n, d in files.items()), tail], manifest


def _descriptor(member: RawZipMember, *, zip64: bool = False) -> RawZipMember:
    """``member`` with its CRC-32 and sizes moved to a data descriptor."""
    layout = zipmod._DESCRIPTOR64 if zip64 else zipmod._DESCRIPTOR32
    descriptor = layout.pack(zipmod._DESCRIPTOR_SIG, member.crc, member.csize, member.usize)
    return attrs.evolve(
        member,
        data=member.data + descriptor,
        crc=0,
        csize=0,
        usize=0,
        flags=member.flags | 0x8,
        central={"crc": member.crc, "csize": member.csize, "usize": member.usize},
    )


def test_a_hand_laid_genuine_zip_reads(registry: Registry, tmp_path: Path) -> None:
    """Guard: the neighbours below differ from a readable archive only in what they break."""
    members, _manifest = _genuine_members()
    for variant in (members, [members[0], _descriptor(members[1]), *members[2:]]):
        path = tmp_path / "genuine.zip"
        raw_zip(path, variant)
        assert verify_archive(path, registry).ok
        with ArchiveFile.open(path, registry) as archive:
            assert [e.path for e, c in archive.walk() if b"".join(c)] == [
                GOOD,
                "users_auth/groups.jsonl",
            ]


def _shift_second(members: list[RawZipMember], by: int) -> list[RawZipMember]:
    """The central directory points the third member ``by`` bytes away from its header."""
    offset = sum(
        zipmod._LOCAL.size + len(m.name) + len(m.local_extra) + len(m.data) for m in members[:2]
    )
    third = members[2]
    return [
        *members[:2],
        attrs.evolve(third, central={**third.central, "offset": offset + by}),
        *members[3:],
    ]


NEIGHBOURS: dict[str, tuple[Callable[[list[RawZipMember]], list[RawZipMember]], str]] = {
    "overlap by one byte": (lambda ms: _shift_second(ms, -1), "overlaps the previous one"),
    "gap of one byte": (lambda ms: _shift_second(ms, 1), "leaves a gap"),
    "every entry at one local header": (
        lambda ms: [ms[0], ms[1], attrs.evolve(ms[2], central={"offset": 0}), ms[3]],
        "overlaps",
    ),
    "local name differs in case": (
        lambda ms: [
            ms[0],
            attrs.evolve(ms[1], name=ms[1].name.upper(), central={"name": ms[1].name}),
            *ms[2:],
        ],
        "disagrees with the central directory on the name",
    ),
    "descriptor flag only in the directory": (
        lambda ms: [ms[0], attrs.evolve(ms[1], central={"flags": ms[1].flags | 0x8}), *ms[2:]],
        "on the flags",
    ),
    "descriptor flag only in the local header": (
        lambda ms: [
            ms[0],
            attrs.evolve(
                _descriptor(ms[1]), central={**_descriptor(ms[1]).central, "flags": ms[1].flags}
            ),
            *ms[2:],
        ],
        "on the flags",
    ),
    "descriptor with other sizes": (
        lambda ms: [
            ms[0],
            attrs.evolve(
                _descriptor(ms[1]),
                central={"crc": ms[1].crc, "csize": ms[1].csize, "usize": ms[1].usize + 1},
            ),
            *ms[2:],
        ],
        "data descriptor",
    ),
    "local CRC-32 differs": (
        lambda ms: [ms[0], attrs.evolve(ms[1], central={"crc": ms[1].crc ^ 1}), *ms[2:]],
        "on the CRC-32",
    ),
    "local sizes differ": (
        lambda ms: [ms[0], attrs.evolve(ms[1], central={"usize": ms[1].usize + 1}), *ms[2:]],
        "on the sizes",
    ),
    "another method in the directory": (
        lambda ms: [ms[0], attrs.evolve(ms[1], central={"method": 0}), *ms[2:]],
        "on the compression method",
    ),
    "stray bytes before the directory": (lambda ms: ms, "no member accounts for"),
}


@pytest.mark.parametrize("neighbour", sorted(NEIGHBOURS))
def test_neighbours_of_the_overlapping_zip_are_refused(
    neighbour: str, registry: Registry, tmp_path: Path, meter: Meter
) -> None:
    change, message = NEIGHBOURS[neighbour]
    members, _manifest = _genuine_members()
    path = tmp_path / "neighbour.zip"
    raw_zip(path, change(members), stray=b"PK" if neighbour.startswith("stray") else b"")
    with pytest.raises(ArchiveInvalidError, match=message) as caught:
        ArchiveFile.open(path, registry)
    assert "use another archive" in str(caught.value)
    assert not verify_archive(path, registry).ok
    assert meter.inflated == 0
