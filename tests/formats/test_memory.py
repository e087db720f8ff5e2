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


def _run(fmt: str, level: int, mebibytes: int, tmp: Path, *, give_size: bool = True,
         ) -> tuple[int, float, int]:
    """Peak RSS (bytes), seconds, and archive bytes of one child run."""
    env = {**os.environ, "TMPDIR": str(tmp)}
    with subprocess.Popen(
        [sys.executable, str(CHILD), fmt, str(level), str(mebibytes), "1" if give_size else "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
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
def test_writing_one_gib_to_a_pipe_holds_bounded_memory(fmt: str, level: int,
                                                        tmp_path: Path) -> None:
    small_rss, _, small_size = _run(fmt, level, 64, tmp_path)
    rss, seconds, size = _run(fmt, level, 1024, tmp_path)
    sys.stderr.write(f"{fmt}: 1 GiB in {seconds:.2f} s ({1024 / seconds:.0f} MiB/s), "
                     f"peak RSS {rss / MIB:.0f} MiB, archive {size} bytes\n")
    assert rss < 200 * MIB
    # Memory does not grow with the member: 16 times the data, about the same peak.
    assert rss - small_rss < 16 * MIB
    assert size > small_size > 0
    # Nothing was staged: the temporary directory stayed empty.
    assert list(tmp_path.iterdir()) == []


def test_unsized_tar_zst_member_is_spooled_with_bounded_memory(tmp_path: Path) -> None:
    # A tar header needs the size before the data; without it, the member is spooled.
    rss, _, size = _run("tar.zst", 3, 256, tmp_path, give_size=False)
    assert rss < 200 * MIB
    assert size > 0
