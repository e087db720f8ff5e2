"""The tar.xz plugin keeps the format contract, and standard tools read its archives."""

from __future__ import annotations

import lzma
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from odeion_archive_tarxz import TarXzFormat, stored_xz

from odeion_archive import Registry
from odeion_archive.testing import check_format, format_registry, verify_archive, write_archive


def test_the_format_keeps_the_contract(tmp_path: Path) -> None:
    check_format(TarXzFormat(preset=1), tmp_path)


def test_the_entry_point_registers_it() -> None:
    assert "tar.xz" in Registry.default().formats()


@pytest.mark.parametrize("size", [0, 1, 512, 65536, 65537, 200_000])
def test_a_stored_stream_is_valid_xz_of_a_length_fixed_by_its_size(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert lzma.decompress(stored_xz(data)) == data
    assert len(stored_xz(data)) == len(stored_xz(bytes(size)))


def test_tar_reads_the_archive(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.xz"
    with path.open("wb") as stream:
        write_archive(TarXzFormat(), stream, {"users_auth": {"users.jsonl": b"{}\n" * 100}})
    with tarfile.open(path, "r:xz") as archive:
        assert "users_auth/users.jsonl" in archive.getnames()
    if shutil.which("xz"):
        subprocess.run(["xz", "-t", str(path)], check=True)
    assert verify_archive(path, format_registry(TarXzFormat())).ok
