"""Property 3: standard tools open the archives, and extract members byte for byte."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from odeion_archive.formats.tarzst import TarZstFormat
from odeion_archive.formats.zip import ZipFormat
from odeion_archive.testing import write_archive

MEMBERS = {
    "users_auth": {
        "users.jsonl": b'{"id":1,"name":"ana"}\n' * 300,
        "empty.jsonl": b"",
        "long-" + "x" * 110 + ".json": b"a name longer than ustar holds",
    },
    "full_db": {
        "database.dump": b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(40_000))
    },
}
EXPECTED = {f"{c}/{n}": d for c, files in MEMBERS.items() for n, d in files.items()}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _archive(tmp_path: Path, fmt: ZipFormat | TarZstFormat) -> Path:
    path = tmp_path / f"tools{fmt.suffix}"
    with path.open("wb") as stream:
        write_archive(fmt, stream, MEMBERS)
    return path


def test_python_zipfile_tests_the_zip_archive(tmp_path: Path) -> None:
    path = _archive(tmp_path, ZipFormat())
    result = subprocess.run(
        [sys.executable, "-m", "zipfile", "-t", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Done testing" in result.stdout


@pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip is not installed")
def test_unzip_tests_and_extracts_the_zip_archive(tmp_path: Path) -> None:
    path = _archive(tmp_path, ZipFormat())
    tested = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "No errors detected" in tested.stdout
    out = tmp_path / "out"
    subprocess.run(["unzip", "-q", str(path), "-d", str(out)], check=True)
    tree = _tree(out)
    assert {k: v for k, v in tree.items() if not k.startswith("manifest")} == EXPECTED
    assert set(tree) - set(EXPECTED) == {"manifest.json", "manifest-tail.json"}


@pytest.mark.skipif(
    shutil.which("tar") is None or shutil.which("zstd") is None,
    reason="tar or zstd is not installed",
)
def test_tar_and_zstd_list_and_extract_the_tar_zst_archive(tmp_path: Path) -> None:
    path = _archive(tmp_path, TarZstFormat())
    listed = subprocess.run(
        ["tar", "--zstd", "-tf", str(path)], capture_output=True, text=True, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["manifest.json", *EXPECTED, "manifest-tail.json"]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(f"zstd -q -dc {path} | tar -x -C {out}", shell=True, check=True)
    tree = _tree(out)
    assert {k: v for k, v in tree.items() if not k.startswith("manifest")} == EXPECTED
    tested = subprocess.run(["zstd", "-t", "-q", str(path)], capture_output=True, check=False)
    assert tested.returncode == 0, tested.stderr
