"""Property 1: writing a member of any size holds bounded memory, never seeks, never stages.

A child process streams a generated member into an archive on its stdout, a
pipe, and reports its peak RSS; this process reads the pipe and counts it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("_bigwrite.py")
MIB = 1024 * 1024


def _run(
    fmt: str,
    level: int,
    mebibytes: int,
    tmp: Path,
    *,
    give_size: bool = True,
    encrypt_to: str | None = None,
    random: bool = False,
) -> tuple[int, float, int]:
    """Peak RSS (bytes), seconds, and archive bytes of one child run."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    if random:
        env["BIGWRITE_RANDOM"] = "1"
    if encrypt_to is not None:
        env["BIGWRITE_ENCRYPT_TO"] = encrypt_to
    with subprocess.Popen(
        [sys.executable, str(CHILD), fmt, str(level), str(mebibytes), "1" if give_size else "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        size = 0
        while block := child.stdout.read(MIB):
            size += len(block)
        stderr = child.stderr.read()
        assert child.wait() == 0, stderr.decode()
    rss, seconds = stderr.split()
    return int(rss), float(seconds), size


@pytest.mark.parametrize(("fmt", "level"), [("zip", 1), ("tar.zst", 3)])
def test_writing_one_gib_to_a_pipe_holds_bounded_memory(
    fmt: str, level: int, tmp_path: Path
) -> None:
    small_rss, _, small_size = _run(fmt, level, 64, tmp_path)
    rss, seconds, size = _run(fmt, level, 1024, tmp_path)
    sys.stderr.write(
        f"{fmt}: 1 GiB in {seconds:.2f} s ({1024 / seconds:.0f} MiB/s), "
        f"peak RSS {rss / MIB:.0f} MiB, archive {size} bytes\n"
    )
    assert rss < 200 * MIB
    # Memory does not grow with the member: 16 times the data, about the same peak.
    assert rss - small_rss < 16 * MIB
    assert size > small_size > 0
    # Nothing was staged: the temporary directory stayed empty.
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["zip", "tar.zst"])
def test_an_encrypted_member_of_one_gib_holds_bounded_memory(fmt: str, tmp_path: Path) -> None:
    """Compressed, then encrypted with age, then written: three stages, memory still bounded."""
    pyrage = pytest.importorskip("pyrage", reason="the age extra (pyrage) is not installed")
    recipient = str(pyrage.x25519.Identity.generate().to_public())
    level = 1 if fmt == "zip" else 0  # tar.zst: 0 is its default settings
    small_rss, _, _ = _run(fmt, level, 64, tmp_path, encrypt_to=recipient)
    rss, _, size = _run(fmt, level, 1024, tmp_path, encrypt_to=recipient)
    assert rss < 200 * MIB
    assert rss - small_rss < 16 * MIB
    assert size < 1024 * MIB // 4  # the member was compressed before it was encrypted
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_data_that_does_not_compress_holds_bounded_memory_too(
    encrypted: bool, tmp_path: Path
) -> None:
    """The default tar.zst settings where the compressor's buffers are largest."""
    recipient = None
    if encrypted:
        pyrage = pytest.importorskip("pyrage", reason="the age extra (pyrage) is not installed")
        recipient = str(pyrage.x25519.Identity.generate().to_public())
    rss, _, size = _run("tar.zst", 0, 512, tmp_path, encrypt_to=recipient, random=True)
    assert size > 512 * MIB  # nothing compressed: the worst case was exercised
    assert rss < 200 * MIB


def test_unsized_tar_zst_member_to_a_pipe_is_spooled_with_bounded_memory(
    tmp_path: Path,
) -> None:
    # A tar header needs the size before the data: on a pipe, the member is spooled.
    rss, _, size = _run("tar.zst", 3, 256, tmp_path, give_size=False)
    assert rss < 200 * MIB
    assert size > 0


@pytest.mark.parametrize("fmt", ["tar.zst", "zip"])
def test_unsized_member_to_a_file_streams_without_staging(fmt: str, tmp_path: Path) -> None:
    """A pg_dump stream has no size: written to the archive file, it is not staged."""
    staging = tmp_path / "tmp"
    staging.mkdir()
    archive = tmp_path / "archive"
    env = {**os.environ, "TMPDIR": str(staging)}
    completed = subprocess.run(
        [sys.executable, str(CHILD), fmt, "1" if fmt == "zip" else "3", "512", "0", str(archive)],
        capture_output=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    rss = int(completed.stderr.split()[0])
    assert rss < 200 * MIB
    assert list(staging.iterdir()) == []  # nothing spooled
    from odeion_archive._archive import ArchiveFile
    from odeion_archive._registry import Registry

    registry = Registry.empty()
    for module in ("odeion_archive.formats.zip", "odeion_archive.formats.tarzst"):
        registry.register(__import__(module, fromlist=["x"]), name=module)
    with ArchiveFile.open(archive, registry) as opened:
        assert opened.manifest.member("full_db/database.dump").size == 512 * MIB
        assert opened.verify().ok
    if fmt == "tar.zst":  # the header rewritten in place is what tar reads
        listing = subprocess.run(
            ["tar", "--zstd", "-tvf", str(archive)], capture_output=True, text=True, check=True
        ).stdout
        assert any(
            "full_db/database.dump" in line and str(512 * MIB) in line
            for line in listing.splitlines()
        )
