"""Property 6: untrusted archives are refused with a typed error before data is handed out."""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from _craft_archives import craft_tarzst, craft_zip, manifest_for, tar_info, with_sizes

from odeion_archive._archive import ArchiveFile
from odeion_archive._manifest import HEAD_MEMBER, TAIL_MEMBER
from odeion_archive._registry import Registry
from odeion_archive.errors import (
    ArchiveInvalidError,
    CorruptArchiveError,
    ManifestError,
    UnsafeArchiveError,
)
from odeion_archive.formats import _zip_records as zipmod
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat, ReadLimits

DATA = b'{"id":1,"name":"ana"}\n' * 10
GOOD = "users_auth/users.jsonl"


def _read_all(
    path: Path, registry: Registry, handed_out: list[bytes], limits: ReadLimits | None = None
) -> None:
    """Walk the whole archive, appending every chunk handed out to ``handed_out``."""
    with ArchiveFile.open(path, registry, limits=limits) as archive:
        for _entry, chunks in archive.walk():
            handed_out.append(b"")  # a member was handed out, even if empty
            handed_out.extend(chunks)


def _refused_before_data(
    path: Path,
    registry: Registry,
    error: type[ArchiveInvalidError],
    limits: ReadLimits | None = None,
) -> ArchiveInvalidError:
    """Assert that reading ``path`` raises ``error`` before any member is handed out."""
    handed_out: list[bytes] = []
    with pytest.raises(error) as caught:
        _read_all(path, registry, handed_out, limits)
    assert handed_out == []
    return caught.value


# -- crafted entries, in both formats ------------------------------------------------

Crafter = Callable[[Path, list[tuple[str, str, bytes]], dict[str, bytes]], Path]


def _zip_crafter(
    tmp_path: Path, entries: list[tuple[str, str, bytes]], listed: dict[str, bytes]
) -> Path:
    """``entries`` are ``(name, kind, data)``; ``listed`` what the manifest lists."""
    path = tmp_path / "crafted.zip"
    modes = {
        "file": stat.S_IFREG | 0o644,
        "symlink": stat.S_IFLNK | 0o777,
        "hardlink": stat.S_IFREG | 0o644,
        "directory": stat.S_IFDIR | 0o755,
        "device": stat.S_IFCHR | 0o644,
        "fifo": stat.S_IFIFO | 0o644,
    }
    infos: list[tuple[zipfile.ZipInfo | str, bytes]] = []
    nul_names = []
    for raw_name, kind, data in entries:
        name = raw_name
        if "\0" in name:  # zipfile cuts names at NUL: write a stand-in and patch it
            nul_names.append(name)
            name = name.replace("\0", "\x01")
        info = zipfile.ZipInfo(name + ("/" if kind == "directory" else ""), (1980, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = modes[kind] << 16
        infos.append((info, data))
    craft_zip(path, manifest_for("zip", listed), infos)
    raw = path.read_bytes()
    for name in nul_names:
        raw = raw.replace(name.replace("\0", "\x01").encode(), name.encode())
    path.write_bytes(raw)
    return path


def _tar_crafter(
    tmp_path: Path, entries: list[tuple[str, str, bytes]], listed: dict[str, bytes]
) -> Path:
    path = tmp_path / "crafted.tar.zst"
    kinds = {
        "file": tarfile.REGTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "directory": tarfile.DIRTYPE,
        "device": tarfile.CHRTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    infos = []
    for name, kind, data in entries:
        pax = {"path": name} if "\0" in name or "\x1b" in name else {}
        size = len(data) if kind == "file" else 0
        infos.append((tar_info(name, size, kinds[kind], **pax), data if kind == "file" else b""))
    craft_tarzst(path, manifest_for("tar.zst", listed), infos)
    return path


@pytest.fixture(params=["zip", "tar.zst"])
def craft(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Path]:
    crafter = _zip_crafter if request.param == "zip" else _tar_crafter
    return lambda entries, listed: crafter(tmp_path, entries, listed)


def test_a_crafted_clean_archive_reads(craft: Callable[..., Path], registry: Registry) -> None:
    path = craft([(GOOD, "file", DATA)], {GOOD: DATA})
    with ArchiveFile.open(path, registry) as archive:
        assert [(e.path, b"".join(c)) for e, c in archive.walk()] == [(GOOD, DATA)]


@pytest.mark.parametrize(
    "name",
    [
        "/etc/cron.d/evil",
        "users_auth/../../evil",
        "..",
        "users_auth\\..\\evil",
        "users_auth/a\0b",
        "users_auth/a\x1bb",
        "users_auth//b",
        "./users_auth/b",
        "C:/evil",
        "users_auth/users.jsonl\u202e",
        "users_auth/u\u200bsers.jsonl",
        "users_auth/\ufeffusers.jsonl",
        "users_\u0430uth/users.jsonl",  # Cyrillic a
        "users_auth/users.jsonl.",
        "users_auth/users.jsonl ",
    ],
)
def test_unsafe_names_are_refused(
    name: str, craft: Callable[..., Path], registry: Registry
) -> None:
    path = craft([(GOOD, "file", DATA), (name, "file", b"evil")], {GOOD: DATA})
    error = _refused_before_data(path, registry, UnsafeArchiveError)
    assert "member name" in str(error)


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "directory", "device", "fifo"])
def test_non_regular_members_are_refused_even_when_listed(
    kind: str, craft: Callable[..., Path], registry: Registry
) -> None:
    path = craft(
        [("users_auth/a.jsonl", "file", DATA), (GOOD, kind, b"")],
        {"users_auth/a.jsonl": DATA, GOOD: b""},
    )
    if kind == "hardlink" and path.suffix == ".zip":
        pytest.skip("zip has no hard links")
    error = _refused_before_data(path, registry, UnsafeArchiveError)
    assert GOOD in str(error)


@pytest.mark.parametrize(
    "twin", [GOOD, "users_auth/USERS.jsonl", "users_auth/\uff55sers.jsonl"]
)  # fullwidth u, NFKC -> u
def test_duplicate_names_are_refused(
    twin: str, craft: Callable[..., Path], registry: Registry
) -> None:
    path = craft([(GOOD, "file", DATA), (twin, "file", DATA)], {GOOD: DATA})
    _refused_before_data(path, registry, UnsafeArchiveError)


def test_unlisted_member_is_refused(craft: Callable[..., Path], registry: Registry) -> None:
    path = craft([(GOOD, "file", DATA), ("users_auth/extra.jsonl", "file", b"x")], {GOOD: DATA})
    error = _refused_before_data(path, registry, UnsafeArchiveError)
    assert "not listed" in str(error)


def test_missing_member_is_refused(craft: Callable[..., Path], registry: Registry) -> None:
    path = craft([(GOOD, "file", DATA)], {GOOD: DATA, "users_auth/gone.jsonl": b"x"})
    error = _refused_before_data(path, registry, CorruptArchiveError)
    assert "users_auth/gone.jsonl" in str(error)
    assert "missing" in str(error)


def test_member_larger_than_the_manifest_says_is_refused(
    craft: Callable[..., Path], registry: Registry
) -> None:
    path = craft([(GOOD, "file", DATA * 100)], {GOOD: DATA})
    error = _refused_before_data(path, registry, CorruptArchiveError)
    assert "larger" in str(error)


# -- zip: a deflate stream longer than every size it declares --------------------------


def test_zip_member_is_cut_off_while_decompressing(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = os.urandom(8 * 1024 * 1024)
    manifest = with_sizes(manifest_for("zip", {GOOD: big}), {GOOD: 10})
    path = tmp_path / "bomb.zip"
    with path.open("wb") as stream:
        writer = ZipFormat(level=1).open_writer(stream)
        writer.add(HEAD_MEMBER, [manifest.head_json()])
        writer.add(GOOD, [big])
        writer.add(TAIL_MEMBER, [manifest.tail_json()])
        writer.close()
    raw = path.read_bytes()  # make the central directory declare 10 bytes as well
    with path.open("rb") as file:
        directory = ZipFormat().open_reader(file, ReadLimits()).directory()
    entry = next(e for e in directory.entries if e.name == GOOD)
    declared = zipmod.ZIP64_CENTRAL.pack(1, 24, entry.usize, entry.csize, entry.offset)
    assert raw.count(declared) == 1
    raw = raw.replace(declared, zipmod.ZIP64_CENTRAL.pack(1, 24, 10, entry.csize, entry.offset))
    path.write_bytes(raw)
    # With the data descriptor still telling the truth, the layout check refuses it at once.
    with pytest.raises(CorruptArchiveError, match="data descriptor"):
        ArchiveFile.open(path, registry)
    # A consistent lie (the descriptor says 10 bytes too) is cut off while decompressing.
    descriptor = zipmod.DESCRIPTOR64.pack(zipmod.DESCRIPTOR_SIG, entry.crc, entry.csize, len(big))
    assert raw.count(descriptor) == 1
    path.write_bytes(
        raw.replace(
            descriptor,
            zipmod.DESCRIPTOR64.pack(zipmod.DESCRIPTOR_SIG, entry.crc, entry.csize, 10),
        )
    )

    read = [0]
    real_pread = os.pread

    def pread(fd: int, size: int, offset: int) -> bytes:
        data = real_pread(fd, size, offset)
        read[0] += len(data)
        return data

    monkeypatch.setattr(os, "pread", pread)
    handed_out: list[bytes] = []
    with pytest.raises(CorruptArchiveError, match="more than"):
        _read_all(path, registry, handed_out)
    assert len(b"".join(handed_out)) <= 10
    assert read[0] < 1024 * 1024  # stopped early: most of the 8 MiB was never read


# -- zstd windows, member counts, manifest JSON ------------------------------------------


def test_zstd_window_larger_than_the_limit_is_refused(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "window.tar.zst"
    craft_tarzst(
        path,
        manifest_for("tar.zst", {GOOD: DATA}),
        [(tar_info(GOOD, len(DATA)), DATA)],
        window_log=28,
    )  # 256 MiB
    error = _refused_before_data(path, registry, UnsafeArchiveError)
    assert "window" in str(error)
    # Allowed explicitly, the same archive reads.
    with ArchiveFile.open(path, registry, limits=ReadLimits(max_window_bytes=1 << 28)) as archive:
        assert [b"".join(c) for _e, c in archive.walk()] == [DATA]


@pytest.mark.parametrize(
    ("hidden", "error"),
    [("../escape", UnsafeArchiveError), ("users_auth/extra.jsonl", CorruptArchiveError)],
)
def test_stream_member_missing_from_the_index_is_refused_before_its_data(
    hidden: str,
    error: type[ArchiveInvalidError],
    registry: Registry,
    tmp_path: Path,
) -> None:
    # The index and each frame's first header agree; the stream holds one more member.
    path = tmp_path / "hidden.tar.zst"
    craft_tarzst(
        path,
        manifest_for("tar.zst", {GOOD: DATA}),
        [(tar_info(GOOD, len(DATA)), DATA)],
        hidden=[(tar_info(hidden, 4), b"evil")],
    )
    handed_out: list[bytes] = []
    with pytest.raises(error):
        _read_all(path, registry, handed_out)
    assert b"evil" not in b"".join(handed_out)
    with ArchiveFile.open(path, registry) as archive:
        assert not archive.verify().ok


@pytest.mark.parametrize("fmt_name", ["zip", "tar.zst"])
def test_more_members_than_the_limit_are_refused(
    fmt_name: str, registry: Registry, tmp_path: Path
) -> None:
    files = {f"users_auth/{i}.jsonl": b"%d" % i for i in range(12)}
    path = tmp_path / f"many.{fmt_name}"
    if fmt_name == "zip":
        craft_zip(path, manifest_for("zip", files), list(files.items()))
    else:
        craft_tarzst(
            path,
            manifest_for("tar.zst", files),
            [(tar_info(n, len(d)), d) for n, d in files.items()],
        )
    with pytest.raises(UnsafeArchiveError, match="max_members"):
        ArchiveFile.open(path, registry, limits=ReadLimits(max_members=5))
    with ArchiveFile.open(path, registry, limits=ReadLimits(max_members=14)) as archive:
        assert len(list(archive.walk())) == 12


def _manifest_archive(fmt: ArchiveFormat, path: Path, head: bytes, tail: bytes) -> None:
    with path.open("wb") as stream:
        writer = fmt.open_writer(stream)
        writer.add(HEAD_MEMBER, [head])
        writer.add(TAIL_MEMBER, [tail])
        writer.close()


def _good_parts(fmt: ArchiveFormat) -> tuple[bytes, bytes]:
    manifest = manifest_for(fmt.name, {GOOD: DATA})
    return manifest.head_json(), manifest.tail_json()


@pytest.mark.parametrize(
    ("evil", "message"),
    [
        (lambda head: head[:-1] + b',"schema_version":2}', "appears twice"),
        (lambda head: head.replace(b'"schema_version":1', b'"schema_version":NaN'), "NaN"),
        (lambda head: head[:-1] + b',"x":' + b"[" * 40 + b"]" * 40 + b"}", "nested"),
        (lambda head: head.replace(b'"format":', b'"formats":'), "format"),
    ],
)
def test_hostile_manifest_json_is_refused(
    evil: Callable[[bytes], bytes],
    message: str,
    fmt: ArchiveFormat,
    registry: Registry,
    tmp_path: Path,
) -> None:
    head, tail = _good_parts(fmt)
    path = tmp_path / f"m{fmt.suffix}"
    _manifest_archive(fmt, path, evil(head), tail)
    with pytest.raises(ManifestError, match=message):
        ArchiveFile.open(path, registry)


def test_oversized_manifest_is_refused(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    head, tail = _good_parts(fmt)
    path = tmp_path / f"m{fmt.suffix}"
    _manifest_archive(fmt, path, head, tail[:-1] + b',"pad":"' + b"x" * 600_000 + b'"}')
    with pytest.raises(UnsafeArchiveError, match="limit"):
        ArchiveFile.open(path, registry)


@pytest.mark.parametrize(
    "bad_path", ["users_auth/../../etc/passwd", "settings/x.json", HEAD_MEMBER]
)
def test_manifest_listing_unsafe_paths_is_refused(
    bad_path: str, fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    manifest = manifest_for(fmt.name, {GOOD: DATA})
    member = manifest.components[0].members[0]
    evil = attrs.evolve(
        manifest,
        components=(
            attrs.evolve(manifest.components[0], members=(attrs.evolve(member, path=bad_path),)),
        ),
    )
    path = tmp_path / f"m{fmt.suffix}"
    _manifest_archive(fmt, path, evil.head_json(), evil.tail_json())
    with pytest.raises(ManifestError, match="members"):
        ArchiveFile.open(path, registry)


def test_manifest_naming_another_format_is_refused(registry: Registry, tmp_path: Path) -> None:
    head, tail = _good_parts(TarZstFormat())  # says tar.zst, written as zip
    path = tmp_path / "liar.zip"
    _manifest_archive(ZipFormat(), path, head, tail)
    with pytest.raises(ManifestError, match="'format'"):
        ArchiveFile.open(path, registry)


def test_manifest_sha256_is_computed_from_the_bytes() -> None:
    # Guard for the crafted manifests above: they list real digests.
    manifest = manifest_for("zip", {GOOD: DATA})
    assert manifest.member(GOOD).sha256 == hashlib.sha256(DATA).hexdigest()


def test_oversized_pax_headers_are_refused(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "pax.tar.zst"
    info = tar_info(GOOD, len(DATA), comment="x" * 70_000)
    craft_tarzst(path, manifest_for("tar.zst", {GOOD: DATA}), [(info, DATA)])
    error = _refused_before_data(path, registry, UnsafeArchiveError)
    assert "pax" in str(error)
