"""Standard tools read the archives: gzip -t, tar -tzf and -xzf, and Python's tarfile and gzip."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from odeion_archive_targz import TarGzFormat

from odeion_archive.testing import write_archive

MEMBERS = {
    "users_auth": {"users.jsonl": b'{"id":1,"name":"ana"}\n' * 5000, "empty.jsonl": b""},
    "full_db": {"deep/" + "n" * 150 + ".bin": bytes(range(256)) * 40},
}
EXPECTED = {f"{c}/{n}": d for c, files in MEMBERS.items() for n, d in files.items()}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """An archive of :data:`MEMBERS`."""
    path = tmp_path / "members.tar.gz"
    with path.open("wb") as stream:
        write_archive(TarGzFormat(), stream, MEMBERS)
    return path


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def test_gzip_accepts_the_archive(archive: Path) -> None:
    subprocess.run([_tool("gzip"), "-t", str(archive)], check=True)
    whole = subprocess.run(
        [_tool("gzip"), "-dc", str(archive)], check=True, capture_output=True
    ).stdout
    assert len(whole) % 512 == 0
    assert whole.endswith(bytes(1024))


def test_tar_lists_and_extracts_the_archive(archive: Path, tmp_path: Path) -> None:
    tar = _tool("tar")
    _tool("gzip")
    listed = subprocess.run(
        [tar, "-tzf", str(archive)], check=True, capture_output=True, text=True, encoding="utf-8"
    ).stdout.splitlines()
    assert listed == ["manifest.json", *EXPECTED, "manifest-tail.json"]
    target = tmp_path / "extracted"
    target.mkdir()
    done = subprocess.run(
        [tar, "-xzf", str(archive), "-C", str(target)], check=True, capture_output=True, text=True
    )
    assert done.stderr == ""
    for name, data in EXPECTED.items():
        assert (target / name).read_bytes() == data


def test_python_reads_the_archive(archive: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        assert names == ["manifest.json", *EXPECTED, "manifest-tail.json"]
        for name, data in EXPECTED.items():
            member = tar.extractfile(name)
            assert member is not None
            assert member.read() == data
    assert len(gzip.decompress(archive.read_bytes())) % 512 == 0
