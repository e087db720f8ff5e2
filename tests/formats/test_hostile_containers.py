"""Hostile containers: refused up front, in bounded time and memory.

Each test builds its hostile archive itself and checks that every way of
reading it (open, walk, verify, the container check) refuses it with an
:class:`~odeion_archive.errors.ArchiveInvalidError` that says what is wrong,
after reading and decompressing only a little of it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import subprocess
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import zstandard
from _craft_archives import (
    RawZipMember,
    craft_tarzst,
    manifest_for,
    manifest_members,
    overlapping_zip,
    plain_zip_member,
    raw_zip,
    reindexed_tarzst,
    tar_info,
)

from odeion_archive._archive import ArchiveFile, verify_archive
from odeion_archive._registry import Registry
from odeion_archive.errors import ArchiveInvalidError, CorruptArchiveError, UnsafeArchiveError
from odeion_archive.formats import _zip_records as zipmod
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ReadLimits
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
    monkeypatch.setattr(zlib, "decompressobj", decompressobj)
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
    layout = zipmod.DESCRIPTOR64 if zip64 else zipmod.DESCRIPTOR32
    descriptor = layout.pack(zipmod.DESCRIPTOR_SIG, member.crc, member.csize, member.usize)
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
        zipmod.LOCAL.size + len(m.name) + len(m.local_extra) + len(m.data) for m in members[:2]
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


# -- 2. a huge central directory ----------------------------------------------------


def _extra_field(size: int) -> bytes:
    """An extra field of ``size`` bytes in all (one record of an unknown tag), or none."""
    return b"\xfe\xca" + (size - 4).to_bytes(2, "little") + bytes(size - 4) if size else b""


def _padded_entries(count: int, extra: int, comment: int) -> list[RawZipMember]:
    """Empty members whose directory entries carry ``extra`` and ``comment`` bytes."""
    padding = _extra_field(extra)
    return [
        attrs.evolve(
            plain_zip_member(f"users_auth/{number:05d}.jsonl", b""),
            central={"extra": padding, "comment": b"c" * comment},
        )
        for number in range(count)
    ]


def test_a_huge_central_directory_is_refused_before_it_is_read(
    registry: Registry, tmp_path: Path, meter: Meter
) -> None:
    # 1,000 entries with 64 KiB extra fields and comments: a 125 MiB directory.
    files = {GOOD: DATA}
    head, tail = manifest_members(manifest_for("zip", files))
    path = tmp_path / "huge-directory.zip"
    raw_zip(path, [head, *_padded_entries(1000, 65_535, 65_535), tail])
    assert path.stat().st_size > 125 * MIB
    _every_reading_refuses(path, registry, UnsafeArchiveError, "more than its 1002 entries may")
    assert meter.read < MIB
    assert meter.inflated == 0


@pytest.mark.parametrize(
    ("extra", "comment", "local_extra"),
    [(65, 0, 0), (0, 65, 0), (0, 0, 65), (64, 64, 64)],
)
def test_one_entry_with_a_long_extra_field_or_comment_is_refused(
    extra: int, comment: int, local_extra: int, registry: Registry, tmp_path: Path
) -> None:
    files = {GOOD: DATA}
    head, tail = manifest_members(manifest_for("zip", files))
    member = plain_zip_member(GOOD, DATA)
    member = attrs.evolve(
        member,
        local_extra=_extra_field(local_extra),
        central={"extra": _extra_field(extra), "comment": b"c" * comment},
    )
    path = tmp_path / "long-extra.zip"
    raw_zip(path, [head, member, tail])
    if max(extra, comment, local_extra) <= 64:  # the bound itself is accepted
        assert verify_archive(path, registry).ok
        return
    with pytest.raises(UnsafeArchiveError, match="extra field of 65|comment of 65") as caught:
        ArchiveFile.open(path, registry)
    assert "use another archive" in str(caught.value)


CHILD = Path(__file__).with_name("_hostile_read.py")


def _read_in_child(path: Path) -> tuple[int, float, str]:
    done = subprocess.run(
        [sys.executable, str(CHILD), str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr  # no traceback: every refusal is an ArchiveError
    rss, seconds, outcome = done.stdout.split()
    return int(rss), float(seconds), outcome


def test_hostile_zips_are_read_in_flat_memory_and_little_time(tmp_path: Path) -> None:
    """Peak RSS of a process reading each hostile zip every way, against a tiny genuine one."""
    genuine = tmp_path / "genuine.zip"
    with genuine.open("wb") as stream:
        write_archive(ZipFormat(), stream, {"users_auth": {"users.jsonl": DATA}})
    bomb = tmp_path / "overlap.zip"
    overlapping_zip(bomb, copies=64, zeros=16 * MIB)  # 20 KB declaring 1 GiB
    huge = tmp_path / "huge-directory.zip"
    head, tail = manifest_members(manifest_for("zip", {GOOD: DATA}))
    raw_zip(huge, [head, *_padded_entries(1000, 65_535, 65_535), tail])
    widest = tmp_path / "widest-directory.zip"  # the most a directory may hold: read in full
    raw_zip(
        widest,
        [
            head,
            *(
                plain_zip_member(f"users_auth/{n:05d}" + "n" * 1000, b"")
                for n in range(ReadLimits().max_members - 2)
            ),
            tail,
        ],
    )
    base_rss, _seconds, outcome = _read_in_child(genuine)
    assert outcome == "ok"
    results = {}
    for path in (bomb, huge, widest, _tar_zst_index_bomb(tmp_path)):
        rss, seconds, outcome = _read_in_child(path)
        results[path.name] = (rss // MIB, round(seconds, 2), outcome)
        assert outcome in {"CorruptArchiveError", "UnsafeArchiveError", "problems"}, outcome
        assert rss < 200 * MIB
        assert seconds < 30  # generous: each takes well under a second
    sys.stderr.write(f"genuine: {base_rss // MIB} MiB; hostile (MiB, s, outcome): {results}\n")
    assert results["overlap.zip"][0] - base_rss // MIB < 16
    assert results["huge-directory.zip"][0] - base_rss // MIB < 16


def _tar_zst_index_bomb(tmp_path: Path) -> Path:
    """A tar.zst whose 20 MB index lists 1.5 million tiny entries (it peaked at 290 MB)."""
    stream = io.BytesIO()
    write_archive(TarZstFormat(), stream, {"users_auth": {"users.jsonl": DATA}})
    entries = b",".join(b'["a",%d]' % n for n in range(1_500_000))
    path = tmp_path / "index-bomb.tar.zst"
    reindexed_tarzst(path, stream.getvalue(), b'{"end":1,"members":[' + entries + b"]}")
    return path


def test_a_tar_zst_index_of_countless_entries_is_refused_before_it_is_parsed(
    registry: Registry, tmp_path: Path
) -> None:
    path = _tar_zst_index_bomb(tmp_path)
    _every_reading_refuses(path, registry, UnsafeArchiveError, "more entries than the limit")


# -- 10. members that are not plain files ---------------------------------------------


def _read_through(archive: ArchiveFile) -> None:
    for _entry, chunks in archive.walk():
        for _chunk in chunks:
            pass


def _tar_member(**fields: Any) -> tarfile.TarInfo:
    info = tar_info(GOOD, len(DATA), **fields.pop("pax", {}))
    for key, value in fields.items():
        setattr(info, key, value)
    return info


TAR_MODES: dict[str, tuple[dict[str, Any], str]] = {
    "setuid": ({"mode": 0o4755}, "0o4755, with the setuid bit"),
    "setgid": ({"mode": 0o2644}, "setgid"),
    "sticky": ({"mode": 0o1644}, "sticky"),
    "setuid and setgid, owned by root": ({"mode": 0o6755, "uid": 0}, "setuid and setgid"),
    "executable": ({"mode": 0o755}, "0o755, not one of 0o644, 0o640 or 0o600"),
    "writable by all": ({"mode": 0o666}, "0o666"),
    "unreadable": ({"mode": 0o000}, "0o0,"),
    "another owner": ({"uid": 1000}, "owner 1000 and group 0"),
    "another group": ({"gid": 5}, "group 5"),
    "an owner by name": ({"uname": "postgres"}, "'postgres'"),
    "a pax owner": ({"pax": {"uid": "1000"}}, "owner 1000"),
    "a pax group name": ({"pax": {"gname": "wheel"}}, "'wheel'"),
    "a file capability": (
        {"pax": {"SCHILY.xattr.security.capability": "x"}},
        "pax record 'SCHILY.xattr.security.capability'",
    ),
    "an access control list": (
        {"pax": {"SCHILY.acl.access": "user:nobody:rw-"}},
        "pax record 'SCHILY.acl.access'",
    ),
    "a sparse map": ({"pax": {"GNU.sparse.map": "0,1"}}, "pax record 'GNU.sparse.map'"),
}


@pytest.mark.parametrize("case", sorted(TAR_MODES))
def test_tar_members_with_modes_or_owners_that_are_not_plain_are_refused(
    case: str, registry: Registry, tmp_path: Path, meter: Meter
) -> None:
    fields, message = TAR_MODES[case]
    path = tmp_path / "mode.tar.zst"
    craft_tarzst(path, manifest_for("tar.zst", {GOOD: DATA}), [(_tar_member(**fields), DATA)])
    with ArchiveFile.open(path, registry) as archive:  # the manifest members are plain
        with pytest.raises(UnsafeArchiveError, match=re.escape(message)) as caught:
            _read_through(archive)
        assert not archive.check_container().ok
    assert GOOD in str(caught.value)
    assert "use another archive" in str(caught.value)
    report = verify_archive(path, registry)
    assert not report.ok
    assert any(re.search(re.escape(message), p.message) for p in report.problems)
    assert meter.read < 64 * 1024


@pytest.mark.parametrize(
    "fields", [{"mode": 0o600}, {"mode": 0o640}, {"uname": "root", "gname": "root"}]
)
def test_plain_tar_members_read(fields: dict[str, Any], registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "plain.tar.zst"
    craft_tarzst(path, manifest_for("tar.zst", {GOOD: DATA}), [(_tar_member(**fields), DATA)])
    assert verify_archive(path, registry).ok


ZIP_MODES = {
    "setuid": (stat.S_IFREG | 0o4755, "setuid"),
    "executable": (stat.S_IFREG | 0o755, "0o755"),
    "writable by all, no type bits": (0o666, "0o666"),
}


@pytest.mark.parametrize("case", sorted(ZIP_MODES))
def test_zip_members_with_modes_that_are_not_plain_are_refused(
    case: str, registry: Registry, tmp_path: Path
) -> None:
    mode, message = ZIP_MODES[case]
    members, _manifest = _genuine_members()
    members[1] = attrs.evolve(members[1], central={"mode": mode})
    path = tmp_path / "mode.zip"
    raw_zip(path, members)
    with pytest.raises(ArchiveInvalidError, match=re.escape(message)) as caught:
        ArchiveFile.open(path, registry)
    assert GOOD in str(caught.value) or "users_auth/groups.jsonl" in str(caught.value)
    assert not verify_archive(path, registry).ok


@pytest.mark.parametrize("fmt", [ZipFormat(), TarZstFormat()], ids=["zip", "tar.zst"])
def test_the_writers_write_only_plain_members(fmt: Any, tmp_path: Path) -> None:
    path = tmp_path / f"plain{fmt.suffix}"
    with path.open("wb") as stream:
        write_archive(fmt, stream, {"users_auth": {"users.jsonl": DATA}})
    if fmt.name == "zip":
        with zipfile.ZipFile(path) as archive:
            assert {i.external_attr >> 16 for i in archive.infolist()} == {stat.S_IFREG | 0o644}
        return
    with (
        path.open("rb") as file,
        zstandard.ZstdDecompressor().stream_reader(file, read_across_frames=True) as raw,
        tarfile.open(fileobj=raw, mode="r|") as archive,
    ):
        infos = list(archive)
    assert {(i.type, i.mode, i.uid, i.gid, i.uname, i.gname) for i in infos} == {
        (tarfile.REGTYPE, 0o644, 0, 0, "", "")
    }
