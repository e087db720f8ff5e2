"""A copy to a target holds bounded memory whatever the archive's size (a child process measures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import attrs
from _archives import make_large_archive
from _s3 import ACCESS_KEY, SECRET_KEY

from odeion_archive.targets import TargetSpec

CHILD = Path(__file__).with_name("_bigcopy.py")
MIB = 1024 * 1024


def _copy(data_dir: Path, spec: TargetSpec, name: str) -> tuple[int, float]:
    fields = attrs.asdict(spec, recurse=False)
    fields["options"] = dict(spec.options)
    fields["base"] = None
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    done = subprocess.run(
        [sys.executable, str(CHILD), str(data_dir), json.dumps(fields), name],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    rss, seconds = done.stderr.split()[-2:]
    return int(rss), float(seconds)


def test_a_copy_holds_bounded_memory(tmp_path: Path, target_spec: TargetSpec) -> None:
    data_dir = tmp_path / "data"
    small = make_large_archive(data_dir / "backups", 16)
    large = make_large_archive(data_dir / "backups", 192)
    small_rss, _ = _copy(data_dir, target_spec, small.name)
    rss, seconds = _copy(data_dir, target_spec, large.name)
    sys.stderr.write(
        f"{target_spec.kind}: 192 MiB copied and checked in {seconds:.1f} s, "
        f"peak RSS {rss / MIB:.0f} MiB (16 MiB archive: {small_rss / MIB:.0f} MiB)\n"
    )
    assert rss < 200 * MIB
    # Twelve times the data, about the same peak: nothing holds the archive whole.
    assert rss - small_rss < 24 * MIB
