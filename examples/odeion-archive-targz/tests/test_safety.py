"""Hostile and foreign input: what sniff claims, what the reader reports and what is refused.

Archives here are built by hand in this format's container (a gzip member per
tar member, the end-of-archive member, a correctly sealed index), so that only
the tar content is hostile and the refusals tested are those of the reader and
of the core's ArchiveFile.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tracemalloc
import zlib
from collections.abc import Iterable
from pathlib import Path

import attrs
import pytest
from odeion_archive_targz import TarGzFormat
from odeion_archive_targz._gzip import MEMBER_HEADER, MemberCompressor, trailer
from odeion_archive_targz._writer import index_json

from odeion_archive import ReadLimits
from odeion_archive.errors import ArchiveInvalidError, CorruptArchiveError, UnsafeArchiveError
from odeion_archive.formatkit import tar_header as header
from odeion_archive.formatkit import tar_padding as padding
from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.testing import (
    ArchiveFile,
    ComponentEntry,
    Manifest,
    MemberEntry,
    format_registry,
    head_manifest,
    write_archive,
)

FMT = TarGzFormat()
MEMBER = "users_auth/a.jsonl"


def _container(
    parts: Iterable[tuple[str, Iterable[bytes]]], *, index_names: list[str] | None = None
) -> bytes:
    """Our container around raw tar bytes: one gzip member per part, index and seal."""
    out = bytearray()
    offsets = []
    for name, pieces in parts:
        offsets.append((name, len(out)))
        member = MemberCompressor(6)
        out += member.start()
        for piece in pieces:
            out += member.compress(piece)
        out += member.finish()
    eof = len(out)
    member = MemberCompressor(6)
    out += member.start() + member.compress(bytes(1024)) + member.finish()
    if index_names is not None:
        offsets = [(name, offset) for name, (_, offset) in zip(index_names, offsets, strict=True)]
    out += trailer(index_json(offsets, eof), hashlib.sha256(out).digest())
    return bytes(out)


def _regular(name: str, data: bytes) -> tuple[str, list[bytes]]:
    return name, [header(name, len(data)), data, padding(len(data))]


def _manifest(size: int = 0, sha256: str = hashlib.sha256(b"").hexdigest()) -> Manifest:
    member = MemberEntry(MEMBER, size, sha256)
    return attrs.evolve(
        head_manifest(FMT, ("users_auth",)),
        components=(ComponentEntry("users_auth", 1, (member,)),),
    )


Parts = list[tuple[str, list[bytes]]]


def _with_manifest(manifest: Manifest, *parts: tuple[str, list[bytes]]) -> Parts:
    return [
        _regular("manifest.json", manifest.head_json()),
        *parts,
        _regular("manifest-tail.json", manifest.tail_json()),
    ]


def _save(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "crafted.tar.gz"
    path.write_bytes(data)
    return path


def _refused(path: Path, error: type[Exception] = ArchiveInvalidError) -> None:
    registry = format_registry(FMT)
    with pytest.raises(error), ArchiveFile.open(path, registry) as archive:  # noqa: PT012
        for _entry, chunks in archive.walk():
            for _chunk in chunks:
                pass
    with ArchiveFile.open(path, registry) as archive:
        assert not archive.verify().ok


def test_a_crafted_archive_of_regular_members_is_accepted(tmp_path: Path) -> None:
    data = b'{"id":1}\n'
    manifest = _manifest(len(data), hashlib.sha256(data).hexdigest())
    path = _save(tmp_path, _container(_with_manifest(manifest, _regular(MEMBER, data))))
    with ArchiveFile.open(path, format_registry(FMT)) as archive:
        assert [(e.path, b"".join(c)) for e, c in archive.walk()] == [(MEMBER, data)]
        assert archive.verify().ok


# -- sniffing --------------------------------------------------------------------


def _head(fmt: TarGzFormat | ZipFormat | TarZstFormat) -> bytes:
    stream = io.BytesIO()
    write_archive(fmt, stream, {"users_auth": {"users.jsonl": b"{}\n"}})
    return stream.getvalue()[:4096]


def test_sniff_claims_its_own_archives_only() -> None:
    ours = _head(FMT)
    assert FMT.sniff(ours)
    assert not ZipFormat().sniff(ours)
    assert not TarZstFormat().sniff(ours)
    assert not FMT.sniff(_head(ZipFormat()))
    assert not FMT.sniff(_head(TarZstFormat()))
    assert not FMT.sniff(ours[:20])
    assert not FMT.sniff(gzip.compress(b"just some text\n" * 100, mtime=0))


def test_sniff_is_not_confused_by_other_tar_gz_files() -> None:
    # Python's tarfile writes gzip headers with mtime 0 and OS "unknown" too; only the
    # extra field this format adds tells its archives apart.
    stream = io.BytesIO()
    with tarfile.open(fileobj=stream, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size, info.mtime = 2, 0
        tar.addfile(info, io.BytesIO(b"{}"))
    assert stream.getvalue()[:3] == b"\x1f\x8b\x08"
    assert not FMT.sniff(stream.getvalue()[:4096])
    not_tar = MEMBER_HEADER + zlib.compressobj(6, zlib.DEFLATED, -15).compress(b"x" * 600)
    assert not FMT.sniff(not_tar + zlib.compressobj(6, zlib.DEFLATED, -15).flush())


# -- entries the core must refuse ----------------------------------------------------


@pytest.mark.parametrize(
    ("typeflag", "kind"),
    [
        (tarfile.SYMTYPE, "symlink"),
        (tarfile.LNKTYPE, "hardlink"),
        (tarfile.DIRTYPE, "directory"),
        (tarfile.FIFOTYPE, "fifo"),
        (tarfile.CHRTYPE, "device"),
        (tarfile.GNUTYPE_LONGNAME, "other"),
    ],
)
def test_links_and_other_non_files_are_reported_honestly_and_refused(
    typeflag: bytes, kind: str, tmp_path: Path
) -> None:
    info = tarfile.TarInfo(MEMBER)
    info.type = typeflag
    info.linkname = "/etc/passwd" if typeflag in {tarfile.SYMTYPE, tarfile.LNKTYPE} else ""
    raw = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    listed = MEMBER + "/" if typeflag == tarfile.DIRTYPE else MEMBER  # as tar names it
    path = _save(tmp_path, _container(_with_manifest(_manifest(), (listed, [raw]))))
    with path.open("rb") as file:
        reader = FMT.open_reader(file, ReadLimits())
        assert [e.kind for e in reader.entries()] == ["file", kind, "file"]
        assert [m.entry.kind for m in reader.walk()] == ["file", kind, "file"]
    _refused(path, UnsafeArchiveError)


@pytest.mark.parametrize("name", ["../evil", "/etc/passwd", "users_auth/../../x", "a\\b"])
def test_names_that_escape_are_refused(name: str, tmp_path: Path) -> None:
    path = _save(tmp_path, _container(_with_manifest(_manifest(), _regular(name, b"x"))))
    _refused(path, UnsafeArchiveError)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    parts = _with_manifest(_manifest(), _regular(MEMBER, b""), _regular(MEMBER.upper(), b""))
    _refused(_save(tmp_path, _container(parts)), UnsafeArchiveError)


def test_pax_keywords_that_change_the_member_are_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo(MEMBER)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    raw = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    path = _save(tmp_path, _container(_with_manifest(_manifest(), (MEMBER, [raw]))))
    _refused(path, UnsafeArchiveError)


def test_an_oversized_pax_header_is_refused(tmp_path: Path) -> None:
    info = tarfile.TarInfo(MEMBER)
    info.pax_headers = {"comment": "x" * 100_000}
    raw = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")
    path = _save(tmp_path, _container(_with_manifest(_manifest(), (MEMBER, [raw]))))
    _refused(path, UnsafeArchiveError)


def test_a_member_hidden_from_the_index_is_refused(tmp_path: Path) -> None:
    hidden = header(MEMBER, 0) + header("users_auth/hidden.jsonl", 1) + b"x" + padding(1)
    path = _save(tmp_path, _container(_with_manifest(_manifest(), (MEMBER, [hidden]))))
    _refused(path, CorruptArchiveError)


def test_an_index_that_points_elsewhere_is_refused(tmp_path: Path) -> None:
    parts = _with_manifest(_manifest(), _regular(MEMBER, b""))
    names = ["manifest.json", "manifest-tail.json", MEMBER]
    path = _save(tmp_path, _container(parts, index_names=names))
    with pytest.raises(CorruptArchiveError):
        ArchiveFile.open(path, format_registry(FMT))


def test_too_many_members_are_refused_before_reading_them(tmp_path: Path) -> None:
    path = _save(tmp_path, _container(_with_manifest(_manifest(), _regular(MEMBER, b""))))
    with pytest.raises(UnsafeArchiveError):
        ArchiveFile.open(path, format_registry(FMT), limits=ReadLimits(max_members=2))


# -- bounds ------------------------------------------------------------------------


def _zeros(total: int) -> Iterable[bytes]:
    piece = bytes(1024 * 1024)
    for _ in range(total // len(piece)):
        yield piece


def test_a_decompression_bomb_is_read_in_bounded_pieces(tmp_path: Path) -> None:
    size = 128 * 1024 * 1024
    bomb = (MEMBER, [header(MEMBER, size), *_zeros(size)])
    path = _save(tmp_path, _container(_with_manifest(_manifest(), bomb)))
    assert path.stat().st_size < size // 500
    limits = ReadLimits(chunk_bytes=64 * 1024)
    with path.open("rb") as file:
        reader = FMT.open_reader(file, limits)
        with pytest.raises(UnsafeArchiveError):
            reader.read_member(MEMBER, 1024 * 1024)
        tracemalloc.start()
        try:
            for source in reader.walk():
                if source.entry.name == MEMBER:
                    assert source.entry.size == size
                    first = next(source.chunks())
                    assert len(first) <= limits.chunk_bytes
                    break
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
    # The core refuses it from the listing, before handing out any data.
    _refused(path, CorruptArchiveError)


def test_a_manifest_larger_than_allowed_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, _container(_with_manifest(_manifest(), _regular(MEMBER, b""))))
    with path.open("rb") as file:
        reader = FMT.open_reader(file, ReadLimits())
        with pytest.raises(UnsafeArchiveError):
            reader.read_member("manifest.json", 16)
