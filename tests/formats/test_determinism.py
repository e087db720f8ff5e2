"""Property 4 (same members, same bytes, fixed header fields) and 5 (sniffed, not named)."""

from __future__ import annotations

import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from odeion_archive._archive import ArchiveFile
from odeion_archive._registry import Registry
from odeion_archive.errors import ArchiveInvalidError
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.interfaces import ArchiveFormat
from odeion_archive.testing import FIXED_TIME, write_archive

MEMBERS = {
    "settings": {"b.json": b'{"theme":"dark"}\n', "a.json": b"{}\n" * 1000},
    "users_auth": {"users.jsonl": b'{"id":7}\n' * 500},
}


def _bytes(fmt: ArchiveFormat, members: dict[str, dict[str, bytes]], chunk_size: int) -> bytes:
    stream = io.BytesIO()
    write_archive(fmt, stream, members, chunk_size=chunk_size)
    return stream.getvalue()


def test_same_members_give_identical_bytes_whatever_the_chunking(fmt: ArchiveFormat) -> None:
    first = _bytes(fmt, MEMBERS, 64 * 1024)
    assert _bytes(fmt, MEMBERS, 64 * 1024) == first
    assert _bytes(fmt, MEMBERS, 7) == first


def test_other_order_gives_other_bytes_in_the_given_order(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    swapped = {
        "settings": dict(reversed(MEMBERS["settings"].items())),
        "users_auth": MEMBERS["users_auth"],
    }
    path = tmp_path / f"x{fmt.suffix}"
    path.write_bytes(_bytes(fmt, swapped, 1024))
    assert path.read_bytes() != _bytes(fmt, MEMBERS, 1024)
    with ArchiveFile.open(path, registry) as archive:
        assert [e.path for e, _ in archive.walk()] == [
            "settings/a.json",
            "settings/b.json",
            "users_auth/users.jsonl",
        ]


def test_zip_headers_are_fixed() -> None:
    data = _bytes(ZipFormat(), MEMBERS, 1024)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == [
        "manifest.json",
        "settings/b.json",
        "settings/a.json",
        "users_auth/users.jsonl",
        "manifest-tail.json",
    ]
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
        assert info.create_system == 3
        assert info.compress_type == zipfile.ZIP_DEFLATED


def test_tar_headers_are_fixed() -> None:
    data = _bytes(TarZstFormat(), MEMBERS, 1024)
    raw = (
        zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    )
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
        infos = archive.getmembers()
    assert [i.name for i in infos] == [
        "manifest.json",
        "settings/b.json",
        "settings/a.json",
        "users_auth/users.jsonl",
        "manifest-tail.json",
    ]
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode) == (
            0,
            0,
            0,
            "",
            "",
            0o644,
        )
        assert info.isreg()


def test_levels_change_bytes_but_not_content(registry: Registry, tmp_path: Path) -> None:
    for fast, default in ((ZipFormat(1), ZipFormat()), (TarZstFormat(1), TarZstFormat(19))):
        path = tmp_path / f"fast{fast.suffix}"
        path.write_bytes(_bytes(fast, MEMBERS, 4096))
        assert path.read_bytes() != _bytes(default, MEMBERS, 4096)
        with ArchiveFile.open(path, registry) as archive:
            assert archive.verify().ok
            assert archive.manifest.created_at == FIXED_TIME


def test_writer_works_on_a_real_pipe(fmt: ArchiveFormat, tmp_path: Path) -> None:
    target = tmp_path / f"piped{fmt.suffix}"
    with (
        target.open("wb") as sink,
        subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=sink) as cat,
    ):
        assert cat.stdin is not None
        write_archive(fmt, cat.stdin, MEMBERS)
        cat.stdin.close()
    assert target.read_bytes() == _bytes(fmt, MEMBERS, 64 * 1024)


# -- property 5 ----------------------------------------------------------------------


def test_format_is_recognised_from_bytes_not_name(
    fmt: ArchiveFormat, registry: Registry, tmp_path: Path
) -> None:
    other = ".tar.zst" if fmt.suffix == ".zip" else ".zip"
    for name in (f"misnamed{other}", "no-suffix", "archive.bin"):
        path = tmp_path / name
        path.write_bytes(_bytes(fmt, MEMBERS, 4096))
        with ArchiveFile.open(path, registry) as archive:
            assert archive.format.name == fmt.name


def test_sniff_tells_the_formats_apart() -> None:
    zip_head = _bytes(ZipFormat(), MEMBERS, 4096)[:4096]
    tar_head = _bytes(TarZstFormat(), MEMBERS, 4096)[:4096]
    plain_zstd = zstandard.ZstdCompressor().compress(b"not a tar stream" * 100)
    assert ZipFormat().sniff(zip_head)
    assert not ZipFormat().sniff(tar_head)
    assert TarZstFormat().sniff(tar_head)
    assert not TarZstFormat().sniff(zip_head)
    assert not TarZstFormat().sniff(plain_zstd)
    for junk in (b"", b"PK", b"\x28\xb5\x2f\xfd", b"\0" * 4096, b"%PDF-1.7\n" * 100):
        assert not ZipFormat().sniff(junk) or junk.startswith(b"PK\x03\x04")
        assert not TarZstFormat().sniff(junk)


@pytest.mark.parametrize("content", [b"", b"hello, not an archive\n" * 100])
def test_unknown_bytes_are_refused_naming_the_known_formats(
    content: bytes, registry: Registry, tmp_path: Path
) -> None:
    path = tmp_path / "mystery.zip"
    path.write_bytes(content)
    with pytest.raises(ArchiveInvalidError, match=r"known: tar\.zst, zip"):
        ArchiveFile.open(path, registry)
