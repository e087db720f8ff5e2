"""ArchiveBuilder and ArchiveFile: the public reading and writing of whole archives."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import IO, Any

import attrs
import pytest

from odeion_archive._archive import ArchiveBuilder, ArchiveFile, verify_archive
from odeion_archive._manifest import HEAD_MEMBER, TAIL_MEMBER, ComponentEntry
from odeion_archive._registry import Registry
from odeion_archive.errors import (
    ArchiveInvalidError,
    BackupFailedError,
    CorruptArchiveError,
    ManifestError,
)
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat, ReadLimits
from odeion_archive.testing import format_registry, head_manifest

FORMATS: list[ArchiveFormat] = [ZipFormat(), TarZstFormat()]
USERS = b'{"id":1,"name":"ana"}\n' * 100
DUMP = bytes(range(256)) * 400


@pytest.fixture(params=FORMATS, ids=lambda f: f.name)
def fmt(request: pytest.FixtureRequest) -> ArchiveFormat:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def registry() -> Registry:
    return format_registry(*FORMATS)


def _archive(fmt: ArchiveFormat, tmp_path: Path) -> Path:
    path = tmp_path / f"a{fmt.suffix}"
    with path.open("wb") as stream:
        builder = ArchiveBuilder(fmt, stream, head=head_manifest(fmt, ("users_auth", "full_db")))
        builder.add_member("users_auth", "users.jsonl", iter([USERS[:10], USERS[10:]]))
        builder.add_member("full_db", "database.dump", [DUMP], size=len(DUMP))
        builder.set_facts("users_auth", {"rows": {"users": 100}})
        builder.finish()
    return path


# -- building --------------------------------------------------------------------------


def test_builder_computes_entries_and_the_manifest_reads_back(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    stream = io.BytesIO()
    builder = ArchiveBuilder(fmt, stream, head=head_manifest(fmt, ("users_auth", "settings")))
    entry = builder.add_member("users_auth", "users.jsonl", iter([USERS[:7], USERS[7:]]))
    assert (entry.path, entry.size, entry.sha256) == (
        "users_auth/users.jsonl",
        len(USERS),
        hashlib.sha256(USERS).hexdigest(),
    )
    builder.set_facts("users_auth", {"rows": {"users": 100}})
    manifest = builder.finish()
    assert manifest.component("users_auth").members == (entry,)
    assert manifest.component("users_auth").facts == {"rows": {"users": 100}}
    assert manifest.component("settings").members == ()
    path = tmp_path / f"b{fmt.suffix}"
    path.write_bytes(stream.getvalue())
    with ArchiveFile.open(path, registry) as archive:
        assert archive.manifest == manifest
        assert archive.format is registry.format(fmt.name)
        assert archive.path == path
        assert archive.size == len(stream.getvalue())


def test_builder_refuses_misuse(fmt: ArchiveFormat) -> None:
    head = head_manifest(fmt, ("users_auth",))
    with pytest.raises(BackupFailedError, match="format"):
        ArchiveBuilder(fmt, io.BytesIO(), head=attrs.evolve(head, format="other"))
    listed = attrs.evolve(head, components=(ComponentEntry("users_auth", 1, facts={"x": 1}),))
    with pytest.raises(BackupFailedError, match="already lists"):
        ArchiveBuilder(fmt, io.BytesIO(), head=listed)
    builder = ArchiveBuilder(fmt, io.BytesIO(), head=head)
    with pytest.raises(BackupFailedError, match="not in the head manifest"):
        builder.add_member("settings", "a.json", [b"{}"])
    for bad in ("../x", "a//b", "a\\b", "a\nb", "", "a\u202eb", "a\u200bb", "\u0430.jsonl", "a."):
        with pytest.raises(BackupFailedError, match="rename it"):
            builder.add_member("users_auth", bad, [b"x"])
    with pytest.raises(BackupFailedError, match="JSON"):
        builder.set_facts("users_auth", {"when": object()})
    with pytest.raises(BackupFailedError, match="JSON"):
        builder.set_facts("users_auth", {"ratio": float("nan")})
    builder.add_member("users_auth", "a.jsonl", [b"x"])
    with pytest.raises(BackupFailedError, match="distinct name"):
        builder.add_member("users_auth", "A.jsonl", [b"y"])
    builder.finish()
    with pytest.raises(BackupFailedError, match="finished"):
        builder.add_member("users_auth", "b.jsonl", [b"x"])
    with pytest.raises(BackupFailedError, match="finished"):
        builder.finish()


@pytest.mark.parametrize("size", [3, 5])
def test_a_wrong_announced_size_fails_the_backup(fmt: ArchiveFormat, size: int) -> None:
    builder = ArchiveBuilder(fmt, io.BytesIO(), head=head_manifest(fmt, ("users_auth",)))
    with pytest.raises(BackupFailedError, match="announced"):
        builder.add_member("users_auth", "a.jsonl", [b"abcd"], size=size)


# -- reading ---------------------------------------------------------------------------


def test_walk_and_open_member_give_the_bytes(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    path = _archive(fmt, tmp_path)
    with ArchiveFile.open(path, registry) as archive:
        walked = {entry.path: b"".join(chunks) for entry, chunks in archive.walk()}
        assert walked == {"users_auth/users.jsonl": USERS, "full_db/database.dump": DUMP}
        # Two members open at once read independently.
        with (
            archive.open_member("full_db/database.dump") as dump,
            archive.open_member("users_auth/users.jsonl") as users,
        ):
            parts = [dump.read(1000), users.read(10), dump.read(), users.read()]
        assert parts[0] + parts[2] == DUMP
        assert parts[1] + parts[3] == USERS
        with pytest.raises(ManifestError, match="no member"):
            archive.open_member("users_auth/nope.jsonl")
    with pytest.raises(ArchiveInvalidError, match="closed"):
        next(archive.walk())


def test_open_member_raises_when_the_bytes_do_not_match(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    path = _archive(fmt, tmp_path)
    with ArchiveFile.open(path, registry) as archive:
        archive.manifest = attrs.evolve(
            archive.manifest,
            components=tuple(
                attrs.evolve(c, members=tuple(attrs.evolve(m, sha256="f" * 64) for m in c.members))
                for c in archive.manifest.components
            ),
        )
        with archive.open_member("full_db/database.dump") as stream:
            assert stream.read(100) == DUMP[:100]  # fine until the end is reached
            with pytest.raises(CorruptArchiveError, match=r"full_db/database\.dump"):
                stream.read()
        walk = archive.walk()
        _entry, chunks = next(walk)
        with pytest.raises(CorruptArchiveError, match="sha256"):
            b"".join(chunks)


def test_opening_what_is_not_an_archive_is_refused(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(ArchiveInvalidError, match="cannot open"):
        ArchiveFile.open(tmp_path / "absent.zip", registry)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 but nothing more")
    with pytest.raises(CorruptArchiveError, match="end-of-central-directory"):
        ArchiveFile.open(junk, registry)
    report = verify_archive(junk, registry)
    assert not report.ok
    assert report.problems[0].member is None


def test_a_manifest_member_that_reads_differently_in_the_stream_is_caught(
    registry: Registry,
    tmp_path: Path,
) -> None:
    # The tar.zst index points the reader at one manifest; the stream carries another.
    fmt = TarZstFormat()
    path = tmp_path / "two.tar.zst"
    head = head_manifest(fmt, ("users_auth",))
    with path.open("wb") as stream:
        writer = fmt.open_writer(stream)
        writer.add(HEAD_MEMBER, [head.head_json()])
        writer.add(TAIL_MEMBER, [head.tail_json()])
        writer.close()
    with ArchiveFile.open(path, registry) as archive:
        archive._manifest_bytes[TAIL_MEMBER] = head.tail_json().replace(b"[]", b"[ ]")[:-1]
        with pytest.raises(CorruptArchiveError):
            list(archive.walk())
        assert not archive.verify().ok


class _NoListing(ZipFormat):
    """A format whose reader has only the ArchiveReader methods (no ``entries``)."""

    def open_reader(self, file: IO[bytes], limits: ReadLimits) -> Any:
        inner = super().open_reader(file, limits)

        class Reader:
            read_member = inner.read_member
            walk = inner.walk
            container_problems = inner.container_problems
            close = inner.close

        return Reader()


def test_walk_chunks_respect_the_chunk_limit(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    path = _archive(fmt, tmp_path)
    with ArchiveFile.open(path, registry, limits=ReadLimits(chunk_bytes=4096)) as archive:
        sizes = [len(chunk) for _entry, chunks in archive.walk() for chunk in chunks]
    assert max(sizes) <= 4096
    assert sum(sizes) == len(USERS) + len(DUMP)


def test_check_container_notices_damage_anywhere_without_unpacking(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    path = _archive(fmt, tmp_path)
    with ArchiveFile.open(path, registry) as archive:
        assert archive.check_container().ok
    data = path.read_bytes()
    damaged = tmp_path / f"damaged{fmt.suffix}"
    for position in range(0, len(data), max(1, len(data) // 97)):
        flipped = bytearray(data)
        flipped[position] ^= 0x01
        damaged.write_bytes(flipped)
        try:
            with ArchiveFile.open(damaged, registry) as archive:
                report = archive.check_container()
        except ArchiveInvalidError:
            continue  # refused already when opened
        assert not report.ok, f"a flip at byte {position} went unnoticed"
